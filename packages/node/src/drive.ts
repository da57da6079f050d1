/* Design notes
 *
 * A drive is a folder (normally its own mount point) that this node owns for one slot of one
 * erasure set. Layout (design §3):
 *   <drive>/.tessera/format.json   cluster id, pool, set, slot, drive id
 *   <drive>/.tessera/meta/         LevelDB with the version, bucket, upload and system records
 *   <drive>/.tessera/tmp/<tmpId>/  writes in progress; emptied at every start
 *   <drive>/.tessera/trash/<uuid>  data waiting to be deleted by the background emptier
 *   <drive>/data/<bucket>/<2 hex>/<object hash>/<data dir>/part.<N>
 * A write becomes visible only by commit: rename tmp/<tmpId> into data/, fsync the parent
 * folder, then write the version record with sync. A crash before the record leaves at most a
 * data folder no record points to, and never a version without its data. Such orphans (and
 * the files of a write that died between rename and record for any other reason) are found by
 * sweepOrphans, once a day: a data folder that no version, upload or part record on the drive
 * names, in two scans of the records around the walk of data/, and that is older than a day
 * (no write keeps a folder unnamed that long: a streamed call's deadline is an hour, and tmp/
 * is emptied after two) goes to trash.
 */
import { createHash, randomUUID } from 'node:crypto'
import {
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  statfs,
  writeFile,
} from 'node:fs/promises'
import { join } from 'node:path'
import {
  type DriveRef,
  HLC_COUNTER_SPAN,
  type Hlc,
  StoreError,
  type UploadRecord,
} from '@tessera/protocol'
import { type AlignedSlabs, type DirectSupport, probeDirectIo } from './direct-io.ts'
import { DriveHealth } from './drive-health.ts'
import { FULL_HEAL_PENDING_KEY } from './heal/scanner.ts'
import { MetaStore } from './meta-store.ts'

export const FORMAT_VERSION = 1
/** Entries a fresh mount point may already hold (ext4 makes lost+found). */
const ALLOWED_IN_EMPTY_DRIVE = new Set(['lost+found', '.tessera'])

export interface FormatFile {
  format: 'tessera'
  version: number
  cluster: string
  pool: number
  set: number
  slot: number
  driveId: string
  formattedAt: string
}

export interface DriveInit {
  path: string
  cluster: string
  ref: DriveRef
  /** The node's aligned buffers for direct shard writes; without them shards are written buffered. */
  slabs?: AlignedSlabs
  /** How long an operation may wait on the drive while it does nothing (DRIVE_STALL_MS). */
  stallMs?: number
}

const NAME = /^[a-z0-9][a-z0-9.-]{1,62}$/
const TOKEN = /^[A-Za-z0-9_-]{8,80}$/

/** Checks a bucket name before it becomes a path component (the gateway checks S3's rules). */
export function checkBucketName(bucket: string): void {
  if (!NAME.test(bucket))
    throw new StoreError('INVALID_REQUEST', `invalid bucket name ${JSON.stringify(bucket)}`)
}

/** Checks a data dir, tmp id or upload id before it becomes a path component. */
export function checkToken(what: string, value: string): void {
  if (!TOKEN.test(value))
    throw new StoreError('INVALID_REQUEST', `invalid ${what} ${JSON.stringify(value)}`)
}

/** Age past which a write left in tmp/ is abandoned (twice the longest streamed call). */
export const TMP_MAX_AGE_MS = 2 * 3_600_000
/** Age past which a version tombstone is dropped: far longer than any repair takes. */
export const TOMBSTONE_MAX_AGE_MS = 6 * 3_600_000
/** How often tmp/ is swept for abandoned writes (and old tombstones dropped). */
const TMP_SWEEP_EVERY_MS = 10 * 60_000
/** Age below which a data folder no record names is left alone (see the design notes). */
export const ORPHAN_MIN_AGE_MS = 24 * 3_600_000
/** How often data/ is swept for data folders no record names. */
const ORPHAN_SWEEP_EVERY_MS = 24 * 3_600_000

