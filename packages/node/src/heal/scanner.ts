/* Design notes

One scanner per drive. It runs passes over the drive's set, one after another:

- scan cycle (every `scanIntervalMs`; every `deepEvery`-th one deep): walks the merged version
  listing of the drive and its peers (merge.ts), bucket by bucket, key by key. For every key it
  checks the drive's own versions (record and data present with the right size, chunk
  checksums too in a deep cycle) and compares with the peers: a version k peers hold that the
  drive lacks (written while the drive or its node was away), or a version the drive holds that
  no quorum holds and that is older than the grace period (a failed write, a delete missed), is
  queued for repair (repair.ts decides again, with fresh records, before touching anything).
  So every cycle is also a catch-up pass; the first one starts right after the node starts (at
  CATCH_UP_SPEEDUP times the scan rate), which is how a node that was down catches up; a node
  that finds it was stalled (its 1 s timer late by more than STALL_MS: stopped, swapped out, a
  frozen VM) missed writes the same way and runs one too. This
  costs the peers one listing page per 256 versions per cycle (metadata only, inline bytes
  stripped), paced like the rest of the cycle.
- full heal (a drive formatted into a known slot at start, or StartHeal 'full'): the same walk
  at full speed, after a counting walk that gives the total for progress; everything missing
  is rebuilt. A marker (system key `local/heal-full`) survives restarts until it completes.

Pacing: a cycle checks at most `scanRate` versions per second, and while gateways are calling
the node (LoadMeter, client RPCs in the last second) it slows down by up to SLOWDOWN_MAX times,
so client traffic keeps priority. Repairs go through the healer's queue, which the walk waits
on when it is full: memory and queued work stay bounded whatever the drive holds.

A pass needs the listings of at least k peers (the records that say what the drive should
hold); without them it fails and is retried with back-off. A full heal and a catch-up pass must
also leave the drive whole: a version the drive lacks that the answering peers do not hold k
times, but would with the peers that did not answer ('waiting', shown by HealStatus), or a repair
that failed, makes the pass run again with back-off. A full heal runs again until the drive is
whole (for failed repairs alone, WHOLE_TRIES passes: a version beyond repair must not hold a
drive in healing forever), and stays 'healing' meanwhile; a catch-up pass CATCH_UP_TRIES times
(a minute or two of back-off), then routine cycles take over (a peer may be down for days). `lastCycleAt`, the end of the last pass
that went through everything, moves only for whole passes: a drive swapped while a peer is down
is not declared healed with versions only that peer could have counted. Bucket records are brought up to
date at the start of every pass, system records at the first pass, full heals and deep cycles.
*/
import type { ChunkHasher } from '@tessera/codec'
import { type DriveSlot, type HealReason, hlcMillis, type VersionRecord } from '@tessera/protocol'
import type { Drive } from '../drive.ts'
import { checkData } from './check.ts'
import type { LoadMeter } from './load-meter.ts'
import { type KeyView, MergedListing } from './merge.ts'
import type { RepairOutcome } from './repair.ts'
import type { SetAccess } from './set-access.ts'
import { healBuckets, healSystemRecords, LOCAL_SYSTEM_PREFIX } from './set-records.ts'

/** System key marking a drive whose full heal has not completed yet. */
export const FULL_HEAL_PENDING_KEY = `${LOCAL_SYSTEM_PREFIX}heal-full`
/** Client RPCs per second that double the time a scan cycle takes per version. */
const BUSY_RPS = 20
/** The most a scan cycle is slowed down by client traffic. */
const SLOWDOWN_MAX = 20
/**
 * The catch-up pass after a start runs this many times faster than a routine cycle: it is how
 * a node learns of the writes it missed while away (gateways cannot report those to it). So
 * does a deep scan someone asked for (StartHeal 'deep').
 */
const CATCH_UP_SPEEDUP = 10
/** First retry of a failed pass; doubles up to the scan interval (at most 60 s). */
const RETRY_MS = 2000
/**
 * Passes in a row a full heal or catch-up pass runs again for repairs that failed (with every
 * peer answering) before it ends anyway: a version beyond repair must not hold it forever.
 */
