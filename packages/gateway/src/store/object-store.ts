/* Design notes

The object layer of design §4, over the nodes' RPCs. Nothing here knows HTTP or S3 error
codes; failures are StoreErrors (QUORUM_FAILED, VERSION_NOT_FOUND, …) mapped to S3 in one place.

PUT: small objects (below the map's inlineBelow) are read whole, encoded on the event loop
(microseconds) and committed with each drive's shard inside its version record: one metadata
write per drive, no data file. Larger ones stream: body → encodeStream (worker pool) → Fanout →
n PutShard calls; then the caller's finish() checks digests (Content-MD5, checksums) and gives
the ETag; then CommitVersion on every drive that took its shard. Success needs the write quorum
at both steps; below it, the write is undone (AbortWrite, DeleteVersion) and nothing is
visible. Drives that missed the write are reported through onMiss for healing.

GET: ReadVersions on all n drives of the object's set (in every pool), then the newest version
that at least k drives agree on. The data is read from the drives that hold that version, data
shards first; a missing or bad shard is replaced by parity (decodeStream) and reported.
*/
import { randomUUID } from 'node:crypto'
import {
  type BlockCodec,
  decodeStream,
  donateChunk,
  ErasureLayout,
  encodeStream,
  SHARD_STALL_MS,
  type ShardStream,
} from '@tessera/codec'
import {
  AbortWrite,
  type AclGrant,
  type AclOwner,
  BufferPool,
  type BufferPoolStats,
  CommitVersion,
  DeleteVersion,
  type DriveSlot,
  HEDGE_MS,
  laterRecord,
  latestMeta,
  PutShard,
  ReadShard,
  ReadVersions,
  StoreError,
  type VersionRecord,
} from '@tessera/protocol'
import {
  asStoreError,
  type Cluster,
  type DriveResult,
  type Placement,
  type QuorumResults,
} from './cluster.ts'
import { Fanout } from './fanout.ts'
import { hlcNow, newVersionId } from './hlc.ts'
import { voteVersion } from './version-vote.ts'

/** How long a drive may make no progress on a write while the write quorum of others does. */
export const STALL_MS = 10_000

/**
 * How long a drive's node may send nothing at all (no answer, no credit, no pong) before a
 * write that the others carry goes on without it. A live node answers the pings its channels
 * get after a second of silence (rpc.ts's KEEPALIVE_MS), so it is never this silent, even with
 * a slow disk; a frozen one would hold the write until its channel is declared dead (5 s).
 */
export const SILENT_MS = 2000

export type Versioning = 'unversioned' | 'enabled' | 'suspended'

export interface ObjectStoreInit {
  cluster: Cluster
  /** Encodes and decodes large objects: the worker pool. */
  codec: BlockCodec
  /** Encodes small (inline) objects on the event loop, where a worker round trip costs more. */
  inlineCodec: BlockCodec
  /** Told of drives that missed a write or returned a bad shard (healing, issue #6). */
  onMiss?: (miss: ShardMiss) => void
}

export interface ShardMiss {
  bucket: string
  key: string
  /** The version, or (`upload`) a part of an upload in progress. */
  versionId?: string
  upload?: { uploadId: string; partNumber?: number }
  drive: DriveSlot
  /** A write that did not reach the drive, or a read that found its shard missing or bad. */
  kind: 'write' | 'read'
  reason: string
}

/** What a write must know besides its bytes. */
export interface WriteMeta {
  contentType?: string
  userMeta?: Record<string, string>
  tags?: Record<string, string>
  /** The object's owner and ACL, when not the defaults (see s3/acl.ts). */
  owner?: AclOwner
  acl?: AclGrant[]
}

export interface PutInput extends WriteMeta {
  bucket: string
  key: string
  /** Exact byte count of the body. */
  size: number
  body: AsyncIterable<Uint8Array>
  versioning: Versioning
  /**
   * Called once the whole body went through (and its shards are on the drives): checks the
   * body's digests and gives the ETag and checksums to store. Throwing aborts the write.
   */
  finish(): { etag: string; checksums?: Record<string, string> }
  signal?: AbortSignal
}

/** A version as the set agrees on it, with each agreeing drive's own copy of the record. */
export interface Resolved {
  placement: Placement
  record: VersionRecord
  /** Records by shard index, from the drives that hold this version. */
  byShard: Map<number, VersionRecord>
  /**
   * Only some drives were asked (they agreed, which settles the version); shards of the others
   * are read on trust and checked as they come.
   */
  partial?: boolean
}

