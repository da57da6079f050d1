/**
 * The records nodes store and gateways read: object versions, buckets, multipart uploads and
 * parts. Encoded with msgpack on the wire and on disk; one copy of a version record lives on
 * every drive of the object's erasure set, with that drive's shard index.
 */

/**
 * A hybrid logical clock timestamp: milliseconds since the epoch × 4096 + a counter, so it
 * stays a safe integer (below 2^53) and orders versions written in the same millisecond.
 */
export type Hlc = number

/** Counter values per millisecond in an {@link Hlc}. */
export const HLC_COUNTER_SPAN = 4096

/** Milliseconds since the epoch of an HLC timestamp. */
export function hlcMillis(t: Hlc): number {
  return Math.floor(t / HLC_COUNTER_SPAN)
}

/**
 * What a listing shows of a version (ListRange asked `brief`): no data layout, user metadata,
 * tags or ACL, which a listing neither shows nor needs to decide what it lists.
 */
export type ListedVersion = Pick<
  VersionRecord,
  | 'key'
  | 'versionId'
  | 'modTime'
  | 'metaTime'
  | 'size'
  | 'etag'
  | 'deleteMarker'
  | 'checksums'
  | 'checksumType'
  | 'owner'
>

/** The listing's view of a version record. */
export function listedVersion(r: VersionRecord): ListedVersion {
  const v: ListedVersion = {
    key: r.key,
    versionId: r.versionId,
    modTime: r.modTime,
    size: r.size,
    etag: r.etag,
    deleteMarker: r.deleteMarker,
  }
  if (r.metaTime !== undefined) v.metaTime = r.metaTime
  if (r.checksums !== undefined) v.checksums = r.checksums
  if (r.checksumType !== undefined) v.checksumType = r.checksumType
  if (r.owner !== undefined) v.owner = r.owner
  return v
}

/**
 * Whether record `a` is a later state of its key than `b`: a newer version, or the same version
 * (same modTime) after a later change of its tags or ACL.
 */
export function laterRecord(a: ListedVersion, b: ListedVersion): boolean {
  return a.modTime > b.modTime || (a.modTime === b.modTime && (a.metaTime ?? 0) > (b.metaTime ?? 0))
}

/** Of several drives' records of one version, the current one: the latest metadata change. */
export function latestMeta<T extends ListedVersion>(records: readonly T[]): T {
  let best = records[0]!
  for (const r of records) if ((r.metaTime ?? 0) > (best.metaTime ?? 0)) best = r
  return best
}

/** How an object's data is erasure coded, and which shard this copy of the record is for. */
export interface ErasureInfo {
  k: number
  m: number
  /** Bytes of object data per block. */
  blockSize: number
  /** distribution[i] = slot (drive index within the set) that holds shard i. */
  distribution: number[]
  /** The shard index this drive holds (its record copy differs from others only here and in `inline`). */
  index: number
}

export interface PartInfo {
  number: number
  /** Bytes of object data in this part. */
  size: number
  etag: string
  /** The part's flexible checksums, base64 (multipart objects). */
  checksums?: Record<string, string>
}

/** An S3 account as ACLs name it: canonical user id (64 hex) and display name. */
export interface AclOwner {
  id: string
  displayName: string
}

/** An ACL permission, as S3 names it. */
export type AclPermission = 'FULL_CONTROL' | 'READ' | 'WRITE' | 'READ_ACP' | 'WRITE_ACP'

/**
 * One grant of an S3 ACL. Grants by e-mail address are resolved to canonical users when they
 * are written, so only users (by canonical id) and groups (by URI) are stored.
 */
export interface AclGrant {
  grantee:
    | { type: 'CanonicalUser'; id: string; displayName?: string }
    | { type: 'Group'; uri: string }
  permission: AclPermission
}

