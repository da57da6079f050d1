// The bench scripts' command lines, run as a user runs them: `--help` prints the usage and runs
// nothing, an unknown option or a bad value is refused with a message, and an interrupted
// s3 bench (Ctrl-C, or killed outright) leaves no process behind, nor, on Ctrl-C, its objects.
// `npx tap bench/dist/bench-cli.test.js`
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'

const dist = (name: string): string => fileURLToPath(new URL(`./${name}.js`, import.meta.url))

const SCRIPTS = [
  's3.bench',
  'suite',
  'heal.bench',
  'load',
  'validate',
  'codec.bench',
  'commit.bench',
  'meta-cold.bench',
  'shard-write.bench',
  'rpc.bench',
  'channel.bench',
]

/** Runs a bench script to its end: exit status, stdout, stderr. */
async function run(script: string, args: string[]) {
  const child = spawn(process.execPath, [dist(script), ...args], { timeout: 60_000 })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const [status] = (await once(child, 'exit')) as [number | null]
  return { status, stdout, stderr }
}

t.test('--help prints the usage and runs nothing', async (t) => {
  const all = await Promise.all(SCRIPTS.map((script) => run(script, ['--help'])))
  for (const [i, r] of all.entries()) {
    const script = SCRIPTS[i]
    t.equal(r.status, 0, `${script} --help exits 0`)
    t.match(r.stdout, /^Usage: bench:/, `${script}: usage`)
    t.match(r.stdout, /--help/, `${script}: lists its options`)
  }
  // `pnpm bench:s3 -- --help` passes the `--` on.
  t.match((await run('s3.bench', ['--', '--help'])).stdout, /--concurrency <list>/)
})

t.test('unknown options and bad values are refused', async (t) => {
  const scripts = ['s3.bench', 'suite', 'heal.bench', 'codec.bench']
  const all = await Promise.all(scripts.map((script) => run(script, ['--no-such-option'])))
  for (const [i, r] of all.entries()) {
    t.equal(r.status, 1, `${scripts[i]}: exit 1`)
    t.match(r.stderr, /unknown option '--no-such-option'/)
  }
  const cases: [string, string[], RegExp][] = [
    ['s3.bench', ['--repeats', '0'], /--repeats must be a positive integer/],
    ['s3.bench', ['--ms', 'soon'], /--ms must be a positive integer/],
    ['s3.bench', ['--sizes', '4KiB,lots'], /not a size: "lots"/],
    ['s3.bench', ['--concurrency', '1,-8'], /--concurrency must be a positive integer/],
    ['heal.bench', ['--gib', '-1'], /--gib must be a positive number/],
    ['suite', ['--repeats', '2.5'], /--repeats must be a positive integer/],
    ['s3.bench', ['extra'], /too many arguments/],
  ]
  const results = await Promise.all(cases.map(([script, args]) => run(script, args)))
  for (const [i, [script, args, want]] of cases.entries()) {
    const r = results[i]!
    t.equal(r.status, 1, `${script} ${args.join(' ')}: exit 1`)
    t.match(r.stderr, want, `${script} ${args.join(' ')}: says why`)
  }
})

/** The pids of `parent`'s child processes (from /proc/<pid>/stat's ppid field). */
async function childrenOf(parent: number): Promise<number[]> {
  const out: number[] = []
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[1]) === parent) out.push(Number(name))
  }
  return out
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms: number) {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * An s3 bench started on a long run, once its cluster and the ceiling run: the process, its
 * folder and its child processes (ceiling, 4 nodes, gateway).
 */
async function benchUnderWay(t: Test) {
  const child: ChildProcess = spawn(
    process.execPath,
    [dist('s3.bench'), '--sizes', '4KiB', '--concurrency', '1', '--ms', '600000', '--repeats', '1'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let err = ''
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString()
  })
  child.stdout!.resume()
  await until('the folder', () => /files in \S+\n/.test(err) || child.exitCode !== null, 30_000)
  const base = /files in (\S+)\n/.exec(err)?.[1]
  t.ok(base, `the bench names its folder: ${err.split('\n')[0]}`)
  t.teardown(() => rm(base!, { recursive: true, force: true }))
  // The gateway starts last; its first line in its log means the cluster is up. The timed run
  // (the ceiling's first, 10 minutes long) follows at once.
  const gatewayLog = join(base!, '4KiB', 'g1', 'gateway.log')
  await until(
    'the cluster',
    async () => (await readFile(gatewayLog, 'utf8').catch(() => '')).includes('"listening"'),
    120_000,
  )
  await new Promise((r) => setTimeout(r, 1000))
  const children = await childrenOf(child.pid!)
  t.equal(children.length, 6, 'the ceiling, 4 nodes and a gateway run')
  return { child, base: base!, children, stderr: () => err }
}

t.test('Ctrl-C: the cluster stops and its drive folders go', async (t) => {
  const { child, base, children, stderr } = await benchUnderWay(t)
  const drive = join(base, '4KiB', 'n1', 'd1')
  t.ok(existsSync(drive), 'a drive folder exists during the run')
  const exited = once(child, 'exit')
  child.kill('SIGINT')
  const [code] = await exited
  t.equal(code, 130, 'exit code 130')
  t.match(stderr(), /interrupted \(SIGINT\): stopping and cleaning up/)
  await until('the children to exit', () => !children.some(alive), 20_000)
  t.same(children.filter(alive), [], 'no process left')
  t.notOk(existsSync(drive), 'the drive folders are removed')
  t.ok(existsSync(join(base, '4KiB', 'n1', 'node.log')), 'the logs stay')
})

t.test('killed outright: no process outlives the bench', async (t) => {
  const { child, children } = await benchUnderWay(t)
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
  await until('the children to exit', () => !children.some(alive), 20_000).catch(() => {})
  t.same(children.filter(alive), [], 'the cluster and the ceiling stop with it')
})
