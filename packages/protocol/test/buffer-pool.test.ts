import t from 'tap'
import { BufferPool, POOL_MIN_BYTES } from '../src/index.ts'

const KiB = 1024

t.test('copies come in pooled buffers that are reused once given back', async (t) => {
  const pool = new BufferPool()
  const bytes = Buffer.alloc(300 * KiB, 7)
  const a = pool.copy(bytes)
  t.not(a, bytes, 'a copy, not the bytes given')
  t.ok(Buffer.from(a).equals(bytes), 'with the same contents')
  t.equal(a.length, bytes.length, 'and their length')
  t.ok(pool.lent(a), 'lent until given back')
  t.equal(pool.stats().outBytes, 304 * KiB, 'sizes round up to 16 KiB steps')
  pool.release(a.subarray(10, 20))
  t.notOk(pool.lent(a), 'any view of the buffer gives it back')
  t.same(pool.stats(), { outBytes: 0, freeBytes: 304 * KiB, allocated: 1, reused: 0 })

  // A shorter copy in the same size step takes the same buffer.
  const b = pool.copy(Buffer.alloc(295 * KiB, 9))
  t.equal(b.buffer, a.buffer, 'the free buffer is reused')
  t.equal(b.length, 295 * KiB)
  t.ok(
    b.every((v) => v === 9),
    'holding the new bytes',
  )
  t.same(pool.stats(), { outBytes: 304 * KiB, freeBytes: 0, allocated: 1, reused: 1 })
  // Two at once need two buffers.
  const c = pool.copy(Buffer.alloc(300 * KiB, 1))
  t.not(c.buffer, b.buffer)
  t.equal(pool.stats().allocated, 2)
})

t.test('giving back twice, or what the pool never lent, changes nothing', async (t) => {
  const pool = new BufferPool()
  const a = pool.copy(Buffer.alloc(100 * KiB))
  pool.release(a)
  pool.release(a)
  t.same(pool.stats(), { outBytes: 0, freeBytes: 112 * KiB, allocated: 1, reused: 0 })
  pool.release(Buffer.alloc(128 * KiB))
  t.equal(pool.stats().freeBytes, 112 * KiB, 'a foreign buffer is not taken in')
  const b = pool.copy(Buffer.alloc(100 * KiB))
  const c = pool.copy(Buffer.alloc(100 * KiB))
  t.not(b.buffer, c.buffer, 'the one free buffer is not handed out twice')
})

t.test('small copies are not pooled, and free buffers are capped', async (t) => {
  const small = Buffer.alloc(POOL_MIN_BYTES - 1)
  const pool = new BufferPool({ maxFreeBytes: 256 * KiB })
  t.equal(pool.copy(small), small, 'below the minimum the bytes come back as they are')
  t.same(pool.stats(), { outBytes: 0, freeBytes: 0, allocated: 0, reused: 0 })
  const out = [1, 2, 3].map(() => pool.copy(Buffer.alloc(128 * KiB)))
  for (const o of out) pool.release(o)
  t.same(
    pool.stats(),
    { outBytes: 0, freeBytes: 256 * KiB, allocated: 3, reused: 0 },
    'two are kept, the third is left to the garbage collector',
  )
  t.throws(() => new BufferPool({ minBytes: 0 }), RangeError)
  t.throws(() => new BufferPool({ maxFreeBytes: -1 }), RangeError)
})
