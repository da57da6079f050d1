// A CompleteMultipartUpload whose gateway died after drives wrote the version and before it
// settled the completion (FinishUpload) or took it back (UndoCompletion). The dead gateway is
// played by the test: it sends the drives CompleteUpload itself, through the real RPCs, with
// the version record a gateway would send, and then nothing. The client's retry, through a
// live gateway, finds the completion marked on the drives:
// - marked on a write quorum, it succeeded: settled, and answered as the first answer would
//   have been (the object's ETag and version id);
// - below its write quorum and older than any gateway would wait on it: taken back, and the
//   retry completes the upload afresh;
// - below it and young (its gateway may still be deciding): 503, try again shortly.
import { createHash, randomBytes } from 'node:crypto'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutBucketVersioningCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import {
  CompleteUpload,
  type DriveSlot,
  GetUpload,
  HLC_COUNTER_SPAN,
  ListParts,
  type PartRecord,
  type UploadRecord,
  type VersionRecord,
} from '@tessera/protocol'
import t from 'tap'
import { FOUR_NODES_RS22, gatewaySeesEveryDrive, type TestCluster } from './harness/cluster.ts'
import { place, shardDrive } from './harness/object-io.ts'
import {
  bodyBytes,
  bytes,
  clusterWithClient,
  s3Fault,
  sha256,
  uniqueBucket,
  versionedBucket,
} from './harness/s3.ts'

const MiB = 1024 * 1024

const ref = (d: DriveSlot) => ({ pool: d.pool, set: d.set, slot: d.slot })

/** An upload of two parts, through S3; what a Complete of both would send the drives. */
async function twoParts(c: TestCluster, s3: S3Client, bucket: string, key: string) {
  const { UploadId } = await s3.send(
    new CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      ContentType: 'application/x-test',
      Metadata: { origin: 'abandoned' },
    }),
  )
  const uploadId = UploadId!
  const parts = [bytes(5 * MiB, key.length), bytes(100_000, key.length + 1)]
  const etags: { PartNumber: number; ETag: string }[] = []
  for (const [i, body] of parts.entries()) {
    const r = await s3.send(
      new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: body }),
    )
    etags.push({ PartNumber: i + 1, ETag: r.ETag! })
  }
  const p = place(c, bucket, key)
  const drives = [0, 1, 2, 3].map((s) => shardDrive(p, s))
  const ids = { bucket, key, uploadId }
  const first = drives[0]!
  const { record: up } = await c.pool.call(c.peer(first.nodeId), GetUpload, {
    ...ref(first),
    ...ids,
  })
  const { parts: stored } = await c.pool.call(c.peer(first.nodeId), ListParts, {
    ...ref(first),
    ...ids,
  })
  // S3's multipart ETag, computed here from the parts' own MD5s: the MD5 of their digests.
  const md5 = (b: Uint8Array) => createHash('md5').update(b).digest()
  const etag = `${md5(Buffer.concat(parts.map(md5))).toString('hex')}-2`
  const complete = () =>
    s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags },
      }),
    )
  return {
    uploadId,
    drives,
    etag,
    data: Buffer.concat(parts),
    complete,
    /** The dead gateway's CompleteUpload on the drives of `shards`, as of `ageMs` ago. */
    async abandon(shards: number[], ageMs: number, versionId = 'null') {
      const record = versionOf(up!, stored, { versionId, etag, ageMs })
      for (const s of shards) {
        const d = drives[s]!
        await c.pool.call(c.peer(d.nodeId), CompleteUpload, {
          ...ref(d),
          uploadId,
          record: { ...record, erasure: { ...record.erasure, index: s } },
        })
      }
      return record
    },
    /** What drive `s` says of the upload. */
    lookup(s: number) {
      const d = drives[s]!
      return c.pool.call(c.peer(d.nodeId), GetUpload, { ...ref(d), ...ids })
    },
  }
}

/** The version record of a Complete of every stored part, written `ageMs` ago. */
function versionOf(
  up: UploadRecord,
  parts: PartRecord[],
  o: { versionId: string; etag: string; ageMs: number },
): VersionRecord {
  return {
    bucket: up.bucket,
    key: up.key,
    versionId: o.versionId,
    modTime: (Date.now() - o.ageMs) * HLC_COUNTER_SPAN,
    size: parts.reduce((a, p) => a + p.size, 0),
    etag: o.etag,
    ...(up.contentType !== undefined ? { contentType: up.contentType } : {}),
    ...(up.userMeta ? { userMeta: up.userMeta } : {}),
    erasure: up.erasure,
    parts: parts.map((p) => ({ number: p.number, size: p.size, etag: p.etag })),
    dataDir: up.dataDir ?? up.uploadId.slice(0, 64),
    deleteMarker: false,
  }
}

