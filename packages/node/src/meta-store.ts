/* Design notes

One LevelDB (classic-level) per drive holds the drive's metadata: object versions, buckets,
multipart uploads and parts, and system records. Keys are built by meta-keys.ts so that byte
order is listing order; values are msgpack.

Writes. Every write is acknowledged only once it is on disk (`sync: true`), except the few
cleanups marked lazy (settling a completed upload), which a crash may lose because they are
redone later; a group is flushed unless all its writes are lazy. A sync costs a
device flush, so concurrent writes share one: a GroupCommitter runs at most one LevelDB batch
at a time, and whatever arrives meanwhile goes, all together, into the next one. A lone writer
still gets one batch (one flush) per write, without waiting. The committer is also the only
writer, which makes read-then-write steps safe without locks: when a group is committed it
first reads what it needs (the versionId index, records a delete reports on, the parts of an
upload being removed) from a store no other batch is changing, then resolves the group's
operations in order, with later operations seeing the effects of earlier ones in the same group.
A step that reads before it asks for a write (a commit unless superseded or deleted, a client's
delete or the memory of one, a repair's final write) runs in the key's exclusive section
(`exclusive`), so that no other such step on the same key comes between its read and its write.

Each version has an index entry `I | bucket | key | versionId` whose value is the version's
8 time bytes, so getVersion, deleteVersion and replacing a version (the 'null' version of an
unversioned bucket, or a record rewritten by healing) are point lookups, never a walk over a
key's versions.

Reads. Point lookups (getVersion, system records, the group's reads) are synchronous getSync
calls: a small record comes from the memtable, block cache or page cache in microseconds, less
than a thread-pool round trip. But one that must read the disk blocks the node's event loop
(all its drives) for the whole seek: after a few synchronous lookups slower than
SLOW_SYNC_READ_MS within a second, the store reads through the thread pool for
ASYNC_READ_WINDOW_MS (see #point). The newest version of recently read keys (what every GET asks)
is kept in memory, bounded by NEWEST_CACHE_BYTES, and kept coherent by the committer, the only
writer: see #cacheNewest.

Listings. A RangeScan reads ahead in batches that double while they are useful. Skipping
(past the rest of a key's versions, or past everything under a common prefix) is free when the
target is within the read-ahead and otherwise seeks the LevelDB iterator; a skip that threw away
read-ahead starts again from a batch of one. So a key with many versions, or a prefix with many
keys, costs a handful of entries read, and a bucket with one version per key is read in large
batches. `lastScanSteps` counts the entries read from LevelDB by the last listing.
*/

import {
  type BucketRecord,
  type Hlc,
  hlcMillis,
  laterRecord,
  type PartRecord,
  type UploadRecord,
  type VersionRecord,
} from '@tessera/protocol'
import { ClassicLevel, type Iterator as LevelIterator } from 'classic-level'
import { Packr } from 'msgpackr'
import {
  bucketKey,
  compareKeys,
  decodeSingleKey,
  decodeString,
  encodeModTime,
  encodeString,
  NAMESPACE,
  namespaceRange,
  partKey,
  partKeyPrefix,
  prefixEnd,
  systemKey,
  systemScanPrefix,
  uploadKey,
  uploadKeyPrefix,
  uploadScanPrefix,
  versionIndexKey,
  versionKeyPrefix,
  versionScanPrefix,
} from './meta-keys.ts'

/**
 * Codes of {@link MetaStoreError}, a subset of the store error codes in `@tessera/protocol`.
 * `DRIVE_FULL`: the drive has no space left; `META_IO`: any other LevelDB failure (corruption,
 * I/O error, a store already open elsewhere); `DRIVE_OFFLINE`: the store was used after
 * `close()` (its drive was taken offline or the node is stopping).
 */
export const META_ERROR_CODES = ['DRIVE_FULL', 'META_IO', 'DRIVE_OFFLINE'] as const
export type MetaErrorCode = (typeof META_ERROR_CODES)[number]

/** The error of a metadata store; check `err.code`, which survives threads and the wire. */
export class MetaStoreError extends Error {
  static override name = 'MetaStoreError'
  readonly code: MetaErrorCode
  /** The store's directory. */
  readonly path: string

  constructor(code: MetaErrorCode, message: string, path: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'MetaStoreError'
    this.code = code
    this.path = path
  }

  /**
   * Wraps a LevelDB failure while `doing` something: `DRIVE_FULL` when the cause is ENOSPC
   * ("No space left on device"), otherwise `META_IO`. A MetaStoreError is returned unchanged.
   */
  static from(err: unknown, path: string, doing: string): MetaStoreError {
    if (err instanceof MetaStoreError) return err
    const detail = causeChain(err)
    if (/ENOSPC|no space left/i.test(detail)) {
      return new MetaStoreError(
        'DRIVE_FULL',
        `metadata store ${path}: ${doing} failed, the drive is full (${detail}); ` +
          'free space on the drive or take it out of service',
        path,
        err,
      )
    }
    return new MetaStoreError(
      'META_IO',
      `metadata store ${path}: ${doing} failed: ${detail}`,
      path,
      err,
    )
  }

  static CLOSED(path: string): MetaStoreError {
    return new MetaStoreError(
      'DRIVE_OFFLINE',
      `metadata store ${path} is closed (drive offline or node stopping); ` +
        'open it again with MetaStore.open()',
      path,
    )
  }
}

/** The messages (and codes) of an error and its causes, for a one-line description. */
function causeChain(err: unknown): string {
  const parts: string[] = []
  let e: unknown = err
  for (let depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown }).code
      parts.push(typeof code === 'string' ? `${code}: ${e.message}` : e.message)
      e = e.cause
    } else {
      parts.push(String(e))
      break
    }
  }
  return parts.join(' <- ')
}

/** One write to the committer: its ops, and whether it may skip the disk flush (`lazy`). */
interface GroupWrite {
  ops: Prepared[]
  lazy: boolean
}

/** Counters of a {@link GroupCommitter}. */
export interface CommitStats {
  /** Groups committed (each one synced batch). */
  batches: number
  /** Writes submitted in those groups. */
  writes: number
}

export interface GroupCommitterInit<T, R> {
  /** Commits a group of writes as one durable unit; returns one result per write, in order. */
  commit: (writes: T[]) => Promise<R[]>
  /** Most writes in one group; the rest wait for the next. Default 1024. */
  maxGroupWrites?: number
}

interface Pending<T, R> {
  write: T
  resolve: (result: R) => void
  reject: (err: unknown) => void
}

/**
 * Coalesces concurrent writes: at most one group is being committed at a time; writes that
 * arrive meanwhile queue and are committed together as the next group as soon as it is done.
 * A lone writer is committed at once. Every write's promise settles with its group: resolved
 * with its own result, or rejected with the group's error.
 */
export class GroupCommitter<T, R> {
  readonly #commit: (writes: T[]) => Promise<R[]>
  readonly #maxGroupWrites: number
  #queue: Pending<T, R>[] = []
  #running: Promise<void> | undefined
  #batches = 0
  #writes = 0

