// pnpm bench:s3 — the S3 path end to end: a local 4-node RS(2,2) cluster with one gateway
// (real tessera-node and tessera-gateway processes on loopback, started by startLocalCluster),
// side by side in one run with the HTTP ceiling (a uWS server that discards PUT bodies and
// serves GETs from memory: this machine's HTTP throughput with no storage behind it).
//
// For PUT and GET, 4 KiB, 1 MiB and 64 MiB objects, concurrency 1, 8 and 32: the same load
// (s3-load.ts) against both, repeated (ceiling and tessera interleaved) and reported as
// medians: ops/s, MB/s, p50/p99 latency, and tessera's MB/s as a share of the ceiling's. Peak
// RSS of the gateway, each node and the ceiling is sampled during every run. PUTs write new
// keys (64 MiB PUTs overwrite 2 × concurrency keys, to bound the disk used); GETs read a
// prepared set round-robin. Each object size gets a fresh cluster whose drive folders are
// deleted afterwards (configs and logs stay), so the disk holds one size's objects at most.
//
// CPU: the CPU time of every process over each run (/proc/<pid>/stat), as cores busy (CPU
// seconds per second of the run, the load generator included: 2.0 is all of a 2-core machine)
// and as CPU milliseconds per operation of the gateway, the nodes (together) and the load
// generator; on a machine this small the stack's CPU per byte, not one thread, sets its MB/s.
//
// Prints a table and the targets, met or not; writes results/s3.json (rows, peakRss,
// targets, errors) and results/s3.run.json (every run). `--quick` (or BENCH_QUICK=1, what CI
// runs): 4 KiB and 1 MiB at concurrency 1 and 8, 0.5 s per run, once; writes
// results/s3.quick.json instead. `--ms <n>`, `--repeats <n>`, `--sizes 4KiB,64MiB` and
// `--concurrency 1,32` override the duration, repetitions, sizes and concurrencies (a run with
// any of them writes results/s3.custom.json); `--help` lists them. Interrupted (Ctrl-C,
// SIGTERM), it stops its cluster and removes the drive folders before it exits.

import { mkdtempSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { countList, onInterrupt, parseBench, runsCommand, sizeList } from './cli.ts'
import { type Ceiling, startCeiling } from './http-ceiling.ts'
import {
  BENCH_CLUSTER,
  clusterPids,
  type LogProblem,
  logProblems,
  startBenchCluster,
} from './local-cluster.ts'
import { machine, median, printTable, writeResults } from './measure.ts'
import { readCpuSeconds, sampleRss } from './proc-mem.ts'
import { createBucket, type LoadResult, prepareObjects, runLoad, type Target } from './s3-load.ts'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB

const opts = parseBench<{
  quick?: boolean
  ms?: number
  repeats?: number
  sizes?: number[]
  concurrency?: number[]
}>(
  runsCommand(
    'bench:s3',
    'S3 PUT and GET through a local 4-node RS(2,2) cluster and one gateway, side by side with ' +
      "this machine's HTTP ceiling; writes results/s3.json.",
    "CI's form: 4KiB and 1MiB at concurrency 1 and 8, 0.5 s per run, once (also BENCH_QUICK=1); writes results/s3.quick.json",
  )
    .option('--sizes <list>', 'object sizes (default 4KiB,1MiB,64MiB)', sizeList)
    .option(
      '--concurrency <list>',
      'requests in flight (default 1,8,32)',
      countList('--concurrency'),
    )
    .addHelpText(
      'after',
      '\nAny of --ms, --repeats, --sizes or --concurrency writes results/s3.custom.json instead.',
    ),
)
const quick = opts.quick === true || process.env.BENCH_QUICK === '1'
const custom = [opts.ms, opts.repeats, opts.sizes, opts.concurrency].some((v) => v !== undefined)
const OPS = ['put', 'get'] as const
const SIZES = opts.sizes ?? (quick ? [4 * KiB, MiB] : [4 * KiB, MiB, 64 * MiB])
const CONCURRENCY = opts.concurrency ?? (quick ? [1, 8] : [1, 8, 32])
/** Timed phase of each run (a warm-up of a fifth of it, at most 1 s, comes first). */
const DURATION_MS = opts.ms ?? (quick ? 500 : 3000)
const REPEATS = opts.repeats ?? (quick ? 1 : 3)
/** Distinct objects a GET run reads round-robin, per size. */
const GET_OBJECTS = new Map([
  [4 * KiB, 64],
  [MiB, 16],
  [64 * MiB, 4],
])
const CLUSTER = BENCH_CLUSTER
const BUCKET = 'bench'
/**
 * PUTs of objects this large overwrite a set of 2 × concurrency keys instead of writing new
 * ones: new 64 MiB keys would fill tens of GB of disk over the run (RS(2,2) stores each twice).
 */
const OVERWRITE_FROM = 64 * MiB
const RSS_EVERY_MS = 100

type Op = (typeof OPS)[number]
type Who = 'ceiling' | 'tessera'

/** The medians of one target's runs of one case. */
interface Summary {
  opsPerSec: number
  mbps: number
  p50ms: number
  p99ms: number
  errors: number
  firstError?: string
}

/** CPU seconds each process used over one run, and the run's wall time (warm-up included). */
interface RunCpu {
  seconds: number
  byProcess: Record<string, number>
}

interface Case {
  op: Op
  size: number
  concurrency: number
  runs: Record<Who, LoadResult[]>
  cpu: Record<Who, RunCpu[]>
  /** Peak RSS (bytes) of each process during this case's runs: gateway, n1…, ceiling, client. */
  peak: Record<string, number>
}

/** `4096` → `4KiB`; a size no binary unit divides stays in bytes (`4000B`), never `3.90625KiB`. */
function label(size: number): string {
  if (size >= MiB && size % MiB === 0) return `${size / MiB}MiB`
  if (size >= KiB && size % KiB === 0) return `${size / KiB}KiB`
  return `${size}B`
}

function round(v: number, digits = 3): number {
  if (!Number.isFinite(v)) return v
  const f = 10 ** digits
  return Math.round(v * f) / f
}

/** A median that ignores NaN (p50/p99 of a run without a successful operation). */
function medianOf(values: number[]): number {
  const ok = values.filter((v) => !Number.isNaN(v))
  return ok.length === 0 ? Number.NaN : median(ok)
}

function summarize(runs: readonly LoadResult[]): Summary {
  const firstError = runs.find((r) => r.firstError)?.firstError
  return {
    opsPerSec: medianOf(runs.map((r) => r.opsPerSec)),
    mbps: medianOf(runs.map((r) => r.mbps)),
    p50ms: medianOf(runs.map((r) => r.p50ms)),
    p99ms: medianOf(runs.map((r) => r.p99ms)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    ...(firstError === undefined ? {} : { firstError }),
  }
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`)
}

/** One run of one target, with the peak RSS and the CPU time of `pids` (name → pid) over it. */
async function measure(
  target: Target,
  pids: Record<string, number>,
  load: { op: Op; size: number; concurrency: number; keyPrefix: string; objects?: number },
): Promise<{ result: LoadResult; peak: Record<string, number>; cpu: RunCpu }> {
  const all = { ...pids, client: process.pid }
  const cpuAt = () =>
    Object.fromEntries(Object.entries(all).map(([name, pid]) => [name, readCpuSeconds(pid)]))
  const cpuBefore = cpuAt()
  const t0 = performance.now()
  const mem = sampleRss(Object.values(all), RSS_EVERY_MS, { resetPeak: true })
  let byPid: Record<number, number> = {}
  let result: LoadResult
  try {
    result = await runLoad({
      ...target,
      ...load,
      durationMs: DURATION_MS,
    })
  } finally {
    byPid = mem.stop()
  }
  const cpuAfter = cpuAt()
  const cpu: RunCpu = { seconds: (performance.now() - t0) / 1000, byProcess: {} }
  for (const name of Object.keys(all)) {
    const a = cpuBefore[name]
    const b = cpuAfter[name]
    if (a !== undefined && b !== undefined) cpu.byProcess[name] = b - a
  }
  const peak: Record<string, number> = {}
  for (const [name, pid] of Object.entries(all)) peak[name] = byPid[pid] ?? 0
  return { result, peak, cpu }
}

/** CPU figures of one target's runs (medians): cores busy, and CPU ms per operation by role. */
interface CpuSummary {
  cores: number
  msPerOp: Record<string, number>
}

/** Roles: the gateway, the nodes together, the ceiling, the load generator (client). */
function roleOf(name: string): string {
  return /^n\d+$/.test(name) ? 'nodes' : name
}

function summarizeCpu(runs: readonly LoadResult[], cpu: readonly RunCpu[]): CpuSummary {
  const cores: number[] = []
  const perOp: Record<string, number[]> = {}
  for (const [i, c] of cpu.entries()) {
    const total = Object.values(c.byProcess).reduce((a, b) => a + b, 0)
    cores.push(total / c.seconds)
    const rate = runs[i]!.opsPerSec
    const byRole: Record<string, number> = {}
    for (const [name, s] of Object.entries(c.byProcess))
      byRole[roleOf(name)] = (byRole[roleOf(name)] ?? 0) + s
    // The run's CPU covers its warm-up too: per operation is cores busy over operations/s.
    for (const [role, s] of Object.entries(byRole)) {
      const list = perOp[role] ?? []
      list.push(rate > 0 ? ((s / c.seconds) * 1000) / rate : Number.NaN)
      perOp[role] = list
    }
  }
  return {
    cores: round(medianOf(cores), 2),
    msPerOp: Object.fromEntries(Object.entries(perOp).map(([r, v]) => [r, round(medianOf(v))])),
  }
}

function maxInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = Math.max(into[k] ?? 0, v)
}

async function runSize(
  size: number,
  base: string,
  ceiling: Ceiling,
  ceilingTarget: Target,
  cases: Case[],
  problems: LogProblem[],
  restarts: string[],
): Promise<void> {
  const dir = join(base, label(size))
  progress(`${label(size)}: starting a ${CLUSTER.nodes}-node RS(2,2) cluster in ${dir}`)
  const cluster = await startBenchCluster(dir, progress)
  const removeDrives = async (): Promise<void> => {
    for (const n of cluster.nodes)
      for (const d of n.drives) await rm(d, { recursive: true, force: true })
  }
  // Interrupted: the cluster stops and its objects go (64 MiB runs leave gigabytes).
  const offInterrupt = onInterrupt(async () => {
    await cluster.close()
    await removeDrives()
  })
  try {
    const tessera: Target = {
      endpoint: cluster.gateways[0]!.endpoint,
      credentials: cluster.root,
      bucket: BUCKET,
    }
    await createBucket(tessera)
    for (const op of OPS) {
      const objects = GET_OBJECTS.get(size) ?? 16
      if (op === 'get') {
        progress(`  preparing ${objects} × ${label(size)} objects`)
        await prepareObjects({ ...tessera, size, count: objects, keyPrefix: 'obj' })
      }
      for (const concurrency of CONCURRENCY) {
        const c: Case = {
          op,
          size,
          concurrency,
          runs: { ceiling: [], tessera: [] },
          cpu: { ceiling: [], tessera: [] },
          peak: {},
        }
        for (let rep = 1; rep <= REPEATS; rep++) {
          const load = {
            op,
            size,
            concurrency,
            ...(op === 'get'
              ? { keyPrefix: 'obj', objects }
              : size >= OVERWRITE_FROM
                ? { keyPrefix: `put-c${concurrency}`, objects: 2 * concurrency }
                : { keyPrefix: `put-c${concurrency}-r${rep}` }),
          }
          const a = await measure(ceilingTarget, { ceiling: ceiling.pid }, load)
          const pids = await clusterPids(cluster, restarts, progress)
          const b = await measure(tessera, pids, load)
          c.runs.ceiling.push(a.result)
          c.runs.tessera.push(b.result)
          c.cpu.ceiling.push(a.cpu)
          c.cpu.tessera.push(b.cpu)
          maxInto(c.peak, { ceiling: a.peak.ceiling ?? 0 })
          maxInto(c.peak, b.peak)
          maxInto(c.peak, { client: Math.max(a.peak.client ?? 0, b.peak.client ?? 0) })
          const show = (r: LoadResult) =>
            `${Math.round(r.opsPerSec)} ops/s ${r.mbps.toFixed(1)} MB/s p50 ${r.p50ms.toFixed(2)} ms` +
            (r.errors > 0 ? ` ${r.errors} errors (${r.firstError})` : '')
          progress(
            `  ${op} ${label(size)} c${concurrency} run ${rep}/${REPEATS}: ceiling ${show(a.result)}` +
              ` | tessera ${show(b.result)}, gateway ${Math.round((b.peak.gateway ?? 0) / MiB)} MiB`,
          )
        }
        cases.push(c)
      }
    }
  } finally {
    offInterrupt()
    await cluster.close()
    problems.push(...(await logProblems(cluster)))
    // The objects go; configs and logs stay for a look after the run.
    await removeDrives()
  }
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'tessera-s3-bench-'))
  const t0 = performance.now()
  progress(
    `s3 bench${quick ? ' (quick)' : ''}: ${SIZES.map(label).join(', ')} × concurrency ` +
      `${CONCURRENCY.join(', ')}, ${DURATION_MS} ms per run, ${REPEATS} run(s) each; files in ${base}`,
  )
  const ceiling = await startCeiling()
  const ceilingTarget: Target = {
    endpoint: ceiling.endpoint,
    credentials: { accessKeyId: 'ceiling', secretAccessKey: 'ceiling-secret' },
    bucket: BUCKET,
  }
  const cases: Case[] = []
  const problems: LogProblem[] = []
  const restarts: string[] = []
  try {
    await createBucket(ceilingTarget)
    for (const size of SIZES) {
      await runSize(size, base, ceiling, ceilingTarget, cases, problems, restarts)
    }
  } finally {
    await ceiling.stop()
  }

  // Rows: the ceiling's and tessera's medians of each case.
  const rows: Record<string, unknown>[] = []
  const table: Record<string, unknown>[] = []
  const errors: Record<string, unknown>[] = []
  const peakRss: Record<string, number> = {}
  for (const c of cases) {
    const ceil = summarize(c.runs.ceiling)
    const tess = summarize(c.runs.tessera)
    const vs = tess.mbps / ceil.mbps
    const ceilCpu = summarizeCpu(c.runs.ceiling, c.cpu.ceiling)
    const tessCpu = summarizeCpu(c.runs.tessera, c.cpu.tessera)
    const key = { op: c.op, size: c.size, concurrency: c.concurrency }
    const row = (target: Who, s: Summary, vsCeiling: number, cpu: CpuSummary) => ({
      target,
      ...key,
      opsPerSec: round(s.opsPerSec, 1),
      mbps: round(s.mbps, 2),
      p50ms: round(s.p50ms),
      p99ms: round(s.p99ms),
      vsCeiling: round(vsCeiling),
      cpu,
    })
    rows.push(row('ceiling', ceil, 1, ceilCpu), row('tessera', tess, vs, tessCpu))
    for (const [who, s] of [
      ['ceiling', ceil],
      ['tessera', tess],
    ] as const) {
      if (s.errors > 0)
        errors.push({ target: who, ...key, errors: s.errors, firstError: s.firstError })
    }
    maxInto(peakRss, c.peak)
    const nodeMax = Math.max(
      ...Object.entries(c.peak)
        .filter(([k]) => /^n\d+$/.test(k))
        .map(([, v]) => v),
    )
    table.push({
      op: c.op,
      size: label(c.size),
      conc: c.concurrency,
      'ceil ops/s': Math.round(ceil.opsPerSec),
      'ceil MB/s': round(ceil.mbps, 1),
      'ceil p50': round(ceil.p50ms, 2),
      'ceil p99': round(ceil.p99ms, 2),
      'tes ops/s': Math.round(tess.opsPerSec),
      'tes MB/s': round(tess.mbps, 1),
      'tes p50': round(tess.p50ms, 2),
      'tes p99': round(tess.p99ms, 2),
      vsCeiling: round(vs),
      errors: tess.errors,
      'gw MiB': Math.round((c.peak.gateway ?? 0) / MiB),
      'node MiB': Math.round(nodeMax / MiB),
      'ceil MiB': Math.round((c.peak.ceiling ?? 0) / MiB),
      'ceil cores': ceilCpu.cores,
      'tes cores': tessCpu.cores,
      'gw ms/op': tessCpu.msPerOp.gateway,
      'nodes ms/op': tessCpu.msPerOp.nodes,
      'client ms/op': tessCpu.msPerOp.client,
    })
  }

  const targets = checkTargets(rows, peakRss)
  printTable(table, [
    'op',
    'size',
    'conc',
    'ceil ops/s',
    'ceil MB/s',
    'ceil p50',
    'ceil p99',
    'tes ops/s',
    'tes MB/s',
    'tes p50',
    'tes p99',
    'vsCeiling',
    'errors',
    'gw MiB',
    'node MiB',
    'ceil MiB',
    'ceil cores',
    'tes cores',
    'gw ms/op',
    'nodes ms/op',
    'client ms/op',
  ])
  console.log('')
  printTable(
    targets.map((t) => ({
      target: t.target,
      measured: t.measured,
      met: t.met === null ? 'not measured' : t.met ? 'yes' : 'NO',
    })),
    ['target', 'measured', 'met'],
  )
  console.log('')
  printTable(
    Object.entries(peakRss).map(([process, bytes]) => ({
      process,
      peakMiB: Math.round(bytes / MiB),
    })),
    ['process', 'peakMiB'],
  )
  if (errors.length > 0) {
    console.log('\nErrors:')
    for (const e of errors)
      console.log(
        `  ${e.target} ${e.op} ${label(e.size as number)} c${e.concurrency}: ${e.errors} × ${e.firstError}`,
      )
  }
  if (problems.length > 0) {
    console.log('\nWarnings and errors in the cluster logs:')
    for (const p of problems) console.log(`  ${p.process} ${p.level} ×${p.count}: ${p.msg}`)
  }
  if (restarts.length > 0) console.log(`\nRestarted after dying: ${restarts.join(', ')}`)
  console.log(`\nCluster configs and logs: ${base}`)

  const config = {
    cluster: CLUSTER,
    sizes: SIZES,
    concurrency: CONCURRENCY,
    durationMs: DURATION_MS,
    repeats: REPEATS,
    getObjects: Object.fromEntries(GET_OBJECTS),
    putOverwritesFrom: OVERWRITE_FROM,
  }
  const summary = {
    bench: 's3',
    quick,
    machine: machine(),
    config,
    rows,
    peakRss,
    targets,
    errors,
    logProblems: problems,
    restarts,
  }
  const result = {
    ...summary,
    seconds: Math.round((performance.now() - t0) / 1000),
    dir: base,
    cases: cases.map((c) => ({
      op: c.op,
      size: c.size,
      concurrency: c.concurrency,
      peak: c.peak,
      runs: c.runs,
      cpu: c.cpu,
    })),
  }
  const name = custom ? 's3.custom' : quick ? 's3.quick' : 's3'
  writeResults(name, summary, result)
  progress(`done in ${result.seconds} s; results/${name}.json written`)
}

interface TargetCheck {
  target: string
  /** The measured value(s), as text. */
  measured: string
  /** Each value measured against the goal (by concurrency where there are several). */
  values: { concurrency?: number; value: number; met: boolean }[]
  /** Whether every measured value meets the goal; null when the case was not measured. */
  met: boolean | null
}

/** The targets against what was measured. */
function checkTargets(rows: readonly Record<string, unknown>[], peakRss: Record<string, number>) {
  const tess = (op: Op, size: number) =>
    rows.filter((r) => r.target === 'tessera' && r.op === op && r.size === size)
  const out: TargetCheck[] = []
  const share = (op: Op, min: number) => {
    const values = tess(op, 64 * MiB).map((r) => ({
      concurrency: r.concurrency as number,
      value: r.vsCeiling as number,
      met: (r.vsCeiling as number) >= min,
    }))
    out.push({
      target: `64 MiB ${op.toUpperCase()} ≥ ${min * 100}% of the ceiling's MB/s`,
      measured:
        values.map((v) => `c${v.concurrency} ${(v.value * 100).toFixed(1)}%`).join(', ') || '-',
      values,
      met: values.length === 0 ? null : values.every((v) => v.met),
    })
  }
  share('put', 0.15)
  share('get', 0.35)
  const rate = (op: Op, min: number) => {
    const values = tess(op, 4 * KiB)
      .filter((r) => r.concurrency === 32)
      .map((r) => ({
        concurrency: 32,
        value: r.opsPerSec as number,
        met: (r.opsPerSec as number) >= min,
      }))
    out.push({
      target: `4 KiB ${op.toUpperCase()} ≥ ${min} ops/s at concurrency 32`,
      measured: values.map((v) => `${Math.round(v.value)} ops/s`).join(', ') || '-',
      values,
      met: values.length === 0 ? null : values.every((v) => v.met),
    })
  }
  rate('put', 1500)
  rate('get', 4000)
  const gw = peakRss.gateway
  out.push({
    target: 'gateway peak RSS < 1 GiB',
    measured: gw === undefined ? '-' : `${Math.round(gw / MiB)} MiB`,
    values: gw === undefined ? [] : [{ value: gw, met: gw < GiB }],
    met: gw === undefined ? null : gw < GiB,
  })
  return out
}

await main()
