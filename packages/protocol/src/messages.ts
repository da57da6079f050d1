/**
 * Every RPC between gateways and nodes (and node to node, for healing), declared once with its
 * request and response types. The gateway calls `client.call(PutShard, req, { body })`; the
 * node registers `server.handle(PutShard, async (req, ctx) => …)`. IDs are never reused: a
 * change in meaning gets a new ID.
 */
import type {
  BucketRecord,
  Hlc,
  ListedVersion,
  PartRecord,
  UploadRecord,
  VersionRecord,
} from './records.ts'
import { defineRpc } from './rpc.ts'

/** A drive by its place in the erasure layout. */
export interface DriveRef {
  pool: number
  set: number
  slot: number
}

/** Where a shard file lives on a drive. */
export interface ShardRef extends DriveRef {
  bucket: string
  key: string
  dataDir: string
  /** Part number (1 for plain objects). */
  part: number
}

export interface DriveInfo extends DriveRef {
  path: string
  driveId: string
  online: boolean
  totalBytes: number
  freeBytes: number
  usedBytes: number
  /** Whether the node writes the drive's shard files with O_DIRECT (online drives). */
  directIo?: boolean
  /**
   * The drive's metadata point lookups since its node started: on the event loop (`sync`),
   * through the thread pool (`async`, after a slow one), and synchronous ones that were slow
   * (`slow`: they read from the disk).
   */
  metaLookups?: { sync: number; async: number; slow: number }
  /** Why the drive is offline, when it is. */
  error?: string
}

// Health and drives ----------------------------------------------------------------------------

export const Health = defineRpc<
  Record<string, never>,
  { nodeId: string; uptimeMs: number; drivesOnline: number; drives: number }
>({ id: 0x0001, name: 'Health' })

export const GetDriveInfo = defineRpc<Record<string, never>, { drives: DriveInfo[] }>({
  id: 0x0002,
  name: 'GetDriveInfo',
})

// Object data ---------------------------------------------------------------------------------

/**
 * Streams one shard file into the drive's tmp folder and fsyncs it. Nothing is visible until
 * CommitVersion (or CommitPart) names the same `tmpId`. `size` is the exact byte count.
 */
export const PutShard = defineRpc<ShardRef & { tmpId: string; size: number }, { bytes: number }>({
  id: 0x0101,
  name: 'PutShard',
  requestBody: true,
})

/**
 * Makes a version visible on one drive: moves tmp/<tmpId> (if given) to the object's data dir,
 * then writes the version record durably. Replaces an existing 'null' version of the key
 * unless that one is newer (by modTime).
 */
export const CommitVersion = defineRpc<
  DriveRef & { record: VersionRecord; tmpId?: string },
  {
    replaced?: string
    /**
     * The drive already holds something newer (a later 'null' version) or a client deleted
     * this very version: nothing was written and the tmp data was dropped.
     */
    superseded?: boolean
  }
>({ id: 0x0102, name: 'CommitVersion' })

/** Drops a write that will not be committed. */
export const AbortWrite = defineRpc<DriveRef & { tmpId: string }, { removed: boolean }>({
  id: 0x0103,
  name: 'AbortWrite',
})

/** The versions of one key on one drive, newest first (or one, by id). */
export const ReadVersions = defineRpc<
  DriveRef & { bucket: string; key: string; versionId?: string; limit?: number },
  { versions: VersionRecord[] }
>({ id: 0x0104, name: 'ReadVersions' })

/**
 * Streams blocks first..last of a shard file, every chunk verified on the node (the framed
 * bytes, headers included, as stored). `size` is the part's object-data size and `k`,
 * `blockSize` its erasure parameters, so the node knows the chunk boundaries.
 */
export const ReadShard = defineRpc<
  ShardRef & { size: number; k: number; blockSize: number; firstBlock: number; lastBlock: number },
  { bytes: number }
>({ id: 0x0105, name: 'ReadShard', responseBody: true })

/** Removes a version record from a drive and moves its data to trash. */
/**
 * Removes a version (or remembers its delete where the drive does not hold it). With `modTime`,
 * only that write of it: a gateway undoing a write that missed its quorum must not remove a
 * newer write under the same id (a 'null' overwrite), should the undo arrive late.
 */
export const DeleteVersion = defineRpc<
  DriveRef & { bucket: string; key: string; versionId: string; modTime?: Hlc },
  { existed: boolean }
>({ id: 0x0106, name: 'DeleteVersion' })