  constructor(init: GroupCommitterInit<T, R>) {
    this.#commit = init.commit
    this.#maxGroupWrites = init.maxGroupWrites ?? 1024
    if (!Number.isInteger(this.#maxGroupWrites) || this.#maxGroupWrites < 1) {
      throw new RangeError(`maxGroupWrites must be a positive integer (got ${init.maxGroupWrites})`)
    }
  }

  /** Counters since creation. */
  get stats(): CommitStats {
    return { batches: this.#batches, writes: this.#writes }
  }

  /** Queues a write; resolves once the group that carries it is committed. */
  submit(write: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ write, resolve, reject })
      if (this.#running === undefined) this.#running = this.#run()
    })
  }

  /** Resolves when no write is queued or being committed. */
  async drain(): Promise<void> {
    while (this.#running !== undefined) await this.#running
  }

  async #run(): Promise<void> {
    // Writes submitted in the same tick as the first one join its group.
    await Promise.resolve()
    while (this.#queue.length > 0) {
      const group = this.#queue.splice(0, this.#maxGroupWrites)
      this.#batches++
      this.#writes += group.length
      try {
        const results = await this.#commit(group.map((p) => p.write))
        for (let i = 0; i < group.length; i++) group[i]!.resolve(results[i] as R)
      } catch (err) {
        for (const p of group) p.reject(err)
      }
    }
    this.#running = undefined
  }
}

/** System-record prefix of version tombstones (see {@link MetaStore.deleteVersion}); 'local/' records are this drive's own and are never copied between drives. */
export const TOMBSTONE_PREFIX = 'local/tomb/'

/**
 * A deleted version: when, and which (its modTime) when the drive held it; `leftover` when
 * healing dropped it as the remains of a failed write or a missed delete, or a gateway undid a
 * write that missed its quorum: not a client's delete.
 */
interface Tombstone {
  at: number
  modTime?: Hlc
  leftover?: true
}

function tombstoneKey(bucket: string, key: string, versionId: string): string {
  return `${TOMBSTONE_PREFIX}${bucket}\u0000${key}\u0000${versionId}`
}

/** A change that {@link MetaStore.batch} applies atomically with others. */
export type MetaOp =
  | { type: 'putVersion'; record: VersionRecord }
  | { type: 'deleteVersion'; bucket: string; key: string; versionId: string }
  | { type: 'putBucket'; record: BucketRecord }
  | { type: 'deleteBucket'; name: string }
  | { type: 'putUpload'; record: UploadRecord }
  | { type: 'deleteUpload'; bucket: string; key: string; uploadId: string }
  | { type: 'putPart'; record: PartRecord }
  | { type: 'putSystem'; key: string; value: unknown }
  | { type: 'deleteSystem'; key: string }

export interface MetaStoreInit {
  /** The LevelDB directory, `<drive>/.tessera/meta`; created when missing. */
  path: string
  /**
   * A synchronous point lookup that takes longer than this (ms) read from the disk: point
   * lookups then go through the thread pool for a while. Default {@link SLOW_SYNC_READ_MS}.
   */
  slowReadMs?: number
}

/** A synchronous point lookup slower than this (ms) waited for the disk; see MetaStoreInit. */
export const SLOW_SYNC_READ_MS = 2
/**
 * Slow synchronous lookups that read the disk, within SLOW_READS_SPAN_MS, that move lookups to
 * the thread pool. A slow lookup counts only if the process took a major page fault since the
 * last one was looked at (LevelDB maps its tables: a block read from the disk is a major fault):
 * on a busy machine most slow lookups are the event loop's thread losing its core, which the
 * thread pool would not help, at more CPU per lookup.
 */
export const SLOW_READS_TO_SWITCH = 2
export const SLOW_READS_SPAN_MS = 1000
/** How long point lookups go through the thread pool once they switched (ms). */
export const ASYNC_READ_WINDOW_MS = 10_000

/** How the store's point lookups were made; see {@link MetaStore.readStats}. */
export interface ReadStats {
  /** Synchronous lookups (on the event loop). */
  sync: number
  /** Lookups through the thread pool, after a slow synchronous one. */
  async: number
  /** Synchronous lookups slower than the threshold that read the disk (see SLOW_READS_TO_SWITCH). */
  slow: number
}

export interface ListLatestOptions {
  bucket: string
  /** Only keys starting with this. */
  prefix?: string
  /** Keys containing this after the prefix roll up into one common prefix each. */
  delimiter?: string
  /** Only items after this key (or, with a delimiter, after this common prefix). */
  startAfter?: string
  /** Most entries plus common prefixes to return. */
  limit: number
}

export interface ListLatestResult {
  /** The newest version of each key, delete markers included, in key order. */
  entries: VersionRecord[]
  /** Common prefixes, in key order; merge with `entries` by key for S3's single order. */
  commonPrefixes: string[]
  /** True when more items follow. */
  isTruncated: boolean
  /** When truncated: the last key or common prefix returned; pass it as `startAfter`. */
  nextMarker?: string
}

export interface ListVersionsOptions {
  bucket: string
  prefix?: string
  delimiter?: string
  /** Only versions of keys after this one, or with `versionIdMarker`, from that version on. */
  keyMarker?: string
  /** With `keyMarker`: continue after this version of `keyMarker`. */
  versionIdMarker?: string
  /** Most versions plus common prefixes to return. */
  limit: number
}

export interface ListVersionsResult {
  /** Every version, in key order and newest first within a key. */
  entries: VersionRecord[]
  commonPrefixes: string[]
  isTruncated: boolean
  /** When truncated: the key (or common prefix) of the last item returned. */
  nextKeyMarker?: string
  /** When truncated and the last item was a version: its versionId. */
  nextVersionIdMarker?: string
}

export interface ListUploadsOptions {
  bucket: string
  prefix?: string
  /** Only uploads of keys after this one, or with `uploadIdMarker`, after that upload. */
  keyMarker?: string
  /** With `keyMarker`: continue after this upload of `keyMarker`. */
  uploadIdMarker?: string
  limit: number
}

export interface ListUploadsResult {
  /** Uploads in key order, then upload id order within a key. */
  uploads: UploadRecord[]
  isTruncated: boolean
  nextKeyMarker?: string
  nextUploadIdMarker?: string
}

export interface ListPartsOptions {
  /** Only parts numbered above this. */
  partNumberMarker?: number
  /** Most parts to return; default all. */
  limit?: number
}

export interface ListPartsResult {
  /** Parts by number. */
  parts: PartRecord[]
  isTruncated: boolean
  /** When truncated: the number of the last part returned. */
  nextPartNumberMarker?: number
}

/** A system record. */
export interface SystemEntry {
  key: string
  value: unknown
}

type Level = ClassicLevel<Uint8Array, Uint8Array>
type Entry = [Uint8Array, Uint8Array]
type RawOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }

// A write after its keys and value are encoded. Encoding happens when the write is submitted,
// so a bad record fails its own caller and never the group it would have joined.
type Prepared =
  | { op: 'put'; key: Buffer; value: Buffer }
  | { op: 'del'; key: Buffer }
  | { op: 'putVersion'; head: Buffer; time: Buffer; tail: Buffer; index: Buffer; value: Buffer }
  | { op: 'deleteVersion'; head: Buffer; tail: Buffer; index: Buffer }
  | { op: 'deleteUpload'; key: Buffer; parts: Buffer }

// useRecords: false keeps values plain msgpack maps (decoded as plain objects), readable by any
// msgpack implementation; Uint8Array fields are msgpack bin and come back as Buffers.
const packr = new Packr({ useRecords: false })

/** Bytes of newest-version records a store keeps in memory for reads of the newest version. */
export const NEWEST_CACHE_BYTES = 16 * 1024 * 1024
/** Records larger than this (a big inline shard) are read from LevelDB every time. */
const NEWEST_CACHE_RECORD_MAX_BYTES = 256 * 1024
/** Bytes counted per cached entry besides its record and key: Map entry and object headers. */
const NEWEST_CACHE_ENTRY_OVERHEAD_BYTES = 64

