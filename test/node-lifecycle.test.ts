// Drives, identity and crashes, with real node processes: formatting, refusing foreign or
// moved drives, keygen, config errors, kill -9 in the middle of a write, and refused peers.
import { execFile, spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import {
  connectSecure,
  generateIdentity,
  Health,
  PROTOCOL_VERSION,
  PutShard,
  ReadVersions,
  stringifyClusterMap,
} from '@tessera/protocol'
import t from 'tap'
import { NODE_MAIN, startCluster } from './harness/cluster.ts'
import { place, putObject, shardDrive } from './harness/object-io.ts'

const run = promisify(execFile)

async function startFails(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [NODE_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  const code = await new Promise<number | null>((r) => child.once('exit', r))
  clearTimeout(timer)
  return { code, stderr }
}

t.test('keygen writes a 0600 key and prints the public id', async (t) => {
  const dir = t.testdir()
  const { stdout } = await run(process.execPath, [NODE_MAIN, 'keygen', '--out', join(dir, 'k')])
  t.match(stdout.trim(), /^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/, 'a libp2p peer id')
  t.equal((await stat(join(dir, 'k'))).mode & 0o777, 0o600)
  const again = await startFails(['keygen', '--out', join(dir, 'k')])
  t.not(again.code, 0, 'an existing key is never overwritten')
})

t.test('config problems are reported all at once', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'node: 7\ncolour: blue\nlogLevel: loud\n' })
  const r = await startFails(['start', '--config', join(dir, 'bad.yaml')])
  t.not(r.code, 0)
  t.match(r.stderr, /node must be a non-empty string/, 'named by its key in the file')
  t.match(r.stderr, /unknown setting "colour"/)
  t.match(r.stderr, /logLevel "loud"/)
  t.match(r.stderr, /map is required/)
})

t.test('drives: formatted once, refused when foreign, moved or not empty', async (t) => {
  const c = await startCluster(t, { nodes: 1, drivesPerNode: 3, k: 2, m: 1 })
  const drives = c.map.pools[0]!.nodes[0]!.drives
  const format = JSON.parse(await readFile(join(drives[0]!, '.tessera', 'format.json'), 'utf8'))
  t.match(format, { format: 'tessera', cluster: c.map.cluster, pool: 0, set: 0 })
  await c.stop('n1')
  // Restart: the same drives are accepted as they are.
  await c.start('n1')
  const again = JSON.parse(await readFile(join(drives[0]!, '.tessera', 'format.json'), 'utf8'))
  t.equal(again.driveId, format.driveId, 'a formatted drive keeps its identity')
  await c.stop('n1')

  // Swap two drives in the map: each is now listed for the other's slot.
  const moved = structuredClone(c.map)
  const list = moved.pools[0]!.nodes[0]!.drives
  ;[list[0], list[1]] = [list[1]!, list[0]!]
  await writeFile(join(c.dir, 'cluster.yaml'), stringifyClusterMap(moved))
  let r = await startFails(['start', '--config', c.node('n1').configPath])
  t.not(r.code, 0)
  t.match(r.stderr, /is in another slot: found .*slot 1, expected .*slot 0/)
  t.match(r.stderr, drives[1]!, 'the error names the drive')

  // Another cluster's drive.
  const foreign = structuredClone(c.map)
  foreign.cluster = 'some-other-cluster'
  await writeFile(join(c.dir, 'cluster.yaml'), stringifyClusterMap(foreign))
  r = await startFails(['start', '--config', c.node('n1').configPath])
  t.match(
    r.stderr,
    /belongs to another cluster: found cluster test-\w+.*expected cluster some-other-cluster/,
  )

  // A drive folder with someone's files and no format file.
  const busy = join(c.dir, 'busy')
  await mkdir(busy)
  await writeFile(join(busy, 'holiday.jpg'), 'x')
  const withBusy = structuredClone(c.map)
  withBusy.pools[0]!.nodes[0]!.drives[2] = busy
  await writeFile(join(c.dir, 'cluster.yaml'), stringifyClusterMap(withBusy))
  r = await startFails(['start', '--config', c.node('n1').configPath])
  t.match(r.stderr, /is not empty and has no .tessera\/format.json \(found holiday.jpg\)/)
  await writeFile(join(c.dir, 'cluster.yaml'), stringifyClusterMap(c.map))
})

