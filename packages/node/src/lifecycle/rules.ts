/**
 * What a bucket's lifecycle rules (and the deployment's default for noncurrent versions) decide
 * for one key or one multipart upload, as pure functions of the records and the time.
 *
 * The configuration is the one the gateway stores in the bucket record's `settings.lifecycle`
 * (`packages/gateway/src/s3/lifecycle.ts` writes it; the shape below must stay the same).
 * Ages follow AWS: an action is due at the first midnight UTC after the start time plus the
 * number of days (object creation for Expiration, the moment a version became noncurrent,
 * that is its successor's write time, for NoncurrentVersionExpiration, initiation for
 * AbortIncompleteMultipartUpload).
 */
import {
  type BucketRecord,
  hlcMillis,
  type UploadRecord,
  type VersionRecord,
} from '@tessera/protocol'

export const DAY_MS = 86_400_000

export interface LifecycleTag {
  key: string
  value: string
}

export interface LifecycleFilter {
  prefix?: string
  tags?: LifecycleTag[]
  objectSizeGreaterThan?: number
  objectSizeLessThan?: number
  and?: boolean
}

export interface LifecycleRule {
  id: string
  status: 'Enabled' | 'Disabled'
  prefix?: string
  filter?: LifecycleFilter
  expiration?: { days?: number; date?: string; expiredObjectDeleteMarker?: boolean }
  noncurrentVersionExpiration?: { noncurrentDays: number; newerNoncurrentVersions?: number }
  abortIncompleteMultipartUpload?: { daysAfterInitiation: number }
}

/** The Enabled rules of a bucket record (none when it has no configuration). */
export function enabledRules(b: BucketRecord): LifecycleRule[] {
  const conf = b.settings?.lifecycle as { rules?: unknown } | undefined
  if (conf === undefined || !Array.isArray(conf.rules)) return []
  return (conf.rules as LifecycleRule[]).filter((r) => r?.status === 'Enabled')
}

/** When something `days` days after `fromMs` is due: the next midnight UTC after that instant. */
export function dueAt(fromMs: number, days: number): number {
  return Math.floor((fromMs + (days + 1) * DAY_MS) / DAY_MS) * DAY_MS
}

/** Whether `rule` selects an object version (by prefix, tags and size; markers have neither). */
export function selects(rule: LifecycleRule, v: VersionRecord): boolean {
  const f = rule.filter
  if (!v.key.startsWith(f?.prefix ?? rule.prefix ?? '')) return false
  if (f === undefined) return true
  for (const t of f.tags ?? []) if (v.tags?.[t.key] !== t.value) return false
  if (f.objectSizeGreaterThan !== undefined && !(v.size > f.objectSizeGreaterThan)) return false
  if (f.objectSizeLessThan !== undefined && !(v.size < f.objectSizeLessThan)) return false
  return true
}

/** Why a version is removed. */
export type RemovalReason = 'expired' | 'noncurrent' | 'noncurrent-default' | 'delete-marker'

/** What to do to one key, in order: remove these versions, then put a marker on top. */
export interface KeyPlan {
  remove: { record: VersionRecord; why: RemovalReason }[]
  /** In a versioned bucket, the expired current version to hide under a new delete marker. */
  markOver?: VersionRecord
}

export interface PlanContext {
  rules: readonly LifecycleRule[]
  versioning: BucketRecord['versioning']
  /** The worker's clock, epoch milliseconds. */
  nowMs: number
  /** Noncurrent versions no rule covers expire after this many days; 0: never. */
  noncurrentDefaultDays: number
}

/**
 * The actions due on a key whose versions (those a read quorum of its set agrees on) are
 * `versions`, newest first. A version the rules and the default do not select is never named.
 */
