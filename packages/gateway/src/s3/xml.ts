/**
 * The S3 XML layer: a builder for every response body the gateway sends and a validating parser
 * for every request body it reads.
 *
 * Design notes
 * - Builders write the elements of each document in the order AWS's own example responses and
 *   live answers use. SDKs read elements by name, so order is for fidelity (diffing against AWS
 *   in tests, strict third-party clients), not correctness. Where AWS's samples disagree with one
 *   another (ListObjects puts `Owner` before `StorageClass` in one sample and after it in
 *   another), the order of live AWS answers wins.
 * - Every result document is in S3's namespace; `Error` is in none, as AWS sends it. Times are
 *   ISO 8601 with milliseconds (`2009-10-12T17:50:30.000Z`) and ETags are written quoted.
 * - Parsers are strict the way AWS is: anything that is not well-formed or not in the schema is
 *   `MalformedXML`. They never expand entities: a DOCTYPE is refused outright and only the five
 *   predefined entities and character references are decoded, by this file rather than by the
 *   XML library, so no entity table exists to abuse. Bodies must be size-bounded by the caller.
 */
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser'
import { S3Error } from './errors.ts'

/** The namespace of every S3 result document. */
export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'

// AWS ends the declaration with a newline before the root element.
const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

/** The storage class the gateway reports for every object, upload and part listing. */
export const DEFAULT_STORAGE_CLASS = 'STANDARD'

/** Most keys one DeleteObjects request may name. */
export const MAX_DELETE_OBJECTS = 1000

/** Highest part number a multipart upload may have. */
export const MAX_PART_NUMBER = 10_000

/** Longest tag key, in Unicode characters. */
export const MAX_TAG_KEY_CHARS = 128

/** Longest tag value, in Unicode characters. */
export const MAX_TAG_VALUE_CHARS = 256

/** Most tags an object may carry. */
export const MAX_OBJECT_TAGS = 10

/** Most tags a bucket may carry. */
export const MAX_BUCKET_TAGS = 50

// ---------------------------------------------------------------------------------------------
// Shared types

/** The only `encoding-type` S3 defines. */
export type EncodingType = 'url'

/** A checksum algorithm S3 accepts, as it names it in element names (`ChecksumCRC32`, …). */
export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME' | 'SHA1' | 'SHA256'

/** How an object's checksum was formed: over the whole object, or over its parts' checksums. */
export type ChecksumType = 'COMPOSITE' | 'FULL_OBJECT'

/** Base64 checksum values by algorithm; only the algorithms present are written. */
export type Checksums = Partial<Record<ChecksumAlgorithm, string>>

/** An account as S3 shows it (`Owner`, `Initiator`). AWS has stopped sending `DisplayName`. */
export interface Owner {
  /** Canonical user ID (or, for an `Initiator`, the IAM ARN). */
  readonly id: string
  /** Written only when given. */
  readonly displayName?: string
}

/** One tag of an object or bucket. */
export interface Tag {
  readonly key: string
  readonly value: string
}

// Element order of the checksum elements in every document that carries them (the API model's).
const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = [
  'CRC32',
  'CRC32C',
  'CRC64NVME',
  'SHA1',
  'SHA256',
]

// ---------------------------------------------------------------------------------------------
// Escaping and encoding

/**
 * Escapes text for XML element content or attribute values: the five markup characters as
 * their predefined entities, CR as `&#13;` (a literal CR would be turned into LF by any
 * conforming parser, which changes the key), and other characters XML 1.0 cannot carry as
 * character references, which is what AWS sends for them. Clients that need such keys intact
 * ask for `encoding-type=url`.
 */
export function xmlEscape(value: string): string {
  let out = ''
  let start = 0
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    let replacement: string | undefined
    if (c === 0x26) replacement = '&amp;'
    else if (c === 0x3c) replacement = '&lt;'
    else if (c === 0x3e) replacement = '&gt;'
    else if (c === 0x22) replacement = '&quot;'
    else if (c === 0x27) replacement = '&apos;'
    else if (c < 0x20 && c !== 0x09 && c !== 0x0a) replacement = `&#${c};`
    else if (c === 0xfffe || c === 0xffff) replacement = `&#${c};`
    else if (c >= 0xd800 && c <= 0xdfff) {
      const next = value.charCodeAt(i + 1)
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++
        continue
      }
      // A lone surrogate cannot be written in UTF-8 at all; U+FFFD is what the encoder would
      // put on the wire anyway.
      replacement = '\uFFFD'
    }
    if (replacement !== undefined) {
      out += value.slice(start, i) + replacement
      start = i + 1
    }
  }
  return start === 0 ? value : out + value.slice(start)
}

// Per byte: the byte itself, '+', or %XX. S3's url encoding is form encoding (space as '+') that
// leaves '/' and '*' alone and encodes '~', as MinIO's s3URLEncode does to match AWS.
const URL_ENCODED_BYTE: readonly string[] = Array.from({ length: 256 }, (_, b) => {
  const unreserved =
    (b >= 0x30 && b <= 0x39) ||
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    b === 0x2d || // -
    b === 0x5f || // _
    b === 0x2e || // .
    b === 0x2f || // /
    b === 0x2a // *
  if (unreserved) return String.fromCharCode(b)
  if (b === 0x20) return '+'
  return `%${b.toString(16).toUpperCase().padStart(2, '0')}`
})

const utf8Encoder = new TextEncoder()

/**
 * A key, prefix, delimiter or key marker as a listing writes it: unchanged without an encoding
 * type, and URL-encoded (UTF-8, space as `+`, `/` kept) for `encoding-type=url`.
 */
export function encodeKeyForList(value: string, encodingType: EncodingType | undefined): string {
  if (encodingType !== 'url') return value
  let out = ''
  for (const byte of utf8Encoder.encode(value)) out += URL_ENCODED_BYTE[byte]
  return out
}

/** An ETag as S3 writes it in XML: in double quotes, whether or not it was stored with them. */
export function quoteEtag(etag: string): string {
  return etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"') ? etag : `"${etag}"`
}

// ---------------------------------------------------------------------------------------------
// Document building

// fast-xml-parser's ordered form: an element is `{ Name: children }`, text is `{ '#text': s }`.
type XmlNode = { readonly '#text': string } | { readonly [element: string]: readonly XmlNode[] }
type Child = XmlNode | undefined

const builder = new XMLBuilder({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  suppressEmptyNode: false,
  // The builder's own entity table only knows the five markup characters; escaping here also
  // covers CR and the characters XML cannot carry raw.
  processEntities: false,
  tagValueProcessor: (_name, value) => xmlEscape(String(value)),
})

function leaf(name: string, value: string | number | boolean): XmlNode {
  return { [name]: [{ '#text': String(value) }] }
}

function optionalLeaf(name: string, value: string | number | undefined): Child {
  return value === undefined ? undefined : leaf(name, value)
}

function element(name: string, children: readonly Child[]): XmlNode {
  return { [name]: children.filter((c): c is XmlNode => c !== undefined) }
}

