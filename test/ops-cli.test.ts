/**
 * Operator tooling end to end: `tessera map generate` and `validate` for a 2-node map with real
 * keys; deploy/install.sh as a dry run, as a real install into a temp prefix (files, modes,
 * configs the daemons accept), run again (nothing changes), with its systemd units (checked by
 * `systemd-analyze verify` when it is there) and through shellcheck (installed from Debian's
 * packages when it can be); then a node and a gateway started from an installed configuration,
 * serving S3 and `tessera admin cluster|heal` through a drive swap, a heal and a node outage.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { access, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import { loadConfig as loadGatewayConfig, readCredentials } from '@tessera/gateway'
import { loadConfig as loadNodeConfig } from '@tessera/node'
import {
  DAEMON_ENV,
  DAEMON_V8_FLAGS,
  generateIdentity,
  mapHash,
  parseClusterMap,
} from '@tessera/protocol'
import { freePort } from '@tessera/server'
import t, { type Test } from 'tap'
import { ensureDebianPackages } from './harness/debian.ts'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const INSTALL = join(REPO, 'deploy', 'install.sh')
const TESSERA = join(REPO, 'packages', 'server', 'dist', 'src', 'main.js')
const NODE_MAIN = join(REPO, 'packages', 'node', 'dist', 'src', 'main.js')
const GATEWAY_MAIN = join(REPO, 'packages', 'gateway', 'dist', 'src', 'main.js')

interface Run {
  code: number
  out: string
  err: string
}

/** Runs a command to its end; resolves with its exit status and output, whatever the status. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, maxBuffer: 16 * 1024 * 1024 }, (error, out, err) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
      resolve({ code, out, err })
    })
  })
}

const tessera = (args: string[]) => run(process.execPath, [TESSERA, ...args])
const install = (args: string[]) => run('sh', [INSTALL, ...args])

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

t.test('tessera map generate and validate: a 2-node map with real keys', async (t) => {
  const dir = t.testdir()
  const nodes = ['node1.example.net', 'node2.example.net']
  const keys: string[] = []
  for (const host of nodes) keys.push(`${host} ${(await generateIdentity()).id}`)
  await writeFile(join(dir, 'keys.txt'), `${keys.join('\n')}\n`)
  const gateway = (await generateIdentity()).id
  const out = join(dir, 'cluster.yaml')
  const gen = await tessera([
    'map',
    'generate',
    '--cluster',
    'two',
    '--nodes',
    'node{1...2}.example.net:7373',
    '--drives',
    '/mnt/disk{1...4}',
    '--data',
    '2',
    '--parity',
    '2',
    '--keys',
    join(dir, 'keys.txt'),
    '--gateway',
    gateway,
    '--out',
    out,
  ])
  t.equal(gen.code, 0, gen.err)
  t.match(gen.out, /Cluster two: 1 pool, 2 nodes, 8 drives, 2 erasure sets, 1 gateway/)
  t.match(gen.out, /survives 1 failed node for reads, 0 for writes/)
  const map = parseClusterMap(await readFile(out, 'utf8'))
  t.same(
    map.pools[0]!.nodes.map((n) => `${n.address.replace(/:7373$/, '')} ${n.publicKey}`),
    keys,
  )
  t.same(map.gateways, [gateway])

  const valid = await tessera(['map', 'validate', out])
  t.equal(valid.code, 0, valid.err)
  t.match(valid.out, `Map hash: ${mapHash(map)}`)

  const example = await tessera(['map', 'validate', join(REPO, 'deploy/examples/cluster-4x4.yaml')])
  t.equal(example.code, 0, `the example map is valid: ${example.err}`)
  t.match(example.out, /4 nodes, 16 drives, 2 erasure sets, 2 gateways/)
})

t.test('install.sh --dry-run prints what it would do and changes nothing', async (t) => {
  const prefix = t.testdir()
  const r = await install(['--role', 'both', '--dry-run', '--no-systemd', '--prefix', prefix])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /Dry run: nothing is changed/)
  t.match(r.out, `+ mkdir -p ${prefix}/etc/tessera ${prefix}/var/lib/tessera`)
  t.match(r.out, /keygen --out .*\/etc\/tessera\/node\.key/)
  t.match(r.out, /keygen --out .*\/etc\/tessera\/gateway\.key/)
  t.match(r.out, /\+ write .*\/etc\/tessera\/master\.key \(mode 0600/)
  t.match(r.out, /Skipped the systemd units/)
  t.same(await readdir(prefix), [], 'nothing written')
})

t.test('install.sh: a real install into a prefix, then again', async (t) => {
  const prefix = t.testdir()
  const etc = join(prefix, 'etc')
  const args = ['--role', 'both', '--no-user', '--no-systemd', '--prefix', prefix, '--etc', etc]
  const first = await install([...args, '--node-id', 'node1', '--listen', '127.0.0.1:7373'])
  t.equal(first.code, 0, first.err)

  t.equal(await mode(etc), 0o750, 'config folder 0750')
  t.equal(await mode(join(prefix, 'var/lib/tessera')), 0o750)
  for (const f of ['node.key', 'gateway.key', 'master.key', 'credentials.yaml']) {
    t.equal(await mode(join(etc, f)), 0o600, `${f} is 0600`)
  }
  for (const f of ['node.yaml', 'gateway.yaml']) t.equal(await mode(join(etc, f)), 0o640)
  for (const f of ['node.pub', 'gateway.pub']) t.equal(await mode(join(etc, f)), 0o644)
  const nodeId = (await readFile(join(etc, 'node.pub'), 'utf8')).trim()
  const gatewayId = (await readFile(join(etc, 'gateway.pub'), 'utf8')).trim()
  t.match(nodeId, /^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/)
  t.not(nodeId, gatewayId)
  t.match(first.out, `Node node1 public id: ${nodeId}`)
  t.match(first.out, `--gateway ${gatewayId}`)
  t.match(first.out, /Every gateway must have this same file/)

  // What the daemons read: their own config loaders accept it all.
  const node = await loadNodeConfig({ file: join(etc, 'node.yaml'), env: {} })
  t.match(node, {
    nodeId: 'node1',
    map: join(etc, 'cluster.yaml'),
    identity: join(etc, 'node.key'),
    listen: '127.0.0.1:7373',
  })
  const gateway = await loadGatewayConfig({ file: join(etc, 'gateway.yaml'), env: {} })
  t.equal(gateway.listen, '0.0.0.0:9000')
  t.equal(gateway.masterKey.length, 32, 'a 32-byte master key')
  t.match(gateway.root.accessKeyId, /^TS[A-Z2-7]{18}$/)
  t.match(gateway.root.secretAccessKey, /^[A-Za-z][A-Za-z0-9_-]{39}$/)

  for (const cmd of ['tessera', 'tessera-node', 'tessera-gateway']) {
    t.equal(await mode(join(prefix, 'usr/local/bin', cmd)), 0o755)
  }
  const help = await run(join(prefix, 'usr/local/bin/tessera'), ['map', '--help'])
  t.equal(help.code, 0, 'the tessera wrapper runs the CLI')
  t.match(help.out, /generate/)

  // Again: every key, secret and config is kept as it was.
  const files = ['node.key', 'gateway.key', 'master.key', 'credentials.yaml', 'node.yaml']
  const before = await Promise.all(files.map((f) => readFile(join(etc, f))))
  const second = await install([...args, '--node-id', 'node1'])
  t.equal(second.code, 0, second.err)
  t.match(second.out, /Kept .*node\.yaml/)
  t.match(second.out, /Kept the node identity/)
  t.match(second.out, /Kept the master key/)
  t.match(second.out, `Node node1 public id: ${nodeId}`)
  const after = await Promise.all(files.map((f) => readFile(join(etc, f))))
  files.forEach((f, i) => {
    t.ok(after[i]!.equals(before[i]!), `${f} unchanged`)
  })

  // Refusals, with what to do.
  const otherKey = join(prefix, 'other.key')
  await writeFile(otherKey, `${'ab'.repeat(32)}\n`, { mode: 0o600 })
  const replace = await install([...args, '--master-key', otherKey])
  t.equal(replace.code, 1)
  t.match(replace.err, /master\.key exists and differs .* every stored secret unreadable/)
  await writeFile(join(prefix, 'bad.yaml'), 'cluster: x\n')
  const badMap = await install([...args, '--map', join(prefix, 'bad.yaml')])
  t.equal(badMap.code, 1)
  t.match(badMap.err, /pools: is missing/)
  t.match(badMap.err, /is not a valid cluster map/)
  t.notOk(await exists(join(etc, 'cluster.yaml')), 'an invalid map is not installed')
  const noRole = await install(['--no-systemd', '--prefix', prefix])
  t.equal(noRole.code, 1)
  t.match(noRole.err, /give --role node, gateway or both/)
  const noValue = await install(['--role'])
  t.equal(noValue.code, 1)
  t.match(noValue.err, /--role needs a value/)
  const badId = await install([...args, '--node-id', '-x'])
  t.equal(badId.code, 1)
  t.match(badId.err, /--node-id '-x'/)
})

t.test('install.sh: systemd units with the install paths; systemd-analyze verify', async (t) => {
  const prefix = t.testdir()
  const etc = join(prefix, 'etc', 'tessera')
  const r = await install(['--role', 'both', '--no-user', '--prefix', prefix, '--node-id', 'n1'])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /the units were not enabled/)
  const units = join(prefix, 'etc', 'systemd', 'system')
  const nodeUnit = await readFile(join(units, 'tessera-node.service'), 'utf8')
  const gatewayUnit = await readFile(join(units, 'tessera-gateway.service'), 'utf8')
  t.match(nodeUnit, `ExecStart=`)
  // The units pass the daemons' V8 flags (DAEMON_V8_FLAGS), all of them, in order.
  const flags = DAEMON_V8_FLAGS.join(' ')
  t.match(nodeUnit, ` ${flags} ${NODE_MAIN} start --config ${etc}/node.yaml\n`)
  t.match(gatewayUnit, ` ${flags} ${GATEWAY_MAIN} start --config ${etc}/gateway.yaml\n`)
  for (const unit of [nodeUnit, gatewayUnit]) {
    for (const [k, v] of Object.entries(DAEMON_ENV))
      t.match(unit, new RegExp(`^Environment=${k}=${v}$`, 'm'), `the daemon environment: ${k}`)
    t.match(unit, /^Type=simple$/m)
    t.match(unit, /^User=tessera$/m)
    t.match(unit, /^Restart=on-failure$/m)
    t.match(unit, /^LimitNOFILE=1048576$/m)
    t.match(unit, /^TimeoutStopSec=20$/m)
    t.match(unit, /^ProtectSystem=strict$/m)
    t.match(unit, /^CapabilityBoundingSet=$/m)
    t.notMatch(unit, /^MemoryDenyWriteExecute=yes/m, 'V8 needs W+X memory')
  }
  t.match(nodeUnit, /^ReadWritePaths=\/mnt$/m)

  const analyze = '/usr/bin/systemd-analyze'
  if (!(await exists(analyze))) {
    t.comment('systemd-analyze is not installed here: the units are not verified')
    return
  }
  const files = [join(units, 'tessera-node.service'), join(units, 'tessera-gateway.service')]
  // The units as shipped name /usr/bin/node, which verify wants to exist.
  if (await exists('/usr/bin/node')) {
    files.push(join(REPO, 'deploy/systemd/tessera-node.service'))
    files.push(join(REPO, 'deploy/systemd/tessera-gateway.service'))
  }
  const v = await run(analyze, ['verify', ...files])
  t.equal(v.code, 0, `systemd-analyze verify: ${v.err}`)
  t.equal(v.err.trim(), '', 'no warnings (unknown keys, bad values)')
})

t.test('install.sh passes shellcheck', async (t) => {
  try {
    await ensureDebianPackages({ shellcheck: 'shellcheck' })
  } catch (err) {
    t.comment(`shellcheck could not be installed: ${(err as Error).message.split('\n')[0]}`)
    return
  }
  const r = await run('/usr/bin/shellcheck', ['--shell=sh', '--severity=style', INSTALL])
  t.equal(r.code, 0, r.out + r.err)
})

/** A daemon started from an installed config; resolves once it prints its listening line. */
async function startDaemon(
  t: Test,
  main: string,
  config: string,
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, [main, 'start', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => stopDaemon(child))
  let err = ''
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString()
  })
  let out = ''
  const line = await new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString()
      const found = out.split('\n').find((l) => l.startsWith('{"listening"'))
      if (found !== undefined) {
        child.stdout!.off('data', onData)
        child.stdout!.resume()
        resolve(found)
      }
    }
    child.stdout!.on('data', onData)
    child.once('exit', (code) => reject(new Error(`${main} exited with ${code}: ${err}${out}`)))
  })
  return { child, line }
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

