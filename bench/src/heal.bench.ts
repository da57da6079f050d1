// pnpm bench:heal — how fast a replaced drive is rebuilt, against how fast the same data was
// written, in one run on one cluster: a local 4-node RS(2,2) cluster with one gateway (real
// tessera-node and tessera-gateway processes on loopback, started by startLocalCluster).
//
// Each repetition writes N GiB of 8 MiB objects through the gateway (PUT, concurrency 8, the
// same keys every time: the data is rewritten, the disk holds one copy) and times it; then stops
// one node, wipes its drive folder, starts it again and times the full heal the node runs on the
// drive it finds empty, from the node's own HealStatus: startedAt to the end of the pass
// (lastCycleAt), once done = total. Every repetition wipes the next node's drive.
//
// Reported: write MB/s (object bytes, MB = 1e6 B), heal MB/s (object bytes made whole again:
// every object has one shard on the wiped drive, so a full heal rebuilds 1/n of the stored bytes
// while reading k shards, the object's size, for each), the shard bytes written per second, and
// heal/write (target ≥ 0.40); medians over the repetitions. Prints a table and writes
// results/heal.json (results/heal.quick.json with --quick, what CI runs: 64 MiB, once).
// Options: --gib <n> (default 1), --repeats <n> (default 3, quick 1), --concurrency <n>.

import { mkdtempSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type DriveHealState,
  generateIdentity,
  HealStatus,
  mapHash,
  PeerPool,
  PROTOCOL_VERSION,
} from '@tessera/protocol'
import { type LocalCluster, startLocalCluster } from '@tessera/server'
import cliProgress from 'cli-progress'
import { benchCommand, onInterrupt, parseBench, positive } from './cli.ts'
import { machine, median, printTable, round, writeResults } from './measure.ts'
import { createBucket, runLoad, type Target } from './s3-load.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

const opts = parseBench<{ quick?: boolean; gib?: number; repeats?: number; concurrency?: number }>(
  benchCommand(
    'bench:heal',
    'How fast a wiped drive is rebuilt against how fast the same data was written, on a local ' +
      '4-node RS(2,2) cluster; writes results/heal.json.',
  )
    .option(
      '--quick',
      "CI's form: 64 MiB, once (also BENCH_QUICK=1); writes results/heal.quick.json",
    )
    .option(
      '--gib <n>',
      'data written per repetition, in GiB (default 1)',
      positive('--gib', false),
    )
    .option(
      '--repeats <n>',
      'repetitions, each wiping the next node (default 3)',
      positive('--repeats'),
    )
    .option(
      '--concurrency <n>',
      'PUTs in flight while writing (default 8)',
      positive('--concurrency'),
    ),
)
const quick = opts.quick === true || process.env.BENCH_QUICK === '1'
const OBJECT_BYTES = 8 * MiB
const DATA_BYTES = quick ? 64 * MiB : Math.round((opts.gib ?? 1) * GiB)
const OBJECTS = Math.max(1, Math.round(DATA_BYTES / OBJECT_BYTES))
const REPEATS = opts.repeats ?? (quick ? 1 : 3)
const CONCURRENCY = opts.concurrency ?? 8
const TARGET_RATIO = 0.4
const CLUSTER = {
  nodes: 4,
  drivesPerNode: 1,
  data: 2,
  parity: 2,
  gateways: 1,
  blockSize: MiB,
  inlineBelow: 128 * 1024,
} as const
const BUCKET = 'heal-bench'
/** How long a full heal may take before the run is given up. */
const HEAL_TIMEOUT_MS = 30 * 60_000

interface Run {
  repeat: number
  node: string
  objects: number
  objectBytes: number
  writeSeconds: number
  writeMBps: number
  writeErrors: number
  /** The node's full heal, startedAt → end of the pass. */
  healSeconds: number
  /** From the node's start (listening) to the end of the heal: includes the start delay. */
  wallSeconds: number
  healMBps: number
  shardBytes: number
  shardMBps: number
  healedVersions: number
  failed: number
  ratio: number
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}

/** A progress display: a bar on a terminal, else a line every two seconds. */
function progressBar(
  label: string,
  unit: string,
): {
  update(done: number, total: number, extra?: string): void
  stop(): void
} {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `  ${label} {bar} {value}/{total} ${unit} {extra} {duration}s`,
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    )
    bar.start(1, 0, { extra: '' })
    return {
      update: (done, total, extra = '') => {
        bar.setTotal(Math.max(1, total))
        bar.update(done, { extra })
      },
      stop: () => bar.stop(),
    }
  }
  let last = 0
  return {
    update: (done, total, extra = '') => {
      if (Date.now() - last < 2000) return
      last = Date.now()
      progress(`  ${label} ${done}/${total} ${unit} ${extra}`)
    },
    stop: () => {},
  }
}