const WHOLE_TRIES = 3
/** Catch-up passes run, with back-off, before routine cycles take over the catching up. */
const CATCH_UP_TRIES = 6
/** How often the scanner checks that the node was not stalled, and the gap that says it was. */
const STALL_CHECK_MS = 1000
const STALL_MS = 5000

export interface ScanConfig {
  scanRate: number
  scanIntervalMs: number
  deepEvery: number
  graceMs: number
  startDelayMs: number
}

/** What a walk hands the healer: a key to repair on this drive. */
export interface ScanRepair {
  bucket: string
  key: string
  reason: HealReason
  deep: boolean
  /** Called once the repair ended (undefined when it was dropped: closing). */
  onDone: (outcome: RepairOutcome | undefined) => void
}

export type PassKind = 'scan' | 'deep' | 'full'

/** Progress of a pass, as HealStatus shows it. */
export interface PassProgress {
  kind: PassKind
  startedAt: number
  /** Versions to go through (full heal: counted first; cycles: the last cycle's count). */
  total?: number
  done: number
  endedAt?: number
}

/** The counters and state of one drive's healing, shared by its scanner and the healer. */
export class DriveStatus {
  state: 'idle' | 'scanning' | 'healing' = 'idle'
  scanned = 0
  healed = 0
  failed = 0
  bytesHealed = 0
  /** Versions checked by the scanner or by repairs: the rate shown. */
  processed = 0
  pass: PassProgress | undefined
  lastPass: PassProgress | undefined
  /** When the last pass that went through everything it had to ended. */
  lastCycleAt: number | undefined
  /**
   * Versions the last pass found the drive may lack but could not decide on, for peers that did
   * not answer.
   */
  waiting = 0
}

export interface ScannerInit {
  drive: Drive
  access: SetAccess
  h64: ChunkHasher
  config: ScanConfig
  meter: LoadMeter
  status: DriveStatus
  log: {
    info(obj: object, msg?: string): void
    warn(obj: object, msg?: string): void
  }
  /** Queues a repair; resolves once the queue has room for more. */
  queue: (item: ScanRepair) => Promise<void>
  signal: AbortSignal
}

/** What a walk learned about one key. */
interface Verdict {
  /** Versions the drive should hold (agreed by k drives, itself included). */
  expected: number
  /** Versions looked at (the drive's own and those it lacks). */
  looked: number
  /**
   * Versions the drive lacks that too few peers hold for a quorum, but enough with the peers
   * whose listing failed: the drive may have to hold them, and cannot tell yet.
   */
  uncertain: number
  repair: boolean
  deep: boolean
}

export class Scanner {
  readonly #i: ScannerInit
  readonly #slot: DriveSlot
  #wantFull = false
  #wantDeep = false
  #wake: (() => void) | undefined
  #loop: Promise<void> | undefined
  /** Versions the last complete cycle went through: the next cycle's total. */
  #lastCount: number | undefined
  #nextAt = 0
  /** Full heal or catch-up passes in a row that ended with failed repairs only. */
  #failedTries = 0
  /** Catch-up passes in a row that did not leave the drive whole. */
  #catchUpTries = 0
  /** The next pass is a catch-up pass: the node just started, or was stalled. */
  #catchUp = true

  constructor(init: ScannerInit) {
    this.#i = init
    const set = init.access.setOf(init.drive.ref)
    this.#slot = set.drives[init.drive.ref.slot]!
  }