/** Most entries a listing reads from LevelDB in one step (read-ahead cap). */
const MAX_READ_AHEAD_ENTRIES = 256

/**
 * A drive's metadata: object versions, buckets, multipart uploads and parts, and system
 * records, in one LevelDB. Every write resolves once it is on disk; concurrent writes share
 * their disk syncs (group commit). Listings are range scans that skip, never walk, the older
 * versions of a key and the keys under a common prefix.
 */
export class MetaStore {
  /** The store's directory. */
  readonly path: string
  readonly #level: Level
  readonly #committer: GroupCommitter<GroupWrite, boolean[]>
  #closing: Promise<void> | undefined
  #lastScanSteps = 0
  /**
   * The newest version of recently read keys (packed record, or null: no version), by version
   * key prefix (latin1), least recently used first; see #cacheNewest.
   */
  readonly #newest = new Map<string, Uint8Array | null>()
  #newestBytes = 0
  /** Bumped before and after every write of versions; a read that saw it change is not cached. */
  #versionWrites = 0
  /** The last exclusive section queued for each key (bucket NUL key); see exclusive(). */
  readonly #sections = new Map<string, Promise<void>>()
  readonly #slowReadMs: number
  /** performance.now() until which point lookups go through the thread pool. */
  #asyncReadsUntil = 0
  /** When the last slow synchronous lookups were (performance.now()), oldest first. */
  #slowAt: number[] = []
  /** The process's major page faults when a slow lookup was last looked at. */
  #majorFaults = process.resourceUsage().majorPageFault
  readonly #readStats: ReadStats = { sync: 0, async: 0, slow: 0 }

  private constructor(path: string, level: Level, slowReadMs: number) {
    this.path = path
    this.#level = level
    this.#slowReadMs = slowReadMs
    this.#committer = new GroupCommitter({ commit: (writes) => this.#commitGroup(writes) })
  }

  /** Opens (creating when missing) the store in `init.path`. */
  static async open(init: MetaStoreInit): Promise<MetaStore> {
    const level: Level = new ClassicLevel<Uint8Array, Uint8Array>(init.path, {
      keyEncoding: 'view',
      valueEncoding: 'view',
    })
    try {
      await level.open()
    } catch (err) {
      throw MetaStoreError.from(err, init.path, 'open')
    }
    return new MetaStore(init.path, level, init.slowReadMs ?? SLOW_SYNC_READ_MS)
  }

