import { randomBytes } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { once } from 'node:events'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import {
  generateIdentity,
  type Identity,
  identityFromBytes,
  loadIdentity,
  saveIdentity,
} from '../src/identity.ts'
import {
  connectSecure,
  HANDOVER_DIAGNOSTICS_CHANNEL,
  type Hello,
  type ListenSecureInit,
  listenSecure,
  MAX_FRAME_BYTES,
  type SecureChannel,
} from '../src/secure-channel.ts'
import { PROTOCOL_VERSION } from '../src/version.ts'

const MAP_HASH = 'b3:5f0c9e1a'
const nodeHello: Hello = { version: PROTOCOL_VERSION, mapHash: MAP_HASH, role: 'node' }
const gatewayHello: Hello = { version: PROTOCOL_VERSION, mapHash: MAP_HASH, role: 'gateway' }

const listenerId = await generateIdentity()
const dialerId = await generateIdentity()

interface Listener {
  port: number
  channels: SecureChannel[]
  refused: { remoteId: string | undefined; reason: string }[]
  /** Resolves with the next accepted channel. */
  nextChannel(): Promise<SecureChannel>
}

/** A listener on 127.0.0.1 that knows only `allowed`, closed with the test. */
async function listen(
  t: Test,
  init: Partial<ListenSecureInit> & { allowed?: string[] } = {},
): Promise<Listener> {
  const allowed = new Set(init.allowed ?? [dialerId.id])
  const channels: SecureChannel[] = []
  const refused: Listener['refused'] = []
  const waiting: ((ch: SecureChannel) => void)[] = []
  const server = listenSecure({
    identity: listenerId,
    hello: nodeHello,
    authorize: (id) => (allowed.has(id) ? undefined : 'not in the cluster map'),
    ...init,
    onChannel(ch) {
      channels.push(ch)
      t.teardown(() => ch.close())
      init.onChannel?.(ch)
      waiting.shift()?.(ch)
    },
    onRefused(remoteId, reason) {
      refused.push({ remoteId, reason })
      init.onRefused?.(remoteId, reason)
    },
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    channels,
    refused,
    nextChannel: () => new Promise((resolve) => waiting.push(resolve)),
  }
}

async function dial(
  t: Test,
  port: number,
  over: { identity?: Identity; expectedRemoteId?: string; hello?: Hello; timeoutMs?: number } = {},
): Promise<SecureChannel> {
  const ch = await connectSecure({
    host: '127.0.0.1',
    port,
    identity: over.identity ?? dialerId,
    expectedRemoteId: over.expectedRemoteId ?? listenerId.id,
    hello: over.hello ?? gatewayHello,
    ...(over.timeoutMs === undefined ? {} : { timeoutMs: over.timeoutMs }),
  })
  t.teardown(() => ch.close())
  return ch
}

async function connectedPair(t: Test): Promise<{ dialer: SecureChannel; listener: SecureChannel }> {
  const l = await listen(t)
  const accepted = l.nextChannel()
  const dialer = await dial(t, l.port)
  return { dialer, listener: await accepted }
}

/** The next `n` frames of `ch`. */
function frames(ch: SecureChannel, n: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = []
    const onFrame = (f: Buffer): void => {
      got.push(f)
      if (got.length === n) {
        done()
        resolve(got)
      }
    }
    const onClose = (err?: Error): void => {
      done()
      reject(err ?? new Error(`closed after ${got.length} of ${n} frames`))
    }
    const done = (): void => {
      ch.off('frame', onFrame)
      ch.off('close', onClose)
    }
    ch.on('frame', onFrame)
    ch.on('close', onClose)
  })
}

function closed(ch: SecureChannel): Promise<Error | undefined> {
  return new Promise((resolve) => ch.once('close', resolve))
}