async function healState(pool: PeerPool, cluster: LocalCluster, id: string) {
  const n = cluster.node(id)
  const r = await pool.call(
    { id: n.publicKey, address: n.address },
    HealStatus,
    {},
    { timeoutMs: 5000 },
  )
  return r.drives[0]!
}

/** Stops node `id`, wipes its drive, starts it, and waits for its full heal to end. */
async function wipeAndHeal(
  cluster: LocalCluster,
  pool: PeerPool,
  id: string,
): Promise<{ state: DriveHealState; wallSeconds: number }> {
  const node = cluster.node(id)
  await cluster.stop(id)
  for (const d of node.drives) await rm(d, { recursive: true, force: true })
  const t0 = Date.now()
  await cluster.start(id)
  const bar = progressBar(`heal ${id}`, 'versions')
  const deadline = Date.now() + HEAL_TIMEOUT_MS
  try {
    for (;;) {
      const s = await healState(pool, cluster, id).catch(() => undefined)
      if (s !== undefined) {
        const eta = s.etaSeconds !== undefined ? `eta ${s.etaSeconds}s` : ''
        bar.update(
          s.done ?? 0,
          s.total ?? 0,
          `${(s.bytesPerSec / 1e6).toFixed(0)} MB/s shards ${eta}`,
        )
        if (
          s.state === 'idle' &&
          s.total !== undefined &&
          s.done === s.total &&
          (s.startedAt ?? 0) >= t0 &&
          s.lastCycleAt !== undefined
        ) {
          return { state: s, wallSeconds: (s.lastCycleAt - t0) / 1000 }
        }
      }
      if (Date.now() > deadline) throw new Error(`the full heal of ${id} did not end in time`)
      await new Promise((r) => setTimeout(r, 100))
    }
  } finally {
    bar.stop()
  }
}