/** Bytes [start, end) of an object. */
export interface ByteRange {
  start: number
  end: number
}

export interface ReadOptions {
  signal?: AbortSignal
  /**
   * The caller is done with each piece when it asks for the next (an HTTP response writes a
   * piece before it pulls another): the shard data then arrives in pooled buffers, reused by
   * later reads instead of left to the garbage collector (see @tessera/protocol's BufferPool).
   * A caller that keeps pieces (collects them, hands them on) must not set this.
   */
  reuseBuffers?: boolean
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

export class ObjectStore {
  readonly cluster: Cluster
  #codec: BlockCodec
  #inline: BlockCodec
  #onMiss: (miss: ShardMiss) => void
  /** Where reads with reuseBuffers receive their shard data. */
  readonly #buffers = new BufferPool()
  #hedges = 0

  constructor(init: ObjectStoreInit) {
    this.cluster = init.cluster
    this.#codec = init.codec
    this.#inline = init.inlineCodec
    this.#onMiss = init.onMiss ?? (() => {})
  }

  get erasure(): { k: number; m: number; blockSize: number; inlineBelow: number } {
    const e = this.cluster.map.erasure
    return { k: e.data, m: e.parity, blockSize: e.blockSize, inlineBelow: e.inlineBelow }
  }

  layout(): ErasureLayout {
    const e = this.erasure
    return new ErasureLayout({ k: e.k, m: e.m, blockSize: e.blockSize })
  }

  /** The pool a write of this key goes to: where the key already lives, else a new choice. */
  async placeForWrite(bucket: string, key: string): Promise<Placement> {
    if (this.cluster.layout.pools.length > 1) {
      const found = await this.resolve(bucket, key).catch(() => undefined)
      if (found) return found.placement
    }
    return this.cluster.place(await this.cluster.poolForNewObject(), bucket, key)
  }

  /** Writes an object version; see the design notes. */
  async put(input: PutInput): Promise<VersionRecord> {
    const placement = await this.placeForWrite(input.bucket, input.key)
    const versionId = input.versioning === 'enabled' ? newVersionId() : 'null'
    const base = this.#baseRecord(input.bucket, input.key, versionId, placement, input)
    if (input.size < this.erasure.inlineBelow) {
      return this.#putInline(input, placement, base)
    }
    return this.#putStreamed(input, placement, base)
  }

  #baseRecord(
    bucket: string,
    key: string,
    versionId: string,
    placement: Placement,
    meta: WriteMeta & { size?: number },
  ): VersionRecord {
    const e = this.erasure
    return {
      bucket,
      key,
      versionId,
      modTime: hlcNow(),
      size: meta.size ?? 0,
      etag: '',
      ...(meta.contentType !== undefined ? { contentType: meta.contentType } : {}),
      ...(meta.userMeta && Object.keys(meta.userMeta).length > 0
        ? { userMeta: meta.userMeta }
        : {}),
      ...(meta.tags && Object.keys(meta.tags).length > 0 ? { tags: meta.tags } : {}),
      ...(meta.owner !== undefined ? { owner: meta.owner } : {}),
      ...(meta.acl !== undefined ? { acl: meta.acl } : {}),
      erasure: {
        k: e.k,
        m: e.m,
        blockSize: e.blockSize,
        distribution: placement.distribution,
        index: 0,
      },
      parts: [],
      deleteMarker: false,
    }
  }

