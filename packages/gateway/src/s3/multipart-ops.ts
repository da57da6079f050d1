/**
 * Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts,
 * ListMultipartUploads.
 */
import {
  type AclOwner,
  type BucketRecord,
  hlcMillis,
  type PartRecord,
  type UploadRecord,
} from '@tessera/protocol'
import type { Upload } from '../store/multipart.ts'
import { aclFromHeaders, bucketOwnerOf, objectAclForWrite, objectAclOf } from './acl.ts'
import {
  CHECKSUM_ALGORITHMS,
  type ChecksumAlgorithm,
  checksumHeader,
  compositeChecksum,
  createMd5,
  fullObjectChecksum,
  multipartEtag,
} from './checksums.ts'
import { callerOwner, openPayload, readSmallBody, type S3Context } from './context.ts'
import { S3Error } from './errors.ts'
import { metaFromHeaders, quoteEtag, refuseUnoffered } from './headers.ts'
import { checkKey, resolveCopySource, tagsFromHeader } from './object-ops.ts'
import {
  completeMultipartUploadXml,
  copyPartResultXml,
  initiateMultipartUploadXml,
  listMultipartUploadsXml,
  listPartsXml,
  parseCompleteMultipartUpload,
} from './xml.ts'

/** Parts of a multipart upload, at most, as in S3. */
export const MAX_PARTS = 10_000
/** Smallest part except the last, as in S3. */
export const MIN_PART_BYTES = 5 * 1024 * 1024

async function getUpload(ctx: S3Context, b: BucketRecord): Promise<Upload> {
  const uploadId = ctx.params.get('uploadId') ?? ''
  try {
    return await ctx.deps.multipart.get(b.name, ctx.key!, uploadId)
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'UPLOAD_NOT_FOUND' || code === 'INVALID_REQUEST')
      throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId })
    throw err
  }
}

function partNumberOf(ctx: S3Context): number {
  const v = ctx.params.get('partNumber') ?? ''
  const n = Number(v)
  if (!/^\d+$/.test(v) || n < 1 || n > MAX_PARTS) {
    throw new S3Error(
      'InvalidArgument',
      'Part number must be an integer between 1 and 10000, inclusive',
      {
        ArgumentName: 'partNumber',
        ArgumentValue: v,
      },
    )
  }
  return n
}

export async function createMultipartUpload(ctx: S3Context, b: BucketRecord): Promise<void> {
  const key = ctx.key!
  checkKey(key)
  const h = ctx.req.headers
  refuseUnoffered(h)
  const algHeader = h['x-amz-checksum-algorithm']
  let alg: ChecksumAlgorithm | undefined
  if (algHeader !== undefined) {
    alg = algHeader.toUpperCase() as ChecksumAlgorithm
    if (!(CHECKSUM_ALGORITHMS as readonly string[]).includes(alg))
      throw new S3Error(
        'InvalidRequest',
        'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]',
      )
  }
  const typeHeader = h['x-amz-checksum-type']?.toUpperCase()
  const checksumType =
    typeHeader === 'FULL_OBJECT' || typeHeader === 'COMPOSITE'
      ? typeHeader
      : alg === 'CRC64NVME'
        ? 'FULL_OBJECT'
        : alg
          ? 'COMPOSITE'
          : undefined
  if (checksumType === 'FULL_OBJECT' && (alg === 'SHA1' || alg === 'SHA256'))
    throw new S3Error(
      'InvalidRequest',
      `The FULL_OBJECT checksum type cannot be used with the ${alg.toLowerCase()} checksum algorithm.`,
    )
  const tags = tagsFromHeader(h['x-amz-tagging'])
  const writer = callerOwner(ctx)
  const access = objectAclForWrite(b, writer, aclFromHeaders(h, ctx.deps.access), ctx.deps.access)
  const up = await ctx.deps.multipart.create(b.name, key, {
    ...access,
    ...(writer.id !== bucketOwnerOf(b, ctx.deps.access).id ? { initiator: writer } : {}),
    ...(h['content-type'] ? { contentType: h['content-type'] } : {}),
    userMeta: metaFromHeaders(h),
    ...(tags ? { tags } : {}),
    ...(alg ? { checksumAlgorithm: alg } : {}),
    ...(checksumType ? { checksumType } : {}),
  })
  if (alg) ctx.res.header('x-amz-checksum-algorithm', alg)
  if (checksumType) ctx.res.header('x-amz-checksum-type', checksumType)
  ctx.res
    .header('Content-Type', 'application/xml')
    .end(initiateMultipartUploadXml({ bucket: b.name, key, uploadId: up.uploadId }))
}