export function planKey(versions: readonly VersionRecord[], ctx: PlanContext): KeyPlan {
  const plan: KeyPlan = { remove: [] }
  const current = versions[0]
  if (current === undefined) return plan
  const now = ctx.nowMs
  const versioned = ctx.versioning !== 'unversioned'
  for (let i = 1; i < versions.length; i++) {
    const v = versions[i]!
    // Noncurrent since its successor was written; i - 1 noncurrent versions are newer.
    const since = hlcMillis(versions[i - 1]!.modTime)
    const newer = i - 1
    const covering = ctx.rules.filter((r) => r.noncurrentVersionExpiration && selects(r, v))
    if (covering.length > 0) {
      const due = covering.some((r) => {
        const nc = r.noncurrentVersionExpiration!
        return newer >= (nc.newerNoncurrentVersions ?? 0) && now >= dueAt(since, nc.noncurrentDays)
      })
      if (due) plan.remove.push({ record: v, why: 'noncurrent' })
    } else if (
      versioned &&
      ctx.noncurrentDefaultDays > 0 &&
      now >= dueAt(since, ctx.noncurrentDefaultDays)
    ) {
      plan.remove.push({ record: v, why: 'noncurrent-default' })
    }
  }
  const born = hlcMillis(current.modTime)
  if (current.deleteMarker) {
    // A marker with nothing left under it (once the removals above are done) hides nothing.
    const alone = versions.length - plan.remove.length === 1
    const due = ctx.rules.some((r) => {
      const e = r.expiration
      if (e === undefined || !selects(r, current)) return false
      // Days also clean up markers old enough, as in AWS.
      return (
        e.expiredObjectDeleteMarker === true || (e.days !== undefined && now >= dueAt(born, e.days))
      )
    })
    if (alone && due) plan.remove.push({ record: current, why: 'delete-marker' })
    return plan
  }
  const expired = ctx.rules.some((r) => {
    const e = r.expiration
    if (e === undefined || !selects(r, current)) return false
    if (e.days !== undefined) return now >= dueAt(born, e.days)
    if (e.date !== undefined) return now >= Date.parse(e.date)
    return false
  })
  if (expired) {
    if (versioned) plan.markOver = current
    else plan.remove.push({ record: current, why: 'expired' })
  }
  return plan
}

/**
 * Whether an incomplete multipart upload is due to be aborted. Rules with tag or size filters
 * never select uploads. An upload no AbortIncompleteMultipartUpload rule covers is abandoned
 * after `defaultDays` (the deployment default; 0: never).
 */
export function uploadDue(
  rules: readonly LifecycleRule[],
  u: UploadRecord,
  nowMs: number,
  defaultDays = 0,
): boolean {
  const covering = rules.filter((r) => {
    const f = r.filter
    return (
      r.abortIncompleteMultipartUpload !== undefined &&
      f?.tags === undefined &&
      f?.objectSizeGreaterThan === undefined &&
      f?.objectSizeLessThan === undefined &&
      u.key.startsWith(f?.prefix ?? r.prefix ?? '')
    )
  })
  if (covering.length === 0) {
    return defaultDays > 0 && nowMs >= dueAt(hlcMillis(u.initiated), defaultDays)
  }
  return rules.some((r) => {
    const a = r.abortIncompleteMultipartUpload
    const f = r.filter
    if (a === undefined) return false
    if (f?.tags !== undefined || f?.objectSizeGreaterThan !== undefined) return false
    if (f?.objectSizeLessThan !== undefined) return false
    if (!u.key.startsWith(f?.prefix ?? r.prefix ?? '')) return false
    return nowMs >= dueAt(hlcMillis(u.initiated), a.daysAfterInitiation)
  })
}

/** Whether the bucket has anything for the worker to walk its versions for. */
export function walksVersions(
  rules: readonly LifecycleRule[],
  versioning: BucketRecord['versioning'],
  noncurrentDefaultDays: number,
): boolean {
  if (versioning !== 'unversioned' && noncurrentDefaultDays > 0) return true
  return rules.some(
    (r) => r.expiration !== undefined || r.noncurrentVersionExpiration !== undefined,
  )
}
