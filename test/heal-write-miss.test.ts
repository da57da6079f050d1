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
import {
  CommitPart,
  GetUpload,
  ListParts,
  placeObject,
  QueueHeal,
  ReadVersions,
} from '@tessera/protocol'
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

t.test('drives that missed different parts get them back, and the upload completes', async (t) => {
  const key = 'two-parts.bin'
  const { c, s3 } = await setup(t, 'parts', key, 0)
  const { set, distribution } = placeObject(c.layout, 0, 'parts', key)
  // The drives of shards 0 and 1 (nodes of their own): each is away while one part is uploaded.
  const [a, b] = [0, 1].map((i) => set.drives[distribution[i]!]!)
  const others = c.nodes.map((n) => n.id).filter((id) => id !== a!.nodeId && id !== b!.nodeId)
  const body = [bytes(5 * 1024 * 1024, 11), bytes(300_000, 12)]
  // Drive a is away from the start: it misses the upload's record as well as part 1.
  await c.stop(a!.nodeId, 'SIGKILL')
  const { UploadId } = await s3.send(
    new CreateMultipartUploadCommand({ Bucket: 'parts', Key: key }),
  )
  // Right after a node is back the gateway may not have redialled it yet (with another node
  // down, too few drives for the write quorum): the client tries again, as SDKs do on a 503.
  const upload = async (n: number) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await s3.send(
          new UploadPartCommand({
            Bucket: 'parts',
            Key: key,
            UploadId,
            PartNumber: n,
            Body: body[n - 1],
          }),
        )
      } catch (err) {
        if (
          attempt >= 20 ||
          (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 503
        )
          throw err
        await new Promise((r) => setTimeout(r, 250))
      }
    }
  }
  const p1 = await upload(1)
  await c.start(a!.nodeId)
  await c.stop(b!.nodeId, 'SIGKILL')
  const p2 = await upload(2)
  await c.start(b!.nodeId)
  // Without repairs only the other two drives hold both parts, below the write quorum of 3,
  // and the upload could never be completed. The gateway reported each miss; the reports
  // reach each node once it is back.
  const holds = async (d: typeof a, n: number, etag: string | undefined): Promise<boolean> => {
    const { parts } = await c.pool.call(c.peer(d!.nodeId), ListParts, {
      pool: d!.pool,
      set: d!.set,
      slot: d!.slot,
      bucket: 'parts',
      key,
      uploadId: UploadId!,
    })
    return parts.some((p) => p.number === n && `"${p.etag}"` === etag)
  }
  let whole = false
  for (let i = 0; i < 200 && !whole; i++) {
    whole = (await holds(a, 1, p1.ETag)) && (await holds(b, 2, p2.ETag))
    if (!whole) await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(whole, 'each drive got back the part it missed')
  const { record } = await c.pool.call(c.peer(a!.nodeId), GetUpload, {
    pool: a!.pool,
    set: a!.set,
    slot: a!.slot,
    bucket: 'parts',
    key,
    uploadId: UploadId!,
  })
  t.equal(record?.uploadId, UploadId, 'and the drive that missed the upload got its record')
  const log = await readFile(c.gateways[0]!.logPath, 'utf8')
  t.match(
    log,
    /missed a write or returned a bad shard; repair queued/,
    'the gateway saw the misses',
  )
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
  t.pass('the upload completes')
  // Read with the two other nodes stopped: the repaired drives' shards are all there is.
  await Promise.all(others.map((id) => c.stop(id)))
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: 'parts', Key: key }))
    const got = await bodyBytes(r.Body)
    t.ok(
      got.equals(Buffer.concat(body)),
      'the object reads back whole from the two repaired drives',
    )
  } finally {
    await Promise.all(others.map((id) => c.start(id)))
  }
})

t.test('a repair of a part never replaces a newer upload of it', async (t) => {
  const key = 'raced.bin'
  const { c, s3, victim } = await setup(t, 'race', key, 0)
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'race', Key: key }))
  for (const [n, size] of [
    [1, 5 * 1024 * 1024],
    [2, 300_000],
  ] as const) {
    await s3.send(
      new UploadPartCommand({
        Bucket: 'race',
        Key: key,
        UploadId,
        PartNumber: n,
        Body: bytes(size, 20 + n),
      }),
    )
  }
  const ref = { pool: victim.pool, set: victim.set, slot: victim.slot }
  const partsOf = async () =>
    (
      await c.pool.call(c.peer(victim.nodeId), ListParts, {
        ...ref,
        bucket: 'race',
        key,
        uploadId: UploadId!,
      })
    ).parts
  const [p1, p2] = await partsOf()
  // As if a client's newer upload of part 1 had just landed on this drive alone (its CommitPart
  // ahead of the others'): a repair from the set's older copy must leave it.
  const newer = { ...p1!, etag: 'f'.repeat(32), modTime: p1!.modTime + 1_000_000 }
  await c.pool.call(c.peer(victim.nodeId), CommitPart, { ...ref, record: newer })
  // And part 2's file is gone: that repair is needed, and runs after part 1's (same key).
  const hash = objectHash('race', key)
  const file = join(victim.path, 'data', 'race', hash.slice(0, 2), hash, p2!.dataDir, 'part.2')
  await rm(file)
  await c.pool.call(c.peer(victim.nodeId), QueueHeal, {
    ...ref,
    items: [1, 2].map((partNumber) => ({
      bucket: 'race',
      key,
      upload: { uploadId: UploadId!, partNumber },
      reason: 'write-miss' as const,
    })),
  })
  let back = false
  for (let i = 0; i < 100 && !back; i++) {
    back = (await stat(file).catch(() => undefined))?.isFile() === true
    if (!back) await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(back, "part 2's file was rebuilt")
  const after = await partsOf()
  t.equal(after[0]?.etag, newer.etag, 'part 1 is still the newer upload')
  t.equal(after[1]?.etag, p2!.etag, 'part 2 is the one the set agrees on')
})
