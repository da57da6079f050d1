/* Design notes

Repair of one key (or one version of it) on one drive D of this node, from the other drives
of D's erasure set. The rules, in the order they run:

1. Ask every drive of the set for its records of the key (D's own straight from its MetaStore,
   the others by ReadVersions). Group the records by version (versionId + modTime: an
   overwritten 'null' version is another version). A version is *agreed* when at least k
   drives hold it, D included; the drives that did not answer are *unknown*.

2. Leftovers: a version D holds that is not agreed, that could not be agreed even if every
   unknown drive held it (holders + unknown < k), and whose modTime is older than the grace
   period (a write in progress commits drive after drive) is the remains of a failed write, or
   of a delete D missed while it was away: its record is dropped and its data moved to trash.
   An agreed version is never removed, so nothing a client can read goes.

3. Every agreed version: D's copy must be there. The record (with D's own shard index, the
   position of D's slot in `distribution`) must match what the other holders say, and its data
   must check out: inline bytes (always verified, they are small), or for each part
   `part.<N>` in the data folder, present with the size the layout gives and, in a deep check
   (or when the record itself is missing), every chunk matching its xxh64. Whatever is missing
   or bad is rebuilt from the other holders, which must be at least k: never from fewer.
   - inline: the holders' inline bytes, decoded and re-encoded in memory (below inlineBelow);
   - files: part by part, streaming: decodeStream over the holders' shard streams (ReadShard,
     verified chunk by chunk; data shards first, parity replacing a failing one) feeds
     encodeStream, whose D-th shard and header go to a tmp file, fsynced and renamed into
     place (shard-io's rewriteShard, the normal write path). Memory stays at a few blocks
     whatever the part size; the RS work runs in the codec worker pool.
   Then the record is written with D's index (and inline bytes), unless D meanwhile got a
   newer record under the same versionId (a client write won the race) or a client deleted
   the version on D since the set was read (the others may have lost it too: writing it would
   bring a deleted object back). Check and write run in the key's exclusive section on D
   (MetaStore.restoreVersion), as a client's DeleteVersion and CommitVersion do, so a delete
   lands before the check or after the write, never between. A replaced record's data folder
   goes to trash, as CommitVersion does.

Delete markers are records only. A holder whose shard fails while it is read for a repair is
reported (`onBadShard`) so that its own node heals it.
*/
import { randomUUID } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { rm } from 'node:fs/promises'
import {
  type BlockCodec,
  type ChunkHasher,
  decodeStream,
  ErasureLayout,
  encodeStream,
  SHARD_STALL_MS,
} from '@tessera/codec'
import {
  type DriveSlot,
  GetUpload,
  hlcMillis,
  ListParts,
  latestMeta,
  type PartInfo,
  type PartRecord,
  StoreError,
  type UploadRecord,
  type VersionRecord,
} from '@tessera/protocol'
import type { Drive } from '../drive.ts'
import { commitShards, rewriteShard, writeShard } from '../shard-io.ts'
import { checkData, isInline, layoutOf } from './check.ts'
import type { SetAccess } from './set-access.ts'

/** What to repair: a key, or one version of it. */
export interface RepairRequest {
  bucket: string
  key: string
  /** Absent: every version of the key. */
  versionId?: string
  /** Verify every chunk of the local shard files, not only their presence and size. */
  deep: boolean
}

/** What a repair did. */
export interface RepairOutcome {
  /** Versions looked at: those the set agrees on, and the drive's own leftovers. */
  versions: number
  /** Versions whose local copy was rebuilt, rewritten or (leftovers) removed. */
  healed: number
  /** Versions that needed work that could not be done. */
  failed: number
  /** Shard bytes written. */
  bytes: number
  /** Object bytes covered by the shards rebuilt (a rebuilt part counts its whole size). */
  dataBytes: number
  /** Versions that could not be decided yet (too few drives answered, a write in progress). */
  undecided: number
  /**
   * Of those, versions the drive may have to hold but that too few drives answered to decide
   * or to rebuild: the drive is not known to be whole until they are looked at again.
   */
  waiting: number
  /** The first failure, for the log. */
  error?: string
}

