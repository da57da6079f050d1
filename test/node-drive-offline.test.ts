// One dead disk must not take its node's other drives down: a drive that fails to open at
// start (here its format file reads as EISDIR, as a failing disk answers EIO) leaves the node
// serving its other drives, reporting that one offline with the reason; S3 reads and writes go
// on within quorum. A misplaced drive (another slot's) still stops the node, naming it.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { GetDriveInfo, HealStatus, Health, ReadVersions, StoreError } from '@tessera/protocol'
import t from 'tap'
import { startCluster } from './harness/cluster.ts'
import { bodyBytes, bytes, s3Client, sha256 } from './harness/s3.ts'

t.test('a drive that fails to open is offline; the node serves the rest', async (t) => {
  const c = await startCluster(t, { nodes: 4, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const s3 = s3Client(c.gateways[0]!.endpoint)
  await s3.send(new CreateBucketCommand({ Bucket: 'dead-disk' }))
  const before = bytes(700_000, 3)
  await s3.send(new PutObjectCommand({ Bucket: 'dead-disk', Key: 'before', Body: before }))

  const victim = c.layout.pools[0]!.sets[0]!.drives.find((d) => d.nodeId === c.nodes[1]!.id)!
  await c.stop(victim.nodeId)
  const format = join(victim.path, '.tessera', 'format.json')
  const saved = await readFile(format)
  await rm(format)
  await mkdir(format) // reading it now fails with EISDIR
  await c.start(victim.nodeId)

  const peer = c.peer(victim.nodeId)
  t.match(await c.pool.call(peer, Health, {}), { drives: 2, drivesOnline: 1 })
  const { drives } = await c.pool.call(peer, GetDriveInfo, {})
  const dead = drives.find((d) => d.path === victim.path)
  t.match(dead, { online: false, error: /EISDIR/ }, 'the dead drive is reported with its reason')
  t.ok(
    drives.some((d) => d.path !== victim.path && d.online),
    'the other drive is online',
  )
  const heal = await c.pool.call(peer, HealStatus, {})
  t.match(
    heal.drives.find((d) => d.path === victim.path),
    { online: false },
    'heal status shows it offline',
  )
  const err = await c.pool
    .call(peer, ReadVersions, {
      pool: victim.pool,
      set: victim.set,
      slot: victim.slot,
      bucket: 'dead-disk',
      key: 'before',
    })
    .catch((e: unknown) => e)
  t.type(err, StoreError)
  t.equal((err as StoreError).code, 'DRIVE_OFFLINE')
  const log = await readFile(c.node(victim.nodeId).logPath, 'utf8')
  t.match(log, /drive offline: it failed to open/, 'the node logs it')

  // S3 goes on within quorum: old data reads, new data writes and reads.
  const got = await s3.send(new GetObjectCommand({ Bucket: 'dead-disk', Key: 'before' }))
  t.equal(sha256(await bodyBytes(got.Body)), sha256(before))
  for (let i = 0; i < 6; i++) {
    const data = bytes(200_000 + i, 10 + i)
    await s3.send(new PutObjectCommand({ Bucket: 'dead-disk', Key: `after-${i}`, Body: data }))
    const back = await s3.send(new GetObjectCommand({ Bucket: 'dead-disk', Key: `after-${i}` }))
    t.equal(sha256(await bodyBytes(back.Body)), sha256(data), `after-${i} round trips`)
  }

  // A drive from another slot is a mistake in the mounts: the node refuses to start.
  await c.stop(victim.nodeId)
  await rm(format, { recursive: true })
  const other = c.layout.pools[0]!.sets.flatMap((s) => s.drives).find(
    (d) => d.nodeId === victim.nodeId && d.path !== victim.path,
  )!
  const otherFormat = join(other.path, '.tessera', 'format.json')
  await writeFile(format, saved)
  await writeFile(otherFormat, saved) // the victim's format in the other drive's folder
  await t.rejects(c.start(victim.nodeId), /another slot/, 'a misplaced drive stops the node')
})