t.test('a Complete its gateway left unsettled is settled or taken back', async (t) => {
  const { c, s3 } = await clusterWithClient(t, FOUR_NODES_RS22)

  t.test('at its write quorum: settled, and answered as the first answer', async (t) => {
    const bucket = await versionedBucket(s3)
    const u = await twoParts(c, s3, bucket, 'mp/quorum')
    const versionId = randomBytes(24).toString('base64url')
    const record = await u.abandon([0, 1, 2], 0, versionId)
    t.match(
      await u.lookup(0),
      { completing: { versionId, modTime: record.modTime, etag: u.etag } },
      'the drives hold the completion, unsettled',
    )

    const done = await u.complete()
    t.equal(done.ETag, `"${u.etag}"`, 'the retry gets the ETag of the completion')
    t.equal(done.VersionId, versionId, 'and its version id')
    for (const s of [0, 1, 2]) {
      t.same(
        await u.lookup(s),
        { completed: { versionId, modTime: record.modTime, etag: u.etag } },
        `drive of shard ${s}: settled`,
      )
    }
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/quorum' }))
    t.equal(sha256(await bodyBytes(got.Body)), sha256(u.data), 'the object is both parts')
    t.equal(got.VersionId, versionId, 'as that version')
    t.equal(got.ContentType, 'application/x-test', 'with the upload’s content type')
    t.equal(got.Metadata?.origin, 'abandoned', 'and metadata')
    const again = await u.complete()
    t.equal(again.ETag, done.ETag, 'a further retry: the same answer')
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
    t.equal(uploads.Uploads?.length ?? 0, 0, 'no upload in progress is listed')
  })

  t.test('below it and abandoned: taken back, and the retry completes afresh', async (t) => {
    const bucket = uniqueBucket()
    await s3.send(new CreateBucketCommand({ Bucket: bucket }))
    const u = await twoParts(c, s3, bucket, 'mp/below')
    // Two drives completed (a write quorum is three) ten minutes ago; the node of shard 3 is
    // away, so only one drive holds the upload in progress: fewer than a read quorum.
    const old = await u.abandon([0, 1], 10 * 60_000)
    const away = u.drives[3]!.nodeId
    await c.stop(away)
    try {
      const done = await u.complete()
      t.equal(done.ETag, `"${u.etag}"`, 'the retry completes the upload')
      for (const s of [0, 1, 2]) {
        const r = await u.lookup(s)
        t.equal(r.completed?.etag, u.etag, `drive of shard ${s}: completed`)
        t.ok(
          r.completed !== undefined && r.completed.modTime > old.modTime,
          `drive of shard ${s}: by the retry, not the abandoned completion`,
        )
      }
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/below' }))
      t.equal(sha256(await bodyBytes(got.Body)), sha256(u.data), 'the object is both parts')
    } finally {
      await c.start(away)
      // The next subtest plays a dead gateway on drives it picks: its upload must be on all.
      await gatewaySeesEveryDrive(c)
    }
  })

  t.test('below it and young: the retry is told to try again', async (t) => {
    const bucket = uniqueBucket()
    await s3.send(new CreateBucketCommand({ Bucket: bucket }))
    const u = await twoParts(c, s3, bucket, 'mp/young')
    const young = await u.abandon([0, 1], 0)
    const away = u.drives[3]!.nodeId
    await c.stop(away)
    try {
      const busy = await u.complete().catch(s3Fault)
      t.match(
        busy,
        {
          code: 'ServiceUnavailable',
          status: 503,
          message: /being completed by another request; try again shortly/,
        },
        '503: its gateway may still be deciding',
      )
      t.match(
        await u.lookup(0),
        { completing: { modTime: young.modTime } },
        'and the completion is left to it',
      )
    } finally {
      await c.start(away)
      // The next subtest plays a dead gateway on drives it picks: its upload must be on all.
      await gatewaySeesEveryDrive(c)
    }
  })
})
