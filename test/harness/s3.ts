/**
 * S3 clients for end-to-end tests: the official AWS SDK v3 client pointed at a test gateway,
 * with its default checksum behaviour (CRC32 on uploads, aws-chunked trailers for streams).
 */
import { createHash, randomBytes } from 'node:crypto'
import {
  CreateBucketCommand,
  PutBucketVersioningCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3'
import {
  type ClusterOptions,
  ROOT,
  startCluster,
  type TestCluster,
  type TestLike,
} from './cluster.ts'

/**
 * Starts a cluster with `opts` and an S3 client of its first gateway (destroyed when the test
 * ends): what most end-to-end tests begin with.
 */
export async function clusterWithClient(
  t: TestLike,
  opts: ClusterOptions,
  over: Partial<S3ClientConfig> = {},
): Promise<{ c: TestCluster; endpoint: string; s3: S3Client }> {
  const c = await startCluster(t, opts)
  const endpoint = c.gateways[0]!.endpoint
  const s3 = s3Client(endpoint, over)
  t.teardown(() => s3.destroy())
  return { c, endpoint, s3 }
}

export function s3Client(endpoint: string, over: Partial<S3ClientConfig> = {}): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: ROOT.accessKeyId, secretAccessKey: ROOT.secretAccessKey },
    maxAttempts: 1,
    ...over,
  })
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

export function md5hex(b: Uint8Array): string {
  return createHash('md5').update(b).digest('hex')
}

/** Deterministic pseudo-random bytes (fast; randomBytes for the seed only). */
export function bytes(n: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(n)
  const block = createHash('sha512').update(String(seed)).digest()
  let x = block.readUInt32LE(0) | 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

export async function bodyBytes(body: unknown): Promise<Buffer> {
  const b = body as { transformToByteArray(): Promise<Uint8Array> }
  return Buffer.from(await b.transformToByteArray())
}

/** An error's S3 code and HTTP status, from an SDK exception. */
export function s3Fault(err: unknown): { code: string; status: number; message: string } {
  const e = err as {
    name?: string
    Code?: string
    message?: string
    $metadata?: { httpStatusCode?: number }
  }
  return {
    code: e.Code ?? e.name ?? '',
    status: e.$metadata?.httpStatusCode ?? 0,
    message: e.message ?? '',
  }
}

export function uniqueBucket(prefix = 'b'): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`
}

/** Creates a new bucket (named by uniqueBucket) with versioning enabled; its name. */
export async function versionedBucket(s3: S3Client, prefix = 'b'): Promise<string> {
  const bucket = uniqueBucket(prefix)
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  await s3.send(
    new PutBucketVersioningCommand({
      Bucket: bucket,
      VersioningConfiguration: { Status: 'Enabled' },
    }),
  )
  return bucket
}