function document(root: string, children: readonly Child[], namespaced = true): string {
  const node: Record<string, unknown> = {
    [root]: children.filter((c): c is XmlNode => c !== undefined),
  }
  if (namespaced) node[':@'] = { '@_xmlns': S3_XMLNS }
  return XML_DECLARATION + builder.build([node])
}

function timestamp(date: Date): string {
  return date.toISOString()
}

function ownerElement(name: 'Owner' | 'Initiator', owner: Owner): XmlNode {
  return element(name, [leaf('ID', owner.id), optionalLeaf('DisplayName', owner.displayName)])
}

function checksumElements(checksums: Checksums | undefined): Child[] {
  if (checksums === undefined) return []
  return CHECKSUM_ALGORITHMS.map((a) => optionalLeaf(`Checksum${a}`, checksums[a]))
}

function commonPrefixElements(
  prefixes: readonly string[],
  encodingType: EncodingType | undefined,
): XmlNode[] {
  return prefixes.map((p) =>
    element('CommonPrefixes', [leaf('Prefix', encodeKeyForList(p, encodingType))]),
  )
}

// An empty delimiter groups nothing, and AWS does not echo it.
function delimiterElement(delimiter: string | undefined, encodingType: EncodingType | undefined) {
  return delimiter ? leaf('Delimiter', encodeKeyForList(delimiter, encodingType)) : undefined
}

// ---------------------------------------------------------------------------------------------
// Response builders: errors and buckets

/** What an error response carries. */
export interface ErrorXmlInit {
  /** The S3 error code, for example `NoSuchKey`. */
  readonly code: string
  readonly message: string
  /** The bucket or object the request named (`/bucket/key`). */
  readonly resource?: string
  readonly requestId: string
  readonly hostId: string
  /** Code-specific elements (`BucketName`, `Key`, `ArgumentName`, …), written after `Message`. */
  readonly extra?: Readonly<Record<string, string>>
}

/** The `Error` document of an error response. It has no namespace, as AWS sends it. */
export function errorXml(init: ErrorXmlInit): string {
  const extra = Object.entries(init.extra ?? {}).map(([name, value]) => leaf(name, value))
  return document(
    'Error',
    [
      leaf('Code', init.code),
      leaf('Message', init.message),
      ...extra,
      optionalLeaf('Resource', init.resource),
      leaf('RequestId', init.requestId),
      leaf('HostId', init.hostId),
    ],
    false,
  )
}

/** A bucket as ListBuckets shows it. */
export interface ListedBucket {
  readonly name: string
  readonly created: Date
  /** Written as `BucketRegion` when given (AWS gives it when the request had a parameter). */
  readonly region?: string
}

/** A page of ListBuckets. */
export interface ListBucketsInit {
  readonly owner: Owner
  readonly buckets: readonly ListedBucket[]
  /** Where the next page starts, when more buckets follow. */
  readonly continuationToken?: string
  /** The `prefix` parameter, echoed when the request had one. */
  readonly prefix?: string
}

/** ListBuckets' `ListAllMyBucketsResult`. */
export function listBucketsXml(init: ListBucketsInit): string {
  return document('ListAllMyBucketsResult', [
    ownerElement('Owner', init.owner),
    element(
      'Buckets',
      init.buckets.map((b) =>
        element('Bucket', [
          leaf('Name', b.name),
          leaf('CreationDate', timestamp(b.created)),
          optionalLeaf('BucketRegion', b.region),
        ]),
      ),
    ),
    optionalLeaf('ContinuationToken', init.continuationToken),
    optionalLeaf('Prefix', init.prefix),
  ])
}

/** GetBucketLocation's `LocationConstraint`: empty for us-east-1, as AWS answers. */
export function locationXml(region: string): string {
  const constraint = region === 'us-east-1' ? '' : region
  return document('LocationConstraint', constraint === '' ? [] : [{ '#text': constraint }])
}

/** A bucket's versioning state; `undefined` when versioning was never configured. */
export type VersioningStatus = 'Enabled' | 'Suspended'

/** MFA delete, as PutBucketVersioning sets it. */
export type MfaDeleteStatus = 'Enabled' | 'Disabled'

/**
 * GetBucketVersioning's `VersioningConfiguration`: no `Status` for a bucket that has never had
 * versioning configured, and `MfaDelete` only when it was ever set.
 */
export function versioningXml(status?: VersioningStatus, mfaDelete?: MfaDeleteStatus): string {
  return document('VersioningConfiguration', [
    optionalLeaf('Status', status),
    optionalLeaf('MfaDelete', mfaDelete),
  ])
}

/** GetObjectTagging's and GetBucketTagging's `Tagging`. */
export function taggingXml(tags: readonly Tag[]): string {
  return document('Tagging', [
    element(
      'TagSet',
      tags.map((t) => element('Tag', [leaf('Key', t.key), leaf('Value', t.value)])),
    ),
  ])
}

// ---------------------------------------------------------------------------------------------
// Response builders: listings

/** An object as ListObjects and ListObjectsV2 show it. */
export interface ListedObject {
  readonly key: string
  readonly lastModified: Date
  /** With or without quotes; written quoted. */
  readonly etag: string
  readonly size: number
  /** Defaults to `STANDARD`. */
  readonly storageClass?: string
  readonly checksumAlgorithm?: ChecksumAlgorithm
  readonly checksumType?: ChecksumType
  /** Written by ListObjects always, and by ListObjectsV2 only with `fetchOwner`. */
  readonly owner?: Owner
}

function contentsElement(
  o: ListedObject,
  withOwner: boolean,
  encodingType: EncodingType | undefined,
): XmlNode {
  return element('Contents', [
    leaf('Key', encodeKeyForList(o.key, encodingType)),
    leaf('LastModified', timestamp(o.lastModified)),
    leaf('ETag', quoteEtag(o.etag)),
    optionalLeaf('ChecksumAlgorithm', o.checksumAlgorithm),
    optionalLeaf('ChecksumType', o.checksumType),
    leaf('Size', o.size),
    withOwner && o.owner !== undefined ? ownerElement('Owner', o.owner) : undefined,
    leaf('StorageClass', o.storageClass ?? DEFAULT_STORAGE_CLASS),
  ])
}

/** A page of ListObjects (V1) and what its response echoes of the request. */
export interface ListObjectsV1Init {
  /** Written as `Name`. */
  readonly bucket: string
  /** The `prefix` parameter; `''` when none was sent (AWS always writes `Prefix`). */
  readonly prefix?: string
  /** The `marker` parameter; `''` when none was sent (AWS always writes `Marker`). */
  readonly marker?: string
  /** Written when given; AWS gives it only for a truncated page listed with a delimiter. */
  readonly nextMarker?: string
  readonly maxKeys: number
  readonly delimiter?: string
  readonly isTruncated: boolean
  readonly encodingType?: EncodingType
  /** In key order. V1 shows every object's owner, so each must have one. */
  readonly contents: readonly (ListedObject & { readonly owner: Owner })[]
  readonly commonPrefixes: readonly string[]
}

/**
 * ListObjects' `ListBucketResult`. With `encoding-type=url`, `Prefix`, `Marker`, `NextMarker`,
 * `Delimiter`, every `Key` and every common prefix are URL-encoded.
 */
