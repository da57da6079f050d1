// pnpm bench:load -- --op <put|get|mixed|list> [options] — a warp-like S3 load generator on
// s3-load.ts. Without --endpoint it starts a fresh local cluster (4 nodes RS(2,2), one gateway)
// and measures that; with --endpoint (and --access-key/--secret-key) any S3 endpoint (Tessera,
// MinIO, AWS…). Also `node bench/dist/load.js …`; `--help` lists every option.
//
// --size and --concurrency take lists (`--size 4KiB,1MiB --concurrency 1,8`): one run per
// combination. put writes new objects for --duration (nothing prepared). get, list and mixed
// first upload --objects objects of the size (a "bulk upload" with its own progress), then GET
// them round-robin / LIST them a page at a time / run the weighted --mix over them (each mixed
// run from a fresh set). A warm-up (a fifth of the duration, at most 1 s) comes first and is not
// measured. Progress on stderr (a bar on a terminal, a line every 5 s otherwise); then a table
// (ops/s, MB/s, p50/p90/p99 latency, errors), and the result files: <out>.json (the figures,
// with the throughput over time) and a chart, <out>-timeline.svg for one run, or for several
// <out>-throughput.svg (MB/s against object size) and <out>-p99.svg (p99 against concurrency).
// --json prints the JSON on stdout (the table then goes to stderr). The objects of the run are
// deleted at the end unless --no-cleanup. Ctrl-C ends the run early and still reports; a second
// one quits. Exits 1 if any operation failed.
//
// --smoke (CI): a local cluster, PUT, GET, LIST and mixed of 4 KiB at concurrency 2 for 0.3 s
// each; no result files.

import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { LocalCluster } from '@tessera/server'
import { Command, Option } from 'commander'
import { type ChartRow, p99Svg, throughputSvg, timeSeriesSvg } from './charts.ts'
import { list, positive, wrap } from './cli.ts'
import { BENCH_CLUSTER, logProblems, startBenchCluster } from './local-cluster.ts'
import { machine, printTable } from './measure.ts'
import { type ProgressView, progressView } from './progress.ts'
import {
  createBucket,
  DEFAULT_MIX,
  deleteObjects,
  formatBytes,
  type LoadProgress,
  type LoadResult,
  OP_KINDS,
  type OpKind,
  type OpStats,
  prepareObjects,
  runLoad,
  type Target,
} from './s3-load.ts'
import { formatDuration, parseDuration, parseMix, parseSize } from './units.ts'

type Workload = 'put' | 'get' | 'mixed' | 'list'
const WORKLOADS: readonly Workload[] = ['put', 'get', 'mixed', 'list']

interface Options {
  op: Workload
  endpoint?: string
  accessKey?: string
  secretKey?: string
  region: string
  bucket: string
  prefix?: string
  size?: number[]
  objects?: number
  concurrency: number[]
  duration: number
  warmup?: number
  mix?: Partial<Record<OpKind, number>>
  maxKeys: number
  cleanup: boolean
  out: string
  json?: boolean
  insecure?: boolean
  signPayload?: boolean
  smoke?: boolean
}

/** Objects prepared by default; PUT prepares none. */
const DEFAULT_OBJECTS: Record<Exclude<Workload, 'put'>, number> = {
  get: 100,
  list: 1000,
  mixed: 100,
}
const RESULTS = fileURLToPath(new URL('../results/', import.meta.url))

const positiveInt = (what: string) => positive(what)

