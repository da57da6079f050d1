/**
 * Bucket records: one copy on every drive of the cluster (every drive must know a bucket, so
 * that any set can refuse writes to a bucket that does not exist and report emptiness), read
 * by quorum, cached for a short time so a request costs no bucket lookup on the hot path.
 */
import {
  type BucketRecord,
  bucketStamp,
  DeleteBucket,
  GetBucket,
  HEDGE_MS,
  ListBuckets,
  ListRange,
  PutBucket,
  StoreError,
} from '@tessera/protocol'
import type { Cluster } from './cluster.ts'
import { hlcNow } from './hlc.ts'

/** How long a bucket record is trusted from the cache; changes on other gateways show within it. */
export const BUCKET_CACHE_MS = 1000

export class BucketStore {
  #cluster: Cluster
  #cache = new Map<string, { record: BucketRecord | undefined; at: number }>()
  #reading = new Map<string, Promise<BucketRecord | undefined>>()
  /** Changes made through this gateway: a lookup begun before one must not cache its answer. */
  #changes = 0

  constructor(cluster: Cluster) {
    this.#cluster = cluster
  }

  /** The drives that answer bucket reads: those of the set the bucket name places in. */
  #readDrives(name: string) {
    return this.#cluster.place(0, name, '').set.drives
  }

  async get(name: string): Promise<BucketRecord | undefined> {
    const hit = this.#cache.get(name)
    if (hit && Date.now() - hit.at < BUCKET_CACHE_MS) return hit.record
    // Every request that finds the entry stale waits for the same lookup.
    let reading = this.#reading.get(name)
    if (reading === undefined) {
      reading = this.#read(name).finally(() => this.#reading.delete(name))
      this.#reading.set(name, reading)
    }
    return reading
  }

  async #read(name: string): Promise<BucketRecord | undefined> {
    const changes = this.#changes
    const drives = this.#readDrives(name)
    const n = drives.length
    const k = this.#cluster.readQuorum
    // A bucket that exists (or a change to it) is on at least the write quorum of the set's
    // drives: once r = n - wq + 1 of them answered, each is seen by at least one. So the
    // answer is settled when k of those hold the bucket (it exists; the newest settings among
    // them are the newest), or when too few could (it does not); the slowest drive (a frozen
    // node) is not waited for.
    const r = Math.max(k, n - this.#cluster.writeQuorum + 1)
    const { settled } = await this.#cluster.callUntil(drives, GetBucket, { name }, (s) => {
      let ok = 0
      let present = 0
      for (const x of s) {
        if (!x.ok) continue
        ok++
        if (x.value.record !== undefined) present++
      }
      return ok >= r && (present >= k || present + (n - ok) < k)
    })
    const ok = settled.flatMap((r) => (r.ok ? [r.value.record] : []))
    if (ok.length < this.#cluster.readQuorum) {
      throw new StoreError(
        'QUORUM_FAILED',
        `only ${ok.length} drives answered for bucket ${name} (need ${this.#cluster.readQuorum})`,
      )
    }
    const present = ok.filter((r): r is BucketRecord => r !== undefined)
    // The newest settings of a bucket that a read quorum knows.
    const record =
      present.length >= this.#cluster.readQuorum
        ? present.reduce((a, b) => (bucketStamp(b) > bucketStamp(a) ? b : a))
        : undefined
    if (changes !== this.#changes) return record
    this.#cache.set(name, { record, at: Date.now() })
    if (this.#cache.size > 10_000) this.#cache.delete(this.#cache.keys().next().value!)
    return record
  }

  /** The bucket, or BUCKET_NOT_FOUND. */
  async require(name: string): Promise<BucketRecord> {
    const b = await this.get(name)
    if (b === undefined) throw new StoreError('BUCKET_NOT_FOUND', `no bucket ${name}`)
    return b
  }

  /**
   * Creates a bucket on every drive, with its first settings (owner, ACL, ownership, public
   * access block); false when it existed already.
   */
  async create(
    name: string,
    project = '',
    settings: Record<string, unknown> = {},
  ): Promise<boolean> {
    if ((await this.get(name)) !== undefined) return false
    const now = hlcNow()
    const record: BucketRecord = {
      name,
      project,
      created: now,
      versioning: 'unversioned',
      settings: { ...settings, updated: now },
    }
    await this.#writeAll(record, true)
    this.#changes++
    this.#cache.set(name, { record, at: Date.now() })
    return true
  }

  /** Replaces a bucket's record (versioning, settings) on every drive. */
  async update(name: string, change: (b: BucketRecord) => BucketRecord): Promise<BucketRecord> {
    this.#changes++
    this.#cache.delete(name)
    // A lookup of its own, not one begun before this change.
    const cur = await this.#read(name)
    if (cur === undefined) throw new StoreError('BUCKET_NOT_FOUND', `no bucket ${name}`)
    const next = change(structuredClone(cur))
    next.settings = { ...next.settings, updated: hlcNow() }
    await this.#writeAll(next, false)
    this.#changes++
    this.#cache.set(name, { record: next, at: Date.now() })
    return next
  }

  /**
   * Writes a bucket's record to every drive, settled at the write quorum of each set: a drive
   * still silent (a frozen node) is not waited for. Reads take the newest record among enough
   * drives to see every change, a drive keeps the newer of two records it gets (a late write
   * cannot undo a later one), and healing brings a drive that missed one up to date.
   */
  async #writeAll(record: BucketRecord, ifAbsent: boolean): Promise<void> {
    await Promise.all(
      this.#cluster.sets.map(async (set) => {
        const { settled } = await this.#cluster.callQuorum(
          set.drives,
          PutBucket,
          { record, ifAbsent },
          this.#cluster.writeQuorum,
        )
        this.#cluster.requireWriteQuorum(
          settled,
          `of set ${set.pool}/${set.index} stored bucket ${record.name}`,
        )
      }),
    )
  }

  /** Deletes an empty bucket; BUCKET_NOT_EMPTY when any set holds a version of it. */
  async delete(name: string): Promise<void> {
    await this.require(name)
    // Check every set first, so a non-empty bucket is not half deleted.
    for (const set of this.#cluster.sets) {
      // A version is on at least wq drives: n - wq + 1 answers see each one; a drive still
      // silent after the grace (a frozen node) is not waited for once they are in.
      const r = Math.max(
        this.#cluster.readQuorum,
        set.drives.length - this.#cluster.writeQuorum + 1,
      )
      const { settled: results } = await this.#cluster.callUntil(
        set.drives,
        ListRange,
        { bucket: name, limit: 1, versions: true },
        (s, graceOver) =>
          s.some((x) => x.ok && x.value.entries.length > 0) ||
          (graceOver && s.filter((x) => x.ok).length >= r),
        { graceMs: HEDGE_MS },
      )
      const ok = results.filter((x) => x.ok)
      if (ok.some((x) => x.ok && x.value.entries.length > 0)) {
        throw new StoreError('BUCKET_NOT_EMPTY', `bucket ${name} is not empty`)
      }
      if (ok.length < r) {
        throw new StoreError('QUORUM_FAILED', `too few drives answered to check bucket ${name}`)
      }
    }
    this.#cache.delete(name)
    for (const set of this.#cluster.sets) {
      const results = await this.#cluster.callAll(set.drives, DeleteBucket, { name })
      const notEmpty = results.find((r) => !r.ok && r.error.code === 'BUCKET_NOT_EMPTY')
      if (notEmpty && !notEmpty.ok) throw notEmpty.error
      this.#cluster.requireWriteQuorum(results, `of a set removed bucket ${name}`)
    }
    this.#changes++
    this.#cache.set(name, { record: undefined, at: Date.now() })
  }

  /** Every bucket, by name, as a read quorum of the first set's drives knows them. */
  async list(): Promise<BucketRecord[]> {
    const drives = this.#cluster.sets[0]!.drives
    // A bucket is on at least wq drives: a drive still silent (a frozen node) is not waited for
    // once the others show each bucket k times.
    const settled = await this.#cluster.callAgreeing(drives, ListBuckets, {})
    const ok = settled.flatMap((r) => (r.ok ? [r.value.buckets] : []))
    if (ok.length < this.#cluster.readQuorum) {
      throw new StoreError('QUORUM_FAILED', 'too few drives answered to list buckets')
    }
    const byName = new Map<string, { rec: BucketRecord; count: number }>()
    for (const list of ok) {
      for (const b of list) {
        const cur = byName.get(b.name)
        if (cur === undefined) byName.set(b.name, { rec: b, count: 1 })
        else {
          cur.count++
          if (bucketStamp(b) > bucketStamp(cur.rec)) cur.rec = b
        }
      }
    }
    return [...byName.values()]
      .filter((x) => x.count >= this.#cluster.readQuorum)
      .map((x) => x.rec)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }
}
