/**
 * The digest thread: running MD5 / SHA-1 / SHA-256 of bodies sent in pieces, session by
 * session, through its shared ring (wrapping around it, pieces larger than it), the caller's
 * pieces left intact; senders far ahead of the thread wait for it, first come first served;
 * dropped and closed sessions end cleanly.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { DIGEST_RING_BYTES, DigestThread } from '../src/index.ts'

function body(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size)
  let x = seed | 1
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    b[i] = x >>> 24
  }
  return b
}

/** `data` in pieces of 1 B to 300 KiB. */
function* pieces(data: Buffer, seed: number): Generator<Buffer> {
  let x = seed
  for (let at = 0; at < data.length; ) {
    x = (x * 1103515245 + 12345) >>> 0
    const n = Math.min(data.length - at, 1 + (x % (300 * 1024)))
    yield data.subarray(at, at + n)
    at += n
  }
}

t.test(
  'digests of interleaved sessions match node:crypto, and pieces stay the caller’s',
  async (t) => {
    const thread = new DigestThread()
    t.teardown(() => thread.close())
    const bodies = [body(0, 1), body(1, 2), body(3 * 1024 * 1024 + 17, 3), body(65536, 4)]
    const sessions = bodies.map(() => thread.session(['md5', 'sha256', 'sha1']))
    const iters = bodies.map((b, i) => pieces(b, i + 10))
    // Round-robin, so the sessions' pieces interleave on the one thread.
    let live = bodies.length
    while (live > 0) {
      live = 0
      for (const [i, it] of iters.entries()) {
        const next = it.next()
        if (next.done) continue
        live++
        const before = Buffer.from(next.value)
        const wait = sessions[i]!.update(next.value)
        if (wait !== undefined) await wait
        t.equal(next.value.length, before.length, 'the piece is not detached')
        if (!next.value.equals(before)) t.fail('the piece changed')
      }
    }
    t.equal(thread.sessions, bodies.length)
    const digests = await Promise.all(sessions.map((s) => s.digest()))
    for (const [i, d] of digests.entries()) {
      for (const alg of ['md5', 'sha256', 'sha1'] as const) {
        t.equal(
          d[alg].toString('hex'),
          createHash(alg).update(bodies[i]!).digest('hex'),
          `body ${i} (${bodies[i]!.length} B): ${alg}`,
        )
      }
    }
    t.equal(thread.sessions, 0, 'finished sessions are gone')
    await t.rejects(sessions[0]!.digest(), /digest after the end/)
    t.throws(() => sessions[0]!.update(Buffer.from('x')), /update after the end/)
  },
)

t.test(
  'senders far ahead of the thread wait for it, and the ring bounds the backlog',
  async (t) => {
    const thread = new DigestThread()
    t.teardown(() => thread.close())
    const piece = body(1024 * 1024, 5)
    let waited = 0
    let maxBacklog = 0
    // Three bodies of 48 MiB at once: far more than the ring holds.
    const sends = [0, 1, 2].map(async () => {
      const s = thread.session(['md5'])
      const hash = createHash('md5')
      for (let i = 0; i < 48; i++) {
        const wait = s.update(piece)
        hash.update(piece)
        maxBacklog = Math.max(maxBacklog, thread.stats.backlogBytes)
        if (wait !== undefined) {
          waited++
          await wait
        }
      }
      return (await s.digest()).md5.equals(hash.digest())
    })
    t.same(await Promise.all(sends), [true, true, true], 'every body hashed right')
    t.ok(waited > 0, `the senders waited ${waited} times`)
    t.ok(maxBacklog <= DIGEST_RING_BYTES, `never more than the ring behind (${maxBacklog} B)`)
    t.same(
      thread.stats,
      { backlogBytes: 0, waiting: 0, bytes: 3 * 48 * piece.length, waits: waited },
      'the stats count every byte and every wait',
    )
  },
)

t.test('a small ring: wrapping, pieces larger than the ring, arrival order', async (t) => {
  // 64 KiB of ring for pieces of up to 300 KiB: nearly every piece waits, wraps and splits.
  const thread = new DigestThread({ ringBytes: 64 * 1024 })
  t.teardown(() => thread.close())
  const bodies = [body(2 * 1024 * 1024 + 3, 21), body(777_777, 22), body(5, 23)]
  const done = bodies.map(async (b, i) => {
    const s = thread.session(['sha256', 'md5'])
    for (const p of pieces(b, 30 + i)) {
      const copy = Buffer.from(p)
      const wait = s.update(p)
      if (wait !== undefined) await wait
      if (!p.equals(copy)) t.fail('the piece changed')
    }
    const d = await s.digest()
    return [d.sha256.toString('hex'), d.md5.toString('hex')]
  })
  const got = await Promise.all(done)
  for (const [i, b] of bodies.entries()) {
    t.same(
      got[i],
      [createHash('sha256').update(b).digest('hex'), createHash('md5').update(b).digest('hex')],
      `body ${i} (${b.length} B)`,
    )
  }
  t.throws(() => new DigestThread({ ringBytes: 100 }), /at least 4096/)
})

t.test('a dropped session with pieces waiting lets the others through', async (t) => {
  const thread = new DigestThread({ ringBytes: 64 * 1024 })
  t.teardown(() => thread.close())
  const a = thread.session(['md5'])
  const b = thread.session(['md5'])
  const big = body(1024 * 1024, 40)
  const waitA = a.update(big)
  t.ok(waitA, 'a 1 MiB piece waits on a 64 KiB ring')
  const small = Buffer.from('behind a')
  const waitB = b.update(small)
  t.ok(waitB, 'b queues behind a')
  a.drop()
  await waitA
  await waitB
  t.equal((await b.digest()).md5.toString('hex'), createHash('md5').update(small).digest('hex'))
  t.same(thread.stats.waiting, 0)
})

t.test('dropped and closed sessions', async (t) => {
  const thread = new DigestThread()
  const dropped = thread.session(['md5'])
  t.equal(dropped.update(body(100_000, 6)), undefined, 'copied at once')
  dropped.drop()
  dropped.drop()
  t.equal(thread.sessions, 0, 'a dropped session is gone')
  await t.rejects(dropped.digest(), /after the end/)
  const next = thread.session(['md5'])
  t.equal(next.update(Buffer.from('abc')), undefined)
  t.equal((await next.digest()).md5.toString('hex'), createHash('md5').update('abc').digest('hex'))
  const open = thread.session(['sha256'])
  t.equal(open.update(body(10_000, 7)), undefined)
  const failed = t.rejects(
    open.digest(),
    /closed/,
    'a session in progress fails when the thread closes',
  )
  await thread.close()
  await failed
  t.throws(() => thread.session(['md5']), /closed/)
})