const program = new Command('bench:load')
  .description(
    'A warp-like S3 load generator: ops/s, MB/s and latency percentiles of one workload, ' +
      'against a fresh local Tessera cluster (default) or any S3 endpoint.',
  )
  .addOption(new Option('--op <workload>', 'workload').choices(WORKLOADS).default('put'))
  .option(
    '--size <sizes>',
    'object size(s), comma-separated: 4KiB, 1MiB, 16MiB, 1MB… (default 1MiB; list 1KiB)',
    list(wrap(parseSize)),
  )
  .option(
    '--objects <n>',
    `objects to prepare (get ${DEFAULT_OBJECTS.get}, list ${DEFAULT_OBJECTS.list}, mixed ${DEFAULT_OBJECTS.mixed}); put: overwrite n keys round-robin instead of writing new ones`,
    positiveInt('--objects'),
  )
  .option(
    '--concurrency <n>',
    'requests in flight (one connection each), comma-separated for several runs',
    list(positiveInt('--concurrency')),
    [8],
  )
  .addOption(
    new Option('--duration <time>', 'measured time of each run: 30s, 500ms, 2m, 1m30s')
      .argParser(wrap(parseDuration))
      .default(10_000, '10s'),
  )
  .option(
    '--warmup <time>',
    'unmeasured warm-up first (default: a fifth of --duration, at most 1s)',
    wrap(parseDuration),
  )
  .option(
    '--mix <weights>',
    `mixed: weights of get, put, delete, head (stat), list (default ${mixText(DEFAULT_MIX)})`,
    wrap(parseMix),
  )
  .option('--max-keys <n>', 'list: keys per ListObjectsV2 page', positiveInt('--max-keys'), 1000)
  .addOption(
    new Option(
      '--endpoint <url>',
      'S3 endpoint, e.g. http://127.0.0.1:9000 (path-style); default: start a local cluster',
    ).env('AWS_ENDPOINT_URL'),
  )
  .addOption(new Option('--access-key <id>', 'access key id').env('AWS_ACCESS_KEY_ID'))
  .addOption(new Option('--secret-key <secret>', 'secret access key').env('AWS_SECRET_ACCESS_KEY'))
  .addOption(new Option('--region <region>', 'SigV4 region').env('AWS_REGION').default('us-east-1'))
  .option('--bucket <name>', 'bucket (created if missing)', 'tessera-bench')
  .option('--prefix <prefix>', 'key prefix (default: tessera-bench/<random>)')
  .option('--no-cleanup', 'keep the objects of the run (deleted by default)')
  .option('--out <path>', 'result files: <path>.json and <path>-*.svg', join(RESULTS, 'load'))
  .option('--json', 'print the JSON result on stdout (the table goes to stderr)')
  .option(
    '--sign-payload',
    'sign PUT bodies (SHA-256) and send Content-MD5, as aws s3 cp does over http, instead of UNSIGNED-PAYLOAD',
  )
  .option('--insecure', 'https: accept any certificate')
  .option('--smoke', 'CI: every workload, 4KiB, concurrency 2, 0.3 s each, local cluster, no files')
  .showHelpAfterError('(--help lists the options)')
  .addHelpText(
    'after',
    `
put prepares nothing and writes new keys; get, list and mixed first upload --objects objects.
Credentials also come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.

Examples:
  pnpm bench:load -- --op put --size 1MiB --concurrency 8 --duration 30s
  pnpm bench:load -- --op get --size 4KiB,1MiB,16MiB --concurrency 1,8,32 --duration 5s
  pnpm bench:load -- --op mixed --mix get=60,put=30,delete=10 --endpoint http://127.0.0.1:9000
  pnpm bench:load -- --op list --objects 5000 --max-keys 1000`,
  )

function mixText(mix: Partial<Record<OpKind, number>>): string {
  return Object.entries(mix)
    .map(([k, v]) => `${k}=${v}`)
    .join(',')
}

function say(line: string): void {
  process.stderr.write(`${line}\n`)
}

/** One measured run of the matrix. */
interface Run {
  op: Workload
  size: number
  concurrency: number
  result: LoadResult
}

/** Objects left on the target to delete at the end. */
interface Written {
  keyPrefix: string
  size: number
  count: number
}

