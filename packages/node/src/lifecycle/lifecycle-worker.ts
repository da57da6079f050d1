/* Design notes

Bucket lifecycle in the background (design §8). Every node runs a LifecycleWorker; for each
erasure set, one node acts: the owner of the lowest slot of the set whose node is alive. A node
acts for a set when it owns a drive of it and no node owning a lower slot answers Health (2 s);
with every node up, that is the owner of slot 0. If two nodes ever act at once (a partition),
their work overlaps but each action re-checks the drives first, so the worst case is an extra
delete marker.

A cycle starts `intervalMs` after the previous one ended (the first one at most a minute after
the node starts), so cycles never overlap. For each set it acts for, it reads the buckets from the set's drives (newest
record that a read quorum holds), and for each bucket with Enabled rules, or with versioning
while the deployment's default for noncurrent versions is on:
- walks the bucket's keys in the set (set-listing.ts: versions that k drives agree on) and
  applies planKey (rules.ts): removes versions (DeleteVersion on the drives that hold that very
  version, success at write quorum, data to trash on the node) and, for an expired current
  version of a versioned bucket, writes a delete marker exactly as the gateway's DELETE does
  (same record, same shard distribution, CommitVersion on every drive, undone below write
  quorum);
- aborts incomplete multipart uploads that are due (DeleteUpload on every drive, as
  AbortMultipartUpload does).

Nothing is changed on a partial view: the walk stops when fewer than n - wq + k drives answer
(below that a committed version may be seen by fewer than k of them), and each change re-reads
the key first, so a write that happened since the walk read it is left alone.

Ages are judged by `clock()`: the wall clock plus `clockOffsetMs` (0 in production; tests move
time forward with it, since days cannot pass in a test). Records written here (delete
markers) carry the real wall clock, like every other write.
*/
import { randomBytes } from 'node:crypto'
import {
  type BucketRecord,
  bucketStamp,
  Cluster,
  type ClusterMap,
  CommitVersion,
  DeleteUpload,
  DeleteVersion,
  type ErasureSet,
  Health,
  HLC_COUNTER_SPAN,
  type Hlc,
  type Identity,
  ListBuckets,
  ListUploads,
  ReadVersions,
  StoreError,
  type UploadRecord,
  type VersionRecord,
} from '@tessera/protocol'
import type { Logger } from '../storage-node.ts'
import {
  enabledRules,
  type KeyPlan,
  type LifecycleRule,
  planKey,
  uploadDue,
  walksVersions,
} from './rules.ts'
import { agreedKeys } from './set-listing.ts'

/** Tunables of the worker; defaults in {@link LIFECYCLE_DEFAULTS}. */
export interface LifecycleOptions {
  /** Pause between the end of one cycle and the start of the next, in milliseconds. */
  intervalMs: number
  /** Noncurrent versions that no NoncurrentVersionExpiration rule covers expire after this many days; 0: never. */
  noncurrentDefaultDays: number
  /** Incomplete multipart uploads no AbortIncompleteMultipartUpload rule covers are aborted after this many days; 0: never. */
  abortIncompleteDefaultDays: number
  /** Added to the wall clock when judging ages, in milliseconds (tests only). */
  clockOffsetMs: number
}

export const LIFECYCLE_DEFAULTS: LifecycleOptions = {
  intervalMs: 3_600_000,
  noncurrentDefaultDays: 7,
  abortIncompleteDefaultDays: 7,
  clockOffsetMs: 0,
}

/** The first cycle after start runs no later than this. */
const FIRST_CYCLE_MAX_DELAY_MS = 60_000

/** How long a node owning a lower slot has to answer Health before this node acts for it. */
const ALIVE_TIMEOUT_MS = 2000

export interface LifecycleWorkerInit extends Partial<LifecycleOptions> {
  map: ClusterMap
  mapHash: string
  identity: Identity
  nodeId: string
}

export interface LifecycleWorkerComponents {
  logger: Logger
}

/** What one cycle did; logged as `lifecycle cycle done`. */
export interface CycleStats {
  /** Sets this node acted for. */
  sets: number
  buckets: number
  keys: number
  /** Current versions removed (unversioned buckets). */
  expired: number
  /** Delete markers written over expired current versions (versioned buckets). */
  markers: number
  /** Noncurrent versions removed by a rule, and by the deployment default. */
  noncurrent: number
  noncurrentDefault: number
  /** Delete markers removed (nothing left under them). */
  deleteMarkers: number
  uploads: number
  errors: number
}

