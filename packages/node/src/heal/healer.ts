/* Design notes

The node's healer: one repair queue and one scanner per drive, a few repair workers shared by
all drives of the node.

Queues. Each drive has two queues, deduplicated by (bucket, key, versionId): *urgent* repairs
asked for by gateways (a read that met a bad or missing shard, a write that missed the drive:
QueueHeal with reason 'read' or 'write-miss') and *background* ones (scanner, catch-up, full
heal). Workers take urgent repairs first, drives in turn, so a write-time miss is repaired
within moments even while a full heal runs. An item already waiting absorbs a new request for
the same object (an urgent one moves it to the urgent queue); an item being repaired does not,
so a request that arrives during a repair gets a fresh look afterwards. Repairs of one key on
one drive run one at a time. The walks of the scanner wait while the background queue is full,
so queued work stays bounded; the urgent queue drops requests past MAX_QUEUED_PER_DRIVE (the
scanner finds those objects later).

A 'write-miss' or 'read' repair of a version that no read quorum holds yet (the gateway reports
the miss before the other drives' commits are all done) is tried again a few times, a second
apart.

Concurrency: `concurrency` repairs at once on the node (default 4): each streams a few blocks
from k drives and keeps the codec pool busy, so a handful saturate a disk or a core without
starving client requests.

Stopping: close() aborts the scanners and the repairs in progress (their tmp files are removed
at the next start, nothing half-written is visible), drops what is queued, and waits for them at
most CLOSE_WAIT_MS, well inside the node's 10 s stop deadline.
*/
import { setMaxListeners } from 'node:events'
import { availableParallelism } from 'node:os'
import {
  type BlockCodec,
  type ChunkHasher,
  CodecPool,
  InlineCodec,
  loadChunkHasher,
} from '@tessera/codec'
import {
  Cluster,
  type ClusterMap,
  type DriveHealState,
  type DriveRef,
  type DriveSlot,
  type HealItem,
  type HealReason,
  HealStatus,
  type Identity,
  QueueHeal,
  type RpcServer,
  StartHeal,
  StoreError,
  type VersionRecord,
} from '@tessera/protocol'
import type { Drive } from '../drive.ts'
import type { LoadMeter } from './load-meter.ts'
import { Repairer, type RepairOutcome } from './repair.ts'
import { DriveStatus, Scanner, type ScanRepair } from './scanner.ts'
import { driveKey, SetAccess } from './set-access.ts'

/** Tunables of healing and scanning; see DEFAULT_HEAL_CONFIG. */
export interface HealConfig {
  /** Versions each drive's scanner checks per second while no client calls the node. */
  scanRate: number
  /** Pause between the end of a scan cycle and the start of the next, in ms. */
  scanIntervalMs: number
  /** Every this many scan cycles, one also verifies every chunk checksum (0: never by itself). */
  deepEvery: number
  /** Versions a drive holds without a read quorum are removed only once older than this, in ms. */
  graceMs: number
  /** Repairs running at once on the node. */
  concurrency: number
  /** Delay between the node's start and the first pass (catch-up or full heal), in ms. */
  startDelayMs: number
  /** Worker threads of the codec pool used to rebuild large objects. */
  codecThreads: number
}

export const DEFAULT_HEAL_CONFIG: HealConfig = {
  scanRate: 200,
  scanIntervalMs: 60_000,
  deepEvery: 10,
  graceMs: 60_000,
  concurrency: 4,
  startDelayMs: 1000,
  codecThreads: Math.min(4, availableParallelism()),
}

/** Most repairs waiting per drive (urgent and background together). */
export const MAX_QUEUED_PER_DRIVE = 100_000
/** Background repairs a scanner walk keeps queued per worker before it waits. */
const BACKGROUND_AHEAD_PER_WORKER = 4
/** Attempts of a 'write-miss' or 'read' repair of a version no quorum holds yet. */
const URGENT_ATTEMPTS = 5
const URGENT_RETRY_MS = 1000
/** How long close() waits for repairs and scanners to stop. */
const CLOSE_WAIT_MS = 5000
/** Seconds of samples behind the rates in HealStatus. */
const RATE_WINDOW_S = 5

/**
 * Seconds left in a pass: the versions left over its rate in the last RATE_WINDOW_S seconds,
 * which follows the pace as it is now (client traffic slows scans down). While the window
 * does not yet hold 2 s of this pass, the rate since the pass started, once it ran 2 s (a
 * pass may start with a burst: the first second's budget of the scan rate).
 */