export function listObjectsV1Xml(init: ListObjectsV1Init): string {
  const enc = init.encodingType
  return document('ListBucketResult', [
    leaf('Name', init.bucket),
    leaf('Prefix', encodeKeyForList(init.prefix ?? '', enc)),
    leaf('Marker', encodeKeyForList(init.marker ?? '', enc)),
    init.nextMarker === undefined
      ? undefined
      : leaf('NextMarker', encodeKeyForList(init.nextMarker, enc)),
    leaf('MaxKeys', init.maxKeys),
    delimiterElement(init.delimiter, enc),
    optionalLeaf('EncodingType', enc),
    leaf('IsTruncated', init.isTruncated),
    ...init.contents.map((o) => contentsElement(o, true, enc)),
    ...commonPrefixElements(init.commonPrefixes, enc),
  ])
}

/** A page of ListObjectsV2 and what its response echoes of the request. */
export interface ListObjectsV2Init {
  /** Written as `Name`. */
  readonly bucket: string
  /** The `prefix` parameter; `''` when none was sent. */
  readonly prefix?: string
  /** The `start-after` parameter, echoed when sent. */
  readonly startAfter?: string
  /** The `continuation-token` parameter, echoed when sent. */
  readonly continuationToken?: string
  /** Given when the page is truncated. */
  readonly nextContinuationToken?: string
  /** Defaults to the number of `Contents` plus `CommonPrefixes`, which is what AWS counts. */
  readonly keyCount?: number
  readonly maxKeys: number
  readonly delimiter?: string
  readonly isTruncated: boolean
  readonly encodingType?: EncodingType
  /** `fetch-owner=true`: V2 shows owners only when asked, V1 always. */
  readonly fetchOwner?: boolean
  readonly contents: readonly ListedObject[]
  readonly commonPrefixes: readonly string[]
}

/**
 * ListObjectsV2's `ListBucketResult`. With `encoding-type=url`, `Prefix`, `StartAfter`,
 * `Delimiter`, every `Key` and every common prefix are URL-encoded; the continuation tokens
 * are opaque and never are.
 */
export function listObjectsV2Xml(init: ListObjectsV2Init): string {
  const enc = init.encodingType
  const keyCount = init.keyCount ?? init.contents.length + init.commonPrefixes.length
  return document('ListBucketResult', [
    leaf('Name', init.bucket),
    leaf('Prefix', encodeKeyForList(init.prefix ?? '', enc)),
    init.startAfter === undefined
      ? undefined
      : leaf('StartAfter', encodeKeyForList(init.startAfter, enc)),
    optionalLeaf('ContinuationToken', init.continuationToken),
    optionalLeaf('NextContinuationToken', init.nextContinuationToken),
    leaf('KeyCount', keyCount),
    leaf('MaxKeys', init.maxKeys),
    delimiterElement(init.delimiter, enc),
    optionalLeaf('EncodingType', enc),
    leaf('IsTruncated', init.isTruncated),
    ...init.contents.map((o) => contentsElement(o, init.fetchOwner === true, enc)),
    ...commonPrefixElements(init.commonPrefixes, enc),
  ])
}

/** A version of an object, as ListObjectVersions shows it. */
export interface ListedVersion {
  readonly deleteMarker?: false
  readonly key: string
  /** `null` for the version written while versioning was off or suspended. */
  readonly versionId: string
  readonly isLatest: boolean
  readonly lastModified: Date
  readonly etag: string
  readonly size: number
  readonly storageClass?: string
  readonly checksumAlgorithm?: ChecksumAlgorithm
  readonly checksumType?: ChecksumType
  readonly owner: Owner
}

/** A delete marker, as ListObjectVersions shows it: no ETag, size or storage class. */
export interface ListedDeleteMarker {
  readonly deleteMarker: true
  readonly key: string
  readonly versionId: string
  readonly isLatest: boolean
  readonly lastModified: Date
  readonly owner: Owner
}

/** A page of ListObjectVersions and what its response echoes of the request. */
export interface ListObjectVersionsInit {
  /** Written as `Name`. */
  readonly bucket: string
  /** `''` when none was sent; AWS always writes `Prefix`, `KeyMarker` and `VersionIdMarker`. */
  readonly prefix?: string
  readonly keyMarker?: string
  readonly versionIdMarker?: string
  /** Given when the page is truncated. */
  readonly nextKeyMarker?: string
  readonly nextVersionIdMarker?: string
  readonly maxKeys: number
  readonly delimiter?: string
  readonly isTruncated: boolean
  readonly encodingType?: EncodingType
  /**
   * Versions and delete markers interleaved: in key order, and newest first within a key. They
   * are written in the order given.
   */
  readonly versions: readonly (ListedVersion | ListedDeleteMarker)[]
  readonly commonPrefixes: readonly string[]
}

/**
 * ListObjectVersions' `ListVersionsResult`. With `encoding-type=url`, `Prefix`, `KeyMarker`,
 * `NextKeyMarker`, `Delimiter`, every `Key` and every common prefix are URL-encoded; version
 * ID markers are not.
 */
export function listObjectVersionsXml(init: ListObjectVersionsInit): string {
  const enc = init.encodingType
  return document('ListVersionsResult', [
    leaf('Name', init.bucket),
    leaf('Prefix', encodeKeyForList(init.prefix ?? '', enc)),
    leaf('KeyMarker', encodeKeyForList(init.keyMarker ?? '', enc)),
    leaf('VersionIdMarker', init.versionIdMarker ?? ''),
    init.nextKeyMarker === undefined
      ? undefined
      : leaf('NextKeyMarker', encodeKeyForList(init.nextKeyMarker, enc)),
    optionalLeaf('NextVersionIdMarker', init.nextVersionIdMarker),
    leaf('MaxKeys', init.maxKeys),
    delimiterElement(init.delimiter, enc),
    optionalLeaf('EncodingType', enc),
    leaf('IsTruncated', init.isTruncated),
    ...init.versions.map((v) =>
      v.deleteMarker === true
        ? element('DeleteMarker', [
            leaf('Key', encodeKeyForList(v.key, enc)),
            leaf('VersionId', v.versionId),
            leaf('IsLatest', v.isLatest),
            leaf('LastModified', timestamp(v.lastModified)),
            ownerElement('Owner', v.owner),
          ])
        : element('Version', [
            leaf('Key', encodeKeyForList(v.key, enc)),
            leaf('VersionId', v.versionId),
            leaf('IsLatest', v.isLatest),
            leaf('LastModified', timestamp(v.lastModified)),
            leaf('ETag', quoteEtag(v.etag)),
            optionalLeaf('ChecksumAlgorithm', v.checksumAlgorithm),
            optionalLeaf('ChecksumType', v.checksumType),
            leaf('Size', v.size),
            ownerElement('Owner', v.owner),
            leaf('StorageClass', v.storageClass ?? DEFAULT_STORAGE_CLASS),
          ]),
    ),
    ...commonPrefixElements(init.commonPrefixes, enc),
  ])
}

// ---------------------------------------------------------------------------------------------
// Response builders: copies and multipart uploads

