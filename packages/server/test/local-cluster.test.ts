// The local cluster launcher and the `tessera` CLI's long-running commands, with real processes:
// startLocalCluster (4 nodes, RS(2,2), one gateway) serving signed S3 requests; `tessera server`
// and `tessera cluster` surviving a restart on the same folder with the same credential, which
// they show once only.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import { DAEMON_ENV, DAEMON_V8_FLAGS } from '@tessera/protocol'
import t from 'tap'
import { freePort, NODE_MAIN, startLocalCluster } from '../src/local-cluster.ts'

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url))

function client(endpoint: string, credentials: { accessKeyId: string; secretAccessKey: string }) {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    maxAttempts: 1,
  })
}

async function getBytes(s3: S3Client, Bucket: string, Key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket, Key }))
  return Buffer.from(await r.Body!.transformToByteArray())
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777
}

t.test('startLocalCluster: 4 nodes, RS(2,2), one gateway, signed PUT and GET', async (t) => {
  let cluster: Awaited<ReturnType<typeof startLocalCluster>> | undefined
  // Before t.testdir(), so tap removes the folder only after the processes are stopped.
  t.teardown(() => cluster?.close({ signal: 'SIGKILL' }))
  cluster = await startLocalCluster({
    dir: t.testdir(),
    nodes: 4,
    drivesPerNode: 1,
    data: 2,
    parity: 2,
    gateways: 1,
    blockSize: 64 * 1024,
    inlineBelow: 4096,
  })
  t.equal(cluster.nodes.length, 4)
  t.equal(cluster.gateways.length, 1)
  t.ok(cluster.created, 'a new folder: files created')
  t.ok(cluster.createdRoot, 'a new root credential')
  t.match(cluster.root.accessKeyId, /^TS[A-Z2-7]{18}$/)
  t.equal(await mode(cluster.credentialsPath), 0o600, 'credentials.yaml is 0600')
  t.equal(await mode(join(cluster.dir, 'n1', 'node.key')), 0o600)
  t.equal(await mode(join(cluster.dir, 'g1', 'gateway.key')), 0o600)
  // Every daemon runs with the shipped V8 flags (DAEMON_V8_FLAGS).
  for (const pid of Object.values(cluster.pids())) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')
    for (const flag of DAEMON_V8_FLAGS) {
      t.ok(argv.includes(flag), `process ${pid} has ${flag}: ${argv.slice(0, 4).join(' ')}`)
    }
    // And the daemon environment (DAEMON_ENV), unless this process's own sets the variable.
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0')
    for (const [k, v] of Object.entries(DAEMON_ENV)) {
      const want = `${k}=${process.env[k] ?? v}`
      t.ok(environ.includes(want), `process ${pid} runs with ${want}`)
    }
  }
  t.same(Object.keys(cluster.pids()).sort(), ['g1', 'n1', 'n2', 'n3', 'n4'])

  const endpoint = cluster.gateways[0]!.endpoint
  t.match(endpoint, /^http:\/\/127\.0\.0\.1:\d+$/)
  const s3 = client(endpoint, cluster.root)
  t.teardown(() => s3.destroy())
  await s3.send(new CreateBucketCommand({ Bucket: 'local' }))
  const small = randomBytes(1000)
  const large = randomBytes(300_000)
  await s3.send(new PutObjectCommand({ Bucket: 'local', Key: 'small', Body: small }))
  await s3.send(new PutObjectCommand({ Bucket: 'local', Key: 'large', Body: large }))
  t.ok((await getBytes(s3, 'local', 'small')).equals(small), 'inline object read back')
  t.ok((await getBytes(s3, 'local', 'large')).equals(large), 'erasure-coded object read back')

  // A wrong secret is refused: the gateway really checks signatures.
  const wrong = client(endpoint, { ...cluster.root, secretAccessKey: 'not-the-secret-at-all' })
  t.teardown(() => wrong.destroy())
  await t.rejects(getBytes(wrong, 'local', 'small'))

  // A node restarts on its own files; the object is still whole.
  await cluster.stop('n2')
  t.notOk(cluster.node('n2').child, 'stopped')
  await cluster.start('n2')
  t.ok((await getBytes(s3, 'local', 'large')).equals(large))

  await cluster.close()
  t.same(cluster.pids(), {}, 'every process stopped')
  t.equal(cluster.gateways[0]!.endpoint, '')
})

