/**
 * Tells nodes about shards their drives should have and do not: drives that missed a write
 * (below all n, above the write quorum) and shards a read found missing or corrupt. Reports
 * are gathered per drive for a moment and sent as one QueueHeal, so the drive is repaired within
 * seconds instead of at the scanner's next cycle. A node that cannot be reached is skipped:
 * when it returns, its catch-up pass finds what it missed.
 */
import { type Cluster, type DriveSlot, type HealItem, QueueHeal } from '@tessera/protocol'
import type { Logger } from '../s3/context.ts'

/** How long reports are gathered before they are sent. */
export const HEAL_REPORT_DELAY_MS = 100
/** Reports kept per drive while waiting; more are dropped (the scanner finds them). */
const MAX_PENDING_PER_DRIVE = 10_000

export class HealReporter {
  #cluster: Cluster
  #log: Logger
  #pending = new Map<string, { drive: DriveSlot; items: Map<string, HealItem> }>()
  #timer: NodeJS.Timeout | undefined

  constructor(cluster: Cluster, log: Logger) {
    this.#cluster = cluster
    this.#log = log
  }

  report(drive: DriveSlot, item: HealItem): void {
    const id = `${drive.pool}/${drive.set}/${drive.slot}`
    let p = this.#pending.get(id)
    if (p === undefined) {
      p = { drive, items: new Map() }
      this.#pending.set(id, p)
    }
    if (p.items.size < MAX_PENDING_PER_DRIVE) {
      p.items.set(`${item.bucket}\0${item.key}\0${item.versionId ?? ''}`, item)
    }
    this.#timer ??= setTimeout(() => void this.#flush(), HEAL_REPORT_DELAY_MS)
  }

  async #flush(): Promise<void> {
    this.#timer = undefined
    const batches = [...this.#pending.values()]
    this.#pending.clear()
    await Promise.all(
      batches.map(async ({ drive, items }) => {
        try {
          await this.#cluster.call(drive, QueueHeal, { items: [...items.values()] })
        } catch (err) {
          this.#log.debug(
            {
              drive: `${drive.nodeId}:${drive.path}`,
              items: items.size,
              err: (err as Error).message,
            },
            'could not queue repairs; the node will find them when it scans',
          )
        }
      }),
    )
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer)
  }
}
