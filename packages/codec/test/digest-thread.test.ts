/**
 * The digest thread: running MD5 / SHA-1 / SHA-256 of bodies sent in pieces, session by
 * session, the caller's pieces left intact; a session far ahead of the thread waits for it;
 * dropped and closed sessions end cleanly.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { DIGEST_MAX_PENDING_BYTES, DigestThread } from '../src/index.ts'

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
        if (wait) await wait
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

t.test('a session far ahead of the thread waits for it', async (t) => {
  const thread = new DigestThread()
  t.teardown(() => thread.close())
  const s = thread.session(['md5'])
  const piece = body(1024 * 1024, 5)
  const hash = createHash('md5')
  let waited = 0
  let sent = 0
  for (let i = 0; i < 64; i++) {
    const ok = s.update(piece)
    hash.update(piece)
    sent += piece.length
    if (!ok) {
      waited++
      t.ok(sent > DIGEST_MAX_PENDING_BYTES, 'only past the limit')
      await s.caughtUp()
    }
  }
  t.ok(waited > 0, `the sender waited ${waited} times`)
  t.equal((await s.digest()).md5.toString('hex'), hash.digest('hex'))
})

t.test('dropped and closed sessions', async (t) => {
  const thread = new DigestThread()
  const dropped = thread.session(['md5'])
  t.ok(dropped.update(body(100_000, 6)), 'not behind')
  dropped.drop()
  dropped.drop()
  t.equal(thread.sessions, 0, 'a dropped session is gone')
  await t.rejects(dropped.digest(), /after the end/)
  const next = thread.session(['md5'])
  t.ok(next.update(Buffer.from('abc')))
  t.equal((await next.digest()).md5.toString('hex'), createHash('md5').update('abc').digest('hex'))
  const open = thread.session(['sha256'])
  t.ok(open.update(body(10_000, 7)))
  const failed = t.rejects(
    open.digest(),
    /closed/,
    'a session in progress fails when the thread closes',
  )
  await thread.close()
  await failed
  t.throws(() => thread.session(['md5']), /closed/)
})
