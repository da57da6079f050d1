// pnpm bench:validate — checks the load generator against real S3 clients: the same PUT
// workload (default 64 objects of 16 MiB, 1 GiB, at concurrency 8) through bench:load's engine
// (s3-load.ts), through `aws s3 cp --recursive` and, with --rclone, `rclone copy`,
// against a fresh local cluster (4 nodes RS(2,2), one gateway). Prints each client's MB/s
// (median of --repeats runs, the clients taking turns at going first) and the ratio
// aws ÷ generator; exits 1 when that ratio is outside 1 ± --tolerance (default 0.2).
//
// The same workload, request for request: aws gets a temporary AWS_CONFIG_FILE with
// s3.max_concurrent_requests = concurrency and s3.multipart_threshold above the object size
// (each object one PUT; aws would otherwise upload 16 MiB files as two 8 MiB parts), and none of
// the environment's AWS_* settings (AWS_CA_BUNDLE…). Over http aws signs each body's SHA-256
// and sends its Content-MD5, so the gateway hashes every byte once more: the generator runs
// twice, as it runs by default (UNSIGNED-PAYLOAD) and with --sign-payload (the headers aws
// sends), and aws is compared with the latter; rclone sends UNSIGNED-PAYLOAD with a
// Content-MD5 (which costs the gateway nothing: it computes the MD5 for the ETag anyway) and is
// compared with the former. Keys are named alike; every run writes new keys, deleted before the
// next run. A client's figure is the wall time of its whole process (start-up included: what a
// user would time; aws's start-up alone, `aws s3api head-bucket`, is printed); the generator's
// is from its first request to its last response. Beside each figure: CPU seconds of the
// client, of the gateway and of the nodes over the run — on a small machine a client's CPU is
// taken from the server it measures. Writes results/validate.json.
//
// Options: --objects <n>, --size <size>, --concurrency <n>, --repeats <n> (default 3),
// --tolerance <f>, --aws <path> (default /usr/bin/aws, Debian's awscli, else aws on PATH;
// installed with apt-get when missing and root), --rclone (also rclone copy).

import { execFileSync, spawn } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { Command } from 'commander'
import { positive, wrap } from './cli.ts'
import { BENCH_CLUSTER, logProblems, startBenchCluster } from './local-cluster.ts'
import { machine, median, printTable } from './measure.ts'
import {
  createBucket,
  deleteObjects,
  formatBytes,
  objectKey,
  runLoad,
  s3Request,
  type Target,
} from './s3-load.ts'
import { parseSize } from './units.ts'

const o = new Command('bench:validate')
  .description('The load generator against aws s3 cp (and rclone): the same PUT workload, MB/s.')
  .option('--objects <n>', 'objects per run', positive('--objects'), 64)
  .option('--size <size>', 'object size', wrap(parseSize), 16 * 1024 * 1024)
  .option('--concurrency <n>', 'requests in flight', positive('--concurrency'), 8)
  .option('--repeats <n>', 'runs of each client', positive('--repeats'), 3)
  .option(
    '--tolerance <f>',
    'largest accepted |aws ÷ generator − 1|',
    positive('--tolerance', false),
    0.2,
  )
  .option('--aws <path>', 'the aws CLI (default /usr/bin/aws, else aws on PATH)')
  .option(
    '--rclone',
    'also time rclone copy (off by default: rclone 1.60, Debian 12, sends x-amz-acl: private, which the gateway refuses with AccessControlListNotSupported)',
  )
  .parse(process.argv.slice(process.argv[2] === '--' ? 3 : 2), { from: 'user' })
  .opts<{
    objects: number
    size: number
    concurrency: number
    repeats: number
    tolerance: number
    aws?: string
    rclone?: boolean
  }>()

const BUCKET = 'validate'

function say(line: string): void {
  process.stderr.write(`${line}\n`)
}

/** An executable on PATH, or undefined. */
function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name)
    if (dir && existsSync(p)) return p
  }
  return undefined
}

/** The aws CLI to use: --aws, Debian's /usr/bin/aws, aws on PATH, or apt-get's (as root). */
function findAws(): string {
  if (o.aws) return o.aws
  if (existsSync('/usr/bin/aws')) return '/usr/bin/aws'
  const onPath = which('aws')
  if (onPath) return onPath
  if (process.getuid?.() === 0) {
    say('aws not found: apt-get install -y awscli')
    execFileSync('apt-get', ['install', '-y', 'awscli'], { stdio: ['ignore', 'ignore', 'inherit'] })
    if (existsSync('/usr/bin/aws')) return '/usr/bin/aws'
  }
  throw new Error('no aws CLI: install awscli (apt-get install -y awscli) or pass --aws <path>')
}

