/**
 * x-amz-source-expected-bucket-owner on CopyObject and UploadPartCopy against a real cluster,
 * through @aws-sdk/client-s3 and the aws CLI (`--expected-source-bucket-owner`): the source
 * bucket's account is checked as x-amz-expected-bucket-owner checks the destination's, with
 * S3's codes (400 InvalidBucketOwnerAWSAccountID, 403 AccessDenied), and nothing is written
 * when it is refused.
 */
import { join } from 'node:path'
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import t, { type Test } from 'tap'
import { adminCall } from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { ensureDebianPackages, sh } from './harness/debian.ts'
import { bodyBytes, s3Client, s3Fault, uniqueBucket } from './harness/s3.ts'

async function refused(
  t: Test,
  run: Promise<unknown>,
  code: string,
  status: number,
  what: string,
): Promise<string> {
  try {
    await run
    t.fail(`${what}: succeeded, expected ${code}`)
    return ''
  } catch (err) {
    const f = s3Fault(err)
    t.same([f.code, f.status], [code, status], `${what}: ${code} ${status}`)
    t.not(f.message, '', `${what}: a message`)
    return f.message
  }
}

t.test('x-amz-source-expected-bucket-owner on a 2-node cluster', async (t) => {
  const c = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = c.gateways[0]!.endpoint
  const s3 = s3Client(endpoint)
  t.teardown(() => s3.destroy())
  const account = await adminCall(endpoint, ROOT, 'GET', '/account')
  const owner = account.body.id as string
  t.match(owner, /^\d{12}$/, 'the account id has 12 digits')
  const other = owner === '111122223333' ? '111122223334' : '111122223333'
  const src = uniqueBucket('src')
  const dst = uniqueBucket('dst')
  await s3.send(new CreateBucketCommand({ Bucket: src }))
  await s3.send(new CreateBucketCommand({ Bucket: dst }))
  const data = Buffer.from('the source object')
  await s3.send(new PutObjectCommand({ Bucket: src, Key: 'a b', Body: data }))
  const source = `${src}/${encodeURIComponent('a b')}`
  const missing = async (t: Test, key: string) => {
    const f = await s3
      .send(new HeadObjectCommand({ Bucket: dst, Key: key }))
      .then(() => undefined, s3Fault)
    t.equal(f?.status, 404, `${key}: nothing written`)
  }

  await t.test('CopyObject', async (t) => {
    const ok = await s3.send(
      new CopyObjectCommand({
        Bucket: dst,
        Key: 'copy',
        CopySource: source,
        ExpectedSourceBucketOwner: owner,
        ExpectedBucketOwner: owner,
      }),
    )
    t.ok(ok.CopyObjectResult?.ETag, 'the right source owner copies')
    const back = await s3.send(new GetObjectCommand({ Bucket: dst, Key: 'copy' }))
    t.same(await bodyBytes(back.Body), data, 'the bytes were copied')
    await refused(
      t,
      s3.send(
        new CopyObjectCommand({
          Bucket: dst,
          Key: 'wrong',
          CopySource: source,
          ExpectedSourceBucketOwner: other,
        }),
      ),
      'AccessDenied',
      403,
      'another account owns the source',
    )
    // The destination's owner is right, the source's is not: the source check still refuses.
    await refused(
      t,
      s3.send(
        new CopyObjectCommand({
          Bucket: dst,
          Key: 'wrong',
          CopySource: source,
          ExpectedBucketOwner: owner,
          ExpectedSourceBucketOwner: other,
        }),
      ),
      'AccessDenied',
      403,
      'the right destination owner, the wrong source owner',
    )
    const message = await refused(
      t,
      s3.send(
        new CopyObjectCommand({
          Bucket: dst,
          Key: 'wrong',
          CopySource: source,
          ExpectedSourceBucketOwner: 'not-an-account',
        }),
      ),
      'InvalidBucketOwnerAWSAccountID',
      400,
      'a malformed source owner',
    )
    t.equal(
      message,
      'The value of the source expected bucket owner parameter must be an AWS Account ID... [not-an-account]',
    )
    await missing(t, 'wrong')
    await refused(
      t,
      s3.send(
        new CopyObjectCommand({
          Bucket: dst,
          Key: 'wrong',
          CopySource: `${uniqueBucket('none')}/x`,
          ExpectedSourceBucketOwner: owner,
        }),
      ),
      'NoSuchBucket',
      404,
      'a source bucket that does not exist',
    )
  })

  await t.test('UploadPartCopy', async (t) => {
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: dst, Key: 'mp' }))
    const uploadId = up.UploadId!
    t.teardown(() =>
      s3.send(new AbortMultipartUploadCommand({ Bucket: dst, Key: 'mp', UploadId: uploadId })),
    )
    const part = (n: number, expected: string) =>
      s3.send(
        new UploadPartCopyCommand({
          Bucket: dst,
          Key: 'mp',
          UploadId: uploadId,
          PartNumber: n,
          CopySource: source,
          ExpectedSourceBucketOwner: expected,
        }),
      )
    const ok = await part(1, owner)
    t.ok(ok.CopyPartResult?.ETag, 'the right source owner copies the part')
    await refused(t, part(2, other), 'AccessDenied', 403, 'another account owns the source')
    await refused(t, part(3, '1234'), 'InvalidBucketOwnerAWSAccountID', 400, 'a malformed owner')
    const parts = await s3.send(
      new ListPartsCommand({ Bucket: dst, Key: 'mp', UploadId: uploadId }),
    )
    t.same(
      (parts.Parts ?? []).map((p) => p.PartNumber),
      [1],
      'only the allowed part was written',
    )
  })

  await t.test('the aws CLI: --expected-source-bucket-owner', async (t) => {
    const bin = await ensureDebianPackages({ awscli: 'aws' })
    const dir = t.testdir()
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: dir,
      AWS_ACCESS_KEY_ID: ROOT.accessKeyId,
      AWS_SECRET_ACCESS_KEY: ROOT.secretAccessKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(dir, 'aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'aws-credentials'),
    }
    const copy = (key: string, expected: string) =>
      sh(
        bin.aws!,
        [
          '--endpoint-url',
          endpoint,
          's3api',
          'copy-object',
          '--bucket',
          dst,
          '--key',
          key,
          '--copy-source',
          // The CLI URL-encodes the copy source itself.
          `${src}/a b`,
          '--expected-source-bucket-owner',
          expected,
        ],
        env,
      )
    const out = JSON.parse(await copy('cli-copy', owner))
    t.ok(out.CopyObjectResult?.ETag, 'the right source owner copies')
    const back = await s3.send(new GetObjectCommand({ Bucket: dst, Key: 'cli-copy' }))
    t.same(await bodyBytes(back.Body), data, 'the bytes were copied')
    const wrong = await copy('cli-wrong', other).then(
      () => '',
      (err: Error) => err.message,
    )
    t.match(wrong, /AccessDenied/, 'another account: the CLI reports AccessDenied')
    const bad = await copy('cli-wrong', 'abc').then(
      () => '',
      (err: Error) => err.message,
    )
    t.match(bad, /InvalidBucketOwnerAWSAccountID/, 'a malformed owner is reported')
    await missing(t, 'cli-wrong')
  })
})
