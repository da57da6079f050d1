/**
 * Identity records on the nodes, and every gateway's cached view of them.
 *
 * Records are system records under `iam/` on the drives of one erasure set (the set the name
 * `.tessera-iam` places in), written to every drive of it and accepted at write quorum, read
 * at read quorum, newest stamp winning — like objects, so losing drives within the parity
 * loses nothing. Deletions are tombstones, so a drive that missed a delete cannot bring a
 * record back.
 *
 * Every change also stamps `iam-gen`. Each gateway polls that one small record (every
 * `IAM_POLL_MS`) and reloads the whole view when it moved, so a change made on one gateway is
 * seen by all within a second, and a restarted gateway starts from what the nodes hold.
 */
import { GetSystem, ListSystem, PutSystem, StoreError } from '@tessera/protocol'
import type { Logger } from '../s3/context.ts'
import type { Cluster } from '../store/cluster.ts'
import { hlcNow } from '../store/hlc.ts'
import { newAccountId } from './crypto.ts'
import {
  type AccessKeyRecord,
  type AccountRecord,
  type AuditEntry,
  DEFAULT_MAX_KEY_AGE_DAYS,
  DEFAULT_POLICY_MAX_BYTES,
  DEFAULT_PROJECT,
  type IamSnapshot,
  type ManagedPolicyRecord,
  type ProjectRecord,
  type UserRecord,
} from './model.ts'

/** How often a gateway checks for identity changes; changes show within twice this. */
export const IAM_POLL_MS = 250
const GEN_KEY = 'iam-gen'
const PREFIX = 'iam/'
const AUDIT_PREFIX = 'iam-audit/'
const USED_PREFIX = 'iam-used/'
/** How often "last used" times of keys are written to the nodes. */
export const USED_FLUSH_MS = 30_000
/** The name whose placement picks the erasure set holding the identity records. */
const IAM_SET_NAME = '.tessera-iam'

interface Stamped<T> {
  /** null for a deleted record. */
  v: T | null
  s: number
}

export type IamRecordKey =
  | 'account'
  | `project/${string}`
  | `user/${string}`
  | `key/${string}`
  | `policy/${string}`

export class IamStore {
  #cluster: Cluster
  #log: Logger
  #snapshot: IamSnapshot | undefined
  #gen = 0
  #timer: NodeJS.Timeout | undefined
  #polling = false
  #pollFailed = false
  #listeners: (() => void)[] = []
  /** Writes made by this gateway, so a concurrent load can tell it read too early. */
  #writes = 0
  /** Writes of this gateway that started and have not been applied to the view yet. */
  #inFlight = 0
  #used = new Map<string, { at: number; dirty: boolean }>()
  #usedTimer: NodeJS.Timeout | undefined

  constructor(cluster: Cluster, log: Logger) {
    this.#cluster = cluster
    this.#log = log
  }

