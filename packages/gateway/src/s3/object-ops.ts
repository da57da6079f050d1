/**
 * Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects,
 * CopyObject and object tagging.
 */
import { type BucketRecord, hlcMillis, type VersionRecord } from '@tessera/protocol'
import { type Resolved, storedInline, type Versioning } from '../store/object-store.ts'
import {
  aclFromHeaders,
  aclFromRequest,
  aclsEnabled,
  aclWithoutEffect,
  bucketOwnerOf,
  grantsOf,
  isPublicAcl,
  objectAclForWrite,
  objectAclLoader,
  objectAclOf,
  publicAccessBlockOf,
  xmlGrantsOf,
} from './acl.ts'
import { CHECKSUM_ALGORITHMS, checksumHeader, createMd5 } from './checksums.ts'
import { callerOwner, openPayload, ownerOf, readSmallBody, type S3Context } from './context.ts'
import { S3Error, toS3Error } from './errors.ts'
import {
  checkConditions,
  httpDate,
  metaFromHeaders,
  parseRange,
  quoteEtag,
  refuseUnoffered,
} from './headers.ts'
import {
  accessControlPolicyXml,
  type Checksums,
  checkTags,
  copyObjectResultXml,
  deleteResultXml,
  MAX_OBJECT_TAGS,
  parseDelete,
  parseTagging,
  taggingXml,
} from './xml.ts'

/** Largest key S3 accepts, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024

export function checkKey(key: string): void {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new S3Error('KeyTooLongError', undefined, {
      Size: String(Buffer.byteLength(key)),
      MaxSizeAllowed: String(MAX_KEY_BYTES),
    })
  }
  if (key === '') throw new S3Error('InvalidArgument', 'An object key must not be empty.')
}

export function versioningOf(b: BucketRecord): Versioning {
  return b.versioning
}

/** The x-amz-tagging header (URL query form) as a tag map. */
export function tagsFromHeader(v: string | undefined): Record<string, string> | undefined {
  if (v === undefined || v === '') return undefined
  const list = [...new URLSearchParams(v)].map(([key, value]) => ({ key, value }))
  // The same rules as a Tagging document (characters counted as AWS does, no aws: prefix).
  checkTags(list, { maxTags: MAX_OBJECT_TAGS, resource: 'object' })
  return Object.fromEntries(list.map((t) => [t.key, t.value]))
}

function versionHeader(ctx: S3Context, b: BucketRecord, rec: VersionRecord): void {
  if (b.versioning !== 'unversioned') ctx.res.header('x-amz-version-id', rec.versionId)
}

export async function putObject(ctx: S3Context, b: BucketRecord): Promise<void> {
  const { objects } = ctx.deps
  const key = ctx.key!
  checkKey(key)
  const h = ctx.req.headers
  refuseUnoffered(h)
  const userMeta = metaFromHeaders(h)
  const tags = tagsFromHeader(h['x-amz-tagging'])
  const access = objectAclForWrite(
    b,
    callerOwner(ctx),
    aclFromHeaders(h, ctx.deps.access),
    ctx.deps.access,
  )
  if (h['if-none-match'] !== undefined && h['if-none-match'].trim() === '*') {
    const existing = await objects.resolve(b.name, key).catch(() => undefined)
    if (existing && !existing.record.deleteMarker) {
      throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-None-Match' })
    }
  } else if (h['if-match'] !== undefined) {
    const existing = await objects.resolve(b.name, key).catch(() => undefined)
    if (!existing || existing.record.deleteMarker)
      throw new S3Error('NoSuchKey', undefined, { Key: key })
    checkConditions({ 'if-match': h['if-match'] }, existing.record)
  }
  const payload = openPayload(ctx)
  const rec = await objects.put({
    bucket: b.name,
    key,
    size: payload.size,
    body: payload.stream,
    versioning: b.versioning,
    ...(h['content-type'] ? { contentType: h['content-type'] } : {}),
    userMeta,
    ...(tags ? { tags } : {}),
    ...access,
    finish: () => {
      const d = payload.finish()
      return { etag: d.md5, checksums: d.checksums as Record<string, string> }
    },
    // Read by streamed writes only: an inline PUT never makes the request's signal.
    get signal() {
      return ctx.req.signal
    },
  })
  ctx.res.header('ETag', quoteEtag(rec.etag))
  for (const [alg, v] of Object.entries(rec.checksums ?? {}))
    ctx.res.header(checksumHeader(alg as never), v)
  versionHeader(ctx, b, rec)
  ctx.res.end()
}

