/**
 * A write that reached the write quorum but not every drive: the gateway reports the drive that
 * missed it, and the node repairs it within seconds, without waiting for a scanner cycle.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { objectHash } from '@tessera/node'
import { placeObject, ReadVersions } from '@tessera/protocol'
import t from 'tap'
import { startCluster } from './harness/cluster.ts'
import { bodyBytes, bytes, s3Client } from './harness/s3.ts'

/**
 * A 4-node RS(2,2) cluster with one gateway and a bucket; `victim` is the drive that holds
 * shard `shard` of `key`.
 */
async function setup(
  t: Parameters<typeof startCluster>[0],
  bucket: string,
  key: string,
  shard: number,
) {
  const c = await startCluster(t, { nodes: 4, drivesPerNode: 1, k: 2, m: 2, gateways: 1 })
  const s3 = s3Client(c.gateways[0]!.endpoint)
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  const { set, distribution } = placeObject(c.layout, 0, bucket, key)
  return { c, s3, victim: set.drives[distribution[shard]!]! }
}

t.test('a drive that missed a write is repaired within seconds', async (t) => {
  const key = 'blocked/object.bin'
  const { c, s3, victim } = await setup(t, 'miss', key, 3)
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

t.test('repairs a node could not take are sent again when it is back', async (t) => {
  const key = 'while-down.bin'
  const { c, s3, victim } = await setup(t, 'away', key, 2)
  const metrics = `${c.gateways[0]!.endpoint}/_tessera/metrics`
  const pending = async () => {
    const text = await (await fetch(metrics)).text()
    return Number(/^tessera_heal_reports_pending (\S+)$/m.exec(text)?.[1] ?? Number.NaN)
  }
  t.equal(await pending(), 0, 'nothing pending at first')
  // The node is down for the write: the write reaches 3 drives, the report cannot be sent.
  await c.stop(victim.nodeId, 'SIGKILL')
  await s3.send(new PutObjectCommand({ Bucket: 'away', Key: key, Body: bytes(200_000, 9) }))
  let held = 0
  for (let i = 0; i < 50 && held === 0; i++) {
    await new Promise((r) => setTimeout(r, 100))
    held = await pending()
  }
  t.ok(held >= 1, `the gateway holds the repair while the node is down (${held})`)
  await new Promise((r) => setTimeout(r, 1500))
  t.ok((await pending()) >= 1, 'and still holds it after a failed resend')
  await c.start(victim.nodeId)
  const started = Date.now()
  let left = held
  while (Date.now() - started < 40_000 && left > 0) {
    await new Promise((r) => setTimeout(r, 200))
    left = await pending()
  }
  t.equal(left, 0, 'the gateway sent it once the node was back')
  const log = await readFile(c.gateways[0]!.logPath, 'utf8')
  t.match(log, /repairs queued on the node after it could not take them/, 'and says so')
  const ref = { pool: victim.pool, set: victim.set, slot: victim.slot }
  let versions: unknown[] = []
  for (let i = 0; i < 100 && versions.length === 0; i++) {
    ;({ versions } = await c.pool.call(c.peer(victim.nodeId), ReadVersions, {
      ...ref,
      bucket: 'away',
      key,
    }))
    if (versions.length === 0) await new Promise((r) => setTimeout(r, 100))
  }
  t.equal(versions.length, 1, 'the node holds the version')
})

t.test('a drive that missed a part does not count for the completion, and is healed', async (t) => {
  const key = 'two-parts.bin'
  const { c, s3, victim } = await setup(t, 'parts', key, 1)
  const others = c.nodes.map((n) => n.id).filter((id) => id !== victim.nodeId)
  const body = [bytes(5 * 1024 * 1024, 11), bytes(300_000, 12)]
  const { UploadId } = await s3.send(
    new CreateMultipartUploadCommand({ Bucket: 'parts', Key: key }),
  )
  const upload = (n: number) =>
    s3.send(
      new UploadPartCommand({
        Bucket: 'parts',
        Key: key,
        UploadId,
        PartNumber: n,
        Body: body[n - 1],
      }),
    )
  const p1 = await upload(1)
  // The victim's node is away while part 2 is uploaded, back for the completion.
  await c.stop(victim.nodeId, 'SIGKILL')
  const p2 = await upload(2)
  await c.start(victim.nodeId)
  await new Promise((r) => setTimeout(r, 1200))
  await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: 'parts',
      Key: key,
      UploadId,
      MultipartUpload: {
        Parts: [
          { PartNumber: 1, ETag: p1.ETag },
          { PartNumber: 2, ETag: p2.ETag },
        ],
      },
    }),
  )
  const log = await readFile(c.gateways[0]!.logPath, 'utf8')
  t.match(log, /does not hold part 2 of upload/, 'the victim refused to name a part it lacks')
  const ref = { pool: victim.pool, set: victim.set, slot: victim.slot }
  const hash = objectHash('parts', key)
  const folder = join(victim.path, 'data', 'parts', hash.slice(0, 2), hash)
  let whole = false
  for (let i = 0; i < 100 && !whole; i++) {
    const { versions } = await c.pool.call(c.peer(victim.nodeId), ReadVersions, {
      ...ref,
      bucket: 'parts',
      key,
    })
    const v = versions[0]
    if (v?.dataDir !== undefined) {
      const files = await Promise.all(
        [1, 2].map((n) => stat(join(folder, v.dataDir!, `part.${n}`)).catch(() => undefined)),
      )
      whole = files.every((f) => f?.isFile())
    }
    if (!whole) await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(whole, 'the victim holds the version and both part files soon after')
  // Read with two of the other nodes stopped: the victim's shards are needed.
  await Promise.all(others.slice(0, 2).map((id) => c.stop(id)))
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: 'parts', Key: key }))
    const got = await bodyBytes(r.Body)
    t.ok(
      got.equals(Buffer.concat(body)),
      'the object reads back whole from the victim and one other',
    )
  } finally {
    await Promise.all(others.slice(0, 2).map((id) => c.start(id)))
  }
})