export interface ListRequest extends DriveRef {
  bucket: string
  prefix?: string
  delimiter?: string
  limit: number
  /** Latest versions: keys after this one. */
  startAfter?: string
  /** All versions (ListObjectVersions) instead of the latest of each key. */
  versions?: boolean
  keyMarker?: string
  versionIdMarker?: string
  /** Entries with only what a listing shows ({@link ListedVersion}); see {@link ListBrief}. */
  brief?: boolean
}

export interface ListResponse<E = VersionRecord> {
  entries: E[]
  commonPrefixes: string[]
  isTruncated: boolean
  nextMarker?: string
  nextKeyMarker?: string
  nextVersionIdMarker?: string
}

export const ListRange = defineRpc<ListRequest, ListResponse>({ id: 0x0107, name: 'ListRange' })

/**
 * ListRange asked `brief`: the gateways' listings, which show a few fields of each version and
 * pack, send and unpack nothing else (the data layout, user metadata, tags, ACL). A node that
 * does not know the flag answers full records, which hold those fields too.
 */
export const ListBrief = defineRpc<ListRequest & { brief: true }, ListResponse<ListedVersion>>({
  id: 0x0107,
  name: 'ListRange',
})

// Buckets --------------------------------------------------------------------------------------

export const PutBucket = defineRpc<
  DriveRef & { record: BucketRecord; ifAbsent?: boolean },
  { created: boolean }
>({
  id: 0x0201,
  name: 'PutBucket',
})
export const GetBucket = defineRpc<DriveRef & { name: string }, { record?: BucketRecord }>({
  id: 0x0202,
  name: 'GetBucket',
})
export const DeleteBucket = defineRpc<DriveRef & { name: string }, { existed: boolean }>({
  id: 0x0203,
  name: 'DeleteBucket',
})
export const ListBuckets = defineRpc<DriveRef, { buckets: BucketRecord[] }>({
  id: 0x0204,
  name: 'ListBuckets',
})

// Multipart ------------------------------------------------------------------------------------

export const PutUpload = defineRpc<DriveRef & { record: UploadRecord }, Record<string, never>>({
  id: 0x0301,
  name: 'PutUpload',
})
/**
 * The upload while it is in progress (`record`). Once completed and settled, `completed` says
 * as what (for a retried CompleteMultipartUpload); while a completion is unsettled,
 * `completing` names it (with its ETag and checksums), so that a gateway can settle or take
 * back one whose own gateway died before it could.
 */
export const GetUpload = defineRpc<
  DriveRef & { bucket: string; key: string; uploadId: string },
  {
    record?: UploadRecord
    completed?: NonNullable<UploadRecord['completed']>
    completing?: NonNullable<UploadRecord['completing']>
  }
>({ id: 0x0302, name: 'GetUpload' })
/**
 * Removes an upload, its part records and their data (to trash); the parts go even when the
 * drive has no record of the upload (it missed the CreateMultipartUpload). `existed`: the
 * upload record was there.
 */
export const DeleteUpload = defineRpc<
  DriveRef & { bucket: string; key: string; uploadId: string },
  { existed: boolean }
>({ id: 0x0303, name: 'DeleteUpload' })
export const ListUploads = defineRpc<
  DriveRef & {
    bucket: string
    prefix?: string
    keyMarker?: string
    uploadIdMarker?: string
    limit: number
  },
  { uploads: UploadRecord[]; isTruncated: boolean }
>({ id: 0x0304, name: 'ListUploads' })
/** Makes a part visible: moves tmp/<tmpId> to the part's data dir and writes the part record. */
export const CommitPart = defineRpc<
  DriveRef & { record: PartRecord; tmpId?: string },
  Record<string, never>
>({
  id: 0x0305,
  name: 'CommitPart',
})
export const ListParts = defineRpc<
  DriveRef & {
    bucket: string
    key: string
    uploadId: string
    partNumberMarker?: number
    limit?: number
  },
  { parts: PartRecord[]; isTruncated: boolean }
>({ id: 0x0306, name: 'ListParts' })

/**
 * Turns an upload into an object version without copying data: writes `record` (whose parts
 * and dataDir name the upload's part files) and marks the upload `completing`, keeping it, its
 * part records and files until the gateway says FinishUpload (the completion reached its write
 * quorum) or UndoCompletion (it did not). Replaces an existing 'null' version unless that one is
 * newer (by modTime). A completion of the same upload that came earlier and was never undone
 * here loses its version record (the data is the same). Refused when the gateway already undid
 * this completion (UndoCompletion arrived first).
 */
