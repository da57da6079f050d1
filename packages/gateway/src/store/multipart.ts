/**
 * Multipart uploads over the nodes (design §4): the upload record and every part record live
 * on all n drives of the object's set, like a version. Parts are shard files `part.<N>` in the
 * upload's own data folder; Complete writes a version record that names that folder and the
 * chosen parts, so no byte is copied (CompleteUpload RPC).
 */
import { randomUUID } from 'node:crypto'
import {
  type AclOwner,
  CheckUpload,
  CommitPart,
  CompleteUpload,
  DeleteUpload,
  type DriveSlot,
  FinishUpload,
  GetUpload,
  HLC_COUNTER_SPAN,
  ListParts,
  ListUploads,
  type PartRecord,
  PutUpload,
  StoreError,
  UndoCompletion,
  type UploadRecord,
  type VersionRecord,
} from '@tessera/protocol'
import type { DriveResult, Placement } from './cluster.ts'
import { hlcNow, newUploadId, newVersionId } from './hlc.ts'
import { compareUtf8 } from './listing.ts'
import type { ObjectStore, Versioning, WriteMeta } from './object-store.ts'

export interface Upload {
  record: UploadRecord
  placement: Placement
}

/** An upload completed lately, and as what (see MultipartStore.lookup). */
export interface Completed {
  completed: NonNullable<UploadRecord['completed']>
}

/** One completion of an upload as the drives of its set report it (MultipartStore.lookup). */
interface Completion {
  completed: NonNullable<UploadRecord['completed']>
  /** Drives that settled it (FinishUpload). */
  settled: number
  /** Drives that hold it unsettled (CompleteUpload, then nothing). */
  marked: DriveSlot[]
}

/**
 * How old an unsettled completion below its write quorum must be before a lookup takes it
 * back: its gateway decides within a few call deadlines (10 s each) of writing it, so one this
 * old has no gateway left waiting on it.
 */
export const ABANDONED_AFTER_MS = 60_000
const ABANDONED_AFTER_HLC = ABANDONED_AFTER_MS * HLC_COUNTER_SPAN

export class MultipartStore {
  #objects: ObjectStore

  constructor(objects: ObjectStore) {
    this.#objects = objects
  }

