/**
 * The records that are not object versions, brought up to date on a drive from the other
 * drives of its set, during full heals and scan cycles:
 *
 * - Bucket records (one copy on every drive): a bucket that k other drives know and this one
 *   lacks (or holds with older settings) is copied, the newest settings winning as in the
 *   gateway's reads; a bucket only this drive knows, when every other drive answered, older
 *   than the grace period and without versions here, is a delete this drive missed: removed.
 * - System records (identity, on one set): a key this drive lacks is copied from its peers,
 *   and a stamped value (`{ s }`, the identity store's form) or a number older than a peer's
 *   is replaced by the newest. Never deleted here: the identity store deletes by tombstones.
 *   Keys under `local/` are this drive's own state and never copied.
 */
import { type BucketRecord, bucketStamp, type DriveSlot, hlcMillis } from '@tessera/protocol'
import type { Drive } from '../drive.ts'
import type { SetAccess } from './set-access.ts'

/** Prefix of system keys that describe one drive (never copied to others). */
export const LOCAL_SYSTEM_PREFIX = 'local/'

async function settleAll<T>(drives: DriveSlot[], fn: (d: DriveSlot) => Promise<T>): Promise<T[]> {
  const r = await Promise.allSettled(drives.map(fn))
  return r.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []))
}

/** Brings the drive's bucket records up to date; returns how many were written or removed. */
export async function healBuckets(
  access: SetAccess,
  drive: Drive,
  graceMs: number,
): Promise<number> {
  // Bucket records are on every drive; a pool added later starts without the buckets made
  // before it, so the first set of pool 0 (where gateways list buckets) is asked too.
  const own = access.othersOf(drive.ref)
  const reference = (access.cluster.sets[0]?.drives ?? []).filter(
    (d) =>
      !(d.pool === drive.ref.pool && d.set === drive.ref.set) &&
      !own.some((o) => o.pool === d.pool && o.set === d.set && o.slot === d.slot),
  )
  const others = [...own, ...reference]
  const k = access.cluster.readQuorum
  const lists = await settleAll(others, (d) => access.listBuckets(d))
  if (lists.length < k) return 0
  const byName = new Map<string, { rec: BucketRecord; count: number }>()
  for (const list of lists) {
    for (const b of list) {
      const cur = byName.get(b.name)
      if (cur === undefined) byName.set(b.name, { rec: b, count: 1 })
      else {
        cur.count++
        if (bucketStamp(b) > bucketStamp(cur.rec)) cur.rec = b
      }
    }
  }
  const local = new Map((await drive.meta.listBuckets()).map((b) => [b.name, b]))
  let changed = 0
  for (const [name, { rec, count }] of byName) {
    if (count < k) continue
    const mine = local.get(name)
    if (mine === undefined || bucketStamp(mine) < bucketStamp(rec)) {
      await drive.meta.putBucket(rec)
      changed++
    }
  }
  if (lists.length === others.length) {
    for (const [name, mine] of local) {
      if (byName.has(name) || Date.now() - hlcMillis(bucketStamp(mine)) < graceMs) continue
      if (await drive.meta.bucketHasVersions(name)) continue
      await drive.meta.deleteBucket(name)
      changed++
    }
  }
  return changed
}

const stampOf = (v: unknown): number | undefined => {
  if (typeof v === 'number') return v
  if (v !== null && typeof v === 'object' && typeof (v as { s?: unknown }).s === 'number')
    return (v as { s: number }).s
  return undefined
}

/** Copies missing or older system records from the drive's peers; returns how many. */
export async function healSystemRecords(access: SetAccess, drive: Drive): Promise<number> {
  const others = access.othersOf(drive.ref)
  const lists = await settleAll(others, (d) => access.listSystem(d, ''))
  const newest = new Map<string, unknown>()
  for (const list of lists) {
    for (const e of list) {
      if (e.key.startsWith(LOCAL_SYSTEM_PREFIX)) continue
      if (!newest.has(e.key)) newest.set(e.key, e.value)
      else {
        const a = stampOf(newest.get(e.key))
        const b = stampOf(e.value)
        if (a !== undefined && b !== undefined && b > a) newest.set(e.key, e.value)
      }
    }
  }
  if (newest.size === 0) return 0
  const local = new Map((await drive.meta.listSystem('')).map((e) => [e.key, e.value]))
  let changed = 0
  for (const [key, value] of newest) {
    if (local.has(key)) {
      const mine = stampOf(local.get(key))
      const theirs = stampOf(value)
      if (mine === undefined || theirs === undefined || theirs <= mine) continue
    }
    await drive.meta.putSystem(key, value)
    changed++
  }
  return changed
}