/** What one orphan sweep of a drive did. */
export interface OrphanSweep {
  /** Data folders looked at. */
  folders: number
  /** Data folders no record names, moved to trash. */
  removed: number
  /**
   * Uploads whose part records were dropped: parts older than the minimum age, of an upload
   * this drive has no record of (see MetaStore.strayUploads). Their folders go in the same sweep.
   */
  strayUploads: number
  /**
   * Completions older than the minimum age that no FinishUpload or UndoCompletion settled (the
   * gateway died in between), finished here: the upload's records go, and the part files the
   * version does not use.
   */
  finishedUploads: number
  /** The sweep did not run: a whole-drive heal is under way. */
  skipped?: true
}

async function subfolders(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => [])
  return entries.filter((e) => e.isDirectory()).map((e) => e.name)
}

/** The object's folder name: the first 32 hex digits of sha256(bucket/key). */
export function objectHash(bucket: string, key: string): string {
  return createHash('sha256').update(`${bucket}/${key}`).digest('hex').slice(0, 32)
}

/** fsyncs a folder, so that a rename or create inside it survives a crash. */
export async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export class Drive {
  readonly path: string
  readonly ref: DriveRef
  readonly driveId: string
  readonly meta: MetaStore
  /** True when this open formatted the (empty) drive: healing then rebuilds its contents. */
  readonly formatted: boolean
  /** Aligned buffers for writing shard files with O_DIRECT (shared by the node's drives). */
  readonly slabs: AlignedSlabs | undefined
  /**
   * Whether shard files on this drive are written with O_DIRECT: its file system took a probe
   * at open and has refused no write since (see direct-io.ts).
   */
  readonly directIo: DirectSupport = { direct: true }
  /** Whether the drive gets work done (see drive-health.ts). */
  readonly health: DriveHealth
  #trashTimer: NodeJS.Timeout | undefined

  private constructor(
    path: string,
    ref: DriveRef,
    driveId: string,
    meta: MetaStore,
    formatted: boolean,
    slabs: AlignedSlabs | undefined,
    stallMs: number | undefined,
  ) {
    this.health = new DriveHealth(stallMs)
    this.slabs = slabs
    this.path = path
    this.ref = ref
    this.driveId = driveId
    this.meta = meta
    this.formatted = formatted
  }

  /**
   * Opens a drive: formats it if it is empty, else checks that its format file belongs to this
   * cluster and slot, refusing with an error that names the drive, what it found and what it
   * expected. Removes leftovers of writes interrupted by a crash from tmp/.
   */
  static async open(init: DriveInit): Promise<Drive> {
    const { path, cluster, ref } = init
    const formatPath = join(path, '.tessera', 'format.json')
    await mkdir(path, { recursive: true })
    let format: FormatFile
    let formatted = false
    const existing = await readFile(formatPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    if (existing === undefined) {
      const entries = (await readdir(path)).filter((e) => !ALLOWED_IN_EMPTY_DRIVE.has(e))
      if (entries.length > 0) {
        throw new StoreError(
          'DRIVE_NOT_FOUND',
          `drive ${path} is not empty and has no .tessera/format.json (found ${entries.slice(0, 3).join(', ')}` +
            `${entries.length > 3 ? ', …' : ''}); Tessera formats only empty drives`,
          { drive: path },
        )
      }
      format = {
        format: 'tessera',
        version: FORMAT_VERSION,
        cluster,
        ...ref,
        driveId: randomUUID(),
        formattedAt: new Date().toISOString(),
      }
      await mkdir(join(path, '.tessera'), { recursive: true })
      await writeFile(`${formatPath}.tmp`, `${JSON.stringify(format, null, 2)}\n`, { flag: 'w' })
      const fh = await open(`${formatPath}.tmp`, 'r+')
      await fh.sync()
      await fh.close()
      await rename(`${formatPath}.tmp`, formatPath)
      await syncDir(join(path, '.tessera'))
      formatted = true
    } else {
      try {
        format = JSON.parse(existing) as FormatFile
      } catch {
        throw new StoreError('DRIVE_NOT_FOUND', `drive ${path}: ${formatPath} is not valid JSON`, {
          drive: path,
        })
      }
      const found = `cluster ${format.cluster}, pool ${format.pool}, set ${format.set}, slot ${format.slot}`
      const expected = `cluster ${cluster}, pool ${ref.pool}, set ${ref.set}, slot ${ref.slot}`
      if (format.cluster !== cluster) {
        throw new StoreError(
          'DRIVE_NOT_FOUND',
          `drive ${path} belongs to another cluster: found ${found}, expected ${expected}`,
          { drive: path },
        )
      }
      if (format.pool !== ref.pool || format.set !== ref.set || format.slot !== ref.slot) {
        throw new StoreError(
          'DRIVE_NOT_FOUND',
          `drive ${path} is in another slot: found ${found}, expected ${expected}; ` +
            'was it moved or listed in another order in cluster.yaml?',
          { drive: path },
        )
      }
    }
    for (const dir of ['tmp', 'trash'])
      await mkdir(join(path, '.tessera', dir), { recursive: true })
    await mkdir(join(path, 'data'), { recursive: true })
    // Writes interrupted by a crash: nothing refers to them, they go.
    await rm(join(path, '.tessera', 'tmp'), { recursive: true, force: true })
    await mkdir(join(path, '.tessera', 'tmp'), { recursive: true })
    const direct = init.slabs
      ? await probeDirectIo(join(path, '.tessera', 'tmp'), init.slabs)
      : false
    const meta = await MetaStore.open({ path: join(path, '.tessera', 'meta') })
    const drive = new Drive(path, ref, format.driveId, meta, formatted, init.slabs, init.stallMs)
    drive.directIo.direct = direct
    return drive
  }

  tmpPath(tmpId: string): string {
    checkToken('tmp id', tmpId)
    return join(this.path, '.tessera', 'tmp', tmpId)
  }

  objectPath(bucket: string, key: string): string {
    checkBucketName(bucket)
    const h = objectHash(bucket, key)
    return join(this.path, 'data', bucket, h.slice(0, 2), h)
  }

  dataPath(bucket: string, key: string, dataDir: string): string {
    checkToken('data dir', dataDir)
    return join(this.objectPath(bucket, key), dataDir)
  }

  shardPath(bucket: string, key: string, dataDir: string, part: number): string {
    if (!Number.isInteger(part) || part < 1 || part > 10000) {
      throw new StoreError('INVALID_REQUEST', `invalid part number ${part}`)
    }
    return join(this.dataPath(bucket, key, dataDir), `part.${part}`)
  }

  /** Moves a file or folder to trash (a rename: instant); the emptier deletes it later. */
  async trash(path: string): Promise<boolean> {
    try {
      await rename(path, join(this.path, '.tessera', 'trash', randomUUID()))
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
      throw err
    }
  }

  /** Deletes what is in trash now. */
  async emptyTrash(): Promise<number> {
    const dir = join(this.path, '.tessera', 'trash')
    const entries = await readdir(dir).catch(() => [] as string[])
    for (const e of entries) await rm(join(dir, e), { recursive: true, force: true })
    return entries.length
  }

  /**
   * Removes writes in tmp/ older than `maxAgeMs`: a PUT whose gateway went away between
   * writing its shard and committing it. No write in progress is that old (a streamed call's
   * deadline is one hour), and nothing in tmp/ is visible to clients.
   */
  async cleanTmp(maxAgeMs = TMP_MAX_AGE_MS): Promise<number> {
    const dir = join(this.path, '.tessera', 'tmp')
    let removed = 0
    for (const e of await readdir(dir).catch(() => [] as string[])) {
      const st = await stat(join(dir, e)).catch(() => undefined)
      if (st !== undefined && Date.now() - st.mtimeMs > maxAgeMs) {
        await rm(join(dir, e), { recursive: true, force: true })
        removed++
      }
    }
    return removed
  }

  /**
   * Drops the part records of uploads this drive has no record of, when older than `minAgeMs`,
   * then moves to trash every data folder under data/ that no record on this drive names and
   * that is older than `minAgeMs` (see the design notes). A folder counts as unnamed only when the
   * records read before the walk and those read after it both leave it out: a commit or a
   * repair that names it meanwhile keeps it.
   */
  async sweepOrphans(minAgeMs = ORPHAN_MIN_AGE_MS): Promise<OrphanSweep> {
    // A whole-drive heal under way may yet name folders it finds whole (and spare rebuilding
    // them): no sweep until it is done.
    if ((await this.meta.getSystem(FULL_HEAL_PENDING_KEY)) !== undefined)
      return { folders: 0, removed: 0, strayUploads: 0, finishedUploads: 0, skipped: true }
    const oldest = Date.now() - minAgeMs
    // Part records of an upload this drive never got the record of would name their folder
    // for ever (no Abort or Complete reaches them: both go by the upload record).
    let strayUploads = 0
    for (const u of await this.meta.strayUploads(oldest * HLC_COUNTER_SPAN)) {
      const dropped = await this.meta.exclusive(u.bucket, u.key, async () => {
        // A repair may have brought the record back since the scan.
        if ((await this.meta.getUpload(u.bucket, u.key, u.uploadId)) !== undefined) return false
        await this.meta.deleteUpload(u.bucket, u.key, u.uploadId)
        return true
      })
      if (dropped) strayUploads++
    }
    // Completions no gateway settled are settled here; settled ones, kept a day for a retried
    // Complete, go.
    let finishedUploads = 0
    const settleBefore = oldest * HLC_COUNTER_SPAN
    for (const u of await this.meta.completedUploads(settleBefore)) {
      if (u.completing !== undefined) {
        if (await this.finishUpload(u.bucket, u.key, u.uploadId, u.completing.modTime))
          finishedUploads++
      }
      await this.meta.exclusive(u.bucket, u.key, async () => {
        const now = await this.meta.getUpload(u.bucket, u.key, u.uploadId)
        if (now?.completed !== undefined && now.completed.modTime < settleBefore)
          await this.meta.deleteUpload(u.bucket, u.key, u.uploadId)
      })
    }
    const before = await this.meta.dataDirsInUse()
    const data = join(this.path, 'data')
    const candidates: { path: string; dataDir: string }[] = []
    let folders = 0
    for (const bucket of await subfolders(data)) {
      for (const fan of await subfolders(join(data, bucket))) {
        for (const object of await subfolders(join(data, bucket, fan))) {
          const objectPath = join(data, bucket, fan, object)
          for (const dataDir of await subfolders(objectPath)) {
            folders++
            if (before.has(dataDir)) continue
            const st = await stat(join(objectPath, dataDir)).catch(() => undefined)
            if (st !== undefined && st.mtimeMs < oldest)
              candidates.push({ path: join(objectPath, dataDir), dataDir })
          }
        }
      }
    }
    let removed = 0
    if (candidates.length > 0) {
      const after = await this.meta.dataDirsInUse()
      for (const { path, dataDir } of candidates) {
        if (!after.has(dataDir) && (await this.trash(path))) removed++
      }
    }
    return { folders, removed, strayUploads, finishedUploads }
  }

  /**
   * Settles a completion that reached its write quorum (see UploadRecord.completing): the part
   * records go, and the part files its version does not use; the upload record stays as
   * `completed` (for a retried Complete) if the version was written. Only the completion of
   * `modTime`: false when the drive's upload is not marked with it.
   */
  async finishUpload(
    bucket: string,
    key: string,
    uploadId: string,
    modTime: Hlc,
  ): Promise<boolean> {
    return this.meta.exclusive(bucket, key, async () => {
      const up = await this.meta.getUpload(bucket, key, uploadId)
      const c = up?.completing
      if (up === undefined || c?.modTime !== modTime) return false
      const v = await this.meta.getVersion(bucket, key, c.versionId)
      const { completing: _, ...rest } = up
      await this.dropUpload(
        bucket,
        key,
        uploadId,
        v?.modTime === c.modTime
          ? {
              ...rest,
              completed: {
                versionId: v.versionId,
                modTime: v.modTime,
                etag: v.etag,
                ...(v.checksums ? { checksums: v.checksums } : {}),
              },
            }
          : undefined,
        // A crash may lose it: the upload is then still marked, and the daily sweep settles it.
        { lazy: true },
      )
      return true
    })
  }

  /**
   * Drops an upload's records and moves its part files to trash, except those a version of the
   * key on this drive uses: a folder no version names goes whole; of one a version names (the
   * upload's own completion, or a version healed into the folder), only the parts the version
   * does not list. With `keep`, the upload record is replaced by it (in the same batch) instead.
   * `lazy`: the records' change is not flushed on its own (see MetaStore.deleteUpload). The
   * caller holds the key's exclusive section. True when the upload record existed.
   */
  async dropUpload(
    bucket: string,
    key: string,
    uploadId: string,
    keep?: UploadRecord,
    options: { lazy?: boolean } = {},
  ): Promise<boolean> {
    const { parts } = await this.meta.getParts(bucket, key, uploadId, {})
    const existed =
      keep === undefined
        ? await this.meta.deleteUpload(bucket, key, uploadId, options)
        : await this.meta.replaceUpload(keep, options)
    const used = new Map<string, Set<number>>()
    if (parts.length > 0) {
      for (const v of await this.meta.getVersions(bucket, key)) {
        if (v.dataDir !== undefined) used.set(v.dataDir, new Set(v.parts.map((p) => p.number)))
      }
    }
    for (const dir of new Set(parts.map((p) => p.dataDir))) {
      const kept = used.get(dir)
      if (kept === undefined) {
        await this.trash(this.dataPath(bucket, key, dir))
        continue
      }
      for (const p of parts) {
        if (p.dataDir === dir && !kept.has(p.number))
          await this.trash(this.shardPath(bucket, key, dir, p.number))
      }
    }
    return existed
  }

  /**
   * Empties trash every `intervalMs` in the background, old tmp/ leftovers with it, and once
   * a day the data folders no record names (`onSwept` hears of each sweep).
   */
  startTrashEmptier(
    intervalMs: number,
    onError: (err: unknown) => void,
    onSwept: (sweep: OrphanSweep) => void = () => {},
  ): void {
    let lastTmp = Date.now()
    let lastOrphans = Date.now()
    let sweeping = false
    this.#trashTimer = setInterval(() => {
      this.emptyTrash().catch(onError)
      if (Date.now() - lastTmp > TMP_SWEEP_EVERY_MS) {
        lastTmp = Date.now()
        this.cleanTmp().catch(onError)
        this.meta.purgeTombstones(TOMBSTONE_MAX_AGE_MS).catch(onError)
      }
      if (!sweeping && Date.now() - lastOrphans > ORPHAN_SWEEP_EVERY_MS) {
        lastOrphans = Date.now()
        sweeping = true
        this.sweepOrphans()
          .then(onSwept, onError)
          .finally(() => {
            sweeping = false
          })
      }
    }, intervalMs)
    this.#trashTimer.unref()
  }

  async usage(): Promise<{ totalBytes: number; freeBytes: number; usedBytes: number }> {
    const s = await statfs(this.path)
    const total = s.blocks * s.bsize
    const free = s.bavail * s.bsize
    return { totalBytes: total, freeBytes: free, usedBytes: total - s.bfree * s.bsize }
  }

  async close(): Promise<void> {
    clearInterval(this.#trashTimer)
    await this.meta.close()
  }
}