  get #cluster() {
    return this.#objects.cluster
  }

  async create(
    bucket: string,
    key: string,
    meta: WriteMeta & {
      checksumAlgorithm?: string
      checksumType?: 'COMPOSITE' | 'FULL_OBJECT'
      initiator?: AclOwner
    },
  ): Promise<UploadRecord> {
    const placement = await this.#objects.placeForWrite(bucket, key)
    const uploadId = newUploadId()
    const e = this.#objects.erasure
    const record: UploadRecord = {
      bucket,
      key,
      uploadId,
      initiated: hlcNow(),
      ...(meta.contentType !== undefined ? { contentType: meta.contentType } : {}),
      ...(meta.userMeta && Object.keys(meta.userMeta).length > 0
        ? { userMeta: meta.userMeta }
        : {}),
      ...(meta.tags && Object.keys(meta.tags).length > 0 ? { tags: meta.tags } : {}),
      ...(meta.checksumAlgorithm ? { checksumAlgorithm: meta.checksumAlgorithm } : {}),
      ...(meta.checksumType ? { checksumType: meta.checksumType } : {}),
      ...(meta.initiator !== undefined ? { initiator: meta.initiator } : {}),
      ...(meta.owner !== undefined ? { owner: meta.owner } : {}),
      ...(meta.acl !== undefined ? { acl: meta.acl } : {}),
      dataDir: uploadId.slice(0, 64),
      erasure: {
        k: e.k,
        m: e.m,
        blockSize: e.blockSize,
        distribution: placement.distribution,
        index: 0,
      },
    }
    const drives = placement.distribution.map((slot) => placement.set.drives[slot]!)
    // Settled at the write quorum: a drive still silent (a frozen node) is not waited for. A
    // drive's parts do not need its upload record (CommitPart does not look), and one that
    // missed it is reported, then or when its call ends, and healed.
    const { settled, rest } = await this.#cluster.callQuorum(
      drives,
      PutUpload,
      (_d, shard) => ({ record: { ...record, erasure: { ...record.erasure, index: shard } } }),
      this.#cluster.writeQuorum,
    )
    const report = (results: readonly DriveResult<unknown>[]): void => {
      for (const r of results)
        if (!r.ok) this.#objects.missedUpload(record, undefined, r.drive, r.error.message)
    }
    this.#cluster.requireWriteQuorum(settled, 'recorded the upload')
    report(settled)
    void rest.then(report)
    return record
  }

  /** The upload as a read quorum of its set knows it; UPLOAD_NOT_FOUND otherwise. */
  async get(bucket: string, key: string, uploadId: string): Promise<Upload> {
    const found = await this.lookup(bucket, key, uploadId)
    if ('completed' in found)
      throw new StoreError(
        'UPLOAD_NOT_FOUND',
        `upload ${uploadId} of ${bucket}/${key} is completed`,
      )
    return found
  }

  /**
   * The upload in progress, or what it was completed as (a read quorum of its set agreeing, in
   * the day the drives keep that: see UploadRecord.completed); UPLOAD_NOT_FOUND otherwise.
   *
   * A completion left unsettled (its gateway died between CompleteUpload and FinishUpload, or
   * the client's retry came before it was done) is resolved here, as its gateway would have:
   * marked on a write quorum of drives, it succeeded, and is settled and answered as completed;
   * below that, once older than {@link ABANDONED_AFTER_MS} (no live gateway still waits on
   * it), it is taken back, and the upload is in progress again. A younger one below its quorum
   * may still be on its way: BUSY, the client tries again shortly.
   */
  async lookup(bucket: string, key: string, uploadId: string): Promise<Upload | Completed> {
    for (let attempt = 0; ; attempt++) {
      const found = await this.#lookupOnce(bucket, key, uploadId, attempt === 0)
      if (found !== 'retry') return found
    }
  }

  async #lookupOnce(
    bucket: string,
    key: string,
    uploadId: string,
    mayUndo: boolean,
  ): Promise<Upload | Completed | 'retry'> {
    const ids = { bucket, key, uploadId }
    let unknown = false
    for (const pool of this.#cluster.layout.pools) {
      const placement = this.#cluster.place(pool.index, bucket, key)
      // Settled once k drives hold the upload (a part's lookup need not wait for a frozen
      // node); anything else (a completion in progress or done, no upload) hears every drive.
      const { settled: results } = await this.#cluster.callUntil(
        placement.set.drives,
        GetUpload,
        ids,
        (s) =>
          s.filter((r) => r.ok && r.value.record !== undefined).length >= this.#cluster.readQuorum,
      )
      const answered = results.flatMap((r) => (r.ok ? [{ drive: r.drive, ...r.value }] : []))
      const found = answered.flatMap((r) => (r.record ? [r.record] : []))
      if (found.length >= this.#cluster.readQuorum) {
        return {
          record: found[0]!,
          placement: { ...placement, distribution: found[0]!.erasure.distribution },
        }
      }
      // Completions by version and modTime: drives that settled them, drives still marked.
      const completions = new Map<string, Completion>()
      for (const r of answered) {
        const c = r.completed ?? r.completing
        if (c?.etag === undefined) continue
        const id = `${c.versionId}/${c.modTime}`
        const e = completions.get(id) ?? {
          completed: { ...c, etag: c.etag },
          settled: 0,
          marked: [],
        }
        if (r.completed) e.settled++
        else e.marked.push(r.drive)
        completions.set(id, e)
      }
      for (const e of completions.values()) {
        if (e.settled >= this.#cluster.readQuorum) return { completed: e.completed }
        if (e.settled + e.marked.length >= this.#cluster.writeQuorum) {
          // It reached its write quorum: the object is there. Settled as its gateway would
          // have, and the drives still holding the upload in progress rebuild the version.
          const { modTime, versionId } = e.completed
          await this.#cluster.callAll(e.marked, FinishUpload, { ...ids, modTime })
          for (const r of answered) {
            if (r.record)
              this.#objects.missedWrite(
                { bucket, key, versionId },
                r.drive,
                'missed the completion',
              )
          }
          return { completed: e.completed }
        }
      }
      const pending = [...completions.values()].filter((e) => e.marked.length > 0)
      if (pending.length > 0) {
        const now = hlcNow()
        if (!mayUndo) {
          throw new StoreError('QUORUM_FAILED', 'an abandoned completion could not be taken back')
        }
        if (pending.some((e) => now - e.completed.modTime < ABANDONED_AFTER_HLC)) {
          throw new StoreError(
            'BUSY',
            `the upload ${uploadId} of ${bucket}/${key} is being completed by another request; try again shortly`,
          )
        }
        for (const e of pending) {
          const { versionId, modTime } = e.completed
          await this.#cluster.callAll(e.marked, UndoCompletion, { ...ids, versionId, modTime })
        }
        return 'retry'
      }
      if (answered.length < this.#cluster.readQuorum) unknown = true
    }
    if (unknown) throw new StoreError('QUORUM_FAILED', 'too few drives answered for the upload')
    throw new StoreError('UPLOAD_NOT_FOUND', `no upload ${uploadId} of ${bucket}/${key}`)
  }

  /** Streams one part into the upload's folder and records it. */
  async uploadPart(
    up: Upload,
    partNumber: number,
    size: number,
    body: AsyncIterable<Uint8Array>,
    finish: () => { etag: string; checksums?: Record<string, string> },
    signal?: AbortSignal,
  ): Promise<PartRecord> {
    const u = up.record
    const tmpId = randomUUID()
    const dataDir = u.dataDir ?? u.uploadId.slice(0, 64)
    const written = await this.#objects.writeShards({
      placement: up.placement,
      bucket: u.bucket,
      key: u.key,
      dataDir,
      part: partNumber,
      tmpId,
      size,
      body,
      ...(signal ? { signal } : {}),
    })
    let digest: { etag: string; checksums?: Record<string, string> }
    try {
      digest = finish()
    } catch (err) {
      await this.#objects.abortShards(written.ok, tmpId)
      throw err
    }
    const record: PartRecord = {
      bucket: u.bucket,
      key: u.key,
      uploadId: u.uploadId,
      number: partNumber,
      size,
      etag: digest.etag,
      modTime: hlcNow(),
      ...(digest.checksums && Object.keys(digest.checksums).length > 0
        ? { checksums: digest.checksums }
        : {}),
      dataDir,
      erasure: u.erasure,
    }
    const results = await this.#cluster.callAll(
      written.ok.map((w) => w.drive),
      CommitPart,
      (_d, i) => ({
        record: { ...record, erasure: { ...record.erasure, index: written.ok[i]!.shard } },
        tmpId,
      }),
    )
    this.#cluster.requireWriteQuorum(results, `recorded part ${partNumber}`)
    // Drives that missed the part are rebuilt from the others, or the upload could not be
    // completed once drives that missed different parts add up.
    for (const f of written.failed) this.#objects.missedUpload(u, partNumber, f.drive, f.reason)
    for (const r of results)
      if (!r.ok) this.#objects.missedUpload(u, partNumber, r.drive, r.error.message)
    return record
  }

  /** Parts a read quorum agrees on (same number and ETag), by number, after `marker`. */
  async listParts(
    up: Upload,
    opts: { partNumberMarker?: number; maxParts?: number } = {},
  ): Promise<{ parts: PartRecord[]; isTruncated: boolean }> {
    const u = up.record
    const limit = opts.maxParts ?? 10_000
    const results = await this.#cluster.callAgreeing(up.placement.set.drives, ListParts, {
      bucket: u.bucket,
      key: u.key,
      uploadId: u.uploadId,
      ...(opts.partNumberMarker !== undefined ? { partNumberMarker: opts.partNumberMarker } : {}),
      limit: Math.min(10_000, limit + 1),
    })
    const answered = results.flatMap((r) => (r.ok ? [r.value.parts] : []))
    if (answered.length < this.#cluster.readQuorum) {
      throw new StoreError('QUORUM_FAILED', 'too few drives answered for the parts')
    }
    const counts = new Map<string, { rec: PartRecord; n: number }>()
    for (const parts of answered) {
      for (const p of parts) {
        const id = `${p.number}/${p.etag}/${p.modTime}`
        const c = counts.get(id)
        if (c) c.n++
        else counts.set(id, { rec: p, n: 1 })
      }
    }
    const byNumber = new Map<number, PartRecord>()
    for (const c of counts.values()) {
      if (c.n < this.#cluster.readQuorum) continue
      const cur = byNumber.get(c.rec.number)
      if (cur === undefined || c.rec.modTime > cur.modTime) byNumber.set(c.rec.number, c.rec)
    }
    const parts = [...byNumber.values()].sort((a, b) => a.number - b.number)
    return { parts: parts.slice(0, limit), isTruncated: parts.length > limit }
  }

  /**
   * Completes an upload with the chosen parts (checked by the caller): writes the version on
   * every drive of the set, without copying data.
   */
  async complete(
    up: Upload,
    parts: PartRecord[],
    fields: {
      etag: string
      versioning: Versioning
      checksums?: Record<string, string>
      checksumType?: 'COMPOSITE' | 'FULL_OBJECT'
    },
  ): Promise<VersionRecord> {
    const u = up.record
    const size = parts.reduce((a, p) => a + p.size, 0)
    const record: VersionRecord = {
      bucket: u.bucket,
      key: u.key,
      versionId: fields.versioning === 'enabled' ? newVersionId() : 'null',
      modTime: hlcNow(),
      size,
      etag: fields.etag,
      ...(fields.checksums && Object.keys(fields.checksums).length > 0
        ? { checksums: fields.checksums }
        : {}),
      ...(fields.checksumType ? { checksumType: fields.checksumType } : {}),
      ...(u.contentType !== undefined ? { contentType: u.contentType } : {}),
      ...(u.userMeta ? { userMeta: u.userMeta } : {}),
      ...(u.tags ? { tags: u.tags } : {}),
      ...(u.owner ? { owner: u.owner } : {}),
      ...(u.acl ? { acl: u.acl } : {}),
      erasure: u.erasure,
      parts: parts.map((p) => ({
        number: p.number,
        size: p.size,
        etag: p.etag,
        ...(p.checksums ? { checksums: p.checksums } : {}),
      })),
      dataDir: u.dataDir ?? u.uploadId.slice(0, 64),
      deleteMarker: false,
    }
    const drives = up.placement.distribution.map((slot) => up.placement.set.drives[slot]!)
    const request = (shard: number) => ({
      uploadId: u.uploadId,
      record: { ...record, erasure: { ...record.erasure, index: shard } },
    })
    // First every drive is asked whether it could complete it, changing nothing: below a write
    // quorum the completion is refused with the upload as it was, and no drive holds a version
    // (completing on the drives that could, then failing, would leave an object readable from
    // them and an upload that no retry can complete).
    const checked = await this.#cluster.callAll(drives, CheckUpload, (_d, shard) => request(shard))
    const notFound = checked.filter((r) => !r.ok && r.error.code === 'UPLOAD_NOT_FOUND').length
    if (notFound >= this.#cluster.readQuorum) {
      throw new StoreError('UPLOAD_NOT_FOUND', `no upload ${u.uploadId} of ${u.bucket}/${u.key}`)
    }
    this.#cluster.requireWriteQuorum(checked, 'could complete the upload')
    // Then those that can complete it. Shard i stays shard i: the others are skipped.
    const results = await Promise.all(
      checked.map(async (c, shard) =>
        c.ok ? (await this.#cluster.callAll([c.drive], CompleteUpload, request(shard)))[0]! : c,
      ),
    )
    const completed = results.filter((r) => r.ok).map((r) => r.drive)
    const ids = { bucket: u.bucket, key: u.key, uploadId: u.uploadId }
    if (completed.length < this.#cluster.writeQuorum) {
      // A drive failed between its check and its completion (its node died): the others take
      // the completion back, and the upload is as it was, every part kept, for a retry. Those
      // asked to complete that did not answer are told too, without waiting (they may be away),
      // so that the completion is refused should it arrive late.
      const undo = { ...ids, versionId: record.versionId, modTime: record.modTime }
      const late = results.filter((r, i) => !r.ok && checked[i]!.ok).map((r) => r.drive)
      if (late.length > 0) void this.#cluster.callAll(late, UndoCompletion, undo).catch(() => {})
      await this.#cluster.callAll(completed, UndoCompletion, undo)
      this.#cluster.requireWriteQuorum(results, 'completed the upload')
    }
    // Settled: the upload's records and unused part files go. A drive this does not reach
    // settles it itself in its daily sweep; until then its upload is hidden.
    await this.#cluster.callAll(completed, FinishUpload, { ...ids, modTime: record.modTime })
    // Drives that lack the upload or one of its parts (away while it was uploaded) hold no
    // version: their nodes rebuild it from the others.
    for (const r of results) {
      if (!r.ok) this.#objects.missedWrite(record, r.drive, r.error.message)
    }
    return record
  }

  async abort(up: Upload): Promise<void> {
    const u = up.record
    const results = await this.#cluster.callAll(up.placement.set.drives, DeleteUpload, {
      bucket: u.bucket,
      key: u.key,
      uploadId: u.uploadId,
    })
    this.#cluster.requireWriteQuorum(results, 'removed the upload')
  }

  /**
   * Uploads in progress, by key then initiation, merged across sets; with a delimiter, keys
   * roll up into common prefixes as in ListObjects.
   */
  async list(q: {
    bucket: string
    prefix?: string
    delimiter?: string
    keyMarker?: string
    uploadIdMarker?: string
    maxUploads: number
  }): Promise<{ uploads: UploadRecord[]; commonPrefixes: string[]; isTruncated: boolean }> {
    const prefix = q.prefix ?? ''
    const seen = new Map<string, { rec: UploadRecord; n: number }>()
    let more = false
    for (const set of this.#cluster.sets) {
      const results = await this.#cluster.callAgreeing(set.drives, ListUploads, {
        bucket: q.bucket,
        ...(prefix ? { prefix } : {}),
        ...(q.keyMarker !== undefined ? { keyMarker: q.keyMarker } : {}),
        ...(q.keyMarker !== undefined && q.uploadIdMarker !== undefined
          ? { uploadIdMarker: q.uploadIdMarker }
          : {}),
        limit: 1000,
      })
      const answered = results.flatMap((r) => (r.ok ? [r.value] : []))
      if (answered.length < this.#cluster.readQuorum) {
        throw new StoreError('QUORUM_FAILED', 'too few drives answered the upload listing')
      }
      for (const a of answered) {
        if (a.isTruncated) more = true
        for (const u of a.uploads) {
          const id = `${u.key}\u0000${u.uploadId}`
          const c = seen.get(id)
          if (c) c.n++
          else seen.set(id, { rec: u, n: 1 })
        }
      }
    }
    const all = [...seen.values()]
      .filter((c) => c.n >= this.#cluster.readQuorum)
      .map((c) => c.rec)
      .sort((a, b) => compareUtf8(a.key, b.key) || a.initiated - b.initiated)
    const uploads: UploadRecord[] = []
    const commonPrefixes: string[] = []
    for (const u of all) {
      if (uploads.length + commonPrefixes.length >= q.maxUploads) {
        return { uploads, commonPrefixes, isTruncated: true }
      }
      if (q.delimiter) {
        const i = u.key.indexOf(q.delimiter, prefix.length)
        if (i >= 0) {
          const cp = u.key.slice(0, i + q.delimiter.length)
          if (commonPrefixes.at(-1) !== cp) commonPrefixes.push(cp)
          continue
        }
      }
      uploads.push(u)
    }
    return { uploads, commonPrefixes, isTruncated: more }
  }
}
