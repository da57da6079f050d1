import { GF_MUL } from './gf256.ts'
import type { Kernel } from './kernel.ts'

/**
 * The plain TypeScript kernel: one 256-byte row of the product table per coefficient, a
 * byte at a time. Slow (about 0.15 GB/s) and obviously right; the WASM kernel is tested
 * against it byte for byte.
 */
export const referenceKernel: Kernel = {
  name: 'reference',
  apply(plan, inputs, outputs, len) {
    const c = plan.coefficients
    for (let r = 0; r < c.rows; r++) {
      const out = outputs[r]!
      out.fill(0, 0, len)
      for (let i = 0; i < c.cols; i++) {
        const coef = c.data[r * c.cols + i]!
        if (coef === 0) continue
        const input = inputs[i]!
        if (coef === 1) {
          for (let p = 0; p < len; p++) out[p]! ^= input[p]!
          continue
        }
        const row = GF_MUL.subarray(coef << 8, (coef + 1) << 8)
        for (let p = 0; p < len; p++) out[p]! ^= row[input[p]!]!
      }
    }
  },
}
