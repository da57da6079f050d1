/**
 * A write that reached the write quorum but not every drive: the gateway reports the drive that
 * missed it, and the node repairs it within seconds, without waiting for a scanner cycle.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { objectHash } from '@tessera/node'
import { placeObject, ReadVersions } from '@tessera/protocol'
import t from 'tap'
import { startCluster } from './harness/cluster.ts'
import { bytes, s3Client } from './harness/s3.ts'

t.test('a drive that missed a write is repaired within seconds', async (t) => {
  const c = await startCluster(t, { nodes: 4, drivesPerNode: 1, k: 2, m: 2, gateways: 1 })
  const s3 = s3Client(c.gateways[0]!.endpoint)
  await s3.send(new CreateBucketCommand({ Bucket: 'miss' }))
  const key = 'blocked/object.bin'
  const { set, distribution } = placeObject(c.layout, 0, 'miss', key)
  const victim = set.drives[distribution[3]!]!
  // A file where the object's folder must go: the commit on that drive fails (ENOTDIR, even
  // for root), the other three commit, the PUT succeeds at the write quorum of 3.
  const hash = objectHash('miss', key)
  const parent = join(victim.path, 'data', 'miss', hash.slice(0, 2))
  await mkdir(parent, { recursive: true })
  await writeFile(join(parent, hash), 'not a folder')
  await s3.send(new PutObjectCommand({ Bucket: 'miss', Key: key, Body: bytes(300_000, 7) }))
  await rm(join(parent, hash))
  const ref = { pool: victim.pool, set: victim.set, slot: victim.slot }
  const started = Date.now()
  let healed = false
  while (Date.now() - started < 10_000) {
    const { versions } = await c.pool.call(c.peer(victim.nodeId), ReadVersions, {
      ...ref,
      bucket: 'miss',
      key,
      limit: 1,
    })
    const v = versions[0]
    if (v?.dataDir !== undefined) {
      const part = join(parent, hash, v.dataDir, 'part.1')
      if ((await stat(part).catch(() => undefined))?.isFile()) {
        healed = true
        break
      }
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const took = Date.now() - started
  const log = await readFile(c.gateways[0]!.logPath, 'utf8')
  t.match(log, /missed a write or returned a bad shard; repair queued/, 'the gateway saw the miss')
  t.ok(healed, `the missed drive holds its record and shard again after ${took} ms`)
  // Well before the scanner's first cycle of a minute: the gateway's report did it.
  t.ok(took < 10_000, 'within seconds')
})
