/**
 * Healing and scanning (issue #6) with real processes: 4 nodes (RS 2+2, one drive each) and a
 * gateway. Faults are real: shard files deleted or with a flipped byte, a record removed, a
 * node stopped while objects are written and deleted, a drive folder wiped. Every repair is
 * checked on disk (shard files byte for byte, records field for field) and by reading the
 * objects back with the repaired drive's peers stopped, so that the repaired shards are needed.
 */
import { execFile } from 'node:child_process'
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { ErasureLayout } from '@tessera/codec'
import { objectHash } from '@tessera/node'
import {
  DeleteSystem,
  DeleteVersion,
  type DriveHealState,
  type DriveSlot,
  generateIdentity,
  HealStatus,
  ListBuckets,
  placeObject,
  QueueHeal,
  ReadVersions,
  StartHeal,
  type VersionRecord,
} from '@tessera/protocol'
import { startLocalCluster } from '@tessera/server'
import t from 'tap'
import { eventually, ROOT, TestCluster, type TestLike, versionsOn } from './harness/cluster.ts'
import { bodyBytes, bytes, s3Client, sha256 } from './harness/s3.ts'

const BLOCK = 64 * 1024
const INLINE = 4096
const MiB = 1024 * 1024
/** Settings every node of this test runs with: no periodic cycles (only the start pass), 1 s grace. */
const NODE_SETTINGS = 'scanIntervalMs: 600000\ndeepEvery: 0\nhealGraceMs: 1000\n'

/** Like the harness's startCluster, with heal settings appended to every node.yaml first. */
async function startHealCluster(t: TestLike): Promise<TestCluster> {
  let c: TestCluster | undefined
  // Before t.testdir(), so tap removes the folder only after the processes are stopped.
  t.teardown(() => c?.close())
  const gateway = await generateIdentity()
  const local = await startLocalCluster({
    dir: t.testdir(),
    nodes: 4,
    drivesPerNode: 1,
    data: 2,
    parity: 2,
    blockSize: BLOCK,
    inlineBelow: INLINE,
    gateways: 1,
    extraGateways: [gateway.id],
    clusterName: `test-${Math.random().toString(16).slice(2, 10)}`,
    root: ROOT,
    logLevel: 'info',
    trashIntervalMs: 200,
    start: false,
  })
  for (const n of local.nodes) {
    await writeFile(n.configPath, (await readFile(n.configPath, 'utf8')) + NODE_SETTINGS)
  }
  c = new TestCluster({ local, gateway })
  await Promise.all(local.nodes.map((n) => local.start(n.id)))
  await Promise.all(local.gateways.map((g) => local.start(g.id)))
  return c
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const run = promisify(execFile)

/**
 * Starts stopped nodes, then waits out the gateway's back-off for peers it could not reach
 * (1 s), so the next request finds them up.
 */
async function restart(c: TestCluster, ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => c.start(id)))
  await sleep(1200)
}

interface Obj {
  bucket: string
  key: string
  data: Buffer
  versionId?: string
}

function drivesOf(c: TestCluster): DriveSlot[] {
  return c.layout.pools[0]!.sets[0]!.drives
}

function driveOfNode(c: TestCluster, nodeId: string): DriveSlot {
  return drivesOf(c).find((d) => d.nodeId === nodeId)!
}

/** The drive holding shard `i` of an object. */
function shardDrive(c: TestCluster, bucket: string, key: string, i: number): DriveSlot {
  const { set, distribution } = placeObject(c.layout, 0, bucket, key)
  return set.drives[distribution[i]!]!
}

function shardPath(d: DriveSlot, rec: VersionRecord, part: number): string {
  const h = objectHash(rec.bucket, rec.key)
  return join(d.path, 'data', rec.bucket, h.slice(0, 2), h, rec.dataDir!, `part.${part}`)
}

/**
 * Drive `d` loses the 'null' version of a key, record and files, as a lost record would, not
 * as a client's delete: the tombstone the delete leaves (which rightly stops a repair from
 * bringing a deleted version back) is dropped as well.
 */
