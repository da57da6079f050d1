/**
 * How busy the node is with client work: RPCs from gateways over the last second, counted in
 * ten buckets of 100 ms. The scanner sleeps longer while this is high, so client traffic keeps
 * priority over background checks. Calls from other nodes (healing, scanning) do not count, or
 * the scanners of a set would slow each other down; nor do status and statistics calls.
 */
import type { Handler, RpcDef, RpcServer } from '@tessera/protocol'

const BUCKETS = 10
const BUCKET_MS = 100

/**
 * Calls that are not client work: status polls and statistics (a console open on the Cluster
 * page, every gateway's request counters every 5 s) must not slow the scanners down.
 */
const NOT_LOAD: ReadonlySet<string> = new Set([
  'Health',
  'GetDriveInfo',
  'HealStatus',
  'ReportGatewayStats',
  'GatewayStats',
])

export class LoadMeter {
  readonly #clients: ReadonlySet<string>
  readonly #counts = new Array<number>(BUCKETS).fill(0)
  #at = 0

  /** `clients`: the public ids whose calls count (the map's gateways). */
  constructor(clients: Iterable<string>) {
    this.#clients = new Set(clients)
  }

  #advance(now: number): void {
    const slot = Math.floor(now / BUCKET_MS)
    if (this.#at === 0) this.#at = slot
    const steps = Math.min(BUCKETS, slot - this.#at)
    for (let i = 1; i <= steps; i++) this.#counts[(this.#at + i) % BUCKETS] = 0
    if (slot > this.#at) this.#at = slot
  }

  /** Counts one call from `remoteId` (ignored unless it is a client). */
  count(remoteId: string): void {
    if (!this.#clients.has(remoteId)) return
    this.#advance(Date.now())
    this.#counts[this.#at % BUCKETS]!++
  }

  /**
   * Wraps `rpc.handle` so that every handler registered from now on counts its calls. Call it
   * before the handlers are registered (it composes with other wrappers, such as metrics).
   */
  instrument(rpc: RpcServer): void {
    const handle = rpc.handle.bind(rpc)
    rpc.handle = <Req, Res>(def: RpcDef<Req, Res>, fn: Handler<Req, Res>): void => {
      if (NOT_LOAD.has(def.name)) {
        handle(def, fn)
        return
      }
      handle(def, (req, ctx) => {
        this.count(ctx.remoteId)
        return fn(req, ctx)
      })
    }
  }

  /** Client RPCs in the last second. */
  get perSecond(): number {
    this.#advance(Date.now())
    return this.#counts.reduce((a, b) => a + b, 0)
  }
}