t.test('an installed node and gateway: S3, cluster status, a drive swap healed', async (t) => {
  const prefix = t.testdir()
  const etc = join(prefix, 'etc')
  const drives = join(prefix, 'mnt')
  const base = ['--role', 'both', '--no-user', '--no-systemd', '--prefix', prefix, '--etc', etc]
  const installed = await install([
    ...base,
    '--node-id',
    '127.0.0.1',
    '--gateway-listen',
    '127.0.0.1:0',
  ])
  t.equal(installed.code, 0, installed.err)

  // The map from the keys the install printed, written with tessera map generate.
  const nodeKey = (await readFile(join(etc, 'node.pub'), 'utf8')).trim()
  const gatewayKey = (await readFile(join(etc, 'gateway.pub'), 'utf8')).trim()
  await writeFile(join(prefix, 'keys.txt'), `127.0.0.1 ${nodeKey}\n`)
  const port = await freePort()
  const mapFile = join(prefix, 'cluster.yaml')
  const gen = await tessera([
    'map',
    'generate',
    '--cluster',
    'installed',
    '--nodes',
    `127.0.0.1:${port}`,
    '--drives',
    `${drives}/disk{1...4}`,
    '--data',
    '2',
    '--parity',
    '2',
    '--inline-below',
    '4KiB',
    '--keys',
    join(prefix, 'keys.txt'),
    '--gateway',
    gatewayKey,
    '--out',
    mapFile,
  ])
  t.equal(gen.code, 0, gen.err)
  t.match(gen.out, /Note: pool 0 has one node/)
  const withMap = await install([...base, '--map', mapFile])
  t.equal(withMap.code, 0, withMap.err)
  t.match(withMap.out, `Installed ${mapFile} as ${etc}/cluster.yaml`)
  t.equal(await readFile(join(etc, 'cluster.yaml'), 'utf8'), await readFile(mapFile, 'utf8'))
  for (let i = 1; i <= 4; i++) await mkdir(join(drives, `disk${i}`), { recursive: true })

  let node = await startDaemon(t, NODE_MAIN, join(etc, 'node.yaml'))
  const gateway = await startDaemon(t, GATEWAY_MAIN, join(etc, 'gateway.yaml'))
  const gatewayPort = (JSON.parse(gateway.line) as { listening: { port: number } }).listening.port
  const endpoint = `http://127.0.0.1:${gatewayPort}`
  const credentials = join(etc, 'credentials.yaml')
  const admin = (args: string[]) =>
    tessera(['admin', '--endpoint', endpoint, '--credentials', credentials, ...args])

  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: await readCredentials(credentials),
    maxAttempts: 1,
  })
  t.teardown(() => s3.destroy())
  await s3.send(new CreateBucketCommand({ Bucket: 'ops' }))
  const body = Buffer.alloc(16 * 1024, 7)
  const OBJECTS = 200
  for (let i = 0; i < OBJECTS; i += 20) {
    await Promise.all(
      Array.from({ length: 20 }, (_, j) =>
        s3.send(new PutObjectCommand({ Bucket: 'ops', Key: `o${i + j}`, Body: body })),
      ),
    )
  }

  const who = await admin(['whoami'])
  t.equal(who.code, 0, who.err)
  const status = await admin(['cluster', 'status'])
  t.equal(status.code, 0, status.err)
  t.match(status.out, /Cluster installed: erasure 2\+2, 1 node, 1 set/)
  t.match(status.out, new RegExp(`127\\.0\\.0\\.1\\s+127\\.0\\.0\\.1:${port}\\s+online\\s+4/4`))
  t.match(status.out, /0\s+0\s+ok\s+0\s+127\.0\.0\.1\s+\S+disk1\s+\w+\s+\d/)
  t.match(status.out, /Capacity: .* raw, .* used/)
  t.match(status.out, /Health: ok: 4 of 4 drives online/)
  const json = await admin(['--json', 'cluster', 'status'])
  t.match(JSON.parse(json.out), { cluster: 'installed', health: { drivesOnline: 4 } })

  // A drive swap: the node stops, disk2 comes back empty, the node formats it and heals it.
  await stopDaemon(node.child)
  const down = await admin(['cluster', 'status'])
  t.equal(down.code, 0, down.err)
  t.match(down.out, /127\.0\.0\.1:\d+\s+OFFLINE\s+0\/4/)
  t.match(down.out, /Health: UNAVAILABLE: 0 of 4 drives online/)
  await rm(join(drives, 'disk2'), { recursive: true })
  await mkdir(join(drives, 'disk2'))
  node = await startDaemon(t, NODE_MAIN, join(etc, 'node.yaml'))
  // The gateway reconnects to the node on its own: wait until it sees the drives again.
  for (const until = Date.now() + 30_000; Date.now() < until; ) {
    const s = await admin(['--json', 'cluster', 'status'])
    if (s.code === 0 && JSON.parse(s.out).health.drivesOnline === 4) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const watch = await admin(['heal', 'status', '--watch', '--interval', '0.2'])
  t.equal(watch.code, 0, watch.err)
  t.match(watch.out, /No drive is healing\.\n\nNODE\s+DRIVE/)
  // The watch may have started before the node began healing: wait for the heal itself.
  interface HealJson {
    drives: { path: string; healed: number; failed: number; state: string }[]
    summary: { healing: number }
  }
  let swapped: HealJson['drives'][number] | undefined
  for (const until = Date.now() + 60_000; Date.now() < until; ) {
    const heal = JSON.parse((await admin(['--json', 'heal', 'status'])).out) as HealJson
    swapped = heal.drives.find((d) => d.path === join(drives, 'disk2'))
    if (swapped && swapped.healed >= OBJECTS && heal.summary.healing === 0) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.equal(swapped?.healed, OBJECTS, 'every object healed onto the new drive')
  t.equal(swapped?.failed, 0)
  const get = await s3.send(new GetObjectCommand({ Bucket: 'ops', Key: 'o7' }))
  t.ok(Buffer.from(await get.Body!.transformToByteArray()).equals(body))

  const started = await admin([
    'heal',
    'start',
    '--node',
    '127.0.0.1',
    '--drive',
    join(drives, 'disk1'),
    '--deep',
  ])
  t.equal(started.code, 0, started.err)
  t.match(started.out, /deep heal of 127\.0\.0\.1:.*disk1|No heal was started/)
  const unknown = await admin(['heal', 'start', '--node', 'nope', '--drive', '/x'])
  t.equal(unknown.code, 1)
  t.match(unknown.err, /^tessera admin: NoSuchEntity: /)

  // Errors are one line each, exit status 1.
  const closed = await tessera([
    'admin',
    '--endpoint',
    `http://127.0.0.1:${await freePort()}`,
    '--credentials',
    credentials,
    'cluster',
    'status',
  ])
  t.equal(closed.code, 1)
  t.match(closed.err, /^tessera admin: ConnectionFailed: cannot reach http:\/\/127\.0\.0\.1:\d+/)
  const badInterval = await admin(['heal', 'status', '--watch', '--interval', '0'])
  t.equal(badInterval.code, 1)
  t.match(badInterval.err, /--interval 0: want seconds from 0\.1 to 3600/)
})
