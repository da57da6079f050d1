// The RPC layer over real secure channels on loopback: concurrency, bodies both ways, flow
// control, deadlines, cancellation and errors with their codes.

import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import {
  BODY_CHUNK_BYTES,
  BODY_WINDOW_BYTES,
  BufferPool,
  connectSecure,
  defineRpc,
  generateIdentity,
  type Identity,
  listenSecure,
  PROTOCOL_VERSION,
  RpcClient,
  RpcServer,
  StoreError,
  withBody,
} from '../src/index.ts'

const Echo = defineRpc<{ n: number; text: string }, { n: number; text: string }>({
  id: 0x7001,
  name: 'Echo',
})
const Upload = defineRpc<{ expect: number }, { bytes: number; sha: string }>({
  id: 0x7002,
  name: 'Upload',
  requestBody: true,
})
const Download = defineRpc<{ bytes: number; failAt?: number }, { bytes: number }>({
  id: 0x7003,
  name: 'Download',
  responseBody: true,
})
const Hang = defineRpc<Record<string, never>, Record<string, never>>({ id: 0x7004, name: 'Hang' })
const Fail = defineRpc<{ code: 'BUCKET_NOT_FOUND' }, Record<string, never>>({
  id: 0x7005,
  name: 'Fail',
})
const SlowUpload = defineRpc<{ delayMs: number }, { bytes: number; maxAhead: number }>({
  id: 0x7006,
  name: 'SlowUpload',
  requestBody: true,
})
const Unregistered = defineRpc<Record<string, never>, Record<string, never>>({
  id: 0x70ff,
  name: 'Nope',
})

const hello = { version: PROTOCOL_VERSION, mapHash: 'a'.repeat(64), role: 'node' as const }

let yielded = 0
const aborted: string[] = []

async function setup(t: { teardown(fn: () => void): void }): Promise<{
  client: RpcClient
  server: Identity
}> {
  const server = await generateIdentity()
  const caller = await generateIdentity()
  const rpc = new RpcServer()
  rpc.handle(Echo, (req) => req)
  rpc.handle(Upload, async (_req, ctx) => {
    const h = createHash('sha256')
    let bytes = 0
    for await (const c of ctx.body) {
      h.update(c)
      bytes += c.length
    }
    return { bytes, sha: h.digest('hex') }
  })
  rpc.handle(Download, (req) =>
    withBody(
      { bytes: req.bytes },
      (async function* () {
        for (let at = 0; at < req.bytes; at += 300_000) {
          if (req.failAt !== undefined && at >= req.failAt) {
            throw new StoreError('CHECKSUM_MISMATCH', 'block 3 is bad', { block: 3 })
          }
          yield Buffer.alloc(Math.min(300_000, req.bytes - at), at % 251)
        }
      })(),
    ),
  )
  rpc.handle(Hang, (_req, ctx) => {
    return new Promise((_, reject) => {
      ctx.signal.addEventListener('abort', () => {
        aborted.push((ctx.signal.reason as StoreError).code)
        reject(ctx.signal.reason)
      })
    })
  })
  rpc.handle(Fail, (req) => {
    throw new StoreError(req.code, 'no such bucket: photos', { bucket: 'photos' })
  })
  rpc.handle(SlowUpload, async (req, ctx) => {
    let bytes = 0
    let maxAhead = 0
    for await (const c of ctx.body) {
      bytes += c.length
      maxAhead = Math.max(maxAhead, yielded - bytes)
      await new Promise((r) => setTimeout(r, req.delayMs))
    }
    return { bytes, maxAhead }
  })
  const srv = listenSecure({
    identity: server,
    hello,
    authorize: () => undefined,
    onChannel: (ch) => rpc.attach(ch),
  })
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const ch = await connectSecure({
    host: '127.0.0.1',
    port: (srv.address() as AddressInfo).port,
    identity: caller,
    expectedRemoteId: server.id,
    hello: { ...hello, role: 'gateway' },
  })
  t.teardown(() => {
    ch.close()
    srv.close()
  })
  return { client: new RpcClient(ch), server }
}