export async function uploadPart(ctx: S3Context, b: BucketRecord): Promise<void> {
  const n = partNumberOf(ctx)
  const up = await getUpload(ctx, b)
  const payload = openPayload(ctx)
  const part = await ctx.deps.multipart.uploadPart(
    up,
    n,
    payload.size,
    payload.stream,
    () => {
      const d = payload.finish()
      const alg = up.record.checksumAlgorithm as ChecksumAlgorithm | undefined
      if (
        alg &&
        d.checksums[alg] === undefined &&
        ctx.req.headers['x-amz-sdk-checksum-algorithm'] === undefined &&
        !ctx.req.headers['x-amz-trailer']
      ) {
        // The upload asked for a checksum per part; a part without one is refused, as in S3.
        throw new S3Error(
          'InvalidRequest',
          `The upload was created using a ${alg.toLowerCase()} checksum. The part request must include a checksum of the same type.`,
        )
      }
      return { etag: d.md5, checksums: d.checksums as Record<string, string> }
    },
    ctx.req.signal,
  )
  ctx.res.header('ETag', quoteEtag(part.etag))
  for (const [alg, v] of Object.entries(part.checksums ?? {}))
    ctx.res.header(checksumHeader(alg as ChecksumAlgorithm), v)
  ctx.res.end()
}

export async function uploadPartCopy(ctx: S3Context, b: BucketRecord): Promise<void> {
  const n = partNumberOf(ctx)
  const up = await getUpload(ctx, b)
  const { r } = await resolveCopySource(ctx)
  const size = r.record.size
  let range = { start: 0, end: size }
  const rh = ctx.req.headers['x-amz-copy-source-range']
  if (rh !== undefined) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(rh.trim())
    if (m === null)
      throw new S3Error(
        'InvalidArgument',
        'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy',
        {
          ArgumentName: 'x-amz-copy-source-range',
          ArgumentValue: rh,
        },
      )
    const start = Number(m[1])
    const last = Number(m[2])
    if (last < start || last >= size)
      throw new S3Error('InvalidRange', undefined, { ActualObjectSize: String(size) })
    range = { start, end: last + 1 }
  }
  if (range.end - range.start > 5 * 1024 ** 3)
    throw new S3Error(
      'InvalidRequest',
      'The specified copy range is larger than the maximum allowable size for a copy part: 5368709120',
    )
  const md5 = createMd5()
  const body = (async function* (it: AsyncIterable<Uint8Array>) {
    for await (const c of it) {
      md5.update(c)
      yield c
    }
  })(ctx.deps.objects.read(r, range, { signal: ctx.req.signal }))
  const part = await ctx.deps.multipart.uploadPart(
    up,
    n,
    range.end - range.start,
    body,
    () => ({ etag: md5.digest().toString('hex') }),
    ctx.req.signal,
  )
  if (r.record.versionId !== 'null')
    ctx.res.header('x-amz-copy-source-version-id', r.record.versionId)
  ctx.res
    .header('Content-Type', 'application/xml')
    .end(copyPartResultXml({ etag: part.etag, lastModified: new Date(hlcMillis(part.modTime)) }))
}

function normEtag(e: string): string {
  return e.trim().replace(/^"|"$/g, '')
}

