/**
 * GetObjectAttributes: the attributes named in x-amz-object-attributes (ETag, Checksum,
 * ObjectParts, StorageClass, ObjectSize) of an object version, without its data, with
 * Last-Modified and x-amz-version-id as headers, as Amazon S3 answers it.
 */
import type { BucketRecord } from '@tessera/protocol'
import { XMLBuilder } from 'fast-xml-parser'
import { CHECKSUM_ALGORITHMS } from './checksums.ts'
import type { S3Context } from './context.ts'
import { S3Error } from './errors.ts'
import { httpDate } from './headers.ts'
import { resolveForRead } from './object-ops.ts'

/** Attribute names x-amz-object-attributes may list. */
export const OBJECT_ATTRIBUTES = [
  'ETag',
  'Checksum',
  'ObjectParts',
  'StorageClass',
  'ObjectSize',
] as const

/** Default and largest x-amz-max-parts. */
const MAX_PARTS = 1000

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_' })

/** The x-amz-checksum-* name of an algorithm as the XML element names it (ChecksumCRC32…). */
function checksumElement(alg: string): string {
  return `Checksum${alg.toUpperCase()}`
}

function intHeader(ctx: S3Context, name: string, dflt: number): number {
  const v = ctx.req.headers[name]
  if (v === undefined || v === '') return dflt
  if (!/^\d+$/.test(v.trim())) {
    throw new S3Error(
      'InvalidArgument',
      `Provided ${name} not an integer or within integer range`,
      {
        ArgumentName: name,
        ArgumentValue: v,
      },
    )
  }
  return Number(v.trim())
}

export async function getObjectAttributes(ctx: S3Context, b: BucketRecord): Promise<void> {
  const raw = ctx.req.headers['x-amz-object-attributes']
  const wanted = (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  if (wanted.length === 0) {
    throw new S3Error(
      'InvalidRequest',
      'The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty',
    )
  }
  for (const a of wanted) {
    if (!(OBJECT_ATTRIBUTES as readonly string[]).includes(a)) {
      throw new S3Error('InvalidArgument', 'Invalid attribute name specified.', {
        ArgumentName: 'x-amz-object-attributes',
        ArgumentValue: a,
      })
    }
  }
  const maxParts = Math.min(intHeader(ctx, 'x-amz-max-parts', MAX_PARTS), MAX_PARTS)
  const marker = intHeader(ctx, 'x-amz-part-number-marker', 0)
  const versionId = ctx.params.get('versionId') ?? undefined
  const r = await resolveForRead(ctx, b, versionId)
  const rec = r.record
  const want = new Set(wanted)
  const out: Record<string, unknown> = { '@_xmlns': 'http://s3.amazonaws.com/doc/2006-03-01/' }
  if (want.has('ETag')) out.ETag = rec.etag
  if (want.has('Checksum') && rec.checksums) {
    const c: Record<string, string> = {}
    for (const alg of CHECKSUM_ALGORITHMS) {
      const v = rec.checksums[alg]
      if (v !== undefined) c[checksumElement(alg)] = v.split('-')[0]!
    }
    if (Object.keys(c).length > 0) {
      out.Checksum = { ...c, ChecksumType: rec.checksumType ?? 'FULL_OBJECT' }
    }
  }
  // Only multipart objects have parts to show (their ETag ends in -N).
  if (want.has('ObjectParts') && /-\d+$/.test(rec.etag) && rec.parts.length > 0) {
    const parts = [...rec.parts].sort((x, y) => x.number - y.number)
    if (rec.checksumType === 'COMPOSITE') {
      const after = parts.filter((p) => p.number > marker)
      const page = after.slice(0, maxParts)
      const truncated = after.length > page.length
      out.ObjectParts = {
        PartsCount: parts.length,
        PartNumberMarker: marker,
        NextPartNumberMarker: page.length > 0 ? page[page.length - 1]!.number : 0,
        MaxParts: maxParts,
        IsTruncated: truncated,
        ...(page.length > 0
          ? {
              Part: page.map((p) => {
                const sums: Record<string, string> = {}
                for (const alg of CHECKSUM_ALGORITHMS) {
                  const v = p.checksums?.[alg]
                  if (v !== undefined) sums[checksumElement(alg)] = v
                }
                return { PartNumber: p.number, Size: p.size, ...sums }
              }),
            }
          : {}),
      }
    } else {
      out.ObjectParts = { PartsCount: parts.length }
    }
  }
  if (want.has('StorageClass'))
    out.StorageClass = rec.userMeta?.['x-amz-storage-class'] ?? 'STANDARD'
  if (want.has('ObjectSize')) out.ObjectSize = rec.size
  const res = ctx.res
  res.header('Last-Modified', httpDate(rec.modTime))
  if (b.versioning !== 'unversioned') res.header('x-amz-version-id', rec.versionId)
  res
    .header('Content-Type', 'application/xml')
    .end(
      `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({ GetObjectAttributesResponse: out })}`,
    )
}
