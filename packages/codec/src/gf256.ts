/**
 * Arithmetic in GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), the field
 * used by ISA-L, Backblaze and most storage Reed–Solomon codes, and the matrix helpers the
 * codec builds on. Everything here is plain TypeScript and runs once per code or per erasure
 * pattern, never per byte of payload (the byte loops live in the WASM kernel).
 */

const POLY = 0x11d

/** exp[i] = generator^i, doubled in length so that exp[log a + log b] needs no modulo. */
export const GF_EXP = new Uint8Array(512)
/** log[a] for a != 0; log[0] is unused. */
export const GF_LOG = new Uint8Array(256)
/** Full product table: GF_MUL[a << 8 | b] = a * b. 64 KiB, used by the reference codec. */
export const GF_MUL = new Uint8Array(65536)

{
  let x = 1
  for (let i = 0; i < 255; i++) {
    GF_EXP[i] = x
    GF_LOG[x] = i
    x <<= 1
    if (x & 0x100) x ^= POLY
  }
  for (let i = 255; i < 512; i++) GF_EXP[i] = GF_EXP[i - 255]!
  for (let a = 1; a < 256; a++) {
    for (let b = 1; b < 256; b++) GF_MUL[(a << 8) | b] = GF_EXP[GF_LOG[a]! + GF_LOG[b]!]!
  }
}

export function gfMul(a: number, b: number): number {
  return GF_MUL[(a << 8) | b]!
}

export function gfInv(a: number): number {
  if (a === 0) throw new RangeError('0 has no inverse in GF(2^8)')
  return GF_EXP[255 - GF_LOG[a]!]!
}

/** A dense row-major matrix over GF(2^8). */
export interface GfMatrix {
  readonly rows: number
  readonly cols: number
  readonly data: Uint8Array
}

export function matrix(rows: number, cols: number): GfMatrix {
  return { rows, cols, data: new Uint8Array(rows * cols) }
}

/**
 * The systematic encoding matrix of an RS(k, m) code: k identity rows, then m Cauchy rows
 * a[i][j] = 1 / (i ^ j) for i in k..k+m-1, j in 0..k-1. Every k×k submatrix of it is
 * invertible, so any k of the n shards determine the data. Needs k + m <= 256.
 */
export function cauchyEncodingMatrix(k: number, m: number): GfMatrix {
  const out = matrix(k + m, k)
  for (let i = 0; i < k; i++) out.data[i * k + i] = 1
  for (let i = k; i < k + m; i++) {
    for (let j = 0; j < k; j++) out.data[i * k + j] = gfInv(i ^ j)
  }
  return out
}

/** Rows `which` of `a`, in that order. */
export function selectRows(a: GfMatrix, which: readonly number[]): GfMatrix {
  const out = matrix(which.length, a.cols)
  which.forEach((r, i) => {
    out.data.set(a.data.subarray(r * a.cols, (r + 1) * a.cols), i * a.cols)
  })
  return out
}

export function multiply(a: GfMatrix, b: GfMatrix): GfMatrix {
  if (a.cols !== b.rows)
    throw new RangeError(`cannot multiply ${a.rows}x${a.cols} by ${b.rows}x${b.cols}`)
  const out = matrix(a.rows, b.cols)
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < b.cols; j++) {
      let acc = 0
      for (let t = 0; t < a.cols; t++)
        acc ^= gfMul(a.data[i * a.cols + t]!, b.data[t * b.cols + j]!)
      out.data[i * b.cols + j] = acc
    }
  }
  return out
}

/** Inverse of a square matrix by Gauss–Jordan elimination; throws if it is singular. */
export function invert(a: GfMatrix): GfMatrix {
  const n = a.rows
  if (n !== a.cols) throw new RangeError('only square matrices have an inverse')
  const w = 2 * n
  const work = new Uint8Array(n * w)
  for (let i = 0; i < n; i++) {
    work.set(a.data.subarray(i * n, (i + 1) * n), i * w)
    work[i * w + n + i] = 1
  }
  for (let col = 0; col < n; col++) {
    let pivot = col
    while (pivot < n && work[pivot * w + col] === 0) pivot++
    if (pivot === n) throw new RangeError('matrix is singular')
    if (pivot !== col) {
      const tmp = work.slice(col * w, (col + 1) * w)
      work.copyWithin(col * w, pivot * w, (pivot + 1) * w)
      work.set(tmp, pivot * w)
    }
    const scale = gfInv(work[col * w + col]!)
    for (let j = 0; j < w; j++) work[col * w + j] = gfMul(work[col * w + j]!, scale)
    for (let r = 0; r < n; r++) {
      const f = work[r * w + col]!
      if (r === col || f === 0) continue
      for (let j = 0; j < w; j++) work[r * w + j]! ^= gfMul(f, work[col * w + j]!)
    }
  }
  const out = matrix(n, n)
  for (let i = 0; i < n; i++) out.data.set(work.subarray(i * w + n, (i + 1) * w), i * n)
  return out
}
