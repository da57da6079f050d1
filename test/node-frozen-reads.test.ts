// Reads do not wait for a node that has just gone silent (frozen with SIGSTOP: its sockets
// stay open and nothing answers, so its channel is declared dead only after 5 s of silence).
// A version lookup asks the rest of the set when its first drives have not answered within
// 250 ms; a bucket lookup, a delete and a tag change settle once enough drives answered; the
// listings (objects, versions, buckets, uploads, parts) leave a drive out after 250 ms once
// the others decide them; a streamed PUT goes on without a drive whose node sent nothing for
// 2 s; a new upload's record and bucket writes settle at the write quorum.
// Shown without timing, as in write-quorum.test.ts: each request is answered while the
// gateway's calls to the frozen node are still open (tessera_rpc_errors_total counts no
// failure for it yet), and the lookups that went past the frozen node are counted in
// tessera_read_hedges_total.
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetBucketTaggingCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import t from 'tap'
import {
  FOUR_NODES_RS22,
  failedCalls,
  freezeNode,
  gatewayCounter,
  gatewaySeesEveryDrive,
} from './harness/cluster.ts'
import { place, shardDrive } from './harness/object-io.ts'
import { bodyBytes, bytes, clusterWithClient, s3Fault, sha256, uniqueBucket } from './harness/s3.ts'

t.test('reads and deletes do not wait for a node that went silent', async (t) => {
  const { c, endpoint, s3 } = await clusterWithClient(t, FOUR_NODES_RS22)
  const bucket = uniqueBucket('frozen')
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))

  // The silent node holds shard 0 of every object read below: the drive a lookup asks first
  // and a data shard of the streamed objects.
  const victim = shardDrive(place(c, bucket, 'small-0'), 0).nodeId
  const objects: { key: string; data: Buffer }[] = []
  for (let i = 0; objects.length < 6 && i < 500; i++) {
    const size = objects.length % 2 === 0 ? 1000 : 300_000 // inline, and in shard files
    const key = `${size === 1000 ? 'small' : 'large'}-${i}`
    if (shardDrive(place(c, bucket, key), 0).nodeId !== victim) continue
    const data = bytes(size, i + 1)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }))
    objects.push({ key, data })
  }
  t.equal(objects.length, 6, 'three inline and three streamed objects on the silent node')
  const doomed = objects[0]!.key
  const tagged = objects[1]!.key
  // Every connection is open and warm, and the bucket is in the gateway's cache.
  await gatewaySeesEveryDrive(c)
  for (const o of objects) await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: o.key }))

  const failedBefore = await failedCalls(endpoint, victim)
  const hedgesBefore = await gatewayCounter(endpoint, 'tessera_read_hedges_total')
  const thaw = freezeNode(t, c, victim)

  const stillOpen = async (what: string) =>
    t.equal(
      await failedCalls(endpoint, victim),
      failedBefore,
      `${what}: answered while the calls to the silent node were still open`,
    )

  const reads = await Promise.all(
    objects.slice(1).map(async (o) => {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.key }))
      return { key: o.key, ok: sha256(await bodyBytes(got.Body)) === sha256(o.data) }
    }),
  )
  for (const r of reads) t.ok(r.ok, `GET ${r.key} returns its bytes`)
  const missing = await s3
    .send(new GetObjectCommand({ Bucket: bucket, Key: 'small-none' }))
    .then(() => undefined, s3Fault)
  t.equal(missing?.code, 'NoSuchKey', 'a key that does not exist is still NoSuchKey (404)')
  t.equal(missing?.status, 404)
  await stillOpen('GETs of inline and streamed objects, and of a missing key')
  t.ok(
    (await gatewayCounter(endpoint, 'tessera_read_hedges_total')) - hedgesBefore >=
      objects.length - 1,
    'each lookup asked past the silent drive (tessera_read_hedges_total)',
  )

  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: doomed }))
  const gone = await s3
    .send(new HeadObjectCommand({ Bucket: bucket, Key: doomed }))
    .then(() => undefined, s3Fault)
  t.equal(gone?.status, 404, 'the deleted object is gone')
  await s3.send(
    new PutObjectTaggingCommand({
      Bucket: bucket,
      Key: tagged,
      Tagging: { TagSet: [{ Key: 'state', Value: 'frozen' }] },
    }),
  )
  const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: tagged }))
  t.same(tags.TagSet, [{ Key: 'state', Value: 'frozen' }], 'the tag change is read back')
  await stillOpen('a delete and a tag change')

  // Past the bucket cache's second: the request looks the bucket up on every drive again.
  await new Promise((r) => setTimeout(r, 1100))
  await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: tagged }))
  await stillOpen('a request that looked the bucket up again')

  thaw()
  await gatewaySeesEveryDrive(c)
  const again = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: objects[2]!.key }))
  t.equal(
    sha256(await bodyBytes(again.Body)),
    sha256(objects[2]!.data),
    'reads go on once the node runs again',
  )
})