t.test('freePort never gives the same port twice in a process', async (t) => {
  // A cluster's ports are all picked before any is bound, so a repeat would give two nodes one
  // address. 1,500 picks among its 12,000 ports would repeat one almost surely (the birthday
  // bound: about 90 pairs) if picks were independent.
  const ports: number[] = []
  for (let i = 0; i < 1500; i++) ports.push(await freePort())
  t.equal(new Set(ports).size, ports.length, 'all different')
})

t.test('startLocalCluster refuses a layout that cannot hold an erasure set', async (t) => {
  await t.rejects(
    startLocalCluster({ dir: t.testdir(), nodes: 1, drivesPerNode: 2, data: 2, parity: 2 }),
  )
})

/** A `tessera` CLI process and what it printed up to its `{"listening":…}` line. */
async function runCli(args: string[]): Promise<{ child: ChildProcess; out: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString()
  })
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString()
      if (/"listening".*\n/.test(out)) {
        child.stdout!.off('data', onData)
        child.stdout!.resume()
        resolve()
      }
    }
    child.stdout!.on('data', onData)
    child.once('exit', (code) => reject(new Error(`tessera exited with ${code}: ${err}`)))
  })
  return { child, out }
}

/** Stops a child with SIGTERM: its exit code, or the signal that ended it (for the report). */
async function terminate(child: ChildProcess): Promise<number | string | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return child.exitCode ?? child.signalCode
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const [code, signal] = await exited
  return (code as number | null) ?? (signal as string | null)
}

t.test('tessera server <dir>: port 0, restart with the same credential', async (t) => {
  const dir = t.testdir()
  const args = ['server', dir, '--address', '127.0.0.1:0', '--drives', '6']
  const first = await runCli(args)
  t.teardown(() => terminate(first.child))
  const port = (
    JSON.parse(first.out.split('\n').find((l) => l.includes('"listening"'))!) as {
      listening: { port: number }
    }
  ).listening.port
  t.ok(port > 0, 'port 0 gives a real port')
  const accessKeyId = /AWS_ACCESS_KEY_ID=(\S+)/.exec(first.out)?.[1]
  const secretAccessKey = /AWS_SECRET_ACCESS_KEY=(\S+)/.exec(first.out)?.[1]
  t.ok(accessKeyId && secretAccessKey, 'the first start shows the root credential')
  const credentials = { accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey! }
  const data = randomBytes(200_000)
  const s3 = client(`http://127.0.0.1:${port}`, credentials)
  await s3.send(new CreateBucketCommand({ Bucket: 'keep' }))
  await s3.send(new PutObjectCommand({ Bucket: 'keep', Key: 'obj', Body: data }))
  s3.destroy()
  t.equal(await terminate(first.child), 0, 'SIGTERM: an orderly exit')

  const second = await runCli(args)
  t.teardown(() => terminate(second.child))
  t.notMatch(second.out, secretAccessKey!, 'the second start does not print the secret')
  t.notMatch(second.out, /AWS_SECRET_ACCESS_KEY/)
  t.match(second.out, `Root access key id: ${accessKeyId}`)
  const port2 = /"listening":\{"port":(\d+)/.exec(second.out)?.[1]
  const again = client(`http://127.0.0.1:${port2}`, credentials)
  t.teardown(() => again.destroy())
  t.ok((await getBytes(again, 'keep', 'obj')).equals(data), 'the object survived the restart')
  for (const f of ['credentials.yaml', 'node.key', 'gateway.key'])
    t.equal(await mode(join(dir, f)), 0o600, `${f} is 0600`)
  t.equal(await terminate(second.child), 0)
})

t.test('tessera cluster <dir>: processes, restart, credential shown once', async (t) => {
  const dir = t.testdir()
  const args = ['cluster', dir, '--address', '127.0.0.1:0', '--nodes', '3', '--parity', '1']
  const first = await runCli(args)
  t.teardown(() => terminate(first.child))
  t.match(first.out, /3 nodes, RS\(2,1\), block 1MiB, inline below 128KiB/)
  const secretAccessKey = /AWS_SECRET_ACCESS_KEY=(\S+)/.exec(first.out)?.[1]
  const accessKeyId = /AWS_ACCESS_KEY_ID=(\S+)/.exec(first.out)?.[1]
  t.ok(secretAccessKey && accessKeyId)
  const credentials = { accessKeyId: accessKeyId!, secretAccessKey: secretAccessKey! }
  const port = /"listening":\{"port":(\d+)/.exec(first.out)?.[1]
  const s3 = client(`http://127.0.0.1:${port}`, credentials)
  const data = randomBytes(2_500_000)
  await s3.send(new CreateBucketCommand({ Bucket: 'cluster' }))
  await s3.send(new PutObjectCommand({ Bucket: 'cluster', Key: 'obj', Body: data }))
  s3.destroy()
  t.equal(await terminate(first.child), 0)
  t.equal(await mode(join(dir, 'credentials.yaml')), 0o600)

  const second = await runCli([...args, '--nodes', '5'])
  t.teardown(() => terminate(second.child))
  t.match(second.out, /existing; layout options ignored\): 3 nodes/)
  t.notMatch(second.out, secretAccessKey!, 'the secret is not shown again')
  t.match(second.out, `Root access key id: ${accessKeyId}`)
  const port2 = /"listening":\{"port":(\d+)/.exec(second.out)?.[1]
  const again = client(`http://127.0.0.1:${port2}`, credentials)
  t.teardown(() => again.destroy())
  t.ok((await getBytes(again, 'cluster', 'obj')).equals(data), 'the object survived the restart')
  t.equal(await terminate(second.child), 0)
})

/** The processes whose command line names a file under `dir`: the daemons of a cluster there. */
function processesUnder(dir: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `${dir}/`], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(Number)
  } catch {
    return [] // pgrep exits 1 when nothing matches
  }
}

