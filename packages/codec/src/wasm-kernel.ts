import { readFileSync } from 'node:fs'
import type { Kernel } from './kernel.ts'
import { KERNEL_GROUP, type Plan } from './plan.ts'

type Dot = (nIn: number, tbl: number, inBase: number, inStride: number, ...rest: number[]) => void

interface KernelExports {
  memory: WebAssembly.Memory
  heapBase(): number
  [dot: `dot${number}`]: Dot
}

const WASM_URL = new URL('../wasm/gf-kernel.wasm', import.meta.url)
const PAGE_BYTES = 65536
/** Kernel step: it reads and writes 32 bytes at a time, so regions are padded to this. */
const STEP_BYTES = 32

let module: WebAssembly.Module | undefined

function compiled(): WebAssembly.Module {
  // A few KiB: compiling synchronously once per thread costs well under a millisecond.
  module ??= new WebAssembly.Module(readFileSync(WASM_URL))
  return module
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to

/**
 * The WebAssembly SIMD kernel. One instance owns one linear memory; it copies the inputs in
 * (the one copy the budget allows), runs dot{G} per group of up to KERNEL_GROUP outputs, and
 * copies the outputs out. Not reentrant: one instance per thread.
 */
export class WasmKernel implements Kernel {
  readonly name = 'wasm' as const
  #x: KernelExports
  #dots: Dot[]
  #u8: Uint8Array
  #base: number
  #tablesOf: Plan | undefined

  constructor() {
    const instance = new WebAssembly.Instance(compiled(), {})
    this.#x = instance.exports as unknown as KernelExports
    this.#dots = Array.from({ length: KERNEL_GROUP }, (_, g) => this.#x[`dot${g + 1}`] as Dot)
    this.#base = this.#x.heapBase()
    this.#u8 = new Uint8Array(this.#x.memory.buffer)
  }

  /** Bytes of linear memory in use (for tests and metrics). */
  get memoryBytes(): number {
    return this.#x.memory.buffer.byteLength
  }

  #reserve(end: number): Uint8Array {
    const have = this.#x.memory.buffer.byteLength
    if (end > have) this.#x.memory.grow(Math.ceil((end - have) / PAGE_BYTES))
    // Views die when memory grows: make one again only when the buffer changed.
    if (this.#u8.buffer !== this.#x.memory.buffer) this.#u8 = new Uint8Array(this.#x.memory.buffer)
    return this.#u8
  }

  apply(
    plan: Plan,
    inputs: readonly Uint8Array[],
    outputs: readonly Uint8Array[],
    len: number,
  ): void {
    const nIn = plan.inputs.length
    const nOut = plan.outputs.length
    if (nOut === 0) return
    const stride = roundUp(Math.max(len, 1), STEP_BYTES)
    const tablesAt = this.#base
    const inAt = roundUp(tablesAt + plan.tables.length, 64)
    const outAt = inAt + nIn * stride
    const u8 = this.#reserve(outAt + nOut * stride)
    if (this.#tablesOf !== plan) {
      u8.set(plan.tables, tablesAt)
      this.#tablesOf = plan
    }
    for (let i = 0; i < nIn; i++) u8.set(inputs[i]!.subarray(0, len), inAt + i * stride)
    for (let g0 = 0; g0 < nOut; g0 += KERNEL_GROUP) {
      const g = Math.min(KERNEL_GROUP, nOut - g0)
      const outs: number[] = []
      for (let j = 0; j < g; j++) outs.push(outAt + (g0 + j) * stride)
      this.#dots[g - 1]!(nIn, tablesAt + g0 * nIn * 32, inAt, stride, ...outs, stride)
    }
    for (let r = 0; r < nOut; r++) {
      outputs[r]!.set(u8.subarray(outAt + r * stride, outAt + r * stride + len))
    }
  }
}