const TICKS = 100 // USER_HZ: /proc times are in 1/100 s on Linux

/** utime + stime of `/proc/<pid>/stat` (or of its children, `cutime + cstime`), in seconds. */
function procCpu(pid: number | 'self', children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    // Fields after the command name (which may hold spaces), from field 3 on.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const at = children ? 13 : 11
    return (Number(f[at]) + Number(f[at + 1])) / TICKS
  } catch {
    return Number.NaN
  }
}

/** CPU seconds of the finished child processes of this process (aws, rclone). */
function childrenCpu(): number {
  return procCpu('self', true)
}

/** CPU seconds so far of the gateway and of the nodes together. */
function serverCpu(pids: Record<string, number>): { gateway: number; nodes: number } {
  let nodes = 0
  let gateway = 0
  for (const [id, pid] of Object.entries(pids)) {
    if (id.startsWith('g')) gateway += procCpu(pid)
    else nodes += procCpu(pid)
  }
  return { gateway, nodes }
}

/** Runs a command to completion: wall seconds; throws with its stderr if it fails. */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((ok, fail) => {
    const t0 = performance.now()
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d: Buffer) => {
      if (err.length < 4000) err += d.toString()
    })
    child.on('error', fail)
    child.on('exit', (code, signal) => {
      const s = (performance.now() - t0) / 1000
      if (code === 0) ok(s)
      else
        fail(
          new Error(
            `${cmd} ${args.slice(0, 3).join(' ')} … exited ${code ?? signal}: ${err.trim()}`,
          ),
        )
    })
  })
}

/** The environment of a client process: ours, without any AWS_* setting, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('AWS_') && !k.startsWith('RCLONE_')) env[k] = v
  return { ...env, ...extra }
}

/** Checks that `count` objects of `size` exist under `prefix` (one LIST page). */
async function checkUploaded(target: Target, prefix: string, count: number, size: number) {
  const res = await s3Request(target, 'GET', `/${BUCKET}`, {
    'list-type': '2',
    prefix,
    'max-keys': '1000',
  })
  const sizes = [...res.text.matchAll(/<Size>(\d+)<\/Size>/g)].map((m) => Number(m[1]))
  if (res.status !== 200 || sizes.length !== count || sizes.some((s) => s !== size))
    throw new Error(
      `expected ${count} objects of ${size} B under ${prefix}, found ${sizes.length} (${res.status})`,
    )
}

type Client = 'generator' | 'generator-signed' | 'aws' | 'rclone'
const NAMES: Record<Client, string> = {
  generator: 'bench:load (UNSIGNED-PAYLOAD)',
  'generator-signed': 'bench:load --sign-payload',
  aws: 'aws s3 cp --recursive',
  rclone: 'rclone copy',
}

const round2 = (v: number) => Math.round(v * 100) / 100
const fmtLoad = (l: number[]) => l.map((v) => v.toFixed(2)).join(', ')