export async function completeMultipartUpload(ctx: S3Context, b: BucketRecord): Promise<void> {
  const uploadId = ctx.params.get('uploadId') ?? ''
  const found = await ctx.deps.multipart
    .lookup(b.name, ctx.key!, uploadId)
    .catch((err: { code?: string }) => {
      if (err.code === 'UPLOAD_NOT_FOUND' || err.code === 'INVALID_REQUEST')
        throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId })
      throw err
    })
  const body = await readSmallBody(ctx, 2 * 1024 * 1024)
  const req = parseCompleteMultipartUpload(body)
  if (req.parts.length > MAX_PARTS)
    throw new S3Error(
      'InvalidPart',
      'You have attempted to complete an upload with more than 10,000 parts.',
    )
  if ('completed' in found) {
    // A retry of a Complete that succeeded (its answer was lost): the same answer, as S3 gives,
    // when it names the same parts (their ETags make the object's); otherwise there is no such
    // upload any more.
    const c = found.completed
    if (multipartEtag(req.parts.map((p) => normEtag(p.etag))) !== c.etag)
      throw new S3Error('NoSuchUpload', undefined, { UploadId: uploadId })
    return answerCompleted(ctx, b, ctx.key!, c)
  }
  const up = found
  const { parts: stored } = await ctx.deps.multipart.listParts(up)
  const byNumber = new Map(stored.map((p) => [p.number, p]))
  const chosen: PartRecord[] = []
  let prev = 0
  for (const [i, want] of req.parts.entries()) {
    if (want.partNumber <= prev)
      throw new S3Error('InvalidPartOrder', undefined, { UploadId: up.record.uploadId })
    prev = want.partNumber
    const have = byNumber.get(want.partNumber)
    if (!have || have.etag !== normEtag(want.etag)) {
      throw new S3Error('InvalidPart', undefined, {
        UploadId: up.record.uploadId,
        PartNumber: String(want.partNumber),
        ETag: normEtag(want.etag),
      })
    }
    if (i < req.parts.length - 1 && have.size < MIN_PART_BYTES) {
      throw new S3Error('EntityTooSmall', undefined, {
        UploadId: up.record.uploadId,
        PartNumber: String(want.partNumber),
        ProposedSize: String(have.size),
        MinSizeAllowed: String(MIN_PART_BYTES),
      })
    }
    for (const [alg, v] of Object.entries(want.checksums ?? {})) {
      if (have.checksums?.[alg] !== undefined && have.checksums[alg] !== v)
        throw new S3Error(
          'InvalidPart',
          `The ${alg.toLowerCase()} checksum of part ${want.partNumber} does not match the one uploaded.`,
        )
    }
    chosen.push(have)
  }
  const etag = multipartEtag(chosen.map((p) => p.etag))
  const alg = up.record.checksumAlgorithm as ChecksumAlgorithm | undefined
  let checksums: Record<string, string> | undefined
  if (alg && chosen.every((p) => p.checksums?.[alg] !== undefined)) {
    const type = up.record.checksumType ?? 'COMPOSITE'
    const values = chosen.map((p) => p.checksums![alg]!)
    checksums = {
      [alg]:
        alg === 'CRC64NVME' || (type === 'FULL_OBJECT' && (alg === 'CRC32' || alg === 'CRC32C'))
          ? fullObjectChecksum(
              alg as 'CRC32' | 'CRC32C' | 'CRC64NVME',
              chosen.map((p, i) => ({ checksum: values[i]!, size: p.size })),
            )
          : compositeChecksum(alg as Exclude<ChecksumAlgorithm, 'CRC64NVME'>, values),
    }
  }
  const rec = await ctx.deps.multipart.complete(up, chosen, {
    etag,
    versioning: b.versioning,
    ...(checksums ? { checksums } : {}),
    ...(up.record.checksumType ? { checksumType: up.record.checksumType } : {}),
  })
  answerCompleted(ctx, b, rec.key, {
    versionId: rec.versionId,
    etag,
    ...(checksums ? { checksums } : {}),
  })
}

function answerCompleted(
  ctx: S3Context,
  b: BucketRecord,
  key: string,
  c: { versionId: string; etag: string; checksums?: Record<string, string> },
): void {
  if (b.versioning !== 'unversioned') ctx.res.header('x-amz-version-id', c.versionId)
  const host = ctx.req.headers.host ?? 'localhost'
  ctx.res.header('Content-Type', 'application/xml').end(
    completeMultipartUploadXml({
      location: `http://${host}/${b.name}/${encodeURIComponent(key)}`,
      bucket: b.name,
      key,
      etag: c.etag,
      ...(c.checksums ? { checksums: c.checksums } : {}),
    }),
  )
}

