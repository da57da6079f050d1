import { monitorEventLoopDelay } from 'node:perf_hooks'
import t from 'tap'
import { CodecPool, ErasureLayout, encodeStream, InlineCodec, isCodecError } from '../src/index.ts'
import { equalBytes, Rng } from './helpers.ts'

const rng = new Rng()

t.test('pool results equal inline results, and buffers cross by transfer', async (t) => {
  const pool = new CodecPool({ threads: 2 })
  const inline = await InlineCodec.create()
  t.teardown(() => pool.close())
  const data = rng.bytes(100_003)
  const stripeA = new ArrayBuffer(100_004)
  const stripeB = new ArrayBuffer(100_004)
  new Uint8Array(stripeA).set(data)
  new Uint8Array(stripeB).set(data)
  const a = await pool.encode({ k: 4, m: 3, stripe: stripeA, length: data.length })
  t.equal(stripeA.byteLength, 0, 'the stripe was transferred to the worker, not copied')
  const b = await inline.encode({ k: 4, m: 3, stripe: stripeB, length: data.length })
  t.ok(equalBytes(new Uint8Array(a.parity), new Uint8Array(b.parity)), 'same parity')
  t.ok(equalBytes(new Uint8Array(a.hashes), new Uint8Array(b.hashes)), 'same chunk hashes')
  t.ok(equalBytes(new Uint8Array(a.stripe, 0, data.length), data), 'the stripe came back intact')

  const chunks = [rng.bytes(1000), rng.bytes(1)].map((c) => c.buffer as ArrayBuffer)
  const h = await pool.hash(chunks)
  const hi = await inline.hash(h.chunks)
  t.same([...h.hashes], [...hi.hashes], 'hash task agrees')
})

t.test('errors thrown in a worker keep their code', async (t) => {
  const pool = new CodecPool({ threads: 1 })
  t.teardown(() => pool.close())
  try {
    await pool.encode({ k: 0, m: 1, stripe: new ArrayBuffer(8), length: 8 })
    t.fail('k = 0 must be refused')
  } catch (err) {
    t.ok(isCodecError(err, 'INVALID_PARAMETERS'), (err as Error).message)
  }
  try {
    await pool.decode({
      k: 2,
      m: 1,
      block: 7,
      length: 100,
      chunks: [new ArrayBuffer(3), null, null],
    })
    t.fail('a short frame must be refused')
  } catch (err) {
    t.ok(isCodecError(err, 'TRUNCATED_SHARD'), (err as Error).message)
    t.equal((err as { block?: number }).block, 7)
  }
  await pool.close()
  await t.rejects(pool.hash([]), { code: 'POOL_CLOSED' })
})

t.test('the event loop stays free while the pool encodes a large object', async (t) => {
  const pool = new CodecPool({ threads: 2 })
  t.teardown(() => pool.close())
  const layout = new ErasureLayout({ k: 8, m: 4 })
  const piece = rng.bytes(1024 * 1024)
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 64; i++) yield piece
  }
  const h = monitorEventLoopDelay({ resolution: 5 })
  h.enable()
  let blocks = 0
  for await (const block of encodeStream(source(), { layout, codec: pool, inFlight: 4 })) {
    blocks++
    block.release()
  }
  h.disable()
  t.equal(blocks, 64)
  // Inline, one 1 MiB RS(8,4) block with its hashes is ~0.4 ms of CPU; what matters is that
  // the loop never waits for a whole object: no stall near the 64-block total.
  t.ok(h.max / 1e6 < 250, `longest event-loop stall ${(h.max / 1e6).toFixed(1)} ms`)
})

t.test('a backlog is sent in batches; each task still settles on its own', async (t) => {
  const pool = new CodecPool({ threads: 1, maxBatch: 4 })
  const inline = await InlineCodec.create()
  t.teardown(() => pool.close())
  const inputs = Array.from({ length: 23 }, (_, i) => rng.bytes(1000 + i))
  const jobs = inputs.map((data, i) => {
    const stripe = new ArrayBuffer(data.length + 8)
    new Uint8Array(stripe).set(data)
    // Task 7 is invalid: it must fail alone, not take its batch-mates down with it.
    const k = i === 7 ? 0 : 4
    return pool.encode({ k, m: 2, stripe, length: data.length })
  })
  const settled = await Promise.allSettled(jobs)
  const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [i] : []))
  t.same(failed, [7], 'only the invalid task failed')
  t.ok(isCodecError((settled[7] as PromiseRejectedResult).reason, 'INVALID_PARAMETERS'))
  let same = 0
  for (const [i, s] of settled.entries()) {
    if (s.status !== 'fulfilled') continue
    const stripe = new ArrayBuffer(inputs[i]!.length + 8)
    new Uint8Array(stripe).set(inputs[i]!)
    const want = await inline.encode({ k: 4, m: 2, stripe, length: inputs[i]!.length })
    if (equalBytes(new Uint8Array(s.value.parity), new Uint8Array(want.parity))) same++
  }
  t.equal(same, 22, 'every other task got its own result, in order')
})