async function main(): Promise<number> {
  const loadStart = loadavg()
  const { objects, size, concurrency, repeats, tolerance } = o
  const bytes = objects * size
  const aws = findAws()
  const rclone = o.rclone ? which('rclone') : undefined
  const awsVersion = execFileSync(aws, ['--version'], { env: cleanEnv({}) })
    .toString()
    .trim()
  const rcloneVersion = rclone
    ? execFileSync(rclone, ['version']).toString().split('\n')[0]!.trim()
    : undefined
  const base = mkdtempSync(join(tmpdir(), 'tessera-validate-'))
  say(
    `bench:validate: PUT ${objects} × ${formatBytes(size)} (${formatBytes(bytes)}) at concurrency ` +
      `${concurrency}, ${repeats} run(s) per client; ${awsVersion}${rcloneVersion ? `; ${rcloneVersion}` : ''}; files in ${base}`,
  )

  // The files aws and rclone upload, named as the generator names its keys.
  const files = join(base, 'files')
  mkdirSync(files)
  const data = randomFillSync(Buffer.allocUnsafe(size))
  for (let n = 0; n < objects; n++) {
    data.writeUInt32LE(n, 0)
    writeFileSync(join(files, objectKey('obj', size, n)), data)
  }

  const cluster = await startBenchCluster(join(base, 'cluster'), say)
  const endpoint = cluster.gateways[0]!.endpoint
  const target: Target = { endpoint, credentials: cluster.root, bucket: BUCKET }
  const awsConfig = join(base, 'aws-config')
  const awsEnv = cleanEnv({
    AWS_CONFIG_FILE: awsConfig,
    AWS_SHARED_CREDENTIALS_FILE: join(base, 'aws-credentials'),
    AWS_ACCESS_KEY_ID: cluster.root.accessKeyId,
    AWS_SECRET_ACCESS_KEY: cluster.root.secretAccessKey,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  })
  for (const [k, v] of [
    ['default.region', 'us-east-1'],
    ['default.s3.max_concurrent_requests', String(concurrency)],
    // Above the object size: every object is one PUT, as the generator sends it.
    ['default.s3.multipart_threshold', String(Math.max(size * 2, 64 * 1024 * 1024))],
    ['default.s3.addressing_style', 'path'],
  ] as const)
    execFileSync(aws, ['configure', 'set', k, v], { env: awsEnv })
  const rcloneEnv = cleanEnv({ RCLONE_CONFIG: join(base, 'rclone.conf') })
  writeFileSync(join(base, 'rclone.conf'), '')

  const clients: Client[] = [
    'generator',
    'generator-signed',
    'aws',
    ...(rclone ? (['rclone'] as const) : []),
  ]
  const runs: Record<Client, number[]> = {
    generator: [],
    'generator-signed': [],
    aws: [],
    rclone: [],
  }
  /** CPU seconds of each run: the client's, the gateway's and the nodes' together. */
  const cpu: Record<Client, { client: number; gateway: number; nodes: number }[]> = {
    generator: [],
    'generator-signed': [],
    aws: [],
    rclone: [],
  }
  let awsStartup = Number.NaN
  let status = 0
  try {
    await createBucket(target)
    // The aws process's own cost: start-up and one small request.
    const startups: number[] = []
    for (let i = 0; i < 3; i++)
      startups.push(
        await timed(
          aws,
          ['s3api', 'head-bucket', '--bucket', BUCKET, '--endpoint-url', endpoint],
          awsEnv,
        ).catch(() => Number.NaN),
      )
    awsStartup = median(startups)

    const run = async (client: Client, rep: number): Promise<number> => {
      const prefix = `r${rep}-${client}`
      let mbps: number
      const pids = cluster.pids()
      const server0 = serverCpu(pids)
      const self0 = process.cpuUsage()
      const children0 = childrenCpu()
      if (client === 'generator' || client === 'generator-signed') {
        const r = await runLoad({
          ...(client === 'generator-signed' ? { signPayload: true } : {}),
          ...target,
          op: 'put',
          size,
          concurrency,
          count: objects,
          warmupMs: 0,
          keyPrefix: `${prefix}/obj`,
        })
        if (r.errors > 0) throw new Error(`generator: ${r.errors} PUTs failed: ${r.firstError}`)
        mbps = r.mbps
      } else if (client === 'aws') {
        const s = await timed(
          aws,
          [
            's3',
            'cp',
            files,
            `s3://${BUCKET}/${prefix}/`,
            '--recursive',
            '--endpoint-url',
            endpoint,
            '--only-show-errors',
            '--no-progress',
          ],
          awsEnv,
        )
        mbps = bytes / s / 1e6
      } else {
        const s = await timed(
          rclone!,
          [
            'copy',
            files,
            `:s3:${BUCKET}/${prefix}`,
            '--s3-provider',
            'Other',
            '--s3-endpoint',
            endpoint,
            '--s3-access-key-id',
            cluster.root.accessKeyId,
            '--s3-secret-access-key',
            cluster.root.secretAccessKey,
            '--s3-region',
            'us-east-1',
            '--s3-force-path-style=true',
            '--s3-upload-cutoff',
            `${Math.ceil(Math.max(size * 2, 64 * 1024 * 1024) / (1024 * 1024))}Mi`,
            '--s3-no-check-bucket',
            // No x-amz-acl header, as the generator and aws send none (rclone 1.60 sends
            // `private` all the same; later versions honour the empty ACL).
            '--s3-acl',
            '',
            '--no-check-dest',
            // No HEAD of every object after its PUT: the same requests as the others send.
            '--s3-no-head',
            '--transfers',
            String(concurrency),
            '--retries',
            '1',
            '--low-level-retries',
            '1',
          ],
          rcloneEnv,
        )
        mbps = bytes / s / 1e6
      }
      const self = process.cpuUsage(self0)
      const server1 = serverCpu(pids)
      cpu[client].push({
        client: client.startsWith('generator')
          ? (self.user + self.system) / 1e6
          : childrenCpu() - children0,
        gateway: server1.gateway - server0.gateway,
        nodes: server1.nodes - server0.nodes,
      })
      await checkUploaded(target, `${prefix}/`, objects, size)
      // Only new keys are ever written: delete this run's, and let the drives' trash empty.
      const d = await deleteObjects({
        ...target,
        size,
        count: objects,
        keyPrefix: `${prefix}/obj`,
        quiet: true,
      })
      if (d.errors > 0) throw new Error(`deleting ${prefix}: ${d.errors} failed: ${d.firstError}`)
      await new Promise((ok) => setTimeout(ok, 1500))
      return mbps
    }

    for (let rep = 1; rep <= repeats; rep++) {
      // Rotate which client goes first, so that drift over the run favours none.
      const order = clients.map((_, i) => clients[(i + rep - 1) % clients.length]!)
      for (const client of order) {
        const mbps = await run(client, rep)
        runs[client].push(mbps)
        say(`  run ${rep}/${repeats} ${client}: ${mbps.toFixed(1)} MB/s`)
      }
    }
  } finally {
    await cluster.close()
    const problems = await logProblems(cluster)
    for (const p of problems) say(`  log: ${p.process} ${p.level} ×${p.count}: ${p.msg}`)
    await rm(base, { recursive: true, force: true })
  }

  const awsNet = runs.aws.map((mbps) => bytes / (bytes / mbps / 1e6 - awsStartup) / 1e6)
  const versus = (c: Client): Client | undefined =>
    c === 'aws' ? 'generator-signed' : c === 'rclone' ? 'generator' : undefined
  const rows = clients.map((c) => {
    const m = median(runs[c])
    const ref = versus(c)
    return {
      client: NAMES[c],
      'MB/s': Math.round(m * 10) / 10,
      runs: runs[c].map((v) => v.toFixed(1)).join(' '),
      'vs generator': ref ? `${(m / median(runs[ref])).toFixed(3)} (${ref})` : '-',
      'without start-up':
        c === 'aws' && awsNet.every(Number.isFinite)
          ? (median(awsNet) / median(runs['generator-signed'])).toFixed(3)
          : '-',
      'client CPU s': median(cpu[c].map((x) => x.client)).toFixed(1),
      'gateway CPU s': median(cpu[c].map((x) => x.gateway)).toFixed(1),
      'nodes CPU s': median(cpu[c].map((x) => x.nodes)).toFixed(1),
    }
  })
  console.log('')
  printTable(rows, [
    'client',
    'MB/s',
    'runs',
    'vs generator',
    'without start-up',
    'client CPU s',
    'gateway CPU s',
    'nodes CPU s',
  ])
  const ratio = median(runs.aws) / median(runs['generator-signed'])
  const ratioUnsigned = median(runs.aws) / median(runs.generator)
  const within = Math.abs(ratio - 1) <= tolerance
  console.log(
    `\nPUT ${objects} × ${formatBytes(size)} at concurrency ${concurrency}, medians of ${repeats}; ` +
      `MB = 1e6 B. aws start-up and one request alone: ${awsStartup.toFixed(2)} s (included in its figure).`,
  )
  console.log(
    `aws ÷ generator (same headers) = ${ratio.toFixed(3)}: ${within ? 'within' : 'OUTSIDE'} ` +
      `±${Math.round(tolerance * 100)}%; aws ÷ generator (default, UNSIGNED-PAYLOAD) = ${ratioUnsigned.toFixed(3)}` +
      ` (${machine().cores} cores, shared by the cluster and the clients)`,
  )
  const load = { start: loadStart, end: loadavg() }
  console.log(
    `Load average (1, 5, 15 min): ${fmtLoad(load.start)} at the start, ${fmtLoad(load.end)} at the end.`,
  )
  const summary = {
    bench: 'validate',
    machine: machine(),
    loadavg: { start: load.start.map(round2), end: load.end.map(round2) },
    config: { objects, size, concurrency, repeats, tolerance, cluster: BENCH_CLUSTER },
    clients: { aws: awsVersion, ...(rcloneVersion ? { rclone: rcloneVersion } : {}) },
    mbps: Object.fromEntries(clients.map((c) => [c, round2(median(runs[c]))])),
    runs: Object.fromEntries(clients.map((c) => [c, runs[c].map(round2)])),
    cpuSeconds: Object.fromEntries(
      clients.map((c) => [
        c,
        cpu[c].map((x) => ({
          client: round2(x.client),
          gateway: round2(x.gateway),
          nodes: round2(x.nodes),
        })),
      ]),
    ),
    awsStartupSeconds: round2(awsStartup),
    ratio: Math.round(ratio * 1000) / 1000,
    ratioVsUnsigned: Math.round(ratioUnsigned * 1000) / 1000,
    within,
  }
  const out = new URL('../results/validate.json', import.meta.url)
  mkdirSync(new URL('.', out), { recursive: true })
  writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`)
  console.log('Results: bench/results/validate.json')
  if (!within) status = 1
  return status
}

try {
  process.exitCode = await main()
} catch (err) {
  process.stderr.write(`bench:validate: ${(err as Error).stack ?? err}\n`)
  process.exitCode = 1
}
