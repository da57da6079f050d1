/* Design notes

Observability of a storage node (issue #7): Prometheus metrics on one prom-client Registry (not
the library's global one; Node's default process metrics on it too), served with the health
endpoints by a small node:http server when the config sets `metricsListen` (off by default: the
RPC port is the cluster's, and this one should stay on a private or loopback address).

- RPCs: `instrument(rpc)` wraps `RpcServer.handle` before any handler is registered, so every
  handler, including those added later (healing, lifecycle), is counted by RPC name and outcome
  (`ok` or the store error code) and timed. A call that answers with a body (ReadShard,
  ReadRaw) is timed until its body has been sent; one whose body was not read to the end counts
  as CANCELLED.
- Drives and healing: at scrape time, from the very handlers that answer GetDriveInfo and
  HealStatus (kept by `instrument`), called in-process, so the figures are the ones the
  gateways see. No HealStatus handler registered, or one that fails: no heal figures. One
  reading serves every gauge of a scrape (and readiness) for a second.
*/
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import {
  type CallContext,
  type DriveHealState,
  type DriveInfo,
  type DriveRef,
  GetDriveInfo,
  type Handler,
  HealStatus,
  type RpcDef,
  type RpcServer,
  StoreError,
  toStoreError,
  type WithBody,
  withBody,
} from '@tessera/protocol'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** RPC duration buckets: 0.5 ms to 60 s (a streamed shard of a slow client takes long). */
export const RPC_DURATION_BUCKETS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]
/** How long one reading of the drives and heal state serves scrapes and readiness. */
export const SAMPLE_CACHE_MS = 1_000

/** The paths of the metrics server. */
export const NODE_METRICS_PATH = '/metrics'
export const NODE_HEALTH_LIVE_PATH = '/health/live'
export const NODE_HEALTH_READY_PATH = '/health/ready'

export interface NodeMetricsInit {
  /** This node's id in the map (the `node` label of the drive gauges). */
  nodeId: string
}

export interface NodeReadiness {
  ready: boolean
  body: { status: 'ready' | 'not ready'; reason?: string; drives: number; drivesOnline: number }
}

interface Sample {
  at: number
  drives: readonly DriveInfo[] | undefined
  heal: readonly DriveHealState[] | undefined
}

type DriveLabel = 'node' | 'drive' | 'pool' | 'set'
type LocalHandler = (req: Record<string, never>, ctx: CallContext) => unknown

/** The context of an in-process call to a handler: no body, never cancelled. */
const LOCAL_CALL: CallContext = {
  body: {
    [Symbol.asyncIterator]: () => ({ next: async () => ({ value: undefined, done: true }) }),
  },
  signal: new AbortController().signal,
  remoteId: 'metrics',
}

/** A node's metrics registry. */
export class NodeMetrics {
  readonly registry = new Registry()
  readonly nodeId: string
  #rpcTotal: Counter<'rpc' | 'outcome'>
  #rpcDuration: Histogram<'rpc'>
  /** The GetDriveInfo and HealStatus handlers, by RPC id. */
  #local = new Map<number, LocalHandler>()
  #serving = false
  #last: Sample | undefined
  #sampling: Promise<Sample> | undefined
  #directWrites: (() => { allocatedBytes: number; lentBytes: number }) | undefined

