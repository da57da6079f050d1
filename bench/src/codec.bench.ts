// pnpm bench:codec — Reed–Solomon throughput of @tessera/codec, side by side in one run with
// the TypeScript reference and with Intel ISA-L (best path and 128-bit path), plus chunk
// hashing and the worker pool's scaling. Prints a table and writes results/codec.json.
// `--smoke` runs a few iterations of everything (CI), and writes no result file.
import { createHash } from 'node:crypto'
import { availableParallelism } from 'node:os'
import {
  type BlockCodec,
  CodecPool,
  DEFAULT_BLOCK_SIZE_BYTES,
  InlineCodec,
  loadChunkHasher,
  ReedSolomon,
} from '@tessera/codec'
import { parseBench, smokeCommand } from './cli.ts'
import { prepareIsal } from './isal.ts'
import { gbps, machine, printTable, writeResults } from './measure.ts'

const opts = parseBench<{ smoke?: boolean }>(
  smokeCommand(
    'bench:codec',
    "Reed–Solomon throughput of @tessera/codec beside the TypeScript reference and ISA-L, chunk hashing, and the worker pool's scaling; writes results/codec.json.",
  ),
)
const smoke = opts.smoke === true
const BLOCK = DEFAULT_BLOCK_SIZE_BYTES
const CODES: [number, number][] = [
  [4, 2],
  [8, 4],
  [12, 4],
  [16, 4],
]
const ITER = smoke ? 4 : 400
const REF_ITER = smoke ? 1 : 4
const RUNS = smoke ? 1 : 5

interface Row {
  case: string
  k: number | null
  m: number | null
  op: string
  gbps: number
  vsIsal: number | null
  vsIsal128: number | null
  vsReference?: number
  vsSingleThread?: number
  vsPoolOne?: number
}

const ratio = (a: number, b: number | null | undefined): number | null =>
  b ? Math.round((a / b) * 1000) / 1000 : null
const round = (v: number): number => Math.round(v * 1000) / 1000

function randomShards(count: number, len: number): Uint8Array[] {
  return Array.from({ length: count }, () => {
    const s = new Uint8Array(len)
    for (let i = 0; i < len; i += 4096) s.set(createHash('sha256').update(String(i)).digest(), i)
    return s
  })
}

const isal = prepareIsal({ install: true, log: (l) => console.error(`  [isa-l] ${l}`) })
if (!isal.available) console.log(`ISA-L comparison skipped: ${isal.note}`)

const rows: Row[] = []
for (const [k, m] of CODES) {
  const len = Math.ceil(BLOCK / k)
  const bytes = len * k
  const data = randomShards(k, len)
  const wasm = new ReedSolomon({ k, m })
  const ref = new ReedSolomon({ k, m, kernel: 'reference' })
  const parity = wasm.encode(data)
  const lose = Math.min(m, k)
  const wanted = Array.from({ length: lose }, (_, i) => i)
  const degraded = [...data, ...parity].map((s, i) => (i < lose ? undefined : s))
  const into = randomShards(lose, len)

  const encode = await gbps(() => wasm.encode(data, parity), bytes, ITER, RUNS)
  const encodeRef = await gbps(() => ref.encode(data, parity), bytes, REF_ITER, RUNS)
  const recon = await gbps(() => wasm.rebuild(degraded, wanted, into), bytes, ITER, RUNS)
  const reconRef = await gbps(() => ref.rebuild(degraded, wanted, into), bytes, REF_ITER, RUNS)
  const is = isal.available ? isal.run(k, m, BLOCK, smoke ? 4 : 400) : undefined

  rows.push(
    {
      case: `rs-${k}-${m}-encode`,
      k,
      m,
      op: 'encode',
      gbps: round(encode),
      vsIsal: ratio(encode, is?.encode.best),
      vsIsal128: ratio(encode, is?.encode.sse),
      vsReference: ratio(encode, encodeRef)!,
    },
    {
      case: `rs-${k}-${m}-reconstruct`,
      k,
      m,
      op: 'reconstruct',
      gbps: round(recon),
      vsIsal: ratio(recon, is?.reconstruct.best),
      vsIsal128: ratio(recon, is?.reconstruct.sse),
      vsReference: ratio(recon, reconRef)!,
    },
    {
      case: `rs-${k}-${m}-encode-reference`,
      k,
      m,
      op: 'encode-reference',
      gbps: round(encodeRef),
      vsIsal: ratio(encodeRef, is?.encode.best),
      vsIsal128: ratio(encodeRef, is?.encode.sse),
    },
    {
      case: `rs-${k}-${m}-reconstruct-reference`,
      k,
      m,
      op: 'reconstruct-reference',
      gbps: round(reconRef),
      vsIsal: ratio(reconRef, is?.reconstruct.best),
      vsIsal128: ratio(reconRef, is?.reconstruct.sse),
    },
  )
  if (is) {
    rows.push(
      {
        case: `rs-${k}-${m}-encode-isal`,
        k,
        m,
        op: 'encode-isal',
        gbps: round(is.encode.best),
        vsIsal: 1,
        vsIsal128: ratio(is.encode.best, is.encode.sse),
      },
      {
        case: `rs-${k}-${m}-encode-isal128`,
        k,
        m,
        op: 'encode-isal128',
        gbps: round(is.encode.sse ?? 0),
        vsIsal: ratio(is.encode.sse ?? 0, is.encode.best),
        vsIsal128: 1,
      },
    )
  }
}

