// node bench/dist/meta-cold.bench.js [--smoke] — point lookups of a drive's metadata store when
// its blocks are not in memory (a large store, the page cache dropped: root only), by 16
// concurrent readers, as a node's GETs of objects nobody read lately make them. Side by side in
// one run: the baseline reads every lookup synchronously on the event loop (MetaStore with
// `slowReadMs: Infinity`, what the store did before), the candidate is the default, which moves
// lookups to the thread pool for a while once one was slow. Reported: lookups per second, and
// the event loop's delay (p99 and max), which is how long every other drive and RPC of the node
// waited. Median of 3 interleaved runs; prints a table and writes results/meta-cold.json.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { MetaStore } from '@tessera/node'
import type { VersionRecord } from '@tessera/protocol'
import { parseBench, smokeCommand } from './cli.ts'
import { machine, median, printTable, round, writeResults } from './measure.ts'
import { progressView } from './progress.ts'

const opts = parseBench<{ smoke?: boolean }>(
  smokeCommand(
    'bench:meta-cold',
    "Point lookups of a drive's metadata store with its blocks out of memory (root: drops the page cache), and the event loop's delay; writes results/meta-cold.json.",
  ),
)
const smoke = opts.smoke === true
const RECORDS = smoke ? 5_000 : 400_000
const LOOKUPS = smoke ? 200 : 4_000
const READERS = 16
const RUNS = smoke ? 1 : 3

/** A version record with 256 B of incompressible user metadata, so the store is ~150 MB. */
function record(i: number): VersionRecord {
  return {
    bucket: 'bench',
    key: `photos/${(i * 2654435761) % 1_000_003}/${i}.jpg`,
    versionId: 'null',
    modTime: 1000 + i,
    size: 3_000_000,
    etag: 'd41d8cd98f00b204e9800998ecf8427e',
    erasure: { k: 4, m: 2, blockSize: 1 << 20, distribution: [0, 1, 2, 3, 4, 5], index: 0 },
    parts: [{ number: 1, size: 3_000_000, etag: 'd41d8cd98f00b204e9800998ecf8427e' }],
    userMeta: { note: Buffer.from(randomish(i)).toString('hex') },
    dataDir: `${i}`.padStart(36, '0'),
    deleteMarker: false,
  }
}

/** 128 pseudo-random bytes from `i` (fast, repeatable). */
function randomish(i: number): Uint8Array {
  const out = new Uint8Array(128)
  let x = (i + 1) * 0x9e3779b1
  for (let j = 0; j < out.length; j++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[j] = x & 0xff
  }
  return out
}

function dropPageCache(): boolean {
  try {
    execFileSync('sh', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

interface Run {
  perSec: number
  loopP99Ms: number
  loopMaxMs: number
  async: number
}

async function measure(path: string, slowReadMs: number | undefined, seed: number): Promise<Run> {
  dropPageCache()
  const store = await MetaStore.open({
    path,
    ...(slowReadMs === undefined ? {} : { slowReadMs }),
  })
  const loop = monitorEventLoopDelay({ resolution: 1 })
  let next = 0
  let x = seed
  const pick = () => {
    x = (x * 1103515245 + 12345) % 2 ** 31
    return x % RECORDS
  }
  loop.enable()
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: READERS }, async () => {
      while (next++ < LOOKUPS) {
        // Each lookup starts from its own turn of the event loop, as a node's do (each from an
        // RPC read off a socket): a synchronous read from the disk then holds up everything else.
        await new Promise((resolve) => setImmediate(resolve))
        const r = record(pick())
        const v = await store.getVersion(r.bucket, r.key, 'null')
        if (v?.dataDir !== r.dataDir) throw new Error(`lookup of ${r.key} gave the wrong record`)
      }
    }),
  )
  const seconds = (performance.now() - t0) / 1000
  loop.disable()
  const stats = store.readStats
  await store.close()
  return {
    perSec: LOOKUPS / seconds,
    loopP99Ms: loop.percentile(99) / 1e6,
    loopMaxMs: loop.max / 1e6,
    async: stats.async,
  }
}

if (!dropPageCache()) {
  console.log('meta-cold: dropping the page cache needs root (and Linux); nothing measured')
  process.exit(0)
}
const root = mkdtempSync(join(tmpdir(), 'tessera-meta-cold-'))
const path = join(root, 'meta')
const baseline: Run[] = []
const candidate: Run[] = []
try {
  const build = await MetaStore.open({ path })
  const view = progressView('building the store', { total: RECORDS })
  const began = performance.now()
  for (let i = 0; i < RECORDS; i += 1000) {
    const n = Math.min(1000, RECORDS - i)
    await build.batch(
      Array.from({ length: n }, (_, j) => ({ type: 'putVersion' as const, record: record(i + j) })),
    )
    view.update({
      phase: 'prepare',
      ops: i + n,
      errors: 0,
      bytes: 0,
      elapsedMs: performance.now() - began,
      total: RECORDS,
    })
  }
  view.stop()
  await build.close()
  // Interleaved, so drift on a shared machine hits both sides alike.
  for (let r = 0; r < RUNS; r++) {
    baseline.push(await measure(path, Number.POSITIVE_INFINITY, 7 + r))
    candidate.push(await measure(path, undefined, 7 + r))
  }
} finally {
  rmSync(root, { recursive: true, force: true })
}

const med = (runs: Run[], f: (r: Run) => number) => median(runs.map(f))
const rows = [
  {
    case: 'cold lookups, 16 readers',
    perSec: round(
      med(candidate, (r) => r.perSec),
      0,
    ),
    baselinePerSec: round(
      med(baseline, (r) => r.perSec),
      0,
    ),
    vsBaseline: round(med(candidate, (r) => r.perSec) / med(baseline, (r) => r.perSec)),
    loopP99Ms: round(
      med(candidate, (r) => r.loopP99Ms),
      2,
    ),
    baselineLoopP99Ms: round(
      med(baseline, (r) => r.loopP99Ms),
      2,
    ),
    loopMaxMs: round(
      med(candidate, (r) => r.loopMaxMs),
      2,
    ),
    baselineLoopMaxMs: round(
      med(baseline, (r) => r.loopMaxMs),
      2,
    ),
    asyncLookups: round(
      med(candidate, (r) => r.async),
      0,
    ),
  },
]
printTable(rows, [
  'case',
  'perSec',
  'baselinePerSec',
  'vsBaseline',
  'loopP99Ms',
  'baselineLoopP99Ms',
  'loopMaxMs',
  'baselineLoopMaxMs',
  'asyncLookups',
])
const result = {
  bench: 'meta-cold',
  smoke,
  runs: RUNS,
  records: RECORDS,
  lookups: LOOKUPS,
  readers: READERS,
  machine: machine(),
  rows,
  baseline,
  candidate,
}
if (!smoke) writeResults('meta-cold', rows, result)
console.log(JSON.stringify(result))