  constructor(init: NodeMetricsInit) {
    this.nodeId = init.nodeId
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.#rpcTotal = new Counter({
      name: 'tessera_node_rpc_total',
      help: 'RPCs served, by RPC name and outcome (ok, or the store error code).',
      labelNames: ['rpc', 'outcome'],
      registers,
    })
    this.#rpcDuration = new Histogram({
      name: 'tessera_node_rpc_duration_seconds',
      help: "Time from an RPC's request to its answer (to the end of its body, if it has one).",
      labelNames: ['rpc'],
      buckets: RPC_DURATION_BUCKETS_SECONDS,
      registers,
    })
    const labels = (path: string, d: DriveRef): Record<DriveLabel, string> => ({
      node: this.nodeId,
      drive: path,
      pool: String(d.pool),
      set: String(d.set),
    })
    const labelNames: DriveLabel[] = ['node', 'drive', 'pool', 'set']
    /** A gauge or counter per drive, read from the sample (`from`) when scraped. */
    const perDrive = <T extends DriveRef & { path: string }>(
      kind: 'gauge' | 'counter',
      name: string,
      help: string,
      from: (s: Sample) => readonly T[] | undefined,
      value: (d: T) => number | undefined,
    ) => {
      const collect = async (m: Gauge<DriveLabel> | Counter<DriveLabel>) => {
        const s = await this.#sample()
        m.reset()
        for (const d of from(s) ?? []) {
          const v = value(d)
          if (v === undefined) continue
          if (m instanceof Gauge) m.set(labels(d.path, d), v)
          else m.inc(labels(d.path, d), v)
        }
      }
      if (kind === 'gauge') {
        const g: Gauge<DriveLabel> = new Gauge({
          name,
          help,
          labelNames,
          registers,
          collect: () => collect(g),
        })
      } else {
        const c: Counter<DriveLabel> = new Counter({
          name,
          help,
          labelNames,
          registers,
          collect: () => collect(c),
        })
      }
    }
    const driveGauge = (
      name: string,
      help: string,
      value: (d: DriveInfo) => number | undefined,
      kind: 'gauge' | 'counter' = 'gauge',
    ) => perDrive(kind, name, help, (s) => s.drives, value)
    driveGauge(
      'tessera_meta_sync_lookups_total',
      "Metadata point lookups made on the node's event loop.",
      (d) => d.metaLookups?.sync,
      'counter',
    )
    driveGauge(
      'tessera_meta_async_lookups_total',
      'Metadata point lookups made through the thread pool, in the seconds after a slow one.',
      (d) => d.metaLookups?.async,
      'counter',
    )
    driveGauge(
      'tessera_meta_slow_lookups_total',
      'Metadata point lookups on the event loop that read from the disk (slower than 2 ms): each moves lookups to the thread pool for 10 s.',
      (d) => d.metaLookups?.slow,
      'counter',
    )
    driveGauge(
      'tessera_drive_online',
      'Whether the drive is reachable and online (1) or not (0).',
      (d) => (d.online ? 1 : 0),
    )
    driveGauge('tessera_drive_total_bytes', 'Size of the file system holding the drive.', (d) =>
      d.online ? d.totalBytes : undefined,
    )
    driveGauge(
      'tessera_drive_free_bytes',
      'Bytes free on the file system holding the drive.',
      (d) => (d.online ? d.freeBytes : undefined),
    )
    driveGauge(
      'tessera_drive_direct_io',
      "Whether the node writes the drive's shard files with O_DIRECT (1) or through the page cache (0).",
      (d) => (d.online && d.directIo !== undefined ? (d.directIo ? 1 : 0) : undefined),
    )
    const slabs: Gauge<'state'> = new Gauge({
      name: 'tessera_direct_write_buffer_bytes',
      help:
        'Bytes of the aligned buffers direct (O_DIRECT) shard writes go through: "allocated" so ' +
        'far, and "lent" to writes in progress.',
      labelNames: ['state'],
      registers,
      collect: () => {
        const st = this.#directWrites?.()
        slabs.set({ state: 'allocated' }, st?.allocatedBytes ?? 0)
        slabs.set({ state: 'lent' }, st?.lentBytes ?? 0)
      },
    })
    driveGauge(
      'tessera_drive_used_bytes',
      'Bytes used on the file system holding the drive.',
      (d) => (d.online ? d.usedBytes : undefined),
    )
    const healMetric = (
      kind: 'gauge' | 'counter',
      name: string,
      help: string,
      value: (d: DriveHealState) => number,
    ) => perDrive(kind, name, help, (s) => s.heal, value)
    healMetric('gauge', 'tessera_heal_queue', 'Repairs waiting on the drive.', (d) => d.queued)
    healMetric(
      'gauge',
      'tessera_heal_bytes_per_second',
      "Shard bytes written by repairs on the drive per second (the node's moving average).",
      (d) => d.bytesPerSec,
    )
    healMetric(
      'counter',
      'tessera_heal_healed_total',
      'Object versions repaired on the drive since its node started.',
      (d) => d.healed,
    )
    healMetric(
      'counter',
      'tessera_heal_failed_total',
      'Object versions that failed to be repaired on the drive since its node started.',
      (d) => d.failed,
    )
  }

  /**
   * Counts and times every handler registered on `rpc` from now on, and keeps the GetDriveInfo
   * and HealStatus handlers to read drive and heal figures from. Call before registering.
   */
  instrument(rpc: RpcServer): void {
    const handle = rpc.handle.bind(rpc)
    rpc.handle = <Req, Res>(def: RpcDef<Req, Res>, fn: Handler<Req, Res>): void => {
      if (def.id === GetDriveInfo.id || def.id === HealStatus.id) {
        this.#local.set(def.id, fn as unknown as LocalHandler)
      }
      handle(def, this.#timed(def, fn))
    }
  }

  /** Reads the figures of `tessera_direct_write_buffer_bytes` from `stats` at each scrape. */
  watchDirectWrites(stats: () => { allocatedBytes: number; lentBytes: number }): void {
    this.#directWrites = stats
  }

  /** From now on, readiness may say ready (the node listens for RPCs). */
  markServing(): void {
    this.#serving = true
  }

  /** Ready when the node serves RPCs and at least one of its drives is online. */
  async readiness(): Promise<NodeReadiness> {
    if (!this.#serving) {
      return {
        ready: false,
        body: { status: 'not ready', reason: 'starting', drives: 0, drivesOnline: 0 },
      }
    }
    const drives = (await this.#sample()).drives ?? []
    const drivesOnline = drives.filter((d) => d.online).length
    return drivesOnline > 0
      ? { ready: true, body: { status: 'ready', drives: drives.length, drivesOnline } }
      : {
          ready: false,
          body: {
            status: 'not ready',
            reason: 'no drive online',
            drives: drives.length,
            drivesOnline,
          },
        }
  }

  #timed<Req, Res>(def: RpcDef<Req, Res>, fn: Handler<Req, Res>): Handler<Req, Res> {
    const rpc = def.name
    return async (req, ctx) => {
      const started = performance.now()
      const end = (err?: unknown): void => {
        this.#rpcTotal.inc({ rpc, outcome: err === undefined ? 'ok' : toStoreError(err).code })
        this.#rpcDuration.observe({ rpc }, (performance.now() - started) / 1000)
      }
      let out: Res | WithBody<Res>
      try {
        out = await fn(req, ctx)
      } catch (err) {
        end(err)
        throw err
      }
      if (def.responseBody && typeof out === 'object' && out !== null && 'body' in out) {
        const w = out as WithBody<Res>
        return withBody(w.res, timedBody(w.body, end))
      }
      end()
      return out
    }
  }

  /** The drives and heal state, read at most once a second. */
  #sample(): Promise<Sample> {
    const last = this.#last
    if (last !== undefined && performance.now() - last.at <= SAMPLE_CACHE_MS) {
      return Promise.resolve(last)
    }
    this.#sampling ??= this.#read().finally(() => {
      this.#sampling = undefined
    })
    return this.#sampling
  }

  async #read(): Promise<Sample> {
    const call = async <T>(id: number): Promise<T | undefined> => {
      const fn = this.#local.get(id)
      if (fn === undefined) return undefined
      try {
        return (await fn({}, LOCAL_CALL)) as T
      } catch {
        return undefined
      }
    }
    const [info, heal] = await Promise.all([
      call<{ drives: DriveInfo[] }>(GetDriveInfo.id),
      call<{ drives: DriveHealState[] }>(HealStatus.id),
    ])
    const s: Sample = { at: performance.now(), drives: info?.drives, heal: heal?.drives }
    this.#last = s
    return s
  }
}