/** What CopyObject reports of the new object. */
export interface CopyObjectResultInit {
  readonly etag: string
  readonly lastModified: Date
  readonly checksumType?: ChecksumType
  readonly checksums?: Checksums
}

/** CopyObject's `CopyObjectResult`. */
export function copyObjectResultXml(init: CopyObjectResultInit): string {
  return document('CopyObjectResult', [
    leaf('LastModified', timestamp(init.lastModified)),
    leaf('ETag', quoteEtag(init.etag)),
    optionalLeaf('ChecksumType', init.checksumType),
    ...checksumElements(init.checksums),
  ])
}

/** What UploadPartCopy reports of the new part. */
export interface CopyPartResultInit {
  readonly etag: string
  readonly lastModified: Date
  readonly checksums?: Checksums
}

/** UploadPartCopy's `CopyPartResult`. */
export function copyPartResultXml(init: CopyPartResultInit): string {
  return document('CopyPartResult', [
    leaf('LastModified', timestamp(init.lastModified)),
    leaf('ETag', quoteEtag(init.etag)),
    ...checksumElements(init.checksums),
  ])
}

/** What CreateMultipartUpload reports. */
export interface InitiateMultipartUploadInit {
  readonly bucket: string
  readonly key: string
  readonly uploadId: string
}

/** CreateMultipartUpload's `InitiateMultipartUploadResult`. */
export function initiateMultipartUploadXml(init: InitiateMultipartUploadInit): string {
  return document('InitiateMultipartUploadResult', [
    leaf('Bucket', init.bucket),
    leaf('Key', init.key),
    leaf('UploadId', init.uploadId),
  ])
}

/** What CompleteMultipartUpload reports of the new object. */
export interface CompleteMultipartUploadInit {
  /** The object's URL. */
  readonly location: string
  readonly bucket: string
  readonly key: string
  /** The multipart ETag (`<md5 of part md5s>-<parts>`), with or without quotes. */
  readonly etag: string
  readonly checksums?: Checksums
  readonly checksumType?: ChecksumType
}

/** CompleteMultipartUpload's `CompleteMultipartUploadResult`. */
export function completeMultipartUploadXml(init: CompleteMultipartUploadInit): string {
  return document('CompleteMultipartUploadResult', [
    leaf('Location', init.location),
    leaf('Bucket', init.bucket),
    leaf('Key', init.key),
    leaf('ETag', quoteEtag(init.etag)),
    ...checksumElements(init.checksums),
    optionalLeaf('ChecksumType', init.checksumType),
  ])
}

/** A part as ListParts shows it. */
export interface ListedPart {
  readonly partNumber: number
  readonly lastModified: Date
  readonly etag: string
  readonly size: number
  readonly checksums?: Checksums
}

/** A page of ListParts and what its response echoes of the request. */
export interface ListPartsInit {
  readonly bucket: string
  readonly key: string
  readonly uploadId: string
  /** The `part-number-marker` parameter; 0 when none was sent. */
  readonly partNumberMarker?: number
  /** The last part listed; AWS gives it on every page that lists a part. */
  readonly nextPartNumberMarker?: number
  readonly maxParts: number
  readonly isTruncated: boolean
  readonly parts: readonly ListedPart[]
  readonly initiator: Owner
  readonly owner: Owner
  readonly storageClass?: string
  readonly checksumAlgorithm?: ChecksumAlgorithm
  readonly checksumType?: ChecksumType
}

/** ListParts' `ListPartsResult`. */
export function listPartsXml(init: ListPartsInit): string {
  return document('ListPartsResult', [
    leaf('Bucket', init.bucket),
    leaf('Key', init.key),
    leaf('UploadId', init.uploadId),
    leaf('PartNumberMarker', init.partNumberMarker ?? 0),
    optionalLeaf('NextPartNumberMarker', init.nextPartNumberMarker),
    leaf('MaxParts', init.maxParts),
    leaf('IsTruncated', init.isTruncated),
    ...init.parts.map((p) =>
      element('Part', [
        leaf('PartNumber', p.partNumber),
        leaf('LastModified', timestamp(p.lastModified)),
        leaf('ETag', quoteEtag(p.etag)),
        leaf('Size', p.size),
        ...checksumElements(p.checksums),
      ]),
    ),
    ownerElement('Initiator', init.initiator),
    ownerElement('Owner', init.owner),
    leaf('StorageClass', init.storageClass ?? DEFAULT_STORAGE_CLASS),
    optionalLeaf('ChecksumAlgorithm', init.checksumAlgorithm),
    optionalLeaf('ChecksumType', init.checksumType),
  ])
}

/** An in-progress multipart upload as ListMultipartUploads shows it. */
export interface ListedUpload {
  readonly key: string
  readonly uploadId: string
  readonly initiator: Owner
  readonly owner: Owner
  readonly storageClass?: string
  readonly initiated: Date
  readonly checksumAlgorithm?: ChecksumAlgorithm
  readonly checksumType?: ChecksumType
}

/** A page of ListMultipartUploads and what its response echoes of the request. */
export interface ListMultipartUploadsInit {
  readonly bucket: string
  /** `''` when none was sent: AWS always writes the four marker elements. */
  readonly keyMarker?: string
  readonly uploadIdMarker?: string
  readonly nextKeyMarker?: string
  readonly nextUploadIdMarker?: string
  /** The `prefix` parameter, echoed when sent (even empty). */
  readonly prefix?: string
  readonly delimiter?: string
  readonly maxUploads: number
  readonly isTruncated: boolean
  readonly encodingType?: EncodingType
  /** In key order, and oldest first within a key. */
  readonly uploads: readonly ListedUpload[]
  readonly commonPrefixes: readonly string[]
}

/**
 * ListMultipartUploads' `ListMultipartUploadsResult`, with `Delimiter` before `Prefix` as in
 * AWS's samples. With `encoding-type=url`, `KeyMarker`, `NextKeyMarker`, `Prefix`,
 * `Delimiter`, every `Key` and every common prefix are URL-encoded; upload IDs are not.
 */
export function listMultipartUploadsXml(init: ListMultipartUploadsInit): string {
  const enc = init.encodingType
  return document('ListMultipartUploadsResult', [
    leaf('Bucket', init.bucket),
    leaf('KeyMarker', encodeKeyForList(init.keyMarker ?? '', enc)),
    leaf('UploadIdMarker', init.uploadIdMarker ?? ''),
    leaf('NextKeyMarker', encodeKeyForList(init.nextKeyMarker ?? '', enc)),
    leaf('NextUploadIdMarker', init.nextUploadIdMarker ?? ''),
    delimiterElement(init.delimiter, enc),
    init.prefix === undefined ? undefined : leaf('Prefix', encodeKeyForList(init.prefix, enc)),
    leaf('MaxUploads', init.maxUploads),
    leaf('IsTruncated', init.isTruncated),
    ...init.uploads.map((u) =>
      element('Upload', [
        leaf('Key', encodeKeyForList(u.key, enc)),
        leaf('UploadId', u.uploadId),
        ownerElement('Initiator', u.initiator),
        ownerElement('Owner', u.owner),
        leaf('StorageClass', u.storageClass ?? DEFAULT_STORAGE_CLASS),
        leaf('Initiated', timestamp(u.initiated)),
        optionalLeaf('ChecksumAlgorithm', u.checksumAlgorithm),
        optionalLeaf('ChecksumType', u.checksumType),
      ]),
    ),
    ...commonPrefixElements(init.commonPrefixes, enc),
    optionalLeaf('EncodingType', enc),
  ])
}