/** Resolves the version a GET/HEAD/tagging request names, with S3's delete-marker answers. */
export async function resolveForRead(
  ctx: S3Context,
  b: BucketRecord,
  versionId: string | undefined,
): Promise<Resolved> {
  const key = ctx.key!
  let r: Resolved
  try {
    r = await ctx.deps.objects.resolve(b.name, key, versionId)
  } catch (err) {
    const e = err as { code?: string }
    if (e.code === 'VERSION_NOT_FOUND') {
      if (versionId !== undefined) {
        if (!isValidVersionId(versionId))
          throw new S3Error('InvalidArgument', 'Invalid version id specified', {
            ArgumentName: 'versionId',
            ArgumentValue: versionId,
          })
        throw new S3Error('NoSuchVersion', undefined, { Key: key, VersionId: versionId })
      }
      throw new S3Error('NoSuchKey', undefined, { Key: key })
    }
    throw err
  }
  if (r.record.deleteMarker) {
    const headers = { 'x-amz-delete-marker': 'true', 'x-amz-version-id': r.record.versionId }
    if (versionId !== undefined) {
      throw new S3Error(
        'MethodNotAllowed',
        'The specified method is not allowed against this resource.',
        { Method: ctx.req.method, ResourceType: 'DeleteMarker' },
        { headers: { ...headers, 'Last-Modified': httpDate(r.record.modTime), Allow: 'DELETE' } },
      )
    }
    throw new S3Error('NoSuchKey', undefined, { Key: key }, { headers })
  }
  return r
}

export function isValidVersionId(v: string): boolean {
  return v === 'null' || /^[A-Za-z0-9_-]{32}$/.test(v)
}

const RESPONSE_OVERRIDES: [string, string][] = [
  ['response-content-type', 'Content-Type'],
  ['response-content-language', 'Content-Language'],
  ['response-expires', 'Expires'],
  ['response-cache-control', 'Cache-Control'],
  ['response-content-disposition', 'Content-Disposition'],
  ['response-content-encoding', 'Content-Encoding'],
]