  /** Starts the passes; `full`: the drive was just formatted. */
  start(full: boolean): void {
    this.#loop = this.#run(full).catch((err: unknown) => {
      if (!this.#i.signal.aborted)
        this.#i.log.warn(
          { drive: this.#i.drive.path, err: (err as Error).message },
          'scanner stopped',
        )
    })
  }

  /** Resolves once the passes have stopped (after the signal is aborted). */
  async stopped(): Promise<void> {
    this.#wake?.()
    await this.#loop
  }

  /** Asks for a full heal or a deep cycle now; false when one is already asked for or running. */
  request(mode: 'full' | 'deep'): boolean {
    if (mode === 'full') {
      if (this.#wantFull || this.#i.status.pass?.kind === 'full') return false
      this.#wantFull = true
      this.#i.drive.meta
        .putSystem(FULL_HEAL_PENDING_KEY, { since: Date.now() })
        .catch((err: unknown) =>
          this.#i.log.warn(
            { drive: this.#i.drive.path, err: (err as Error).message },
            'cannot record the full heal request',
          ),
        )
    } else {
      if (this.#wantDeep) return false
      this.#wantDeep = true
    }
    this.#wake?.()
    return true
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#i.signal
    if (signal.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        this.#wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
      this.#wake = done
    })
  }

  async #run(formatted: boolean): Promise<void> {
    const { drive, config, signal } = this.#i
    if (formatted) {
      await drive.meta.putSystem(FULL_HEAL_PENDING_KEY, { since: Date.now() })
      this.#wantFull = true
    } else if ((await drive.meta.getSystem(FULL_HEAL_PENDING_KEY)) !== undefined) {
      this.#wantFull = true
    }
    // A node frozen for a while (stopped, swapped out, a stalled VM) missed writes the way a
    // node that was down did: it catches up the same way once it runs again.
    // Monotonic time: a wall-clock step (NTP) is no stall.
    let tick = performance.now()
    const monitor = setInterval(() => {
      const now = performance.now()
      if (now - tick > STALL_MS) {
        this.#i.log.warn(
          { drive: drive.path, stalledMs: Math.round(now - tick - STALL_CHECK_MS) },
          'the node was stalled: running a catch-up pass',
        )
        this.#catchUp = true
        this.#wake?.()
      }
      tick = now
    }, STALL_CHECK_MS)
    monitor.unref()
    signal.addEventListener('abort', () => clearInterval(monitor), { once: true })
    await this.#sleep(config.startDelayMs)
    let cycle = 0
    let retry = RETRY_MS
    while (!signal.aborted) {
      const full = this.#wantFull
      const first = this.#catchUp
      this.#catchUp = false
      let kind: PassKind = 'full'
      // A deep scan someone asked for runs at the catch-up pace: they want it now.
      const asked = !full && this.#wantDeep
      if (!full) {
        const deep = asked || (config.deepEvery > 0 && (cycle + 1) % config.deepEvery === 0)
        kind = deep ? 'deep' : 'scan'
        this.#wantDeep = false
      }
      let ok = false
      try {
        ok = await this.#pass(kind, first, first || asked)
      } catch (err) {
        if (signal.aborted) return
        this.#i.log.warn(
          { drive: drive.path, pass: kind, err: (err as Error).message },
          'heal pass failed',
        )
      }
      if (signal.aborted) return
      if (!ok) {
        if (kind === 'deep') this.#wantDeep = true
        if (first) this.#catchUp = true
        // A drive whose full heal has to run again is still being healed.
        if (full) this.#i.status.state = 'healing'
        await this.#sleep(retry)
        retry = Math.min(retry * 2, Math.max(RETRY_MS, Math.min(config.scanIntervalMs, 60_000)))
        continue
      }
      retry = RETRY_MS
      if (full) {
        this.#wantFull = false
        await drive.meta.deleteSystem(FULL_HEAL_PENDING_KEY)
      } else cycle++
      if (!this.#wantFull && !this.#wantDeep && !this.#catchUp)
        await this.#sleep(config.scanIntervalMs)
    }
  }

  /** One pass; false when it could not run (too few peers answered), to be retried. */
  async #pass(kind: PassKind, first: boolean, fast: boolean): Promise<boolean> {
    const { drive, access, status, signal, log } = this.#i
    const k = access.cluster.readQuorum
    const peers = access.othersOf(drive.ref)
    const progress: PassProgress = {
      kind,
      startedAt: Date.now(),
      done: 0,
      ...(kind !== 'full' && this.#lastCount !== undefined ? { total: this.#lastCount } : {}),
    }
    // The buckets to walk: every bucket any drive of the set knows.
    const lists = await Promise.allSettled(peers.map((d) => access.listBuckets(d)))
    const answered = lists.filter((r) => r.status === 'fulfilled').length
    if (answered < k) {
      log.info(
        { drive: drive.path, pass: kind, answered, needed: k },
        'heal pass waits: too few peer drives answered',
      )
      return false
    }
    status.state = kind === 'full' ? 'healing' : 'scanning'
    status.pass = progress
    let whole = false
    let catchUpAgain = false
    const reason: HealReason = kind === 'full' ? 'drive-new' : first ? 'catch-up' : 'scan'
    let healedBefore = status.healed
    let failedBefore = status.failed
    try {
      await healBuckets(access, drive, this.#i.config.graceMs)
      if (first || kind !== 'scan') await healSystemRecords(access, drive)
      const names = new Set((await drive.meta.listBuckets()).map((b) => b.name))
      for (const r of lists)
        if (r.status === 'fulfilled') for (const b of r.value) names.add(b.name)
      const buckets = [...names].sort()
      if (kind === 'full') {
        log.info({ drive: drive.path }, 'full heal: counting what the set holds')
        const total = await this.#count(buckets, peers)
        if (total === undefined) return false
        progress.total = total
        healedBefore = status.healed
        failedBefore = status.failed
        log.info({ drive: drive.path, versions: total }, 'full heal started')
      }
      let outstanding = 0
      let settle: (() => void) | undefined
      let complete = true
      let visited = 0
      // Versions the drive may lack that peers which did not answer would decide, and repairs
      // that failed: while there are any, the drive is not known to be whole.
      let waiting = 0
      let failed = 0
      for (const bucket of buckets) {
        const listing = new MergedListing(access, this.#slot, peers, bucket)
        for await (const view of listing.keys(signal)) {
          if (kind !== 'full' && this.#wantFull) {
            complete = false
            break
          }
          const v = await this.#examine(view, kind === 'deep')
          visited += v.expected
          // A key queued for repair is decided again by the repair, which says what waits.
          if (!v.repair) waiting += v.uncertain
          status.scanned += v.looked
          if (v.repair) {
            outstanding++
            await this.#i.queue({
              bucket,
              key: view.key,
              reason,
              deep: v.deep,
              onDone: (o) => {
                if (o === undefined) failed++
                else {
                  waiting += o.waiting
                  failed += o.failed
                }
                progress.done += v.expected
                if (--outstanding === 0) settle?.()
              },
            })
          } else {
            progress.done += v.expected
            status.processed += v.looked
          }
          if (kind !== 'full') await this.#pace(v.looked, fast ? CATCH_UP_SPEEDUP : 1)
        }
        if (peers.length - listing.failedPeers < k) {
          complete = false
          log.info(
            {
              drive: drive.path,
              bucket,
              errors: listing.peerErrors.map((e) => `${e.drive.nodeId}: ${e.error.message}`),
            },
            'heal pass: too few peer listings completed; the pass will be run again',
          )
          break
        }
        if (!complete) break
      }
      if (outstanding > 0) await new Promise<void>((r) => (settle = r))
      if (complete) this.#lastCount = visited
      status.waiting = waiting
      // A full heal or a catch-up pass is what makes the drive whole again: it ends only when
      // nothing is left waiting for a peer, and (a few tries) when no repair failed.
      const mustBeWhole = kind === 'full' || first
      if (mustBeWhole && complete && waiting === 0 && failed > 0) this.#failedTries++
      const giveUp = this.#failedTries >= WHOLE_TRIES
      whole = complete && waiting === 0 && (failed === 0 || giveUp)
      if (whole) this.#failedTries = 0
      if (kind === 'full') {
        if (whole) progress.total = progress.done = Math.max(progress.total ?? 0, progress.done)
        const fields = {
          drive: drive.path,
          versions: progress.done,
          healed: status.healed - healedBefore,
          failed,
          waiting,
          seconds: Math.round((Date.now() - progress.startedAt) / 100) / 10,
          complete,
        }
        if (whole && failed > 0)
          log.warn(
            fields,
            'full heal ended; some versions could not be rebuilt (see repair failed)',
          )
        else if (whole) log.info(fields, 'full heal ended')
        else log.warn(fields, 'full heal incomplete: it runs again once the set answers')
      } else if (first && !whole) {
        catchUpAgain = ++this.#catchUpTries < CATCH_UP_TRIES
        log.warn(
          { drive: drive.path, versions: progress.done, failed, waiting, complete },
          catchUpAgain
            ? 'catch-up pass incomplete: it runs again shortly'
            : 'catch-up pass incomplete again: routine scan cycles take it from here',
        )
      } else if (status.healed > healedBefore || status.failed > failedBefore) {
        log.info(
          {
            drive: drive.path,
            cycle: kind,
            reason,
            versions: progress.done,
            healed: status.healed - healedBefore,
            failed: status.failed - failedBefore,
            seconds: Math.round((Date.now() - progress.startedAt) / 100) / 10,
          },
          'scan cycle repaired versions',
        )
      }
      if (whole || !catchUpAgain) this.#catchUpTries = 0
      return kind === 'full' ? whole : !catchUpAgain
    } finally {
      progress.endedAt = Date.now()
      status.state = 'idle'
      status.pass = undefined
      status.lastPass = progress
      // The last pass that went through everything it had to.
      if (whole) status.lastCycleAt = progress.endedAt
    }
  }

  /** Versions the set says the drive should hold; undefined when too few peers could list. */
  async #count(buckets: string[], peers: DriveSlot[]): Promise<number | undefined> {
    const k = this.#i.access.cluster.readQuorum
    let total = 0
    for (const bucket of buckets) {
      const listing = new MergedListing(this.#i.access, this.#slot, peers, bucket)
      for await (const view of listing.keys(this.#i.signal)) total += agreedVersions(view, k)
      if (peers.length - listing.failedPeers < k) return undefined
    }
    return total
  }

  /** Compares a key's versions on the drive with its peers', and checks the drive's own. */
  async #examine(view: KeyView, deep: boolean): Promise<Verdict> {
    const { drive, access, config, h64, signal } = this.#i
    const k = access.cluster.readQuorum
    const counts = new Map<string, number>()
    // The latest change of each version's tags or ACL the others hold.
    const metaTimes = new Map<string, number>()
    for (const o of view.others) {
      for (const v of o.versions) {
        const id = `${v.modTime}/${v.versionId}`
        counts.set(id, (counts.get(id) ?? 0) + 1)
        if ((v.metaTime ?? 0) > (metaTimes.get(id) ?? 0)) metaTimes.set(id, v.metaTime!)
      }
    }
    const mine = new Set(view.local.map((v) => `${v.modTime}/${v.versionId}`))
    const verdict: Verdict = {
      expected: 0,
      looked: view.local.length,
      uncertain: 0,
      repair: false,
      deep,
    }
    for (const [id, n] of counts) {
      if (mine.has(id)) continue
      if (n >= k) {
        verdict.expected++
        verdict.looked++
        verdict.repair = true
      } else if (n + view.unknown >= k) verdict.uncertain++
    }
    const now = Date.now()
    for (const v of view.local) {
      const id = `${v.modTime}/${v.versionId}`
      const n = (counts.get(id) ?? 0) + 1
      if (n >= k) {
        verdict.expected++
        // The drive missed a change of the version's tags or ACL.
        if ((metaTimes.get(id) ?? 0) > (v.metaTime ?? 0)) verdict.repair = true
      } else if (n + view.unknown < k && now - hlcMillis(v.modTime) >= config.graceMs) {
        verdict.repair = true
        continue
      }
      if (verdict.repair && !deep) continue
      const check = await checkData(drive, v, { deep, h64, inline: v.inline, signal })
      if (check.badParts.length > 0) verdict.repair = true
    }
    return verdict
  }

  /** Sleeps as long as `versions` take at the scan rate (× `speedup`), slowed by client traffic. */
  async #pace(versions: number, speedup: number): Promise<void> {
    const { config, meter } = this.#i
    const slowdown = Math.min(SLOWDOWN_MAX, 1 + meter.perSecond / BUSY_RPS)
    const now = Date.now()
    // No catching up in a burst after a slow stretch (a long repair queue, a big check).
    if (this.#nextAt < now - 1000) this.#nextAt = now - 1000
    this.#nextAt += (Math.max(1, versions) * 1000 * slowdown) / (config.scanRate * speedup)
    const wait = this.#nextAt - now
    if (wait > 10) await this.#sleep(wait)
  }
}

/** Versions of a key that at least k drives hold (the drive itself included). */
export function agreedVersions(view: KeyView, k: number): number {
  const counts = new Map<string, number>()
  const add = (v: VersionRecord) => {
    const id = `${v.modTime}/${v.versionId}`
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  for (const v of view.local) add(v)
  for (const o of view.others) for (const v of o.versions) add(v)
  let n = 0
  for (const c of counts.values()) if (c >= k) n++
  return n
}