function etaSeconds(
  pass: { startedAt: number; done: number },
  total: number,
  samples: readonly { t: number; pass?: { startedAt: number; done: number } }[],
  now: number,
): number | undefined {
  const left = Math.max(0, total - pass.done)
  if (left === 0) return 0
  const from = samples.find((x) => x.pass?.startedAt === pass.startedAt)
  if (from?.pass !== undefined && now - from.t >= 2000 && pass.done > from.pass.done) {
    return Math.round((left * (now - from.t)) / 1000 / (pass.done - from.pass.done))
  }
  const ran = now - pass.startedAt
  if (ran < 2000) return undefined
  return Math.round(((ran / 1000) * left) / pass.done)
}

export interface HealLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
}

export interface HealerInit extends Partial<HealConfig> {
  map: ClusterMap
  mapHash: string
  nodeId: string
  identity: Identity
  /** This node's drives, by `pool/set/slot`. */
  drives: ReadonlyMap<string, Drive>
  meter: LoadMeter
  log: HealLogger
}

interface Item {
  bucket: string
  key: string
  versionId?: string
  /** An upload in progress (its record, and a part when given), instead of versions. */
  upload?: { uploadId: string; partNumber?: number }
  reason: HealReason
  deep: boolean
  urgent: boolean
  attempts: number
  onDone: ((o: RepairOutcome | undefined) => void)[]
}

interface DriveWork {
  drive: Drive
  status: DriveStatus
  scanner: Scanner
  urgent: Map<string, Item>
  background: Map<string, Item>
  /** Repairs in progress, by bucket/key: the next one of the same key waits for it. */
  running: Map<string, Promise<void>>
  roomWaiters: (() => void)[]
  /** Once a second: counters, and the running pass's progress (for its ETA). */
  samples: {
    t: number
    processed: number
    bytes: number
    pass?: { startedAt: number; done: number }
  }[]
}

const itemKey = (item: Pick<Item, 'bucket' | 'key' | 'versionId' | 'upload'>): string =>
  item.upload
    ? `${item.bucket}\u0000${item.key}\u0000upload\u0000${item.upload.uploadId}\u0000${item.upload.partNumber ?? ''}`
    : `${item.bucket}\u0000${item.key}\u0000${item.versionId ?? '*'}`

const isUrgent = (r: HealReason): boolean => r === 'read' || r === 'write-miss'

export class Healer {
  readonly config: HealConfig
  readonly #nodeId: string
  readonly #cluster: Cluster
  readonly #access: SetAccess
  readonly #repairer: Repairer
  readonly #works = new Map<string, DriveWork>()
  readonly #log: HealLogger
  readonly #abort = new AbortController()
  readonly #timers = new Set<NodeJS.Timeout>()
  readonly #inline: BlockCodec
  #pool: CodecPool | undefined
  #active = 0
  #activeRuns = new Set<Promise<void>>()
  #rr = 0
  #sampler: NodeJS.Timeout | undefined
  #started = false
  #closed = false