/** GetObject and HeadObject. */
export async function getObject(ctx: S3Context, b: BucketRecord, head: boolean): Promise<void> {
  const p = ctx.params
  const versionId = p.get('versionId') ?? undefined
  const r = await resolveForRead(ctx, b, versionId)
  const rec = r.record
  checkConditions(ctx.req.headers, rec)
  const res = ctx.res
  let range: { start: number; end: number } | undefined
  let partCount: number | undefined
  const partParam = p.get('partNumber')
  if (partParam !== null) {
    const n = Number(partParam)
    if (!Number.isInteger(n) || n < 1 || n > 10_000)
      throw new S3Error(
        'InvalidArgument',
        'Part number must be an integer between 1 and 10000, inclusive',
        {
          ArgumentName: 'partNumber',
          ArgumentValue: partParam,
        },
      )
    let at = 0
    const idx = rec.parts.findIndex((x) => x.number === n)
    if (idx < 0 && !(n === 1 && rec.parts.length <= 1))
      throw new S3Error('InvalidPart', 'The requested partnumber is not satisfiable')
    if (idx >= 0) {
      for (let i = 0; i < idx; i++) at += rec.parts[i]!.size
      range = { start: at, end: at + rec.parts[idx]!.size }
    }
    if (rec.parts.length > 1) partCount = rec.parts.length
  } else {
    range = parseRange(ctx.req.headers.range, rec.size)
  }
  res.status(range ? 206 : 200)
  res.header('ETag', quoteEtag(rec.etag))
  res.header('Last-Modified', httpDate(rec.modTime))
  res.header('Accept-Ranges', 'bytes')
  res.header('Content-Type', rec.contentType ?? 'binary/octet-stream')
  for (const [k, v] of Object.entries(rec.userMeta ?? {})) res.header(k, v)
  versionHeader(ctx, b, rec)
  if (rec.tags && Object.keys(rec.tags).length > 0)
    res.header('x-amz-tagging-count', Object.keys(rec.tags).length)
  if (partCount !== undefined) res.header('x-amz-mp-parts-count', partCount)
  if (ctx.req.headers['x-amz-checksum-mode']?.toUpperCase() === 'ENABLED' && rec.checksums) {
    for (const alg of CHECKSUM_ALGORITHMS) {
      const v = rec.checksums[alg]
      if (v !== undefined && (range === undefined || partParam !== null))
        res.header(checksumHeader(alg), v)
    }
    if (rec.checksumType) res.header('x-amz-checksum-type', rec.checksumType)
  }
  for (const [q, name] of RESPONSE_OVERRIDES) {
    const v = p.get(q)
    if (v !== null) res.setHeader(name, v)
  }
  const want = range ?? { start: 0, end: rec.size }
  if (range) res.header('Content-Range', `bytes ${range.start}-${range.end - 1}/${rec.size}`)
  if (head) {
    res.endWithoutBody(want.end - want.start)
    return
  }
  try {
    // res.stream writes each piece before it asks for the next: the read may reuse buffers.
    // Only reads from shard streams need the request's signal (inline shards are in memory).
    await res.stream(
      ctx.deps.objects.read(r, want, {
        ...(storedInline(rec) ? {} : { signal: ctx.req.signal }),
        reuseBuffers: true,
      }),
      want.end - want.start,
    )
  } catch (err) {
    // Headers are out: the connection was closed; log why.
    if (!res.aborted)
      ctx.deps.log.warn(
        { reqId: ctx.requestId, bucket: b.name, key: rec.key, err: toS3Error(err).cause ?? err },
        'GET failed after the answer started',
      )
  }
}

export async function deleteObject(ctx: S3Context, b: BucketRecord): Promise<void> {
  const key = ctx.key!
  const versionId = ctx.params.get('versionId') ?? undefined
  if (versionId !== undefined && !isValidVersionId(versionId)) {
    throw new S3Error('InvalidArgument', 'Invalid version id specified', {
      ArgumentName: 'versionId',
      ArgumentValue: versionId,
    })
  }
  const r = await ctx.deps.objects.delete(b.name, key, b.versioning, versionId)
  if (r.deleteMarker) {
    ctx.res.header('x-amz-delete-marker', 'true')
    ctx.res.header('x-amz-version-id', r.deleteMarker.versionId)
  } else if (versionId !== undefined) {
    ctx.res.header('x-amz-version-id', versionId)
    if (r.removed?.deleteMarker) ctx.res.header('x-amz-delete-marker', 'true')
  }
  ctx.res.status(204).end()
}

