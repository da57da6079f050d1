import type { Plan } from './plan.ts'

/**
 * Something that applies a plan: outputs[r] = XOR over i of C[r][i] · inputs[i], bytewise.
 * All inputs and outputs have the same length `len`.
 */
export interface Kernel {
  readonly name: 'wasm' | 'reference'
  apply(
    plan: Plan,
    inputs: readonly Uint8Array[],
    outputs: readonly Uint8Array[],
    len: number,
  ): void
}