export interface RepairerInit {
  access: SetAccess
  /** The worker pool for large objects; called only when a part must be rebuilt. */
  codec: () => BlockCodec
  /** For inline objects (small: the event loop is quicker than a worker round trip). */
  inlineCodec: BlockCodec
  h64: ChunkHasher
  /** Leftovers younger than this (by modTime) are kept: a write may be in progress. */
  graceMs: number
  /** Told of a holder whose shard was missing or bad while it was read for a repair. */
  onBadShard?: (drive: DriveSlot, rec: VersionRecord, err: Error) => void
}

interface Holder {
  drive: DriveSlot
  rec: VersionRecord
}

/** A drive to read a part's shard from: its shard index, and whom to tell when it is bad. */
interface PartSource {
  drive: DriveSlot
  index: number
  onBad?: (err: Error) => void
}

/** A part record as the version-shaped record the layout and data checks take. */
function asVersion(p: PartRecord): VersionRecord {
  return {
    bucket: p.bucket,
    key: p.key,
    versionId: 'null',
    modTime: p.modTime,
    size: p.size,
    etag: p.etag,
    dataDir: p.dataDir,
    erasure: p.erasure,
    parts: [{ number: p.number, size: p.size, etag: p.etag }],
    deleteMarker: false,
  }
}

interface Group {
  holders: Holder[]
  local?: VersionRecord
}

const versionOf = (v: VersionRecord): string => `${v.modTime}/${v.versionId}`

/** Error codes of a shard that is there to be healed (not of a drive that is away). */
const BAD_SHARD_CODES = new Set(['CHECKSUM_MISMATCH', 'SHARD_NOT_FOUND', 'TRUNCATED_SHARD'])

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

async function* nothing(): AsyncGenerator<Uint8Array> {}

/** The framed chunks of shard `index` of each encoded block: header, then chunk. */
async function* shardFrames(
  blocks: AsyncIterable<{
    headers: Uint8Array[]
    shards: Uint8Array[]
    release(): void
  }>,
  index: number,
): AsyncGenerator<Uint8Array> {
  for await (const b of blocks) {
    yield b.headers[index]!
    yield b.shards[index]!
    // The consumer asked for more: both views are written, the buffers can be reused.
    b.release()
  }
}

export function emptyOutcome(): RepairOutcome {
  return { versions: 0, healed: 0, failed: 0, bytes: 0, dataBytes: 0, undecided: 0, waiting: 0 }
}

export class Repairer {
  readonly #access: SetAccess
  readonly #codec: () => BlockCodec
  readonly #inline: BlockCodec
  readonly #h64: ChunkHasher
  readonly #graceMs: number
  readonly #onBadShard: (drive: DriveSlot, rec: VersionRecord, err: Error) => void

  constructor(init: RepairerInit) {
    this.#access = init.access
    this.#codec = init.codec
    this.#inline = init.inlineCodec
    this.#h64 = init.h64
    this.#graceMs = init.graceMs
    this.#onBadShard = init.onBadShard ?? (() => {})
  }

