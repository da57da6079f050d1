// node bench/dist/commit.bench.js [--smoke] — durable small-record commits per second on one
// drive's metadata store, with 1 and 64 concurrent writers, side by side in one run with the
// baseline: every write its own `db.put(…, { sync: true })` on a raw ClassicLevel. The candidate
// is MetaStore.putVersion, whose concurrent writes share synced batches (group commit). Median
// of 5 runs; prints a table and writes results/commit.json. `--smoke` runs a few writes of each
// case and writes no result file.
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MetaStore } from '@tessera/node'
import type { VersionRecord } from '@tessera/protocol'
import { parseBench, smokeCommand } from './cli.ts'
import { machine, median, printTable, writeResults } from './measure.ts'

const opts = parseBench<{ smoke?: boolean }>(
  smokeCommand(
    'bench:commit',
    "Durable small-record commits per second on one drive's metadata store (group commit against one synced put per write); writes results/commit.json.",
  ),
)
const smoke = opts.smoke === true
const RUNS = smoke ? 1 : 5
const WARMUP_WRITES = smoke ? 2 : 20
/** Writes per writer per run, by number of writers. */
const CASES: { writers: number; perWriter: number }[] = [
  { writers: 1, perWriter: smoke ? 5 : 1000 },
  { writers: 64, perWriter: smoke ? 1 : 50 },
]
/** Bytes of the inline shard in each record: a 2 KiB object at RS 4+2. */
const INLINE_BYTES = 512

/** The part of classic-level's API the baseline uses. */
interface RawLevel {
  open(): Promise<void>
  put(key: Uint8Array, value: Uint8Array, options: { sync: boolean }): Promise<void>
  close(): Promise<void>
}
interface RawLevelClass {
  new (path: string, options: { keyEncoding: 'view'; valueEncoding: 'view' }): RawLevel
}
interface PackrClass {
  new (options: { useRecords: boolean }): { pack(value: unknown): Uint8Array }
}

// The baseline must run on the very LevelDB build (and store the very value bytes) that
// MetaStore uses, so classic-level and msgpackr are loaded from @tessera/node's dependencies.
const nodeRequire = createRequire(import.meta.resolve('@tessera/node'))
const { ClassicLevel } = nodeRequire('classic-level') as { ClassicLevel: RawLevelClass }
const { Packr } = nodeRequire('msgpackr') as { Packr: PackrClass }
const packr = new Packr({ useRecords: false })

function record(key: string, modTime: number): VersionRecord {
  return {
    bucket: 'bench',
    key,
    versionId: 'null',
    modTime,
    size: 4 * INLINE_BYTES,
    etag: 'd41d8cd98f00b204e9800998ecf8427e',
    contentType: 'application/octet-stream',
    erasure: { k: 4, m: 2, blockSize: 1 << 20, distribution: [0, 1, 2, 3, 4, 5], index: 0 },
    parts: [{ number: 1, size: 4 * INLINE_BYTES, etag: 'd41d8cd98f00b204e9800998ecf8427e' }],
    deleteMarker: false,
    inline: new Uint8Array(INLINE_BYTES).fill(0x5a),
  }
}

interface RunResult {
  perSec: number
  latenciesMs: number[]
}

/** `writers` concurrent loops of `perWriter` awaited writes each; commits/s and latencies. */
async function run(
  writers: number,
  perWriter: number,
  write: (writer: number, i: number) => Promise<void>,
): Promise<RunResult> {
  const latenciesMs: number[] = []
  const t0 = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; i < perWriter; i++) {
        const s = process.hrtime.bigint()
        await write(w, i)
        latenciesMs.push(Number(process.hrtime.bigint() - s) / 1e6)
      }
    }),
  )
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  return { perSec: (writers * perWriter) / seconds, latenciesMs }
}

interface Row {
  case: string
  writers: number
  commitsPerSec: number
  baselinePerSec: number
  vsBaseline: number
  /** Writes per synced batch in the candidate's runs. */
  writesPerSync: number
  /** Median latency of one durable write (ms), grouped; measured at 1 writer. */
  medianLatencyMs?: number
  /** Median latency of one durable write (ms), baseline; measured at 1 writer. */
  baselineMedianLatencyMs?: number
}

const round = (v: number, digits = 3): number => Math.round(v * 10 ** digits) / 10 ** digits

const root = mkdtempSync(join(tmpdir(), 'tessera-commit-bench-'))
const rows: Row[] = []
try {
  for (const { writers, perWriter } of CASES) {
    const raw = new ClassicLevel(join(root, `raw-${writers}`), {
      keyEncoding: 'view',
      valueEncoding: 'view',
    })
    await raw.open()
    const store = await MetaStore.open({ path: join(root, `meta-${writers}`) })
    let time = 1
    const baselineWrite = (tag: string) => async (w: number, i: number) => {
      const key = `obj/${tag}/${w}/${i}`
      await raw.put(Buffer.from(`V/bench/${key}`), packr.pack(record(key, time++)), { sync: true })
    }
    const groupedWrite = (tag: string) => async (w: number, i: number) => {
      await store.putVersion(record(`obj/${tag}/${w}/${i}`, time++))
    }
    await run(1, WARMUP_WRITES, baselineWrite('warm'))
    await run(1, WARMUP_WRITES, groupedWrite('warm'))

    const baseline: RunResult[] = []
    const grouped: RunResult[] = []
    const before = store.commitStats
    // Interleaved, so drift on a shared machine hits both sides alike.
    for (let r = 0; r < RUNS; r++) {
      baseline.push(await run(writers, perWriter, baselineWrite(`r${r}`)))
      grouped.push(await run(writers, perWriter, groupedWrite(`r${r}`)))
    }
    const after = store.commitStats
    await store.close()
    await raw.close()

    const commitsPerSec = median(grouped.map((g) => g.perSec))
    const baselinePerSec = median(baseline.map((b) => b.perSec))
    const row: Row = {
      case: `commit-${writers}`,
      writers,
      commitsPerSec: Math.round(commitsPerSec),
      baselinePerSec: Math.round(baselinePerSec),
      vsBaseline: round(commitsPerSec / baselinePerSec),
      writesPerSync: round((after.writes - before.writes) / (after.batches - before.batches), 2),
    }
    if (writers === 1) {
      row.medianLatencyMs = round(median(grouped.flatMap((g) => g.latenciesMs)))
      row.baselineMedianLatencyMs = round(median(baseline.flatMap((b) => b.latenciesMs)))
    }
    rows.push(row)
  }
} finally {
  rmSync(root, { recursive: true, force: true })
}

printTable(rows as unknown as Record<string, unknown>[], [
  'case',
  'writers',
  'commitsPerSec',
  'baselinePerSec',
  'vsBaseline',
  'writesPerSync',
  'medianLatencyMs',
  'baselineMedianLatencyMs',
])
const result = {
  bench: 'commit',
  smoke,
  runs: RUNS,
  inlineBytes: INLINE_BYTES,
  dir: tmpdir(),
  machine: machine(),
  rows,
}
if (!smoke) {
  writeResults('commit', rows, result)
}
console.log(JSON.stringify(result))
