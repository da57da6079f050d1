/**
 * What every S3 operation handler receives: the request and response, the bucket and key the
 * request names, its decoded query, the caller, and the stores. Also the request body as S3
 * defines it (aws-chunked decoding, SHA-256, Content-MD5 and flexible checksums verified on
 * the way through).
 */
import { createHash } from 'node:crypto'
import type { DigestThread } from '@tessera/codec'
import type { AclOwner } from '@tessera/protocol'
import type { AccessControl, Authenticated, Principal, RequestFacts } from '../auth/access.ts'
import { AwsChunkedDecoder } from '../auth/aws-chunked.ts'
import type { Request, Response } from '../http/server.ts'
import type { Iam } from '../iam/iam.ts'
import type { BucketStore } from '../store/buckets.ts'
import type { MultipartStore } from '../store/multipart.ts'
import type { ObjectStore } from '../store/object-store.ts'
import { ANONYMOUS_CANONICAL_ID } from './acl.ts'
import { BodyDigests, type ChecksumAlgorithm, parseChecksumHeaders } from './checksums.ts'
import { S3Error } from './errors.ts'

export interface Logger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
}

export interface S3Deps {
  objects: ObjectStore
  buckets: BucketStore
  multipart: MultipartStore
  access: AccessControl
  /** Identity operations (audit log, policy limits) for the S3 calls that change access. */
  iam: Iam
  region: string
  log: Logger
  /**
   * The thread that computes the MD5 (and a signed payload's SHA-256) of large bodies; without
   * it they are computed on the event loop.
   */
  digests?: DigestThread
}

/** Bodies from this size up have their MD5 and SHA-256 computed on the digest thread. */
export const DIGEST_THREAD_MIN_BYTES = 1024 * 1024

export interface S3Context {
  req: Request
  res: Response
  requestId: string
  bucket?: string
  key?: string
  /** Decoded query parameters. */
  params: URLSearchParams
  who: Authenticated
  /** Request facts for policy conditions, for handlers that authorize more than the route. */
  facts: RequestFacts
  deps: S3Deps
}

/** The caller as S3 names it in ACLs and Owner elements: canonical id and display name. */
export function callerOwner(ctx: S3Context): AclOwner {
  const p = ownerOf(ctx)
  return { id: p.canonicalId, displayName: p.displayName }
}

/** The caller (the anonymous principal for unsigned requests), for ListBuckets' Owner. */
export function ownerOf(ctx: S3Context): Principal {
  const p = ctx.who.principal
  if (p) return p
  return {
    kind: 'user',
    accessKeyId: '',
    name: 'anonymous',
    userId: 'anonymous',
    arn: '',
    canonicalId: ANONYMOUS_CANONICAL_ID,
    displayName: 'anonymous',
    root: false,
  }
}

/** An S3 request body with its declared size and the digests to check once it is read. */
export interface Payload {
  size: number
  stream: AsyncIterable<Uint8Array>
  /** After the stream ended: checks every digest; the MD5 (hex) and checksums to store. */
  finish(): { md5: string; checksums: Partial<Record<ChecksumAlgorithm, string>> }
}

/** Largest object a single PUT may carry, as in S3. */
export const MAX_PUT_BYTES = 5 * 1024 ** 3