export async function deleteObjects(ctx: S3Context, b: BucketRecord): Promise<void> {
  if (
    ctx.req.headers['content-md5'] === undefined &&
    !Object.keys(ctx.req.headers).some((h) => h.startsWith('x-amz-checksum-')) &&
    ctx.req.headers['x-amz-sdk-checksum-algorithm'] === undefined
  ) {
    // S3 requires an integrity header on DeleteObjects.
    throw new S3Error(
      'InvalidRequest',
      'Missing required header for this request: Content-MD5 or x-amz-checksum-*',
    )
  }
  const body = await readSmallBody(ctx, 2 * 1024 * 1024)
  const { quiet, objects } = parseDelete(body)
  const deleted: {
    key: string
    versionId?: string
    deleteMarker?: boolean
    deleteMarkerVersionId?: string
  }[] = []
  const errors: { key: string; versionId?: string; code: string; message: string }[] = []
  // A few at a time: each delete is a quorum write on its own set.
  let next = 0
  const worker = async () => {
    while (next < objects.length) {
      const o = objects[next++]!
      try {
        if (o.versionId !== undefined && !isValidVersionId(o.versionId)) {
          throw new S3Error('NoSuchVersion', 'The specified version does not exist.')
        }
        await ctx.deps.access.authorize(ctx.who, {
          action: o.versionId ? 's3:DeleteObjectVersion' : 's3:DeleteObject',
          bucket: b.name,
          key: o.key,
          bucketRecord: b,
          request: ctx.facts,
        })
        const r = await ctx.deps.objects.delete(b.name, o.key, b.versioning, o.versionId)
        deleted.push({
          key: o.key,
          ...(o.versionId !== undefined ? { versionId: o.versionId } : {}),
          ...(r.deleteMarker
            ? { deleteMarker: true, deleteMarkerVersionId: r.deleteMarker.versionId }
            : r.removed?.deleteMarker
              ? { deleteMarker: true, deleteMarkerVersionId: o.versionId! }
              : {}),
        })
      } catch (err) {
        const e = toS3Error(err)
        errors.push({
          key: o.key,
          ...(o.versionId !== undefined ? { versionId: o.versionId } : {}),
          code: e.code,
          message: e.message,
        })
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(16, objects.length) }, worker))
  const order = new Map(objects.map((o, i) => [`${o.key}\u0000${o.versionId ?? ''}`, i]))
  const pos = (x: { key: string; versionId?: string }) =>
    order.get(`${x.key}\u0000${x.versionId ?? ''}`) ?? 0
  deleted.sort((a, c) => pos(a) - pos(c))
  errors.sort((a, c) => pos(a) - pos(c))
  ctx.res.header('Content-Type', 'application/xml').end(deleteResultXml({ deleted, errors, quiet }))
}

/** Parses x-amz-copy-source: "/bucket/key?versionId=…" or "bucket/key", URL-encoded. */
export function parseCopySource(v: string): { bucket: string; key: string; versionId?: string } {
  let s = v
  let versionId: string | undefined
  const q = s.indexOf('?')
  if (q >= 0) {
    const params = new URLSearchParams(s.slice(q + 1))
    versionId = params.get('versionId') ?? undefined
    s = s.slice(0, q)
  }
  let decoded: string
  try {
    decoded = decodeURIComponent(s)
  } catch {
    throw new S3Error('InvalidArgument', 'Invalid copy source encoding', {
      ArgumentName: 'x-amz-copy-source',
      ArgumentValue: v,
    })
  }
  if (decoded.startsWith('/')) decoded = decoded.slice(1)
  const slash = decoded.indexOf('/')
  if (slash <= 0 || slash === decoded.length - 1) {
    throw new S3Error(
      'InvalidArgument',
      'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
      {
        ArgumentName: 'x-amz-copy-source',
        ArgumentValue: v,
      },
    )
  }
  return {
    bucket: decoded.slice(0, slash),
    key: decoded.slice(slash + 1),
    ...(versionId !== undefined ? { versionId } : {}),
  }
}