t.test('many concurrent calls on one channel', async (t) => {
  const { client } = await setup(t)
  const out = await Promise.all(
    Array.from({ length: 500 }, (_, n) => client.call(Echo, { n, text: 'x'.repeat(n % 50) })),
  )
  t.ok(
    out.every((r, n) => r.n === n && r.text.length === n % 50),
    '500 answers, each to its call',
  )
  t.equal(client.inFlight, 0, 'no call is left pending')
})

t.test('request bodies and response bodies, large and exact', async (t) => {
  const { client } = await setup(t)
  const data = randomBytes(20 * 1024 * 1024 + 13)
  const r = await client.call(
    Upload,
    { expect: data.length },
    {
      body: (async function* () {
        for (let at = 0; at < data.length; at += 3_000_000) yield data.subarray(at, at + 3_000_000)
      })(),
    },
  )
  t.same(r, { bytes: data.length, sha: createHash('sha256').update(data).digest('hex') })
  const { res, body } = await client.callStream(Download, { bytes: 5_000_001 })
  t.equal(res.bytes, 5_000_001)
  let got = 0
  let ok = true
  for await (const c of body) {
    for (let i = 0; i < c.length; i += 4099)
      if (c[i] !== (got + i - ((got + i) % 300_000)) % 251) ok = false
    got += c.length
  }
  t.equal(got, 5_000_001)
  t.ok(ok, 'the bytes are the ones sent')
})

t.test('a response body can arrive in pooled buffers, given back and reused', async (t) => {
  const { client } = await setup(t)
  const buffers = new BufferPool()
  const bytes = 3_000_000 // ten chunks of 300,000 bytes
  const read = async (stopAfter?: number, size = bytes) => {
    const { body } = await client.callStream(Download, { bytes: size }, { buffers })
    let got = 0
    let ok = true
    let lent = 0
    for await (const c of body) {
      if (buffers.lent(c)) lent++
      for (let i = 0; i < c.length; i += 4099) if (c[i] !== got % 251) ok = false
      got += c.length
      buffers.release(c)
      if (got / 300_000 === stopAfter) {
        // Let the rest arrive and queue up unread.
        await new Promise((r) => setTimeout(r, 100))
        t.ok(buffers.stats().outBytes > 0, 'chunks wait in pooled buffers, unread')
        break
      }
    }
    return { got, ok, lent }
  }
  const first = await read()
  t.same(first, { got: bytes, ok: true, lent: 10 }, 'every chunk came in a pooled buffer, intact')
  const after1 = buffers.stats()
  t.equal(after1.outBytes, 0, 'all of them are back')
  t.ok(after1.freeBytes > 0, 'and kept for the next read')
  const second = await read()
  t.same(second, { got: bytes, ok: true, lent: 10 }, 'a second read, intact')
  const after2 = buffers.stats()
  t.ok(after2.reused > after1.reused, `the second read reused buffers (${after2.reused})`)
  t.equal(after2.outBytes, 0)

  // A reader that stops early: what had arrived and was never read goes back too, whether
  // the body had ended (all of it arrived) or not (the window holds the rest back).
  for (const size of [bytes, 3 * BODY_WINDOW_BYTES]) {
    const part = await read(2, size)
    t.equal(part.got, 600_000)
    await new Promise((r) => setTimeout(r, 100))
    t.equal(buffers.stats().outBytes, 0, `the chunks queued for an abandoned body went back`)
  }

  // Small chunks are not worth a copy: they come as they are.
  const { body } = await client.callStream(Download, { bytes: 1000 }, { buffers })
  for await (const c of body) t.notOk(buffers.lent(c), 'a 1000-byte chunk is not pooled')
  t.equal(client.inFlight, 0, 'no call is left pending')
})