export async function abortMultipartUpload(ctx: S3Context, b: BucketRecord): Promise<void> {
  const up = await getUpload(ctx, b)
  await ctx.deps.multipart.abort(up)
  ctx.res.status(204).end()
}

export async function listParts(ctx: S3Context, b: BucketRecord): Promise<void> {
  const up = await getUpload(ctx, b)
  const p = ctx.params
  const marker = Number(p.get('part-number-marker') ?? '0')
  const max = Math.min(1000, Number(p.get('max-parts') ?? '1000'))
  if (!Number.isInteger(marker) || marker < 0)
    throw new S3Error('InvalidArgument', 'Part number marker must be a non-negative integer', {
      ArgumentName: 'part-number-marker',
    })
  if (!Number.isInteger(max) || max < 0)
    throw new S3Error('InvalidArgument', 'max-parts must be a non-negative integer', {
      ArgumentName: 'max-parts',
    })
  const { parts, isTruncated } = await ctx.deps.multipart.listParts(up, {
    ...(marker > 0 ? { partNumberMarker: marker } : {}),
    maxParts: max,
  })
  const { initiator, owner } = uploadOwners(ctx, b, up.record)
  ctx.res.header('Content-Type', 'application/xml').end(
    listPartsXml({
      bucket: b.name,
      key: up.record.key,
      uploadId: up.record.uploadId,
      partNumberMarker: marker,
      ...(isTruncated && parts.length > 0 ? { nextPartNumberMarker: parts.at(-1)!.number } : {}),
      maxParts: max,
      isTruncated,
      parts: parts.map((x) => ({
        partNumber: x.number,
        lastModified: new Date(hlcMillis(x.modTime)),
        etag: x.etag,
        size: x.size,
        ...(x.checksums ? { checksums: x.checksums } : {}),
      })),
      initiator,
      owner,
      ...(up.record.checksumAlgorithm
        ? { checksumAlgorithm: up.record.checksumAlgorithm as ChecksumAlgorithm }
        : {}),
      ...(up.record.checksumType ? { checksumType: up.record.checksumType } : {}),
    }),
  )
}

export async function listMultipartUploads(ctx: S3Context, b: BucketRecord): Promise<void> {
  const p = ctx.params
  const maxUploads = Math.min(1000, Number(p.get('max-uploads') ?? '1000'))
  const prefix = p.get('prefix') ?? ''
  const delimiter = p.get('delimiter') ?? ''
  const keyMarker = p.get('key-marker') ?? undefined
  const uploadIdMarker = p.get('upload-id-marker') ?? undefined
  const r = await ctx.deps.multipart.list({
    bucket: b.name,
    ...(prefix ? { prefix } : {}),
    ...(delimiter ? { delimiter } : {}),
    ...(keyMarker !== undefined ? { keyMarker } : {}),
    ...(uploadIdMarker !== undefined ? { uploadIdMarker } : {}),
    maxUploads,
  })
  const last = r.uploads.at(-1)
  ctx.res.header('Content-Type', 'application/xml').end(
    listMultipartUploadsXml({
      bucket: b.name,
      keyMarker: keyMarker ?? '',
      uploadIdMarker: uploadIdMarker ?? '',
      ...(r.isTruncated && last
        ? { nextKeyMarker: last.key, nextUploadIdMarker: last.uploadId }
        : {}),
      ...(prefix ? { prefix } : {}),
      ...(delimiter ? { delimiter } : {}),
      maxUploads,
      isTruncated: r.isTruncated,
      uploads: r.uploads.map((u) => ({
        key: u.key,
        uploadId: u.uploadId,
        ...uploadOwners(ctx, b, u),
        initiated: new Date(hlcMillis(u.initiated)),
      })),
      commonPrefixes: r.commonPrefixes,
    }),
  )
}

/** An upload's Initiator (who started it) and Owner (who will own the object). */
function uploadOwners(
  ctx: S3Context,
  b: BucketRecord,
  u: UploadRecord,
): { initiator: AclOwner; owner: AclOwner } {
  return {
    initiator: u.initiator ?? bucketOwnerOf(b, ctx.deps.access),
    owner: objectAclOf(b, u, ctx.deps.access).owner,
  }
}