t.test('frames of every size make the round trip, both ways', async (t) => {
  const { dialer, listener } = await connectedPair(t)
  t.equal(dialer.remoteId, listenerId.id)
  t.equal(listener.remoteId, dialerId.id)
  t.same(dialer.remoteHello, nodeHello)
  t.same(listener.remoteHello, gatewayHello)
  const sizes = [0, 1, 65535, 65536 + 7, MAX_FRAME_BYTES]
  const payloads = sizes.map((n) => randomBytes(n))
  for (const [from, to] of [
    [dialer, listener],
    [listener, dialer],
  ] as const) {
    const got = frames(to, sizes.length)
    for (const p of payloads) from.send([p])
    const received = await got
    for (let i = 0; i < sizes.length; i++) {
      const f = received[i]!
      t.ok(f.equals(payloads[i]!), `${sizes[i]} bytes arrive intact`)
      if (f.length > 0) {
        t.ok(f.byteOffset === 0 && f.buffer.byteLength === f.length, 'owns its memory')
      }
    }
  }
})

t.test('many small frames keep their order and content', async (t) => {
  const { dialer, listener } = await connectedPair(t)
  const count = 20_000
  const payloads = Array.from({ length: count }, (_, i) => randomBytes(i % 97))
  const got = frames(listener, count)
  for (const p of payloads) {
    if (!dialer.send([p])) await once(dialer, 'drain')
  }
  const received = await got
  t.ok(
    received.every((f, i) => f.equals(payloads[i]!)),
    `${count} frames in order`,
  )
})

t.test('a multi-part frame arrives as the concatenation of its parts', async (t) => {
  const { dialer, listener } = await connectedPair(t)
  const header = randomBytes(23)
  const body = randomBytes(1024 * 1024 + 3)
  const parts = [header, new Uint8Array(0), body, randomBytes(1)]
  const got = frames(listener, 2)
  dialer.send(parts)
  dialer.send([new Uint8Array(0), new Uint8Array(0)])
  const [f, empty] = await got
  t.ok(f!.equals(Buffer.concat(parts)), 'parts joined in order')
  t.equal(empty!.length, 0, 'empty parts make an empty frame')
  t.throws(() => dialer.send([randomBytes(MAX_FRAME_BYTES), randomBytes(1)]), {
    code: 'FRAME_TOO_LARGE',
  })
})

t.test('no bytes are lost at the handover from noise to raw frames', async (t) => {
  // Both sides send at once: the listener's frame can share a TCP read with its hello, and
  // the dialer's frame can arrive right after the listener switched.
  const l = await listen(t, {
    onChannel: (ch) => ch.send([Buffer.from(`from listener to ${ch.remoteId}`)]),
  })
  // Counts handovers where raw bytes came in with the last noise message: those are the bytes
  // a reader that read ahead would have swallowed.
  let withRawBytes = 0
  const onHandover = (msg: unknown): void => {
    if ((msg as { rawBytes: number }).rawBytes > 0) withRawBytes++
  }
  subscribe(HANDOVER_DIAGNOSTICS_CHANNEL, onHandover)
  t.teardown(() => {
    unsubscribe(HANDOVER_DIAGNOSTICS_CHANNEL, onHandover)
  })
  for (let i = 0; i < 50; i++) {
    const accepted = l.nextChannel()
    const dialer = await dial(t, l.port)
    const fromListener = frames(dialer, 1)
    dialer.send([Buffer.from(`hello ${i}`)])
    const listener = await accepted
    const [a] = await frames(listener, 1)
    const [b] = await fromListener
    t.equal(a!.toString(), `hello ${i}`)
    t.equal(b!.toString(), `from listener to ${dialerId.id}`)
    dialer.close()
    await closed(listener)
  }
  t.equal(l.refused.length, 0)
  t.ok(withRawBytes > 0, `${withRawBytes} of 50 handovers carried raw bytes over intact`)
})