  /** Waits for queued writes, then closes the database. Later calls fail with DRIVE_OFFLINE. */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    await this.#committer.drain()
    try {
      await this.#level.close()
    } catch (err) {
      throw MetaStoreError.from(err, this.path, 'close')
    }
  }

  /** How point lookups were made since the store opened (see #point). */
  get readStats(): ReadStats {
    return { ...this.#readStats }
  }

  /** Group commit counters: `batches` synced LevelDB batches for `writes` writes. */
  get commitStats(): CommitStats {
    return this.#committer.stats
  }

  /** Entries read from LevelDB by the last listing that finished (a diagnostic for tests). */
  get lastScanSteps(): number {
    return this.#lastScanSteps
  }

  // ---- versions

  /**
   * Stores a version. A record with the same bucket, key and versionId replaces the stored one
   * even when its modTime differs: this is how an unversioned ('null') object is overwritten.
   */
  async putVersion(record: VersionRecord): Promise<void> {
    await this.#submit([{ type: 'putVersion', record }])
  }

  /**
   * Versions of a key, newest first; at most `limit` of them. The newest alone (`limit` 1, what
   * every GET and HEAD asks each drive) comes from memory when the key was read recently.
   */
  async getVersions(bucket: string, key: string, limit?: number): Promise<VersionRecord[]> {
    if (limit !== undefined) checkLimit(limit)
    const prefix = versionKeyPrefix(bucket, key)
    const id = limit === 1 ? prefix.toString('latin1') : undefined
    if (id !== undefined) {
      const hit = this.#newest.get(id)
      if (hit !== undefined) {
        this.#newest.delete(id)
        this.#newest.set(id, hit)
        return hit === null ? [] : [unpack<VersionRecord>(hit)]
      }
    }
    const writes = this.#versionWrites
    const values = await this.#read('read versions', () =>
      this.#open.values({ gte: prefix, lt: endOf(prefix), limit: limit ?? -1 }).all(),
    )
    if (id !== undefined && writes === this.#versionWrites) {
      this.#cacheNewest(id, values[0] ?? null)
    }
    return values.map((v) => unpack<VersionRecord>(v))
  }

  /**
   * Keeps a key's newest version in memory (a scan costs a LevelDB iterator and a thread-pool
   * round trip; small GETs were a third of a node's time in it). Coherent because this store
   * is the drive's only writer: a write of a key's versions drops its entry before and after the
   * batch and bumps #versionWrites both times, and a read caches what it found only when no
   * such write began or ended while it ran. Bounded by NEWEST_CACHE_BYTES (least recently read
   * entries go first); records above NEWEST_CACHE_RECORD_MAX_BYTES are not kept.
   */
  #cacheNewest(id: string, value: Uint8Array | null): void {
    const bytes = (value?.length ?? 0) + id.length + NEWEST_CACHE_ENTRY_OVERHEAD_BYTES
    if (value !== null && value.length > NEWEST_CACHE_RECORD_MAX_BYTES) return
    this.#dropNewest(id)
    this.#newest.set(id, value)
    this.#newestBytes += bytes
    for (const [old, v] of this.#newest) {
      if (this.#newestBytes <= NEWEST_CACHE_BYTES) break
      this.#newest.delete(old)
      this.#newestBytes -= (v?.length ?? 0) + old.length + NEWEST_CACHE_ENTRY_OVERHEAD_BYTES
    }
  }

  #dropNewest(id: string): void {
    const v = this.#newest.get(id)
    if (v === undefined) return
    this.#newest.delete(id)
    this.#newestBytes -= (v?.length ?? 0) + id.length + NEWEST_CACHE_ENTRY_OVERHEAD_BYTES
  }

  /** Drops the cached newest versions of the keys a group writes versions of (see #cacheNewest). */
  #forgetNewest(heads: readonly string[]): void {
    this.#versionWrites++
    for (const id of heads) this.#dropNewest(id)
  }

  /** One version of a key, or undefined. */
  async getVersion(
    bucket: string,
    key: string,
    versionId: string,
  ): Promise<VersionRecord | undefined> {
    const head = versionKeyPrefix(bucket, key)
    const index = versionIndexKey(bucket, key, versionId)
    const tail = encodeString(versionId)
    const db = this.#open
    return this.#read('read a version', async () => {
      // Point lookups are synchronous (see #getValue). No index entry settles it with one read
      // (a new key, as most commits write). Otherwise the group commit may write on a worker
      // thread between the two reads, so they share one snapshot: a concurrent replacement
      // cannot hide the version.
      // (Through the thread pool, the snapshot costs less than a third round trip.)
      if (!this.#readsAsync() && this.#pointSync(index) === undefined) return undefined
      const snapshot = db.snapshot()
      try {
        const time = await this.#point(index, snapshot)
        if (time === undefined) return undefined
        const value = await this.#point(Buffer.concat([head, time, tail]), snapshot)
        return value === undefined ? undefined : unpack<VersionRecord>(value)
      } finally {
        await snapshot.close()
      }
    })
  }

  /**
   * Deletes one version; resolves true when it existed. Leaves a tombstone (a system record,
   * in the same batch) saying when the version was deleted, so that a repair that read the
   * version from other drives before the delete cannot write it back after it.
   */
  async deleteVersion(
    bucket: string,
    key: string,
    versionId: string,
    deleted?: VersionRecord,
    options: { leftover?: boolean } = {},
  ): Promise<boolean> {
    const tomb: Tombstone = {
      at: Date.now(),
      ...(deleted ? { modTime: deleted.modTime } : {}),
      ...(options.leftover ? { leftover: true } : {}),
    }
    const [existed] = await this.#submit([
      { type: 'deleteVersion', bucket, key, versionId },
      { type: 'putSystem', key: tombstoneKey(bucket, key, versionId), value: tomb },
    ])
    return existed === true
  }

  /**
   * Runs `fn` while no other exclusive section of the same key runs on this drive, in the order
   * they were asked for. The committer orders writes, not the reads a step decides on: a step
   * that reads, decides and writes (a commit unless deleted, a delete or the memory of one, a
   * repair's final write) runs in a section so that no other such step comes between its read
   * and its write.
   */
  async exclusive<T>(bucket: string, key: string, fn: () => Promise<T>): Promise<T> {
    const id = `${bucket}\u0000${key}`
    const before = this.#sections.get(id)
    const run = before === undefined ? fn() : before.then(fn)
    const done = run.then(
      () => {},
      () => {},
    )
    this.#sections.set(id, done)
    try {
      return await run
    } finally {
      if (this.#sections.get(id) === done) this.#sections.delete(id)
    }
  }

  /**
   * A client's delete of one version on this drive, in an exclusive section: the version is
   * removed (its tombstone names it), or, when the drive does not hold it, the delete is
   * remembered, since a repair or a late commit may be about to write it here. The removed
   * record, if there was one.
   *
   * With `only`, a gateway's undo of one write (modTime `only`) that missed its quorum: the
   * record is removed only if it is that write. Otherwise (the commit has not arrived yet, or
   * a newer write under the id is here) nothing is removed, and the tombstone says that the
   * write was undone, so its commit, should it arrive late, is dropped (`deletedBefore`).
   */
  async removeVersion(
    bucket: string,
    key: string,
    versionId: string,
    only?: Hlc,
  ): Promise<VersionRecord | undefined> {
    return this.exclusive(bucket, key, async () => {
      const rec = await this.getVersion(bucket, key, versionId)
      if (only === undefined) {
        if (rec === undefined) await this.markDeleted(bucket, key, versionId)
        else await this.deleteVersion(bucket, key, versionId, rec)
        return rec
      }
      if (rec?.modTime === only) {
        await this.deleteVersion(bucket, key, versionId, rec, { leftover: true })
        return rec
      }
      // A client's delete remembered here says more (which version, when): it stays.
      const tkey = tombstoneKey(bucket, key, versionId)
      const t = (await this.getSystem(tkey)) as Tombstone | undefined
      if (t !== undefined && t.leftover !== true) return undefined
      await this.putSystem(tkey, {
        at: Date.now(),
        modTime: Math.max(t?.modTime ?? only, only),
        leftover: true,
      } satisfies Tombstone)
      return undefined
    })
  }

  /**
   * A repair's final write, in an exclusive section: `record`, rebuilt from what the set's drives
   * said at `readAt` (this node's clock), is written unless the drive meanwhile got a newer
   * record under the same versionId or a later change of its tags or ACL ('newer'), or a
   * client deleted the version ('deleted', see wasDeleted). `current` is what the drive held
   * under the versionId at the check: the record replaced, or the one that stays; whose data
   * folder is not the record's may need to go.
   */
  async restoreVersion(
    record: VersionRecord,
    readAt: number,
  ): Promise<{ outcome: 'written' | 'newer' | 'deleted'; current?: VersionRecord }> {
    return this.exclusive(record.bucket, record.key, async () => {
      const current = await this.getVersion(record.bucket, record.key, record.versionId)
      const was = current === undefined ? {} : { current }
      if (current !== undefined && laterRecord(current, record)) return { outcome: 'newer', ...was }
      if (await this.wasDeleted(record, readAt)) return { outcome: 'deleted', ...was }
      await this.putVersion(record)
      return { outcome: 'written', ...was }
    })
  }

  /** Records that a version was deleted where this drive did not hold it (a delete it got first). */
  async markDeleted(bucket: string, key: string, versionId: string): Promise<void> {
    await this.putSystem(tombstoneKey(bucket, key, versionId), {
      at: Date.now(),
    } satisfies Tombstone)
  }

  /**
   * Whether a client deleted `record` on this drive: the very version (same modTime), or, when
   * the drive did not hold it at the delete, any of its versionId written before the delete.
   * With `readAt` (when a repair read the set, by this node's clock), also any client's delete
   * of its versionId since then: what the repair read may be gone from the other drives too.
   * (Healing's own removal of a stale leftover under the versionId is no such sign.)
   */
  async wasDeleted(record: VersionRecord, readAt?: number): Promise<boolean> {
    const t = (await this.getSystem(tombstoneKey(record.bucket, record.key, record.versionId))) as
      | Tombstone
      | undefined
    if (t === undefined) return false
    if (readAt !== undefined && t.leftover !== true && t.at >= readAt) return true
    if (t.modTime !== undefined) return t.modTime === record.modTime
    return hlcMillis(record.modTime) <= t.at
  }

  /**
   * Whether committing `record` now would bring back a deleted version: a version id other than
   * 'null' is never written twice, so any tombstone of it means a client deleted it; a 'null'
   * record is stale when the deleted 'null' version was as new or newer. (A tombstone without
   * modTime says only when the delete came, by this node's clock, which is not comparable
   * with a gateway's HLC: it does not stop a 'null' commit.)
   */
  async deletedBefore(record: VersionRecord): Promise<boolean> {
    const t = (await this.getSystem(tombstoneKey(record.bucket, record.key, record.versionId))) as
      | Tombstone
      | undefined
    if (t === undefined) return false
    if (record.versionId !== 'null') return true
    return t.modTime !== undefined && record.modTime <= t.modTime
  }

  /** Drops tombstones older than `maxAgeMs` (repairs never take that long); the count. */
  async purgeTombstones(maxAgeMs: number): Promise<number> {
    const old = (await this.listSystem(TOMBSTONE_PREFIX)).filter(
      (e) => Date.now() - ((e.value as { at?: number }).at ?? 0) > maxAgeMs,
    )
    if (old.length > 0) await this.#submit(old.map((e) => ({ type: 'deleteSystem', key: e.key })))
    return old.length
  }

  /**
   * The newest version of each key (delete markers included; the caller resolves them), in
   * key order (UTF-8 byte order), with S3 ListObjects prefix, delimiter and marker semantics.
   * Each common prefix counts once toward `limit`. A marker inside a common prefix (or equal
   * to it) continues after the whole prefix.
   */
  async listLatest(options: ListLatestOptions): Promise<ListLatestResult> {
    const { bucket, delimiter, startAfter, limit } = options
    const prefix = options.prefix ?? ''
    checkLimit(limit)
    const scanPrefix = versionScanPrefix(bucket, prefix)
    const keyOffset = versionScanPrefix(bucket).length
    const from =
      startAfter === undefined
        ? scanPrefix
        : maxKey(scanPrefix, afterMarker(bucket, prefix, delimiter, startAfter))

    const entries: VersionRecord[] = []
    const commonPrefixes: string[] = []
    let isTruncated = false
    let last: string | undefined
    await this.#scan('list objects', from, endOf(scanPrefix), async (scan) => {
      const wanted = () => limit - entries.length - commonPrefixes.length + 1
      for (let e = await scan.next(wanted()); e !== undefined; e = await scan.next(wanted())) {
        if (entries.length + commonPrefixes.length >= limit) {
          isTruncated = true
          return
        }
        const [k, v] = e
        const { value: key, end } = decodeString(k, keyOffset)
        const common = commonPrefixOf(key, prefix, delimiter)
        if (common !== undefined) {
          commonPrefixes.push(common)
          last = common
          scan.skipTo(endOf(versionScanPrefix(bucket, common)))
          continue
        }
        entries.push(unpack<VersionRecord>(v))
        last = key
        // Past the older versions of this key: its key prefix ends at `end`.
        scan.skipTo(endOf(k.subarray(0, end)))
      }
    })
    const result: ListLatestResult = { entries, commonPrefixes, isTruncated }
    if (isTruncated && last !== undefined) result.nextMarker = last
    return result
  }

  /**
   * Every version, in key order and newest first within a key, with S3 ListObjectVersions
   * semantics: `keyMarker` alone continues with the next key; with `versionIdMarker` it
   * continues after that version of `keyMarker`. When that version is not on this drive, the
   * listing continues with the next key, as if `versionIdMarker` were absent.
   */
  async listVersions(options: ListVersionsOptions): Promise<ListVersionsResult> {
    const { bucket, delimiter, keyMarker, versionIdMarker, limit } = options
    const prefix = options.prefix ?? ''
    checkLimit(limit)
    const scanPrefix = versionScanPrefix(bucket, prefix)
    const keyOffset = versionScanPrefix(bucket).length
    const db = this.#open
    const snapshot = db.snapshot()
    try {
      let from = scanPrefix
      if (keyMarker !== undefined) {
        let after = afterMarker(bucket, prefix, delimiter, keyMarker)
        const rolledUp = commonPrefixOf(keyMarker, prefix, delimiter) !== undefined
        if (versionIdMarker !== undefined && !rolledUp) {
          const index = versionIndexKey(bucket, keyMarker, versionIdMarker)
          const time = await this.#read('list versions', () => db.get(index, { snapshot }))
          if (time !== undefined) {
            const head = versionKeyPrefix(bucket, keyMarker)
            // The smallest key after the marker version's own key.
            after = Buffer.concat([head, time, encodeString(versionIdMarker), ZERO])
          }
        }
        from = maxKey(from, after)
      }

      const entries: VersionRecord[] = []
      const commonPrefixes: string[] = []
      let isTruncated = false
      let lastKey: string | undefined
      let lastVersionId: string | undefined
      await this.#scan(
        'list versions',
        from,
        endOf(scanPrefix),
        async (scan) => {
          const wanted = () => limit - entries.length - commonPrefixes.length + 1
          for (let e = await scan.next(wanted()); e !== undefined; e = await scan.next(wanted())) {
            if (entries.length + commonPrefixes.length >= limit) {
              isTruncated = true
              return
            }
            const [k, v] = e
            const key = decodeString(k, keyOffset).value
            const common = commonPrefixOf(key, prefix, delimiter)
            if (common !== undefined) {
              commonPrefixes.push(common)
              lastKey = common
              lastVersionId = undefined
              scan.skipTo(endOf(versionScanPrefix(bucket, common)))
              continue
            }
            const record = unpack<VersionRecord>(v)
            entries.push(record)
            lastKey = key
            lastVersionId = record.versionId
          }
        },
        snapshot,
      )
      const result: ListVersionsResult = { entries, commonPrefixes, isTruncated }
      if (isTruncated) {
        if (lastKey !== undefined) result.nextKeyMarker = lastKey
        if (lastVersionId !== undefined) result.nextVersionIdMarker = lastVersionId
      }
      return result
    } finally {
      await snapshot.close()
    }
  }

  // ---- buckets

  async putBucket(record: BucketRecord): Promise<void> {
    await this.#submit([{ type: 'putBucket', record }])
  }

  async getBucket(name: string): Promise<BucketRecord | undefined> {
    return this.#getValue<BucketRecord>(bucketKey(name), 'read a bucket')
  }

  /** Deletes a bucket record (not its versions); resolves true when it existed. */
  async deleteBucket(name: string): Promise<boolean> {
    const [existed] = await this.#submit([{ type: 'deleteBucket', name }])
    return existed === true
  }

  /** Every bucket, by name. */
  async listBuckets(): Promise<BucketRecord[]> {
    const { gte, lt } = namespaceRange(NAMESPACE.bucket)
    const out: BucketRecord[] = []
    await this.#scan('list buckets', gte, lt, async (scan) => {
      for (let e = await scan.next(); e !== undefined; e = await scan.next()) {
        out.push(unpack<BucketRecord>(e[1]))
      }
    })
    return out
  }

  /**
   * Every data folder a record on this drive names: object versions, multipart uploads and
   * their parts. One pass over those records, for the orphan sweep (Drive.sweepOrphans).
   */
  async dataDirsInUse(): Promise<Set<string>> {
    const out = new Set<string>()
    for (const ns of [NAMESPACE.version, NAMESPACE.upload, NAMESPACE.part]) {
      const { gte, lt } = namespaceRange(ns)
      await this.#scan('list data folders in use', gte, lt, async (scan) => {
        for (let e = await scan.next(); e !== undefined; e = await scan.next()) {
          const dataDir = unpack<{ dataDir?: string }>(e[1]).dataDir
          if (dataDir !== undefined) out.add(dataDir)
        }
      })
    }
    return out
  }

  /**
   * Uploads this drive holds parts of but no upload record for, whose newest part is older than
   * `before` (an HLC): a drive that missed a CreateMultipartUpload and then got parts, when
   * the repair of the record never came (its report expired, or the upload was aborted or
   * completed meanwhile). One pass over the part records, for the orphan sweep.
   */
  async strayUploads(before: Hlc): Promise<{ bucket: string; key: string; uploadId: string }[]> {
    const newest = new Map<string, { bucket: string; key: string; uploadId: string; t: Hlc }>()
    const { gte, lt } = namespaceRange(NAMESPACE.part)
    await this.#scan('list part records', gte, lt, async (scan) => {
      for (let e = await scan.next(); e !== undefined; e = await scan.next()) {
        const p = unpack<PartRecord>(e[1])
        const id = `${p.bucket}\u0000${p.key}\u0000${p.uploadId}`
        const cur = newest.get(id)
        if (cur === undefined) {
          newest.set(id, { bucket: p.bucket, key: p.key, uploadId: p.uploadId, t: p.modTime })
        } else if (p.modTime > cur.t) cur.t = p.modTime
      }
    })
    const out: { bucket: string; key: string; uploadId: string }[] = []
    for (const u of newest.values()) {
      if (u.t >= before) continue
      if ((await this.getUpload(u.bucket, u.key, u.uploadId)) !== undefined) continue
      out.push({ bucket: u.bucket, key: u.key, uploadId: u.uploadId })
    }
    return out
  }

  /**
   * Uploads completed before `before` (an HLC): marked `completing` and never settled by
   * FinishUpload or UndoCompletion (the gateway died in between), or settled (`completed`) and
   * kept long enough for a retried Complete. One pass over the upload records, for the orphan
   * sweep.
   */
  async completedUploads(before: Hlc): Promise<UploadRecord[]> {
    const out: UploadRecord[] = []
    const { gte, lt } = namespaceRange(NAMESPACE.upload)
    await this.#scan('list upload records', gte, lt, async (scan) => {
      for (let e = await scan.next(); e !== undefined; e = await scan.next()) {
        const u = unpack<UploadRecord>(e[1])
        const at = u.completing?.modTime ?? u.completed?.modTime
        if (at !== undefined && at < before) out.push(u)
      }
    })
    return out
  }

  /**
   * A gateway's undo of a completion (versionId, modTime) that missed its write quorum, in the
   * key's exclusive section: that version record goes, if it is that write (its data stays: it
   * is the upload's part files), with a tombstone as for any undone write (see removeVersion),
   * and the upload is in progress again. The upload remembers the undone completion, so that
   * it is refused should it arrive after this. A completion the drive has settled already
   * (FinishUpload) stands. True when a version was taken back.
   */
  async undoCompletion(u: {
    bucket: string
    key: string
    uploadId: string
    versionId: string
    modTime: Hlc
  }): Promise<boolean> {
    return this.exclusive(u.bucket, u.key, async () => {
      const [up, v] = await Promise.all([
        this.getUpload(u.bucket, u.key, u.uploadId),
        this.getVersion(u.bucket, u.key, u.versionId),
      ])
      // Already settled as this completion (another gateway found it at its write quorum after
      // this undo's gateway lost count of it): it stands.
      if (up?.completed?.modTime === u.modTime) return false
      const ops: MetaOp[] = []
      const removed = v?.modTime === u.modTime
      if (removed) {
        ops.push(
          { type: 'deleteVersion', bucket: u.bucket, key: u.key, versionId: u.versionId },
          {
            type: 'putSystem',
            key: tombstoneKey(u.bucket, u.key, u.versionId),
            value: { at: Date.now(), modTime: u.modTime, leftover: true } satisfies Tombstone,
          },
        )
      }
      // A later completion of the upload marked here stays marked (its own gateway settles it).
      if (
        up !== undefined &&
        (up.completing === undefined || up.completing.modTime === u.modTime)
      ) {
        const { completing: _, ...open } = up
        ops.push({ type: 'putUpload', record: { ...open, undone: u.modTime } })
      }
      if (ops.length > 0) await this.#submit(ops)
      return removed
    })
  }

  /** True when the bucket holds any version record (delete markers too): BucketNotEmpty. */
  async bucketHasVersions(name: string): Promise<boolean> {
    const prefix = versionScanPrefix(name)
    const keys = await this.#read('read a bucket', () =>
      this.#open.keys({ gte: prefix, lt: endOf(prefix), limit: 1 }).all(),
    )
    return keys.length > 0
  }

  // ---- multipart

  async putUpload(record: UploadRecord): Promise<void> {
    await this.#submit([{ type: 'putUpload', record }])
  }

  async getUpload(
    bucket: string,
    key: string,
    uploadId: string,
  ): Promise<UploadRecord | undefined> {
    return this.#getValue<UploadRecord>(uploadKey(bucket, key, uploadId), 'read an upload')
  }

  /**
   * Deletes an upload and all its parts in one batch; resolves true when the upload existed.
   * `lazy`: acknowledged without its own disk flush (the next synced write, or the OS, makes
   * it durable), for a cleanup that a crash may lose because it is redone later.
   */
  async deleteUpload(
    bucket: string,
    key: string,
    uploadId: string,
    options: { lazy?: boolean } = {},
  ): Promise<boolean> {
    const [existed] = await this.#submit(
      [{ type: 'deleteUpload', bucket, key, uploadId }],
      options.lazy,
    )
    return existed === true
  }

  /**
   * Deletes an upload's part records and replaces its record with `record` (same upload id),
   * in one batch; resolves true when the upload existed. `lazy`: see {@link deleteUpload}.
   */
  async replaceUpload(record: UploadRecord, options: { lazy?: boolean } = {}): Promise<boolean> {
    const { bucket, key, uploadId } = record
    const [existed] = await this.#submit(
      [
        { type: 'deleteUpload', bucket, key, uploadId },
        { type: 'putUpload', record },
      ],
      options.lazy,
    )
    return existed === true
  }

  /**
   * Uploads in progress, in key order then upload id order, with S3 marker semantics. Uploads
   * a completion has marked (`completing`) are no longer in progress and are left out.
   */
  async listUploads(options: ListUploadsOptions): Promise<ListUploadsResult> {
    const { bucket, keyMarker, uploadIdMarker, limit } = options
    checkLimit(limit)
    const scanPrefix = uploadScanPrefix(bucket, options.prefix ?? '')
    let from = scanPrefix
    if (keyMarker !== undefined) {
      const after =
        uploadIdMarker !== undefined
          ? Buffer.concat([uploadKey(bucket, keyMarker, uploadIdMarker), ZERO])
          : endOf(uploadKeyPrefix(bucket, keyMarker))
      from = maxKey(from, after)
    }
    const { items: uploads, isTruncated } = await this.#collect<UploadRecord>(
      'list uploads',
      from,
      endOf(scanPrefix),
      limit,
      (u) => u.completing === undefined && u.completed === undefined,
    )
    const result: ListUploadsResult = { uploads, isTruncated }
    const last = uploads.at(-1)
    if (isTruncated && last !== undefined) {
      result.nextKeyMarker = last.key
      result.nextUploadIdMarker = last.uploadId
    }
    return result
  }

  /** Stores a part record, replacing a part with the same number. */
  async putPart(record: PartRecord): Promise<void> {
    await this.#submit([{ type: 'putPart', record }])
  }

  /** Parts of an upload by number, after `partNumberMarker`, at most `limit`. */
  async getParts(
    bucket: string,
    key: string,
    uploadId: string,
    options: ListPartsOptions = {},
  ): Promise<ListPartsResult> {
    const limit = options.limit ?? Number.POSITIVE_INFINITY
    if (options.limit !== undefined) checkLimit(limit)
    const prefix = partKeyPrefix(bucket, key, uploadId)
    const from =
      options.partNumberMarker === undefined
        ? prefix
        : endOf(partKey(bucket, key, uploadId, options.partNumberMarker))
    const { items: parts, isTruncated } = await this.#collect<PartRecord>(
      'list parts',
      from,
      endOf(prefix),
      limit,
    )
    const result: ListPartsResult = { parts, isTruncated }
    const last = parts.at(-1)
    if (isTruncated && last !== undefined) result.nextPartNumberMarker = last.number
    return result
  }

  // ---- system records

  /** Stores any msgpack-encodable value under a system key. */
  async putSystem(key: string, value: unknown): Promise<void> {
    await this.#submit([{ type: 'putSystem', key, value }])
  }

  /** The value of a system key, or undefined. */
  async getSystem(key: string): Promise<unknown> {
    return this.#getValue<unknown>(systemKey(key), 'read a system record')
  }

  /** Deletes a system key; resolves true when it existed. */
  async deleteSystem(key: string): Promise<boolean> {
    const [existed] = await this.#submit([{ type: 'deleteSystem', key }])
    return existed === true
  }

  /** Every system record whose key starts with `prefix`, in key order. */
  async listSystem(prefix: string): Promise<SystemEntry[]> {
    const scanPrefix = systemScanPrefix(prefix)
    const out: SystemEntry[] = []
    await this.#scan('list system records', scanPrefix, endOf(scanPrefix), async (scan) => {
      for (let e = await scan.next(); e !== undefined; e = await scan.next()) {
        out.push({ key: decodeSingleKey(e[0], NAMESPACE.system), value: unpack<unknown>(e[1]) })
      }
    })
    return out
  }

  // ---- batches

  /**
   * Applies several changes atomically and durably, in order: later ops see earlier ones
   * (deleting an upload after putting one of its parts removes that part too).
   */
  async batch(ops: readonly MetaOp[]): Promise<void> {
    await this.#submit(ops)
  }

  // ---- internals

  get #open(): Level {
    if (this.#closing !== undefined) throw MetaStoreError.CLOSED(this.path)
    return this.#level
  }

  async #submit(ops: readonly MetaOp[], lazy = false): Promise<boolean[]> {
    if (this.#closing !== undefined) throw MetaStoreError.CLOSED(this.path)
    return this.#committer.submit({ ops: ops.map(prepare), lazy })
  }

  /**
   * One point lookup. Synchronous (see #getValue) while they are fast; a lookup that read from
   * the disk (a cold block: milliseconds on a busy or spinning disk) blocks the whole event
   * loop, every drive of the node with it, so after SLOW_READS_TO_SWITCH slower than the
   * threshold within SLOW_READS_SPAN_MS they go through the thread pool for
   * ASYNC_READ_WINDOW_MS, where the disk waits run side by side.
   */
  async #point(
    key: Uint8Array,
    snapshot?: ReturnType<Level['snapshot']>,
  ): Promise<Uint8Array | undefined> {
    if (!this.#readsAsync()) return this.#pointSync(key, snapshot)
    this.#readStats.async++
    const db = this.#open
    return (await (snapshot ? db.get(key, { snapshot }) : db.get(key))) ?? undefined
  }

  #readsAsync(): boolean {
    return this.#asyncReadsUntil !== 0 && performance.now() < this.#asyncReadsUntil
  }

  #pointSync(key: Uint8Array, snapshot?: ReturnType<Level['snapshot']>): Uint8Array | undefined {
    const db = this.#open
    const t0 = performance.now()
    const value = snapshot ? db.getSync(key, { snapshot }) : db.getSync(key)
    const took = performance.now() - t0
    this.#readStats.sync++
    if (took > this.#slowReadMs && this.#faulted()) {
      this.#readStats.slow++
      const now = performance.now()
      this.#slowAt.push(now)
      while (this.#slowAt.length > 0 && now - this.#slowAt[0]! > SLOW_READS_SPAN_MS)
        this.#slowAt.shift()
      if (this.#slowAt.length >= SLOW_READS_TO_SWITCH) {
        this.#slowAt = []
        this.#asyncReadsUntil = now + ASYNC_READ_WINDOW_MS
      }
    }
    return value ?? undefined
  }

  /** Whether the process took a major page fault (read a mapped file from the disk) lately. */
  #faulted(): boolean {
    const now = process.resourceUsage().majorPageFault
    const faulted = now > this.#majorFaults
    this.#majorFaults = now
    return faulted
  }

  async #pointMany(keys: Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    this.#readStats.async += keys.length
    return (await this.#open.getMany(keys)).map((v) => v ?? undefined)
  }

  async #read<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw MetaStoreError.from(err, this.path, doing)
    }
  }

  async #getValue<T>(key: Uint8Array, doing: string): Promise<T | undefined> {
    // A point lookup of a small record is served from LevelDB's memtable, block cache or the
    // page cache in microseconds: done synchronously it costs less than the thread-pool round
    // trip of get() (a task, two thread wake-ups, a promise), which on a busy node was most of
    // a small commit's CPU. Scans stay asynchronous.
    const value = await this.#read(doing, () => this.#point(key))
    return value === undefined ? undefined : unpack<T>(value)
  }

  /** Runs `fn` over a scan of [gte, lt) and records its step count. */
  /** Up to `limit` records of [gte, lt) in key order; reads one more to tell truncation. */
  async #collect<T>(
    doing: string,
    gte: Uint8Array,
    lt: Uint8Array,
    limit: number,
    keep?: (item: T) => boolean,
  ): Promise<{ items: T[]; isTruncated: boolean }> {
    const items: T[] = []
    let isTruncated = false
    await this.#scan(doing, gte, lt, async (scan) => {
      const wanted = () => limit - items.length + 1
      for (let e = await scan.next(wanted()); e !== undefined; e = await scan.next(wanted())) {
        const item = unpack<T>(e[1])
        if (keep !== undefined && !keep(item)) continue
        if (items.length >= limit) {
          isTruncated = true
          return
        }
        items.push(item)
      }
    })
    return { items, isTruncated }
  }

  async #scan(
    doing: string,
    gte: Uint8Array,
    lt: Uint8Array,
    fn: (scan: RangeScan) => Promise<void>,
    snapshot?: ReturnType<Level['snapshot']>,
  ): Promise<void> {
    const db = this.#open
    const scan = new RangeScan(db.iterator(snapshot ? { gte, lt, snapshot } : { gte, lt }))
    try {
      await fn(scan)
    } catch (err) {
      throw MetaStoreError.from(err, this.path, doing)
    } finally {
      this.#lastScanSteps = scan.steps
      await scan.close()
    }
  }

  /** Commits one group: reads what its ops depend on, resolves them in order, writes once. */
  async #commitGroup(group: GroupWrite[]): Promise<boolean[][]> {
    const writes = group.map((w) => w.ops)
    try {
      const db = this.#level
      // Reads first: no other batch runs while this one is prepared (the committer is the
      // only writer), so what is read here is what the batch applies to.
      const toRead = new Map<string, Buffer>()
      const scans: Buffer[] = []
      for (const ops of writes) {
        for (const p of ops) {
          if (p.op === 'put') continue
          const key = p.op === 'putVersion' || p.op === 'deleteVersion' ? p.index : p.key
          toRead.set(key.toString('latin1'), key)
          if (p.op === 'deleteUpload') scans.push(p.parts)
        }
      }
      const readKeys = [...toRead.values()]
      // Point lookups, as in #getValue: no other write runs while they are made.
      const values = this.#readsAsync()
        ? await this.#pointMany(readKeys)
        : readKeys.map((k) => this.#pointSync(k))
      const found = new Map<string, Uint8Array | null>()
      for (let i = 0; i < readKeys.length; i++) {
        found.set(readKeys[i]!.toString('latin1'), values[i] ?? null)
      }
      const partKeys = new Map<Buffer, Uint8Array[]>()
      for (const prefix of scans) {
        partKeys.set(prefix, await db.keys({ gte: prefix, lt: endOf(prefix) }).all())
      }

      const batch = new GroupBatch(found, partKeys)
      const results = writes.map((ops) => ops.map((p) => batch.apply(p)))
      if (batch.ops.length > 0) {
        const heads: string[] = []
        for (const ops of writes) {
          for (const p of ops) {
            if (p.op === 'putVersion' || p.op === 'deleteVersion')
              heads.push(p.head.toString('latin1'))
          }
        }
        // A chained batch puts each op straight into LevelDB's WriteBatch; the array form's
        // per-op checks and copies cost about a third of the throughput at 64 writers.
        const chained = db.batch()
        for (const op of batch.ops) {
          if (op.type === 'put') chained.put(op.key, op.value)
          else chained.del(op.key)
        }
        if (heads.length > 0) this.#forgetNewest(heads)
        try {
          // One flush for the group, unless every write in it may wait for a later one.
          await chained.write({ sync: group.some((w) => !w.lazy) })
        } finally {
          if (heads.length > 0) this.#forgetNewest(heads)
        }
      }
      return results
    } catch (err) {
      throw MetaStoreError.from(err, this.path, 'commit')
    }
  }
}