async function loseVersion(c: TestCluster, d: DriveSlot, bucket: string, key: string) {
  const ref = { pool: d.pool, set: d.set, slot: d.slot }
  await c.pool.call(c.peer(d.nodeId), DeleteVersion, { ...ref, bucket, key, versionId: 'null' })
  await c.pool.call(c.peer(d.nodeId), DeleteSystem, {
    ...ref,
    key: `local/tomb/${bucket}\u0000${key}\u0000null`,
  })
}

async function fileOrUndefined(path: string): Promise<Buffer | undefined> {
  return readFile(path).catch(() => undefined)
}

/** A drive's copy of an object: its records and, for each, its shard files' bytes. */
interface Copy {
  records: VersionRecord[]
  files: Map<string, Buffer>
}

async function copyOn(c: TestCluster, d: DriveSlot, bucket: string, key: string): Promise<Copy> {
  const records = await versionsOn(c, d, bucket, key)
  const files = new Map<string, Buffer>()
  for (const r of records) {
    if (r.dataDir === undefined) continue
    for (const p of r.parts) {
      const path = shardPath(d, r, p.number)
      const b = await fileOrUndefined(path)
      if (b) files.set(path, b)
    }
  }
  return { records, files }
}

/** JSON of a record with Buffers made comparable. */
function plain(r: VersionRecord): unknown {
  return JSON.parse(
    JSON.stringify(r, (_k, v: unknown) =>
      v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer'
        ? Buffer.from((v as { data: number[] }).data).toString('base64')
        : v,
    ),
  )
}

async function healStatus(c: TestCluster, d: DriveSlot): Promise<DriveHealState> {
  const r = await c.pool.call(c.peer(d.nodeId), HealStatus, {})
  return r.drives.find((x) => x.slot === d.slot)!
}

async function getBytes(s3: S3Client, o: Obj): Promise<Buffer> {
  const r = await s3.send(
    new GetObjectCommand({
      Bucket: o.bucket,
      Key: o.key,
      ...(o.versionId ? { VersionId: o.versionId } : {}),
    }),
  )
  return bodyBytes(r.Body)
}