t.test('kill -9 during a put leaves no visible version and no leftovers', async (t) => {
  const c = await startCluster(t, { nodes: 1, drivesPerNode: 3, k: 2, m: 1 })
  const p = place(c, 'b1', 'half-written')
  const d = shardDrive(p, 0)
  const ref = { pool: d.pool, set: d.set, slot: d.slot }
  const tmpId = randomUUID()
  const size = 8 * 1024 * 1024
  let sent = 0
  const put = c.pool.call(
    c.peer('n1'),
    PutShard,
    { ...ref, bucket: 'b1', key: 'half-written', dataDir: randomUUID(), part: 1, tmpId, size },
    {
      body: (async function* () {
        for (;;) {
          sent += 256 * 1024
          yield randomBytes(256 * 1024)
          // Stall here (the node is killed meanwhile); unref'd so it cannot hold the test open.
          if (sent >= size / 2) await new Promise((r) => setTimeout(r, 60_000).unref())
        }
      })(),
      timeoutMs: 60_000,
    },
  )
  put.catch(() => {})
  // Wait until the node has written part of it to tmp.
  for (let i = 0; i < 100; i++) {
    const tmp = await readdir(join(d.path, '.tessera', 'tmp')).catch(() => [] as string[])
    if (tmp.includes(tmpId)) break
    await new Promise((r) => setTimeout(r, 50))
  }
  t.same(await readdir(join(d.path, '.tessera', 'tmp')), [tmpId], 'the write was in progress')
  await c.stop('n1', 'SIGKILL')
  await t.rejects(
    put,
    { code: /CHANNEL_CLOSED|NODE_UNAVAILABLE/ },
    'the caller learns the node went away',
  )
  await c.start('n1')
  t.same(await readdir(join(d.path, '.tessera', 'tmp')), [], 'tmp was emptied at start')
  const { versions } = await c.pool.call(c.peer('n1'), ReadVersions, {
    ...ref,
    bucket: 'b1',
    key: 'half-written',
  })
  t.same(versions, [], 'no version is visible')
  // And a complete write after the restart works.
  const ok = await putObject(c, 'b1', 'after', randomBytes(200_000))
  t.ok(ok.results.every((r) => r.status === 'fulfilled'))
})

t.test('unknown keys and other maps are refused', async (t) => {
  const c = await startCluster(t, { nodes: 1, drivesPerNode: 3, k: 2, m: 1 })
  const n = c.node('n1')
  const [host, port] = n.address.split(':') as [string, string]
  const stranger = await generateIdentity()
  await t.rejects(
    connectSecure({
      host,
      port: Number(port),
      identity: stranger,
      expectedRemoteId: n.publicKey,
      hello: { version: PROTOCOL_VERSION, mapHash: c.hash, role: 'gateway' },
    }),
    { code: 'REFUSED' },
    'a key the map does not list is dropped after the handshake',
  )
  await new Promise((r) => setTimeout(r, 200))
  const log = await readFile(n.logPath, 'utf8')
  t.match(
    log,
    new RegExp(`refused a connection.*${stranger.id}|${stranger.id}.*refused a connection`),
    'and logged',
  )

  const other = 'f'.repeat(64)
  try {
    await connectSecure({
      host,
      port: Number(port),
      identity: c.gateway,
      expectedRemoteId: n.publicKey,
      hello: { version: PROTOCOL_VERSION, mapHash: other, role: 'gateway' },
    })
    t.fail('a map mismatch must be refused')
  } catch (err) {
    t.equal((err as { code?: string }).code, 'MAP_MISMATCH')
    t.match((err as Error).message, other, 'names our hash')
    t.match((err as Error).message, c.hash, 'names the node’s hash')
  }
  // The member gateway still gets in.
  t.match(await c.pool.call(c.peer('n1'), Health, {}), { nodeId: 'n1' })
})