/**
 * The LevelDB operations a group resolves to. Tracks the value every key read or written has
 * after the ops so far (null = absent), so each op sees the effects of the earlier ones.
 */
class GroupBatch {
  readonly ops: RawOp[] = []
  readonly #state: Map<string, Uint8Array | null>
  readonly #partKeys: ReadonlyMap<Buffer, Uint8Array[]>

  /** `found`: the stored values of the keys the group reads; `partKeys`: parts on disk. */
  constructor(found: Map<string, Uint8Array | null>, partKeys: ReadonlyMap<Buffer, Uint8Array[]>) {
    this.#state = found
    this.#partKeys = partKeys
  }

  /** Adds the operations of one op; returns whether the record it replaces or deletes existed. */
  apply(p: Prepared): boolean {
    switch (p.op) {
      case 'put':
        this.#put(p.key, p.value)
        return false
      case 'del': {
        const existed = this.#current(p.key) !== null
        if (existed) this.#del(p.key)
        return existed
      }
      case 'putVersion': {
        const old = this.#current(p.index)
        if (old !== null && Buffer.compare(old, p.time) !== 0) {
          this.#del(Buffer.concat([p.head, old, p.tail]))
        }
        this.#put(Buffer.concat([p.head, p.time, p.tail]), p.value)
        this.#put(p.index, p.time)
        return old !== null
      }
      case 'deleteVersion': {
        const old = this.#current(p.index)
        if (old === null) return false
        this.#del(Buffer.concat([p.head, old, p.tail]))
        this.#del(p.index)
        return true
      }
      case 'deleteUpload': {
        const existed = this.#current(p.key) !== null
        if (existed) this.#del(p.key)
        for (const k of this.#partKeys.get(p.parts) ?? []) this.#del(k)
        // Parts put earlier in this same group are not on disk yet.
        const prefix = p.parts.toString('latin1')
        const pending = [...this.#state].filter(([k, v]) => v !== null && k.startsWith(prefix))
        for (const [k] of pending) this.#del(Buffer.from(k, 'latin1'))
        return existed
      }
    }
  }

  #put(key: Buffer, value: Buffer): void {
    this.ops.push({ type: 'put', key, value })
    this.#state.set(key.toString('latin1'), value)
  }

  #del(key: Uint8Array): void {
    this.ops.push({ type: 'del', key })
    this.#state.set(
      Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1'),
      null,
    )
  }

  #current(key: Buffer): Uint8Array | null {
    return this.#state.get(key.toString('latin1')) ?? null
  }
}