export const CompleteUpload = defineRpc<
  DriveRef & { uploadId: string; record: VersionRecord },
  {
    replaced?: string
    /**
     * The drive already holds something newer (a later 'null' version) or a client deleted
     * this very version: no version was written (FinishUpload then drops the upload's files).
     */
    superseded?: boolean
  }
>({ id: 0x0307, name: 'CompleteUpload' })

/**
 * Asks whether the drive could complete the upload with `record` (CompleteUpload's own checks:
 * the upload is there, and every chosen part, as chosen, with its files) without changing
 * anything. A gateway asks every drive first and completes only once a write quorum can: a
 * completion refused below quorum then leaves no version behind and the upload as it was.
 */
export const CheckUpload = defineRpc<
  DriveRef & { uploadId: string; record: VersionRecord },
  Record<string, never>
>({
  id: 0x0308,
  name: 'CheckUpload',
})

/**
 * Ends a completion (its modTime) that reached its write quorum: the part records go, and the
 * part files its version does not use; the upload record stays a day as `completed` (for a
 * retried Complete). Nothing happens when the drive's upload is not marked with that
 * completion. Idempotent. For a completion whose gateway died before it, another gateway does
 * it when it finds the completion at its write quorum (looking the upload up for a retried
 * Complete), and the node itself a day later.
 */
export const FinishUpload = defineRpc<
  DriveRef & { bucket: string; key: string; uploadId: string; modTime: Hlc },
  { finished: boolean }
>({ id: 0x0309, name: 'FinishUpload' })

/**
 * Takes back a completion (versionId, modTime) that missed its write quorum: that version
 * record goes (its data stays: it is the upload's parts) and the upload is in progress again,
 * every part as it was. A completion that has not arrived yet is refused when it does; one the
 * drive has settled (FinishUpload) stands.
 */
export const UndoCompletion = defineRpc<
  DriveRef & { bucket: string; key: string; uploadId: string; versionId: string; modTime: Hlc },
  { undone: boolean }
>({ id: 0x030a, name: 'UndoCompletion' })

// Healing --------------------------------------------------------------------------------------

/** Raw bytes of a shard file, unverified (healing verifies with the codec). */
export const ReadRaw = defineRpc<ShardRef & { offset: number; length: number }, { bytes: number }>({
  id: 0x0401,
  name: 'ReadRaw',
  responseBody: true,
})

/** Replaces a shard file with a rebuilt one (written to tmp, fsynced, renamed over). */
export const RewriteShard = defineRpc<ShardRef & { size: number }, { bytes: number }>({
  id: 0x0402,
  name: 'RewriteShard',
  requestBody: true,
})

/** Why a repair was asked for. */
export type HealReason = 'read' | 'write-miss' | 'scan' | 'drive-new' | 'catch-up'

/** One version of an object to check and repair on a drive. */
export interface HealItem {
  bucket: string
  key: string
  /** Absent: every version of the key. */
  versionId?: string
  /**
   * An upload in progress instead of a version: its record (a drive that missed the
   * CreateMultipartUpload), and part `partNumber` when given (a drive that missed an
   * UploadPart), rebuilt so that the drive counts when the upload is completed.
   */
  upload?: { uploadId: string; partNumber?: number }
  reason: HealReason
}

/**
 * Queues repairs of objects on one of the receiving node's drives: the drive's shard and record
 * copy are rebuilt from k good drives of the set when missing, short or corrupt. Sent by
 * gateways that found a bad or missing shard on read, or missed a drive on write.
 */
export const QueueHeal = defineRpc<DriveRef & { items: HealItem[] }, { queued: number }>({
  id: 0x0403,
  name: 'QueueHeal',
})