  async #putInline(
    input: PutInput,
    placement: Placement,
    base: VersionRecord,
  ): Promise<VersionRecord> {
    // Bounded by inlineBelow: read it whole, then encode on the event loop.
    const chunks: Uint8Array[] = []
    let got = 0
    for await (const c of input.body) {
      got += c.length
      if (got > input.size)
        throw new StoreError('INVALID_REQUEST', 'the body is longer than its size')
      chunks.push(c)
    }
    if (got !== input.size) {
      throw new StoreError('INVALID_REQUEST', `the body ended after ${got} of ${input.size} bytes`)
    }
    const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
    const { etag, checksums } = input.finish()
    const files = await this.encodeSmall(data)
    const record = withDigests(base, input.size, etag, checksums)
    const drives = placement.distribution.map((slot) => placement.set.drives[slot]!)
    const results = await this.cluster.callQuorum(
      drives,
      CommitVersion,
      (_d, shard) => ({
        record: { ...record, erasure: { ...record.erasure, index: shard }, inline: files[shard]! },
      }),
      this.cluster.writeQuorum,
    )
    await this.#judgeCommit(record, results)
    return record
  }

  /** The n framed shard files of a small object, in memory. */
  async encodeSmall(data: Uint8Array): Promise<Buffer[]> {
    const full = this.layout()
    // A one-block object frames the same whatever the block size (its chunks are
    // ceil(size / k) bytes), so encode it with a block just big enough: the encoder's stripe
    // buffer is then a few KiB, not a whole block.
    const layout =
      data.length <= full.blockSize
        ? new ErasureLayout({
            k: full.k,
            m: full.m,
            blockSize: Math.max(full.k, Math.ceil(data.length / full.k) * full.k),
          })
        : full
    const files: Uint8Array[][] = Array.from({ length: layout.n }, () => [])
    for await (const b of encodeStream(once(data), { layout, codec: this.#inline })) {
      for (let i = 0; i < layout.n; i++) files[i]!.push(b.headers[i]!.slice(), b.shards[i]!.slice())
      b.release()
    }
    return files.map((f) => Buffer.concat(f))
  }

  async #putStreamed(
    input: PutInput,
    placement: Placement,
    base: VersionRecord,
  ): Promise<VersionRecord> {
    const dataDir = randomUUID()
    const tmpId = randomUUID()
    const written = await this.writeShards({
      placement,
      bucket: input.bucket,
      key: input.key,
      dataDir,
      part: 1,
      tmpId,
      size: input.size,
      body: input.body,
      ...(input.signal ? { signal: input.signal } : {}),
    })
    let etag: string
    let checksums: Record<string, string> | undefined
    try {
      ;({ etag, checksums } = input.finish())
    } catch (err) {
      await this.abortShards(written.ok, tmpId)
      throw err
    }
    const record: VersionRecord = { ...withDigests(base, input.size, etag, checksums), dataDir }
    const results = await this.cluster.callQuorum(
      written.ok.map((w) => w.drive),
      CommitVersion,
      (_d, i) => ({
        record: { ...record, erasure: { ...record.erasure, index: written.ok[i]!.shard } },
        tmpId,
      }),
      this.cluster.writeQuorum,
    )
    for (const f of written.failed) this.#miss(record, f.drive, f.reason, 'write')
    await this.#judgeCommit(record, results)
    return record
  }

  /**
   * Streams a body into n shard files in the drives' tmp folders. Returns the drives that took
   * their shard (at least the write quorum) and those that did not; below quorum it cleans up
   * and throws QUORUM_FAILED (or the body's own error).
   */
  async writeShards(w: {
    placement: Placement
    bucket: string
    key: string
    dataDir: string
    part: number
    tmpId: string
    size: number
    body: AsyncIterable<Uint8Array>
    signal?: AbortSignal
  }): Promise<{
    ok: { drive: DriveSlot; shard: number }[]
    failed: { drive: DriveSlot; shard: number; reason: string }[]
  }> {
    const layout = this.layout()
    const n = layout.n
    const fileBytes = layout.shardFileBytes(w.size)
    const fan = new Fanout(n)
    const abort = new AbortController()
    const onOuterAbort = () => abort.abort()
    w.signal?.addEventListener('abort', onOuterAbort, { once: true })
    const drives = w.placement.distribution.map((slot) => w.placement.set.drives[slot]!)
    const failures = new Map<number, string>()
    // A drive whose node went silent (a cut link: no error, no answer) must not hold the write
    // until the stream deadline: the watchdog gives up on it after STALL_MS of no progress, or
    // once its node sent nothing for SILENT_MS, while the write quorum of others went on, and
    // the write continues without it (a miss the drive's node heals).
    const own = drives.map(() => new AbortController())
    const done = drives.map(() => false)
    const moved = drives.map(() => ({ pos: -1, at: Date.now() }))
    let quorumAt: number | undefined
    let tickAt = Date.now()
    const watchdog = setInterval(() => {
      const now = Date.now()
      // A late tick means this process stalled: the nodes' answers may be waiting unread, so
      // their silence is not theirs (as in RpcClient's liveness check).
      const stalledHere = now - tickAt > 1000
      tickAt = now
      const finished = done.filter(Boolean).length
      if (finished >= this.cluster.writeQuorum) quorumAt ??= now
      for (let i = 0; i < n; i++) {
        if (done[i] || !fan.isAlive(i)) continue
        const pos = fan.position(i)
        if (pos !== moved[i]!.pos) moved[i] = { pos, at: now }
        const ahead = drives.filter((_, j) => j !== i && (done[j] || fan.position(j) > pos)).length
        const silent = stalledHere ? 0 : this.cluster.silentMs(drives[i]!.nodeId)
        const slow = now - moved[i]!.at > STALL_MS || silent > SILENT_MS
        const stalled = slow && ahead >= this.cluster.writeQuorum
        const late = quorumAt !== undefined && (now - quorumAt > STALL_MS || silent > SILENT_MS)
        if (stalled || late) {
          const why =
            silent > SILENT_MS
              ? `its node sent nothing for ${silent} ms`
              : `it made no progress for ${STALL_MS} ms`
          own[i]!.abort(
            new StoreError(
              'DEADLINE_EXCEEDED',
              `drive ${drives[i]!.nodeId}:${drives[i]!.path} left out of the write: ${why} while the others took it`,
            ),
          )
        }
      }
    }, 500)
    watchdog.unref()
    abort.signal.addEventListener('abort', () => {
      for (const c of own) c.abort()
    })
    const calls = drives.map(async (drive, shard) => {
      try {
        await this.cluster.call(
          drive,
          PutShard,
          {
            bucket: w.bucket,
            key: w.key,
            dataDir: w.dataDir,
            part: w.part,
            tmpId: w.tmpId,
            size: fileBytes,
          },
          { body: fan.stream(shard), signal: own[shard]!.signal },
        )
        done[shard] = true
      } catch (err) {
        const reason = own[shard]!.signal.reason
        failures.set(
          shard,
          reason instanceof Error && !abort.signal.aborted
            ? reason.message
            : (err as Error).message,
        )
        fan.kill(shard)
        if (fan.aliveCount < this.cluster.writeQuorum) {
          fan.fail(
            new StoreError(
              'QUORUM_FAILED',
              `only ${fan.aliveCount} of ${n} drives took the write (need ${this.cluster.writeQuorum}): ${(err as Error).message}`,
            ),
          )
        }
      }
    })
    let bodyError: unknown
    try {
      let total = 0
      for await (const block of encodeStream(
        countBytes(w.body, w.size, (t) => (total = t)),
        {
          layout,
          codec: this.#codec,
        },
      )) {
        await fan.add(block)
      }
      if (total !== w.size) {
        throw new StoreError('INVALID_REQUEST', `the body ended after ${total} of ${w.size} bytes`)
      }
      fan.end()
    } catch (err) {
      bodyError = err
      fan.fail(err as Error)
      abort.abort()
    }
    await Promise.all(calls)
    clearInterval(watchdog)
    w.signal?.removeEventListener('abort', onOuterAbort)
    const ok: { drive: DriveSlot; shard: number }[] = []
    const failed: { drive: DriveSlot; shard: number; reason: string }[] = []
    drives.forEach((drive, shard) => {
      const why = failures.get(shard)
      if (why === undefined) ok.push({ drive, shard })
      else failed.push({ drive, shard, reason: why })
    })
    if (bodyError !== undefined || ok.length < this.cluster.writeQuorum) {
      await this.abortShards(
        drives.map((drive, shard) => ({ drive, shard })),
        w.tmpId,
      )
      if (bodyError !== undefined) throw bodyError
      throw new StoreError(
        'QUORUM_FAILED',
        `only ${ok.length} of ${n} drives took the write (need ${this.cluster.writeQuorum}): ${failed.map((f) => f.reason).join('; ')}`,
      )
    }
    return { ok, failed }
  }

  /** Drops tmp files of a write that will not be committed (best effort). */
  async abortShards(drives: { drive: DriveSlot }[], tmpId: string): Promise<void> {
    await this.cluster.callAll(
      drives.map((d) => d.drive),
      AbortWrite,
      { tmpId },
    )
  }

  /** Success at write quorum; below it, undoes the commits that happened and throws. */
  /**
   * Success or undo of a commit, decided as soon as a write quorum of drives committed or
   * could no longer commit (see Cluster.callQuorum): the client does not wait for the slowest
   * drive. At the quorum, drives that failed, then or later, are reported for healing. Below
   * it, the drives that committed take the write back, and so do the others, failed or still
   * committing (without waiting: they may be away), so that a commit of this write still in
   * flight there is dropped when it arrives.
   */
  async #judgeCommit(record: VersionRecord, q: QuorumResults<unknown>): Promise<void> {
    const ok = q.settled.filter((r) => r.ok)
    if (ok.length >= this.cluster.writeQuorum) {
      const miss = (r: DriveResult<unknown>) => {
        if (!r.ok) this.#miss(record, r.drive, r.error.message, 'write')
      }
      q.settled.forEach(miss)
      if (q.pending.length > 0) void q.rest.then((late) => late.forEach(miss))
      return
    }
    // 'null' versions replaced the previous one on these drives; a new id is simply removed.
    // Only this write (its modTime): an undo that arrives late must not take a newer write of
    // the key that landed meanwhile.
    const undo = {
      bucket: record.bucket,
      key: record.key,
      versionId: record.versionId,
      modTime: record.modTime,
    }
    const others = [...q.settled.filter((r) => !r.ok).map((r) => r.drive), ...q.pending]
    if (others.length > 0) void this.cluster.callAll(others, DeleteVersion, undo).catch(() => {})
    await this.cluster.callAll(
      ok.map((r) => r.drive),
      DeleteVersion,
      undo,
    )
    const why = q.settled.filter((r) => !r.ok).map((r) => (r.ok ? '' : r.error.message))
    throw new StoreError(
      'QUORUM_FAILED',
      `only ${ok.length} drives committed ${record.bucket}/${record.key} (need ${this.cluster.writeQuorum}): ${why.join('; ')}`,
    )
  }

  /** Tells the drive's node that it lacks `record` (a write that did not reach it). */
  missedWrite(
    record: Pick<VersionRecord, 'bucket' | 'key' | 'versionId'>,
    drive: DriveSlot,
    reason: string,
  ): void {
    this.#miss(record, drive, reason, 'write')
  }

  /**
   * Reports a drive that missed an upload in progress, for healing: its part `partNumber`, or
   * with no part number the upload's record (CreateMultipartUpload).
   */
  missedUpload(
    up: { bucket: string; key: string; uploadId: string },
    partNumber: number | undefined,
    drive: DriveSlot,
    reason: string,
  ): void {
    this.#onMiss({
      bucket: up.bucket,
      key: up.key,
      upload: { uploadId: up.uploadId, ...(partNumber !== undefined ? { partNumber } : {}) },
      drive,
      kind: 'write',
      reason,
    })
  }

  #miss(
    record: Pick<VersionRecord, 'bucket' | 'key' | 'versionId'>,
    drive: DriveSlot,
    reason: string,
    kind: 'write' | 'read',
  ): void {
    this.#onMiss({
      bucket: record.bucket,
      key: record.key,
      versionId: record.versionId,
      drive,
      kind,
      reason,
    })
  }

  /**
   * The version of a key the set agrees on: the newest one held by at least k drives (or the
   * one named by versionId). VERSION_NOT_FOUND when enough drives answered and none agree on
   * a version; QUORUM_FAILED when too few answered to tell.
   */
  async resolve(bucket: string, key: string, versionId?: string): Promise<Resolved> {
    const pools = this.cluster.layout.pools.map((p) => p.index)
    const found = await Promise.all(pools.map((p) => this.#resolveIn(p, bucket, key, versionId)))
    let best: Resolved | undefined
    let unknown = false
    for (const f of found) {
      if (f === 'unknown') unknown = true
      else if (f !== undefined && (best === undefined || f.record.modTime > best.record.modTime))
        best = f
    }
    if (best) return best
    if (unknown) {
      throw new StoreError(
        'QUORUM_FAILED',
        `too few drives answered to find ${bucket}/${key}; need ${this.cluster.readQuorum}`,
      )
    }
    throw new StoreError(
      'VERSION_NOT_FOUND',
      versionId === undefined
        ? `no ${bucket}/${key}`
        : `no version ${versionId} of ${bucket}/${key}`,
    )
  }

  #resolveIn(
    pool: number,
    bucket: string,
    key: string,
    versionId?: string,
  ): Promise<Resolved | 'unknown' | undefined> {
    const placement = this.cluster.place(pool, bucket, key)
    const drives = placement.set.drives
    const req = { bucket, key, ...(versionId !== undefined ? { versionId } : { limit: 1 }) }
    const shape = { n: drives.length, k: this.cluster.readQuorum, wq: this.cluster.writeQuorum }
    // Any r = n - wq + 1 drives that agree (and at least k, to read the data) settle the answer
    // (see voteVersion): ask the holders of shards 0..r-1 first, and the rest when they
    // disagree, fail, or have not all answered within HEDGE_MS (a frozen node answers nothing
    // until its channel is declared dead, seconds later).
    const r = Math.min(shape.n, Math.max(shape.k, shape.n - shape.wq + 1))
    const order = placement.distribution
    const answers: DriveResult<{ versions: VersionRecord[] }>[] = []
    return new Promise((resolve) => {
      let asked = 0
      let settled = false
      let hedge: NodeJS.Timeout | undefined
      const ask = (upTo: number): void => {
        for (; asked < upTo; asked++) {
          const drive = drives[order[asked]!]!
          const heard = (a: DriveResult<{ versions: VersionRecord[] }>): void => {
            if (settled) return
            answers.push(a)
            judge()
          }
          this.cluster.call(drive, ReadVersions, req).then(
            (value) => heard({ drive, ok: true, value }),
            (err: unknown) => heard({ drive, ok: false, error: asStoreError(err) }),
          )
        }
      }
      const judge = (): void => {
        const heard: (VersionRecord | undefined)[] = []
        for (const a of answers) if (a.ok) heard.push(a.value.versions[0])
        const vote = voteVersion(heard, shape)
        if (vote.kind === 'wait') {
          if (answers.length < asked) return
          if (asked < shape.n) {
            ask(shape.n)
            return
          }
        }
        settled = true
        clearTimeout(hedge)
        if (vote.kind === 'wait') {
          // Every drive was heard from (or failed): a version that may be committed cannot be
          // read, and may not be called absent either.
          resolve('unknown')
          return
        }
        if (vote.kind === 'none') {
          resolve(undefined)
          return
        }
        // Holders may differ in the version's tags or ACL (a change some missed): the latest.
        const chosen = latestMeta(vote.holders)
        const byShard = new Map<number, VersionRecord>()
        for (const v of vote.holders) byShard.set(v.erasure.index, v)
        // Drives that answered without the chosen version, or with an older state of it, missed
        // a write, a metadata change or a heal: repair.
        for (const a of answers) {
          const v = a.ok ? a.value.versions[0] : undefined
          if (!a.ok) continue
          if (v === undefined || v.modTime < chosen.modTime) {
            this.#miss(chosen, a.drive, 'the drive lacks the version its set agrees on', 'read')
          } else if (laterRecord(chosen, v)) {
            this.#miss(
              chosen,
              a.drive,
              'the drive missed a change of the version’s tags or ACL',
              'read',
            )
          }
        }
        resolve({
          // The object's own distribution, not this pool's placement of today (they agree
          // unless the map changed k or m, which it may not).
          placement: { ...placement, distribution: chosen.erasure.distribution },
          record: chosen,
          byShard,
          // Drives never asked may hold shards too: read on trust, checked as they come. Drives
          // asked that did not answer with this version are not read.
          partial: asked < shape.n,
        })
      }
      ask(r)
      if (asked < shape.n) {
        hedge = setTimeout(() => {
          if (settled || asked >= shape.n) return
          this.#hedges++
          ask(shape.n)
        }, HEDGE_MS)
      }
    })
  }

  /** Version lookups that asked every drive of the set because the first were slow (HEDGE_MS). */
  get hedges(): number {
    return this.#hedges
  }

  /** What the read buffers hold (see ReadOptions.reuseBuffers), for metrics. */
  readBuffers(): BufferPoolStats {
    return this.#buffers.stats()
  }

  /**
   * The bytes of a resolved version (or of `range` of it), streamed and verified, rebuilt
   * from parity where shards are missing or bad.
   */
  async *read(r: Resolved, range?: ByteRange, opts: ReadOptions = {}): AsyncGenerator<Uint8Array> {
    const rec = r.record
    const want = range ?? { start: 0, end: rec.size }
    let partStart = 0
    for (const part of rec.parts) {
      const partEnd = partStart + part.size
      const lo = Math.max(want.start, partStart)
      const hi = Math.min(want.end, partEnd)
      if (hi > lo)
        yield* this.#readPart(r, part.number, part.size, lo - partStart, hi - partStart, opts)
      partStart = partEnd
      if (partStart >= want.end) break
    }
  }

  async *#readPart(
    r: Resolved,
    partNumber: number,
    partSize: number,
    start: number,
    end: number,
    opts: ReadOptions,
  ): AsyncGenerator<Uint8Array> {
    const rec = r.record
    const layout = new ErasureLayout({
      k: rec.erasure.k,
      m: rec.erasure.m,
      blockSize: rec.erasure.blockSize,
    })
    const stride = 8 + layout.fullChunkBytes
    const inline = storedInline(rec)
    const codec = inline ? this.#inline : this.#codec
    const { signal } = opts
    const buffers = opts.reuseBuffers && !inline ? this.#buffers : undefined
    yield* decodeStream({
      layout,
      codec,
      size: partSize,
      range: { start, end },
      // A node checks every chunk it sends (readShardBlocks) and the channel authenticates it.
      sourcesVerify: !inline,
      ...(buffers ? { recycle: (chunk: Uint8Array) => buffers.release(chunk) } : {}),
      // A shard whose drive hangs behind a live node would hold the GET until the stream's
      // one-hour deadline: given up on, the read goes on from parity. Inline shards come from
      // records in memory (or one ReadVersions call, with its own deadline): no timers.
      ...(inline ? {} : { stallMs: SHARD_STALL_MS }),
      onShardError: (shard, err) => {
        const drive = r.placement.set.drives[rec.erasure.distribution[shard]!]
        if (drive) this.#miss(rec, drive, err.message, 'read')
      },
      open: (shard, span, cancel): ShardStream | undefined => {
        const own = r.byShard.get(shard)
        if (own === undefined && !r.partial) return undefined
        const drive = r.placement.set.drives[rec.erasure.distribution[shard]!]!
        const cluster = this.cluster
        if (inline) {
          if (own !== undefined) {
            if (own.inline === undefined) return undefined
            return once(Buffer.from(own.inline).subarray(span.offset, span.offset + span.length))
          }
          // A drive not asked while resolving: fetch its copy of the record now.
          return (async function* () {
            const { versions } = await cluster.call(drive, ReadVersions, {
              bucket: rec.bucket,
              key: rec.key,
              versionId: rec.versionId,
            })
            const v = versions[0]
            if (v?.modTime !== rec.modTime || v.inline === undefined) {
              throw new StoreError(
                'SHARD_NOT_FOUND',
                `drive ${drive.nodeId}:${drive.path} does not hold this version of ${rec.bucket}/${rec.key}`,
              )
            }
            yield Buffer.from(v.inline).subarray(span.offset, span.offset + span.length)
          })()
        }
        return (async function* () {
          const { body } = await cluster.callStream(
            drive,
            ReadShard,
            {
              bucket: rec.bucket,
              key: rec.key,
              dataDir: rec.dataDir!,
              part: partNumber,
              size: partSize,
              k: rec.erasure.k,
              blockSize: rec.erasure.blockSize,
              firstBlock: Math.floor(span.offset / stride),
              lastBlock: Math.floor((span.offset + span.length - 1) / stride),
            },
            {
              signal: signal ? AbortSignal.any([signal, cancel.signal]) : cancel.signal,
              ...(buffers ? { buffers } : {}),
            },
          )
          if (buffers) {
            yield* body
            return
          }
          // Each body chunk is a frame's own plaintext, used nowhere else: the codec may take it.
          for await (const chunk of body) {
            donateChunk(chunk)
            yield chunk
          }
        })()
      },
    })
  }

  /**
   * Deletes: a specific version (any bucket state), or the 'null' version of an unversioned
   * bucket; in a versioned or suspended bucket without a version id, adds a delete marker.
   */
  async delete(
    bucket: string,
    key: string,
    versioning: Versioning,
    versionId?: string,
  ): Promise<{ deleteMarker?: VersionRecord; removed?: VersionRecord }> {
    if (versionId === undefined && versioning !== 'unversioned') {
      const placement = await this.placeForWrite(bucket, key)
      const marker: VersionRecord = {
        ...this.#baseRecord(
          bucket,
          key,
          versioning === 'enabled' ? newVersionId() : 'null',
          placement,
          {},
        ),
        deleteMarker: true,
      }
      const drives = placement.distribution.map((slot) => placement.set.drives[slot]!)
      const results = await this.cluster.callQuorum(
        drives,
        CommitVersion,
        (_d, shard) => ({ record: { ...marker, erasure: { ...marker.erasure, index: shard } } }),
        this.cluster.writeQuorum,
      )
      await this.#judgeCommit(marker, results)
      return { deleteMarker: marker }
    }
    const vid = versionId ?? 'null'
    const found = await this.resolve(bucket, key, vid).catch((err: StoreError) => {
      if (err.code === 'VERSION_NOT_FOUND') return undefined
      throw err
    })
    // Delete wherever the key may live: the set of every pool that could hold it.
    const placements = found
      ? [found.placement]
      : this.cluster.layout.pools.map((p) => this.cluster.place(p.index, bucket, key))
    for (const placement of placements) {
      // Done at the write quorum: a silent drive keeps the version until its node runs again
      // and hears of it, or a heal removes what fewer than k drives hold.
      const { settled } = await this.cluster.callQuorum(
        placement.set.drives,
        DeleteVersion,
        { bucket, key, versionId: vid },
        this.cluster.writeQuorum,
      )
      this.cluster.requireWriteQuorum(settled, `removed ${bucket}/${key}`)
    }
    return found ? { removed: found.record } : {}
  }

  /**
   * Rewrites a version's metadata (tags) on every drive that holds it, keeping each drive's
   * own shard index and inline bytes.
   */
  async updateRecord(
    r: Resolved,
    change: (rec: VersionRecord) => VersionRecord,
  ): Promise<VersionRecord> {
    const drives = r.placement.set.drives
    const holds = (x: DriveResult<{ versions: VersionRecord[] }>) =>
      x.ok && x.value.versions[0]?.modTime === r.record.modTime
    // Every holder that answers gets the change; one still silent after HEDGE_MS (a frozen
    // node) is not waited for once the write quorum of holders answered. The change keeps the
    // version's modTime and carries its own metaTime: a holder that missed it (away, or too
    // slow) keeps an older metaTime, which reads pass over and healing brings up to date.
    const { settled } = await this.cluster.callUntil(
      drives,
      ReadVersions,
      { bucket: r.record.bucket, key: r.record.key, versionId: r.record.versionId },
      (s, graceOver) => graceOver && s.filter(holds).length >= this.cluster.writeQuorum,
      { graceMs: HEDGE_MS },
    )
    const holders = settled.filter((x): x is Extract<typeof x, { ok: true }> => holds(x))
    // The change's own time orders it after every earlier one, whichever gateway made those
    // (its clock may be ahead of ours): a drive keeps the record with the latest metaTime.
    // The change applies to the latest state (a holder that missed an earlier change of the
    // ACL must not keep its old ACL under the new metaTime); each keeps its shard and bytes.
    const latest = latestMeta([r.record, ...holders.map((h) => h.value.versions[0]!)])
    const metaTime = Math.max(hlcNow(), (latest.metaTime ?? 0) + 1)
    const { inline: _theirs, ...next } = { ...change(latest), metaTime }
    const results = await this.cluster.callAll(
      holders.map((h) => h.drive),
      CommitVersion,
      (_d, i) => {
        const own = holders[i]!.value.versions[0]!
        return {
          record: {
            ...next,
            erasure: own.erasure,
            ...(own.inline !== undefined ? { inline: own.inline } : {}),
          },
        }
      },
    )
    this.cluster.requireWriteQuorum(results, `updated ${r.record.bucket}/${r.record.key}`)
    return next
  }
}

/** A one-part version's record once its body went through: size, ETag and checksums. */
function withDigests(
  base: VersionRecord,
  size: number,
  etag: string,
  checksums: Record<string, string> | undefined,
): VersionRecord {
  return {
    ...base,
    size,
    etag,
    ...(checksums && Object.keys(checksums).length > 0 ? { checksums } : {}),
    parts: [{ number: 1, size, etag }],
  }
}

/** Whether a version's shards live in its records (inline) rather than in shard files. */
export function storedInline(rec: VersionRecord): boolean {
  return rec.inline !== undefined || rec.dataDir === undefined
}

/** Passes a body through, counting bytes; fails when it runs past `size`. */
async function* countBytes(
  body: AsyncIterable<Uint8Array>,
  size: number,
  onTotal: (total: number) => void,
): AsyncGenerator<Uint8Array> {
  let total = 0
  for await (const c of body) {
    total += c.length
    if (total > size)
      throw new StoreError('INVALID_REQUEST', `the body is longer than ${size} bytes`)
    onTotal(total)
    yield c
  }
  onTotal(total)
}