/** Opens the request body of a PUT or UploadPart as S3 defines it. */
export function openPayload(ctx: S3Context, maxBytes = MAX_PUT_BYTES): Payload {
  const h = ctx.req.headers
  const auth = ctx.who.auth
  const streaming = auth?.payload.startsWith('streaming') ?? false
  const lengthHeader = streaming ? h['x-amz-decoded-content-length'] : h['content-length']
  if (lengthHeader === undefined || lengthHeader === '') {
    throw new S3Error(
      'MissingContentLength',
      streaming
        ? 'You must provide the x-amz-decoded-content-length header with aws-chunked uploads.'
        : undefined,
    )
  }
  if (!/^\d+$/.test(lengthHeader)) {
    throw new S3Error('InvalidArgument', `invalid length ${lengthHeader}`, {
      ArgumentName: streaming ? 'x-amz-decoded-content-length' : 'Content-Length',
      ArgumentValue: lengthHeader,
    })
  }
  const size = Number(lengthHeader)
  if (size > maxBytes) {
    throw new S3Error('EntityTooLarge', undefined, {
      ProposedSize: String(size),
      MaxSizeAllowed: String(maxBytes),
    })
  }
  if (!streaming && size >= ctx.deps.objects.erasure.inlineBelow) {
    // Large bodies arrive in whole stripes that the encoder takes without copying.
    const layout = ctx.deps.objects.layout()
    ctx.req.body.stripes(layout.blockSize, layout.stripeBytes)
  }
  const expect = parseChecksumHeaders(h)
  // Large bodies: MD5 and SHA-256 on the digest thread, off the event loop (see digest-thread.ts).
  const signed = auth?.payloadSha256
  const thread =
    ctx.deps.digests !== undefined && size >= DIGEST_THREAD_MIN_BYTES
      ? ctx.deps.digests.session(signed !== undefined ? ['md5', 'sha256'] : ['md5'])
      : undefined
  const digests = new BodyDigests(expect, { md5: thread === undefined })
  let decoder: AwsChunkedDecoder | undefined
  let source: AsyncIterable<Uint8Array> = ctx.req.body
  if (streaming && auth) {
    const trailer = h['x-amz-trailer']
    decoder = new AwsChunkedDecoder({
      mode: auth.payload as 'streaming-signed',
      auth,
      decodedLength: size,
      ...(trailer ? { expectTrailers: trailer.split(',').map((s) => s.trim().toLowerCase()) } : {}),
    })
    source = decoder.decode(ctx.req.body)
  }
  const sha = signed !== undefined && thread === undefined ? createHash('sha256') : undefined
  let received = 0
  let threadDigests: Record<string, Buffer> | undefined
  async function* tap(): AsyncGenerator<Uint8Array> {
    try {
      for await (const c of source) {
        received += c.length
        if (received > size) {
          throw new S3Error('InvalidRequest', `the body is longer than the declared ${size} bytes`)
        }
        digests.update(c)
        sha?.update(c)
        // Waits only when the thread's ring is full: the body then goes at the thread's pace.
        const copied = thread?.update(c)
        if (copied !== undefined) await copied
        yield c
      }
      if (received < size) {
        throw new S3Error(
          'IncompleteBody',
          `You did not provide the number of bytes specified by the Content-Length HTTP header: got ${received} of ${size}.`,
        )
      }
      // Before the stream ends, so that finish() (called after it) stays synchronous.
      if (thread) threadDigests = await thread.digest()
    } finally {
      thread?.drop()
    }
  }
  return {
    size,
    stream: tap(),
    finish() {
      if (signed !== undefined) {
        const got = threadDigests?.sha256?.toString('hex') ?? sha?.digest('hex')
        if (got !== signed) {
          throw new S3Error('XAmzContentSHA256Mismatch', undefined, {
            ClientComputedContentSHA256: signed,
            S3ComputedContentSHA256: got ?? '',
          })
        }
      }
      const r = digests.finish(decoder?.trailers, threadDigests?.md5)
      return { md5: r.md5.toString('hex'), checksums: r.checksums }
    },
  }
}

/** Reads a small XML or form body whole (bounded), verifying Content-MD5 when sent. */
export async function readSmallBody(ctx: S3Context, max = 1024 * 1024): Promise<Buffer> {
  const auth = ctx.who.auth
  if (auth?.payload.startsWith('streaming')) {
    const p = openPayload(ctx, max)
    const parts: Uint8Array[] = []
    for await (const c of p.stream) parts.push(c)
    p.finish()
    return Buffer.concat(parts)
  }
  const body = await ctx.req.body.readAll(
    max,
    () => new S3Error('MalformedXML', `The request body is larger than ${max} bytes.`),
  )
  const md5 = ctx.req.headers['content-md5']
  if (md5 !== undefined) {
    const want = Buffer.from(md5, 'base64')
    if (want.length !== 16) throw new S3Error('InvalidDigest')
    if (!createHash('md5').update(body).digest().equals(want)) throw new S3Error('BadDigest')
  }
  if (auth?.payloadSha256 !== undefined) {
    const got = createHash('sha256').update(body).digest('hex')
    if (got !== auth.payloadSha256) {
      throw new S3Error('XAmzContentSHA256Mismatch', undefined, {
        ClientComputedContentSHA256: auth.payloadSha256,
        S3ComputedContentSHA256: got,
      })
    }
  }
  return body
}