t.test('the listener may send first: its frame arrives before any dialer frame', async (t) => {
  const l = await listen(t, { onChannel: (ch) => ch.send([Buffer.alloc(300_000, 7)]) })
  const dialer = await dial(t, l.port)
  // Wait before listening: the frame sits in the handshake's queue or the socket meanwhile.
  await sleep(50)
  const [f] = await frames(dialer, 1)
  t.equal(f!.length, 300_000)
  t.ok(f!.every((b) => b === 7))
})

t.test('an unknown dialer key is dropped after the handshake', async (t) => {
  const l = await listen(t)
  const stranger = await generateIdentity()
  await t.rejects(dial(t, l.port, { identity: stranger }), { code: 'REFUSED' })
  await sleep(20)
  t.same(l.refused, [{ remoteId: stranger.id, reason: 'not in the cluster map' }])
  t.equal(l.channels.length, 0)
})

t.test('the dialer refuses a listener with another key', async (t) => {
  const l = await listen(t)
  const other = await generateIdentity()
  await t.rejects(dial(t, l.port, { expectedRemoteId: other.id }), { code: 'UNEXPECTED_PEER' })
  await t.rejects(dial(t, l.port, { expectedRemoteId: 'not-a-peer-id' }), {
    code: 'INVALID_ARGUMENT',
  })
})

t.test('a different cluster map is refused with both hashes named', async (t) => {
  const l = await listen(t)
  const theirs = 'b3:0000dead'
  const err = await dial(t, l.port, { hello: { ...gatewayHello, mapHash: theirs } }).then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  )
  t.equal(err?.code, 'MAP_MISMATCH')
  t.match(err?.message, MAP_HASH, 'names the listener hash')
  t.match(err?.message, theirs, 'names the dialer hash')
  await sleep(20)
  t.equal(l.refused.length, 1)
  t.equal(l.refused[0]?.remoteId, dialerId.id)
  t.match(l.refused[0]?.reason, /map mismatch/)
})

t.test('a different protocol version is refused', async (t) => {
  const l = await listen(t)
  await t.rejects(dial(t, l.port, { hello: { ...gatewayHello, version: PROTOCOL_VERSION + 1 } }), {
    code: 'VERSION_MISMATCH',
    message: new RegExp(
      `version ${PROTOCOL_VERSION}.*${PROTOCOL_VERSION + 1}|version ${PROTOCOL_VERSION + 1}.*${PROTOCOL_VERSION}`,
    ),
  })
})

t.test('handshakes time out on both sides', async (t) => {
  const silent = net.createServer((s) => s.on('error', () => {}))
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => {
    silent.close()
  })
  const port = (silent.address() as net.AddressInfo).port
  await t.rejects(dial(t, port, { timeoutMs: 150 }), { code: 'HANDSHAKE_TIMEOUT' })

  const l = await listen(t, { handshakeTimeoutMs: 150 })
  const mute = net.connect(l.port, '127.0.0.1')
  mute.on('error', () => {})
  t.teardown(() => mute.destroy())
  await once(mute, 'close')
  t.equal(l.refused.length, 1)
  t.equal(l.refused[0]?.remoteId, undefined)
  t.match(l.refused[0]?.reason, /150 ms/)
})

t.test('a closed port rejects with the socket error', async (t) => {
  const s = net.createServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as net.AddressInfo).port
  await new Promise((resolve) => s.close(resolve))
  await t.rejects(dial(t, port), { code: 'ECONNREFUSED' })
})

/**
 * A TCP proxy in front of `port` that changes the first dialer→listener bytes sent after
 * `arm()`, and passes everything else through. When `tamper` returns a number, only that
 * many bytes of the chunk are passed on, and the proxy then ends the upstream connection.
 */
async function tamperingProxy(
  t: Test,
  port: number,
  tamper: (chunk: Buffer) => number | undefined,
): Promise<{ port: number; arm(): void }> {
  let armed = false
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    upstream.pipe(client)
    client.on('data', (chunk: Buffer) => {
      if (armed) {
        armed = false
        const cut = tamper(chunk)
        if (cut !== undefined) {
          upstream.end(chunk.subarray(0, cut))
          return
        }
      }
      upstream.write(chunk)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.close()
  })
  return {
    port: (server.address() as net.AddressInfo).port,
    arm: () => {
      armed = true
    },
  }
}

