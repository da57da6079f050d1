/**
 * The S3 wire protocol at its edges, against a real cluster: streamed uploads (aws-chunked
 * with a checksum trailer, as current SDKs send them), presigned URLs, raw signed requests
 * with malformed XML, truncated bodies on a raw socket, and the limits S3 sets.
 */
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { Readable } from 'node:stream'
import { Sha256 } from '@aws-crypto/sha256-js'
import {
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import t from 'tap'
import { FOUR_NODES_RS22, ROOT } from './harness/cluster.ts'
import { bodyBytes, bytes, clusterWithClient, s3Fault, sha256, uniqueBucket } from './harness/s3.ts'

const signer = new SignatureV4({
  service: 's3',
  region: 'us-east-1',
  credentials: { accessKeyId: ROOT.accessKeyId, secretAccessKey: ROOT.secretAccessKey },
  sha256: Sha256,
  uriEscapePath: false,
  applyChecksum: false,
})

/** Sends a request signed with the official signer (payload hash over the body). */
async function signedFetch(
  endpoint: string,
  req: {
    method: string
    path: string
    query?: Record<string, string>
    headers?: Record<string, string>
    body?: Buffer
  },
): Promise<{ status: number; text: string; headers: Headers }> {
  const url = new URL(endpoint)
  const body = req.body ?? Buffer.alloc(0)
  const h = new HttpRequest({
    method: req.method,
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path: req.path,
    query: req.query ?? {},
    headers: {
      host: url.host,
      'x-amz-content-sha256': sha256(body),
      'content-length': String(body.length),
      ...(req.headers ?? {}),
    },
    body,
  })
  const signed = await signer.sign(h)
  const qs = new URLSearchParams(req.query ?? {}).toString()
  const res = await fetch(`${endpoint}${req.path}${qs ? `?${qs}` : ''}`, {
    method: req.method,
    headers: signed.headers as Record<string, string>,
    ...(req.method === 'GET' || req.method === 'HEAD' ? {} : { body }),
  })
  return { status: res.status, text: await res.text(), headers: res.headers }
}

function xmlCode(text: string): string | undefined {
  return /<Code>([^<]+)<\/Code>/.exec(text)?.[1]
}

t.test('S3 protocol edges on a 4-node RS(2,2) cluster', async (t) => {
  const { c, endpoint, s3 } = await clusterWithClient(t, FOUR_NODES_RS22)
  const bucket = uniqueBucket('proto')
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))

  await t.test('streamed upload: aws-chunked with a CRC32 trailer', async (t) => {
    const data = bytes(700_000, 21)
    const pieces = [
      data.subarray(0, 100_000),
      data.subarray(100_000, 450_001),
      data.subarray(450_001),
    ]
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'streamed',
        Body: Readable.from(pieces),
        ContentLength: data.length,
      }),
    )
    t.ok(put.ChecksumCRC32, 'the CRC32 the SDK sent in its trailer is stored and echoed')
    const got = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'streamed', ChecksumMode: 'ENABLED' }),
    )
    t.equal(got.ChecksumCRC32, put.ChecksumCRC32, 'returned with x-amz-checksum-mode: ENABLED')
    t.notOk(got.ContentEncoding, 'aws-chunked is the upload framing, not stored with the object')
    t.equal(sha256(await bodyBytes(got.Body)), sha256(data))
    const gz = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'gz',
        Body: Readable.from([data]),
        ContentLength: data.length,
        ContentEncoding: 'gzip',
      }),
    )
    t.ok(gz.ETag)
    const gzHead = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'gz' }))
    t.equal(gzHead.ContentEncoding, 'gzip', 'a real content coding is kept')
    const sha = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'sha',
        Body: Readable.from([data]),
        ContentLength: data.length,
        ChecksumAlgorithm: 'SHA256',
      }),
    )
    t.ok(sha.ChecksumSHA256, 'SHA256 trailer')
    const crc64 = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'crc64',
        Body: data,
        ChecksumAlgorithm: 'CRC64NVME',
      }),
    )
    t.ok(crc64.ChecksumCRC64NVME, 'CRC64NVME')
    const crc32c = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'crc32c',
        Body: data,
        ChecksumAlgorithm: 'CRC32C',
      }),
    )
    t.ok(crc32c.ChecksumCRC32C, 'CRC32C')
  })

  await t.test('presigned URLs: GET and PUT, expiry', async (t) => {
    const data = bytes(10_000, 4)
    const putUrl = await getSignedUrl(
      s3,
      new PutObjectCommand({ Bucket: bucket, Key: 'presigned' }),
      { expiresIn: 60 },
    )
    const up = await fetch(putUrl, { method: 'PUT', body: data })
    t.equal(up.status, 200, 'presigned PUT')
    const getUrl = await getSignedUrl(
      s3,
      new GetObjectCommand({ Bucket: bucket, Key: 'presigned' }),
      { expiresIn: 60 },
    )
    const down = await fetch(getUrl)
    t.equal(down.status, 200)
    t.equal(sha256(Buffer.from(await down.arrayBuffer())), sha256(data), 'presigned GET')
    const expired = await getSignedUrl(
      s3,
      new GetObjectCommand({ Bucket: bucket, Key: 'presigned' }),
      {
        expiresIn: 1,
        signingDate: new Date(Date.now() - 10_000),
      },
    )
    const late = await fetch(expired)
    const text = await late.text()
    t.equal(late.status, 403)
    t.equal(xmlCode(text), 'AccessDenied')
    t.match(text, /Request has expired/)
    const tampered = await fetch(getUrl.replace('presigned', 'presigneX'))
    t.equal(tampered.status, 403)
    t.equal(xmlCode(await tampered.text()), 'SignatureDoesNotMatch')
  })

  await t.test('malformed XML and oversized bodies get AWS errors', async (t) => {
    const bad = await signedFetch(endpoint, {
      method: 'PUT',
      path: `/${bucket}`,
      query: { versioning: '' },
      body: Buffer.from('<VersioningConfiguration><Status>Enabled</Status'),
    })
    t.equal(bad.status, 400)
    t.equal(xmlCode(bad.text), 'MalformedXML')
    t.match(bad.text, /<RequestId>[0-9A-F]{16}<\/RequestId>/, 'error carries the request id')
    t.ok(bad.headers.get('x-amz-request-id'), 'x-amz-request-id header')
    t.ok(bad.headers.get('x-amz-id-2'), 'x-amz-id-2 header')
    const status = await signedFetch(endpoint, {
      method: 'PUT',
      path: `/${bucket}`,
      query: { versioning: '' },
      body: Buffer.from(
        '<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>',
      ),
    })
    t.equal(xmlCode(status.text), 'MalformedXML')
    const entity = await signedFetch(endpoint, {
      method: 'POST',
      path: `/${bucket}`,
      query: { delete: '' },
      headers: { 'content-md5': '' },
      body: Buffer.from(
        '<!DOCTYPE x [<!ENTITY a "b">]><Delete><Object><Key>&a;</Key></Object></Delete>',
      ),
    })
    t.equal(entity.status, 400, 'entity declarations refused')
    const shaMismatch = await signedFetch(endpoint, {
      method: 'PUT',
      path: `/${bucket}/sha-mismatch`,
      headers: { 'x-amz-content-sha256': sha256(Buffer.from('something else')) },
      body: Buffer.from('actual body'),
    })
    t.equal(shaMismatch.status, 400)
    t.equal(xmlCode(shaMismatch.text), 'XAmzContentSHA256Mismatch')
    const after = await s3
      .send(new HeadObjectCommand({ Bucket: bucket, Key: 'sha-mismatch' }))
      .catch(s3Fault)
    t.equal((after as { status?: number }).status, 404, 'nothing stored')
    // Bodies of 1 MiB and more have their hashes computed on the gateway's digest thread:
    // checked the same way.
    const bigBody = Buffer.alloc(1024 * 1024 + 300 * 1024, 7)
    const bigMismatch = await signedFetch(endpoint, {
      method: 'PUT',
      path: `/${bucket}/sha-mismatch-large`,
      headers: { 'x-amz-content-sha256': sha256(Buffer.alloc(1024 * 1024 + 300 * 1024, 8)) },
      body: bigBody,
    })
    t.equal(bigMismatch.status, 400)
    t.equal(
      xmlCode(bigMismatch.text),
      'XAmzContentSHA256Mismatch',
      'large body: signed hash checked',
    )
    const bigSigned = await signedFetch(endpoint, {
      method: 'PUT',
      path: `/${bucket}/sha-large`,
      headers: { 'x-amz-content-sha256': sha256(bigBody) },
      body: bigBody,
    })
    t.equal(bigSigned.status, 200, 'large body with its right signed hash is stored')
    t.equal(
      bigSigned.headers.get('etag'),
      `"${createHash('md5').update(bigBody).digest('hex')}"`,
      'and its ETag is its MD5',
    )
    const skewed = await fetch(`${endpoint}/${bucket}`, {
      headers: {
        'x-amz-date': '20200101T000000Z',
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        authorization: `AWS4-HMAC-SHA256 Credential=${ROOT.accessKeyId}/20200101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${'0'.repeat(64)}`,
      },
    })
    t.equal(skewed.status, 403)
    t.equal(xmlCode(await skewed.text()), 'RequestTimeTooSkewed')
    const anon = await fetch(`${endpoint}/${bucket}`)
    t.equal(anon.status, 403, 'anonymous requests are refused')
    t.equal(xmlCode(await anon.text()), 'AccessDenied')
  })

  await t.test('a truncated body stores nothing and the gateway keeps serving', async (t) => {
    const url = new URL(endpoint)
    const h = new HttpRequest({
      method: 'PUT',
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: `/${bucket}/truncated`,
      headers: {
        host: url.host,
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
        'content-length': '300000',
      },
    })
    const signed = await signer.sign(h)
    const head = [
      `PUT /${bucket}/truncated HTTP/1.1`,
      ...Object.entries(signed.headers).map(([k, v]) => `${k}: ${v}`),
      '',
      '',
    ].join('\r\n')
    await new Promise<void>((resolve) => {
      const sock = connect(Number(url.port), url.hostname, () => {
        sock.write(head)
        sock.write(bytes(150_000, 2))
        setTimeout(() => sock.destroy(), 200)
      })
      sock.on('close', () => resolve())
      sock.on('error', () => resolve())
    })
    await new Promise((r) => setTimeout(r, 300))
    const r = await s3
      .send(new HeadObjectCommand({ Bucket: bucket, Key: 'truncated' }))
      .catch(s3Fault)
    t.equal((r as { status?: number }).status, 404, 'no object from a cut-off upload')
    const ok = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'after', Body: 'fine' }))
    t.ok(ok.ETag, 'the gateway still serves')
  })

  await t.test('limits: key length, part numbers, metadata size, copy conditions', async (t) => {
    const longKey = await s3
      .send(new PutObjectCommand({ Bucket: bucket, Key: 'k'.repeat(1025), Body: 'x' }))
      .catch(s3Fault)
    t.match(longKey, { code: 'KeyTooLongError', status: 400 })
    const meta = await s3
      .send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: 'meta',
          Body: 'x',
          Metadata: { big: 'v'.repeat(2100) },
        }),
      )
      .catch(s3Fault)
    t.match(meta, { code: 'MetadataTooLarge', status: 400 })
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'parts' }))
    const p10000 = await s3.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: 'parts',
        UploadId: up.UploadId,
        PartNumber: 10000,
        Body: 'last',
      }),
    )
    t.ok(p10000.ETag, 'part 10000 accepted')
    const p10001 = await s3
      .send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: 'parts',
          UploadId: up.UploadId,
          PartNumber: 10001,
          Body: 'x',
        }),
      )
      .catch(s3Fault)
    t.match(p10001, { code: 'InvalidArgument', status: 400 })
    const src = bytes(200_000, 8)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy-src', Body: src }))
    const cp = await s3.send(
      new UploadPartCopyCommand({
        Bucket: bucket,
        Key: 'parts',
        UploadId: up.UploadId,
        PartNumber: 1,
        CopySource: `${bucket}/copy-src`,
        CopySourceRange: 'bytes=1000-1999',
      }),
    )
    t.ok(cp.CopyPartResult?.ETag, 'UploadPartCopy with a range')
    const cond = await s3
      .send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: 'copy-dst',
          CopySource: `${bucket}/copy-src`,
          CopySourceIfMatch: '"nope"',
        }),
      )
      .catch(s3Fault)
    t.match(cond, { code: 'PreconditionFailed', status: 412 })
  })

  await t.test('features Tessera does not offer are refused, never ignored', async (t) => {
    const put = (extra: Record<string, unknown>, Key = 'unoffered') =>
      s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'x', ...extra })).catch(s3Fault)
    t.match(await put({ ServerSideEncryption: 'AES256' }), {
      code: 'NotImplemented',
      status: 501,
      message: /x-amz-server-side-encryption/,
    })
    t.match(await put({ SSEKMSKeyId: 'key-1', ServerSideEncryption: 'aws:kms' }), {
      code: 'NotImplemented',
      status: 501,
    })
    t.match(await put({ StorageClass: 'GLACIER' }), {
      code: 'InvalidStorageClass',
      status: 400,
      message: /only STANDARD/,
    })
    t.match(await put({ ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: new Date() }), {
      code: 'InvalidRequest',
      status: 400,
      message: /Object Lock/,
    })
    await t.rejects(
      s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'unoffered' })),
      'nothing was stored',
    )
    const std = await put({ StorageClass: 'STANDARD' }, 'standard')
    t.notOk((std as { code?: string }).code, 'STANDARD is what we store')
    const copy = await s3
      .send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: 'copied',
          CopySource: `${bucket}/standard`,
          ServerSideEncryption: 'AES256',
        }),
      )
      .catch(s3Fault)
    t.match(copy, { code: 'NotImplemented', status: 501 }, 'a copy asking for SSE')
    const mpu = await s3
      .send(
        new CreateMultipartUploadCommand({
          Bucket: bucket,
          Key: 'mpu',
          StorageClass: 'STANDARD_IA',
        }),
      )
      .catch(s3Fault)
    t.match(mpu, { code: 'InvalidStorageClass', status: 400 }, 'an upload asking for STANDARD_IA')
  })

  await t.test('ListObjectVersions pages with key and version-id markers', async (t) => {
    const vb = uniqueBucket('pages')
    await s3.send(new CreateBucketCommand({ Bucket: vb }))
    await s3.send(
      new PutBucketVersioningCommand({
        Bucket: vb,
        VersioningConfiguration: { Status: 'Enabled' },
      }),
    )
    const ids: string[] = []
    for (const key of ['a', 'b']) {
      for (let i = 0; i < 4; i++) {
        const r = await s3.send(new PutObjectCommand({ Bucket: vb, Key: key, Body: `${key}${i}` }))
        ids.push(`${key}/${r.VersionId}`)
      }
    }
    const seen: string[] = []
    let keyMarker: string | undefined
    let versionIdMarker: string | undefined
    for (;;) {
      const r = await s3.send(
        new ListObjectVersionsCommand({
          Bucket: vb,
          MaxKeys: 3,
          KeyMarker: keyMarker,
          VersionIdMarker: versionIdMarker,
        }),
      )
      for (const v of r.Versions ?? []) seen.push(`${v.Key}/${v.VersionId}`)
      if (!r.IsTruncated) break
      keyMarker = r.NextKeyMarker
      versionIdMarker = r.NextVersionIdMarker
    }
    const expected = [...ids.slice(0, 4).reverse(), ...ids.slice(4).reverse()]
    t.same(seen, expected, 'every version once, newest first per key, across pages')
  })
})
