// pnpm bench:suite [--quick] — the standard S3 benchmark matrix in one command, on a fresh local
// cluster (4 tessera-node processes, RS(2,2), one tessera-gateway, on loopback, started by
// startLocalCluster) side by side with the HTTP ceiling (http-ceiling.ts: this machine's HTTP
// throughput with no storage behind it), the same load (s3-load.ts) against both, interleaved.
//
// The matrix: PUT and GET of 4 KiB, 1 MiB and 16 MiB objects at concurrency 1, 8 and 32; LIST
// (ListObjectsV2 pages of 1000 keys over 1000 objects of 4 KiB) at the same concurrencies; a
// mixed run (get=60,put=30,delete=10 over 1 MiB objects, concurrency 8). Each case runs 3 s
// after a warm-up (and at least two requests per connection), 3 times; figures are medians.
// PUTs write new keys; GETs read a prepared set round-robin.
//
// Prints the table and writes results/<YYYY-MM-DD>.json (UTC date: every case's medians and
// runs, peak RSS, errors, log problems) with two charts: results/<date>-throughput.svg (MB/s
// against object size per concurrency) and results/<date>-p99.svg (p99 latency against
// concurrency per size), the ceiling as dashed reference lines in both.
//
// --quick (what CI may run, ~20 s): 4 KiB and 1 MiB, concurrency 1 and 8, LIST and mixed at
// concurrency 8, 0.4 s per run, once; writes results/suite.quick.json (and .svg charts).
// --ms <n> and --repeats <n> override the run length and repetitions; --out <dir> the folder.
// --charts <file.json> draws the charts of an earlier run again (after a change to charts.ts).

