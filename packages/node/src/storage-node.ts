/**
 * The storage daemon's core: opens this node's drives (from the cluster layout), serves the
 * RPCs of `@tessera/protocol` over the secure channel, and empties trash in the background.
 * Logging goes through the injected logger; nothing here reads the environment.
 */

import { randomUUID } from 'node:crypto'
import { stat } from 'node:fs/promises'
import type { Server } from 'node:net'
import { ErasureLayout, loadChunkHasher } from '@tessera/codec'
import {
  AbortWrite,
  bucketStamp,
  CheckUpload,
  type ClusterMap,
  CommitPart,
  CommitVersion,
  CompleteUpload,
  computeLayout,
  DAEMON_ENV,
  DeleteBucket,
  DeleteSystem,
  DeleteUpload,
  DeleteVersion,
  type DriveInfo,
  type DriveRef,
  FinishUpload,
  GetBucket,
  GetDriveInfo,
  GetSystem,
  GetUpload,
  Health,
  type Identity,
  ListBuckets,
  ListParts,
  ListRange,
  ListSystem,
  ListUploads,
  laterRecord,
  listedVersion,
  listenSecure,
  type PartRecord,
  PROTOCOL_VERSION,
  PutBucket,
  PutShard,
  PutSystem,
  PutUpload,
  ReadRaw,
  ReadShard,
  ReadVersions,
  RewriteShard,
  RpcServer,
  StoreError,
  setsOfNode,
  UndoCompletion,
  type VersionRecord,
  withBody,
} from '@tessera/protocol'
import { AlignedSlabs, DEFAULT_DIRECT_WRITE_BYTES } from './direct-io.ts'
import { Drive } from './drive.ts'
import { guardDrives } from './drive-health.ts'
import { GatewayStatsStore, registerGatewayStatsRpcs } from './gateway-stats.ts'
import { checkData, type HealConfig, Healer, LoadMeter, registerHealRpcs } from './heal/index.ts'
import { type LifecycleOptions, LifecycleWorker } from './lifecycle/lifecycle-worker.ts'
import type { MetaOp } from './meta-store.ts'
import type { NodeMetrics } from './metrics.ts'
import { commitShards, readRaw, readShardBlocks, rewriteShard, writeShard } from './shard-io.ts'

/** The logging surface the node needs (pino's, or a child of it). */
export interface Logger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
}

export interface StorageNodeInit {
  map: ClusterMap
  mapHash: string
  nodeId: string
  identity: Identity
  /** Where to listen; default the node's address in the map. */
  listen?: { host: string; port: number }
  /** How often trash is emptied; default 10 s. */
  trashIntervalMs?: number
  /** Bucket lifecycle worker settings (interval, default for noncurrent versions, test clock). */
  lifecycle?: Partial<LifecycleOptions>
  /** Healing and scanning settings (scan rate, intervals, grace period, repairs at once). */
  heal?: Partial<HealConfig>
  /**
   * Memory for the aligned buffers of direct (O_DIRECT) shard writes, shared by the node's
   * drives: one MiB per shard being written; writes beyond it go through the page cache.
   * Default {@link DEFAULT_DIRECT_WRITE_BYTES}; 0 writes every shard through the page cache.
   */
  directWriteBytes?: number
  /** How long a drive may do nothing while operations wait on it (default DRIVE_STALL_MS). */
  driveStallMs?: number
}

export interface StorageNodeComponents {
  logger: Logger
  /** Counts and times every RPC, and reads drive and heal figures from their handlers. */
  metrics?: NodeMetrics
}

const key = (r: DriveRef): string => `${r.pool}/${r.set}/${r.slot}`

/** A drive that failed to open when the node started. */
export interface OfflineDrive {
  ref: DriveRef
  path: string
  error: string
}