/** Resolves a copy source and checks the x-amz-copy-source-if-* conditions. */
export async function resolveCopySource(
  ctx: S3Context,
): Promise<{ r: Resolved; src: BucketRecord }> {
  const src = parseCopySource(ctx.req.headers['x-amz-copy-source']!)
  const sb = await ctx.deps.buckets.get(src.bucket)
  if (!sb) throw new S3Error('NoSuchBucket', undefined, { BucketName: src.bucket })
  await ctx.deps.access.authorize(ctx.who, {
    action: src.versionId ? 's3:GetObjectVersion' : 's3:GetObject',
    bucket: src.bucket,
    key: src.key,
    bucketRecord: sb,
    request: ctx.facts,
    objectAcl: objectAclLoader(ctx.deps.objects, ctx.deps.access, sb, src.key, src.versionId),
  })
  let r: Resolved
  try {
    r = await ctx.deps.objects.resolve(src.bucket, src.key, src.versionId)
  } catch (err) {
    if ((err as { code?: string }).code === 'VERSION_NOT_FOUND') {
      if (src.versionId !== undefined)
        throw new S3Error('NoSuchVersion', undefined, { Key: src.key, VersionId: src.versionId })
      throw new S3Error('NoSuchKey', undefined, { Key: src.key })
    }
    throw err
  }
  if (r.record.deleteMarker) {
    if (src.versionId !== undefined)
      throw new S3Error(
        'InvalidRequest',
        'The source of a copy request may not specifically refer to a delete marker by version id.',
      )
    throw new S3Error('NoSuchKey', undefined, { Key: src.key })
  }
  checkConditions(ctx.req.headers, r.record, 'x-amz-copy-source-', true)
  return { r, src: sb }
}

export async function copyObject(ctx: S3Context, b: BucketRecord): Promise<void> {
  const key = ctx.key!
  checkKey(key)
  const h = ctx.req.headers
  refuseUnoffered(h)
  // The copy gets the request's ACL (or the default), never its source's.
  const access = objectAclForWrite(
    b,
    callerOwner(ctx),
    aclFromHeaders(h, ctx.deps.access),
    ctx.deps.access,
  )
  const { r, src } = await resolveCopySource(ctx)
  const srcRec = r.record
  const directive = (h['x-amz-metadata-directive'] ?? 'COPY').toUpperCase()
  const tagDirective = (h['x-amz-tagging-directive'] ?? 'COPY').toUpperCase()
  if (!['COPY', 'REPLACE'].includes(directive))
    throw new S3Error('InvalidArgument', 'Unknown metadata directive.', {
      ArgumentName: 'x-amz-metadata-directive',
      ArgumentValue: directive,
    })
  if (!['COPY', 'REPLACE'].includes(tagDirective))
    throw new S3Error('InvalidArgument', 'Unknown tagging directive.', {
      ArgumentName: 'x-amz-tagging-directive',
      ArgumentValue: tagDirective,
    })
  if (
    src.name === b.name &&
    srcRec.key === key &&
    directive === 'COPY' &&
    ctx.req.headers['x-amz-copy-source']?.includes('versionId') !== true &&
    b.versioning === 'unversioned'
  ) {
    throw new S3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    )
  }
  if (srcRec.size > 5 * 1024 ** 3) {
    throw new S3Error(
      'InvalidRequest',
      'The specified copy source is larger than the maximum allowable size for a copy source: 5368709120',
    )
  }
  const userMeta = directive === 'REPLACE' ? metaFromHeaders(h) : (srcRec.userMeta ?? {})
  const contentType = directive === 'REPLACE' ? h['content-type'] : srcRec.contentType
  const tags = tagDirective === 'REPLACE' ? tagsFromHeader(h['x-amz-tagging']) : srcRec.tags
  const md5 = createMd5()
  const body = (async function* (it: AsyncIterable<Uint8Array>) {
    for await (const c of it) {
      md5.update(c)
      yield c
    }
  })(ctx.deps.objects.read(r, undefined, { signal: ctx.req.signal }))
  const rec = await ctx.deps.objects.put({
    bucket: b.name,
    key,
    size: srcRec.size,
    body,
    versioning: b.versioning,
    ...(contentType !== undefined ? { contentType } : {}),
    userMeta,
    ...(tags ? { tags } : {}),
    ...access,
    finish: () => ({
      etag: md5.digest().toString('hex'),
      ...(srcRec.checksums && srcRec.parts.length <= 1 ? { checksums: srcRec.checksums } : {}),
    }),
    signal: ctx.req.signal,
  })
  if (srcRec.versionId !== 'null' || src.versioning !== 'unversioned')
    ctx.res.header('x-amz-copy-source-version-id', srcRec.versionId)
  versionHeader(ctx, b, rec)
  ctx.res.header('Content-Type', 'application/xml').end(
    copyObjectResultXml({
      etag: rec.etag,
      lastModified: new Date(hlcMillis(rec.modTime)),
      ...(rec.checksums ? { checksums: rec.checksums as Checksums } : {}),
    }),
  )
}