/** Passes `body` through, then reports how it ended (CANCELLED when not read to the end). */
async function* timedBody(
  body: AsyncIterable<Uint8Array>,
  end: (err?: unknown) => void,
): AsyncGenerator<Uint8Array> {
  let err: unknown = new StoreError('CANCELLED', 'the body was not read to its end')
  try {
    yield* body
    err = undefined
  } catch (e) {
    err = e
    throw e
  } finally {
    end(err)
  }
}

export interface MetricsServerInit {
  host: string
  /** 0 picks a free port. */
  port: number
  metrics: NodeMetrics
}

export interface MetricsServer {
  readonly address: { host: string; port: number }
  close(): Promise<void>
}

/**
 * Serves GET (or HEAD) /metrics (Prometheus text), /health/live (200 while the process runs)
 * and /health/ready (200 when the node serves RPCs with a drive online, else 503).
 */
export async function listenMetrics(init: MetricsServerInit): Promise<MetricsServer> {
  const { metrics } = init
  const server = createServer((req, res) => {
    answer(metrics, req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' })
      res.end(`metrics failed: ${(err as Error).message}\n`)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(init.port, init.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const a = server.address()
  if (a === null || typeof a === 'string') throw new Error('the metrics server is not listening')
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

async function answer(m: NodeMetrics, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]
  const send = (status: number, type: string, body: string, extra: Record<string, string> = {}) => {
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
      ...extra,
    })
    res.end(req.method === 'HEAD' ? undefined : body)
  }
  const json = (status: number, body: object, extra?: Record<string, string>) =>
    send(status, 'application/json', JSON.stringify(body), extra)
  if (
    path !== NODE_METRICS_PATH &&
    path !== NODE_HEALTH_LIVE_PATH &&
    path !== NODE_HEALTH_READY_PATH
  ) {
    json(404, { status: 'error', reason: 'not found' })
    return
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    json(
      405,
      { status: 'error', reason: `${req.method} is not allowed; use GET` },
      { Allow: 'GET, HEAD' },
    )
    return
  }
  if (path === NODE_HEALTH_LIVE_PATH) json(200, { status: 'live' })
  else if (path === NODE_HEALTH_READY_PATH) {
    const r = await m.readiness()
    json(r.ready ? 200 : 503, r.body)
  } else send(200, m.registry.contentType, await m.registry.metrics())
}