export class StorageNode {
  readonly nodeId: string
  readonly drives: ReadonlyMap<string, Drive>
  /** Drives of this node that failed to open at start, with why. */
  readonly offline: ReadonlyMap<string, OfflineDrive>
  #server: Server
  #started = Date.now()
  #log: Logger
  #channels: Set<{ close(err?: Error): void }>
  /** Bucket lifecycle (design §8): expires versions and aborts uploads in the background. */
  #lifecycle: LifecycleWorker | undefined
  /** Healing and scanning (issue #6): repair queues, scanners, full heals. */
  #healer: Healer | undefined

  private constructor(
    nodeId: string,
    drives: Map<string, Drive>,
    server: Server,
    log: Logger,
    channels: Set<{ close(err?: Error): void }>,
    offline: ReadonlyMap<string, OfflineDrive>,
  ) {
    this.nodeId = nodeId
    this.drives = drives
    this.offline = offline
    this.#server = server
    this.#log = log
    this.#channels = channels
  }

  /**
   * Opens every drive of this node, then listens. Fails before listening (naming every bad
   * drive) when a drive is misplaced or none opens; a drive that fails to open is offline.
   */
  static async start(
    init: StorageNodeInit,
    components: StorageNodeComponents,
  ): Promise<StorageNode> {
    const log = components.logger
    const self = init.map.pools.flatMap((p) => p.nodes).find((n) => n.id === init.nodeId)
    if (self === undefined) {
      throw new StoreError('INVALID_REQUEST', `node ${init.nodeId} is not in the cluster map`)
    }
    if (self.publicKey !== init.identity.id) {
      throw new StoreError(
        'INVALID_REQUEST',
        `the identity key's public id ${init.identity.id} is not the one the map lists for node ` +
          `${init.nodeId} (${self.publicKey})`,
      )
    }
    const layout = computeLayout(init.map)
    const slots = setsOfNode(layout, init.nodeId)
    const drives = new Map<string, Drive>()
    const directBytes = init.directWriteBytes ?? DEFAULT_DIRECT_WRITE_BYTES
    const slabs = directBytes > 0 ? new AlignedSlabs(directBytes) : undefined
    const opened = await Promise.allSettled(
      slots.map((s) =>
        Drive.open({
          path: s.path,
          cluster: init.map.cluster,
          ref: { pool: s.pool, set: s.set, slot: s.slot },
          slabs,
          ...(init.driveStallMs !== undefined ? { stallMs: init.driveStallMs } : {}),
        }),
      ),
    )
    // A drive that is misplaced (another cluster's, another slot's, not ours) is a mistake in
    // the map or the mounts: the node refuses to start, naming it, rather than serve the wrong
    // data. A drive that fails to open (I/O error, unreadable metadata) is a dead disk: the
    // node starts without it and reports it offline, as the set's quorum allows; healing
    // rebuilds it once the disk is replaced and the node restarted.
    const misplaced: string[] = []
    const offline = new Map<string, OfflineDrive>()
    opened.forEach((r, i) => {
      const slot = slots[i]!
      if (r.status === 'fulfilled') drives.set(key(r.value.ref), r.value)
      else if ((r.reason as { code?: string }).code === 'DRIVE_NOT_FOUND')
        misplaced.push(`${slot.path}: ${(r.reason as Error).message}`)
      else {
        const ref = { pool: slot.pool, set: slot.set, slot: slot.slot }
        offline.set(key(ref), { ref, path: slot.path, error: (r.reason as Error).message })
      }
    })
    if (misplaced.length > 0 || drives.size === 0) {
      await Promise.all([...drives.values()].map((d) => d.close()))
      const all = [...misplaced, ...[...offline.values()].map((o) => `${o.path}: ${o.error}`)]
      throw new StoreError('DRIVE_NOT_FOUND', `cannot open drives:\n  ${all.join('\n  ')}`)
    }
    for (const o of offline.values()) {
      log.error(
        { drive: o.path, ...o.ref, err: o.error },
        'drive offline: it failed to open; the node serves without it (replace the disk and restart the node to heal it)',
      )
    }
    if (slabs !== undefined) {
      for (const d of drives.values()) {
        if (!d.directIo.direct) {
          log.warn(
            { drive: d.path, ...d.ref },
            "the drive's file system refuses O_DIRECT: its shard files are written through the page cache",
          )
        }
      }
    }
    components.metrics?.watchDirectWrites(
      () => slabs?.stats() ?? { allocatedBytes: 0, lentBytes: 0 },
    )
    const allowed = new Set([
      ...init.map.pools.flatMap((p) => p.nodes.map((n) => n.publicKey)),
      ...init.map.gateways,
    ])
    const rpc = new RpcServer()
    // Metrics: wraps rpc.handle, so it must come before any handler is registered.
    components.metrics?.instrument(rpc)
    // Client load (gateway RPCs per second) slows the scanners down; also wraps rpc.handle.
    const meter = new LoadMeter(init.map.gateways)
    meter.instrument(rpc)
    // A drive whose operations hang is refused, not waited on (drive-health.ts); also wraps
    // rpc.handle.
    guardDrives(
      rpc,
      (ref) => drives.get(key(ref)),
      (d, stalledMs) => {
        if (stalledMs === undefined) log.info({ drive: d.path }, 'the drive answers again')
        else
          log.warn(
            { drive: d.path, stalledMs },
            'an operation has waited on the drive too long (a hung disk?): refusing calls to it',
          )
      },
    )
    const channels = new Set<{ close(err?: Error): void }>()
    const server = listenSecure({
      identity: init.identity,
      hello: { version: PROTOCOL_VERSION, mapHash: init.mapHash, role: 'node' },
      authorize: (remoteId) =>
        allowed.has(remoteId) ? undefined : 'not a member of the cluster map',
      onChannel: (ch) => {
        channels.add(ch)
        ch.on('close', (err?: Error) => {
          channels.delete(ch)
          if (err)
            log.warn({ remoteId: ch.remoteId, err: err.message }, 'channel closed with an error')
        })
        rpc.attach(ch)
      },
      onRefused: (remoteId, reason) => log.warn({ remoteId, reason }, 'refused a connection'),
    })
    const node = new StorageNode(init.nodeId, drives, server, log, channels, offline)
    await node.#register(rpc)
    const healer = await Healer.create({
      map: init.map,
      mapHash: init.mapHash,
      nodeId: init.nodeId,
      identity: init.identity,
      drives,
      meter,
      log,
      ...init.heal,
    })
    node.#healer = healer
    registerHealRpcs(rpc, healer, init.nodeId, offline)
    // The gateways' request counters (whole-cluster S3 traffic for the admin API), in memory.
    registerGatewayStatsRpcs(rpc, new GatewayStatsStore(init.map.gateways), log)
    const [host, portText] = splitAddress(self.address)
    const where = init.listen ?? { host, port: Number(portText) }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(where.port, where.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    for (const d of drives.values()) {
      d.startTrashEmptier(
        init.trashIntervalMs ?? 10_000,
        (err) =>
          log.warn({ drive: d.path, err: (err as Error).message }, 'background cleanup failed'),
        (sweep) => {
          if (sweep.removed > 0 || sweep.strayUploads > 0 || sweep.finishedUploads > 0)
            log.info({ drive: d.path, ...sweep }, 'data folders no record names moved to trash')
        },
      )
    }
    // Bucket lifecycle: started once the node serves, since it calls this node's drives too.
    node.#lifecycle = LifecycleWorker.start(
      {
        map: init.map,
        mapHash: init.mapHash,
        identity: init.identity,
        nodeId: init.nodeId,
        ...init.lifecycle,
      },
      { logger: log },
    )
    // Healing: started once the node serves, since its peers' repairs read from it too.
    healer.start()
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4)
    if (threads < Number(DAEMON_ENV.UV_THREADPOOL_SIZE)) {
      log.warn(
        { threads, want: Number(DAEMON_ENV.UV_THREADPOOL_SIZE) },
        'libuv thread pool smaller than the daemons are started with: one hung drive can take ' +
          'every thread and stall the node; start it with UV_THREADPOOL_SIZE=64 (the shipped ' +
          'launchers do)',
      )
    }
    log.info({ nodeId: init.nodeId, drives: drives.size, address: node.address }, 'node started')
    return node
  }

  /** The address the node listens on. */
  get address(): { host: string; port: number } {
    const a = this.#server.address()
    if (a === null || typeof a === 'string') throw new Error('the node is not listening')
    return { host: a.address, port: a.port }
  }

  drive(ref: DriveRef): Drive {
    const d = this.drives.get(key(ref))
    const off = d === undefined ? this.offline.get(key(ref)) : undefined
    if (off !== undefined) {
      throw new StoreError(
        'DRIVE_OFFLINE',
        `drive ${off.path} of node ${this.nodeId} is offline: ${off.error}`,
        { ...ref, drive: off.path },
      )
    }
    if (d === undefined) {
      throw new StoreError(
        'DRIVE_NOT_FOUND',
        `node ${this.nodeId} has no drive at pool ${ref.pool}, set ${ref.set}, slot ${ref.slot}`,
        { ...ref },
      )
    }
    return d
  }

  async #register(rpc: RpcServer): Promise<void> {
    const h64 = await loadChunkHasher()

    rpc.handle(Health, () => ({
      nodeId: this.nodeId,
      uptimeMs: Date.now() - this.#started,
      drives: this.drives.size + this.offline.size,
      drivesOnline: this.drives.size,
    }))

    rpc.handle(GetDriveInfo, async () => {
      const offline = (
        d: { ref: DriveRef; path: string },
        driveId: string,
        error: string,
      ): DriveInfo => ({
        ...d.ref,
        path: d.path,
        driveId,
        online: false,
        totalBytes: 0,
        freeBytes: 0,
        usedBytes: 0,
        error,
      })
      const drives: DriveInfo[] = []
      for (const d of this.drives.values()) {
        // A hung drive is not asked for its usage: the call would hang too.
        const stalled = d.health.stalledFor()
        if (stalled !== undefined) {
          const s = Math.round(stalled / 1000)
          drives.push(offline(d, d.driveId, `stalled: an operation has waited on it for ${s} s`))
          continue
        }
        try {
          drives.push({
            ...d.ref,
            path: d.path,
            driveId: d.driveId,
            online: true,
            directIo: d.directIo.direct,
            metaLookups: d.meta.readStats,
            ...(await d.usage()),
          })
        } catch (err) {
          drives.push(offline(d, d.driveId, (err as Error).message))
        }
      }
      // Drives that failed to open: their id is unknown.
      for (const o of this.offline.values()) drives.push(offline(o, '', o.error))
      return { drives }
    })

    rpc.handle(PutShard, async (req, ctx) => {
      const bytes = await writeShard(this.drive(req), req, ctx.body)
      return { bytes }
    })

    rpc.handle(CommitVersion, async (req) => {
      const d = this.drive(req)
      const rec = req.record
      d.objectPath(rec.bucket, rec.key) // validates the bucket name
      if (req.tmpId !== undefined && rec.dataDir === undefined) {
        throw new StoreError('INVALID_REQUEST', 'a commit with a tmp id needs the record’s dataDir')
      }
      // Decided and written in the key's exclusive section: no delete, repair or other commit
      // of the key comes between the checks and the write.
      const done = await d.meta.exclusive(rec.bucket, rec.key, async () => {
        // A 'null' version replaces the one before it; a change of tags or ACL (metaTime)
        // rewrites its own version.
        const old =
          rec.versionId === 'null' || rec.metaTime !== undefined
            ? await d.meta.getVersion(rec.bucket, rec.key, rec.versionId)
            : undefined
        // A commit that arrives late (its link was cut, TCP delivered it when the link came
        // back) must not undo what happened since: a newer 'null' version or a later change of
        // the version's tags or ACL stays, and a version a client deleted stays deleted. The
        // write is dropped; the caller sees it superseded.
        if ((old !== undefined && laterRecord(old, rec)) || (await d.meta.deletedBefore(rec)))
          return undefined
        if (req.tmpId !== undefined) {
          const moved = await commitShards(d, req.tmpId, rec.bucket, rec.key, rec.dataDir!)
          if (!moved) {
            throw new StoreError(
              'INVALID_REQUEST',
              `nothing was written under tmp id ${req.tmpId}`,
              { drive: d.path },
            )
          }
        }
        await d.meta.putVersion(rec)
        return { old }
      })
      if (done === undefined) {
        if (req.tmpId !== undefined) await d.trash(d.tmpPath(req.tmpId))
        return { superseded: true }
      }
      const { old } = done
      if (old?.dataDir !== undefined && old.dataDir !== rec.dataDir) {
        await d.trash(d.dataPath(rec.bucket, rec.key, old.dataDir))
      }
      return old?.dataDir !== undefined ? { replaced: old.dataDir } : {}
    })

    rpc.handle(AbortWrite, async (req) => {
      const d = this.drive(req)
      return { removed: await d.trash(d.tmpPath(req.tmpId)) }
    })

    rpc.handle(ReadVersions, async (req) => {
      const d = this.drive(req)
      if (req.versionId !== undefined) {
        const v = await d.meta.getVersion(req.bucket, req.key, req.versionId)
        return { versions: v ? [v] : [] }
      }
      return { versions: await d.meta.getVersions(req.bucket, req.key, req.limit) }
    })

    rpc.handle(ReadShard, async (req) => {
      const d = this.drive(req)
      const path = d.shardPath(req.bucket, req.key, req.dataDir, req.part)
      // Answer a missing file with an error response, not a failed body.
      await stat(path).catch(() => {
        throw new StoreError(
          'SHARD_NOT_FOUND',
          `no shard file for ${req.bucket}/${req.key} part ${req.part} on drive ${d.path}`,
          { drive: d.path, bucket: req.bucket, key: req.key, part: req.part },
        )
      })
      // The span of the blocks asked for: what the body will carry when every chunk checks out.
      const layout = new ErasureLayout({ k: req.k, m: 0, blockSize: req.blockSize })
      const { length } = layout.shardSpan(req.size, req.firstBlock, req.lastBlock)
      return withBody({ bytes: length }, readShardBlocks(d, req, h64, { reuseBuffer: true }))
    })

    rpc.handle(DeleteVersion, async (req) => {
      const d = this.drive(req)
      // Removed, or remembered when absent: a repair may be about to write this version here.
      const rec = await d.meta.removeVersion(req.bucket, req.key, req.versionId, req.modTime)
      if (rec === undefined) return { existed: false }
      if (rec.dataDir !== undefined) await d.trash(d.dataPath(req.bucket, req.key, rec.dataDir))
      return { existed: true }
    })

    rpc.handle(ListRange, async (req) => {
      const d = this.drive(req)
      // Listings carry metadata only: a record's inline shard bytes stay on the drive, and a
      // brief listing (a gateway's) gets only the fields it shows. One handler serves both
      // ListRange and ListBrief (one RPC id); the cast is the brief answer's type, ListBrief's.
      const strip = <R extends { entries: VersionRecord[] }>(r: R): R => {
        if (req.brief) r.entries = r.entries.map(listedVersion) as VersionRecord[]
        else for (const e of r.entries) delete e.inline
        return r
      }
      if (req.versions) {
        return strip(
          await d.meta.listVersions({
            bucket: req.bucket,
            prefix: req.prefix,
            delimiter: req.delimiter,
            keyMarker: req.keyMarker,
            versionIdMarker: req.versionIdMarker,
            limit: req.limit,
          }),
        )
      }
      return strip(
        await d.meta.listLatest({
          bucket: req.bucket,
          prefix: req.prefix,
          delimiter: req.delimiter,
          startAfter: req.startAfter,
          limit: req.limit,
        }),
      )
    })

    rpc.handle(PutBucket, async (req) => {
      const d = this.drive(req)
      d.objectPath(req.record.name, '') // validates the name
      const old = await d.meta.getBucket(req.record.name)
      if (req.ifAbsent && old !== undefined) return { created: false }
      // A write that arrives late (its link was cut, or a gateway settled without this drive)
      // does not undo a later change of the bucket's settings.
      if (old !== undefined && bucketStamp(old) > bucketStamp(req.record)) return { created: false }
      await d.meta.putBucket(req.record)
      return { created: true }
    })
    rpc.handle(GetBucket, async (req) => ({
      record: await this.drive(req).meta.getBucket(req.name),
    }))
    rpc.handle(DeleteBucket, async (req) => {
      const d = this.drive(req)
      if (await d.meta.bucketHasVersions(req.name)) {
        throw new StoreError(
          'BUCKET_NOT_EMPTY',
          `bucket ${req.name} is not empty on drive ${d.path}`,
        )
      }
      const existed = (await d.meta.getBucket(req.name)) !== undefined
      await d.meta.deleteBucket(req.name)
      return { existed }
    })
    rpc.handle(ListBuckets, async (req) => ({ buckets: await this.drive(req).meta.listBuckets() }))

    rpc.handle(PutUpload, async (req) => {
      const d = this.drive(req)
      d.objectPath(req.record.bucket, req.record.key)
      checkUploadId(req.record.uploadId)
      await d.meta.putUpload(req.record)
      return {}
    })
    rpc.handle(GetUpload, async (req) => {
      const d = this.drive(req)
      const up = await d.meta.getUpload(req.bucket, req.key, req.uploadId)
      if (up === undefined) return {}
      // A completed upload is no longer in progress; once settled, it says as what.
      if (up.completed !== undefined) return { completed: up.completed }
      const c = up.completing
      if (c === undefined) return { record: up }
      if (c.etag !== undefined) return { completing: c }
      // A mark of an earlier release carries no ETag: the version it wrote has it.
      const v = await d.meta.getVersion(req.bucket, req.key, c.versionId)
      if (v?.modTime !== c.modTime) return {}
      return {
        completing: { ...c, etag: v.etag, ...(v.checksums ? { checksums: v.checksums } : {}) },
      }
    })
    rpc.handle(DeleteUpload, async (req) => {
      const d = this.drive(req)
      // Parts go even without the record: a drive that missed the CreateMultipartUpload and
      // then got parts would otherwise keep them (and their folder) after the abort. The files
      // of a version in the upload's folder stay: a completion not settled yet (an Abort that
      // raced the Complete) or a version healed into it.
      return d.meta.exclusive(req.bucket, req.key, async () => {
        const up = await d.meta.getUpload(req.bucket, req.key, req.uploadId)
        await d.dropUpload(req.bucket, req.key, req.uploadId)
        return {
          existed: up !== undefined && up.completing === undefined && up.completed === undefined,
        }
      })
    })
    rpc.handle(ListUploads, async (req) => {
      const r = await this.drive(req).meta.listUploads(req)
      return { uploads: r.uploads, isTruncated: r.isTruncated }
    })
    rpc.handle(CommitPart, async (req) => {
      const d = this.drive(req)
      const rec = req.record
      // In the key's exclusive section, where a repair of the part moves its file and writes its
      // record too: file and record always come from the same upload of the part.
      await d.meta.exclusive(rec.bucket, rec.key, async () => {
        if (req.tmpId !== undefined) {
          const moved = await commitShards(d, req.tmpId, rec.bucket, rec.key, rec.dataDir)
          if (!moved)
            throw new StoreError('INVALID_REQUEST', `nothing was written under tmp id ${req.tmpId}`)
        }
        await d.meta.putPart(rec)
      })
      return {}
    })
    rpc.handle(ListParts, async (req) => {
      const r = await this.drive(req).meta.getParts(req.bucket, req.key, req.uploadId, {
        partNumberMarker: req.partNumberMarker,
        limit: req.limit,
      })
      return { parts: r.parts, isTruncated: r.isTruncated }
    })

    // CheckUpload and CompleteUpload check alike: the gateway asks every drive first, and
    // completes only when a write quorum of them can (see CheckUpload).
    const checkCompletion = async (
      d: Drive,
      req: { uploadId: string; record: VersionRecord },
    ): Promise<PartRecord[]> => {
      const rec = req.record
      const up = await d.meta.getUpload(rec.bucket, rec.key, req.uploadId)
      if (up === undefined) {
        throw new StoreError(
          'UPLOAD_NOT_FOUND',
          `no upload ${req.uploadId} of ${rec.bucket}/${rec.key} on drive ${d.path}`,
        )
      }
      const { parts } = await d.meta.getParts(rec.bucket, rec.key, req.uploadId, {})
      // The drive must hold every chosen part, as that part (ETag, size, folder): one that was
      // away while a part was uploaded, or kept an earlier upload of it, would name files that
      // are not there or hold other bytes. It does not count for the quorum, and is healed.
      const mine = new Map(parts.map((p) => [p.number, p]))
      const lacking = rec.parts.filter((p) => {
        const have = mine.get(p.number)
        return (
          have === undefined ||
          have.etag !== p.etag ||
          have.size !== p.size ||
          have.dataDir !== rec.dataDir
        )
      })
      if (lacking.length > 0) {
        throw new StoreError(
          'SHARD_NOT_FOUND',
          `drive ${d.path} does not hold part${lacking.length > 1 ? 's' : ''} ` +
            `${lacking
              .slice(0, 5)
              .map((p) => p.number)
              .join(', ')}${lacking.length > 5 ? ', …' : ''} of upload ${req.uploadId} as chosen`,
          { drive: d.path },
        )
      }
      // And their files, whole (a record without its file: a drive restored from an old copy).
      const files = await checkData(d, rec, { deep: false, h64 })
      if (files.badParts.length > 0) {
        throw new StoreError(
          'SHARD_NOT_FOUND',
          `drive ${d.path} does not hold the files of upload ${req.uploadId}: ${files.reason}`,
          { drive: d.path },
        )
      }
      return parts
    }
    rpc.handle(CheckUpload, async (req) => {
      await checkCompletion(this.drive(req), req)
      return {}
    })
    rpc.handle(CompleteUpload, async (req) => {
      const d = this.drive(req)
      const rec = req.record
      await checkCompletion(d, req)
      // Decided and written in the key's exclusive section, as CommitVersion is: a completion
      // that arrives late must not undo a newer 'null' write or bring back a deleted version.
      // Then the upload is still marked (the client completed it) but no version appears.
      const done = await d.meta.exclusive(rec.bucket, rec.key, async () => {
        const up = await d.meta.getUpload(rec.bucket, rec.key, req.uploadId)
        if (up === undefined) {
          throw new StoreError(
            'UPLOAD_NOT_FOUND',
            `upload ${req.uploadId} of ${rec.bucket}/${rec.key} went from drive ${d.path} while it was checked`,
          )
        }
        if (up.undone === rec.modTime) {
          throw new StoreError(
            'CANCELLED',
            `the gateway undid this completion of upload ${req.uploadId} before it reached drive ${d.path}`,
          )
        }
        const old =
          rec.versionId === 'null'
            ? await d.meta.getVersion(rec.bucket, rec.key, 'null')
            : undefined
        const superseded =
          (old !== undefined && old.modTime > rec.modTime) || (await d.meta.deletedBefore(rec))
        const ops: MetaOp[] = superseded ? [] : [{ type: 'putVersion', record: rec }]
        // An earlier completion of this upload that failed and whose undo never came here: its
        // version record goes (the retry's names the same files).
        const prev = up.completing
        if (prev !== undefined && prev.versionId !== rec.versionId) {
          const v = await d.meta.getVersion(rec.bucket, rec.key, prev.versionId)
          if (v?.modTime === prev.modTime) {
            ops.push({
              type: 'deleteVersion',
              bucket: rec.bucket,
              key: rec.key,
              versionId: prev.versionId,
            })
          }
        }
        // One batch: the version appears and the upload is marked together. The upload, its
        // parts and their files stay until the gateway settles the completion (FinishUpload
        // or UndoCompletion), so that one below quorum can be taken back whole.
        ops.push({
          type: 'putUpload',
          record: {
            ...up,
            completing: {
              versionId: rec.versionId,
              modTime: rec.modTime,
              etag: rec.etag,
              ...(rec.checksums ? { checksums: rec.checksums } : {}),
            },
          },
        })
        await d.meta.batch(ops)
        return { old, superseded }
      })
      if (done.superseded) return { superseded: true }
      const { old } = done
      if (old?.dataDir !== undefined && old.dataDir !== rec.dataDir) {
        await d.trash(d.dataPath(rec.bucket, rec.key, old.dataDir))
      }
      return old?.dataDir !== undefined ? { replaced: old.dataDir } : {}
    })
    rpc.handle(FinishUpload, async (req) => ({
      finished: await this.drive(req).finishUpload(req.bucket, req.key, req.uploadId, req.modTime),
    }))
    rpc.handle(UndoCompletion, async (req) => ({
      undone: await this.drive(req).meta.undoCompletion(req),
    }))

    rpc.handle(ReadRaw, async (req) =>
      withBody({ bytes: req.length }, readRaw(this.drive(req), req)),
    )
    rpc.handle(RewriteShard, async (req, ctx) => ({
      bytes: await rewriteShard(this.drive(req), req, ctx.body, randomUUID()),
    }))

    rpc.handle(PutSystem, async (req) => {
      await this.drive(req).meta.putSystem(req.key, req.value)
      return {}
    })
    rpc.handle(GetSystem, async (req) => ({ value: await this.drive(req).meta.getSystem(req.key) }))
    rpc.handle(ListSystem, async (req) => ({
      entries: await this.drive(req).meta.listSystem(req.prefix),
    }))
    rpc.handle(DeleteSystem, async (req) => {
      const d = this.drive(req)
      const existed = (await d.meta.getSystem(req.key)) !== undefined
      await d.meta.deleteSystem(req.key)
      return { existed }
    })
  }

  async close(): Promise<void> {
    // Lifecycle first: its in-flight actions need the drives and the peers.
    await this.#lifecycle?.stop()
    // Healing next: it stops its repairs and scanners in a few seconds at most.
    await this.#healer?.close()
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    for (const ch of this.#channels) ch.close()
    await closed
    await Promise.all([...this.drives.values()].map((d) => d.close()))
    this.#log.info({ nodeId: this.nodeId }, 'node stopped')
  }
}

function checkUploadId(id: string): void {
  if (!/^[A-Za-z0-9_-]{8,80}$/.test(id))
    throw new StoreError('INVALID_REQUEST', `invalid upload id ${JSON.stringify(id)}`)
}

/** "host:port" or "[v6]:port" → [host, port]. */
export function splitAddress(address: string): [string, string] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address)
  if (m === null) throw new StoreError('INVALID_REQUEST', `address ${address} is not host:port`)
  return [m[1]!, m[2]!]
}
