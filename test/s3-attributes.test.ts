/**
 * GetObjectAttributes and x-amz-expected-bucket-owner against a real cluster, through
 * @aws-sdk/client-s3 and awscli: every attribute, part paging of a multipart object, versions
 * and delete markers, and the refusals with S3's exact codes.
 */
import { join } from 'node:path'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type ObjectAttributes,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import t, { type Test } from 'tap'
import { adminCall } from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { ensureDebianPackages, sh } from './harness/debian.ts'
import { bytes, md5hex, s3Client, s3Fault, uniqueBucket } from './harness/s3.ts'

async function refused(
  t: Test,
  run: Promise<unknown>,
  code: string,
  status: number,
  what: string,
): Promise<{ code: string; message: string }> {
  try {
    await run
    t.fail(`${what}: succeeded, expected ${code}`)
    return { code: '', message: '' }
  } catch (err) {
    const f = s3Fault(err)
    t.same([f.code, f.status], [code, status], `${what}: ${code} ${status}`)
    t.not(f.message, '', `${what}: a message`)
    return f
  }
}

t.test('GetObjectAttributes and expected bucket owner', async (t) => {
  const c = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = c.gateways[0]!.endpoint
  const s3 = s3Client(endpoint)
  t.teardown(() => s3.destroy())
  const bucket = uniqueBucket('attrs')
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  const all: ObjectAttributes[] = ['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize']

  await t.test('a simple object', async (t) => {
    const data = Buffer.from('attributes!')
    const put = await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'a b', Body: data, ChecksumAlgorithm: 'SHA256' }),
    )
    const r = await s3.send(
      new GetObjectAttributesCommand({ Bucket: bucket, Key: 'a b', ObjectAttributes: all }),
    )
    t.equal(r.ETag, md5hex(data), 'ETag without quotes')
    t.equal(r.ObjectSize, data.length)
    t.equal(r.StorageClass, 'STANDARD')
    t.equal(r.Checksum?.ChecksumSHA256, put.ChecksumSHA256)
    t.equal(r.Checksum?.ChecksumType, 'FULL_OBJECT')
    t.equal(r.ObjectParts, undefined, 'no parts for a single PUT')
    t.ok(r.LastModified instanceof Date, 'Last-Modified header')
    t.equal(r.VersionId, undefined, 'no version id on an unversioned bucket')
    const only = await s3.send(
      new GetObjectAttributesCommand({
        Bucket: bucket,
        Key: 'a b',
        ObjectAttributes: ['ObjectSize'],
      }),
    )
    t.equal(only.ObjectSize, data.length)
    t.equal(only.ETag, undefined, 'only what was asked')
  })

  await t.test('a multipart object pages its parts', async (t) => {
    const key = 'mp'
    const up = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: 'CRC32' }),
    )
    const part = 5 * 1024 * 1024
    const parts = []
    for (const n of [1, 2]) {
      const body = bytes(n === 1 ? part : 1000, n)
      const p = await s3.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: up.UploadId,
          PartNumber: n,
          Body: body,
          ChecksumAlgorithm: 'CRC32',
        }),
      )
      parts.push({ PartNumber: n, ETag: p.ETag, ChecksumCRC32: p.ChecksumCRC32 })
    }
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: up.UploadId,
        MultipartUpload: { Parts: parts },
      }),
    )
    const first = await s3.send(
      new GetObjectAttributesCommand({
        Bucket: bucket,
        Key: key,
        ObjectAttributes: all,
        MaxParts: 1,
      }),
    )
    t.match(first.ETag, /-2$/)
    t.equal(first.ObjectSize, part + 1000)
    t.equal(first.ObjectParts?.TotalPartsCount, 2)
    if (first.Checksum?.ChecksumType === 'COMPOSITE') {
      t.equal(first.ObjectParts?.IsTruncated, true)
      t.equal(first.ObjectParts?.MaxParts, 1)
      t.equal(first.ObjectParts?.NextPartNumberMarker, '1')
      t.same(
        first.ObjectParts?.Parts?.map((p) => [p.PartNumber, p.Size, p.ChecksumCRC32]),
        [[1, part, parts[0]!.ChecksumCRC32]],
      )
      const next = await s3.send(
        new GetObjectAttributesCommand({
          Bucket: bucket,
          Key: key,
          ObjectAttributes: ['ObjectParts'],
          PartNumberMarker: '1',
        }),
      )
      t.equal(next.ObjectParts?.IsTruncated, false)
      t.same(
        next.ObjectParts?.Parts?.map((p) => p.PartNumber),
        [2],
      )
    } else {
      t.equal(first.Checksum?.ChecksumType, 'FULL_OBJECT', 'a full-object checksum')
    }
  })

  await t.test('versions and delete markers', async (t) => {
    const vb = uniqueBucket('attrsv')
    await s3.send(new CreateBucketCommand({ Bucket: vb }))
    await s3.send(
      new PutBucketVersioningCommand({
        Bucket: vb,
        VersioningConfiguration: { Status: 'Enabled' },
      }),
    )
    const v1 = await s3.send(new PutObjectCommand({ Bucket: vb, Key: 'k', Body: 'one' }))
    const v2 = await s3.send(new PutObjectCommand({ Bucket: vb, Key: 'k', Body: 'second' }))
    const cur = await s3.send(
      new GetObjectAttributesCommand({ Bucket: vb, Key: 'k', ObjectAttributes: ['ObjectSize'] }),
    )
    t.equal(cur.VersionId, v2.VersionId, 'x-amz-version-id of the current version')
    t.equal(cur.ObjectSize, 6)
    const old = await s3.send(
      new GetObjectAttributesCommand({
        Bucket: vb,
        Key: 'k',
        VersionId: v1.VersionId,
        ObjectAttributes: ['ObjectSize', 'ETag'],
      }),
    )
    t.equal(old.VersionId, v1.VersionId)
    t.equal(old.ObjectSize, 3)
    const del = await s3.send(new DeleteObjectCommand({ Bucket: vb, Key: 'k' }))
    await refused(
      t,
      s3.send(new GetObjectAttributesCommand({ Bucket: vb, Key: 'k', ObjectAttributes: ['ETag'] })),
      'NoSuchKey',
      404,
      'behind a delete marker',
    )
    await refused(
      t,
      s3.send(
        new GetObjectAttributesCommand({
          Bucket: vb,
          Key: 'k',
          VersionId: del.VersionId,
          ObjectAttributes: ['ETag'],
        }),
      ),
      'MethodNotAllowed',
      405,
      'the delete marker itself',
    )
  })

  await t.test('refusals', async (t) => {
    await refused(
      t,
      s3.send(new GetObjectAttributesCommand({ Bucket: bucket, Key: 'a b', ObjectAttributes: [] })),
      'InvalidRequest',
      400,
      'no attributes named',
    )
    await refused(
      t,
      s3.send(
        new GetObjectAttributesCommand({
          Bucket: bucket,
          Key: 'a b',
          ObjectAttributes: ['Bogus' as ObjectAttributes],
        }),
      ),
      'InvalidArgument',
      400,
      'an unknown attribute',
    )
    await refused(
      t,
      s3.send(
        new GetObjectAttributesCommand({ Bucket: bucket, Key: 'nope', ObjectAttributes: ['ETag'] }),
      ),
      'NoSuchKey',
      404,
      'a missing key',
    )
    const anon = await fetch(`${endpoint}/${bucket}/a%20b?attributes`, {
      headers: { 'x-amz-object-attributes': 'ETag' },
    })
    t.equal(anon.status, 403, 'anonymous: 403')
    t.match(await anon.text(), /<Code>AccessDenied<\/Code>/)
  })

  await t.test('awscli get-object-attributes', async (t) => {
    const bin = await ensureDebianPackages({ awscli: 'aws' })
    const dir = t.testdir()
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWS_ACCESS_KEY_ID: ROOT.accessKeyId,
      AWS_SECRET_ACCESS_KEY: ROOT.secretAccessKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(dir, 'aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'aws-credentials'),
    }
    delete env.AWS_CA_BUNDLE
    const out = JSON.parse(
      await sh(
        bin.aws!,
        [
          '--endpoint-url',
          endpoint,
          's3api',
          'get-object-attributes',
          '--bucket',
          bucket,
          '--key',
          'a b',
          '--object-attributes',
          'ETag',
          'ObjectSize',
          '--expected-bucket-owner',
          await accountId(endpoint),
        ],
        env,
      ),
    )
    t.equal(out.ETag, md5hex(Buffer.from('attributes!')))
    t.equal(out.ObjectSize, 11)
  })

  await t.test('x-amz-expected-bucket-owner', async (t) => {
    const owner = await accountId(endpoint)
    t.match(owner, /^\d{12}$/, 'the account id has 12 digits')
    const got = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'a b', ExpectedBucketOwner: owner }),
    )
    t.equal(got.$metadata.httpStatusCode, 200, 'the right owner is served')
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'o', Body: 'x', ExpectedBucketOwner: owner }),
    )
    const other = owner === '111122223333' ? '111122223334' : '111122223333'
    await refused(
      t,
      s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a b', ExpectedBucketOwner: other })),
      'AccessDenied',
      403,
      'GetObject for another owner',
    )
    await refused(
      t,
      s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: 'o2', Body: 'x', ExpectedBucketOwner: other }),
      ),
      'AccessDenied',
      403,
      'PutObject for another owner',
    )
    await refused(
      t,
      s3.send(new ListObjectsV2Command({ Bucket: bucket, ExpectedBucketOwner: other })),
      'AccessDenied',
      403,
      'ListObjectsV2 for another owner',
    )
    const bad = await refused(
      t,
      s3.send(new ListObjectsV2Command({ Bucket: bucket, ExpectedBucketOwner: 'abcd' })),
      'InvalidBucketOwnerAWSAccountID',
      400,
      'a malformed owner',
    )
    t.equal(
      bad.message,
      'The value of the expected bucket owner parameter must be an AWS Account ID... [abcd]',
    )
  })
})

async function accountId(endpoint: string): Promise<string> {
  const res = await adminCall(endpoint, ROOT, 'GET', '/account')
  if (res.status !== 200) throw new Error(`GET /account: ${res.status}`)
  return res.body.id as string
}
