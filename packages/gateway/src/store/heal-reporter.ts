/**
 * Tells nodes about shards their drives should have and do not: drives that missed a write
 * (below all n, above the write quorum) and shards a read found missing or corrupt. Reports
 * are gathered per drive for a moment and sent as one QueueHeal, so the drive is repaired within
 * seconds instead of at the scanner's next cycle.
 *
 * A node that cannot take them (down, cut off, frozen) gets them later: they are kept and sent
 * again with back-off (RETRY_FIRST_MS doubling to RETRY_MAX_MS) for RETRY_FOR_MS, the way MinIO's
 * MRF queue does. A node that restarts or finds it was frozen runs a catch-up pass of its own;
 * one that was only cut off from this gateway (a network split) would otherwise wait for its
 * next scan cycle. After RETRY_FOR_MS, or beyond MAX_PENDING_PER_DRIVE, reports are dropped:
 * the scanner finds those versions.
 */
import { type Cluster, type DriveSlot, type HealItem, QueueHeal } from '@tessera/protocol'
import type { Logger } from '../s3/context.ts'

/** How long reports are gathered before they are sent. */
export const HEAL_REPORT_DELAY_MS = 100
/** Reports kept per drive while waiting; more are dropped (the scanner finds them). */
const MAX_PENDING_PER_DRIVE = 10_000
/** First resend of reports a node could not take; doubles up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 1000
const RETRY_MAX_MS = 30_000
/** How long reports a node cannot take are kept. */
const RETRY_FOR_MS = 10 * 60_000

/** One report per drive and version. */
const itemId = (it: HealItem) =>
  `${it.bucket}\0${it.key}\0${it.versionId ?? ''}\0${it.upload ? `${it.upload.uploadId}\0${it.upload.partNumber ?? ''}` : ''}`

interface Pending {
  drive: DriveSlot
  items: Map<string, HealItem>
  /** Sends that failed in a row, and when the first of them failed. */
  failures: number
  failingSince?: number
  /** Not sent again before this (epoch ms), after a failure. */
  retryAt: number
  /** Reports in a send under way. */
  sending: number
}

export class HealReporter {
  #cluster: Cluster
  #log: Logger
  #pending = new Map<string, Pending>()
  #timer: NodeJS.Timeout | undefined
  #timerAt = 0
  #closed = false

  constructor(cluster: Cluster, log: Logger) {
    this.#cluster = cluster
    this.#log = log
  }

  /** Reports held for nodes, sent or waiting to be sent again. */
  get pending(): number {
    let n = 0
    for (const p of this.#pending.values()) n += p.items.size + p.sending
    return n
  }

  report(drive: DriveSlot, item: HealItem): void {
    if (this.#closed) return
    const p = this.#entry(drive)
    if (p.items.size < MAX_PENDING_PER_DRIVE) {
      p.items.set(itemId(item), item)
    }
    this.#schedule(Math.max(Date.now() + HEAL_REPORT_DELAY_MS, p.retryAt))
  }

  #entry(drive: DriveSlot): Pending {
    const id = `${drive.pool}/${drive.set}/${drive.slot}`
    let p = this.#pending.get(id)
    if (p === undefined) {
      p = { drive, items: new Map(), failures: 0, retryAt: 0, sending: 0 }
      this.#pending.set(id, p)
    }
    return p
  }

  /** Makes the timer fire by `at` (an earlier timer stays). */
  #schedule(at: number): void {
    if (this.#closed) return
    if (this.#timer !== undefined && this.#timerAt <= at) return
    clearTimeout(this.#timer)
    this.#timerAt = at
    this.#timer = setTimeout(() => void this.#flush(), Math.max(0, at - Date.now()))
    this.#timer.unref()
  }

  async #flush(): Promise<void> {
    this.#timer = undefined
    const now = Date.now()
    const due = [...this.#pending.values()].filter((p) => p.items.size > 0 && p.retryAt <= now)
    await Promise.all(
      due.map(async (p) => {
        const items = [...p.items.values()]
        p.items.clear()
        p.sending += items.length
        try {
          await this.#cluster.call(p.drive, QueueHeal, { items }).finally(() => {
            p.sending -= items.length
          })
          if (p.failures > 0) {
            this.#log.info(
              { drive: `${p.drive.nodeId}:${p.drive.path}`, items: items.length },
              'repairs queued on the node after it could not take them',
            )
          }
          p.failures = 0
          delete p.failingSince
          p.retryAt = 0
        } catch (err) {
          p.failures++
          p.failingSince ??= now
          const drive = `${p.drive.nodeId}:${p.drive.path}`
          if (Date.now() - p.failingSince > RETRY_FOR_MS) {
            this.#log.warn(
              { drive, items: items.length + p.items.size, err: (err as Error).message },
              'could not queue repairs for 10 minutes; the node will find them when it scans',
            )
            p.items.clear()
            p.failures = 0
            delete p.failingSince
            p.retryAt = 0
            return
          }
          // Back in line, before what arrived meanwhile, within the cap.
          const merged = new Map<string, HealItem>()
          for (const it of items) merged.set(itemId(it), it)
          for (const [k, it] of p.items) merged.set(k, it)
          p.items = new Map([...merged].slice(0, MAX_PENDING_PER_DRIVE))
          const wait = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (p.failures - 1))
          p.retryAt = Date.now() + wait
          if (p.failures === 1) {
            this.#log.debug(
              { drive, items: p.items.size, retryInMs: wait, err: (err as Error).message },
              'could not queue repairs; sending them again',
            )
          }
        }
      }),
    )
    for (const [id, p] of this.#pending)
      if (p.items.size === 0 && p.sending === 0) this.#pending.delete(id)
    // What arrived during the sends, and what waits to be sent again.
    let next = Number.POSITIVE_INFINITY
    for (const p of this.#pending.values())
      next = Math.min(next, Math.max(p.retryAt, Date.now() + HEAL_REPORT_DELAY_MS))
    if (next !== Number.POSITIVE_INFINITY) this.#schedule(next)
  }

  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}