t.test('a flipped ciphertext bit closes the channel and delivers nothing', async (t) => {
  const l = await listen(t)
  const proxy = await tamperingProxy(t, l.port, (chunk) => {
    chunk[4 + 100]! ^= 0x01
    return undefined
  })
  const accepted = l.nextChannel()
  const dialer = await dial(t, proxy.port)
  const listener = await accepted
  let delivered = 0
  listener.on('frame', () => delivered++)
  const listenerClosed = closed(listener)
  proxy.arm()
  dialer.send([randomBytes(1000)])
  const err = (await listenerClosed) as Error & { code?: string }
  t.equal(err?.code, 'BAD_FRAME')
  t.match(err?.message, dialerId.id, 'the error names the remote')
  t.equal(delivered, 0, 'no frame delivered')
  t.equal(await closed(dialer), undefined, 'the dialer sees the connection close')
  t.throws(() => dialer.send([Buffer.from('x')]), { code: 'CHANNEL_CLOSED' })
})

t.test('an oversized frame length closes the channel', async (t) => {
  const l = await listen(t)
  const proxy = await tamperingProxy(t, l.port, (chunk) => {
    chunk.writeUInt32BE(0xffffffff, 0)
    return undefined
  })
  const accepted = l.nextChannel()
  const dialer = await dial(t, proxy.port)
  const listener = await accepted
  listener.on('frame', () => t.fail('no frame'))
  const listenerClosed = closed(listener)
  proxy.arm()
  dialer.send([randomBytes(10)])
  t.match(await listenerClosed, { code: 'FRAME_TOO_LARGE' })
})

t.test('a connection cut inside a frame closes with BAD_FRAME', async (t) => {
  const l = await listen(t)
  const proxy = await tamperingProxy(t, l.port, () => 500)
  const accepted = l.nextChannel()
  const dialer = await dial(t, proxy.port)
  const listener = await accepted
  listener.on('frame', () => t.fail('no frame'))
  const listenerClosed = closed(listener)
  proxy.arm()
  dialer.send([randomBytes(1000)])
  const err = (await listenerClosed) as Error & { code?: string }
  t.equal(err?.code, 'BAD_FRAME')
  t.match(err?.message, /inside a frame/)
})

t.test('close() ends both sides cleanly', async (t) => {
  const { dialer, listener } = await connectedPair(t)
  const got = frames(listener, 1)
  const listenerClosed = closed(listener)
  const dialerClosed = closed(dialer)
  dialer.send([Buffer.from('last words')])
  dialer.close()
  t.ok(dialer.closed)
  t.equal((await got)[0]?.toString(), 'last words', 'a frame sent before close() arrives')
  t.equal(await listenerClosed, undefined)
  t.equal(await dialerClosed, undefined)
})

t.test('backpressure: send() returns false and drain follows', async (t) => {
  const { dialer, listener } = await connectedPair(t)
  const frame = randomBytes(1024 * 1024)
  listener.pause()
  let received = 0
  listener.on('frame', () => received++)
  // While the listener does not read, TCP buffers fill and 'drain' stops coming.
  let sent = 0
  for (;;) {
    sent++
    if (dialer.send([frame])) continue
    const drained = await Promise.race([
      once(dialer, 'drain').then(() => true),
      sleep(300).then(() => false),
    ])
    if (!drained) break
    if (sent > 256) break
  }
  t.ok(sent < 256, `the sender stalls after ${sent} MiB: TCP pushes back`)
  t.ok(dialer.bufferedBytes > 0, `${dialer.bufferedBytes} bytes wait in the sender`)
  await sleep(50)
  t.equal(received, 0, 'no frames while paused')
  const drain = once(dialer, 'drain')
  listener.resume()
  await drain
  t.pass('drain follows once the listener reads again')
  while (received < sent) await sleep(10)
  t.equal(received, sent, `all ${sent} frames arrive`)
})