  get #k(): number {
    return this.#access.cluster.readQuorum
  }

  /** Repairs a key (or one version) on `drive`; see the design notes. */
  async repair(drive: Drive, req: RepairRequest, signal: AbortSignal): Promise<RepairOutcome> {
    const out = emptyOutcome()
    const others = this.#access.othersOf(drive.ref)
    // A client's delete on this drive from now on may mean that what is read next is gone.
    const readAt = Date.now()
    const [local, answers] = await Promise.all([
      req.versionId === undefined
        ? drive.meta.getVersions(req.bucket, req.key)
        : drive.meta.getVersion(req.bucket, req.key, req.versionId).then((v) => (v ? [v] : [])),
      Promise.all(
        others.map(async (d) => {
          try {
            return {
              drive: d,
              versions: await this.#access.readVersions(d, req.bucket, req.key, req.versionId),
            }
          } catch {
            return { drive: d, versions: undefined }
          }
        }),
      ),
    ])
    signal.throwIfAborted()
    let unknown = 0
    const groups = new Map<string, Group>()
    const group = (v: VersionRecord): Group => {
      const id = versionOf(v)
      let g = groups.get(id)
      if (g === undefined) {
        g = { holders: [] }
        groups.set(id, g)
      }
      return g
    }
    for (const a of answers) {
      if (a.versions === undefined) {
        unknown++
        continue
      }
      for (const v of a.versions) group(v).holders.push({ drive: a.drive, rec: v })
    }
    for (const v of local) group(v).local = v
    const k = this.#k
    const agreed = [...groups.values()].filter((g) => g.holders.length + (g.local ? 1 : 0) >= k)
    const agreedDirs = new Set(agreed.flatMap((g) => g.holders.map((h) => h.rec.dataDir)))

    // Leftovers first: a stale record may hold the versionId an agreed version needs.
    const localByVid = new Map(local.map((v) => [v.versionId, v]))
    for (const g of groups.values()) {
      if (g.local === undefined || agreed.includes(g)) continue
      signal.throwIfAborted()
      const removed = await this.#removeLeftover(drive, g, unknown, agreedDirs, out)
      if (removed) localByVid.delete(g.local.versionId)
    }
    for (const g of agreed) {
      signal.throwIfAborted()
      await this.#repairVersion(drive, g, localByVid, req.deep, readAt, unknown, signal, out)
    }
    // A version the drive lacks that the drives which did not answer could make agreed: it may
    // be one the drive must hold, and nothing can be said until they answer.
    for (const g of groups.values()) {
      if (g.local !== undefined || agreed.includes(g)) continue
      if (g.holders.length + unknown >= k) {
        out.undecided++
        out.waiting++
      }
    }
    // A version asked for by id that no quorum holds yet (a write still committing).
    if (req.versionId !== undefined && agreed.length === 0 && local.length === 0) out.undecided++
    return out
  }

  async #removeLeftover(
    drive: Drive,
    g: Group,
    unknown: number,
    agreedDirs: Set<string | undefined>,
    out: RepairOutcome,
  ): Promise<boolean> {
    const v = g.local!
    out.versions++
    if (g.holders.length + 1 + unknown >= this.#k) {
      out.undecided++
      return false
    }
    if (Date.now() - hlcMillis(v.modTime) < this.#graceMs) {
      out.undecided++
      return false
    }
    try {
      const removed = await drive.meta.exclusive(v.bucket, v.key, async () => {
        const current = await drive.meta.getVersion(v.bucket, v.key, v.versionId)
        if (current?.modTime !== v.modTime) return false
        await drive.meta.deleteVersion(v.bucket, v.key, v.versionId, v, { leftover: true })
        return true
      })
      if (!removed) return false
      if (v.dataDir !== undefined && !agreedDirs.has(v.dataDir))
        await drive.trash(drive.dataPath(v.bucket, v.key, v.dataDir))
      out.healed++
      return true
    } catch (err) {
      out.failed++
      out.error ??= `removing a leftover version: ${(err as Error).message}`
      return false
    }
  }

  async #repairVersion(
    drive: Drive,
    g: Group,
    localByVid: Map<string, VersionRecord>,
    deep: boolean,
    readAt: number,
    unknown: number,
    signal: AbortSignal,
    out: RepairOutcome,
  ): Promise<void> {
    out.versions++
    const k = this.#k
    const ref = reference(g)
    const slot = drive.ref.slot
    const idx = ref.erasure.distribution.indexOf(slot)
    const name = `${ref.bucket}/${ref.key} version ${ref.versionId}`
    if (idx < 0) {
      out.failed++
      out.error ??= `${name}: slot ${slot} is not in its distribution`
      return
    }
    const sameId = localByVid.get(ref.versionId)
    if (sameId !== undefined && sameId.modTime > ref.modTime) {
      // A newer write under this versionId is on the drive (in progress, or a leftover that
      // the grace period still protects): it is not ours to overwrite.
      out.undecided++
      return
    }
    const mine = g.local
    const recordOk =
      mine !== undefined &&
      mine.erasure.index === idx &&
      fingerprint(mine) === fingerprint(ref) &&
      (isInline(ref) || mine.inline === undefined)
    // Files found without their record (a record lost, a repair cut short) are verified whole.
    const check = await checkData(drive, ref, {
      deep: deep || mine === undefined,
      h64: this.#h64,
      inline: mine?.inline,
      signal,
    })
    if (recordOk && check.badParts.length === 0) return
    // Holders may differ in metadata (tags), not in where and what the data is.
    const sources = g.holders.filter(
      (h) => h.rec.dataDir === ref.dataDir && h.rec.size === ref.size,
    )
    if (sources.length < k) {
      // D's copy is needed for the quorum and cannot be rebuilt from fewer than k others.
      if (check.badParts.length > 0 && sources.length + unknown >= k) {
        // Enough of them may be among the drives that did not answer.
        out.undecided++
        out.waiting++
      } else if (check.badParts.length > 0) {
        out.failed++
        out.error ??=
          `${name}: ${check.reason}, and only ${sources.length} other drives hold it ` +
          `(${k} needed to rebuild)`
      }
      return
    }
    try {
      let inline: Uint8Array | undefined
      if (!ref.deleteMarker && isInline(ref)) {
        inline =
          check.badParts.length === 0 ? mine!.inline! : await this.#rebuildInline(ref, sources, idx)
        if (check.badParts.length > 0) {
          out.bytes += inline.length
          out.dataBytes += ref.size
        }
      } else if (!ref.deleteMarker) {
        for (const n of check.badParts) {
          const part = ref.parts.find((p) => p.number === n)!
          out.bytes += await this.#rebuildPart(
            ref,
            sources.map((h) => ({
              drive: h.drive,
              index: h.rec.erasure.index,
              onBad: (err: Error) => this.#onBadShard(h.drive, h.rec, err),
            })),
            part,
            idx,
            signal,
            (body, shard) => rewriteShard(drive, { ...drive.ref, ...shard }, body, randomUUID()),
          )
          out.dataBytes += part.size
        }
      }
      signal.throwIfAborted()
      const record: VersionRecord = { ...ref, erasure: { ...ref.erasure, index: idx } }
      delete record.inline
      if (inline !== undefined) record.inline = inline
      // Not over a newer write under this versionId, and not over a client's delete on this
      // drive since the set was read (writing it would bring a deleted object back): checked
      // and written in the key's exclusive section, so no delete slips in between.
      const { outcome, current } = await drive.meta.restoreVersion(record, readAt)
      if (outcome !== 'written') {
        // The part files just rebuilt (or found) belong to no record here: a delete would
        // have taken them with the record, so they go now, unless what stays uses them.
        if (ref.dataDir !== undefined && current?.dataDir !== ref.dataDir)
          await drive.trash(drive.dataPath(ref.bucket, ref.key, ref.dataDir))
        out.undecided++
        return
      }
      if (current?.dataDir !== undefined && current.dataDir !== ref.dataDir)
        await drive.trash(drive.dataPath(ref.bucket, ref.key, current.dataDir))
      out.healed++
    } catch (err) {
      if (signal.aborted) throw err
      // A client that deleted the version since the set was read took its files with it: the
      // sources' shards are gone, and there is nothing to rebuild.
      if (await drive.meta.wasDeleted(ref, readAt).catch(() => false)) {
        out.undecided++
        return
      }
      out.failed++
      out.error ??= `${name}: ${(err as Error).message}`
    }
  }

  /** Shard `idx` of an inline object, from the holders' inline shards. */
  async #rebuildInline(ref: VersionRecord, sources: Holder[], idx: number): Promise<Buffer> {
    const layout = layoutOf(ref)
    const byShard = new Map<number, Uint8Array>()
    for (const s of sources) {
      if (s.rec.inline !== undefined && s.rec.erasure.index !== idx)
        byShard.set(s.rec.erasure.index, s.rec.inline)
    }
    if (byShard.size < layout.k) {
      throw new StoreError(
        'QUORUM_FAILED',
        `only ${byShard.size} drives have inline shards (${layout.k} needed)`,
      )
    }
    const pieces: Buffer[] = []
    for await (const piece of decodeStream({
      layout,
      codec: this.#inline,
      size: ref.size,
      open: (shard, span) => {
        const b = byShard.get(shard)
        if (b === undefined) return undefined
        return once(
          Buffer.from(b.buffer, b.byteOffset, b.byteLength).subarray(
            span.offset,
            span.offset + span.length,
          ),
        )
      },
    })) {
      pieces.push(Buffer.from(piece))
    }
    return encodeShard(Buffer.concat(pieces), layout, idx, this.#inline)
  }

  /**
   * Rebuilds part `part` of shard `idx`, streaming from the sources (other drives' shards of
   * it), and hands the framed shard to `write`; returns the bytes written.
   */
  async #rebuildPart(
    ref: Pick<VersionRecord, 'bucket' | 'key' | 'dataDir' | 'erasure'>,
    sources: PartSource[],
    part: Pick<PartInfo, 'number' | 'size'>,
    idx: number,
    signal: AbortSignal,
    write: (
      body: AsyncIterable<Uint8Array>,
      shard: { bucket: string; key: string; dataDir: string; part: number; size: number },
    ) => Promise<number>,
  ): Promise<number> {
    const layout = layoutOf(ref)
    const byShard = new Map<number, PartSource>()
    for (const s of sources) if (s.index !== idx) byShard.set(s.index, s)
    if (byShard.size < layout.k) {
      throw new StoreError(
        'QUORUM_FAILED',
        `only ${byShard.size} other drives hold part ${part.number} (${layout.k} needed)`,
      )
    }
    const size = part.size
    const blocks = layout.blockCount(size)
    // The RPC client leaves its listener on a call's signal: give each part a signal of its
    // own (a child of the healer's), dropped with the part, not one that lives as long as the node.
    const part$ = new AbortController()
    setMaxListeners(0, part$.signal)
    const onAbort = () => part$.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    let body: AsyncIterable<Uint8Array> = nothing()
    if (size > 0) {
      const codec = this.#codec()
      const data = decodeStream({
        layout,
        codec,
        size,
        // A source whose drive hangs behind a live node would hold the repair for ever.
        stallMs: SHARD_STALL_MS,
        open: (shard, _span, cancel) => {
          const h = byShard.get(shard)
          if (h === undefined) return undefined
          return this.#access.shardStream(
            h.drive,
            {
              bucket: ref.bucket,
              key: ref.key,
              dataDir: ref.dataDir!,
              part: part.number,
              size,
              k: layout.k,
              blockSize: layout.blockSize,
              firstBlock: 0,
              lastBlock: blocks - 1,
            },
            AbortSignal.any([part$.signal, cancel.signal]),
          )
        },
        onShardError: (shard, err) => {
          const code = (err as { code?: string }).code
          if (code !== undefined && BAD_SHARD_CODES.has(code)) byShard.get(shard)?.onBad?.(err)
        },
      })
      body = shardFrames(encodeStream(data, { layout, codec }), idx)
    }
    try {
      return await write(body, {
        bucket: ref.bucket,
        key: ref.key,
        dataDir: ref.dataDir!,
        part: part.number,
        size: layout.shardFileBytes(size),
      })
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /**
   * Repairs an upload in progress on `drive` from the other drives of its set, so that the
   * drive counts when the upload is completed: its record, when the drive missed the
   * CreateMultipartUpload, and part `partNumber` when given (the drive missed an UploadPart).
   * A record is restored only when at least k other drives hold it. The part the set agrees on
   * is the newest (by modTime) that at least k drives hold; the drive's own copy is replaced
   * only when it is missing, older, or its file is missing or the wrong size. The shard is
   * written to tmp and moved into place with its record in the key's exclusive section, where
   * a client's CommitPart runs too, and only if the drive has not meanwhile taken a newer
   * upload of the part, nor lost the upload (completed or aborted): a late repair never
   * overwrites what a client wrote.
   */
  async repairUploadPart(
    drive: Drive,
    req: { bucket: string; key: string; uploadId: string; partNumber?: number },
    signal: AbortSignal,
  ): Promise<RepairOutcome> {
    const out = emptyOutcome()
    out.versions = 1
    const { bucket, key, uploadId, partNumber } = req
    const cluster = this.#access.cluster
    const partsQuery =
      partNumber === undefined
        ? undefined
        : { bucket, key, uploadId, partNumberMarker: partNumber - 1, limit: 1 }
    const [localUpload, local, answers] = await Promise.all([
      drive.meta.getUpload(bucket, key, uploadId),
      partsQuery === undefined
        ? undefined
        : drive.meta
            .getParts(bucket, key, uploadId, partsQuery)
            .then((r) => r.parts.find((p) => p.number === partNumber)),
      Promise.all(
        this.#access.othersOf(drive.ref).map(async (d) => {
          try {
            const [u, p] = await Promise.all([
              cluster.call(d, GetUpload, { bucket, key, uploadId }),
              partsQuery === undefined ? undefined : cluster.call(d, ListParts, partsQuery),
            ])
            return {
              drive: d,
              upload: u.record,
              part: p?.parts.find((x) => x.number === partNumber),
            }
          } catch {
            return undefined
          }
        }),
      ),
    ])
    signal.throwIfAborted()
    const answered = answers.filter((a) => a !== undefined)
    const unknown = answers.length - answered.length
    const k = this.#k
    const withUpload = answered.filter((a) => a.upload !== undefined)
    const uploadRec: UploadRecord | undefined =
      localUpload ?? (withUpload.length >= k ? withUpload[0]!.upload : undefined)
    if (uploadRec === undefined) {
      // Too few drives hold it: completed or aborted since, or not known yet.
      if (withUpload.length + unknown >= k) out.undecided++
      return out
    }
    // Our shard index: our slot's position in the upload's distribution.
    const index = uploadRec.erasure.distribution.indexOf(drive.ref.slot)
    if (index < 0) {
      out.failed++
      out.error = `upload ${uploadId} does not place a shard on this drive's slot`
      return out
    }
    const ownUpload: UploadRecord = { ...uploadRec, erasure: { ...uploadRec.erasure, index } }
    if (partsQuery === undefined) {
      if (localUpload !== undefined) return out
      const restored = await drive.meta.exclusive(bucket, key, async () => {
        if ((await drive.meta.getUpload(bucket, key, uploadId)) !== undefined) return false
        await drive.meta.putUpload(ownUpload)
        return true
      })
      if (restored) out.healed++
      return out
    }

    const partId = (p: PartRecord) => `${p.etag}/${p.size}/${p.modTime}/${p.dataDir}`
    const groups = new Map<string, { rec: PartRecord; holders: typeof answered }>()
    for (const a of answered) {
      if (a.part === undefined || a.part.inline !== undefined) continue
      const id = partId(a.part)
      const g = groups.get(id) ?? { rec: a.part, holders: [] }
      g.holders.push(a)
      groups.set(id, g)
    }
    let chosen: { rec: PartRecord; holders: typeof answered } | undefined
    for (const g of groups.values()) {
      const n = g.holders.length + (local !== undefined && partId(local) === partId(g.rec) ? 1 : 0)
      if (n >= k && (chosen === undefined || g.rec.modTime > chosen.rec.modTime)) chosen = g
    }
    if (chosen === undefined) {
      // Nothing k drives agree on: the part may still be committing, or the upload is gone.
      if (answered.filter((a) => a.part !== undefined).length + unknown >= k) out.undecided++
      return out
    }
    const rec = chosen.rec
    if (local !== undefined && partId(local) === partId(rec)) {
      const check = await checkData(drive, asVersion(rec), { deep: false, h64: this.#h64, signal })
      if (check.badParts.length === 0 && localUpload !== undefined) return out
    }
    const tmpId = randomUUID()
    try {
      const written = await this.#rebuildPart(
        rec,
        chosen.holders.map((h) => ({ drive: h.drive, index: h.part!.erasure.index })),
        { number: rec.number, size: rec.size },
        index,
        signal,
        (body, shard) => writeShard(drive, { ...drive.ref, ...shard, tmpId }, body),
      )
      const ownPart: PartRecord = { ...rec, erasure: { ...rec.erasure, index } }
      const done = await drive.meta.exclusive(bucket, key, async () => {
        const [u, parts] = await Promise.all([
          drive.meta.getUpload(bucket, key, uploadId),
          drive.meta.getParts(bucket, key, uploadId, partsQuery),
        ])
        const now = parts.parts.find((x) => x.number === rec.number)
        // Completed or aborted here meanwhile, or a newer upload of the part landed: leave it.
        if (now !== undefined && now.modTime > rec.modTime) return false
        if (u === undefined) {
          if (localUpload !== undefined) return false
          await drive.meta.putUpload(ownUpload)
        }
        if (!(await commitShards(drive, tmpId, bucket, key, rec.dataDir))) return false
        await drive.meta.putPart(ownPart)
        return true
      })
      if (done) {
        out.healed++
        out.bytes += written
        out.dataBytes += rec.size
      }
    } finally {
      await rm(drive.tmpPath(tmpId), { recursive: true, force: true })
    }
    return out
  }
}