t.test('healing: queued repairs, deep scans, catch-up, drive replacement', async (t) => {
  const c = await startHealCluster(t)
  const s3 = s3Client(c.gateways[0]!.endpoint)
  const layout = new ErasureLayout({ k: 2, m: 2, blockSize: BLOCK })
  const bucket = 'heal-objects'
  const vbucket = 'heal-versions'
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  await s3.send(new CreateBucketCommand({ Bucket: vbucket }))
  await s3.send(
    new PutBucketVersioningCommand({
      Bucket: vbucket,
      VersioningConfiguration: { Status: 'Enabled' },
    }),
  )
  const objects: Obj[] = []
  const put = async (o: Obj): Promise<Obj> => {
    const r = await s3.send(new PutObjectCommand({ Bucket: o.bucket, Key: o.key, Body: o.data }))
    const out = {
      ...o,
      ...(r.VersionId && r.VersionId !== 'null' ? { versionId: r.VersionId } : {}),
    }
    return out
  }
  /**
   * put, then waits until every drive holds the object: a PUT answers at its write quorum, and
   * the last drive's commit may still be on its way (for tests that look at every drive).
   */
  const putEverywhere = async (o: Obj): Promise<Obj> => {
    const out = await put(o)
    await eventually(`every drive holds ${o.key}`, async () =>
      (await Promise.all(drivesOf(c).map((p) => versionsOn(c, p, o.bucket, o.key)))).every(
        (v) => v.length > 0,
      )
        ? true
        : undefined,
    )
    return out
  }
  for (const [key, size, seed] of [
    ['big/one', 5 * BLOCK + 12_345, 1],
    ['big/two', MiB, 2],
    ['small/one', 1000, 3],
    ['small/empty', 0, 4],
    ['doomed', 150_000, 5],
    ['over', 100_000, 6],
  ] as const) {
    objects.push(await put({ bucket, key, data: bytes(size, seed) }))
  }
  // Multipart: parts of 5 MiB and 100 KiB, each its own shard file part.<N>.
  const mpData = bytes(5 * MiB + 100_000, 7)
  const mp = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp/object' }))
  const p1 = await s3.send(
    new UploadPartCommand({
      Bucket: bucket,
      Key: 'mp/object',
      UploadId: mp.UploadId,
      PartNumber: 1,
      Body: mpData.subarray(0, 5 * MiB),
    }),
  )
  const p2 = await s3.send(
    new UploadPartCommand({
      Bucket: bucket,
      Key: 'mp/object',
      UploadId: mp.UploadId,
      PartNumber: 2,
      Body: mpData.subarray(5 * MiB),
    }),
  )
  await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: 'mp/object',
      UploadId: mp.UploadId,
      MultipartUpload: {
        Parts: [
          { PartNumber: 1, ETag: p1.ETag },
          { PartNumber: 2, ETag: p2.ETag },
        ],
      },
    }),
  )
  objects.push({ bucket, key: 'mp/object', data: mpData })
  // A versioned key: two versions (one inline) and a delete marker on top.
  objects.push(await put({ bucket: vbucket, key: 'doc', data: bytes(200_000, 8) }))
  objects.push(await put({ bucket: vbucket, key: 'doc', data: bytes(2000, 9) }))
  await s3.send(new DeleteObjectCommand({ Bucket: vbucket, Key: 'doc' }))
  const find = (key: string) => objects.find((o) => o.key === key)!

  await t.test(
    'QueueHeal repairs a deleted shard file and a lost record within seconds',
    async (t) => {
      // A data shard file of a plain object.
      const big = find('big/one')
      const d = shardDrive(c, bucket, big.key, 0)
      const [rec] = await versionsOn(c, d, bucket, big.key)
      const path = shardPath(d, rec!, 1)
      const original = await readFile(path)
      t.equal(
        original.length,
        layout.shardFileBytes(big.data.length),
        'the shard file has its size',
      )
      await rm(path)
      const ref = { pool: d.pool, set: d.set, slot: d.slot }
      const queued = await c.pool.call(c.peer(d.nodeId), QueueHeal, {
        ...ref,
        items: [{ bucket, key: big.key, versionId: 'null', reason: 'read' }],
      })
      t.equal(queued.queued, 1)
      const t0 = Date.now()
      const back = await eventually('the shard file is rebuilt', async () => {
        const b = await fileOrUndefined(path)
        return b && b.length === original.length ? b : undefined
      })
      t.ok(back.equals(original), `rebuilt byte for byte (${Date.now() - t0} ms)`)

      // The second part of the multipart object, on a parity drive, by a write-miss report.
      const dp = shardDrive(c, bucket, 'mp/object', 3)
      const [mrec] = await versionsOn(c, dp, bucket, 'mp/object')
      t.equal(mrec!.parts.length, 2, 'two parts')
      const mpath = shardPath(dp, mrec!, 2)
      const morig = await readFile(mpath)
      await rm(mpath)
      await c.pool.call(c.peer(dp.nodeId), QueueHeal, {
        pool: dp.pool,
        set: dp.set,
        slot: dp.slot,
        items: [{ bucket, key: 'mp/object', reason: 'write-miss' }],
      })
      const mback = await eventually('the part file is rebuilt', async () => {
        const b = await fileOrUndefined(mpath)
        return b && b.length === morig.length ? b : undefined
      })
      t.ok(mback.equals(morig), 'the multipart part is rebuilt byte for byte')

      // The record of an inline object: gone from one drive, rebuilt with its inline shard.
      const small = find('small/one')
      const ds = shardDrive(c, bucket, small.key, 1)
      const [srec] = await versionsOn(c, ds, bucket, small.key)
      t.ok(srec?.inline && srec.inline.length > 0, 'an inline object')
      const sref = { pool: ds.pool, set: ds.set, slot: ds.slot }
      await loseVersion(c, ds, bucket, small.key)
      await c.pool.call(c.peer(ds.nodeId), QueueHeal, {
        ...sref,
        items: [{ bucket, key: small.key, versionId: 'null', reason: 'write-miss' }],
      })
      const srec2 = await eventually('the inline record is rebuilt', async () => {
        const [v] = await versionsOn(c, ds, bucket, small.key)
        return v
      })
      t.same(plain(srec2), plain(srec!), 'the same record, inline shard and index included')
      const st = await healStatus(c, ds)
      t.ok(st.healed >= 1, 'HealStatus counts the repair')
    },
  )

  await t.test(
    'a delete that lands while a repair rebuilds the object: nothing comes back, the rebuilt files go',
    async (t) => {
      // Big enough (a 48 MiB shard) that the rebuild is seen under way.
      const o = await putEverywhere({ bucket, key: 'racing/delete', data: bytes(96 * MiB, 21) })
      const d = shardDrive(c, bucket, o.key, 0)
      const ref = { pool: d.pool, set: d.set, slot: d.slot }
      const [rec] = await versionsOn(c, d, bucket, o.key)
      const dir = join(shardPath(d, rec!, 1), '..')
      await loseVersion(c, d, bucket, o.key)
      t.equal(await stat(dir).catch(() => undefined), undefined, 'the drive lost the files')
      const tmp = join(d.path, '.tessera', 'tmp')
      const rebuilding = async () => (await readdir(tmp).catch(() => [])).length > 0
      await c.pool.call(c.peer(d.nodeId), QueueHeal, {
        ...ref,
        items: [{ bucket, key: o.key, versionId: 'null', reason: 'read' }],
      })
      const seenBy = Date.now() + 10_000
      while (!(await rebuilding())) {
        if (Date.now() > seenBy) throw new Error('the rebuild was never seen under way')
        await sleep(5)
      }
      t.pass('the shard is being rebuilt')
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.key }))
      t.ok(await rebuilding(), 'the delete was acknowledged while the rebuild still ran')
      await eventually('the rebuild ends', async () => ((await rebuilding()) ? undefined : true))
      // Its part file was renamed into the data folder as the rebuild ended; the repair then
      // found the client's delete, so no record, and the files go to trash.
      await eventually(
        'the rebuilt files leave the data folder',
        async () => ((await stat(dir).catch(() => undefined)) === undefined ? true : undefined),
        3000,
      )
      t.same(await versionsOn(c, d, bucket, o.key), [], 'no record came back on the drive')
      await t.rejects(
        s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.key })),
        { name: 'NoSuchKey' },
        'the object stays deleted',
      )
    },
  )

  await t.test('a repair whose sources went with a client delete is no failure', async (t) => {
    const o = await putEverywhere({ bucket, key: 'racing/sources', data: bytes(300_000, 24) })
    const d = shardDrive(c, bucket, o.key, 0)
    const ref = { pool: d.pool, set: d.set, slot: d.slot }
    // The client's delete reached d (its tombstone names the version) and took the files on
    // the other drives, after a repair read their records: their records still name the files.
    await c.pool.call(c.peer(d.nodeId), DeleteVersion, {
      ...ref,
      bucket,
      key: o.key,
      versionId: 'null',
    })
    for (const p of drivesOf(c).filter((x) => x.slot !== d.slot)) {
      const [rec] = await versionsOn(c, p, bucket, o.key)
      await rm(join(shardPath(p, rec!, 1), '..'), { recursive: true, force: true })
    }
    const before = await healStatus(c, d)
    await c.pool.call(c.peer(d.nodeId), QueueHeal, {
      ...ref,
      items: [{ bucket, key: o.key, versionId: 'null', reason: 'read' }],
    })
    await eventually('the repair was taken', async () =>
      (await healStatus(c, d)).queued === 0 ? true : undefined,
    )
    await sleep(1500)
    const after = await healStatus(c, d)
    t.equal(after.failed, before.failed, 'the repair stood down: no failure counted')
    t.same(await versionsOn(c, d, bucket, o.key), [], 'and wrote nothing')
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.key }))
  })

  await t.test('a deep scan finds a flipped byte and repairs it', async (t) => {
    const two = find('big/two')
    const d = shardDrive(c, bucket, two.key, 1)
    const [rec] = await versionsOn(c, d, bucket, two.key)
    const path = shardPath(d, rec!, 1)
    const original = await readFile(path)
    const bad = Buffer.from(original)
    const at = 3 * (8 + layout.fullChunkBytes) + 8 + 1234
    bad[at] = bad[at]! ^ 0x40
    await writeFile(path, bad)
    t.equal((await stat(path)).size, original.length, 'same size: only a deep check can tell')
    const before = await healStatus(c, d)
    const ref = { pool: d.pool, set: d.set, slot: d.slot }
    const started = await c.pool.call(c.peer(d.nodeId), StartHeal, { ...ref, mode: 'deep' })
    t.equal(started.started, true)
    await eventually('the flipped byte is repaired', async () => {
      const b = await readFile(path)
      return b.equals(original) ? true : undefined
    })
    const after = await eventually('the deep cycle ends', async () => {
      const s = await healStatus(c, d)
      return s.lastCycleAt !== undefined && s.lastCycleAt > (before.lastCycleAt ?? 0)
        ? s
        : undefined
    })
    t.ok(after.healed > before.healed, 'counted as healed')
    t.ok(after.scanned > before.scanned, 'the cycle scanned versions')

    // Read it with two of the drive's three peers stopped: its shard is needed.
    const peers = drivesOf(c).filter((x) => x.nodeId !== d.nodeId)
    const stopped = peers.slice(0, 2).map((x) => x.nodeId)
    await Promise.all(stopped.map((id) => c.stop(id)))
    try {
      t.equal(sha256(await getBytes(s3, two)), sha256(two.data), 'the object reads back')
    } finally {
      await restart(c, stopped)
    }
  })

  await t.test(
    'a node that was down catches up: new objects appear, deleted ones go',
    async (t) => {
      const d = driveOfNode(c, 'n2')
      const [doomedRec] = await versionsOn(c, d, bucket, 'doomed')
      const doomedDir = join(shardPath(d, doomedRec!, 1), '..')
      t.ok((await stat(doomedDir)).isDirectory(), 'n2 holds the object to be deleted')
      await c.stop('n2')
      const fresh: Obj[] = []
      fresh.push(await put({ bucket, key: 'while-away/big', data: bytes(300_000, 11) }))
      fresh.push(await put({ bucket, key: 'while-away/small', data: bytes(500, 12) }))
      fresh.push(await put({ bucket, key: 'over', data: bytes(120_000, 13) }))
      fresh.push(await put({ bucket: vbucket, key: 'doc', data: bytes(70_000, 14) }))
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'doomed' }))
      await restart(c, ['n2'])
      for (const o of fresh) {
        await eventually(`${o.bucket}/${o.key} reaches n2`, async () => {
          const vs = await versionsOn(c, d, o.bucket, o.key)
          const want = o.versionId ?? 'null'
          const v = vs.find((x) => x.versionId === want && x.size === o.data.length)
          if (v === undefined) return undefined
          if (v.dataDir === undefined)
            return v.inline?.length === layout.shardFileBytes(v.size) ? v : undefined
          const st = await stat(shardPath(d, v, 1)).catch(() => undefined)
          return st?.size === layout.shardFileBytes(v.size) ? v : undefined
        })
      }
      t.pass('objects written while n2 was down are on its drive, with their shard files')
      const overs = await versionsOn(c, d, bucket, 'over')
      t.equal(overs.length, 1, 'the overwritten version was replaced, not kept beside')
      await eventually('the deleted object leaves n2', async () => {
        const vs = await versionsOn(c, d, bucket, 'doomed')
        const dir = await stat(doomedDir).catch(() => undefined)
        return vs.length === 0 && dir === undefined ? true : undefined
      })
      t.pass('the object deleted while n2 was down is gone from it, record and data')
      for (const o of fresh) {
        t.equal(sha256(await getBytes(s3, o)), sha256(o.data), `${o.key} reads back`)
      }
      objects.splice(objects.indexOf(find('doomed')), 1)
      objects.splice(objects.indexOf(find('over')), 1)
      objects.push(...fresh)
    },
  )

  await t.test('a wiped drive is rebuilt whole by a full heal', async (t) => {
    const d = driveOfNode(c, 'n3')
    // n3's copy of everything, to compare with after the heal.
    const keys = [...new Set(objects.map((o) => `${o.bucket}\u0000${o.key}`))].map((s) => {
      const [b, k] = s.split('\u0000') as [string, string]
      return { bucket: b, key: k }
    })
    const before = new Map<string, Copy>()
    for (const { bucket: b, key: k } of keys) before.set(`${b}/${k}`, await copyOn(c, d, b, k))
    const fileCount = [...before.values()].reduce((n, x) => n + x.files.size, 0)
    t.ok(fileCount >= 5, `n3 holds ${fileCount} shard files`)
    await c.stop('n3')
    await rm(d.path, { recursive: true, force: true })
    const restartAt = Date.now()
    await restart(c, ['n3'])
    const done = await eventually(
      'the full heal of n3 completes',
      async () => {
        const s = await healStatus(c, d)
        return s.state === 'idle' &&
          s.total !== undefined &&
          s.done === s.total &&
          (s.startedAt ?? 0) >= restartAt
          ? s
          : undefined
      },
      60_000,
    )
    t.ok(done.total! >= keys.length, `total ${done.total} versions, done ${done.done}`)
    t.ok(done.healed >= keys.length, `healed ${done.healed}`)
    t.equal(done.failed, 0, 'no repair failed')
    for (const [name, old] of before) {
      const [b, ...rest] = name.split('/')
      const now = await copyOn(c, d, b!, rest.join('/'))
      t.same(now.records.map(plain), old.records.map(plain), `${name}: records restored`)
      t.equal(now.files.size, old.files.size, `${name}: every shard file is back`)
      for (const [path, bytesBefore] of old.files) {
        const after = now.files.get(path)
        t.ok(after?.equals(bytesBefore), `${name}: ${path.slice(d.path.length)} byte for byte`)
      }
    }
    const buckets = await c.pool.call(c.peer('n3'), ListBuckets, {
      pool: d.pool,
      set: d.set,
      slot: d.slot,
    })
    t.same(buckets.buckets.map((x) => x.name).sort(), [bucket, vbucket], 'bucket records too')

    // Read everything with n1 and n2 stopped: only n3 (healed) and n4 remain, k = 2.
    await Promise.all([c.stop('n1'), c.stop('n2')])
    try {
      for (const o of objects) {
        t.equal(sha256(await getBytes(s3, o)), sha256(o.data), `${o.bucket}/${o.key} reads back`)
      }
    } finally {
      await restart(c, ['n1', 'n2'])
    }
  })

  await t.test(
    'a drive swapped while a peer is down stays healing until the peer is back',
    async (t) => {
      // Written while n1 is down: on n2, n3, n4 only.
      await c.stop('n1')
      const fresh: Obj[] = []
      fresh.push(await put({ bucket, key: 'swap/big', data: bytes(400_000, 21) }))
      fresh.push(await put({ bucket, key: 'swap/small', data: bytes(700, 22) }))
      // n2 goes down, n4's drive is swapped: of the three holders only n3 answers. n4's full
      // heal and n1's catch-up cannot tell whether they must hold these, until n2 is back.
      await c.stop('n2')
      const d4 = driveOfNode(c, 'n4')
      const d1 = driveOfNode(c, 'n1')
      await c.stop('n4')
      await rm(d4.path, { recursive: true, force: true })
      const restartAt = Date.now()
      await restart(c, ['n1', 'n4'])
      // A drive's state once it reports the fresh versions as waiting for peers.
      const waitingOn = (d: DriveSlot) =>
        eventually(
          `${d.nodeId} reports versions waiting for peers`,
          async () => {
            const s = await healStatus(c, d)
            return (s.waiting ?? 0) >= fresh.length ? s : undefined
          },
          30_000,
        )
      const waiting = await waitingOn(d4)
      t.equal(waiting.state, 'healing', `n4 is still healing (${waiting.waiting} waiting)`)
      await sleep(3000)
      const later = await healStatus(c, d4)
      t.equal(later.state, 'healing', 'and stays healing while n2 is down')
      t.ok(
        later.lastCycleAt === undefined || later.lastCycleAt < restartAt,
        'no whole pass is reported for n4',
      )
      const n1 = await waitingOn(d1)
      t.ok(
        n1.lastCycleAt === undefined || n1.lastCycleAt < restartAt,
        `n1's catch-up pass is not reported whole (${n1.waiting} waiting)`,
      )

      const backAt = Date.now()
      await restart(c, ['n2'])
      for (const d of [d4, d1]) {
        await eventually(
          `${d.nodeId} finishes a whole pass once n2 is back`,
          async () => {
            const s = await healStatus(c, d)
            return s.state === 'idle' && (s.lastCycleAt ?? 0) >= backAt && !s.waiting
              ? s
              : undefined
          },
          90_000,
        )
      }
      t.pass('n4 and n1 end their passes whole')
      // Only n1 and n4 left: the versions must be on both, with their data.
      await Promise.all([c.stop('n2'), c.stop('n3')])
      try {
        for (const o of [...objects, ...fresh]) {
          t.equal(
            sha256(await getBytes(s3, o)),
            sha256(o.data),
            `${o.bucket}/${o.key} reads back from n1 and n4`,
          )
        }
      } finally {
        await restart(c, ['n2', 'n3'])
      }
      objects.push(...fresh)
    },
  )

  await t.test('a node frozen for a while catches up when it runs again', async (t) => {
    const d = driveOfNode(c, 'n3')
    const node = c.node('n3')
    const logBefore = (await readFile(node.logPath, 'utf8')).length
    // Frozen (SIGSTOP) while objects are written: the writes go on without it.
    process.kill(node.child!.pid!, 'SIGSTOP')
    const fresh: Obj[] = []
    try {
      fresh.push(await put({ bucket, key: 'frozen/big', data: bytes(250_000, 31) }))
      fresh.push(await put({ bucket, key: 'frozen/small', data: bytes(900, 32) }))
      await sleep(6000)
    } finally {
      process.kill(node.child!.pid!, 'SIGCONT')
    }
    await eventually(
      'n3 notices it was stalled',
      async () => {
        const log = (await readFile(node.logPath, 'utf8')).slice(logBefore)
        return log.includes('the node was stalled: running a catch-up pass') ? true : undefined
      },
      10_000,
    )
    t.pass('n3 logs that it was stalled and runs a catch-up pass')
    for (const o of fresh) {
      await eventually(`${o.key} reaches n3`, async () => {
        const v = (await versionsOn(c, d, o.bucket, o.key))[0]
        if (v === undefined) return undefined
        if (v.dataDir === undefined) return v.inline !== undefined ? v : undefined
        return (await stat(shardPath(d, v, 1)).catch(() => undefined)) ? v : undefined
      })
    }
    t.pass('what was written while n3 was frozen is on its drive')
    objects.push(...fresh)
  })

  await t.test('tessera-node heal --deep waits for the scan it started', async (t) => {
    const node = c.node('n2')
    const d = driveOfNode(c, 'n2')
    const main = join(import.meta.dirname, '..', '..', 'packages', 'node', 'dist', 'src', 'main.js')
    const asked = Date.now()
    const { stdout } = await run(
      process.execPath,
      [main, 'heal', '--config', node.configPath, '--drive', d.path, '--deep'],
      { timeout: 60_000 },
    )
    t.match(stdout, /deep scan of .* started/, 'it says the scan started')
    t.match(stdout, /^done: idle, /m, 'and ends with the scan done')
    const s = await healStatus(c, d)
    t.ok((s.startedAt ?? 0) >= asked && (s.endedAt ?? 0) >= s.startedAt!, 'a pass ran since')
  })
})
