/**
 * The gateways' request counters, as they push them (ReportGatewayStats): the newest snapshot
 * of each gateway, in memory only, answered by GatewayStats so that any gateway's admin API can
 * show the whole cluster's S3 traffic. Gateways do not know each other; every one of them talks
 * to every node, so the nodes are where their figures meet.
 *
 * A snapshot is filed under the caller's authenticated public id (the Noise peer), never under
 * anything the payload says, and only when that id is one of the map's gateways: nodes call
 * each other too, and nothing else may add an entry. So the map holds at most one entry per
 * gateway of the map, and entries older than {@link GATEWAY_STATS_TTL_MS} are dropped.
 */
import {
  type GatewayRequestStats,
  GatewayStats,
  ReportGatewayStats,
  type RpcServer,
  StoreError,
} from '@tessera/protocol'

/** How long a gateway's last snapshot is kept: a gateway silent for this long is gone. */
export const GATEWAY_STATS_TTL_MS = 60_000

/** Most histogram buckets a snapshot may carry (the gateway sends 15). */
const MAX_BUCKETS = 64

interface Entry {
  stats: GatewayRequestStats
  /** performance.now() when it arrived: expiry runs on this node's own clock. */
  receivedAt: number
}

export class GatewayStatsStore {
  readonly #gateways: ReadonlySet<string>
  readonly #ttlMs: number
  readonly #entries = new Map<string, Entry>()

  /** `gateways`: the public ids allowed to report (the map's gateways). */
  constructor(gateways: Iterable<string>, opts: { ttlMs?: number } = {}) {
    this.#gateways = new Set(gateways)
    this.#ttlMs = opts.ttlMs ?? GATEWAY_STATS_TTL_MS
  }

  /**
   * Keeps `stats` as gateway `remoteId`'s newest snapshot. False (nothing kept) when the caller
   * is not one of the map's gateways or the snapshot is older than the one held.
   */
  report(remoteId: string, stats: GatewayRequestStats): boolean {
    if (!this.#gateways.has(remoteId)) return false
    const problem = checkStats(stats)
    if (problem !== undefined) {
      throw new StoreError('INVALID_REQUEST', `gateway request statistics: ${problem}`)
    }
    const now = performance.now()
    const held = this.#entries.get(remoteId)
    // Calls may overtake each other on different channels: an older snapshot never replaces a
    // newer one of the same run (while that one is still kept).
    if (
      held !== undefined &&
      now - held.receivedAt <= this.#ttlMs &&
      held.stats.startedAt === stats.startedAt &&
      held.stats.at > stats.at
    )
      return false
    this.#entries.set(remoteId, { stats: copyStats(stats), receivedAt: now })
    return true
  }

  /** Every gateway's newest snapshot received within the TTL. */
  list(): (GatewayRequestStats & { id: string })[] {
    const now = performance.now()
    const out: (GatewayRequestStats & { id: string })[] = []
    for (const [id, e] of this.#entries) {
      if (now - e.receivedAt > this.#ttlMs) this.#entries.delete(id)
      else out.push({ id, ...e.stats })
    }
    return out
  }
}

/** Serves ReportGatewayStats and GatewayStats from `store`. */
export function registerGatewayStatsRpcs(
  rpc: RpcServer,
  store: GatewayStatsStore,
  log: { debug(obj: object, msg?: string): void },
): void {
  rpc.handle(ReportGatewayStats, (req, ctx) => {
    const accepted = store.report(ctx.remoteId, req)
    if (!accepted) {
      log.debug(
        { remoteId: ctx.remoteId },
        'request statistics ignored: not a gateway of the map, or stale',
      )
    }
    return { accepted }
  })
  rpc.handle(GatewayStats, () => ({ gateways: store.list() }))
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0

/** What is wrong with a snapshot from the wire, or undefined. */
function checkStats(s: GatewayRequestStats): string | undefined {
  if (typeof s !== 'object' || s === null) return 'not an object'
  for (const f of ['startedAt', 'at', 'requests', 'durationSum', 'durationCount'] as const) {
    if (!count(s[f])) return `${f} is not a non-negative number`
  }
  if (typeof s.errors !== 'object' || s.errors === null) return 'errors is missing'
  if (!count(s.errors.client) || !count(s.errors.server)) {
    return 'errors.client and errors.server must be non-negative numbers'
  }
  if (!Array.isArray(s.buckets) || s.buckets.length > MAX_BUCKETS) {
    return `buckets must be an array of at most ${MAX_BUCKETS} [bound, count] pairs`
  }
  for (const b of s.buckets) {
    if (!Array.isArray(b) || b.length !== 2 || !count(b[0]) || !count(b[1])) {
      return 'a bucket is not a [bound, count] pair of non-negative numbers'
    }
  }
  return undefined
}

/** Only the known fields: whatever else a sender adds is not kept. */
function copyStats(s: GatewayRequestStats): GatewayRequestStats {
  return {
    startedAt: s.startedAt,
    at: s.at,
    requests: s.requests,
    durationSum: s.durationSum,
    durationCount: s.durationCount,
    buckets: s.buckets.map(([le, n]) => [le, n]),
    errors: { client: s.errors.client, server: s.errors.server },
  }
}