/** Warnings and errors in the nodes' and gateway's logs (pino level ≥ 40, and other text). */
async function logProblems(cluster: LocalCluster): Promise<string[]> {
  const out = new Map<string, number>()
  for (const p of [...cluster.gateways, ...cluster.nodes]) {
    const text = await readFile(p.logPath, 'utf8').catch(() => '')
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue
      let msg = line.slice(0, 160)
      try {
        const rec = JSON.parse(line) as { level?: number; msg?: string; listening?: unknown }
        if (rec.listening !== undefined || (rec.level ?? 0) < 40) continue
        msg = `${rec.level === 40 ? 'warn' : 'error'} ${rec.msg ?? ''}`
      } catch {}
      const k = `${p.id}: ${msg}`
      out.set(k, (out.get(k) ?? 0) + 1)
    }
  }
  return [...out].map(([k, n]) => `${k} ×${n}`)
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'tessera-heal-bench-'))
  const t0 = performance.now()
  progress(
    `heal bench${quick ? ' (quick)' : ''}: ${OBJECTS} × 8 MiB objects ` +
      `(${(OBJECTS * OBJECT_BYTES) / MiB} MiB), ${REPEATS} repetition(s); files in ${base}`,
  )
  // The bench's own identity, listed in the map as a gateway, to ask the nodes for HealStatus.
  const me = await generateIdentity()
  const cluster = await startLocalCluster({
    dir: base,
    ...CLUSTER,
    extraGateways: [me.id],
    logLevel: 'info',
    trashIntervalMs: 1000,
    onExit: (id, code, signal) => progress(`  ${id} exited (${code ?? signal}) during the run`),
  })
  const pool = new PeerPool({
    identity: me,
    hello: { version: PROTOCOL_VERSION, mapHash: mapHash(cluster.map), role: 'gateway' },
    backoffMs: 100,
  })
  const runs: Run[] = []
  let problems: string[] = []
  const removeDrives = async (): Promise<void> => {
    for (const n of cluster.nodes)
      for (const d of n.drives) await rm(d, { recursive: true, force: true })
  }
  const offInterrupt = onInterrupt(async () => {
    pool.close()
    await cluster.close()
    await removeDrives()
  })
  try {
    const target: Target = {
      endpoint: cluster.gateways[0]!.endpoint,
      credentials: cluster.root,
      bucket: BUCKET,
    }
    await createBucket(target)
    for (let rep = 1; rep <= REPEATS; rep++) {
      const bar = progressBar(`write run ${rep}`, 'objects')
      const w = await runLoad({
        ...target,
        op: 'put',
        size: OBJECT_BYTES,
        concurrency: CONCURRENCY,
        count: OBJECTS,
        objects: OBJECTS,
        keyPrefix: 'obj',
        warmupMs: 0,
        onProgress: (p) => bar.update(p.ops + p.errors, OBJECTS, `${p.errors} errors`),
      })
      bar.stop()
      progress(
        `  write run ${rep}: ${w.ops} × 8 MiB in ${w.seconds.toFixed(1)} s, ${w.mbps.toFixed(1)} MB/s` +
          (w.errors > 0 ? `, ${w.errors} errors (${w.firstError})` : ''),
      )
      // The previous repetition's trash (overwritten objects) leaves the drives first.
      await new Promise((r) => setTimeout(r, 1500))
      const id = cluster.nodes[(CLUSTER.nodes - rep) % CLUSTER.nodes]!.id
      const h = await wipeAndHeal(cluster, pool, id)
      const s = h.state
      const healSeconds = (s.lastCycleAt! - s.startedAt!) / 1000
      const objectBytes = w.ops * OBJECT_BYTES
      const healMBps = objectBytes / healSeconds / 1e6
      const run: Run = {
        repeat: rep,
        node: id,
        objects: w.ops,
        objectBytes,
        writeSeconds: round(w.seconds),
        writeMBps: round(w.mbps, 2),
        writeErrors: w.errors,
        healSeconds: round(healSeconds),
        wallSeconds: round(h.wallSeconds),
        healMBps: round(healMBps, 2),
        shardBytes: s.bytesHealed,
        shardMBps: round(s.bytesHealed / healSeconds / 1e6, 2),
        healedVersions: s.healed,
        failed: s.failed,
        ratio: round(healMBps / w.mbps),
      }
      runs.push(run)
      progress(
        `  heal run ${rep} (${id}): ${s.healed} versions in ${healSeconds.toFixed(1)} s, ` +
          `${healMBps.toFixed(1)} MB/s of objects, ${run.shardMBps} MB/s of shards written; ` +
          `heal/write ${run.ratio}`,
      )
    }
  } finally {
    offInterrupt()
    pool.close()
    await cluster.close()
    problems = await logProblems(cluster)
    await removeDrives()
  }

  console.log('')
  printTable(
    runs.map((r) => ({
      run: r.repeat,
      node: r.node,
      objects: r.objects,
      'write s': r.writeSeconds,
      'write MB/s': r.writeMBps,
      'heal s': r.healSeconds,
      'heal MB/s': r.healMBps,
      'shard MB/s': r.shardMBps,
      healed: r.healedVersions,
      failed: r.failed,
      'heal/write': r.ratio,
    })),
    [
      'run',
      'node',
      'objects',
      'write s',
      'write MB/s',
      'heal s',
      'heal MB/s',
      'shard MB/s',
      'healed',
      'failed',
      'heal/write',
    ],
  )
  const writeMBps = median(runs.map((r) => r.writeMBps))
  const healMBps = median(runs.map((r) => r.healMBps))
  const ratio = healMBps / writeMBps
  const summary = {
    writeMBps: round(writeMBps, 2),
    healMBps: round(healMBps, 2),
    shardMBps: round(median(runs.map((r) => r.shardMBps)), 2),
    healSeconds: round(median(runs.map((r) => r.healSeconds))),
    ratio: round(ratio),
  }
  const met = ratio >= TARGET_RATIO
  console.log('')
  printTable(
    [
      {
        target: `heal MB/s ≥ ${TARGET_RATIO} × write MB/s (medians)`,
        measured: `${summary.healMBps} / ${summary.writeMBps} = ${summary.ratio}`,
        met: met ? 'yes' : 'NO',
      },
    ],
    ['target', 'measured', 'met'],
  )
  const failed = runs.reduce((n, r) => n + r.failed + r.writeErrors, 0)
  if (failed > 0) console.log(`\n${failed} failed writes or repairs: see the logs in ${base}`)
  if (problems.length > 0) {
    console.log('\nWarnings and errors in the cluster logs:')
    for (const p of problems.slice(0, 20)) console.log(`  ${p}`)
  }
  console.log(`\nCluster configs and logs: ${base}`)
  const result = {
    bench: 'heal',
    quick,
    machine: machine(),
    config: {
      cluster: CLUSTER,
      objectBytes: OBJECT_BYTES,
      objects: OBJECTS,
      repeats: REPEATS,
      concurrency: CONCURRENCY,
    },
    summary,
    target: { ratio: TARGET_RATIO, met },
    runs,
    logProblems: problems,
  }
  const name = quick ? 'heal.quick' : 'heal'
  writeResults(name, result, {
    ...result,
    seconds: Math.round((performance.now() - t0) / 1000),
    dir: base,
  })
  progress(`done in ${Math.round((performance.now() - t0) / 1000)} s; results/${name}.json written`)
}

await main()
