import t from 'tap'
import { isCodecError, MAX_SHARDS, ReedSolomon } from '../src/index.ts'
import { equalBytes, Rng } from './helpers.ts'

const rng = new Rng()
t.comment(`seed ${rng.seed} (set TESSERA_TEST_SEED to replay)`)

const SIZES = [0, 1, 7, 33, 1023, 64 * 1024 + 3]

/** Encodes random data with both kernels and decodes random erasures; returns what went wrong. */
function check(k: number, m: number, len: number, patterns: number): string | undefined {
  const wasm = new ReedSolomon({ k, m })
  const ref = new ReedSolomon({ k, m, kernel: 'reference' })
  const data = Array.from({ length: k }, () => rng.bytes(len))
  const pw = wasm.encode(data)
  const pr = ref.encode(data)
  if (!pw.every((p, i) => equalBytes(p, pr[i]!))) {
    return `RS(${k},${m}) len ${len}: wasm parity differs from the reference`
  }
  const all = [...data, ...pw]
  for (let p = 0; p < patterns; p++) {
    const lose = rng.pick(k + m, rng.int(0, m))
    const shards: (Uint8Array | undefined)[] = [...all]
    for (const i of lose) shards[i] = undefined
    const back = wasm.reconstruct(shards)
    const backRef = ref.reconstruct(shards)
    const ok = back.every((s, i) => equalBytes(s, all[i]!) && equalBytes(backRef[i]!, all[i]!))
    if (!ok) return `RS(${k},${m}) len ${len}: losing [${lose}] did not restore the exact bytes`
  }
  return undefined
}

const agree = (k: number, m: number, len: number, patterns: number) =>
  [
    check(k, m, len, patterns),
    undefined,
    `RS(${k},${m}) len ${len}: wasm == reference; ${patterns} erasure patterns restored`,
  ] as const

t.test(
  'random codes, random erasures: wasm agrees with the reference and decodes exactly',
  async (t) => {
    for (let round = 0; round < 24; round++) {
      const k = rng.int(1, 20)
      const m = rng.int(0, 8)
      const len = SIZES[round % SIZES.length]!
      t.equal(...agree(k, m, len, 6))
    }
  },
)

t.test('extreme codes', async (t) => {
  t.equal(...agree(1, 1, 64 * 1024 + 3, 4))
  t.equal(...agree(1, 0, 5, 1))
  t.equal(...agree(16, 16, 64 * 1024 + 3, 4))
  t.equal(...agree(128, 128, 1027, 3))
  t.equal(...agree(255, 1, 97, 3))
  t.equal(...agree(1, 255, 97, 3))
})

t.test('shard sizes 0, 1, odd and 64 KiB + 3 for a common code', async (t) => {
  for (const len of SIZES) t.equal(...agree(8, 4, len, 8))
})

t.test('decode matrices are cached per erasure pattern', async (t) => {
  const rs = new ReedSolomon({ k: 4, m: 2 })
  const data = Array.from({ length: 4 }, () => rng.bytes(100))
  const all = [...data, ...rs.encode(data)]
  const lose = (a: number, b: number) => all.map((s, i) => (i === a || i === b ? undefined : s))
  rs.reconstruct(lose(0, 1))
  rs.reconstruct(lose(0, 1))
  t.equal(rs.planner.cachedPlans, 1, 'the same pattern reuses its plan')
  rs.reconstruct(lose(2, 5))
  t.equal(rs.planner.cachedPlans, 2, 'a new pattern adds one')
})

t.test('rebuild returns only the wanted shards', async (t) => {
  const rs = new ReedSolomon({ k: 3, m: 2 })
  const data = Array.from({ length: 3 }, () => rng.bytes(64))
  const all = [...data, ...rs.encode(data)]
  const [d1] = rs.rebuild([all[0], undefined, all[2], undefined, all[4]], [1])
  t.ok(d1 && equalBytes(d1, all[1]!))
})

t.test('bad input gets typed errors with stable codes', async (t) => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn()
    } catch (err) {
      return isCodecError(err) ? err.code : `not a codec error: ${err}`
    }
    return undefined
  }
  t.equal(
    code(() => new ReedSolomon({ k: 0, m: 2 })),
    'INVALID_PARAMETERS',
  )
  t.equal(
    code(() => new ReedSolomon({ k: 2, m: -1 })),
    'INVALID_PARAMETERS',
  )
  t.equal(
    code(() => new ReedSolomon({ k: 1.5, m: 1 })),
    'INVALID_PARAMETERS',
  )
  t.equal(
    code(() => new ReedSolomon({ k: 200, m: MAX_SHARDS - 199 })),
    'INVALID_PARAMETERS',
  )
  t.equal(
    code(() => new ReedSolomon({ k: 200, m: MAX_SHARDS - 200 })),
    undefined,
  )
  const rs = new ReedSolomon({ k: 2, m: 1 })
  t.equal(
    code(() => rs.encode([new Uint8Array(4), new Uint8Array(5)])),
    'SHARD_SIZE_MISMATCH',
  )
  t.equal(
    code(() => rs.encode([new Uint8Array(4)])),
    'INVALID_PARAMETERS',
  )
  t.equal(
    code(() => rs.encode([new Uint8Array(4), new Uint8Array(4)], [new Uint8Array(3)])),
    'SHARD_SIZE_MISMATCH',
  )
  t.equal(
    code(() => rs.reconstruct([new Uint8Array(4), undefined, undefined])),
    'TOO_FEW_SHARDS',
  )
  t.equal(
    code(() => rs.reconstruct([new Uint8Array(4), new Uint8Array(5), undefined])),
    'SHARD_SIZE_MISMATCH',
  )
  t.equal(
    code(() => rs.rebuild([new Uint8Array(4), new Uint8Array(4), undefined], [0])),
    'INVALID_PARAMETERS',
  )
  t.match(
    (() => {
      try {
        new ReedSolomon({ k: 0, m: 300 })
      } catch (err) {
        return (err as Error).message
      }
    })(),
    /k must be an integer >= 1/,
    'the message says what is wrong',
  )
})