// ---------------------------------------------------------------------------------------------
// Response builders: batch delete

/** A key DeleteObjects removed (or put a delete marker on). */
export interface DeletedEntry {
  readonly key: string
  /** The version the request named, echoed. */
  readonly versionId?: string
  /** The deletion created or removed a delete marker. */
  readonly deleteMarker?: boolean
  /** The delete marker's version ID. */
  readonly deleteMarkerVersionId?: string
}

/** A key DeleteObjects could not delete. */
export interface DeleteErrorEntry {
  readonly key: string
  readonly versionId?: string
  readonly code: string
  readonly message: string
}

/** The outcome of a DeleteObjects request. */
export interface DeleteResultInit {
  readonly deleted: readonly DeletedEntry[]
  readonly errors: readonly DeleteErrorEntry[]
  /** `<Quiet>true</Quiet>`: only errors are reported. */
  readonly quiet: boolean
}

/** DeleteObjects' `DeleteResult`: every `Deleted` (unless quiet), then every `Error`. */
export function deleteResultXml(init: DeleteResultInit): string {
  const deleted = init.quiet
    ? []
    : init.deleted.map((d) =>
        element('Deleted', [
          leaf('Key', d.key),
          optionalLeaf('VersionId', d.versionId),
          d.deleteMarker === true ? leaf('DeleteMarker', true) : undefined,
          optionalLeaf('DeleteMarkerVersionId', d.deleteMarkerVersionId),
        ]),
      )
  const errors = init.errors.map((e) =>
    element('Error', [
      leaf('Key', e.key),
      optionalLeaf('VersionId', e.versionId),
      leaf('Code', e.code),
      leaf('Message', e.message),
    ]),
  )
  return document('DeleteResult', [...deleted, ...errors])
}

// ---------------------------------------------------------------------------------------------
// Request parsing

/** A request body as the HTTP layer hands it over: bytes, or already-decoded text. */
export type XmlBody = Uint8Array | string

// One parsed element: its child elements in order, and its character data (text and CDATA
// sections, with references decoded) concatenated.
interface XmlElement {
  readonly name: string
  readonly children: readonly XmlElement[]
  readonly text: string
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: true,
  // `<s3:Delete xmlns:s3="…">` is the same document as `<Delete xmlns="…">`.
  removeNSPrefix: true,
  // Keys may start or end with spaces; whitespace between elements is skipped below.
  trimValues: false,
  parseTagValue: false,
  // No entity expansion at all: references are decoded by decodeReferences, after the fact.
  processEntities: false,
  htmlEntities: false,
  cdataPropName: '#cdata',
  ignoreDeclaration: true,
  ignorePiTags: true,
})

const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

function malformed(cause?: unknown): S3Error {
  return new S3Error('MalformedXML', undefined, {}, { cause })
}

function bodyText(body: XmlBody): string {
  if (typeof body === 'string') return body.startsWith('\uFEFF') ? body.slice(1) : body
  try {
    // The decoder drops a leading byte-order mark.
    return utf8Decoder.decode(body)
  } catch (err) {
    throw malformed(err)
  }
}

function isEmptyBody(body: XmlBody): boolean {
  return body.length === 0
}

function isBlankBody(body: XmlBody): boolean {
  const text = typeof body === 'string' ? body : bodyText(body)
  return text.trim() === ''
}

// XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
function isXmlChar(cp: number): boolean {
  return (
    cp === 0x09 ||
    cp === 0x0a ||
    cp === 0x0d ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  )
}

function hasNonXmlChar(text: string): boolean {
  for (const ch of text) {
    // A lone surrogate iterates as itself, and fails isXmlChar like the other non-characters.
    if (!isXmlChar(ch.codePointAt(0) ?? 0)) return true
  }
  return false
}

// A DOCTYPE may only appear in the prolog, so the prolog is all that needs looking at: a
// '<!DOCTYPE' later in the document is either inside a comment or CDATA, or not well-formed.
function rejectDoctype(text: string): void {
  let i = 0
  for (;;) {
    while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++
    if (text.startsWith('<?', i)) {
      const end = text.indexOf('?>', i + 2)
      if (end < 0) return
      i = end + 2
    } else if (text.startsWith('<!--', i)) {
      const end = text.indexOf('-->', i + 4)
      if (end < 0) return
      i = end + 3
    } else {
      if (text.slice(i, i + 9).toUpperCase() === '<!DOCTYPE') throw malformed()
      return
    }
  }
}

const PREDEFINED_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
}