/** What a drive's healer and scanner are doing, for the admin API and CLI. */
export interface DriveHealState {
  pool: number
  set: number
  slot: number
  path: string
  online: boolean
  /** 'idle' between cycles; 'scanning' walks records; 'healing' rebuilds a whole drive. */
  state: 'idle' | 'scanning' | 'healing'
  /** Object versions checked, repaired, failed to repair (since the node started). */
  scanned: number
  healed: number
  failed: number
  /** Shard bytes written by repairs. */
  bytesHealed: number
  /** Repairs waiting. */
  queued: number
  /**
   * Versions the drive's last pass found it may lack but could not decide on: peers that hold
   * them did not answer. A full heal or catch-up pass runs again until there are none.
   */
  waiting?: number
  /** Current rates (a moving average over the last seconds). */
  objectsPerSec: number
  bytesPerSec: number
  /** During a whole-drive heal or a scan cycle: versions to go through, and done so far. */
  total?: number
  done?: number
  /** Estimated seconds to the end of the current heal or cycle. */
  etaSeconds?: number
  /**
   * Epoch ms: when the current heal or cycle started (or the last one, between passes); when
   * the last pass that went through everything it had to ended; and, between passes, when the
   * last pass ended, whole or not (see `waiting`).
   */
  startedAt?: number
  lastCycleAt?: number
  endedAt?: number
}

export const HealStatus = defineRpc<
  Record<string, never>,
  { node: string; drives: DriveHealState[] }
>({ id: 0x0404, name: 'HealStatus' })

/**
 * Starts work on a drive now: 'full' rebuilds everything the drive should hold (after a drive
 * swap or an outage), 'deep' runs a scan cycle that also verifies every chunk checksum.
 */
export const StartHeal = defineRpc<DriveRef & { mode: 'full' | 'deep' }, { started: boolean }>({
  id: 0x0405,
  name: 'StartHeal',
})

// System records (identity and cluster state, later issues) ----------------------------------

export const PutSystem = defineRpc<
  DriveRef & { key: string; value: unknown },
  Record<string, never>
>({
  id: 0x0501,
  name: 'PutSystem',
})
export const GetSystem = defineRpc<DriveRef & { key: string }, { value?: unknown }>({
  id: 0x0502,
  name: 'GetSystem',
})
export const ListSystem = defineRpc<
  DriveRef & { prefix: string },
  { entries: { key: string; value: unknown }[] }
>({
  id: 0x0503,
  name: 'ListSystem',
})
export const DeleteSystem = defineRpc<DriveRef & { key: string }, { existed: boolean }>({
  id: 0x0504,
  name: 'DeleteSystem',
})

// Gateway request statistics ------------------------------------------------------------------

/**
 * A gateway's S3 request counters, cumulative since the gateway started (the figures of its
 * `tessera_s3_requests_total` and `tessera_s3_request_duration_seconds`, summed over labels).
 */
export interface GatewayRequestStats {
  /** Epoch ms when the gateway started: a new value means its counters restarted from 0. */
  startedAt: number
  /** Epoch ms when the gateway took this snapshot (the gateway's clock). */
  at: number
  requests: number
  /** Seconds, summed over every request timed. */
  durationSum: number
  durationCount: number
  /**
   * The latency histogram, cumulative: [upper bound in seconds, requests at or below it], in
   * increasing bound order, finite bounds only (the +Inf bucket is `durationCount`).
   */
  buckets: [number, number][]
  /** Requests answered with a 4xx (client) and a 5xx (server) status. */
  errors: { client: number; server: number }
}

/**
 * A gateway's request counters, pushed to every node every few seconds. The node files them
 * under the caller's authenticated public id (only the map's gateways are kept) and keeps the
 * newest for a minute, in memory only.
 */
export const ReportGatewayStats = defineRpc<GatewayRequestStats, { accepted: boolean }>({
  id: 0x0601,
  name: 'ReportGatewayStats',
})

/** The newest request counters this node holds from each gateway, `id` = its public id. */
export const GatewayStats = defineRpc<
  Record<string, never>,
  { gateways: (GatewayRequestStats & { id: string })[] }
>({ id: 0x0602, name: 'GatewayStats' })

/** Every RPC, for tests and for checking that IDs are unique. */
export const ALL_RPCS = [
  Health,
  GetDriveInfo,
  PutShard,
  CommitVersion,
  AbortWrite,
  ReadVersions,
  ReadShard,
  DeleteVersion,
  ListRange,
  PutBucket,
  GetBucket,
  DeleteBucket,
  ListBuckets,
  PutUpload,
  GetUpload,
  DeleteUpload,
  ListUploads,
  CommitPart,
  ListParts,
  CompleteUpload,
  CheckUpload,
  FinishUpload,
  UndoCompletion,
  ReadRaw,
  RewriteShard,
  QueueHeal,
  HealStatus,
  StartHeal,
  PutSystem,
  GetSystem,
  ListSystem,
  DeleteSystem,
  ReportGatewayStats,
  GatewayStats,
] as const