export interface VersionRecord {
  bucket: string
  key: string
  /** 'null' for objects written while versioning was never enabled. */
  versionId: string
  modTime: Hlc
  /**
   * When the version's tags or ACL last changed (an HLC); absent while they never did. Such a
   * change keeps modTime, so this orders the changes: of two records of one version, the one
   * with the later metaTime is current, on reads, on the drives and in healing.
   */
  metaTime?: Hlc
  size: number
  etag: string
  /** S3 flexible checksums by algorithm (CRC32, CRC32C, SHA1, SHA256, CRC64NVME), base64. */
  checksums?: Record<string, string>
  /** How a multipart object's checksum was made: from the part checksums, or of the whole. */
  checksumType?: 'COMPOSITE' | 'FULL_OBJECT'
  contentType?: string
  /** x-amz-meta-* and standard headers kept with the object, lower-case names. */
  userMeta?: Record<string, string>
  /** Object tags (S3 object tagging), at most 10. */
  tags?: Record<string, string>
  erasure: ErasureInfo
  parts: PartInfo[]
  /** Folder under data/<bucket>/<2 hex>/<object hash>/ holding part.<N> files; absent when inline. */
  dataDir?: string
  deleteMarker: boolean
  /** This drive's shard file bytes for small objects (no data file at all). */
  inline?: Uint8Array
  /** The object's owner when it is not the bucket's owner (ObjectWriter buckets). */
  owner?: AclOwner
  /** The object's ACL when it is not the default (the owner's FULL_CONTROL alone). */
  acl?: AclGrant[]
}

export interface BucketRecord {
  name: string
  /** Project the bucket belongs to (identity milestone); empty for now. */
  project: string
  created: Hlc
  versioning: 'unversioned' | 'enabled' | 'suspended'
  /** Settings added by later features (tagging, lifecycle, policy, …), msgpack-friendly values. */
  settings?: Record<string, unknown>
}

/** When a bucket's record last changed (its settings' `updated` stamp, or its creation). */
export function bucketStamp(b: BucketRecord): Hlc {
  const u = b.settings?.updated
  return typeof u === 'number' ? u : b.created
}

export interface UploadRecord {
  bucket: string
  key: string
  uploadId: string
  initiated: Hlc
  contentType?: string
  userMeta?: Record<string, string>
  checksumAlgorithm?: string
  checksumType?: 'COMPOSITE' | 'FULL_OBJECT'
  tags?: Record<string, string>
  /** Folder under the object's path that receives the part files (part.<N>). */
  dataDir?: string
  erasure: ErasureInfo
  /** Who started the upload (Initiator), when it is not the bucket's owner. */
  initiator?: AclOwner
  /** The completed object's owner and ACL, as for {@link VersionRecord}. */
  owner?: AclOwner
  acl?: AclGrant[]
  /**
   * Set by CompleteUpload: this drive wrote the version of that completion and keeps the
   * upload, its part records and files until the gateway knows whether the completion reached
   * its write quorum (FinishUpload drops them, UndoCompletion takes the version back). Such an
   * upload is no longer in progress: ListUploads leaves it out, GetUpload reports the mark (a
   * gateway that finds one its own gateway left, because it died, settles it or takes it back).
   * `etag` and `checksums` are the completed object's, for the answer to a retried Complete
   * (absent in marks written by earlier releases: GetUpload then reads them from the version).
   */
  completing?: {
    versionId: string
    modTime: Hlc
    etag?: string
    checksums?: Record<string, string>
  }
  /** A completion (its modTime) a gateway undid: should it arrive late, it is refused. */
  undone?: Hlc
  /**
   * Set by FinishUpload: the upload was completed as this version (its part records are gone).
   * Kept for a day, so that a client retrying its CompleteMultipartUpload (its answer was lost)
   * gets the same answer, as from S3, not NoSuchUpload.
   */
  completed?: { versionId: string; modTime: Hlc; etag: string; checksums?: Record<string, string> }
}

export interface PartRecord {
  bucket: string
  key: string
  uploadId: string
  number: number
  size: number
  etag: string
  modTime: Hlc
  checksums?: Record<string, string>
  /** Folder holding this part's shard file (part.<number>). */
  dataDir: string
  erasure: ErasureInfo
  inline?: Uint8Array
}
