import t from 'tap'
import {
  cauchyEncodingMatrix,
  GF_EXP,
  gfInv,
  gfMul,
  invert,
  matrix,
  multiply,
  selectRows,
} from '../src/gf256.ts'

t.test('every non-zero element has an inverse and the product is commutative', async (t) => {
  const bad: string[] = []
  for (let a = 1; a < 256; a++) {
    if (gfMul(a, gfInv(a)) !== 1) bad.push(`${a} * inv(${a}) != 1`)
    for (let b = 0; b < 256; b++) if (gfMul(a, b) !== gfMul(b, a)) bad.push(`${a} * ${b}`)
  }
  t.same(bad, [])
  t.throws(() => gfInv(0), RangeError)
  // The generator has order 255: all non-zero elements appear once in exp[0..254].
  t.equal(new Set(GF_EXP.subarray(0, 255)).size, 255)
})

t.test('multiplication distributes over xor (addition)', async (t) => {
  let bad = 0
  for (let a = 0; a < 256; a += 3) {
    for (let b = 0; b < 256; b += 5) {
      for (let c = 0; c < 256; c += 7) if (gfMul(a, b ^ c) !== (gfMul(a, b) ^ gfMul(a, c))) bad++
    }
  }
  t.equal(bad, 0)
})

/** Every size-k subset of 0..n-1, for small n. */
function* subsets(n: number, k: number, from = 0, acc: number[] = []): Generator<number[]> {
  if (acc.length === k) {
    yield [...acc]
    return
  }
  for (let i = from; i < n; i++) yield* subsets(n, k, i + 1, [...acc, i])
}

t.test('every k×k submatrix of the Cauchy encoding matrix is invertible (MDS)', async (t) => {
  for (const [k, m] of [
    [4, 2],
    [6, 3],
    [5, 5],
    [8, 4],
  ] as const) {
    const e = cauchyEncodingMatrix(k, m)
    let checked = 0
    for (const rows of subsets(k + m, k)) {
      const s = selectRows(e, rows)
      const inv = invert(s)
      const id = multiply(s, inv)
      const expected = matrix(k, k)
      for (let i = 0; i < k; i++) expected.data[i * k + i] = 1
      if (Buffer.compare(id.data, expected.data) !== 0) t.fail(`rows ${rows} do not invert`)
      checked++
    }
    t.pass(`RS(${k},${m}): ${checked} submatrices inverted`)
  }
})

t.test('a singular matrix is refused', async (t) => {
  const s = matrix(2, 2)
  s.data.set([1, 2, 1, 2])
  t.throws(() => invert(s), /singular/)
})