/**
 * The framed shard `idx` of a small object, in memory. A one-block object frames the same
 * whatever the block size, so it is encoded with a block just big enough (as the gateway does).
 */
async function encodeShard(
  data: Uint8Array,
  full: ErasureLayout,
  idx: number,
  codec: BlockCodec,
): Promise<Buffer> {
  const layout =
    data.length <= full.blockSize
      ? new ErasureLayout({
          k: full.k,
          m: full.m,
          blockSize: Math.max(full.k, Math.ceil(data.length / full.k) * full.k),
        })
      : full
  const out: Buffer[] = []
  for await (const b of encodeStream(once(data), { layout, codec })) {
    out.push(Buffer.from(b.headers[idx]!), Buffer.from(b.shards[idx]!))
    b.release()
  }
  return Buffer.concat(out)
}

/** The record the holders agree on: the most common one, shard index and inline bytes aside. */
function reference(g: Group): VersionRecord {
  if (g.holders.length === 0) return g.local!
  // The latest change of the version's tags or ACL wins (a drive that missed one keeps an
  // older metaTime), the drive's own copy included; among equals, what most holders say.
  const metaTime = latestMeta([
    ...g.holders.map((h) => h.rec),
    ...(g.local ? [g.local] : []),
  ]).metaTime
  const counts = new Map<string, { rec: VersionRecord; n: number }>()
  for (const rec of [...g.holders.map((h) => h.rec), ...(g.local ? [g.local] : [])]) {
    if (rec.metaTime !== metaTime) continue
    const f = fingerprint(rec)
    const c = counts.get(f)
    if (c) c.n++
    else counts.set(f, { rec, n: 1 })
  }
  let best: { rec: VersionRecord; n: number } | undefined
  for (const c of counts.values()) if (best === undefined || c.n > best.n) best = c
  return best!.rec
}

/** A record's content without what differs between drives (shard index, inline bytes). */
export function fingerprint(rec: VersionRecord): string {
  const { inline: _inline, erasure, ...rest } = rec
  const { index: _index, ...e } = erasure
  return canonical({ ...rest, erasure: e })
}

/** JSON with object keys sorted, so that field order never makes two records differ. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v) ?? 'null'
}