export async function getObjectTagging(ctx: S3Context, b: BucketRecord): Promise<void> {
  const r = await resolveForRead(ctx, b, ctx.params.get('versionId') ?? undefined)
  versionHeader(ctx, b, r.record)
  const tags = Object.entries(r.record.tags ?? {}).map(([key, value]) => ({ key, value }))
  ctx.res.header('Content-Type', 'application/xml').end(taggingXml(tags))
}

export async function putObjectTagging(
  ctx: S3Context,
  b: BucketRecord,
  remove: boolean,
): Promise<void> {
  const body = remove ? undefined : await readSmallBody(ctx, 64 * 1024)
  const tags = body ? parseTagging(body, { maxTags: 10 }) : []
  if (!remove && tags.length > 10)
    throw new S3Error('InvalidTag', 'Object tags cannot be greater than 10')
  const r = await resolveForRead(ctx, b, ctx.params.get('versionId') ?? undefined)
  const map = Object.fromEntries(tags.map((t) => [t.key, t.value]))
  const rec = await ctx.deps.objects.updateRecord(r, (x) => {
    const y = { ...x }
    if (tags.length > 0) y.tags = map
    else delete y.tags
    return y
  })
  versionHeader(ctx, b, rec)
  ctx.res.status(remove ? 204 : 200).end()
}

export async function getObjectAcl(ctx: S3Context, b: BucketRecord): Promise<void> {
  const r = await resolveForRead(ctx, b, ctx.params.get('versionId') ?? undefined)
  const { owner, grants } = objectAclOf(b, r.record, ctx.deps.access)
  versionHeader(ctx, b, r.record)
  ctx.res
    .header('Content-Type', 'application/xml')
    .end(accessControlPolicyXml({ owner, grants: xmlGrantsOf(grants) }))
}

export async function putObjectAcl(ctx: S3Context, b: BucketRecord): Promise<void> {
  const body = await readSmallBody(ctx, 64 * 1024)
  const r = await resolveForRead(ctx, b, ctx.params.get('versionId') ?? undefined)
  const { owner } = objectAclOf(b, r.record, ctx.deps.access)
  const acl = aclFromRequest(ctx.req.headers, body, owner, ctx.deps.access)
  const bucketOwner = bucketOwnerOf(b, ctx.deps.access)
  if (!aclsEnabled(b)) {
    // Only an ACL that changes nothing is accepted, and nothing is stored.
    if (!aclWithoutEffect(acl, bucketOwner, 'object')) {
      throw new S3Error('AccessControlListNotSupported')
    }
    ctx.res.end()
    return
  }
  const grants = grantsOf(acl, owner, bucketOwner, 'object')
  if (publicAccessBlockOf(b).BlockPublicAcls && isPublicAcl(grants)) {
    throw new S3Error('AccessDenied', 'Access Denied: the bucket blocks public ACLs.')
  }
  const ownerOnly =
    grants.length === 1 &&
    grants[0]!.permission === 'FULL_CONTROL' &&
    grants[0]!.grantee.type === 'CanonicalUser' &&
    grants[0]!.grantee.id === owner.id
  const rec = await ctx.deps.objects.updateRecord(r, (x) => {
    const y = { ...x }
    if (ownerOnly) delete y.acl
    else y.acl = grants
    return y
  })
  versionHeader(ctx, b, rec)
  ctx.res.end()
}

export { ownerOf }