t.test('a killed `tessera cluster` takes its daemons with it', async (t) => {
  const dir = t.testdir()
  const args = ['cluster', dir, '--address', '127.0.0.1:0', '--nodes', '3', '--parity', '1']
  const first = await runCli(args)
  t.teardown(() => terminate(first.child))
  const credentials = {
    accessKeyId: /AWS_ACCESS_KEY_ID=(\S+)/.exec(first.out)![1]!,
    secretAccessKey: /AWS_SECRET_ACCESS_KEY=(\S+)/.exec(first.out)![1]!,
  }
  const port = /"listening":\{"port":(\d+)/.exec(first.out)?.[1]
  const s3 = client(`http://127.0.0.1:${port}`, credentials)
  const data = randomBytes(300_000)
  await s3.send(new CreateBucketCommand({ Bucket: 'orphans' }))
  await s3.send(new PutObjectCommand({ Bucket: 'orphans', Key: 'obj', Body: data }))
  s3.destroy()
  const daemons = processesUnder(dir).filter((pid) => pid !== first.child.pid)
  t.equal(daemons.length, 4, 'three nodes and a gateway')
  // SIGKILL: the launcher runs no code of its own; only the pipes it held tell the daemons.
  first.child.kill('SIGKILL')
  await once(first.child, 'exit')
  const deadline = Date.now() + 20_000
  while (processesUnder(dir).length > 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100))
  t.same(processesUnder(dir), [], 'every daemon exited')

  // Nothing of them is left in the way: the cluster starts again on its folder, object whole.
  const second = await runCli(args)
  t.teardown(() => terminate(second.child))
  const port2 = /"listening":\{"port":(\d+)/.exec(second.out)?.[1]
  const again = client(`http://127.0.0.1:${port2}`, credentials)
  t.teardown(() => again.destroy())
  t.ok((await getBytes(again, 'orphans', 'obj')).equals(data), 'the object survived')
  t.equal(await terminate(second.child), 0)

  // The daemon's side on its own: stdin ending is an orderly stop, exit code 0.
  const node = spawn(
    process.execPath,
    [NODE_MAIN, 'start', '--config', join(dir, 'n1', 'node.yaml'), '--stop-with-stdin'],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  )
  t.teardown(() => terminate(node))
  let out = ''
  node.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const deadline2 = Date.now() + 30_000
  while (!out.includes('"listening"') && node.exitCode === null && Date.now() < deadline2)
    await new Promise((r) => setTimeout(r, 50))
  t.match(out, /"listening"/, 'the node started')
  const exited = once(node, 'exit')
  node.stdin!.end()
  const [code] = await exited
  t.equal(code, 0, 'stdin closed: an orderly stop, exit code 0')
  // Its launcher is taken for gone, stdout with it: the node logs nothing more.
  t.notMatch(out, /"msg":"stopping"/, 'nothing logged once stdin closed')
})
