/**
 * Whole-cluster S3 request figures. Gateways keep no state and do not know each other's
 * addresses, but every gateway talks to every node: so each gateway pushes its cumulative
 * request counters to every node every {@link REPORT_INTERVAL_MS} (ReportGatewayStats), each
 * node keeps the newest snapshot per gateway for a minute, and `GET /requests` on any gateway
 * asks every node (GatewayStats) and keeps each gateway's newest snapshot. The console turns
 * consecutive answers into rates and latency quantiles.
 *
 * The counters are cumulative since the gateway started (`startedAt`), so a lost push costs
 * nothing but freshness, and a reader diffing two snapshots of one run gets exact deltas.
 */
import { type Cluster, type GatewayRequestStats, ReportGatewayStats } from '@tessera/protocol'
import type { Logger } from '../s3/context.ts'

/** How often a gateway pushes its counters to every node. */
export const REPORT_INTERVAL_MS = 5000
/** How long one push may take (dialling included); it is dropped after that. */
export const REPORT_TIMEOUT_MS = 1000

/** Pushes this gateway's request counters to every node of the map, every interval. */
export class RequestStatsReporter {
  readonly #cluster: Cluster
  readonly #stats: () => Promise<GatewayRequestStats>
  readonly #log: Logger
  readonly #intervalMs: number
  /** Nodes whose previous push has not settled yet: skipped rather than piled up. */
  readonly #pending = new Set<string>()
  #timer: NodeJS.Timeout | undefined

  constructor(init: {
    cluster: Cluster
    /** The counters to push (GatewayMetrics.requestStats). */
    stats: () => Promise<GatewayRequestStats>
    log: Logger
    intervalMs?: number
  }) {
    this.#cluster = init.cluster
    this.#stats = init.stats
    this.#log = init.log
    this.#intervalMs = init.intervalMs ?? REPORT_INTERVAL_MS
  }

  /** Pushes now, then every interval, until {@link close}. */
  start(): void {
    clearInterval(this.#timer)
    this.#timer = setInterval(() => void this.push(), this.#intervalMs)
    this.#timer.unref()
    void this.push()
  }

  close(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** One push to every node; never rejects (a node that fails is tried again next time). */
  async push(): Promise<void> {
    let stats: GatewayRequestStats
    try {
      stats = await this.#stats()
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'request statistics not read')
      return
    }
    const nodes = this.#cluster.map.pools.flatMap((p) => p.nodes.map((n) => n.id))
    await Promise.all(
      nodes.map(async (id) => {
        if (this.#pending.has(id)) return
        this.#pending.add(id)
        try {
          await this.#cluster.peers.call(this.#cluster.peer(id), ReportGatewayStats, stats, {
            timeoutMs: REPORT_TIMEOUT_MS,
          })
        } catch (err) {
          // Down nodes are the cluster status's business: one line per failure at debug only.
          this.#log.debug(
            { node: id, err: (err as Error).message },
            'request statistics not delivered',
          )
        } finally {
          this.#pending.delete(id)
        }
      }),
    )
  }
}

/**
 * One gateway's snapshot as `GET /requests` answers it: the counters as the gateway reported
 * them (GatewayRequestStats), with its id and the times in ISO 8601.
 */
export type GatewayRequestsView = Omit<GatewayRequestStats, 'startedAt' | 'at'> & {
  /** The gateway's public id (its identity key, as the cluster map lists it). */
  id: string
  /** ISO 8601: when the gateway started (its counters count from then). */
  startedAt: string
  /** ISO 8601: when the gateway took the snapshot (its own clock). */
  at: string
}

export interface RequestsReport {
  /** ISO 8601: when this gateway put the answer together. */
  at: string
  gateways: GatewayRequestsView[]
}

/**
 * Each gateway's newest snapshot out of what the nodes answered (undefined: the node did not
 * answer), ordered by id. A gateway that stopped reporting leaves the nodes' answers after
 * their TTL (a minute), and so this one.
 */
export function mergeRequestStats(
  answers: Iterable<{ gateways: (GatewayRequestStats & { id: string })[] } | undefined>,
  now = Date.now(),
): RequestsReport {
  const newest = new Map<string, GatewayRequestStats & { id: string }>()
  for (const a of answers) {
    for (const g of a?.gateways ?? []) {
      const held = newest.get(g.id)
      if (held === undefined || newer(g, held)) newest.set(g.id, g)
    }
  }
  const gateways = [...newest.values()]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map(
      (g): GatewayRequestsView => ({
        id: g.id,
        startedAt: new Date(g.startedAt).toISOString(),
        at: new Date(g.at).toISOString(),
        requests: g.requests,
        durationSum: g.durationSum,
        durationCount: g.durationCount,
        buckets: g.buckets,
        errors: g.errors,
      }),
    )
  return { at: new Date(now).toISOString(), gateways }
}

/** A later run wins; within a run, the later snapshot. */
function newer(a: GatewayRequestStats, b: GatewayRequestStats): boolean {
  return a.startedAt !== b.startedAt ? a.startedAt > b.startedAt : a.at > b.at
}