/**
 * A forward scan over a key range that reads ahead in batches, and can skip forward cheaply.
 * The batch size doubles after every read (up to {@link MAX_READ_AHEAD_ENTRIES}, and LevelDB
 * also stops a read at 16 KiB); a skip that discards read-ahead resets it to one entry, so
 * skipping a long run costs at most one batch of waste.
 */
class RangeScan {
  readonly #it: LevelIterator<Level, Uint8Array, Uint8Array>
  #buffer: Entry[] = []
  #pos = 0
  #size = 1
  /** Entries read from LevelDB so far. */
  steps = 0

  constructor(it: LevelIterator<Level, Uint8Array, Uint8Array>) {
    this.#it = it
  }

  /**
   * The next entry, or undefined at the end of the range. `wanted` is how many more entries
   * the caller can use at most: no read ahead goes beyond it.
   */
  async next(wanted = Number.POSITIVE_INFINITY): Promise<Entry | undefined> {
    if (this.#pos >= this.#buffer.length) {
      this.#buffer = await this.#it.nextv(Math.max(1, Math.min(this.#size, wanted)))
      this.#pos = 0
      this.steps += this.#buffer.length
      this.#size = Math.min(this.#size * 2, MAX_READ_AHEAD_ENTRIES)
    }
    return this.#buffer[this.#pos++]
  }