  get #drives() {
    return this.#cluster.place(0, IAM_SET_NAME, '').set.drives
  }

  /** The current view; `start` must have completed. */
  get snapshot(): IamSnapshot {
    if (this.#snapshot === undefined) throw new Error('identity store not loaded')
    return this.#snapshot
  }

  /** Calls `fn` after each reload (caches derived from the snapshot drop themselves). */
  onChange(fn: () => void): void {
    this.#listeners.push(fn)
  }

  /** Loads the records (creating the account on a new cluster) and starts watching. */
  async start(): Promise<void> {
    await this.#load()
    if (this.#snapshot!.account.id === '') {
      const account: AccountRecord = {
        id: newAccountId(),
        maxKeyAgeDays: DEFAULT_MAX_KEY_AGE_DAYS,
        policyMaxBytes: DEFAULT_POLICY_MAX_BYTES,
        guardrails: { deniedActions: [] },
      }
      await this.put('account', account)
      if (!this.#snapshot!.projects.has(DEFAULT_PROJECT)) {
        await this.put(`project/${DEFAULT_PROJECT}`, {
          name: DEFAULT_PROJECT,
          created: Date.now(),
          description: 'Buckets created with the root credential',
        } satisfies ProjectRecord)
      }
      this.#log.info({ account: account.id }, 'identity: new account created')
    }
    this.#timer = setInterval(() => void this.#poll(), IAM_POLL_MS)
    this.#timer.unref()
    this.#usedTimer = setInterval(() => void this.#flushUsed().catch(() => {}), USED_FLUSH_MS)
    this.#usedTimer.unref()
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer)
    if (this.#usedTimer) clearInterval(this.#usedTimer)
  }

  /** Notes that a key signed a request; written to the nodes at most every USED_FLUSH_MS. */
  touch(keyId: string, at: number): void {
    const prev = this.#used.get(keyId)
    if (prev === undefined || at - prev.at > USED_FLUSH_MS)
      this.#used.set(keyId, { at, dirty: true })
  }

  /** When each key last signed a request, as far as the nodes and this gateway know. */
  async lastUsed(): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    const results = await this.#cluster.callAll(this.#drives, ListSystem, { prefix: USED_PREFIX })
    for (const r of results) {
      if (!r.ok) continue
      for (const e of r.value.entries) {
        const id = e.key.slice(USED_PREFIX.length)
        if (typeof e.value === 'number') out.set(id, Math.max(out.get(id) ?? 0, e.value))
      }
    }
    for (const [id, u] of this.#used) out.set(id, Math.max(out.get(id) ?? 0, u.at))
    return out
  }

  async #flushUsed(): Promise<void> {
    const dirty = [...this.#used].filter(([, u]) => u.dirty)
    for (const [id, u] of dirty) {
      u.dirty = false
      // Best effort: a lost "last used" stamp is refreshed by the next use.
      await this.#cluster.callAll(this.#drives, PutSystem, { key: USED_PREFIX + id, value: u.at })
    }
    if (this.#used.size > 100_000) this.#used.clear()
  }

  /** Writes a record (null deletes it) at write quorum and applies it to the local view. */
  async put(key: IamRecordKey, value: unknown): Promise<void> {
    // A load that started before this write must not replace the view after it (see #load).
    this.#writes++
    this.#inFlight++
    try {
      const s = hlcNow()
      const stamped: Stamped<unknown> = { v: value, s }
      const drives = this.#drives
      const results = await this.#cluster.callAll(drives, PutSystem, {
        key: PREFIX + key,
        value: stamped,
      })
      this.#cluster.requireWriteQuorum(results, `stored identity record ${key.split('/')[0]}`)
      await this.#cluster.callAll(drives, PutSystem, { key: GEN_KEY, value: s })
      this.#apply(this.#snapshot!, key, value)
      if (s > this.#gen) this.#gen = s
    } finally {
      this.#inFlight--
    }
  }

  /** Appends an entry to the audit log (quorum like any record). */
  async audit(entry: AuditEntry): Promise<void> {
    const s = hlcNow()
    const day = new Date(entry.at).toISOString().slice(0, 10)
    const results = await this.#cluster.callAll(this.#drives, PutSystem, {
      key: `${AUDIT_PREFIX}${day}/${s.toString(36).padStart(12, '0')}`,
      value: entry,
    })
    this.#cluster.requireWriteQuorum(results, 'stored an audit entry')
  }

  /** Audit entries from `since` (epoch ms) on, oldest first; reads one day at a time. */
  async listAudit(since: number, limit: number): Promise<AuditEntry[]> {
    const out = new Map<string, AuditEntry>()
    const dayMs = 86_400_000
    const first = Math.floor(since / dayMs) * dayMs
    for (let day = first; day <= Date.now() && out.size < limit; day += dayMs) {
      const prefix = `${AUDIT_PREFIX}${new Date(day).toISOString().slice(0, 10)}/`
      const results = await this.#cluster.callAll(this.#drives, ListSystem, { prefix })
      const ok = results.flatMap((r) => (r.ok ? [r.value.entries] : []))
      if (ok.length < this.#cluster.readQuorum) {
        throw new StoreError('QUORUM_FAILED', 'too few drives answered for the audit log')
      }
      const days = new Map<string, AuditEntry>()
      for (const list of ok) for (const e of list) days.set(e.key, e.value as AuditEntry)
      for (const k of [...days.keys()].sort()) {
        const e = days.get(k)!
        if (e.at >= since && out.size < limit) out.set(k, e)
      }
    }
    return [...out.values()]
  }

  async #poll(): Promise<void> {
    if (this.#polling) return
    this.#polling = true
    try {
      const results = await this.#cluster.callAll(this.#drives, GetSystem, { key: GEN_KEY })
      let gen = 0
      for (const r of results)
        if (r.ok && typeof r.value.value === 'number') gen = Math.max(gen, r.value.value)
      if (gen > this.#gen) await this.#load()
      if (this.#pollFailed) this.#log.info({}, 'identity: records reachable again')
      this.#pollFailed = false
    } catch (err) {
      if (!this.#pollFailed) {
        this.#log.warn(
          { err: (err as Error).message },
          'identity: cannot refresh records; serving the cached view',
        )
      }
      this.#pollFailed = true
    } finally {
      this.#polling = false
    }
  }

  async #load(): Promise<void> {
    const writes = this.#writes
    const busy = this.#inFlight > 0
    const drives = this.#drives
    // The generation first, then the records: writers store the records before the
    // generation, so every change the generation read here counts is in the records read
    // after it. (Read together, a change landing in between could be counted and missed,
    // and no later poll would see a newer generation to load it.)
    const genResults = await this.#cluster.callAll(drives, GetSystem, { key: GEN_KEY })
    const results = await this.#cluster.callAll(drives, ListSystem, { prefix: PREFIX })
    const ok = results.flatMap((r) => (r.ok ? [r.value.entries] : []))
    if (ok.length < this.#cluster.readQuorum) {
      throw new StoreError(
        'QUORUM_FAILED',
        `only ${ok.length} drives answered for the identity records (need ${this.#cluster.readQuorum})`,
      )
    }
    let gen = 0
    for (const r of genResults)
      if (r.ok && typeof r.value.value === 'number') gen = Math.max(gen, r.value.value)
    const newest = new Map<string, Stamped<unknown>>()
    for (const list of ok) {
      for (const e of list) {
        const v = e.value as Stamped<unknown>
        const cur = newest.get(e.key)
        if (cur === undefined || v.s > cur.s) newest.set(e.key, v)
      }
    }
    const snap: IamSnapshot = {
      account: {
        id: '',
        maxKeyAgeDays: DEFAULT_MAX_KEY_AGE_DAYS,
        policyMaxBytes: DEFAULT_POLICY_MAX_BYTES,
        guardrails: { deniedActions: [] },
      },
      projects: new Map(),
      users: new Map(),
      keys: new Map(),
      policies: new Map(),
    }
    for (const [k, v] of newest) {
      if (v.v !== null) this.#apply(snap, k.slice(PREFIX.length) as IamRecordKey, v.v)
    }
    // A write of this gateway was under way when the records were read (it started during the
    // read, or before it and had not been applied yet): this view may lack it, and its gen
    // would stop the next poll from noticing. Read again once the writes have settled.
    if (this.#snapshot !== undefined && (busy || this.#writes !== writes)) {
      await new Promise((r) => setTimeout(r, 10))
      return this.#load()
    }
    this.#snapshot = snap
    this.#gen = Math.max(this.#gen, gen)
    for (const fn of this.#listeners) fn()
  }

  #apply(snap: IamSnapshot, key: IamRecordKey, value: unknown): void {
    const slash = key.indexOf('/')
    const kind = slash < 0 ? key : key.slice(0, slash)
    const name = key.slice(slash + 1)
    switch (kind) {
      case 'account':
        if (value !== null) snap.account = value as AccountRecord
        return
      case 'project':
        setOrDelete(snap.projects, name, value as ProjectRecord | null)
        return
      case 'user':
        setOrDelete(snap.users, name, value as UserRecord | null)
        return
      case 'key':
        setOrDelete(snap.keys, name, value as AccessKeyRecord | null)
        return
      case 'policy':
        setOrDelete(snap.policies, name, value as ManagedPolicyRecord | null)
        return
    }
  }
}

function setOrDelete<T>(m: Map<string, T>, k: string, v: T | null): void {
  if (v === null) m.delete(k)
  else m.set(k, v)
}
