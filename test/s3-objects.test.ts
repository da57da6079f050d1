/**
 * The S3 API end to end: 4 real nodes (RS 2+2, one drive each) and 2 real gateways, driven by
 * @aws-sdk/client-s3 with its default checksums. Writes through one gateway are read through
 * the other; every object is checked by hash.
 */
import { createHash } from 'node:crypto'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import t from 'tap'
import { gatewaySeesEveryDrive, startCluster } from './harness/cluster.ts'
import { bodyBytes, bytes, md5hex, s3Client, s3Fault, sha256, uniqueBucket } from './harness/s3.ts'

const BLOCK = 64 * 1024
const INLINE = 4096

t.test('S3 on a 4-node RS(2,2) cluster with two gateways', async (t) => {
  const c = await startCluster(t, {
    nodes: 4,
    drivesPerNode: 1,
    k: 2,
    m: 2,
    blockSize: BLOCK,
    inlineBelow: INLINE,
    gateways: 2,
  })
  const a = s3Client(c.gateways[0]!.endpoint)
  const b = s3Client(c.gateways[1]!.endpoint)
  t.teardown(() => {
    a.destroy()
    b.destroy()
  })
  const bucket = uniqueBucket()
  await a.send(new CreateBucketCommand({ Bucket: bucket }))

  await t.test('buckets: create, head, list, location, errors', async (t) => {
    await b.send(new HeadBucketCommand({ Bucket: bucket }))
    const list = await b.send(new ListBucketsCommand({}))
    t.ok(
      list.Buckets?.some((x) => x.Name === bucket),
      'listed through the other gateway',
    )
    t.ok(list.Owner?.ID, 'owner id')
    const loc = await a.send(new GetBucketLocationCommand({ Bucket: bucket }))
    t.notOk(loc.LocationConstraint, 'us-east-1 is the empty constraint')
    const again = await a.send(new CreateBucketCommand({ Bucket: bucket })).catch(s3Fault)
    t.match(again, { code: 'BucketAlreadyOwnedByYou', status: 409 })
    const bad = await a.send(new CreateBucketCommand({ Bucket: 'Bad_Name' })).catch(s3Fault)
    t.match(bad, { code: 'InvalidBucketName', status: 400 })
    const missing = await a
      .send(new ListObjectsV2Command({ Bucket: 'no-such-bucket-x' }))
      .catch(s3Fault)
    t.match(missing, { code: 'NoSuchBucket', status: 404 })
    const wrongRegion = await a
      .send(
        new CreateBucketCommand({
          Bucket: uniqueBucket(),
          CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' },
        }),
      )
      .catch(s3Fault)
    t.match(wrongRegion, { code: 'IllegalLocationConstraintException', status: 400 })
  })

  // Every edge size, kept to be read again with m nodes down at the end.
  const sizes = [
    0,
    1,
    INLINE - 1,
    INLINE,
    INLINE + 1,
    BLOCK - 1,
    BLOCK,
    BLOCK + 1,
    3 * BLOCK + 7,
    100 * 1024 * 1024,
  ]
  const written = new Map<string, string>()
  await t.test('objects of every edge size round-trip by hash across gateways', async (t) => {
    for (const size of sizes) {
      const data = bytes(size, size)
      const key = `sizes/obj-${size}`
      const put = await a.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }))
      t.equal(put.ETag, `"${md5hex(data)}"`, `ETag of ${size} B is its MD5`)
      const got = await b.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      t.equal(sha256(await bodyBytes(got.Body)), sha256(data), `${size} B read back intact`)
      t.equal(got.ContentLength, size)
      written.set(key, sha256(data))
    }
  })

  await t.test('ranges, conditionals, metadata and HEAD', async (t) => {
    const data = bytes(200_000, 7)
    const key = 'dir/ranged ü+key'
    await a.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: data,
        ContentType: 'text/plain',
        CacheControl: 'max-age=60',
        Metadata: { colour: 'blue' },
      }),
    )
    const head = await b.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    t.equal(head.ContentLength, data.length)
    t.equal(head.ContentType, 'text/plain')
    t.equal(head.CacheControl, 'max-age=60')
    t.same(head.Metadata, { colour: 'blue' })
    for (const [range, lo, hi] of [
      ['bytes=0-0', 0, 1],
      ['bytes=65530-65545', 65530, 65546],
      ['bytes=199990-', 199990, 200000],
      ['bytes=-100', 199900, 200000],
      ['bytes=100-999999', 100, 200000],
    ] as const) {
      const r = await b.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range }))
      t.equal(r.ContentRange, `bytes ${lo}-${hi - 1}/200000`, range)
      t.equal(sha256(await bodyBytes(r.Body)), sha256(data.subarray(lo, hi)), `${range} bytes`)
    }
    const unsat = await b
      .send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=300000-' }))
      .catch(s3Fault)
    t.match(unsat, { code: 'InvalidRange', status: 416 })
    const etag = head.ETag!
    const nm = await b
      .send(new GetObjectCommand({ Bucket: bucket, Key: key, IfNoneMatch: etag }))
      .catch(s3Fault)
    t.equal((nm as { status?: number }).status, 304, 'If-None-Match with the current ETag: 304')
    const pf = await b
      .send(new GetObjectCommand({ Bucket: bucket, Key: key, IfMatch: '"nope"' }))
      .catch(s3Fault)
    t.match(pf, { code: 'PreconditionFailed', status: 412 })
    const ok = await b.send(
      new GetObjectCommand({
        Bucket: bucket,
        Key: key,
        IfMatch: etag,
        ResponseContentType: 'application/x-test',
      }),
    )
    t.equal(ok.ContentType, 'application/x-test', 'response-content-type override')
    await bodyBytes(ok.Body)
    const cond = await a
      .send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'x', IfNoneMatch: '*' }))
      .catch(s3Fault)
    t.match(
      cond,
      { code: 'PreconditionFailed', status: 412 },
      'conditional PUT refuses to overwrite',
    )
    const nokey = await b.send(new GetObjectCommand({ Bucket: bucket, Key: 'nope' })).catch(s3Fault)
    t.match(nokey, { code: 'NoSuchKey', status: 404 })
  })

  await t.test('listing V1, V2 and versions with prefixes, delimiters and pages', async (t) => {
    const lb = uniqueBucket('list')
    await a.send(new CreateBucketCommand({ Bucket: lb }))
    const keys: string[] = []
    for (let i = 0; i < 25; i++) keys.push(`p${i % 3}/k${String(i).padStart(2, '0')}`)
    keys.push('top-a', 'top-b', 'é-unicode', 'z/deep/x')
    await Promise.all(
      keys.map((k) => a.send(new PutObjectCommand({ Bucket: lb, Key: k, Body: k }))),
    )
    const sorted = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    const seen: string[] = []
    let token: string | undefined
    let pages = 0
    do {
      const r = await b.send(
        new ListObjectsV2Command({ Bucket: lb, MaxKeys: 7, ContinuationToken: token }),
      )
      for (const o of r.Contents ?? []) seen.push(o.Key!)
      token = r.NextContinuationToken
      pages++
      t.ok((r.KeyCount ?? 0) <= 7)
    } while (token)
    t.same(seen, sorted, 'V2 pages give every key once, in UTF-8 order')
    t.equal(pages, Math.ceil(sorted.length / 7))
    const d = await b.send(new ListObjectsV2Command({ Bucket: lb, Delimiter: '/' }))
    t.same(
      (d.CommonPrefixes ?? []).map((p) => p.Prefix),
      ['p0/', 'p1/', 'p2/', 'z/'],
    )
    t.same(
      (d.Contents ?? []).map((o) => o.Key),
      ['top-a', 'top-b', 'é-unicode'],
    )
    const p1 = await b.send(
      new ListObjectsV2Command({ Bucket: lb, Prefix: 'p1/', StartAfter: 'p1/k10' }),
    )
    t.same(
      (p1.Contents ?? []).map((o) => o.Key),
      sorted.filter((k) => k.startsWith('p1/') && k > 'p1/k10'),
    )
    // V1 with a delimiter pages by NextMarker, prefixes included.
    const v1: string[] = []
    let marker: string | undefined
    do {
      const r = await b.send(
        new ListObjectsCommand({ Bucket: lb, Delimiter: '/', MaxKeys: 2, Marker: marker }),
      )
      v1.push(
        ...(r.CommonPrefixes ?? []).map((p) => p.Prefix!),
        ...(r.Contents ?? []).map((o) => o.Key!),
      )
      marker = r.IsTruncated ? r.NextMarker : undefined
    } while (marker)
    t.same(v1.sort(), ['p0/', 'p1/', 'p2/', 'top-a', 'top-b', 'z/', 'é-unicode'].sort())
    const enc = await b.send(
      new ListObjectsV2Command({ Bucket: lb, Prefix: 'é', EncodingType: 'url' }),
    )
    t.same(
      (enc.Contents ?? []).map((o) => o.Key),
      ['%C3%A9-unicode'],
      'keys URL-encoded as AWS does',
    )
    t.equal(enc.Prefix, '%C3%A9', 'the prefix too')
  })

  await t.test('versioning: ids, delete markers, reads by version, suspended', async (t) => {
    const vb = uniqueBucket('ver')
    await a.send(new CreateBucketCommand({ Bucket: vb }))
    const before = await a.send(new GetBucketVersioningCommand({ Bucket: vb }))
    t.notOk(before.Status, 'never enabled: no status')
    await a.send(
      new PutBucketVersioningCommand({
        Bucket: vb,
        VersioningConfiguration: { Status: 'Enabled' },
      }),
    )
    const v1 = await a.send(new PutObjectCommand({ Bucket: vb, Key: 'k', Body: 'one' }))
    const v2 = await a.send(new PutObjectCommand({ Bucket: vb, Key: 'k', Body: 'two' }))
    t.ok(v1.VersionId && v2.VersionId && v1.VersionId !== v2.VersionId, 'distinct version ids')
    const old = await b.send(
      new GetObjectCommand({ Bucket: vb, Key: 'k', VersionId: v1.VersionId }),
    )
    t.equal((await bodyBytes(old.Body)).toString(), 'one')
    const del = await a.send(new DeleteObjectCommand({ Bucket: vb, Key: 'k' }))
    t.equal(del.DeleteMarker, true)
    const gone = await b.send(new GetObjectCommand({ Bucket: vb, Key: 'k' })).catch(s3Fault)
    t.match(gone, { code: 'NoSuchKey', status: 404 })
    const vers = await b.send(new ListObjectVersionsCommand({ Bucket: vb }))
    t.equal(vers.Versions?.length, 2)
    t.equal(vers.DeleteMarkers?.length, 1)
    t.equal(vers.DeleteMarkers?.[0]?.IsLatest, true)
    const byMarker = await b
      .send(new GetObjectCommand({ Bucket: vb, Key: 'k', VersionId: del.VersionId }))
      .catch(s3Fault)
    t.match(byMarker, { status: 405 }, 'GET of a delete marker by id: 405')
    await a.send(new DeleteObjectCommand({ Bucket: vb, Key: 'k', VersionId: del.VersionId }))
    const back = await b.send(new GetObjectCommand({ Bucket: vb, Key: 'k' }))
    t.equal(
      (await bodyBytes(back.Body)).toString(),
      'two',
      'removing the marker brings the object back',
    )
    await a.send(
      new PutBucketVersioningCommand({
        Bucket: vb,
        VersioningConfiguration: { Status: 'Suspended' },
      }),
    )
    const s = await a.send(new PutObjectCommand({ Bucket: vb, Key: 'k', Body: 'three' }))
    t.equal(s.VersionId, 'null', 'suspended: writes the null version')
    const list = await b.send(new ListObjectVersionsCommand({ Bucket: vb, Prefix: 'k' }))
    t.equal(list.Versions?.length, 3)
    const notEmpty = await a.send(new DeleteBucketCommand({ Bucket: vb })).catch(s3Fault)
    t.match(notEmpty, { code: 'BucketNotEmpty', status: 409 })
  })

  await t.test('multipart: lib-storage, parts, errors, md5-of-md5s ETag', async (t) => {
    const data = bytes(11 * 1024 * 1024 + 5, 99)
    const up = new Upload({
      client: a,
      params: { Bucket: bucket, Key: 'mp/big', Body: data },
      partSize: 5 * 1024 * 1024,
      queueSize: 2,
    })
    const done = await up.done()
    t.match(done.ETag, /-3"$/, 'ETag ends in -3')
    const got = await b.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/big' }))
    t.equal(sha256(await bodyBytes(got.Body)), sha256(data), 'multipart object intact')
    const part2 = await b.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'mp/big', PartNumber: 2 }),
    )
    t.equal(part2.PartsCount, 3)
    t.equal(
      sha256(await bodyBytes(part2.Body)),
      sha256(data.subarray(5 * 1024 * 1024, 10 * 1024 * 1024)),
    )
    const mid = await b.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'mp/big', Range: 'bytes=5242870-5242890' }),
    )
    t.equal(
      sha256(await bodyBytes(mid.Body)),
      sha256(data.subarray(5242870, 5242891)),
      'range across parts',
    )

    const created = await a.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp/manual' }),
    )
    const id = created.UploadId!
    const small = await a.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: 'mp/manual',
        UploadId: id,
        PartNumber: 1,
        Body: bytes(1000, 1),
      }),
    )
    const p2 = await a.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: 'mp/manual',
        UploadId: id,
        PartNumber: 2,
        Body: bytes(1000, 2),
      }),
    )
    const parts = await b.send(
      new ListPartsCommand({ Bucket: bucket, Key: 'mp/manual', UploadId: id }),
    )
    t.same(
      parts.Parts?.map((p) => p.PartNumber),
      [1, 2],
    )
    const tooSmall = await b
      .send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: 'mp/manual',
          UploadId: id,
          MultipartUpload: {
            Parts: [
              { PartNumber: 1, ETag: small.ETag },
              { PartNumber: 2, ETag: p2.ETag },
            ],
          },
        }),
      )
      .catch(s3Fault)
    t.match(tooSmall, { code: 'EntityTooSmall', status: 400 })
    const order = await b
      .send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: 'mp/manual',
          UploadId: id,
          MultipartUpload: {
            Parts: [
              { PartNumber: 2, ETag: p2.ETag },
              { PartNumber: 1, ETag: small.ETag },
            ],
          },
        }),
      )
      .catch(s3Fault)
    t.match(order, { code: 'InvalidPartOrder', status: 400 })
    const wrong = await b
      .send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: 'mp/manual',
          UploadId: id,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"0123"' }] },
        }),
      )
      .catch(s3Fault)
    t.match(wrong, { code: 'InvalidPart', status: 400 })
    const one = await b.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'mp/manual',
        UploadId: id,
        MultipartUpload: { Parts: [{ PartNumber: 2, ETag: p2.ETag }] },
      }),
    )
    const expect = md5hex(Buffer.from(md5hex(bytes(1000, 2)), 'hex'))
    t.equal(one.ETag, `"${expect}-1"`, 'md5 of the part md5s, -1')
    const only2 = await a.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/manual' }))
    t.equal(sha256(await bodyBytes(only2.Body)), sha256(bytes(1000, 2)), 'only the chosen part')
    const gone = await a
      .send(new ListPartsCommand({ Bucket: bucket, Key: 'mp/manual', UploadId: id }))
      .catch(s3Fault)
    t.match(gone, { code: 'NoSuchUpload', status: 404 })
    // The client retries the Complete (its answer was lost): the same answer, through either
    // gateway; with other parts, there is no such upload any more.
    const retried = await a.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'mp/manual',
        UploadId: id,
        MultipartUpload: { Parts: [{ PartNumber: 2, ETag: p2.ETag }] },
      }),
    )
    t.equal(retried.ETag, one.ETag, 'a retried Complete gets the same ETag')
    t.equal(retried.VersionId, one.VersionId, 'and version id')
    t.equal(retried.Key, 'mp/manual')
    const otherParts = await b
      .send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: 'mp/manual',
          UploadId: id,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: small.ETag }] },
        }),
      )
      .catch(s3Fault)
    t.match(otherParts, { code: 'NoSuchUpload', status: 404 }, 'other parts: NoSuchUpload')
    const abortDone = await a
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'mp/manual', UploadId: id }))
      .catch(s3Fault)
    t.match(
      abortDone,
      { code: 'NoSuchUpload', status: 404 },
      'a completed upload cannot be aborted',
    )
    const still = await a.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/manual' }))
    t.equal(sha256(await bodyBytes(still.Body)), sha256(bytes(1000, 2)), 'the object is intact')
    const ab = await a.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mp/aborted' }))
    await a.send(
      new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'mp/aborted', UploadId: ab.UploadId }),
    )
    const after = await a
      .send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: 'mp/aborted',
          UploadId: ab.UploadId,
          PartNumber: 1,
          Body: 'x',
        }),
      )
      .catch(s3Fault)
    t.match(after, { code: 'NoSuchUpload', status: 404 })
  })

  await t.test('copy, tagging and DeleteObjects', async (t) => {
    const other = uniqueBucket('copy')
    await a.send(new CreateBucketCommand({ Bucket: other }))
    const data = bytes(150_000, 3)
    await a.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'src',
        Body: data,
        Metadata: { a: '1' },
        Tagging: 't1=v1',
      }),
    )
    const cp = await b.send(
      new CopyObjectCommand({ Bucket: other, Key: 'dst', CopySource: `${bucket}/src` }),
    )
    t.equal(cp.CopyObjectResult?.ETag, `"${md5hex(data)}"`)
    const h = await a.send(new HeadObjectCommand({ Bucket: other, Key: 'dst' }))
    t.same(h.Metadata, { a: '1' }, 'COPY keeps metadata')
    const rep = await b.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: 'src',
        CopySource: `${bucket}/src`,
        MetadataDirective: 'REPLACE',
        Metadata: { b: '2' },
      }),
    )
    t.ok(rep.CopyObjectResult?.ETag)
    const h2 = await a.send(new HeadObjectCommand({ Bucket: bucket, Key: 'src' }))
    t.same(h2.Metadata, { b: '2' }, 'REPLACE replaces metadata')
    const self = await b
      .send(new CopyObjectCommand({ Bucket: bucket, Key: 'src', CopySource: `${bucket}/src` }))
      .catch(s3Fault)
    t.match(self, { code: 'InvalidRequest', status: 400 }, 'copy to itself without changes')
    const tags = await a.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'src' }))
    t.same(tags.TagSet, [{ Key: 't1', Value: 'v1' }])
    await a.send(
      new PutObjectTaggingCommand({
        Bucket: bucket,
        Key: 'src',
        Tagging: { TagSet: [{ Key: 'x', Value: 'y' }] },
      }),
    )
    const tags2 = await b.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'src' }))
    t.same(tags2.TagSet, [{ Key: 'x', Value: 'y' }])
    const again = await b.send(new GetObjectCommand({ Bucket: bucket, Key: 'src' }))
    t.equal(sha256(await bodyBytes(again.Body)), sha256(data), 'tagging keeps the data')
    // The x-amz-tagging header follows the Tagging document's rules.
    const emojiKey = '🔑'.repeat(128) // 128 characters, 256 UTF-16 code units
    await a.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'emoji-tag',
        Body: 'x',
        Tagging: `${encodeURIComponent(emojiKey)}=v`,
      }),
    )
    const emoji = await a.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'emoji-tag' }))
    t.same(emoji.TagSet, [{ Key: emojiKey, Value: 'v' }], 'a key of 128 characters is allowed')
    for (const [tagging, what] of [
      [`${encodeURIComponent('🔑'.repeat(129))}=v`, 'a key of 129 characters'],
      ['aws:owner=me', 'an aws: key'],
      ['a=1&a=2', 'a key twice'],
      [Array.from({ length: 11 }, (_, i) => `k${i}=v`).join('&'), '11 tags'],
    ]) {
      const bad = await a
        .send(new PutObjectCommand({ Bucket: bucket, Key: 'bad-tag', Body: 'x', Tagging: tagging }))
        .catch(s3Fault)
      t.match(bad, { code: 'InvalidTag', status: 400 }, `x-amz-tagging with ${what}`)
    }
    const none = await a
      .send(new HeadObjectCommand({ Bucket: bucket, Key: 'bad-tag' }))
      .catch(s3Fault)
    t.match(none, { status: 404 }, 'no object from the refused uploads')
    const dels = await a.send(
      new DeleteObjectsCommand({
        Bucket: other,
        Delete: { Objects: [{ Key: 'dst' }, { Key: 'never-was' }] },
      }),
    )
    t.same(dels.Deleted?.map((d) => d.Key).sort(), ['dst', 'never-was'])
    const quiet = await a.send(
      new DeleteObjectsCommand({ Bucket: other, Delete: { Quiet: true, Objects: [{ Key: 'x' }] } }),
    )
    t.notOk(quiet.Deleted?.length, 'quiet mode lists no successes')
    await a.send(new DeleteBucketCommand({ Bucket: other }))
    const gone = await a.send(new HeadBucketCommand({ Bucket: other })).catch(s3Fault)
    t.equal(
      (gone as { status?: number }).status,
      404,
      'gone at once on the gateway that deleted it',
    )
    // The other gateway trusts its bucket cache for at most a second.
    await new Promise((r) => setTimeout(r, 1100))
    const goneB = await b.send(new HeadBucketCommand({ Bucket: other })).catch(s3Fault)
    t.equal((goneB as { status?: number }).status, 404, 'and on the other within a second')
  })

  await t.test('bad credentials and bad bodies get AWS errors and store nothing', async (t) => {
    const wrongSecret = s3Client(c.gateways[0]!.endpoint, {
      credentials: {
        accessKeyId: 'TESSERAROOTTESTKEY01',
        secretAccessKey: 'wrong-secret-wrong-secret',
      },
    })
    const unknown = s3Client(c.gateways[0]!.endpoint, {
      credentials: { accessKeyId: 'AKIDUNKNOWN000000000', secretAccessKey: 'whatever-whatever' },
    })
    t.teardown(() => {
      wrongSecret.destroy()
      unknown.destroy()
    })
    const sig = await wrongSecret
      .send(new PutObjectCommand({ Bucket: bucket, Key: 'forged', Body: 'x' }))
      .catch(s3Fault)
    t.match(sig, { code: 'SignatureDoesNotMatch', status: 403 })
    const key = await unknown.send(new ListObjectsV2Command({ Bucket: bucket })).catch(s3Fault)
    t.match(key, { code: 'InvalidAccessKeyId', status: 403 })
    const md5 = await a
      .send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: 'bad-md5',
          Body: 'hello',
          ContentMD5: Buffer.alloc(16).toString('base64'),
        }),
      )
      .catch(s3Fault)
    t.match(md5, { code: 'BadDigest', status: 400 })
    const crc = await a
      .send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: 'bad-crc',
          Body: bytes(10_000),
          ChecksumCRC32: 'AAAAAA==',
        }),
      )
      .catch(s3Fault)
    t.match(crc, { code: 'BadDigest', status: 400 })
    // Bodies this large arrive as whole stripes (another path through the gateway than the
    // small ones above): the same answers.
    const large = bytes(1024 * 1024 + 5, 21)
    const wrong = (alg: string) => createHash(alg).update('not this').digest('base64')
    for (const [key, what, digest] of [
      ['bad-md5-large', 'Content-MD5', { ContentMD5: wrong('md5') }],
      ['bad-crc-large', 'SHA256 checksum', { ChecksumSHA256: wrong('sha256') }],
    ] as const) {
      const r = await a
        .send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: large, ...digest }))
        .catch(s3Fault)
      t.match(r, { code: 'BadDigest', status: 400 }, `large body, wrong ${what}`)
    }
    const good = await a.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'good-large',
        Body: large,
        ContentMD5: createHash('md5').update(large).digest('base64'),
        ChecksumSHA256: createHash('sha256').update(large).digest('base64'),
      }),
    )
    t.equal(
      good.ETag,
      `"${createHash('md5').update(large).digest('hex')}"`,
      'large body: ETag is its MD5',
    )
    t.equal(good.ChecksumSHA256, createHash('sha256').update(large).digest('base64'))
    for (const k of ['forged', 'bad-md5', 'bad-crc', 'bad-md5-large', 'bad-crc-large']) {
      const r = await b.send(new HeadObjectCommand({ Bucket: bucket, Key: k })).catch(s3Fault)
      t.equal((r as { status?: number }).status, 404, `${k} was not stored`)
    }
  })

  await t.test('reads survive m dead nodes; writes below quorum fail cleanly', async (t) => {
    const data = bytes(300_000, 11)
    await a.send(new PutObjectCommand({ Bucket: bucket, Key: 'durable', Body: data }))
    await a.send(new PutObjectCommand({ Bucket: bucket, Key: 'durable-small', Body: 'tiny' }))
    // An upload whose parts are all in, to be completed while the nodes are down.
    const late = 'mp/below-quorum'
    const lateParts = [bytes(5 * 1024 * 1024, 12), bytes(70_000, 13)]
    const { UploadId: lateId } = await a.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: late }),
    )
    const lateEtags: { PartNumber: number; ETag: string }[] = []
    for (const [i, body] of lateParts.entries()) {
      const r = await a.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: late,
          UploadId: lateId,
          PartNumber: i + 1,
          Body: body,
        }),
      )
      lateEtags.push({ PartNumber: i + 1, ETag: r.ETag! })
    }
    const completeLate = () =>
      b.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: late,
          UploadId: lateId,
          MultipartUpload: { Parts: lateEtags },
        }),
      )
    await c.stop('n1', 'SIGKILL')
    await c.stop('n2', 'SIGKILL')
    const got = await b.send(new GetObjectCommand({ Bucket: bucket, Key: 'durable' }))
    t.equal(sha256(await bodyBytes(got.Body)), sha256(data), 'read with 2 of 4 nodes down')
    const small = await b.send(new GetObjectCommand({ Bucket: bucket, Key: 'durable-small' }))
    t.equal((await bodyBytes(small.Body)).toString(), 'tiny')
    for (const [key, digest] of written) {
      const r = await b.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      t.equal(sha256(await bodyBytes(r.Body)), digest, `${key} intact with 2 of 4 nodes down`)
    }
    const mp = await b.send(new GetObjectCommand({ Bucket: bucket, Key: 'mp/big' }))
    t.equal((await bodyBytes(mp.Body)).length, 11 * 1024 * 1024 + 5, 'multipart object too')
    const listed = await b.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'sizes/' }))
    t.equal(listed.KeyCount, written.size, 'listing still complete with 2 of 4 nodes down')
    const head = await b.send(new HeadObjectCommand({ Bucket: bucket, Key: 'durable' }))
    t.equal(head.ContentLength, data.length, 'HEAD too')
    const w = await a
      .send(new PutObjectCommand({ Bucket: bucket, Key: 'no-quorum', Body: data }))
      .catch(s3Fault)
    t.match(w, { code: 'ServiceUnavailable', status: 503 }, 'a write below quorum is refused')
    // Two drives of four could complete the upload, and three must: refused before any drive
    // turns it into a version, so nothing is readable and the upload stays as it was.
    const refused = await completeLate().catch(s3Fault)
    t.match(refused, { code: 'ServiceUnavailable', status: 503 }, 'Complete below quorum: 503')
    const notYet = await a.send(new HeadObjectCommand({ Bucket: bucket, Key: late })).catch(s3Fault)
    t.equal((notYet as { status?: number }).status, 404, 'no object from the refused Complete')
    await c.start('n1')
    await c.start('n2')
    // Both gateways have their channels to the restarted nodes again (not a redial's back-off).
    await gatewaySeesEveryDrive(c, 0)
    await gatewaySeesEveryDrive(c, 1)
    const absent = await b
      .send(new HeadObjectCommand({ Bucket: bucket, Key: 'no-quorum' }))
      .catch(s3Fault)
    t.equal((absent as { status?: number }).status, 404, 'no half object after the failed write')
    const stillThere = await a.send(
      new ListPartsCommand({ Bucket: bucket, Key: late, UploadId: lateId }),
    )
    t.same(
      stillThere.Parts?.map((p) => p.PartNumber),
      [1, 2],
      'the upload and its parts survive the refused Complete',
    )
    const done = await completeLate()
    t.match(done.ETag, /-2"$/, 'with the nodes back, the same Complete succeeds')
    const whole = await a.send(new GetObjectCommand({ Bucket: bucket, Key: late }))
    t.equal(
      sha256(await bodyBytes(whole.Body)),
      sha256(Buffer.concat(lateParts)),
      'and the object is the parts, intact',
    )
  })
})
