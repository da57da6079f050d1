/* Design notes
 *
 * Encoding and reconstruction are the same operation: outputs = C × inputs, where C is an
 * r×k matrix over GF(2^8) and every input and output is a shard-long byte vector.
 * - encode: inputs are the k data shards, C is the m parity rows of the encoding matrix.
 * - reconstruct: inputs are k surviving shards (data shards first, as they are free to
 *   read and leave parity for the rebuild), and for each missing shard s the row of C is
 *   E[s] × S⁻¹, where S holds the encoding rows of the chosen inputs. For a missing data
 *   shard E[s] is a unit row, so its row of C is simply row s of S⁻¹.
 * A Plan holds C and the nibble tables the WASM kernel reads. Plans for reconstruction
 * depend only on (inputs, outputs), so they are cached per erasure pattern in a small LRU.
 */
import { CodecError } from './errors.ts'
import {
  cauchyEncodingMatrix,
  type GfMatrix,
  gfMul,
  invert,
  matrix,
  multiply,
  selectRows,
} from './gf256.ts'

/** The most shards (k + m) a code may have: GF(2^8) has 256 elements. */
export const MAX_SHARDS = 256
/** How many reconstruction plans one code keeps (each is at most r·k·32 bytes of tables). */
export const PLAN_CACHE_ENTRIES = 64
/** Outputs the kernel computes in one pass over the inputs (see scripts/build-wasm.mjs). */
export const KERNEL_GROUP = 8

export interface Plan {
  /** Shard indices read, in the order the matrix columns expect them. */
  readonly inputs: readonly number[]
  /** Shard indices produced, in row order. */
  readonly outputs: readonly number[]
  /** outputs.length × inputs.length coefficients. */
  readonly coefficients: GfMatrix
  /**
   * Kernel tables: outputs split in groups of KERNEL_GROUP; for each group, for each input,
   * for each output of the group, 16 bytes c·x then 16 bytes c·(x << 4), x = 0..15.
   */
  readonly tables: Uint8Array
}

export function checkParameters(k: number, m: number): void {
  const problems: string[] = []
  if (!Number.isInteger(k) || k < 1) problems.push(`k must be an integer >= 1 (got ${k})`)
  if (!Number.isInteger(m) || m < 0) problems.push(`m must be an integer >= 0 (got ${m})`)
  if (problems.length === 0 && k + m > MAX_SHARDS) {
    problems.push(`k + m must be at most ${MAX_SHARDS} (got ${k} + ${m} = ${k + m})`)
  }
  if (problems.length > 0) throw CodecError.INVALID_PARAMETERS(problems.join('; '))
}

function buildTables(c: GfMatrix): Uint8Array {
  const rows = c.rows
  const cols = c.cols
  const tables = new Uint8Array(rows * cols * 32)
  let at = 0
  for (let g0 = 0; g0 < rows; g0 += KERNEL_GROUP) {
    const g1 = Math.min(rows, g0 + KERNEL_GROUP)
    for (let i = 0; i < cols; i++) {
      for (let j = g0; j < g1; j++) {
        const coef = c.data[j * cols + i]!
        for (let x = 0; x < 16; x++) {
          tables[at + x] = gfMul(coef, x)
          tables[at + 16 + x] = gfMul(coef, x << 4)
        }
        at += 32
      }
    }
  }
  return tables
}

function makePlan(inputs: number[], outputs: number[], coefficients: GfMatrix): Plan {
  return { inputs, outputs, coefficients, tables: buildTables(coefficients) }
}

/** The plans of one RS(k, m) code: the encode plan, and reconstruction plans on demand. */
export class Planner {
  readonly k: number
  readonly m: number
  readonly encoding: GfMatrix
  readonly encodePlan: Plan
  #cache = new Map<string, Plan>()

  constructor(k: number, m: number) {
    checkParameters(k, m)
    this.k = k
    this.m = m
    this.encoding = cauchyEncodingMatrix(k, m)
    const dataRows = Array.from({ length: k }, (_, i) => i)
    const parityRows = Array.from({ length: m }, (_, i) => k + i)
    this.encodePlan = makePlan(dataRows, parityRows, selectRows(this.encoding, parityRows))
  }

  /**
   * The plan that rebuilds `wanted` from the shards marked present. Uses the first k present
   * shards in index order (data before parity). Throws TOO_FEW_SHARDS below k.
   */
  reconstructPlan(present: readonly boolean[], wanted: readonly number[]): Plan {
    const inputs: number[] = []
    for (let i = 0; i < present.length && inputs.length < this.k; i++)
      if (present[i]) inputs.push(i)
    if (inputs.length < this.k) throw CodecError.TOO_FEW_SHARDS(inputs.length, this.k)
    const key = `${inputs.join(',')}>${wanted.join(',')}`
    const hit = this.#cache.get(key)
    if (hit !== undefined) {
      // Refresh its place in the LRU order.
      this.#cache.delete(key)
      this.#cache.set(key, hit)
      return hit
    }
    const inverse = invert(selectRows(this.encoding, inputs))
    const rows = matrix(wanted.length, this.k)
    wanted.forEach((s, r) => {
      const row =
        s < this.k ? selectRows(inverse, [s]) : multiply(selectRows(this.encoding, [s]), inverse)
      rows.data.set(row.data, r * this.k)
    })
    const plan = makePlan(inputs, [...wanted], rows)
    if (this.#cache.size >= PLAN_CACHE_ENTRIES) {
      const oldest = this.#cache.keys().next().value
      if (oldest !== undefined) this.#cache.delete(oldest)
    }
    this.#cache.set(key, plan)
    return plan
  }

  /** Number of cached reconstruction plans (for tests and metrics). */
  get cachedPlans(): number {
    return this.#cache.size
  }
}