  /** Moves forward to the first entry at or after `target` (never backward). */
  skipTo(target: Uint8Array): void {
    let discarded = false
    while (this.#pos < this.#buffer.length) {
      if (compareKeys(this.#buffer[this.#pos]![0], target) >= 0) return
      this.#pos++
      discarded = true
    }
    // The target is past everything read: seek (synchronous, no read yet).
    this.#it.seek(target)
    this.#buffer = []
    this.#pos = 0
    if (discarded) this.#size = 1
  }

  async close(): Promise<void> {
    await this.#it.close()
  }
}

const ZERO = Buffer.from([0])

function unpack<T>(value: Uint8Array): T {
  return packr.unpack(value) as T
}

/** The exclusive end of the keys starting with `prefix` (prefixes here never end in 0xFF). */
function endOf(prefix: Uint8Array): Buffer {
  const end = prefixEnd(prefix)
  if (end === undefined) throw new RangeError('a key prefix of only 0xFF bytes has no end')
  return end
}

function maxKey(a: Buffer, b: Buffer): Buffer {
  return compareKeys(a, b) >= 0 ? a : b
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RangeError(`limit must be a non-negative integer (got ${limit})`)
  }
}

/** The common prefix `key` rolls up into under S3 delimiter rules, or undefined. */
function commonPrefixOf(key: string, prefix: string, delimiter?: string): string | undefined {
  if (!delimiter || !key.startsWith(prefix)) return undefined
  const i = key.indexOf(delimiter, prefix.length)
  return i < 0 ? undefined : key.slice(0, i + delimiter.length)
}

/**
 * Where a listing resumes after `marker`: past the marker's common prefix when it has one
 * (its keys were rolled up already), else past every version of the marker key.
 */
function afterMarker(
  bucket: string,
  prefix: string,
  delimiter: string | undefined,
  marker: string,
): Buffer {
  const common = commonPrefixOf(marker, prefix, delimiter)
  if (common !== undefined) return endOf(versionScanPrefix(bucket, common))
  return endOf(versionKeyPrefix(bucket, marker))
}

function prepare(op: MetaOp): Prepared {
  switch (op.type) {
    case 'putVersion': {
      const r = op.record
      return {
        op: 'putVersion',
        head: versionKeyPrefix(r.bucket, r.key),
        time: encodeModTime(r.modTime),
        tail: encodeString(r.versionId),
        index: versionIndexKey(r.bucket, r.key, r.versionId),
        value: packr.pack(r),
      }
    }
    case 'deleteVersion':
      return {
        op: 'deleteVersion',
        head: versionKeyPrefix(op.bucket, op.key),
        tail: encodeString(op.versionId),
        index: versionIndexKey(op.bucket, op.key, op.versionId),
      }
    case 'putBucket':
      return { op: 'put', key: bucketKey(op.record.name), value: packr.pack(op.record) }
    case 'deleteBucket':
      return { op: 'del', key: bucketKey(op.name) }
    case 'putUpload': {
      const r = op.record
      return { op: 'put', key: uploadKey(r.bucket, r.key, r.uploadId), value: packr.pack(r) }
    }
    case 'deleteUpload':
      return {
        op: 'deleteUpload',
        key: uploadKey(op.bucket, op.key, op.uploadId),
        parts: partKeyPrefix(op.bucket, op.key, op.uploadId),
      }
    case 'putPart': {
      const r = op.record
      return {
        op: 'put',
        key: partKey(r.bucket, r.key, r.uploadId, r.number),
        value: packr.pack(r),
      }
    }
    case 'putSystem':
      return { op: 'put', key: systemKey(op.key), value: packr.pack(op.value) }
    case 'deleteSystem':
      return { op: 'del', key: systemKey(op.key) }
  }
}