async function main(): Promise<number> {
  // `pnpm bench:load -- --op put …` passes the `--` on: drop it.
  const argv = process.argv.slice(2)
  if (argv[0] === '--') argv.shift()
  program.parse(argv, { from: 'user' })
  const o = program.opts<Options>()
  if (Boolean(o.accessKey) !== Boolean(o.secretKey))
    program.error(
      'give both --access-key and --secret-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)',
    )
  if (o.endpoint !== undefined && !URL.canParse(o.endpoint))
    program.error(`--endpoint: not a URL: ${o.endpoint}`)
  const workloads: Workload[] = o.smoke ? ['put', 'get', 'list', 'mixed'] : [o.op]
  const concurrencies = o.smoke ? [2] : o.concurrency
  const durationMs = o.smoke ? 300 : o.duration
  const warmupMs = o.smoke ? 100 : (o.warmup ?? Math.min(1000, durationMs / 5))
  const base = o.prefix ?? `tessera-bench/${randomBytes(4).toString('hex')}`

  let cluster: LocalCluster | undefined
  let clusterDir: string | undefined
  let target: Target
  if (o.endpoint !== undefined && !o.smoke) {
    if (!o.accessKey) say('no credentials: requests go unsigned')
    target = {
      endpoint: new URL(o.endpoint).origin,
      bucket: o.bucket,
      region: o.region,
      ...(o.accessKey
        ? { credentials: { accessKeyId: o.accessKey, secretAccessKey: o.secretKey! } }
        : {}),
      ...(o.insecure ? { insecure: true } : {}),
    }
  } else {
    clusterDir = mkdtempSync(join(tmpdir(), 'tessera-load-'))
    say(
      `starting a local cluster: ${BENCH_CLUSTER.nodes} nodes RS(${BENCH_CLUSTER.data},${BENCH_CLUSTER.parity}), 1 gateway, in ${clusterDir}`,
    )
    cluster = await startBenchCluster(clusterDir, say)
    target = {
      endpoint: cluster.gateways[0]!.endpoint,
      credentials: cluster.root,
      bucket: o.bucket,
    }
  }

  const abort = new AbortController()
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(130)
    say('\ninterrupted: ending the run (Ctrl-C again to quit now)')
    abort.abort()
  }
  process.on('SIGINT', onSigint)
  const runs: Run[] = []
  const written: Written[] = []
  let cleanupErrors = 0
  try {
    await createBucket(target)
    for (const op of workloads) {
      const sizes = o.smoke ? [4096] : (o.size ?? [op === 'list' ? 1024 : 1024 * 1024])
      const objects =
        op === 'put'
          ? o.objects
          : o.smoke
            ? { get: 8, list: 20, mixed: 8 }[op]
            : (o.objects ?? DEFAULT_OBJECTS[op])
      const mix = op === 'mixed' ? (o.mix ?? DEFAULT_MIX) : undefined
      for (const size of sizes) {
        // get and list read one prepared set per size; mixed deletes and adds objects, so each
        // of its runs starts from a fresh set.
        const shared = `${base}/${op}`
        if ((op === 'get' || op === 'list') && objects !== undefined && !abort.signal.aborted) {
          written.push({ keyPrefix: shared, size, count: objects })
          await prepare(target, size, objects, shared, concurrencies)
        }
        for (const concurrency of concurrencies) {
          if (abort.signal.aborted) break
          const keyPrefix = op === 'get' || op === 'list' ? shared : `${base}/${op}-c${concurrency}`
          if (op === 'mixed' && objects !== undefined) {
            written.push({ keyPrefix, size, count: objects })
            await prepare(target, size, objects, keyPrefix, concurrencies)
          }
          const what =
            `${op}${mix ? ` (${mixText(mix)})` : ''} ${op === 'list' ? `${o.maxKeys} keys/page over ` : ''}` +
            `${formatBytes(size)} objects, concurrency ${concurrency}, ${formatDuration(durationMs)}`
          say(`${what}: ${target.endpoint} bucket ${o.bucket}, keys ${keyPrefix}-${size}-<n>`)
          const entry: Written = { keyPrefix, size, count: 0 }
          if (op === 'put') written.push(entry)
          const result = await measure(
            target,
            {
              op,
              size,
              concurrency,
              durationMs,
              warmupMs,
              keyPrefix,
              listMaxKeys: o.maxKeys,
              ...(o.signPayload ? { signPayload: true } : {}),
              ...(objects !== undefined ? { objects } : {}),
              ...(mix ? { mix } : {}),
            },
            abort.signal,
          )
          if (op === 'put' || op === 'mixed')
            for (const w of written)
              if (w.keyPrefix === keyPrefix) w.count = Math.max(w.count, result.keysUsed)
          runs.push({ op, size, concurrency, result })
          say(`  ${summaryLine(result)}`)
        }
      }
    }
  } finally {
    process.off('SIGINT', onSigint)
    if (o.cleanup && cluster === undefined) {
      for (const w of written) {
        if (w.count === 0) continue
        const c = await deleteObjects({ ...target, ...w }).catch((err: Error) => ({
          errors: w.count,
          firstError: err.message,
        }))
        cleanupErrors += c.errors
        if (c.errors > 0) say(`cleanup: ${c.errors} DELETEs failed, first: ${c.firstError}`)
      }
    }
    if (cluster) {
      await cluster.close()
      for (const p of await logProblems(cluster))
        say(`  cluster log: ${p.process} ${p.level} ×${p.count}: ${p.msg}`)
      await rm(clusterDir!, { recursive: true, force: true })
    }
  }
  if (runs.length === 0) return 1

  const table = report(runs, o.maxKeys)
  const out = o.json ? (line: string) => say(line) : (line: string) => console.log(line)
  out('')
  printTable(table.rows, table.columns, out)
  out(
    `\n${formatDuration(durationMs)} measured per run after a ${formatDuration(warmupMs)} warm-up; ` +
      'MB = 1e6 bytes of object data; latency from request issued to response complete.',
  )
  for (const r of runs)
    for (const k of OP_KINDS) {
      const e = r.result.byOp[k]?.firstError
      if (e) out(`first ${k.toUpperCase()} error (${caseName(r)}): ${e}`)
    }

  const errors = runs.reduce((n, r) => n + r.result.errors, 0) + cleanupErrors
  if (o.smoke) return errors > 0 ? 1 : 0

  const m = machine()
  const doc = {
    bench: 'load',
    machine: m,
    target: cluster
      ? {
          local: `${BENCH_CLUSTER.nodes} nodes RS(${BENCH_CLUSTER.data},${BENCH_CLUSTER.parity}), 1 gateway`,
          cluster: BENCH_CLUSTER,
        }
      : { endpoint: target.endpoint, bucket: o.bucket },
    config: {
      op: o.op,
      sizes: [...new Set(runs.map((r) => r.size))],
      concurrency: concurrencies,
      durationMs,
      warmupMs,
      ...(o.op === 'mixed' ? { mix: o.mix ?? DEFAULT_MIX } : {}),
      ...(o.op === 'list' ? { maxKeys: o.maxKeys } : {}),
      ...(o.objects !== undefined ? { objects: o.objects } : {}),
      signPayload: o.signPayload === true,
      interrupted: abort.signal.aborted,
    },
    runs: runs.map((r) => {
      const { byOp, series, keysUsed: _, ...total } = r.result
      return { op: r.op, size: r.size, concurrency: r.concurrency, total, byOp, series }
    }),
  }
  if (o.json) console.log(JSON.stringify(doc, null, 2))
  const outBase = resolve(o.out)
  mkdirSync(dirname(outBase), { recursive: true })
  write(`${outBase}.json`, `${JSON.stringify(doc, null, 2)}\n`)
  const where = cluster ? 'local cluster' : target.endpoint
  const note = `${where} · ${m.date} · ${String(m.cpu).trim()}, ${m.cores} cores · pnpm bench:load`
  if (runs.length === 1) {
    const r = runs[0]!
    write(
      `${outBase}-timeline.svg`,
      await timeSeriesSvg(r.result, {
        title: `bench:load ${caseName(r)}`,
        subtitle: summaryLine(r.result),
        note,
      }),
    )
  } else {
    const rows: ChartRow[] = runs
      .filter((r) => r.op === 'put' || r.op === 'get')
      .map((r) => ({
        op: r.op as 'put' | 'get',
        size: r.size,
        concurrency: r.concurrency,
        target: cluster ? 'tessera' : target.endpoint,
        mbps: r.result.mbps,
        p99ms: r.result.p99ms,
      }))
    if (rows.length > 0) {
      const about = { title: '', subtitle: `bench:load --op ${o.op}`, note }
      write(
        `${outBase}-throughput.svg`,
        await throughputSvg(rows, { ...about, title: 'S3 throughput by object size' }),
      )
      write(
        `${outBase}-p99.svg`,
        await p99Svg(rows, { ...about, title: 'S3 p99 latency by concurrency' }),
      )
    }
  }
  return errors > 0 ? 1 : 0
}