// Chunk hashing as the streaming API does it: xxh64 of each of the n chunks of a block.
{
  const h64 = await loadChunkHasher()
  const [k, m] = [8, 4]
  const chunks = randomShards(k + m, Math.ceil(BLOCK / k))
  const bytes = chunks.reduce((a, c) => a + c.length, 0)
  const xx = await gbps(
    () => {
      for (const c of chunks) h64(c)
    },
    bytes,
    ITER,
    RUNS,
  )
  const md5 = await gbps(
    () => {
      for (const c of chunks) createHash('md5').update(c).digest()
    },
    bytes,
    smoke ? 2 : 40,
    RUNS,
  )
  rows.push({
    case: 'hash-xxh64',
    k: null,
    m: null,
    op: 'hash-xxh64',
    gbps: round(xx),
    vsIsal: null,
    vsIsal128: null,
  })
  rows.push({
    case: 'hash-md5-node',
    k: null,
    m: null,
    op: 'hash-md5',
    gbps: round(md5),
    vsIsal: null,
    vsIsal128: null,
  })
}

// The worker pool with every core against the same encode task (RS 8+4 with chunk hashes) run
// inline on one thread, and against a pool of one worker. Tasks are kept in flight on every
// worker (8 per worker: a gateway with several PUTs, two blocks each, in flight); stripes and
// parity buffers travel by transfer and are reused.
{
  const [k, m] = [8, 4]
  const threads = availableParallelism()
  const inline = await InlineCodec.create()
  const tasks = smoke ? 8 : 512
  const oneThread = await gbps(await encodeLoop(inline, 1), BLOCK, tasks, RUNS)
  const onePool = new CodecPool({ threads: 1 })
  const poolOne = await gbps(await encodeLoop(onePool, 8), BLOCK * tasks, 1, RUNS + 2)
  await onePool.close()
  const pool = new CodecPool({ threads })
  const poolAll = await gbps(await encodeLoop(pool, threads * 8), BLOCK * tasks, 1, RUNS + 2)
  await pool.close()
  rows.push({
    case: 'rs-8-4-encode-hash-1-thread',
    k,
    m,
    op: 'encode+hash-inline',
    gbps: round(oneThread),
    vsIsal: null,
    vsIsal128: null,
  })
  rows.push({
    case: 'rs-8-4-encode-hash-pool-1',
    k,
    m,
    op: 'encode+hash-pool-1',
    gbps: round(poolOne),
    vsIsal: null,
    vsIsal128: null,
    vsSingleThread: ratio(poolOne, oneThread)!,
  })
  rows.push({
    case: `rs-8-4-encode-hash-pool-${threads}`,
    k,
    m,
    op: `encode+hash-pool-${threads}`,
    gbps: round(poolAll),
    vsIsal: null,
    vsIsal128: null,
    vsSingleThread: ratio(poolAll, oneThread)!,
    vsPoolOne: ratio(poolAll, poolOne)!,
  })

  /** A function that encodes `tasks` blocks (or one, for lanes = 1) with `lanes` in flight. */
  async function encodeLoop(codec: BlockCodec, lanes: number): Promise<() => Promise<void>> {
    const stripes = Array.from({ length: lanes }, () => new ArrayBuffer(BLOCK))
    const parities = stripes.map(() => new ArrayBuffer(BLOCK))
    const count = lanes === 1 ? 1 : tasks
    return async () => {
      let next = 0
      const lane = async (slot: number): Promise<void> => {
        while (next < count) {
          next++
          const stripe = stripes[slot]!
          const out = await codec.encode({ k, m, stripe, length: BLOCK, parity: parities[slot] })
          stripes[slot] = out.stripe
          parities[slot] = out.parity
        }
      }
      await Promise.all(stripes.map((_, slot) => lane(slot)))
    }
  }
}

printTable(rows as unknown as Record<string, unknown>[], [
  'case',
  'gbps',
  'vsIsal',
  'vsIsal128',
  'vsReference',
  'vsSingleThread',
  'vsPoolOne',
])
const result = {
  bench: 'codec',
  smoke,
  blockBytes: BLOCK,
  machine: machine(),
  isal: isal.available ? 'libisal (Debian)' : isal.note,
  rows,
}
if (!smoke) {
  writeResults('codec', rows, result)
}
console.log(JSON.stringify(result))