let lastHlc = 0

/** A hybrid logical clock reading, as the gateway stamps its writes (store/hlc.ts). */
function hlcNow(): Hlc {
  const wall = Date.now() * HLC_COUNTER_SPAN
  lastHlc = wall > lastHlc ? wall : lastHlc + 1
  return lastHlc
}

export class LifecycleWorker {
  readonly #cluster: Cluster
  readonly #nodeId: string
  readonly #opts: LifecycleOptions
  readonly #log: Logger
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = false

  private constructor(init: LifecycleWorkerInit, components: LifecycleWorkerComponents) {
    this.#cluster = new Cluster({
      map: init.map,
      mapHash: init.mapHash,
      identity: init.identity,
      role: 'node',
    })
    this.#nodeId = init.nodeId
    this.#opts = {
      intervalMs: init.intervalMs ?? LIFECYCLE_DEFAULTS.intervalMs,
      noncurrentDefaultDays: init.noncurrentDefaultDays ?? LIFECYCLE_DEFAULTS.noncurrentDefaultDays,
      abortIncompleteDefaultDays:
        init.abortIncompleteDefaultDays ?? LIFECYCLE_DEFAULTS.abortIncompleteDefaultDays,
      clockOffsetMs: init.clockOffsetMs ?? LIFECYCLE_DEFAULTS.clockOffsetMs,
    }
    this.#log = components.logger
  }

  /** Starts the cycles: the first within a minute (or `intervalMs`, if shorter). */
  static start(init: LifecycleWorkerInit, components: LifecycleWorkerComponents): LifecycleWorker {
    const w = new LifecycleWorker(init, components)
    w.#schedule(Math.min(w.#opts.intervalMs, FIRST_CYCLE_MAX_DELAY_MS))
    return w
  }

  /** Epoch milliseconds the worker judges ages by. */
  clock(): number {
    return Date.now() + this.#opts.clockOffsetMs
  }

  /** Stops scheduling, waits for a running cycle to notice, closes connections. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
    this.#cluster.close()
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#running = this.runCycle()
        .then(() => undefined)
        .catch((err: unknown) => this.#log.error({ err: errText(err) }, 'lifecycle cycle failed'))
        .finally(() => {
          this.#running = undefined
          this.#schedule(this.#opts.intervalMs)
        })
    }, delayMs)
    this.#timer.unref()
  }

  /** One pass over every set this node acts for. */
  async runCycle(): Promise<CycleStats> {
    const startedAt = Date.now()
    const stats: CycleStats = {
      sets: 0,
      buckets: 0,
      keys: 0,
      expired: 0,
      markers: 0,
      noncurrent: 0,
      noncurrentDefault: 0,
      deleteMarkers: 0,
      uploads: 0,
      errors: 0,
    }
    for (const set of this.#cluster.sets) {
      if (this.#stopped) break
      if (!(await this.#actsFor(set))) continue
      stats.sets++
      try {
        await this.#runSet(set, stats)
      } catch (err) {
        stats.errors++
        this.#log.warn(
          { set: `${set.pool}/${set.index}`, err: errText(err) },
          'lifecycle pass over a set stopped',
        )
      }
    }
    this.#log.info(
      {
        ...stats,
        clockOffsetMs: this.#opts.clockOffsetMs,
        startedAt,
        ms: Date.now() - startedAt,
      },
      'lifecycle cycle done',
    )
    return stats
  }

  /** Whether this node acts for `set`: it owns a drive and no owner of a lower slot is alive. */
  async #actsFor(set: ErasureSet): Promise<boolean> {
    const mine = set.drives.filter((d) => d.nodeId === this.#nodeId)
    if (mine.length === 0) return false
    const first = Math.min(...mine.map((d) => d.slot))
    const before = new Set(set.drives.filter((d) => d.slot < first).map((d) => d.nodeId))
    for (const id of before) {
      try {
        await this.#cluster.peers.call(
          this.#cluster.peer(id),
          Health,
          {},
          { timeoutMs: ALIVE_TIMEOUT_MS },
        )
        return false
      } catch {
        // Down: the next lower owner, or this node, takes over.
      }
    }
    return true
  }

  async #runSet(set: ErasureSet, stats: CycleStats): Promise<void> {
    for (const b of await this.#buckets(set)) {
      if (this.#stopped) return
      const rules = enabledRules(b)
      const walk = walksVersions(rules, b.versioning, this.#opts.noncurrentDefaultDays)
      const uploads =
        this.#opts.abortIncompleteDefaultDays > 0 ||
        rules.some((r) => r.abortIncompleteMultipartUpload !== undefined)
      if (!walk && !uploads) continue
      stats.buckets++
      try {
        if (walk) await this.#walkVersions(set, b, rules, stats)
        if (uploads) await this.#abortUploads(set, b, rules, stats)
      } catch (err) {
        stats.errors++
        this.#log.warn(
          { bucket: b.name, err: errText(err) },
          'lifecycle pass over a bucket stopped',
        )
      }
    }
  }

  /** The buckets as the set's drives know them: the newest record a read quorum holds. */
  async #buckets(set: ErasureSet): Promise<BucketRecord[]> {
    const c = this.#cluster
    const results = await c.callAll(set.drives, ListBuckets, {})
    const lists = results.flatMap((r) => (r.ok ? [r.value.buckets] : []))
    // Any write-quorum copy of the newest record is among this many answers.
    const need = Math.max(c.readQuorum, set.drives.length - c.writeQuorum + 1)
    if (lists.length < need) {
      throw new StoreError(
        'QUORUM_FAILED',
        `only ${lists.length} drives of set ${set.pool}/${set.index} listed buckets (need ${need})`,
      )
    }
    const byName = new Map<string, { rec: BucketRecord; n: number }>()
    for (const list of lists) {
      for (const b of list) {
        const cur = byName.get(b.name)
        if (cur === undefined) byName.set(b.name, { rec: b, n: 1 })
        else {
          cur.n++
          if (bucketStamp(b) > bucketStamp(cur.rec)) cur.rec = b
        }
      }
    }
    return [...byName.values()].filter((x) => x.n >= c.readQuorum).map((x) => x.rec)
  }

  async #walkVersions(
    set: ErasureSet,
    b: BucketRecord,
    rules: LifecycleRule[],
    stats: CycleStats,
  ): Promise<void> {
    const c = this.#cluster
    const n = set.drives.length
    const minDrives = Math.min(n, n - c.writeQuorum + c.readQuorum)
    for await (const { key, versions } of agreedKeys(c, set, b.name, minDrives)) {
      if (this.#stopped) return
      stats.keys++
      const plan = planKey(versions, {
        rules,
        versioning: b.versioning,
        nowMs: this.clock(),
        noncurrentDefaultDays: this.#opts.noncurrentDefaultDays,
      })
      try {
        await this.#apply(set, b, plan, stats)
      } catch (err) {
        stats.errors++
        this.#log.warn({ bucket: b.name, key, err: errText(err) }, 'lifecycle action failed')
      }
    }
  }

  async #apply(set: ErasureSet, b: BucketRecord, plan: KeyPlan, stats: CycleStats): Promise<void> {
    // In order, stopping at the first failure: a marker is removed only once nothing is under it.
    for (const { record, why } of plan.remove) {
      if (!(await this.#removeVersion(set, record))) return
      if (why === 'expired') stats.expired++
      else if (why === 'noncurrent') stats.noncurrent++
      else if (why === 'noncurrent-default') stats.noncurrentDefault++
      else stats.deleteMarkers++
      this.#log.debug(
        {
          bucket: b.name,
          key: record.key,
          versionId: record.versionId,
          why,
        },
        'lifecycle removed a version',
      )
    }
    if (plan.markOver !== undefined && (await this.#addDeleteMarker(set, b, plan.markOver))) {
      stats.markers++
    }
  }

  /**
   * Removes one version from the drives that hold that very version (a 'null' version written
   * again since is another object). Success when the write quorum of drives no longer holds it;
   * false when no drive holds it any more (someone else removed it).
   */
  async #removeVersion(set: ErasureSet, rec: VersionRecord): Promise<boolean> {
    const c = this.#cluster
    const where = { bucket: rec.bucket, key: rec.key, versionId: rec.versionId }
    const seen = await c.callAll(set.drives, ReadVersions, where)
    const holders = seen.flatMap((r) =>
      r.ok && r.value.versions[0]?.modTime === rec.modTime ? [r.drive] : [],
    )
    const absent = seen.filter((r) => r.ok && r.value.versions.length === 0).length
    if (holders.length === 0) return false
    const results = await c.callAll(holders, DeleteVersion, where)
    const removed = results.filter((r) => r.ok).length
    if (removed + absent < c.writeQuorum) {
      throw new StoreError(
        'QUORUM_FAILED',
        `only ${removed + absent} drives of set ${set.pool}/${set.index} no longer hold ${rec.bucket}/${rec.key} version ${rec.versionId} (need ${c.writeQuorum})`,
      )
    }
    return true
  }

  /**
   * Hides an expired current version under a new delete marker, written as the gateway's
   * DELETE writes one (object-store.ts `delete`): a fresh version id ('null' in a suspended
   * bucket), the key's shard distribution, one record per drive with its shard index, undone
   * below write quorum. Skipped (false) when the key changed since the walk read it.
   */
  async #addDeleteMarker(
    set: ErasureSet,
    b: BucketRecord,
    current: VersionRecord,
  ): Promise<boolean> {
    const c = this.#cluster
    const { bucket, key } = current
    const latest = await c.callAll(set.drives, ReadVersions, { bucket, key, limit: 1 })
    let agree = 0
    for (const r of latest) {
      const v = r.ok ? r.value.versions[0] : undefined
      if (v === undefined) continue
      if (v.modTime > current.modTime) return false
      if (v.modTime === current.modTime && v.versionId === current.versionId) agree++
    }
    if (agree < c.readQuorum) return false
    const placement = c.place(set.pool, bucket, key)
    const e = c.map.erasure
    const marker: VersionRecord = {
      bucket,
      key,
      versionId: b.versioning === 'enabled' ? randomBytes(24).toString('base64url') : 'null',
      modTime: hlcNow(),
      size: 0,
      etag: '',
      erasure: {
        k: e.data,
        m: e.parity,
        blockSize: e.blockSize,
        distribution: placement.distribution,
        index: 0,
      },
      parts: [],
      deleteMarker: true,
    }
    const drives = placement.distribution.map((slot) => placement.set.drives[slot]!)
    const results = await c.callAll(drives, CommitVersion, (_d, shard) => ({
      record: { ...marker, erasure: { ...marker.erasure, index: shard } },
    }))
    const ok = results.filter((r) => r.ok)
    if (ok.length < c.writeQuorum) {
      await c.callAll(
        ok.map((r) => r.drive),
        DeleteVersion,
        { bucket, key, versionId: marker.versionId },
      )
      c.requireWriteQuorum(results, `stored a delete marker for ${bucket}/${key}`)
    }
    return true
  }

  /** Aborts the bucket's incomplete uploads in `set` that a rule says are due. */
  async #abortUploads(
    set: ErasureSet,
    b: BucketRecord,
    rules: LifecycleRule[],
    stats: CycleStats,
  ): Promise<void> {
    const c = this.#cluster
    const done = new Set<string>()
    // Each drive's own list: an upload any drive still records is found.
    for (const drive of set.drives) {
      let marker: { keyMarker: string; uploadIdMarker: string } | undefined
      for (;;) {
        if (this.#stopped) return
        let page: { uploads: UploadRecord[]; isTruncated: boolean }
        try {
          page = await c.call(drive, ListUploads, { bucket: b.name, limit: 1000, ...marker })
        } catch {
          break
        }
        for (const u of page.uploads) {
          const id = `${u.key}\u0000${u.uploadId}`
          const due = uploadDue(rules, u, this.clock(), this.#opts.abortIncompleteDefaultDays)
          if (done.has(id) || !due) continue
          done.add(id)
          const results = await c.callAll(set.drives, DeleteUpload, {
            bucket: b.name,
            key: u.key,
            uploadId: u.uploadId,
          })
          try {
            c.requireWriteQuorum(results, `removed upload ${u.uploadId} of ${b.name}/${u.key}`)
            stats.uploads++
          } catch (err) {
            stats.errors++
            this.#log.warn({ err: errText(err) }, 'lifecycle action failed')
          }
        }
        const last = page.uploads.at(-1)
        if (!page.isTruncated || last === undefined) break
        marker = { keyMarker: last.key, uploadIdMarker: last.uploadId }
      }
    }
  }
}

function errText(err: unknown): string {
  if (err instanceof Error) return `${(err as { code?: string }).code ?? err.name}: ${err.message}`
  return String(err)
}