/** Uploads the objects a get, list or mixed run reads. */
async function prepare(
  target: Target,
  size: number,
  count: number,
  keyPrefix: string,
  concurrencies: readonly number[],
): Promise<void> {
  await prepareObjects({
    ...target,
    size,
    count,
    keyPrefix,
    concurrency: Math.max(8, ...concurrencies),
  }).catch((err: Error) => {
    throw new Error(`bulk upload: ${err.message}`)
  })
}

/** One run with its progress views (warm-up, then the measured phase). */
async function measure(
  target: Target,
  load: Omit<Parameters<typeof runLoad>[0], keyof Target>,
  signal: AbortSignal,
): Promise<LoadResult> {
  const views = new Map<LoadProgress['phase'], ProgressView>()
  let current: ProgressView | undefined
  return runLoad({
    ...target,
    ...load,
    signal,
    onProgress: (p) => {
      let view = views.get(p.phase)
      if (!view) {
        current?.stop()
        view = progressView(
          p.phase === 'warmup' ? '  warm-up' : `  ${load.op}`,
          { durationMs: p.phase === 'warmup' ? load.warmupMs! : load.durationMs! },
          { bytes: load.op !== 'list' },
        )
        views.set(p.phase, view)
        current = view
      }
      view.update(p)
    },
  }).finally(() => current?.stop())
}

