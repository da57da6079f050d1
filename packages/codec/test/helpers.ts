/** A small seeded PRNG (xorshift32) so that a failing property test can be replayed. */
export class Rng {
  #s: number
  readonly seed: number

  constructor(seed = Number(process.env.TESSERA_TEST_SEED ?? Date.now() % 0xffffffff)) {
    this.seed = seed >>> 0 || 1
    this.#s = this.seed
  }

  next(): number {
    let x = this.#s
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#s = x >>> 0
    return this.#s
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + (this.next() % (hi - lo + 1))
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff
    return out
  }

  /** `count` distinct integers from [0, n), in random order. */
  pick(n: number, count: number): number[] {
    const all = Array.from({ length: n }, (_, i) => i)
    for (let i = n - 1; i > 0; i--) {
      const j = this.next() % (i + 1)
      ;[all[i], all[j]] = [all[j]!, all[i]!]
    }
    return all.slice(0, count)
  }
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}