import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { basename, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { LocalCluster } from '@tessera/server'
import { type ChartRow, p99Svg, throughputSvg } from './charts.ts'
import { onInterrupt, parseBench, runsCommand } from './cli.ts'
import { startCeiling } from './http-ceiling.ts'
import {
  BENCH_CLUSTER,
  clusterPids,
  type LogProblem,
  logProblems,
  startBenchCluster,
} from './local-cluster.ts'
import { machine, median, medianOf, printTable, round } from './measure.ts'
import { sampleRss } from './proc-mem.ts'
import { interactive, type ProgressView, progressView } from './progress.ts'
import {
  createBucket,
  formatBytes,
  type LoadOptions,
  type LoadResult,
  OP_KINDS,
  type OpKind,
  type OpStats,
  prepareObjects,
  runLoad,
  type Target,
} from './s3-load.ts'

const KiB = 1024
const MiB = 1024 * KiB

const opts = parseBench<{
  quick?: boolean
  ms?: number
  repeats?: number
  out?: string
  charts?: string
}>(
  runsCommand(
    'bench:suite',
    'The standard S3 matrix (PUT/GET 4KiB, 1MiB, 16MiB × concurrency 1, 8, 32; LIST; a mixed ' +
      "run) on a fresh local cluster, side by side with this machine's HTTP ceiling; writes " +
      'results/<date>.json and two SVG charts.',
    "CI's form (~20 s): 4KiB and 1MiB, concurrency 1 and 8, 0.4 s per run, once (also BENCH_QUICK=1)",
  )
    .option('--out <dir>', 'folder for the results (default bench/results)')
    .option('--charts <file.json>', 'draw the charts of an earlier run again, and stop'),
)
const quick = opts.quick === true || process.env.BENCH_QUICK === '1'
const SIZES = quick ? [4 * KiB, MiB] : [4 * KiB, MiB, 16 * MiB]
const CONCURRENCY = quick ? [1, 8] : [1, 8, 32]
const LIST_CONCURRENCY = quick ? [8] : CONCURRENCY
const DURATION_MS = opts.ms ?? (quick ? 400 : 3000)
const REPEATS = opts.repeats ?? (quick ? 1 : 3)
/** Distinct objects a GET run reads round-robin, per size. */
const GET_OBJECTS = new Map(
  quick
    ? [
        [4 * KiB, 64],
        [MiB, 16],
      ]
    : [
        [4 * KiB, 256],
        [MiB, 64],
        [16 * MiB, 16],
      ],
)
const LIST = { size: 4 * KiB, objects: quick ? 200 : 1000, maxKeys: 1000 }
const MIXED = {
  size: MiB,
  objects: quick ? 32 : 100,
  concurrency: 8,
  mix: { get: 60, put: 30, delete: 10 } as Partial<Record<OpKind, number>>,
}
const BUCKET = 'bench'
/** Runs of the whole suite (each against both targets), for the progress lines. */
const TOTAL_RUNS = (SIZES.length * CONCURRENCY.length * 2 + LIST_CONCURRENCY.length + 1) * REPEATS
let runsDone = 0
const T0 = performance.now()
const RSS_EVERY_MS = 100
const RESULTS = resolve(opts.out ?? fileURLToPath(new URL('../results/', import.meta.url)))

type Who = 'ceiling' | 'tessera'
type CaseOp = 'put' | 'get' | 'list' | 'mixed'

interface Case {
  op: CaseOp
  size: number
  concurrency: number
  runs: Record<Who, LoadResult[]>
  /** Peak RSS (bytes) of each process during this case's runs: gateway, n1…, ceiling, client. */
  peak: Record<string, number>
}

/** The medians of one target's runs of one case. */
interface Summary {
  opsPerSec: number
  mbps: number
  p50ms: number
  p90ms: number
  p99ms: number
  errors: number
  firstError?: string
  keysPerList?: number
}

function say(line: string): void {
  process.stderr.write(`${line}\n`)
}

function summarize(runs: readonly OpStats[]): Summary {
  const firstError = runs.find((r) => r.firstError)?.firstError
  const listed = runs.flatMap((r) => (r.keysPerList === undefined ? [] : [r.keysPerList]))
  return {
    opsPerSec: medianOf(runs.map((r) => r.opsPerSec)),
    mbps: medianOf(runs.map((r) => r.mbps)),
    p50ms: medianOf(runs.map((r) => r.p50ms)),
    p90ms: medianOf(runs.map((r) => r.p90ms)),
    p99ms: medianOf(runs.map((r) => r.p99ms)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    ...(firstError === undefined ? {} : { firstError }),
    ...(listed.length > 0 ? { keysPerList: median(listed) } : {}),
  }
}

function caseName(c: { op: CaseOp; size: number; concurrency: number }): string {
  return c.op === 'list'
    ? `list ${LIST.maxKeys} keys c${c.concurrency}`
    : `${c.op} ${formatBytes(c.size)} c${c.concurrency}`
}

/** One run against one target, with the peak RSS of `pids` (name → pid) over it. */
async function measure(
  target: Target,
  who: Who,
  pids: Record<string, number>,
  load: Omit<LoadOptions, keyof Target>,
  title: string,
): Promise<{ result: LoadResult; peak: Record<string, number> }> {
  const all = { ...pids, client: process.pid }
  const mem = sampleRss(Object.values(all), RSS_EVERY_MS, { resetPeak: true })
  let view: ProgressView | undefined
  let byPid: Record<number, number> = {}
  let result: LoadResult
  try {
    result = await runLoad({
      ...load,
      ...target,
      ...(interactive()
        ? {
            onProgress: (p) => {
              if (p.phase !== 'run') return
              view ??= progressView(
                `${title} ${who}`,
                { durationMs: DURATION_MS },
                { bytes: load.op !== 'list' },
              )
              view.update(p)
            },
          }
        : {}),
    })
  } finally {
    view?.stop()
    byPid = mem.stop()
  }
  const peak: Record<string, number> = {}
  for (const [name, pid] of Object.entries(all)) peak[name] = byPid[pid] ?? 0
  return { result, peak }
}

function maxInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = Math.max(into[k] ?? 0, v)
}

function show(r: LoadResult): string {
  const rate = r.mbps > 0 ? ` ${r.mbps.toFixed(1)} MB/s` : ''
  return (
    `${Math.round(r.opsPerSec)} ops/s${rate} p50 ${r.p50ms.toFixed(2)} p99 ${r.p99ms.toFixed(2)} ms` +
    (r.errors > 0 ? ` ${r.errors} errors (${r.firstError})` : '')
  )
}

async function runCase(
  c: Case,
  targets: Record<Who, Target>,
  ceilingPid: number,
  cluster: LocalCluster,
  restarts: string[],
  load: (rep: number) => Omit<LoadOptions, keyof Target>,
  before?: (rep: number) => Promise<void>,
): Promise<void> {
  for (let rep = 1; rep <= REPEATS; rep++) {
    await before?.(rep)
    const title = `[${++runsDone}/${TOTAL_RUNS}, ${Math.round((performance.now() - T0) / 1000)} s] ${caseName(c)} ${rep}/${REPEATS}`
    const a = await measure(targets.ceiling, 'ceiling', { ceiling: ceilingPid }, load(rep), title)
    const pids = await clusterPids(cluster, restarts, say)
    const b = await measure(targets.tessera, 'tessera', pids, load(rep), title)
    c.runs.ceiling.push(a.result)
    c.runs.tessera.push(b.result)
    maxInto(c.peak, { ceiling: a.peak.ceiling ?? 0 })
    maxInto(c.peak, b.peak)
    maxInto(c.peak, { client: Math.max(a.peak.client ?? 0, b.peak.client ?? 0) })
    say(
      `  ${title}: ceiling ${show(a.result)} | tessera ${show(b.result)}, gateway ${Math.round((b.peak.gateway ?? 0) / MiB)} MiB`,
    )
  }
}

/** Prepares `count` objects of `size` under `keyPrefix` on both targets. */
async function prepare(
  targets: Record<Who, Target>,
  size: number,
  count: number,
  keyPrefix: string,
): Promise<void> {
  say(`  preparing ${count} × ${formatBytes(size)} objects (${keyPrefix})`)
  for (const who of ['ceiling', 'tessera'] as const) {
    await prepareObjects({
      ...targets[who],
      size,
      count,
      keyPrefix,
      concurrency: 8,
      quiet: !interactive(),
    })
  }
}

async function main(): Promise<void> {
  const t0 = performance.now()
  const loadStart = loadavg()
  const date = new Date().toISOString().slice(0, 10)
  const base = mkdtempSync(join(tmpdir(), 'tessera-suite-'))
  say(
    `bench:suite${quick ? ' (quick)' : ''}: PUT/GET ${SIZES.map((s) => formatBytes(s)).join(', ')} × ` +
      `concurrency ${CONCURRENCY.join(', ')}, LIST, mixed; ${DURATION_MS} ms per run, ` +
      `${REPEATS} run(s) each; cluster in ${base}`,
  )
  const ceiling = await startCeiling()
  const cluster = await startBenchCluster(base, say)
  const removeDrives = async (): Promise<void> => {
    for (const n of cluster.nodes)
      for (const d of n.drives) await rm(d, { recursive: true, force: true })
  }
  const offInterrupt = onInterrupt(async () => {
    await Promise.all([ceiling.stop(), cluster.close()])
    await removeDrives()
  })
  const targets: Record<Who, Target> = {
    ceiling: {
      endpoint: ceiling.endpoint,
      credentials: { accessKeyId: 'ceiling', secretAccessKey: 'ceiling-secret' },
      bucket: BUCKET,
    },
    tessera: {
      endpoint: cluster.gateways[0]!.endpoint,
      credentials: cluster.root,
      bucket: BUCKET,
    },
  }
  const cases: Case[] = []
  const problems: LogProblem[] = []
  const restarts: string[] = []
  const newCase = (op: CaseOp, size: number, concurrency: number): Case => {
    const c: Case = { op, size, concurrency, runs: { ceiling: [], tessera: [] }, peak: {} }
    cases.push(c)
    return c
  }
  const timing = { durationMs: DURATION_MS, ...(quick ? { warmupMs: 100 } : {}) }
  try {
    await createBucket(targets.ceiling)
    await createBucket(targets.tessera)
    for (const size of SIZES) {
      say(`${formatBytes(size)}:`)
      for (const concurrency of CONCURRENCY) {
        const c = newCase('put', size, concurrency)
        await runCase(c, targets, ceiling.pid, cluster, restarts, (rep) => ({
          op: 'put',
          size,
          concurrency,
          keyPrefix: `put-c${concurrency}-r${rep}`,
          minCount: 2 * concurrency,
          ...timing,
        }))
      }
      const objects = GET_OBJECTS.get(size) ?? 16
      await prepare(targets, size, objects, 'obj')
      for (const concurrency of CONCURRENCY) {
        const c = newCase('get', size, concurrency)
        await runCase(c, targets, ceiling.pid, cluster, restarts, () => ({
          op: 'get',
          size,
          concurrency,
          keyPrefix: 'obj',
          objects,
          minCount: 2 * concurrency,
          ...timing,
        }))
      }
    }
    say(`LIST (${LIST.maxKeys} keys per page) and mixed:`)
    await prepare(targets, LIST.size, LIST.objects, 'list')
    for (const concurrency of LIST_CONCURRENCY) {
      const c = newCase('list', LIST.size, concurrency)
      await runCase(c, targets, ceiling.pid, cluster, restarts, () => ({
        op: 'list',
        size: LIST.size,
        concurrency,
        keyPrefix: 'list',
        objects: LIST.objects,
        listMaxKeys: LIST.maxKeys,
        ...timing,
      }))
    }
    // Each repetition of the mix starts from its own freshly prepared pool.
    const c = newCase('mixed', MIXED.size, MIXED.concurrency)
    await runCase(
      c,
      targets,
      ceiling.pid,
      cluster,
      restarts,
      (rep) => ({
        op: 'mixed',
        size: MIXED.size,
        concurrency: MIXED.concurrency,
        keyPrefix: `mixed-r${rep}`,
        objects: MIXED.objects,
        mix: MIXED.mix,
        ...timing,
      }),
      (rep) => prepare(targets, MIXED.size, MIXED.objects, `mixed-r${rep}`),
    )
  } finally {
    offInterrupt()
    await ceiling.stop()
    await cluster.close()
    problems.push(...(await logProblems(cluster)))
    // The objects go; configs and logs stay for a look after the run.
    await removeDrives()
  }
  await report(cases, problems, restarts, base, date, Math.round((performance.now() - t0) / 1000), {
    start: loadStart.map((v) => round(v, 2)),
    end: loadavg().map((v) => round(v, 2)),
  })
}

async function report(
  cases: readonly Case[],
  problems: readonly LogProblem[],
  restarts: readonly string[],
  base: string,
  date: string,
  seconds: number,
  load: { start: number[]; end: number[] },
): Promise<void> {
  const table: Record<string, unknown>[] = []
  const rows: Record<string, unknown>[] = []
  const errors: Record<string, unknown>[] = []
  const peakRss: Record<string, number> = {}
  const figures: ChartRow[] = []
  const fmt = (v: number, d = 1) => (Number.isFinite(v) ? round(v, d) : '-')
  for (const c of cases) {
    const ceil = summarize(c.runs.ceiling)
    const tess = summarize(c.runs.tessera)
    const vs = c.op === 'list' ? tess.opsPerSec / ceil.opsPerSec : tess.mbps / ceil.mbps
    const key = { op: c.op, size: c.size, concurrency: c.concurrency }
    const byOp: Record<string, Summary> = {}
    if (c.op === 'mixed') {
      for (const k of OP_KINDS) {
        const per = c.runs.tessera.flatMap((r) => (r.byOp[k] ? [r.byOp[k]] : []))
        if (per.length > 0) byOp[k] = summarize(per)
      }
    }
    rows.push({
      ...key,
      ceiling: roundAll(ceil),
      tessera: roundAll(tess),
      vsCeiling: round(vs),
      ...(c.op === 'mixed' ? { mix: MIXED.mix, tesseraByOp: mapValues(byOp, roundAll) } : {}),
      ...(c.op === 'list' ? { objects: LIST.objects, maxKeys: LIST.maxKeys } : {}),
      peakRssMiB: mapValues(c.peak, (b) => Math.round(b / MiB)),
    })
    for (const [who, s] of [
      ['ceiling', ceil],
      ['tessera', tess],
    ] as const) {
      if (s.errors > 0)
        errors.push({ target: who, ...key, errors: s.errors, firstError: s.firstError })
    }
    maxInto(peakRss, c.peak)
    if (c.op === 'put' || c.op === 'get')
      for (const [target, s] of [
        ['tessera', tess],
        ['HTTP ceiling', ceil],
      ] as const)
        figures.push({ op: c.op, size: c.size, concurrency: c.concurrency, target, ...s })
    const nodeMax = Math.max(
      0,
      ...Object.entries(c.peak)
        .filter(([k]) => /^n\d+$/.test(k))
        .map(([, v]) => v),
    )
    const line = (op: string, size: string, t: Summary, vsCeil: string | number, ce?: Summary) => ({
      op,
      size,
      conc: c.concurrency,
      'ceil ops/s': ce ? Math.round(ce.opsPerSec) : '',
      'ceil MB/s': ce ? (c.op === 'list' ? '-' : fmt(ce.mbps)) : '',
      'ceil p99': ce ? fmt(ce.p99ms, 2) : '',
      'ops/s': t.opsPerSec < 100 ? fmt(t.opsPerSec) : Math.round(t.opsPerSec),
      'MB/s': /list|head|delete/.test(op) ? '-' : fmt(t.mbps),
      p50: fmt(t.p50ms, 2),
      p90: fmt(t.p90ms, 2),
      p99: fmt(t.p99ms, 2),
      vsCeil: vsCeil,
      errors: t.errors,
      'gw MiB': ce ? Math.round((c.peak.gateway ?? 0) / MiB) : '',
      'node MiB': ce ? Math.round(nodeMax / MiB) : '',
    })
    const size = c.op === 'list' ? `${tess.keysPerList ?? '?'} keys` : formatBytes(c.size)
    table.push(line(c.op, size, tess, `${(vs * 100).toFixed(1)}%`, ceil))
    for (const [k, s] of Object.entries(byOp)) table.push(line(`  ${k}`, '', s, ''))
  }

  console.log('')
  printTable(table, [
    'op',
    'size',
    'conc',
    'ceil ops/s',
    'ceil MB/s',
    'ceil p99',
    'ops/s',
    'MB/s',
    'p50',
    'p90',
    'p99',
    'vsCeil',
    'errors',
    'gw MiB',
    'node MiB',
  ])
  console.log(
    `\ntessera figures are ops/s, MB/s (1e6 B) and latency in ms, medians of ${REPEATS} run(s) of ` +
      `${DURATION_MS} ms; vsCeil: tessera's MB/s (LIST: ops/s) as a share of the HTTP ceiling's.`,
  )
  if (errors.length > 0) {
    console.log('\nErrors:')
    for (const e of errors)
      console.log(`  ${e.target} ${caseName(e as never)}: ${e.errors} × ${e.firstError}`)
  }
  if (problems.length > 0) {
    console.log('\nWarnings and errors in the cluster logs:')
    for (const p of problems) console.log(`  ${p.process} ${p.level} ×${p.count}: ${p.msg}`)
  }
  if (restarts.length > 0) console.log(`\nRestarted after dying: ${restarts.join(', ')}`)
  console.log(`\nCluster configs and logs: ${base}`)
  console.log(
    `Load average (1, 5, 15 min): ${load.start.join(', ')} at the start, ${load.end.join(', ')} at the end,` +
      ` on ${machine().cores} cores (what ran before the suite shows in the start's figures).`,
  )

  const m = machine()
  const config = {
    cluster: BENCH_CLUSTER,
    sizes: SIZES,
    concurrency: CONCURRENCY,
    listConcurrency: LIST_CONCURRENCY,
    durationMs: DURATION_MS,
    repeats: REPEATS,
    getObjects: Object.fromEntries(GET_OBJECTS),
    list: LIST,
    mixed: MIXED,
  }
  const result = {
    bench: 'suite',
    quick,
    machine: m,
    /** os.loadavg() when the run started and ended: other work on the machine shows here. */
    loadavg: load,
    seconds,
    config,
    rows,
    peakRssMiB: mapValues(peakRss, (b) => Math.round(b / MiB)),
    errors,
    logProblems: problems,
    restarts,
    dir: base,
    // Every run's figures (without the time series).
    runs: cases.map((c) => ({
      op: c.op,
      size: c.size,
      concurrency: c.concurrency,
      ceiling: c.runs.ceiling.map(runFigures),
      tessera: c.runs.tessera.map(runFigures),
    })),
  }
  const name = quick ? 'suite.quick' : date
  mkdirSync(RESULTS, { recursive: true })
  const jsonPath = join(RESULTS, `${name}.json`)
  writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`)
  const { throughput, p99 } = await writeCharts(figures, m, name, {
    date,
    repeats: REPEATS,
    durationMs: DURATION_MS,
    load,
    quick,
  })
  const rel = (p: string) => relative(process.cwd(), p) || p
  console.log(`\nResults: ${rel(jsonPath)}\nCharts:  ${rel(throughput)}, ${rel(p99)}`)
  say(`done in ${seconds} s`)
}

/** How a suite run was made, as its charts' small print says. */
interface RunInfo {
  date: string
  repeats: number
  durationMs: number
  load: { start: number[]; end: number[] }
  quick: boolean
}

/** Writes results/<name>-throughput.svg and results/<name>-p99.svg. */
async function writeCharts(
  figures: readonly ChartRow[],
  m: Record<string, unknown>,
  name: string,
  run: RunInfo,
): Promise<{ throughput: string; p99: string }> {
  const subtitle = `${BENCH_CLUSTER.nodes} nodes RS(${BENCH_CLUSTER.data},${BENCH_CLUSTER.parity}) + 1 gateway on one ${m.cores}-core machine (${String(m.cpu).trim()}), Node ${m.node}, shared with the load generator and the ceiling`
  const note =
    `${run.date} · medians of ${run.repeats} run(s) of ${run.durationMs / 1000} s · load average ` +
    `${run.load.start[0]} at the start, ${run.load.end[0]} at the end · pnpm bench:suite${run.quick ? ' --quick' : ''}`
  const throughput = join(RESULTS, `${name}-throughput.svg`)
  writeFileSync(
    throughput,
    await throughputSvg(figures, { title: 'Tessera S3 throughput by object size', subtitle, note }),
  )
  const p99 = join(RESULTS, `${name}-p99.svg`)
  writeFileSync(
    p99,
    await p99Svg(figures, { title: 'Tessera S3 p99 latency by concurrency', subtitle, note }),
  )
  return { throughput, p99 }
}

/** `--charts <results/<date>.json>`: draws that run's charts again (after a change to charts.ts). */
async function redraw(file: string): Promise<void> {
  const r = JSON.parse(readFileSync(file, 'utf8')) as {
    quick: boolean
    machine: Record<string, unknown>
    loadavg: { start: number[]; end: number[] }
    config: { durationMs: number; repeats: number }
    rows: { op: CaseOp; size: number; concurrency: number; ceiling: Summary; tessera: Summary }[]
  }
  const figures: ChartRow[] = r.rows.flatMap((c) =>
    c.op === 'put' || c.op === 'get'
      ? [
          { op: c.op, size: c.size, concurrency: c.concurrency, target: 'tessera', ...c.tessera },
          {
            op: c.op,
            size: c.size,
            concurrency: c.concurrency,
            target: 'HTTP ceiling',
            ...c.ceiling,
          },
        ]
      : [],
  )
  const name = basename(file, '.json')
  const out = await writeCharts(figures, r.machine, name, {
    date: String(r.machine.date).slice(0, 10),
    repeats: r.config.repeats,
    durationMs: r.config.durationMs,
    load: r.loadavg,
    quick: r.quick,
  })
  say(`wrote ${out.throughput}, ${out.p99}`)
}

function runFigures(r: LoadResult): Record<string, unknown> {
  const { series: _s, byOp, keysUsed: _k, ...total } = r
  return {
    ...roundAll(total),
    ...(Object.keys(byOp).length > 1 ? { byOp: mapValues(byOp, roundAll) } : {}),
  }
}

function roundAll<T extends object>(o: T): T {
  return Object.fromEntries(
    Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v]),
  ) as T
}

function mapValues<T, U>(o: Record<string, T>, f: (v: T) => U): Record<string, U> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]))
}

const chartsFrom = opts.charts
if (chartsFrom) await redraw(chartsFrom)
else await main()
