// Real tessera-node processes on loopback, real Noise channels, real drives in temp folders:
// round trips of shards and records through every RPC family.
import { randomBytes, randomUUID } from 'node:crypto'
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { objectHash } from '@tessera/node'
import {
  CommitPart,
  CompleteUpload,
  DeleteBucket,
  DeleteSystem,
  DeleteUpload,
  DeleteVersion,
  FinishUpload,
  GetBucket,
  GetDriveInfo,
  GetSystem,
  GetUpload,
  Health,
  ListBrief,
  ListBuckets,
  ListParts,
  ListRange,
  ListSystem,
  ListUploads,
  PutBucket,
  PutShard,
  PutSystem,
  PutUpload,
  ReadRaw,
  ReadShard,
  ReadVersions,
  RewriteShard,
  UndoCompletion,
} from '@tessera/protocol'
import t from 'tap'
import { startCluster } from './harness/cluster.ts'
import {
  getObject,
  place,
  putObject,
  shardDrive,
  shardFiles as shardFilesOf,
} from './harness/object-io.ts'

const BLOCK = 64 * 1024

t.test('a 3-node cluster answers every RPC family', async (t) => {
  const c = await startCluster(t, { nodes: 3, drivesPerNode: 2, k: 4, m: 2, blockSize: BLOCK })
  const ref = (d: { pool: number; set: number; slot: number }) => ({
    pool: d.pool,
    set: d.set,
    slot: d.slot,
  })
  /** A new upload of photos/`key`, its record on the drive of shard 0 only. */
  const newUpload = async (key: string) => {
    const p = place(c, 'photos', key)
    const d = shardDrive(p, 0)
    const peer = c.peer(d.nodeId)
    const uploadId = randomUUID()
    const erasure = { k: 4, m: 2, blockSize: BLOCK, distribution: p.distribution, index: 0 }
    await c.pool.call(peer, PutUpload, {
      ...ref(d),
      record: { bucket: 'photos', key, uploadId, initiated: Date.now() * 4096, erasure },
    })
    return { p, d, peer, uploadId, erasure }
  }

  t.test('health and drive info', async (t) => {
    for (const n of c.nodes) {
      const h = await c.pool.call(c.peer(n.id), Health, {})
      t.match(h, { nodeId: n.id, drives: 2, drivesOnline: 2 })
      const { drives } = await c.pool.call(c.peer(n.id), GetDriveInfo, {})
      t.equal(drives.length, 2)
      t.ok(drives.every((d) => d.online && d.totalBytes > 0 && d.driveId.length > 0))
    }
  })

  t.test('objects: put, read whole and ranges, list, delete', async (t) => {
    const data = randomBytes(300_001)
    const put = await putObject(c, 'photos', 'a/b/c.jpg', data)
    t.ok(
      put.results.every((r) => r.status === 'fulfilled'),
      'every drive committed',
    )
    t.equal(Buffer.compare(await getObject(c, 'photos', 'a/b/c.jpg'), data), 0, 'read back exactly')
    const part = await getObject(c, 'photos', 'a/b/c.jpg', {
      range: { start: 70_000, end: 200_123 },
    })
    t.equal(Buffer.compare(part, data.subarray(70_000, 200_123)), 0, 'a range reads back exactly')

    const d0 = shardDrive(put.placed, 0)
    const list = await c.pool.call(c.peer(d0.nodeId), ListRange, {
      ...ref(d0),
      bucket: 'photos',
      prefix: 'a/',
      delimiter: '/',
      limit: 10,
    })
    t.same(list.commonPrefixes, ['a/b/'], 'the delimiter rolls the key up')
    const flat = await c.pool.call(c.peer(d0.nodeId), ListRange, {
      ...ref(d0),
      bucket: 'photos',
      limit: 10,
    })
    t.same(
      flat.entries.map((e) => e.key),
      ['a/b/c.jpg'],
    )
    t.ok(flat.entries[0]?.erasure && flat.entries[0].parts.length === 1, 'full records')
    // A gateway's listing asks for only what it shows.
    const brief = await c.pool.call(c.peer(d0.nodeId), ListBrief, {
      ...ref(d0),
      bucket: 'photos',
      limit: 10,
      brief: true,
    })
    t.same(
      brief.entries,
      [
        {
          key: 'a/b/c.jpg',
          versionId: flat.entries[0]!.versionId,
          modTime: flat.entries[0]!.modTime,
          size: 300_001,
          etag: flat.entries[0]!.etag,
          deleteMarker: false,
        },
      ],
      'a brief listing: no data layout, parts or metadata',
    )

    // Every drive holds its own shard index in its copy of the record.
    for (let i = 0; i < 6; i++) {
      const d = shardDrive(put.placed, i)
      const { versions } = await c.pool.call(c.peer(d.nodeId), ReadVersions, {
        ...ref(d),
        bucket: 'photos',
        key: 'a/b/c.jpg',
      })
      t.equal(versions[0]?.erasure.index, i, `drive of shard ${i} has index ${i}`)
    }

    const dataDir = put.record.dataDir!
    const del = await c.pool.call(c.peer(d0.nodeId), DeleteVersion, {
      ...ref(d0),
      bucket: 'photos',
      key: 'a/b/c.jpg',
      versionId: 'null',
    })
    t.ok(del.existed)
    const after = await c.pool.call(c.peer(d0.nodeId), ReadVersions, {
      ...ref(d0),
      bucket: 'photos',
      key: 'a/b/c.jpg',
    })
    t.same(after.versions, [], 'the record is gone')
    // The data went to trash and the emptier removes it (interval 200 ms in the harness).
    await new Promise((r) => setTimeout(r, 600))
    const trash = await readdir(join(d0.path, '.tessera', 'trash'))
    t.same(trash, [], 'trash was emptied in the background')
    const files = await readdir(join(d0.path, 'data', 'photos'), { recursive: true })
    t.notOk(
      files.some((f) => String(f).includes(dataDir)),
      'no data file is left under data/',
    )
  })

  t.test('small objects are inline: no data file at all', async (t) => {
    const data = randomBytes(1000)
    const put = await putObject(c, 'photos', 'tiny.txt', data)
    t.ok(put.results.every((r) => r.status === 'fulfilled'))
    t.equal(put.record.dataDir, undefined)
    t.equal(Buffer.compare(await getObject(c, 'photos', 'tiny.txt'), data), 0)
    for (let i = 0; i < 6; i++) {
      const d = shardDrive(put.placed, i)
      const h = objectHash('photos', 'tiny.txt')
      await t.rejects(
        stat(join(d.path, 'data', 'photos', h.slice(0, 2), h)),
        { code: 'ENOENT' },
        `drive of shard ${i} has no folder for the object`,
      )
    }
  })

  t.test('a late commit never undoes a newer write or a delete', async (t) => {
    const newer = randomBytes(200_000)
    const older = randomBytes(200_000)
    const now = Date.now() * 4096
    await putObject(c, 'photos', 'late.bin', newer, { modTime: now })
    // The commit of an earlier PUT of the same 'null' version, delivered after the newer one.
    const late = await putObject(c, 'photos', 'late.bin', older, { modTime: now - 4096 })
    t.ok(
      late.results.every((r) => r.status === 'fulfilled' && r.value.superseded === true),
      'every drive calls the late commit superseded',
    )
    t.equal(Buffer.compare(await getObject(c, 'photos', 'late.bin'), newer), 0, 'newer data stays')
    const d0 = shardDrive(late.placed, 0)
    const h = objectHash('photos', 'late.bin')
    const dirs = await readdir(join(d0.path, 'data', 'photos', h.slice(0, 2), h))
    t.notOk(dirs.includes(late.record.dataDir!), 'the late data folder was not kept')

    // A versioned write whose commit arrives after a client deleted that version (on a drive
    // that held it, and on one that never saw it).
    const vid = randomUUID()
    const first = await putObject(c, 'photos', 'gone.bin', randomBytes(1000), { versionId: vid })
    const ref = (i: number) => {
      const d = shardDrive(first.placed, i)
      return { peer: c.peer(d.nodeId), ref: { pool: d.pool, set: d.set, slot: d.slot } }
    }
    for (let i = 0; i < 6; i++) {
      const { peer, ref: r } = ref(i)
      await c.pool.call(peer, DeleteVersion, {
        ...r,
        bucket: 'photos',
        key: 'gone.bin',
        versionId: vid,
      })
    }
    const never = randomUUID()
    {
      const d = shardDrive(place(c, 'photos', 'never.bin'), 0)
      const out = await c.pool.call(c.peer(d.nodeId), DeleteVersion, {
        pool: d.pool,
        set: d.set,
        slot: d.slot,
        bucket: 'photos',
        key: 'never.bin',
        versionId: never,
      })
      t.equal(out.existed, false)
    }
    const again = await putObject(c, 'photos', 'gone.bin', randomBytes(1000), {
      versionId: vid,
      modTime: first.record.modTime,
    })
    const lateNever = await putObject(c, 'photos', 'never.bin', randomBytes(300_000), {
      versionId: never,
    })
    t.ok(
      again.results.every((r) => r.status === 'fulfilled' && r.value.superseded === true),
      'a deleted version is not brought back',
    )
    const n0 = lateNever.results[0]
    t.ok(
      n0?.status === 'fulfilled' && n0.value.superseded === true,
      'nor one deleted before its commit arrived',
    )
    for (const [key, p] of [
      ['gone.bin', first.placed],
      ['never.bin', lateNever.placed],
    ] as const) {
      const d = shardDrive(p, 0)
      const { versions } = await c.pool.call(c.peer(d.nodeId), ReadVersions, {
        pool: d.pool,
        set: d.set,
        slot: d.slot,
        bucket: 'photos',
        key,
      })
      t.same(versions, [], `${key}: no version on the drive`)
    }
  })

  t.test('a flipped byte in a shard file is detected and named', async (t) => {
    const data = randomBytes(5 * BLOCK + 77)
    const put = await putObject(c, 'photos', 'flip.bin', data)
    t.ok(put.results.every((r) => r.status === 'fulfilled'))
    const d1 = shardDrive(put.placed, 1)
    const p = place(c, 'photos', 'flip.bin')
    const shardFile = (await readdir(join(d1.path, 'data'), { recursive: true })).find((f) =>
      String(f).endsWith(join(put.record.dataDir!, 'part.1')),
    )
    t.ok(shardFile, 'the shard file exists')
    const full = join(d1.path, 'data', String(shardFile))
    const bytes = await readFile(full)
    const stride = 8 + p.layout.fullChunkBytes
    bytes[2 * stride + 8 + 5]! ^= 0x01
    await writeFile(full, bytes)

    const read = await c.pool.callStream(c.peer(d1.nodeId), ReadShard, {
      ...ref(d1),
      bucket: 'photos',
      key: 'flip.bin',
      dataDir: put.record.dataDir!,
      part: 1,
      size: data.length,
      k: 4,
      blockSize: BLOCK,
      firstBlock: 0,
      lastBlock: 5,
    })
    t.equal(
      read.res.bytes,
      p.layout.shardSpan(data.length, 0, 5).length,
      'the answer gives the span',
    )
    const body = read.body
    let blocks = 0
    try {
      for await (const _ of body) blocks++
      t.fail('the read must fail at the bad block')
    } catch (err) {
      t.equal((err as { code?: string }).code, 'CHECKSUM_MISMATCH')
      t.match((err as Error).message, d1.path, 'the error names the drive')
      t.match((err as Error).message, 'flip.bin', 'the error names the object')
      t.match((err as { details?: object }).details, { block: 2 }, 'the error names the block')
      t.equal(blocks, 2, 'blocks before the bad one were delivered')
    }
    const errors: number[] = []
    const back = await getObject(c, 'photos', 'flip.bin', { onShardError: (s) => errors.push(s) })
    t.equal(Buffer.compare(back, data), 0, 'the object still reads back, from parity')
    t.same(errors, [1], 'the bad shard was reported')
  })

  t.test('healing: raw reads and shard rewrites', async (t) => {
    const data = randomBytes(3 * BLOCK + 10)
    const put = await putObject(c, 'photos', 'heal.bin', data)
    t.ok(put.results.every((r) => r.status === 'fulfilled'))
    const d2 = shardDrive(put.placed, 2)
    const shard = {
      ...ref(d2),
      bucket: 'photos',
      key: 'heal.bin',
      dataDir: put.record.dataDir!,
      part: 1,
    }
    const files = await shardFilesOf(put.placed.layout, data)
    const raw = await c.pool.callStream(c.peer(d2.nodeId), ReadRaw, {
      ...shard,
      offset: 0,
      length: files[2]!.length,
    })
    const got: Buffer[] = []
    for await (const chunk of raw.body) got.push(Buffer.from(chunk))
    t.equal(Buffer.compare(Buffer.concat(got), files[2]!), 0, 'raw bytes are the shard file')

    // Damage the shard on disk, then rewrite it from a good copy: reads verify again.
    const onDisk = join(d2.path, 'data', 'photos')
    const path = (await readdir(onDisk, { recursive: true }))
      .map(String)
      .find((f) => f.endsWith(join(put.record.dataDir!, 'part.1')))!
    const bad = Buffer.from(files[2]!)
    bad[20]! ^= 0xff
    await writeFile(join(onDisk, path), bad)
    const errors: number[] = []
    await getObject(c, 'photos', 'heal.bin', { onShardError: (s) => errors.push(s) })
    t.same(errors, [2], 'the damage is seen (shard 2 is a data shard of 4 + 2)')
    const r = await c.pool.call(
      c.peer(d2.nodeId),
      RewriteShard,
      { ...shard, size: files[2]!.length },
      {
        body: (async function* () {
          yield files[2]!
        })(),
      },
    )
    t.equal(r.bytes, files[2]!.length)
    t.same(await readFile(join(onDisk, path)), files[2], 'the shard file was replaced')
    const after: number[] = []
    const back = await getObject(c, 'photos', 'heal.bin', { onShardError: (s) => after.push(s) })
    t.equal(Buffer.compare(back, data), 0)
    t.same(after, [], 'no shard errors after the rewrite')
  })

  t.test('buckets', async (t) => {
    const d = c.layout.pools[0]!.sets[0]!.drives[0]!
    const peer = c.peer(d.nodeId)
    const record = {
      name: 'logs',
      project: '',
      created: Date.now() * 4096,
      versioning: 'unversioned' as const,
    }
    t.same(await c.pool.call(peer, PutBucket, { ...ref(d), record, ifAbsent: true }), {
      created: true,
    })
    t.same(await c.pool.call(peer, PutBucket, { ...ref(d), record, ifAbsent: true }), {
      created: false,
    })
    t.match(await c.pool.call(peer, GetBucket, { ...ref(d), name: 'logs' }), {
      record: { name: 'logs' },
    })
    // A change of the settings replaces the record; one older than what the drive holds (a
    // late write) does not.
    const later = {
      ...record,
      versioning: 'enabled' as const,
      settings: { updated: record.created + 10 },
    }
    t.same(await c.pool.call(peer, PutBucket, { ...ref(d), record: later }), { created: true })
    const earlier = { ...record, settings: { updated: record.created + 5 } }
    t.same(await c.pool.call(peer, PutBucket, { ...ref(d), record: earlier }), { created: false })
    t.match(
      await c.pool.call(peer, GetBucket, { ...ref(d), name: 'logs' }),
      { record: { versioning: 'enabled', settings: { updated: record.created + 10 } } },
      'a late, older record does not undo the later one',
    )
    const { buckets } = await c.pool.call(peer, ListBuckets, ref(d))
    t.ok(buckets.some((b) => b.name === 'logs'))
    t.same(await c.pool.call(peer, DeleteBucket, { ...ref(d), name: 'logs' }), { existed: true })
    t.same(await c.pool.call(peer, GetBucket, { ...ref(d), name: 'logs' }), {})
    await t.rejects(
      c.pool.call(peer, PutBucket, { ...ref(d), record: { ...record, name: '../etc' } }),
      { code: 'INVALID_REQUEST' },
      'a bucket name that is not a safe path component is refused',
    )
  })

  t.test('multipart uploads and parts', async (t) => {
    const { d, peer, uploadId, erasure } = await newUpload('big.iso')
    // A part's shard written to tmp, then committed under `uploadId`.
    const putPart = async (id: string, number: number, dataDir: string) => {
      const tmpId = randomUUID()
      const shard = randomBytes(1000 + number)
      await c.pool.call(
        peer,
        PutShard,
        {
          ...ref(d),
          bucket: 'photos',
          key: 'big.iso',
          dataDir,
          part: number,
          tmpId,
          size: shard.length,
        },
        {
          body: (async function* () {
            yield shard
          })(),
        },
      )
      await c.pool.call(peer, CommitPart, {
        ...ref(d),
        tmpId,
        record: {
          bucket: 'photos',
          key: 'big.iso',
          uploadId: id,
          number,
          size: 4000,
          etag: `e${number}`,
          modTime: Date.now() * 4096,
          dataDir,
          erasure,
        },
      })
    }
    const dataDir = randomUUID()
    for (const number of [1, 2]) await putPart(uploadId, number, dataDir)
    const { parts } = await c.pool.call(peer, ListParts, {
      ...ref(d),
      bucket: 'photos',
      key: 'big.iso',
      uploadId,
    })
    t.same(
      parts.map((x) => x.number),
      [1, 2],
    )
    const st = await stat(join(d.path, 'data', 'photos')).catch(() => undefined)
    t.ok(st?.isDirectory())
    t.same(
      await c.pool.call(peer, DeleteUpload, {
        ...ref(d),
        bucket: 'photos',
        key: 'big.iso',
        uploadId,
      }),
      {
        existed: true,
      },
    )
    const again = await c.pool.call(peer, ListParts, {
      ...ref(d),
      bucket: 'photos',
      key: 'big.iso',
      uploadId,
    })
    t.same(again.parts, [], 'parts went with the upload')
    // A drive that missed the CreateMultipartUpload and then got a part: the abort still
    // takes the part and its folder.
    const strayId = randomUUID()
    const strayDir = randomUUID()
    await putPart(strayId, 1, strayDir)
    const strayFolders = async () =>
      (await readdir(join(d.path, 'data', 'photos'), { recursive: true })).filter((e) =>
        e.endsWith(strayDir),
      )
    t.equal((await strayFolders()).length, 1, 'the part of the unknown upload is on disk')
    t.same(
      await c.pool.call(peer, DeleteUpload, {
        ...ref(d),
        bucket: 'photos',
        key: 'big.iso',
        uploadId: strayId,
      }),
      { existed: false },
      'the drive had no record of the upload',
    )
    const strayLeft = await c.pool.call(peer, ListParts, {
      ...ref(d),
      bucket: 'photos',
      key: 'big.iso',
      uploadId: strayId,
    })
    t.same(strayLeft.parts, [], 'but its part went')
    t.same(await strayFolders(), [], 'with its folder')
  })

  /**
   * An upload of photos/`key` on one drive with `parts` parts of 6000 B (ETags e1, e2, …), and
   * its completion there with the first `chosen` of them (as `versionId`, at `modTime`).
   */
  const partedUpload = async (key: string, versionId: string, parts = 1) => {
    const { p, d, peer, uploadId, erasure } = await newUpload(key)
    const dataDir = randomUUID()
    const modTime = Date.now() * 4096
    for (let number = 1; number <= parts; number++) {
      const tmpId = randomUUID()
      const shard = (await shardFilesOf(p.layout, randomBytes(6000)))[0]!
      await c.pool.call(
        peer,
        PutShard,
        { ...ref(d), bucket: 'photos', key, dataDir, part: number, tmpId, size: shard.length },
        {
          body: (async function* () {
            yield shard
          })(),
        },
      )
      await c.pool.call(peer, CommitPart, {
        ...ref(d),
        tmpId,
        record: {
          bucket: 'photos',
          key,
          uploadId,
          number,
          size: 6000,
          etag: `e${number}`,
          modTime,
          dataDir,
          erasure,
        },
      })
    }
    const complete = (o: { chosen?: number; modTime?: number; versionId?: string } = {}) => {
      const chosen = Array.from({ length: o.chosen ?? 1 }, (_, i) => ({
        number: i + 1,
        size: 6000,
        etag: `e${i + 1}`,
      }))
      return c.pool.call(peer, CompleteUpload, {
        ...ref(d),
        uploadId,
        record: {
          bucket: 'photos',
          key,
          versionId: o.versionId ?? versionId,
          modTime: o.modTime ?? modTime,
          size: 6000 * chosen.length,
          etag: `mp-${chosen.length}`,
          erasure,
          parts: chosen,
          dataDir,
          deleteMarker: false,
        },
      })
    }
    const ids = { ...ref(d), bucket: 'photos', key, uploadId }
    const finish = (at = modTime) => c.pool.call(peer, FinishUpload, { ...ids, modTime: at })
    const undo = (at = modTime, vid = versionId) =>
      c.pool.call(peer, UndoCompletion, { ...ids, modTime: at, versionId: vid })
    const upload = async () => (await c.pool.call(peer, GetUpload, ids)).record
    const lookup = () => c.pool.call(peer, GetUpload, ids)
    const partNumbers = async () =>
      (await c.pool.call(peer, ListParts, ids)).parts.map((x) => x.number)
    const versions = async () =>
      (await c.pool.call(peer, ReadVersions, { ...ref(d), bucket: 'photos', key })).versions
    const h = objectHash('photos', key)
    const objectDir = join(d.path, 'data', 'photos', h.slice(0, 2), h)
    const folder = async (): Promise<string[]> => readdir(objectDir).catch(() => [])
    const files = async (): Promise<string[]> =>
      (await readdir(join(objectDir, dataDir)).catch(() => [])).sort()
    return {
      d,
      peer,
      uploadId,
      modTime,
      dataDir,
      complete,
      finish,
      undo,
      upload,
      lookup,
      partNumbers,
      versions,
      folder,
      files,
      objectDir,
    }
  }

  t.test('a late multipart completion never undoes a newer write or a delete', async (t) => {
    // An upload with one part on one drive, completed there only after the key moved on.
    const upload = partedUpload

    // A newer 'null' write landed first: it stays, the upload goes with its files.
    const u = await upload('mp-late.bin', 'null')
    const newer = randomBytes(200_000)
    await putObject(c, 'photos', 'mp-late.bin', newer, { modTime: u.modTime + 4096 })
    t.same(await u.complete(), { superseded: true }, 'the late completion is superseded')
    const { versions } = await c.pool.call(u.peer, ReadVersions, {
      ...ref(u.d),
      bucket: 'photos',
      key: 'mp-late.bin',
    })
    t.same(
      versions.map((v) => v.modTime),
      [u.modTime + 4096],
      'the newer version is the only one on the drive',
    )
    t.equal(Buffer.compare(await getObject(c, 'photos', 'mp-late.bin'), newer), 0, 'it reads')
    const { record: gone } = await c.pool.call(u.peer, GetUpload, {
      ...ref(u.d),
      bucket: 'photos',
      key: 'mp-late.bin',
      uploadId: u.uploadId,
    })
    t.equal(gone, undefined, 'the upload is no longer in progress')
    t.same(await u.finish(), { finished: true }, 'the gateway settles the completion')
    t.notOk((await u.folder()).includes(u.dataDir), "the upload's folder went to trash")

    // The version was deleted on the drive before its completion arrived.
    const vid = randomUUID()
    const v = await upload('mp-gone.bin', vid)
    await c.pool.call(v.peer, DeleteVersion, {
      ...ref(v.d),
      bucket: 'photos',
      key: 'mp-gone.bin',
      versionId: vid,
    })
    t.same(await v.complete(), { superseded: true }, 'a deleted version does not appear')
    const after = await c.pool.call(v.peer, ReadVersions, {
      ...ref(v.d),
      bucket: 'photos',
      key: 'mp-gone.bin',
    })
    t.same(after.versions, [], 'no version on the drive')

    // A drive that lacks a chosen part, or holds another upload of it, names nothing.
    const x = await upload('mp-lack.bin', 'null')
    const completeWith = (parts: { number: number; size: number; etag: string }[]) =>
      c.pool.call(x.peer, CompleteUpload, {
        ...ref(x.d),
        uploadId: x.uploadId,
        record: {
          bucket: 'photos',
          key: 'mp-lack.bin',
          versionId: 'null',
          modTime: x.modTime,
          size: parts.reduce((a, p) => a + p.size, 0),
          etag: 'mp-2',
          erasure: {
            k: 4,
            m: 2,
            blockSize: BLOCK,
            distribution: place(c, 'photos', 'mp-lack.bin').distribution,
            index: 0,
          },
          parts,
          dataDir: x.dataDir,
          deleteMarker: false,
        },
      })
    await t.rejects(
      completeWith([
        { number: 1, size: 6000, etag: 'e1' },
        { number: 2, size: 9000, etag: 'e2' },
      ]),
      { code: 'SHARD_NOT_FOUND', message: /does not hold part 2 of upload/ },
      'a part it never got',
    )
    await t.rejects(
      completeWith([{ number: 1, size: 6000, etag: 'other' }]),
      { code: 'SHARD_NOT_FOUND' },
      'another upload of the part',
    )
    await rm(join(x.objectDir, x.dataDir, 'part.1'))
    await t.rejects(
      completeWith([{ number: 1, size: 6000, etag: 'e1' }]),
      { code: 'SHARD_NOT_FOUND', message: /does not hold the files of upload .*part 1: missing/ },
      'a part whose file is gone',
    )
    const lackAfter = await c.pool.call(x.peer, ReadVersions, {
      ...ref(x.d),
      bucket: 'photos',
      key: 'mp-lack.bin',
    })
    t.same(lackAfter.versions, [], 'no version written')
    const kept = await c.pool.call(x.peer, GetUpload, {
      ...ref(x.d),
      bucket: 'photos',
      key: 'mp-lack.bin',
      uploadId: x.uploadId,
    })
    t.ok(kept.record, 'the upload stays')

    // In time, the completion writes the version and keeps the part files.
    const w = await upload('mp-ok.bin', 'null')
    t.same(await w.complete(), {}, 'an ordinary completion')
    t.same(await w.finish(), { finished: true }, 'settled')
    t.ok((await w.folder()).includes(w.dataDir), 'its folder stays')
    t.same(await w.files(), ['part.1'], 'with its part file')
  })

  t.test('a completion waits for the gateway to settle it or take it back', async (t) => {
    const u = await partedUpload('mp-settle.bin', 'null', 2)
    t.same(await u.complete(), {}, 'completed with part 1 of 2')
    t.same(
      await u.lookup(),
      { completing: { versionId: 'null', modTime: u.modTime, etag: 'mp-1' } },
      'the upload is no longer in progress: the drive names its unsettled completion',
    )
    const listed = await c.pool.call(u.peer, ListUploads, {
      ...ref(u.d),
      bucket: 'photos',
      prefix: 'mp-settle',
      limit: 10,
    })
    t.same(listed.uploads, [], 'nor listed')
    t.same(await u.partNumbers(), [1, 2], 'its part records wait for the settlement')
    t.same(await u.files(), ['part.1', 'part.2'], 'and so do their files')
    t.equal((await u.versions()).length, 1, 'the version is there')

    // The completion missed its write quorum elsewhere: taken back whole.
    t.same(await u.undo(), { undone: true }, 'taken back')
    t.same(await u.versions(), [], 'no version on the drive')
    t.equal((await u.upload())?.uploadId, u.uploadId, 'the upload is in progress again')
    t.same(await u.partNumbers(), [1, 2], 'with both parts')
    t.same(await u.files(), ['part.1', 'part.2'], 'and their files')
    await t.rejects(
      u.complete(),
      { code: 'CANCELLED', message: /undid this completion/ },
      'the undone completion, arriving again, is refused',
    )
    t.same(await u.versions(), [], 'and writes nothing')

    // The client retries: a new completion, settled this time.
    const retry = u.modTime + 4096
    t.same(await u.complete({ modTime: retry }), {}, 'the retry completes')
    t.same(await u.finish(u.modTime), { finished: false }, 'only the completion named is settled')
    t.same(await u.files(), ['part.1', 'part.2'], 'so nothing went')
    t.same(await u.finish(retry), { finished: true }, 'settled')
    t.same(await u.finish(retry), { finished: false }, 'once')
    const settled = await c.pool.call(u.peer, GetUpload, {
      ...ref(u.d),
      bucket: 'photos',
      key: 'mp-settle.bin',
      uploadId: u.uploadId,
    })
    t.same(
      settled,
      { completed: { versionId: 'null', modTime: retry, etag: 'mp-1' } },
      'the drive remembers what the upload was completed as, for a retried Complete',
    )
    t.same(await u.partNumbers(), [], 'the part records went')
    t.same(await u.files(), ['part.1'], 'the unchosen part went to trash, the chosen one stays')
    t.same(
      (await u.versions()).map((v) => v.modTime),
      [retry],
      'the version of the retry',
    )
    // A gateway that lost count of this completion (a call timed out) and takes it back after
    // another one settled it: the settled completion stands.
    t.same(await u.undo(retry), { undone: false }, 'a settled completion is not taken back')
    t.same(
      (await u.versions()).map((v) => v.modTime),
      [retry],
      'its version stays',
    )
    t.same(await u.lookup(), settled, 'and so does its settlement')

    // An undo that arrives before its completion: the completion is refused when it comes.
    const e = await partedUpload('mp-early.bin', randomUUID())
    t.same(await e.undo(), { undone: false }, 'nothing to take back yet')
    await t.rejects(e.complete(), { code: 'CANCELLED' }, 'the late completion is refused')
    t.same(await e.versions(), [], 'no version')
    t.equal((await e.upload())?.uploadId, e.uploadId, 'the upload is in progress')

    // A failed completion whose undo never came here, then the client's retry (versioned):
    // the first attempt's version goes, the retry's stays.
    const first = randomUUID()
    const r = await partedUpload('mp-retry.bin', first, 2)
    await r.complete()
    const second = randomUUID()
    await r.complete({ versionId: second, modTime: r.modTime + 4096, chosen: 2 })
    t.same(
      (await r.versions()).map((v) => v.versionId),
      [second],
      "the earlier attempt's version went",
    )
    t.same(await r.finish(r.modTime + 4096), { finished: true })
    t.same(await r.files(), ['part.1', 'part.2'], 'both parts are the version')

    // An Abort that raced a Complete: the version and the files it uses stay.
    const a = await partedUpload('mp-abort.bin', 'null', 2)
    await a.complete()
    t.same(
      await c.pool.call(a.peer, DeleteUpload, {
        ...ref(a.d),
        bucket: 'photos',
        key: 'mp-abort.bin',
        uploadId: a.uploadId,
      }),
      { existed: false },
      'a completed upload is no longer there to abort',
    )
    t.equal((await a.versions()).length, 1, 'the version stays')
    t.same(await a.files(), ['part.1'], 'with its part; the unchosen one went')
    t.same(await a.partNumbers(), [], 'the records went')
  })

  t.test('system records', async (t) => {
    const d = c.layout.pools[0]!.sets[0]!.drives[1]!
    const peer = c.peer(d.nodeId)
    await c.pool.call(peer, PutSystem, {
      ...ref(d),
      key: 'iam/users/alice',
      value: { name: 'alice', n: 1 },
    })
    await c.pool.call(peer, PutSystem, { ...ref(d), key: 'iam/users/bob', value: { name: 'bob' } })
    t.same(await c.pool.call(peer, GetSystem, { ...ref(d), key: 'iam/users/alice' }), {
      value: { name: 'alice', n: 1 },
    })
    const { entries } = await c.pool.call(peer, ListSystem, { ...ref(d), prefix: 'iam/users/' })
    t.same(
      entries.map((e) => e.key),
      ['iam/users/alice', 'iam/users/bob'],
    )
    t.same(await c.pool.call(peer, DeleteSystem, { ...ref(d), key: 'iam/users/bob' }), {
      existed: true,
    })
  })

  t.test('errors cross the wire with their codes', async (t) => {
    const d = c.layout.pools[0]!.sets[0]!.drives[0]!
    const peer = c.peer(d.nodeId)
    await t.rejects(
      c.pool.call(peer, ReadVersions, { pool: 0, set: 99, slot: 0, bucket: 'photos', key: 'x' }),
      { code: 'DRIVE_NOT_FOUND' },
    )
    await t.rejects(
      c.pool.callStream(peer, ReadShard, {
        ...ref(d),
        bucket: 'photos',
        key: 'nope',
        dataDir: randomUUID(),
        part: 1,
        size: 10,
        k: 4,
        blockSize: BLOCK,
        firstBlock: 0,
        lastBlock: 0,
      }),
      { code: 'SHARD_NOT_FOUND' },
    )
    await t.rejects(
      c.pool.call(
        peer,
        PutShard,
        {
          ...ref(d),
          bucket: 'photos',
          key: 'k',
          dataDir: randomUUID(),
          part: 1,
          tmpId: randomUUID(),
          size: 10,
        },
        {
          body: (async function* () {
            yield new Uint8Array(5)
          })(),
        },
      ),
      { code: 'INVALID_REQUEST', message: /ended after 5 of 10 bytes/ },
      'a truncated body is refused and names the shortfall',
    )
  })

  t.test('64 concurrent shard streams complete', async (t) => {
    const size = 1024 * 1024
    const payload = randomBytes(size)
    const drives = c.layout.pools[0]!.sets.flatMap((s) => s.drives)
    const jobs = Array.from({ length: 64 }, (_, i) => {
      const d = drives[i % drives.length]!
      return c.pool.call(
        c.peer(d.nodeId),
        PutShard,
        {
          ...ref(d),
          bucket: 'load',
          key: `k${i}`,
          dataDir: randomUUID(),
          part: 1,
          tmpId: randomUUID(),
          size,
        },
        {
          body: (async function* () {
            for (let at = 0; at < size; at += 100_000) yield payload.subarray(at, at + 100_000)
          })(),
        },
      )
    })
    const done = await Promise.all(jobs)
    t.ok(
      done.every((r) => r.bytes === size),
      '64 × 1 MiB written',
    )
  })
})