const REFERENCE = /&(?:([a-zA-Z]+)|#([0-9]+)|#x([0-9a-fA-F]+));/g

// Decodes the five predefined entities and character references in raw character data. An
// undeclared entity (and with no DTD every other one is undeclared), a bare '&', or a reference
// to a character XML does not allow is not well-formed.
function decodeReferences(raw: string): string {
  if (!raw.includes('&')) return raw
  if (raw.replace(REFERENCE, '').includes('&')) throw malformed()
  return raw.replace(REFERENCE, (_match, name?: string, dec?: string, hex?: string) => {
    if (name !== undefined) {
      const value = PREDEFINED_ENTITIES[name]
      if (value === undefined) throw malformed()
      return value
    }
    const digits = dec ?? hex ?? ''
    // More than 8 significant digits cannot be a code point (and would lose precision).
    if (digits.replace(/^0+/, '').length > 8) throw malformed()
    const cp = Number.parseInt(digits, dec !== undefined ? 10 : 16)
    if (!isXmlChar(cp)) throw malformed()
    return String.fromCodePoint(cp)
  })
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// The name of an ordered node: its one key besides the attribute group ':@'.
function nodeName(node: Record<string, unknown>): string | undefined {
  for (const key of Object.keys(node)) if (key !== ':@') return key
  return undefined
}

function toElement(name: string, nodes: unknown): XmlElement {
  if (!Array.isArray(nodes)) throw malformed()
  const children: XmlElement[] = []
  let text = ''
  for (const node of nodes) {
    if (!isRecord(node)) throw malformed()
    const child = nodeName(node)
    if (child === undefined) continue
    const content = node[child]
    if (child === '#text') {
      text += decodeReferences(String(content))
    } else if (child === '#cdata') {
      // CDATA is literal: its text node is not reference-decoded.
      if (!Array.isArray(content)) throw malformed()
      for (const part of content) {
        if (isRecord(part) && typeof part['#text'] === 'string') text += part['#text']
      }
    } else {
      children.push(toElement(child, content))
    }
  }
  return { name, children, text }
}

/**
 * Parses a request body into its root element, checking that it is well-formed, free of a
 * DOCTYPE and of characters XML does not allow, and has exactly one root named `root`.
 */
function parseDocument(body: XmlBody, root: string): XmlElement {
  const decoded = bodyText(body)
  rejectDoctype(decoded)
  if (hasNonXmlChar(decoded)) throw malformed()
  // XML end-of-line handling (§2.11): a literal CR is never character data, `&#13;` is.
  const text = decoded.replace(/\r\n?/g, '\n')
  if (XMLValidator.validate(text) !== true) throw malformed()
  let nodes: unknown
  try {
    nodes = parser.parse(text)
  } catch (err) {
    throw malformed(err)
  }
  if (!Array.isArray(nodes)) throw malformed()
  const roots: XmlElement[] = []
  for (const node of nodes) {
    if (!isRecord(node)) throw malformed()
    const name = nodeName(node)
    if (name === undefined) continue
    if (name === '#text') {
      if (String(node[name]).trim() !== '') throw malformed()
      continue
    }
    if (name === '#cdata') throw malformed()
    roots.push(toElement(name, node[name]))
  }
  const [only] = roots
  if (only === undefined || roots.length !== 1 || only.name !== root) throw malformed()
  return only
}

// How often a child element may appear.
type Occurs = 'one' | 'optional' | 'many'

/**
 * The children of an element that may hold only elements, grouped by name, after checking them
 * against `schema`: no character data besides whitespace, no unknown element, no repeated
 * singleton, no missing required one.
 */
function childrenOf(
  el: XmlElement,
  schema: Readonly<Record<string, Occurs>>,
): Map<string, XmlElement[]> {
  if (el.text.trim() !== '') throw malformed()
  const groups = new Map<string, XmlElement[]>()
  for (const child of el.children) {
    const occurs = Object.hasOwn(schema, child.name) ? schema[child.name] : undefined
    if (occurs === undefined) throw malformed()
    const group = groups.get(child.name)
    if (group === undefined) groups.set(child.name, [child])
    else if (occurs === 'many') group.push(child)
    else throw malformed()
  }
  for (const [name, occurs] of Object.entries(schema)) {
    if (occurs === 'one' && !groups.has(name)) throw malformed()
  }
  return groups
}

// The character data of an element that may hold only text.
function textOf(el: XmlElement): string {
  if (el.children.length > 0) throw malformed()
  return el.text
}

function optionalText(groups: Map<string, XmlElement[]>, name: string): string | undefined {
  const el = groups.get(name)?.[0]
  return el === undefined ? undefined : textOf(el)
}

function requiredText(groups: Map<string, XmlElement[]>, name: string): string {
  const value = optionalText(groups, name)
  if (value === undefined) throw malformed()
  return value
}

// xs:boolean, whose lexical space collapses whitespace.
function parseBoolean(value: string): boolean {
  const v = value.trim()
  if (v === 'true' || v === '1') return true
  if (v === 'false' || v === '0') return false
  throw malformed()
}

// A non-negative xs:int/xs:long, whitespace collapsed.
function parseCount(value: string): number {
  const v = value.trim()
  if (!/^[0-9]{1,15}$/.test(v)) throw malformed()
  return Number(v)
}

/** What a CreateBucket body asks for. */
export interface CreateBucketConfiguration {
  /** As sent, possibly `''`; absent when the body named none. Comparing it is the caller's. */
  readonly locationConstraint?: string
}

/**
 * Parses CreateBucket's optional `CreateBucketConfiguration`. An empty (or blank) body is
 * allowed and asks for nothing. `Location`, `Bucket` and `Tags` (directory buckets, bucket tags
 * at creation) are accepted and not interpreted.
 */
export function parseCreateBucketConfiguration(body: XmlBody): CreateBucketConfiguration {
  if (isEmptyBody(body) || isBlankBody(body)) return {}
  const root = parseDocument(body, 'CreateBucketConfiguration')
  const groups = childrenOf(root, {
    LocationConstraint: 'optional',
    Location: 'optional',
    Bucket: 'optional',
    Tags: 'optional',
  })
  const locationConstraint = optionalText(groups, 'LocationConstraint')
  return locationConstraint === undefined ? {} : { locationConstraint }
}

/** What a PutBucketVersioning body asks for. */
export interface VersioningConfiguration {
  readonly status: VersioningStatus
  readonly mfaDelete?: MfaDeleteStatus
}

/**
 * Parses PutBucketVersioning's `VersioningConfiguration`. `Status` must be `Enabled` or
 * `Suspended` and `MfaDelete`, when present, `Enabled` or `Disabled`; anything else is
 * MalformedXML, as AWS answers.
 */
export function parseVersioningConfiguration(body: XmlBody): VersioningConfiguration {
  if (isEmptyBody(body)) throw new S3Error('MissingRequestBodyError')
  const root = parseDocument(body, 'VersioningConfiguration')
  const groups = childrenOf(root, { Status: 'optional', MfaDelete: 'optional' })
  const status = optionalText(groups, 'Status')
  if (status !== 'Enabled' && status !== 'Suspended') throw malformed()
  const mfaDelete = optionalText(groups, 'MfaDelete')
  if (mfaDelete === undefined) return { status }
  if (mfaDelete !== 'Enabled' && mfaDelete !== 'Disabled') throw malformed()
  return { status, mfaDelete }
}

/** Limits for {@link parseTagging}. */
export interface ParseTaggingOptions {
  /** Most tags allowed: {@link MAX_OBJECT_TAGS} for objects, {@link MAX_BUCKET_TAGS} for buckets. */
  readonly maxTags: number
  /** Which resource the tags are for; only changes the error message. Defaults to `object`. */
  readonly resource?: 'object' | 'bucket'
}

function invalidTag(message: string): S3Error {
  return new S3Error('InvalidTag', message)
}

/**
 * Parses PutObjectTagging's and PutBucketTagging's `Tagging` into its tags, in the order sent.
 * An empty `TagSet` is allowed (it removes every tag). Tag rules are AWS's: at most `maxTags`
 * tags, keys of 1–128 characters not starting with `aws:`, values of 0–256 characters, no key
 * twice; breaking one is InvalidTag.
 */
export function parseTagging(body: XmlBody, options: ParseTaggingOptions): Tag[] {
  if (isEmptyBody(body)) throw new S3Error('MissingRequestBodyError')
  const root = parseDocument(body, 'Tagging')
  const tagSet = childrenOf(root, { TagSet: 'one' }).get('TagSet')?.[0]
  if (tagSet === undefined) throw malformed()
  const tagElements = childrenOf(tagSet, { Tag: 'many' }).get('Tag') ?? []
  const tags = tagElements.map((el): Tag => {
    const fields = childrenOf(el, { Key: 'one', Value: 'one' })
    return { key: requiredText(fields, 'Key'), value: requiredText(fields, 'Value') }
  })
  checkTags(tags, options)
  return tags
}

/**
 * AWS's tag rules, for a Tagging document and for the `x-amz-tagging` header alike: at most
 * `maxTags` tags, keys of 1–128 characters not starting with `aws:`, values of 0–256
 * characters, no key twice; breaking one is InvalidTag.
 */
export function checkTags(tags: readonly Tag[], options: ParseTaggingOptions): void {
  if (tags.length > options.maxTags) {
    throw invalidTag(
      options.resource === 'bucket'
        ? `Bucket tag count cannot be greater than ${options.maxTags}`
        : `Object tags cannot be greater than ${options.maxTags}`,
    )
  }
  const seen = new Set<string>()
  for (const { key, value } of tags) {
    // AWS counts Unicode characters, not UTF-16 code units.
    const keyChars = [...key].length
    if (keyChars === 0) throw invalidTag('The TagKey you have provided is invalid')
    if (keyChars > MAX_TAG_KEY_CHARS) {
      throw invalidTag(`The TagKey you have provided is too long, max ${MAX_TAG_KEY_CHARS}`)
    }
    if ([...value].length > MAX_TAG_VALUE_CHARS) {
      throw invalidTag(`The TagValue you have provided is too long, max ${MAX_TAG_VALUE_CHARS}`)
    }
    if (key.toLowerCase().startsWith('aws:')) {
      throw invalidTag('Your TagKey cannot be prefixed with aws:')
    }
    if (seen.has(key)) throw invalidTag('Cannot provide multiple Tags with the same key')
    seen.add(key)
  }
}

/** One key (or version) a DeleteObjects body names. */
export interface DeleteObjectEntry {
  readonly key: string
  readonly versionId?: string
  /** Conditional delete: only if the object's ETag is this (as sent). */
  readonly etag?: string
  /** Conditional delete: only if the object was last modified at this time. */
  readonly lastModifiedTime?: Date
  /** Conditional delete: only if the object has this size. */
  readonly size?: number
}

/** What a DeleteObjects body asks for. */
export interface DeleteRequest {
  readonly quiet: boolean
  readonly objects: readonly DeleteObjectEntry[]
}

/**
 * Parses DeleteObjects' `Delete`: 1 to 1000 `Object`s, each with a `Key`, and an optional
 * `Quiet`. No object, or more than 1000, is MalformedXML, as AWS answers. Keys are returned
 * exactly as sent (an empty key is the caller's to report per object).
 */
export function parseDelete(body: XmlBody): DeleteRequest {
  if (isEmptyBody(body)) throw new S3Error('MissingRequestBodyError')
  const root = parseDocument(body, 'Delete')
  const groups = childrenOf(root, { Object: 'many', Quiet: 'optional' })
  const objectElements = groups.get('Object') ?? []
  if (objectElements.length === 0 || objectElements.length > MAX_DELETE_OBJECTS) {
    throw malformed()
  }
  const quietText = optionalText(groups, 'Quiet')
  const quiet = quietText === undefined ? false : parseBoolean(quietText)
  const objects = objectElements.map((el): DeleteObjectEntry => {
    const fields = childrenOf(el, {
      Key: 'one',
      VersionId: 'optional',
      ETag: 'optional',
      LastModifiedTime: 'optional',
      Size: 'optional',
    })
    const entry: {
      key: string
      versionId?: string
      etag?: string
      lastModifiedTime?: Date
      size?: number
    } = { key: requiredText(fields, 'Key') }
    const versionId = optionalText(fields, 'VersionId')
    if (versionId !== undefined) entry.versionId = versionId
    const etag = optionalText(fields, 'ETag')
    if (etag !== undefined) entry.etag = etag
    const lastModified = optionalText(fields, 'LastModifiedTime')
    if (lastModified !== undefined) {
      const date = new Date(lastModified.trim())
      if (Number.isNaN(date.getTime())) throw malformed()
      entry.lastModifiedTime = date
    }
    const size = optionalText(fields, 'Size')
    if (size !== undefined) entry.size = parseCount(size)
    return entry
  })
  return { quiet, objects }
}

/** One part a CompleteMultipartUpload body names. */
export interface CompletedPart {
  readonly partNumber: number
  /** As sent, with or without quotes; normalising it is the caller's. */
  readonly etag: string
  /** The part checksums the client sent, by algorithm. */
  readonly checksums?: Checksums
}

/** What a CompleteMultipartUpload body asks for. */
export interface CompleteMultipartUploadRequest {
  readonly parts: readonly CompletedPart[]
}

const PART_SCHEMA: Readonly<Record<string, Occurs>> = {
  PartNumber: 'one',
  ETag: 'one',
  ...Object.fromEntries(CHECKSUM_ALGORITHMS.map((a) => [`Checksum${a}`, 'optional' as const])),
}

/**
 * Parses CompleteMultipartUpload's `CompleteMultipartUpload`. No part is MalformedXML; a part
 * number outside 1–10000 cannot name an uploaded part (InvalidPart); part numbers that do not
 * strictly ascend are InvalidPartOrder.
 */
export function parseCompleteMultipartUpload(body: XmlBody): CompleteMultipartUploadRequest {
  if (isEmptyBody(body)) throw new S3Error('MissingRequestBodyError')
  const root = parseDocument(body, 'CompleteMultipartUpload')
  const partElements = childrenOf(root, { Part: 'many' }).get('Part') ?? []
  if (partElements.length === 0) throw malformed()
  const parts = partElements.map((el): CompletedPart => {
    const fields = childrenOf(el, PART_SCHEMA)
    const partNumber = parseCount(requiredText(fields, 'PartNumber'))
    const etag = requiredText(fields, 'ETag')
    const checksums: Checksums = {}
    let any = false
    for (const a of CHECKSUM_ALGORITHMS) {
      const value = optionalText(fields, `Checksum${a}`)
      if (value !== undefined) {
        checksums[a] = value
        any = true
      }
    }
    return any ? { partNumber, etag, checksums } : { partNumber, etag }
  })
  let previous = 0
  for (const { partNumber } of parts) {
    if (partNumber < 1 || partNumber > MAX_PART_NUMBER) throw new S3Error('InvalidPart')
    if (partNumber <= previous) throw new S3Error('InvalidPartOrder')
    previous = partNumber
  }
  return { parts }
}

// ---------------------------------------------------------------------------------------------
// Access control: ACLs, object ownership, public access block, policy status

/** An ACL permission, as S3 names it. */
export type AclPermission = 'FULL_CONTROL' | 'READ' | 'WRITE' | 'READ_ACP' | 'WRITE_ACP'

/** The permissions an ACL may grant, in the order AWS documents them. */
export const ACL_PERMISSIONS: readonly AclPermission[] = [
  'FULL_CONTROL',
  'READ',
  'WRITE',
  'READ_ACP',
  'WRITE_ACP',
]

/** A grantee as an ACL document names it. */
export type XmlGrantee =
  | { readonly type: 'CanonicalUser'; readonly id: string; readonly displayName?: string }
  | { readonly type: 'Group'; readonly uri: string }
  | { readonly type: 'AmazonCustomerByEmail'; readonly emailAddress: string }

/** One grant of an ACL document. */
export interface XmlGrant {
  readonly grantee: XmlGrantee
  readonly permission: AclPermission
}

/** An `AccessControlPolicy`: the owner and the grants. */
export interface AccessControlPolicy {
  readonly owner?: Owner
  readonly grants: readonly XmlGrant[]
}

const XSI_NAMESPACE = 'http://www.w3.org/2001/XMLSchema-instance'

function granteeElement(g: XmlGrantee): XmlNode {
  const children: Child[] =
    g.type === 'CanonicalUser'
      ? [leaf('ID', g.id), optionalLeaf('DisplayName', g.displayName)]
      : g.type === 'Group'
        ? [leaf('URI', g.uri)]
        : [leaf('EmailAddress', g.emailAddress)]
  // The ordered builder takes attributes from the ':@' group of a node.
  return {
    Grantee: children.filter((c): c is XmlNode => c !== undefined),
    ':@': { '@_xmlns:xsi': XSI_NAMESPACE, '@_xsi:type': g.type },
  } as unknown as XmlNode
}

/** GetBucketAcl's and GetObjectAcl's `AccessControlPolicy`, in AWS's element order. */
export function accessControlPolicyXml(init: {
  owner: Owner
  grants: readonly XmlGrant[]
}): string {
  return document('AccessControlPolicy', [
    ownerElement('Owner', init.owner),
    element(
      'AccessControlList',
      init.grants.map((g) =>
        element('Grant', [granteeElement(g.grantee), leaf('Permission', g.permission)]),
      ),
    ),
  ])
}

/** The object ownership settings S3 knows. */
export type ObjectOwnership = 'BucketOwnerEnforced' | 'BucketOwnerPreferred' | 'ObjectWriter'

export const OBJECT_OWNERSHIPS: readonly ObjectOwnership[] = [
  'BucketOwnerEnforced',
  'BucketOwnerPreferred',
  'ObjectWriter',
]

/** GetBucketOwnershipControls' `OwnershipControls`. */
export function ownershipControlsXml(ownership: ObjectOwnership): string {
  return document('OwnershipControls', [element('Rule', [leaf('ObjectOwnership', ownership)])])
}

/** The four settings of a bucket's public access block. */
export interface PublicAccessBlock {
  readonly BlockPublicAcls: boolean
  readonly IgnorePublicAcls: boolean
  readonly BlockPublicPolicy: boolean
  readonly RestrictPublicBuckets: boolean
}

const PUBLIC_ACCESS_BLOCK_FIELDS: readonly (keyof PublicAccessBlock)[] = [
  'BlockPublicAcls',
  'IgnorePublicAcls',
  'BlockPublicPolicy',
  'RestrictPublicBuckets',
]

/** GetPublicAccessBlock's `PublicAccessBlockConfiguration`. */
export function publicAccessBlockXml(pab: PublicAccessBlock): string {
  return document(
    'PublicAccessBlockConfiguration',
    PUBLIC_ACCESS_BLOCK_FIELDS.map((f) => leaf(f, pab[f])),
  )
}

/** GetBucketPolicyStatus' `PolicyStatus`. */
export function policyStatusXml(isPublic: boolean): string {
  return document('PolicyStatus', [leaf('IsPublic', isPublic)])
}

function malformedAcl(cause?: unknown): S3Error {
  return new S3Error('MalformedACLError', undefined, {}, { cause })
}

/**
 * Parses PutBucketAcl's and PutObjectAcl's `AccessControlPolicy`. The grantee's type is told by
 * the element it carries (`ID`, `URI` or `EmailAddress`), which is what its `xsi:type` must
 * say; anything else, or a permission S3 does not know, is MalformedACLError, as AWS answers.
 */
export function parseAccessControlPolicy(body: XmlBody): AccessControlPolicy {
  if (isEmptyBody(body) || isBlankBody(body)) throw new S3Error('MissingRequestBodyError')
  try {
    const root = parseDocument(body, 'AccessControlPolicy')
    const groups = childrenOf(root, { Owner: 'optional', AccessControlList: 'optional' })
    const ownerEl = groups.get('Owner')?.[0]
    let owner: Owner | undefined
    if (ownerEl !== undefined) {
      const f = childrenOf(ownerEl, { ID: 'one', DisplayName: 'optional' })
      const displayName = optionalText(f, 'DisplayName')
      owner = { id: requiredText(f, 'ID').trim(), ...(displayName ? { displayName } : {}) }
    }
    const list = groups.get('AccessControlList')?.[0]
    const grantEls = list ? (childrenOf(list, { Grant: 'many' }).get('Grant') ?? []) : []
    const grants = grantEls.map((el): XmlGrant => {
      const f = childrenOf(el, { Grantee: 'one', Permission: 'one' })
      const permission = requiredText(f, 'Permission').trim() as AclPermission
      if (!ACL_PERMISSIONS.includes(permission)) throw malformedAcl()
      const g = childrenOf(f.get('Grantee')![0]!, {
        ID: 'optional',
        DisplayName: 'optional',
        URI: 'optional',
        EmailAddress: 'optional',
      })
      const id = optionalText(g, 'ID')?.trim()
      const uri = optionalText(g, 'URI')?.trim()
      const email = optionalText(g, 'EmailAddress')?.trim()
      if ([id, uri, email].filter((x) => x !== undefined).length !== 1) throw malformedAcl()
      if (id !== undefined) return { grantee: { type: 'CanonicalUser', id }, permission }
      if (uri !== undefined) return { grantee: { type: 'Group', uri }, permission }
      return { grantee: { type: 'AmazonCustomerByEmail', emailAddress: email! }, permission }
    })
    return { ...(owner ? { owner } : {}), grants }
  } catch (err) {
    if (err instanceof S3Error && err.code === 'MalformedXML') throw malformedAcl(err)
    throw err
  }
}

/** Parses PutBucketOwnershipControls' `OwnershipControls`: exactly one rule S3 knows. */
export function parseOwnershipControls(body: XmlBody): ObjectOwnership {
  if (isEmptyBody(body)) throw new S3Error('MissingRequestBodyError')
  const root = parseDocument(body, 'OwnershipControls')
  const rules = childrenOf(root, { Rule: 'many' }).get('Rule') ?? []
  if (rules.length !== 1) throw malformed()
  const value = requiredText(childrenOf(rules[0]!, { ObjectOwnership: 'one' }), 'ObjectOwnership')
  if (!(OBJECT_OWNERSHIPS as readonly string[]).includes(value.trim())) throw malformed()
  return value.trim() as ObjectOwnership
}

/** Parses PutPublicAccessBlock's `PublicAccessBlockConfiguration`; absent settings are false. */
export function parsePublicAccessBlock(body: XmlBody): PublicAccessBlock {
  if (isEmptyBody(body)) throw new S3Error('MissingRequestBodyError')
  const root = parseDocument(body, 'PublicAccessBlockConfiguration')
  const groups = childrenOf(
    root,
    Object.fromEntries(PUBLIC_ACCESS_BLOCK_FIELDS.map((f) => [f, 'optional' as const])),
  )
  const flag = (f: keyof PublicAccessBlock) => {
    const v = optionalText(groups, f)
    return v === undefined ? false : parseBoolean(v)
  }
  return {
    BlockPublicAcls: flag('BlockPublicAcls'),
    IgnorePublicAcls: flag('IgnorePublicAcls'),
    BlockPublicPolicy: flag('BlockPublicPolicy'),
    RestrictPublicBuckets: flag('RestrictPublicBuckets'),
  }
}