t.test('a slow receiver bounds what the sender has in flight', async (t) => {
  const { client } = await setup(t)
  yielded = 0
  const total = 24 * 1024 * 1024
  const r = await client.call(
    SlowUpload,
    { delayMs: 5 },
    {
      body: (async function* () {
        for (let at = 0; at < total; at += 256 * 1024) {
          yielded += 256 * 1024
          yield Buffer.alloc(256 * 1024)
        }
      })(),
      timeoutMs: 60_000,
    },
  )
  t.equal(r.bytes, total)
  t.ok(
    r.maxAhead <= BODY_WINDOW_BYTES + 2 * BODY_CHUNK_BYTES,
    `the sender ran at most ${(r.maxAhead / 2 ** 20).toFixed(1)} MiB ahead of the receiver`,
  )
})

t.test('deadlines and cancellation reach the handler', async (t) => {
  const { client } = await setup(t)
  aborted.length = 0
  const t0 = Date.now()
  await t.rejects(client.call(Hang, {}, { timeoutMs: 150 }), { code: 'DEADLINE_EXCEEDED' })
  t.ok(Date.now() - t0 < 2000, 'the caller gave up at its deadline')
  const ac = new AbortController()
  const p = client.call(Hang, {}, { signal: ac.signal })
  setTimeout(() => ac.abort(), 50)
  await t.rejects(p, { code: 'CANCELLED' })
  await new Promise((r) => setTimeout(r, 300))
  t.equal(aborted.length, 2, 'the server handler was aborted both times')
  // The caller's deadline and the server's own are the same instant, so the first call may be
  // aborted by either; under load the two aborts may even be recorded out of order.
  t.ok(
    aborted.every((c) => c === 'DEADLINE_EXCEEDED' || c === 'CANCELLED'),
    `abort reasons: ${aborted.join(', ')}`,
  )
  t.ok(aborted.includes('CANCELLED'), 'the explicit cancel reached the handler')
})

t.test('errors cross the wire with code and details', async (t) => {
  const { client } = await setup(t)
  await t.rejects(client.call(Fail, { code: 'BUCKET_NOT_FOUND' }), {
    code: 'BUCKET_NOT_FOUND',
    message: 'no such bucket: photos',
    details: { bucket: 'photos' },
  })
  await t.rejects(client.call(Unregistered, {}), { code: 'UNKNOWN_RPC' })
  const { body } = await client.callStream(Download, { bytes: 3_000_000, failAt: 900_000 })
  let got = 0
  try {
    for await (const c of body) got += c.length
    t.fail('the body must fail')
  } catch (err) {
    t.match(
      err,
      { code: 'CHECKSUM_MISMATCH', details: { block: 3 } },
      'a body error keeps its code',
    )
    t.equal(got, 900_000, 'what came before the error was delivered')
  }
  t.equal((await client.call(Echo, { n: 1, text: 'still fine' })).text, 'still fine')
})

t.test('a closed channel fails pending calls', async (t) => {
  const { client } = await setup(t)
  const p = client.call(Hang, {})
  setTimeout(() => client.channel.close(), 50)
  await t.rejects(p, { code: 'CHANNEL_CLOSED' })
  await t.rejects(client.call(Echo, { n: 1, text: '' }), { code: 'CHANNEL_CLOSED' })
})

t.test('a malformed frame closes that channel only; the server keeps serving', async (t) => {
  const { client, server } = await setup(t)
  t.ok(server.id.length > 0)
  const closed = new Promise<Error | undefined>((resolve) => client.channel.on('close', resolve))
  // Call 1 uploads a body that stalls, so the server has an inbound body for it; then an END
  // frame for call 1 whose flag says "error" but carries no error payload (what an unzeroed
  // flag byte used to produce), which the server cannot decode.
  const upload = client.call(
    Upload,
    { expect: 1 },
    {
      body: (async function* () {
        yield Buffer.alloc(10)
        await new Promise((r) => setTimeout(r, 5000).unref())
      })(),
    },
  )
  upload.catch(() => {})
  await new Promise((r) => setTimeout(r, 100))
  client.channel.send([Buffer.from([4, 0, 0, 0, 1, 1])])
  await closed
  await t.rejects(upload, { code: 'CHANNEL_CLOSED' }, 'the call fails with the channel')
  t.ok(client.closed, 'the offending channel is closed')
  const again = await setup(t)
  t.equal((await again.client.call(Echo, { n: 7, text: 'alive' })).text, 'alive', 'new calls work')
})