function caseName(r: { op: Workload; size: number; concurrency: number }): string {
  return `${r.op} ${formatBytes(r.size)} c${r.concurrency}`
}

function summaryLine(r: LoadResult): string {
  return (
    `${fmt(r.opsPerSec)} ops/s, ${fmt(r.mbps)} MB/s, p50 ${fmt(r.p50ms)} ms, p90 ${fmt(r.p90ms)} ms, ` +
    `p99 ${fmt(r.p99ms)} ms, ${r.errors} errors over ${r.seconds.toFixed(1)} s`
  )
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '-'
  return v >= 100 ? String(Math.round(v)) : String(Number(v.toPrecision(3)))
}

function report(
  runs: readonly Run[],
  maxKeys: number,
): { rows: Record<string, unknown>[]; columns: string[] } {
  const row = (r: Run, op: string, s: OpStats) => ({
    op,
    size: formatBytes(r.size),
    conc: r.concurrency,
    ops: s.ops,
    'ops/s': fmt(s.opsPerSec),
    'MB/s': /^(mixed|mixed PUT|mixed GET|PUT|GET)$/.test(op) ? fmt(s.mbps) : '-',
    'p50 ms': fmt(s.p50ms),
    'p90 ms': fmt(s.p90ms),
    'p99 ms': fmt(s.p99ms),
    errors: s.errors,
    'keys/page': s.keysPerList !== undefined ? `${s.keysPerList}/${maxKeys}` : '',
  })
  const rows: Record<string, unknown>[] = []
  for (const r of runs) {
    const kinds = OP_KINDS.filter((k) => r.result.byOp[k])
    if (kinds.length === 1) rows.push(row(r, kinds[0]!.toUpperCase(), r.result))
    else {
      rows.push(row(r, 'mixed', r.result))
      for (const k of kinds) rows.push(row(r, `mixed ${k.toUpperCase()}`, r.result.byOp[k]!))
    }
  }
  const columns = ['op', 'size', 'conc', 'ops', 'ops/s', 'MB/s', 'p50 ms', 'p90 ms', 'p99 ms']
  columns.push('errors')
  if (runs.some((r) => r.result.byOp.list)) columns.push('keys/page')
  return { rows, columns }
}

function write(path: string, text: string): void {
  writeFileSync(path, text)
  say(`wrote ${path}`)
}

try {
  process.exitCode = await main()
} catch (err) {
  say(`bench:load: ${(err as Error).stack ?? err}`)
  process.exitCode = 1
}
