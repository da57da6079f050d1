/**
 * HTTP header rules of S3 objects: which request headers are kept with an object, how they
 * come back, ranges and conditional requests.
 */
import { hlcMillis, type VersionRecord } from '@tessera/protocol'
import { S3Error } from './errors.ts'

/** Standard headers S3 stores with an object and returns on GET and HEAD. */
export const STORED_HEADERS = [
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-language',
  'expires',
  'x-amz-website-redirect-location',
  'x-amz-storage-class',
] as const

/** S3's storage classes; a request may name only STANDARD, the one class Tessera stores. */
const STORAGE_CLASSES = new Set([
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'DEEP_ARCHIVE',
  'GLACIER_IR',
  'OUTPOSTS',
  'SNOW',
  'EXPRESS_ONEZONE',
])

/**
 * Refuses a write (PutObject, CopyObject, CreateMultipartUpload, a form upload) that asks for
 * what Tessera does not do, rather than storing an object without it: server-side encryption
 * (501 NotImplemented, naming the header), object lock (no bucket has an Object Lock
 * configuration, so S3's 400 InvalidRequest) and storage classes other than STANDARD (400
 * InvalidStorageClass).
 */
export function refuseUnoffered(headers: Record<string, string>): void {
  for (const k of Object.keys(headers)) {
    if (k.startsWith('x-amz-server-side-encryption')) {
      throw new S3Error(
        'NotImplemented',
        `A header you provided implies functionality that is not implemented: Tessera does not encrypt objects (${k}); leave it out.`,
        { Header: k },
      )
    }
    if (k.startsWith('x-amz-object-lock-')) {
      throw new S3Error('InvalidRequest', 'Bucket is missing Object Lock Configuration')
    }
  }
  const storageClass = headers['x-amz-storage-class']
  if (storageClass !== undefined && storageClass !== 'STANDARD') {
    throw new S3Error(
      'InvalidStorageClass',
      STORAGE_CLASSES.has(storageClass)
        ? 'The storage class you specified is not valid: Tessera stores only STANDARD.'
        : undefined,
      { StorageClassRequested: storageClass },
    )
  }
}

/** User metadata may total at most 2 KiB, as in S3. */
export const MAX_USER_META_BYTES = 2048

/** x-amz-meta-* and the stored standard headers of a request, lower-case names. */
export function metaFromHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  let userBytes = 0
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith('x-amz-meta-')) {
      userBytes += k.length - 'x-amz-meta-'.length + v.length
      out[k] = v
    } else if (k === 'content-encoding') {
      // aws-chunked describes the upload's framing, not the object: S3 drops it.
      const kept = v
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== '' && e.toLowerCase() !== 'aws-chunked')
      if (kept.length > 0) out[k] = kept.join(',')
    } else if ((STORED_HEADERS as readonly string[]).includes(k)) {
      if (k === 'x-amz-storage-class') continue
      out[k] = v
    }
  }
  if (userBytes > MAX_USER_META_BYTES) {
    throw new S3Error('MetadataTooLarge', undefined, {
      Size: String(userBytes),
      MaxSizeAllowed: String(MAX_USER_META_BYTES),
    })
  }
  return out
}

/** RFC 7231 date of an HLC timestamp (Last-Modified). */
export function httpDate(modTime: number): string {
  return new Date(hlcMillis(modTime)).toUTCString()
}

/** Last-Modified has one-second resolution: compare in whole seconds. */
export function modSeconds(modTime: number): number {
  return Math.floor(hlcMillis(modTime) / 1000)
}

export function quoteEtag(etag: string): string {
  return `"${etag}"`
}

/** ETags as a client sends them: quoted or not, possibly W/ weak, in a comma list. */
function etagMatches(header: string, etag: string): boolean {
  return header.split(',').some((t) => {
    const v = t.trim().replace(/^W\//, '').replace(/^"|"$/g, '')
    return v === '*' || v === etag
  })
}

function parseHttpDate(v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : Math.floor(t / 1000)
}

/**
 * Checks If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since (or their
 * x-amz-copy-source-if-* forms, with `prefix`) against a version. Throws PreconditionFailed
 * (412) or NotModified (304) as S3 does, with its precedence rules: If-Match that holds makes
 * If-Unmodified-Since irrelevant; If-None-Match that fails wins over If-Modified-Since.
 */
export function checkConditions(
  headers: Record<string, string>,
  rec: VersionRecord,
  prefix = '',
  copy = false,
): void {
  const ifMatch = headers[`${prefix}if-match`]
  const ifNoneMatch = headers[`${prefix}if-none-match`]
  const ifModSince = parseHttpDate(headers[`${prefix}if-modified-since`])
  const ifUnmodSince = parseHttpDate(headers[`${prefix}if-unmodified-since`])
  const mod = modSeconds(rec.modTime)
  const notModified = () =>
    copy
      ? new S3Error('PreconditionFailed', undefined, { Condition: `${prefix}If-None-Match` })
      : new S3Error(
          'NotModified',
          undefined,
          {},
          { headers: { ETag: quoteEtag(rec.etag), 'Last-Modified': httpDate(rec.modTime) } },
        )
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, rec.etag))
      throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-Match' })
  } else if (ifUnmodSince !== undefined && mod > ifUnmodSince) {
    throw new S3Error('PreconditionFailed', undefined, { Condition: 'If-Unmodified-Since' })
  }
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, rec.etag)) throw notModified()
  } else if (ifModSince !== undefined && mod <= ifModSince) {
    throw notModified()
  }
}

/**
 * A Range header against an object of `size` bytes: undefined when absent or not a single
 * valid byte range (S3 then sends the whole object); InvalidRange (416) when unsatisfiable.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | undefined {
  if (header === undefined) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (m === null) return undefined
  const [, a, b] = m
  if (a === '' && b === '') return undefined
  let start: number
  let end: number
  if (a === '') {
    const n = Number(b)
    if (n === 0) throw unsatisfiable(size)
    start = Math.max(0, size - n)
    end = size
  } else {
    start = Number(a)
    end = b === '' ? size : Math.min(size, Number(b) + 1)
    if (b !== '' && Number(b) < start) return undefined
  }
  if (start >= size) throw unsatisfiable(size)
  return { start, end }
}

function unsatisfiable(size: number): S3Error {
  return new S3Error(
    'InvalidRange',
    undefined,
    { ActualObjectSize: String(size) },
    {
      headers: { 'Content-Range': `bytes */${size}` },
    },
  )
}