  private constructor(init: HealerInit, h64: ChunkHasher, inline: BlockCodec) {
    this.config = { ...DEFAULT_HEAL_CONFIG }
    for (const k of Object.keys(DEFAULT_HEAL_CONFIG) as (keyof HealConfig)[]) {
      const v = init[k]
      if (v !== undefined) this.config[k] = v
    }
    // One listener per scanner sleep and per part being rebuilt: more than 10 is normal here.
    setMaxListeners(0, this.#abort.signal)
    this.#nodeId = init.nodeId
    this.#log = init.log
    this.#inline = inline
    this.#cluster = new Cluster({
      map: init.map,
      mapHash: init.mapHash,
      identity: init.identity,
      role: 'node',
      // One channel per peer: PeerPool dials extra channels in the background when all are
      // busy, and a failed background dial is an unhandled rejection that ends the process.
      connectionsPerNode: 1,
    })
    this.#access = new SetAccess(this.#cluster, init.drives, h64)
    this.#repairer = new Repairer({
      access: this.#access,
      codec: () => {
        this.#pool ??= new CodecPool({ threads: this.config.codecThreads })
        return this.#pool
      },
      inlineCodec: inline,
      h64,
      graceMs: this.config.graceMs,
      onBadShard: (drive, rec, err) => this.#reportBadShard(drive, rec, err),
    })
    for (const drive of init.drives.values()) {
      const status = new DriveStatus()
      const work: DriveWork = {
        drive,
        status,
        urgent: new Map(),
        background: new Map(),
        running: new Map(),
        roomWaiters: [],
        samples: [],
        scanner: new Scanner({
          drive,
          access: this.#access,
          h64,
          config: this.config,
          meter: init.meter,
          status,
          log: init.log,
          signal: this.#abort.signal,
          queue: (item) => this.#queueBackground(work, item),
        }),
      }
      this.#works.set(driveKey(drive.ref), work)
    }
  }

  static async create(init: HealerInit): Promise<Healer> {
    const [h64, inline] = await Promise.all([loadChunkHasher(), InlineCodec.create()])
    return new Healer(init, h64, inline)
  }

  /**
   * Starts every drive's scanner: a full heal first for drives formatted by this start (or
   * whose full heal did not complete), a catch-up cycle for the others.
   */
  start(): void {
    if (this.#started) return
    this.#started = true
    for (const w of this.#works.values()) w.scanner.start(w.drive.formatted)
    this.#sampler = setInterval(() => this.#sample(), 1000)
    this.#sampler.unref()
  }

  #work(ref: DriveRef): DriveWork {
    const w = this.#works.get(driveKey(ref))
    if (w === undefined) {
      throw new StoreError(
        'DRIVE_NOT_FOUND',
        `node ${this.#nodeId} has no drive at pool ${ref.pool}, set ${ref.set}, slot ${ref.slot}`,
        { ...ref },
      )
    }
    return w
  }

  /** Queues repairs asked for by a gateway (or a peer); returns how many were taken. */
  queue(ref: DriveRef, items: readonly HealItem[]): number {
    const w = this.#work(ref)
    if (this.#closed) return 0
    let taken = 0
    for (const it of items) {
      if (typeof it?.bucket !== 'string' || typeof it.key !== 'string') {
        throw new StoreError('INVALID_REQUEST', 'a heal item needs a bucket and a key')
      }
      const up = it.upload
      if (
        up !== undefined &&
        (typeof up?.uploadId !== 'string' ||
          (up.partNumber !== undefined &&
            (!Number.isInteger(up.partNumber) || up.partNumber < 1 || up.partNumber > 10_000)))
      ) {
        throw new StoreError(
          'INVALID_REQUEST',
          'an upload heal item needs an uploadId (and a part number from 1 to 10,000, if any)',
        )
      }
      const added = this.#add(w, {
        bucket: it.bucket,
        key: it.key,
        ...(typeof it.versionId === 'string' ? { versionId: it.versionId } : {}),
        ...(up
          ? {
              upload: {
                uploadId: up.uploadId,
                ...(up.partNumber !== undefined ? { partNumber: up.partNumber } : {}),
              },
            }
          : {}),
        reason: it.reason,
        deep: it.reason === 'read',
        urgent: isUrgent(it.reason),
        attempts: 0,
        onDone: [],
      })
      if (added) taken++
    }
    this.#pump()
    return taken
  }

  /** Adds an item, or merges it into a waiting one; false when the queue is full. */
  #add(w: DriveWork, item: Item): boolean {
    const id = itemKey(item)
    const waiting = w.urgent.get(id) ?? w.background.get(id)
    if (waiting !== undefined) {
      waiting.deep ||= item.deep
      waiting.onDone.push(...item.onDone)
      if (item.urgent && !waiting.urgent) {
        w.background.delete(id)
        waiting.urgent = true
        waiting.reason = item.reason
        w.urgent.set(id, waiting)
      }
      return true
    }
    if (w.urgent.size + w.background.size >= MAX_QUEUED_PER_DRIVE) return false
    ;(item.urgent ? w.urgent : w.background).set(id, item)
    return true
  }

  async #queueBackground(w: DriveWork, s: ScanRepair): Promise<void> {
    const ahead = this.config.concurrency * BACKGROUND_AHEAD_PER_WORKER
    while (w.background.size >= ahead && !this.#closed) {
      await new Promise<void>((r) => w.roomWaiters.push(r))
    }
    if (this.#closed) {
      s.onDone(undefined)
      return
    }
    const item: Item = {
      bucket: s.bucket,
      key: s.key,
      reason: s.reason,
      deep: s.deep,
      urgent: false,
      attempts: 0,
      onDone: [s.onDone],
    }
    if (!this.#add(w, item)) s.onDone(undefined)
    this.#pump()
  }

  /** The next item to repair: urgent ones first, drives in turn. */
  #take(): { w: DriveWork; item: Item } | undefined {
    const works = [...this.#works.values()]
    for (const queue of ['urgent', 'background'] as const) {
      for (let i = 0; i < works.length; i++) {
        const w = works[(this.#rr + i) % works.length]!
        const first = w[queue].entries().next()
        if (first.done) continue
        w[queue].delete(first.value[0])
        this.#rr = (this.#rr + i + 1) % works.length
        if (queue === 'background') {
          const waiters = w.roomWaiters.splice(0)
          for (const r of waiters) r()
        }
        return { w, item: first.value[1] }
      }
    }
    return undefined
  }

  #pump(): void {
    while (!this.#closed && this.#active < this.config.concurrency) {
      const next = this.#take()
      if (next === undefined) return
      this.#active++
      const run = this.#run(next.w, next.item).finally(() => {
        this.#active--
        this.#activeRuns.delete(run)
        this.#pump()
      })
      this.#activeRuns.add(run)
    }
  }

  async #run(w: DriveWork, item: Item): Promise<void> {
    const keyId = `${item.bucket}\u0000${item.key}`
    const before = w.running.get(keyId)
    const mine = (async () => {
      if (before !== undefined) await before
      return this.#repair(w, item)
    })()
    const settled = mine.then(
      () => {},
      () => {},
    )
    w.running.set(keyId, settled)
    try {
      await mine
    } finally {
      if (w.running.get(keyId) === settled) w.running.delete(keyId)
    }
  }

  async #repair(w: DriveWork, item: Item): Promise<void> {
    const signal = this.#abort.signal
    if (signal.aborted) {
      for (const f of item.onDone) f(undefined)
      return
    }
    const s = w.status
    let outcome: RepairOutcome | undefined
    try {
      outcome = item.upload
        ? await this.#repairer.repairUploadPart(
            w.drive,
            { bucket: item.bucket, key: item.key, ...item.upload },
            signal,
          )
        : await this.#repairer.repair(
            w.drive,
            {
              bucket: item.bucket,
              key: item.key,
              ...(item.versionId !== undefined ? { versionId: item.versionId } : {}),
              deep: item.deep,
            },
            signal,
          )
    } catch (err) {
      if (!signal.aborted) {
        s.failed++
        this.#log.warn(
          {
            drive: w.drive.path,
            bucket: item.bucket,
            key: item.key,
            ...(item.upload ? { upload: item.upload } : {}),
            reason: item.reason,
            err: (err as Error).message,
          },
          'repair failed',
        )
      }
      for (const f of item.onDone) f(undefined)
      return
    }
    s.healed += outcome.healed
    s.failed += outcome.failed
    s.bytesHealed += outcome.bytes
    s.processed += outcome.versions
    if (outcome.failed > 0) {
      this.#log.warn(
        {
          drive: w.drive.path,
          bucket: item.bucket,
          key: item.key,
          ...(item.upload ? { upload: item.upload } : {}),
          reason: item.reason,
          failed: outcome.failed,
          err: outcome.error,
        },
        'repair failed',
      )
    } else if (outcome.healed > 0 && item.urgent) {
      this.#log.info(
        {
          drive: w.drive.path,
          bucket: item.bucket,
          key: item.key,
          versionId: item.versionId,
          ...(item.upload ? { upload: item.upload } : {}),
          reason: item.reason,
          healed: outcome.healed,
          bytes: outcome.bytes,
        },
        'repaired',
      )
    }
    if (
      outcome.undecided > 0 &&
      item.urgent &&
      (item.versionId !== undefined || item.upload !== undefined) &&
      item.attempts + 1 < URGENT_ATTEMPTS &&
      !this.#closed
    ) {
      // The version may still be committing on the other drives: look again shortly.
      item.attempts++
      const timer = setTimeout(() => {
        this.#timers.delete(timer)
        if (this.#closed) {
          for (const f of item.onDone) f(undefined)
          return
        }
        if (!this.#add(w, item)) for (const f of item.onDone) f(undefined)
        this.#pump()
      }, URGENT_RETRY_MS * item.attempts)
      this.#timers.add(timer)
      return
    }
    for (const f of item.onDone) f(outcome)
  }

  /** Tells the node of a drive whose shard failed during a repair to heal it. */
  #reportBadShard(drive: DriveSlot, rec: VersionRecord, err: Error): void {
    const item: HealItem = {
      bucket: rec.bucket,
      key: rec.key,
      versionId: rec.versionId,
      reason: 'read',
    }
    this.#log.warn(
      {
        drive: `${drive.nodeId}:${drive.path}`,
        bucket: rec.bucket,
        key: rec.key,
        err: err.message,
      },
      'a peer shard failed during a repair; asking its node to heal it',
    )
    if (this.#works.has(driveKey(drive))) {
      this.queue(drive, [item])
      return
    }
    this.#cluster.call(drive, QueueHeal, { items: [item] }).catch(() => {})
  }

  /** Starts a full heal or a deep scan cycle on a drive now. */
  startHeal(ref: DriveRef, mode: 'full' | 'deep'): boolean {
    if (mode !== 'full' && mode !== 'deep') {
      throw new StoreError('INVALID_REQUEST', `heal mode must be 'full' or 'deep' (got ${mode})`)
    }
    return this.#work(ref).scanner.request(mode)
  }

  #sample(): void {
    const t = Date.now()
    for (const w of this.#works.values()) {
      const p = w.status.pass
      w.samples.push({
        t,
        processed: w.status.processed,
        bytes: w.status.bytesHealed,
        ...(p ? { pass: { startedAt: p.startedAt, done: p.done } } : {}),
      })
      if (w.samples.length > RATE_WINDOW_S + 1) w.samples.shift()
    }
  }

  /** What every drive's healer and scanner are doing. */
  status(): DriveHealState[] {
    const now = Date.now()
    return [...this.#works.values()].map((w) => {
      const s = w.status
      const oldest = w.samples[0]
      const dt = oldest ? (now - oldest.t) / 1000 : 0
      const rate = (cur: number, old: number) =>
        dt > 0.5 ? Math.max(0, Math.round(((cur - old) / dt) * 10) / 10) : 0
      const pass = s.pass ?? s.lastPass
      const state: DriveHealState = {
        ...w.drive.ref,
        path: w.drive.path,
        online: true,
        state: s.state,
        scanned: s.scanned,
        healed: s.healed,
        failed: s.failed,
        bytesHealed: s.bytesHealed,
        queued: w.urgent.size + w.background.size,
        objectsPerSec: oldest ? rate(s.processed, oldest.processed) : 0,
        bytesPerSec: oldest ? rate(s.bytesHealed, oldest.bytes) : 0,
      }
      if (pass !== undefined) {
        if (pass.total !== undefined) state.total = pass.total
        state.done = pass.done
        state.startedAt = pass.startedAt
        if (s.pass !== undefined && pass.total !== undefined && pass.done > 0) {
          const eta = etaSeconds(pass, pass.total, w.samples, now)
          if (eta !== undefined) state.etaSeconds = eta
        }
      }
      if (s.lastCycleAt !== undefined) state.lastCycleAt = s.lastCycleAt
      if (s.pass === undefined && s.lastPass?.endedAt !== undefined)
        state.endedAt = s.lastPass.endedAt
      if (s.waiting > 0) state.waiting = s.waiting
      return state
    })
  }

  /** Stops scanners and repairs (see the design notes); then closes connections and workers. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#abort.abort()
    clearInterval(this.#sampler)
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    for (const w of this.#works.values()) {
      for (const q of [w.urgent, w.background]) {
        for (const item of q.values()) for (const f of item.onDone) f(undefined)
        q.clear()
      }
      for (const r of w.roomWaiters.splice(0)) r()
    }
    const stopped = Promise.allSettled([
      ...[...this.#works.values()].map((w) => w.scanner.stopped()),
      ...this.#activeRuns,
    ])
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      stopped,
      new Promise<void>((r) => {
        timer = setTimeout(r, CLOSE_WAIT_MS)
      }),
    ])
    clearTimeout(timer)
    this.#cluster.close()
    await Promise.allSettled([this.#pool?.close(), this.#inline.close()])
  }
}

/** Registers QueueHeal, HealStatus and StartHeal on the node's RPC server. */
export function registerHealRpcs(
  rpc: RpcServer,
  healer: Healer,
  nodeId: string,
  offline: ReadonlyMap<string, { ref: DriveRef; path: string }> = new Map(),
): void {
  rpc.handle(QueueHeal, (req) => {
    if (!Array.isArray(req.items))
      throw new StoreError('INVALID_REQUEST', 'QueueHeal needs a list of items')
    return { queued: healer.queue(req, req.items) }
  })
  rpc.handle(HealStatus, () => ({
    node: nodeId,
    drives: [
      ...healer.status(),
      // Drives that failed to open: nothing heals them until the disk is replaced.
      ...[...offline.values()].map(
        (o): DriveHealState => ({
          ...o.ref,
          path: o.path,
          online: false,
          state: 'idle',
          scanned: 0,
          healed: 0,
          failed: 0,
          bytesHealed: 0,
          queued: 0,
          objectsPerSec: 0,
          bytesPerSec: 0,
        }),
      ),
    ],
  }))
  rpc.handle(StartHeal, (req) => ({ started: healer.startHeal(req, req.mode) }))
}