t.test('listings do not wait for a node that went silent', async (t) => {
  const { c, endpoint, s3 } = await clusterWithClient(t, FOUR_NODES_RS22)
  const bucket = uniqueBucket('frozen-list')
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  // More keys than one page of a drive's listing at MaxKeys 7 (a drive sends 9 per page).
  const keys = Array.from({ length: 20 }, (_, i) => `dir${i % 2}/key-${String(i).padStart(2, '0')}`)
  for (const [i, key] of keys.entries()) {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes(100, i + 1) }))
  }
  const key = 'multipart/object'
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
  await s3.send(
    new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: bytes(100) }),
  )
  await gatewaySeesEveryDrive(c)
  const victim = c.nodes[0]!.id
  const failedBefore = await failedCalls(endpoint, victim)
  freezeNode(t, c, victim)
  // A streamed PUT meanwhile: the frozen drive takes part of its shard and then nothing.
  const streamed = bytes(300_000, 99)
  const put = s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'streamed', Body: streamed }))

  const listed: string[] = []
  let token: string | undefined
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 7, ContinuationToken: token }),
    )
    listed.push(...(page.Contents ?? []).map((o) => o.Key!))
    token = page.NextContinuationToken
  } while (token)
  t.same(
    listed.filter((k) => k !== 'streamed'),
    [...keys].sort(),
    'ListObjectsV2 pages through every key',
  )
  const tree = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/' }))
  t.same(
    (tree.CommonPrefixes ?? []).map((p) => p.Prefix),
    ['dir0/', 'dir1/'],
    'and its common prefixes',
  )
  const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }))
  t.equal(
    versions.Versions?.filter((v) => v.Key !== 'streamed').length,
    keys.length,
    'ListObjectVersions lists every version',
  )
  const buckets = await s3.send(new ListBucketsCommand({}))
  t.ok(
    buckets.Buckets?.some((b) => b.Name === bucket),
    'ListBuckets lists the bucket',
  )
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
  t.same(
    uploads.Uploads?.map((u) => u.UploadId),
    [UploadId],
    'ListMultipartUploads lists the upload',
  )
  const parts = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId }))
  t.same(
    parts.Parts?.map((p) => p.PartNumber),
    [1],
    'ListParts finds the upload and lists its part',
  )
  const notEmpty = await s3
    .send(new DeleteBucketCommand({ Bucket: bucket }))
    .then(() => undefined, s3Fault)
  t.equal(notEmpty?.code, 'BucketNotEmpty', 'DeleteBucket of a non-empty bucket says so')
  // An upload's record and bucket writes settle at the write quorum.
  const second = await s3.send(
    new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'multipart/second' }),
  )
  t.ok(second.UploadId, 'CreateMultipartUpload answers')
  const other = uniqueBucket('frozen-new')
  await s3.send(new CreateBucketCommand({ Bucket: other }))
  await s3.send(
    new PutBucketTaggingCommand({
      Bucket: other,
      Tagging: { TagSet: [{ Key: 'made', Value: 'frozen' }] },
    }),
  )
  const bucketTags = await s3.send(new GetBucketTaggingCommand({ Bucket: other }))
  t.same(bucketTags.TagSet, [{ Key: 'made', Value: 'frozen' }], 'a new bucket and its tags')
  await put
  const back = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'streamed' }))
  t.equal(
    sha256(await bodyBytes(back.Body)),
    sha256(streamed),
    'a streamed PUT went on without the frozen drive',
  )
  t.equal(
    await failedCalls(endpoint, victim),
    failedBefore,
    'all answered while the calls to the silent node were still open',
  )
})