t.test('pause() holds frames already received until resume()', async (t) => {
  const { dialer, listener } = await connectedPair(t)
  const got: string[] = []
  listener.on('frame', (f) => {
    got.push(f.toString())
    // A listener may pause inside the event: the frames behind it wait.
    if (got.length === 1) listener.pause()
  })
  for (let i = 0; i < 5; i++) dialer.send([Buffer.from(`f${i}`)])
  await sleep(100)
  t.same(got, ['f0'])
  listener.resume()
  while (got.length < 5) await sleep(5)
  t.same(got, ['f0', 'f1', 'f2', 'f3', 'f4'])
})

t.test('identity files are private and never overwritten', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'identity.key')
  const id = await generateIdentity()
  t.match(id.id, /^12D3KooW/)
  await saveIdentity(path, id)
  t.equal((await stat(path)).mode & 0o777, 0o600, 'written 0600')
  const loaded = await loadIdentity(path)
  t.equal(loaded.id, id.id, 'the same identity comes back')
  t.equal(
    identityFromBytes(await readFile(path)).id,
    id.id,
    'identityFromBytes reads the file format',
  )
  await t.rejects(saveIdentity(path, await generateIdentity()), {
    code: 'IDENTITY_EXISTS',
    message: new RegExp(path),
  })
  t.equal((await loadIdentity(path)).id, id.id, 'the file was left alone')
  await chmod(path, 0o644)
  const err = await loadIdentity(path).then(
    () => undefined,
    (e: Error & { code?: string }) => e,
  )
  t.equal(err?.code, 'IDENTITY_PERMISSIONS')
  t.match(err?.message, path, 'names the file')
  t.match(err?.message, '0644', 'names the mode')
  const junk = join(dir, 'junk.key')
  await writeFile(junk, randomBytes(40), { mode: 0o600 })
  await t.rejects(loadIdentity(junk), { code: 'IDENTITY_INVALID' })
})

t.test(
  'dialed channels reading at once through the shared read buffer keep their own bytes',
  async (t) => {
    // Dialed sockets read into one buffer of the process; each read must be copied out by its
    // own channel before the next read of any socket lands there.
    const l = await listen(t)
    const pairs: { dialer: SecureChannel; listener: SecureChannel }[] = []
    for (let i = 0; i < 4; i++) {
      const accepted = l.nextChannel()
      const dialer = await dial(t, l.port)
      pairs.push({ dialer, listener: await accepted })
    }
    const sizes = [1, 1000, 65_536, 300_000, 1024 * 1024 + 17]
    const sent = pairs.map(() => sizes.map((n) => randomBytes(n)))
    const received = pairs.map(({ dialer }) => frames(dialer, sizes.length))
    // Interleaved: every listener sends its next frame before any sends the one after.
    for (let f = 0; f < sizes.length; f++) {
      for (const [i, { listener }] of pairs.entries()) listener.send([sent[i]![f]!])
    }
    const got = await Promise.all(received)
    for (const [i, frs] of got.entries()) {
      t.ok(
        frs.every((fr, f) => fr.equals(sent[i]![f]!)),
        `channel ${i}: every frame intact and in order`,
      )
    }
  },
)

t.test('a dialed channel not yet read from takes in a small frame and the close', async (t) => {
  const { dialer, listener } = await connectedPair(t)
  // No 'frame' listener yet: the dialer reads ahead (bounded), so both arrive regardless.
  const frame = randomBytes(1000)
  listener.send([frame])
  listener.close()
  await sleep(100)
  const ended = closed(dialer)
  const got = await frames(dialer, 1)
  t.ok(got[0]!.equals(frame), 'the frame sent before the close is delivered')
  t.equal(await ended, undefined, 'then the dialer closes, cleanly')
})
