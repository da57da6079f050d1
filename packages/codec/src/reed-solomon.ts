import { CodecError } from './errors.ts'
import type { Kernel } from './kernel.ts'
import { Planner } from './plan.ts'
import { referenceKernel } from './reference.ts'
import { WasmKernel } from './wasm-kernel.ts'

export interface ReedSolomonInit {
  /** Data shards, at least 1. */
  k: number
  /** Parity shards, at least 0; k + m <= 256. */
  m: number
  /** 'wasm' (default) runs the SIMD kernel; 'reference' the plain TypeScript one, for tests. */
  kernel?: 'wasm' | 'reference'
}

let threadKernel: WasmKernel | undefined

/**
 * A systematic Reed–Solomon code over GF(2^8): k data shards, m parity shards, and any k of
 * the n = k + m shards rebuild the others. Synchronous and CPU-bound: on a server, run it
 * through {@link CodecPool} so the event loop stays free.
 */
export class ReedSolomon {
  readonly k: number
  readonly m: number
  readonly n: number
  readonly planner: Planner
  readonly kernel: Kernel

  constructor(init: ReedSolomonInit) {
    this.planner = new Planner(init.k, init.m)
    this.k = init.k
    this.m = init.m
    this.n = init.k + init.m
    if (init.kernel === 'reference') this.kernel = referenceKernel
    else {
      threadKernel ??= new WasmKernel()
      this.kernel = threadKernel
    }
  }

  /**
   * Computes the m parity shards of k equal-length data shards. Writes into `parity` when
   * given (m arrays at least as long as a data shard), else allocates it.
   */
  encode(data: readonly Uint8Array[], parity?: readonly Uint8Array[]): Uint8Array[] {
    if (data.length !== this.k) {
      throw CodecError.INVALID_PARAMETERS(`encode needs ${this.k} data shards, got ${data.length}`)
    }
    const len = sameLength(data)
    const out = parity ? [...parity] : Array.from({ length: this.m }, () => new Uint8Array(len))
    checkOutputs(out, this.m, len)
    this.kernel.apply(this.planner.encodePlan, data, out, len)
    return out
  }

  /**
   * Rebuilds every missing shard. `shards` has n entries, `undefined` (or null) where a shard
   * is lost; the result has all n, the present ones as given and the missing ones new.
   */
  reconstruct(shards: readonly (Uint8Array | null | undefined)[]): Uint8Array[] {
    const missing = shards.flatMap((s, i) => (s == null ? [i] : []))
    const rebuilt = this.rebuild(shards, missing)
    let r = 0
    return shards.map((s) => s ?? rebuilt[r++]!)
  }

  /**
   * Rebuilds only the shards listed in `wanted` (each must be missing from `shards`) and
   * returns them in that order. A GET asks only for the data shards it lacks. Writes into
   * `into` (one buffer per wanted shard, each at least a shard long) when given.
   */
  rebuild(
    shards: readonly (Uint8Array | null | undefined)[],
    wanted: readonly number[],
    into?: readonly Uint8Array[],
  ): Uint8Array[] {
    if (shards.length !== this.n) {
      throw CodecError.INVALID_PARAMETERS(`reconstruct needs ${this.n} slots, got ${shards.length}`)
    }
    const present = shards.map((s) => s != null)
    for (const i of wanted) {
      if (!Number.isInteger(i) || i < 0 || i >= this.n) {
        throw CodecError.INVALID_PARAMETERS(`shard index ${i} is outside 0..${this.n - 1}`)
      }
      if (present[i])
        throw CodecError.INVALID_PARAMETERS(
          `shard ${i} is present; only missing shards are rebuilt`,
        )
    }
    const have = shards.filter((s): s is Uint8Array => s != null)
    if (have.length < this.k) throw CodecError.TOO_FEW_SHARDS(have.length, this.k)
    const len = sameLength(have)
    if (wanted.length === 0) return []
    const plan = this.planner.reconstructPlan(present, wanted)
    const outputs = into ? [...into] : wanted.map(() => new Uint8Array(len))
    checkOutputs(outputs, wanted.length, len)
    this.kernel.apply(
      plan,
      plan.inputs.map((i) => shards[i]!),
      outputs,
      len,
    )
    return outputs
  }
}

function checkOutputs(outputs: readonly Uint8Array[], count: number, len: number): void {
  if (outputs.length !== count) {
    throw CodecError.INVALID_PARAMETERS(`${count} output buffer(s) needed, got ${outputs.length}`)
  }
  for (const [i, p] of outputs.entries()) {
    if (p.length < len) {
      throw CodecError.SHARD_SIZE_MISMATCH(
        `output buffer ${i} holds ${p.length} bytes, the shards are ${len} bytes long`,
      )
    }
  }
}

function sameLength(shards: readonly Uint8Array[]): number {
  const len = shards[0]?.length ?? 0
  for (const [i, s] of shards.entries()) {
    if (s.length !== len) {
      throw CodecError.SHARD_SIZE_MISMATCH(
        `all shards must have the same length: shard ${i} has ${s.length} bytes, the first has ${len}`,
      )
    }
  }
  return len
}
