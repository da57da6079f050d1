/* Design notes

Observability of a gateway (issue #7): Prometheus metrics on one prom-client Registry per
gateway (never the library's global one, so an embedded server or a test with several gateways
in one process keeps them apart, with Node's default process metrics on it too), and the
health endpoints a load balancer probes. All three answer on the S3 port, unauthenticated:
they tell counts, states and the cluster's shape (node ids, drive folders), never a bucket, a
key, a user or a secret. docs/metrics.md lists every metric.

Where the numbers come from:
- S3 requests: S3Api.handle() reports each request once, where it writes its access-log line
  (operation = the IAM action it was authorized as, status = the HTTP status sent).
- Failed calls to nodes: the gateway's Cluster is a MeteredCluster, which counts every call
  (call, callStream, and so every callAll) that fails, by node and store error code. Codes
  that are a node's answer rather than a failure (bucket not empty, no such upload, a call
  the gateway cancelled itself) are left out. Calls made on `cluster.peers` directly (admin
  status, the multi-pool free-space refresh) go around it; the drive probe below counts its own.
- Nodes and drives: a probe asks every node for GetDriveInfo (2 s deadline) every 10 s, and
  /_tessera/health/ready asks for a probe no older than 1 s. Both share the cached result and
  the probe in flight, so a load balancer probing every 100 ms still costs one GetDriveInfo per
  node per second. The drive gauges always show the last probe's answers.
- Healing: HealStatus every 10 s. A node that fails it (down, or a release that does not
  implement it and answers UNKNOWN_RPC) gives no heal data; that is not counted as an error.
- Codec pool and digest thread: read from them at scrape time.
*/
import type { DigestStats } from '@tessera/codec'
import {
  asStoreError,
  Cluster,
  type ClusterInit,
  type DriveHealState,
  type DriveInfo,
  type DriveRef,
  type DriveSlot,
  type GatewayRequestStats,
  GetDriveInfo,
  HealStatus,
  type RpcDef,
  StoreError,
} from '@tessera/protocol'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { Request, Response } from './http/server.ts'

/** Prometheus text of the gateway's registry. */
export const METRICS_PATH = '/_tessera/metrics'
/** 200 while the process serves HTTP. */
export const HEALTH_LIVE_PATH = '/_tessera/health/live'
/** 200 when every erasure set has its write quorum of drives online, else 503. */
export const HEALTH_READY_PATH = '/_tessera/health/ready'

/**
 * The operation the access log and S3Api give a request to the endpoints above; such requests
 * are left out of the S3 request metrics.
 */
export const OBSERVABILITY_ACTION = 'tessera:Observability'

/** S3 request duration buckets: 1 ms to 60 s. */
export const REQUEST_DURATION_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]
/** How often nodes are asked for their drives and heal state. */
export const SAMPLE_INTERVAL_MS = 10_000
/** How old a drive probe /health/ready may answer from. */
export const READY_CACHE_MS = 1_000
/** How long a probe waits for each node (dialling included). */
export const PROBE_TIMEOUT_MS = 2_000

/**
 * Store error codes that are a node's answer (or the gateway's own cancellation), not a failed
 * call: left out of tessera_rpc_errors_total.
 */
export const ANSWER_CODES: ReadonlySet<string> = new Set([
  'BUCKET_EXISTS',
  'BUCKET_NOT_EMPTY',
  'BUCKET_NOT_FOUND',
  'VERSION_NOT_FOUND',
  'UPLOAD_NOT_FOUND',
  'CANCELLED',
])

/** What the metrics read from the codec pool (CodecPool has these). */
export interface CodecPoolStats {
  readonly threads: number
  /** Tasks waiting for a worker. */
  readonly queueSize: number
  /** Worker-seconds with work since the pool started. */
  readonly busySeconds: number
}

export interface GatewayMetricsInit {
  /** Default {@link SAMPLE_INTERVAL_MS}. */
  sampleIntervalMs?: number
  /** Default {@link READY_CACHE_MS}. */
  readyCacheMs?: number
  /** Default {@link PROBE_TIMEOUT_MS}. */
  probeTimeoutMs?: number
}

/** One S3 request, as S3Api reports it. */
export interface RequestSample {
  /** The IAM action (`s3:GetObject`), or `admin`, `query`, `unknown`. */
  operation: string
  status: number
  bytesIn: number
  bytesOut: number
  seconds: number
}

/** The answers of one drive probe. */
export interface DriveProbe {
  /** performance.now() when it finished. */
  at: number
  /** Each node's drives, or undefined when it did not answer. */
  nodes: ReadonlyMap<string, readonly DriveInfo[] | undefined>
}

/** A set without its write quorum, as /health/ready names it. */
export interface SetWithoutQuorum {
  pool: number
  set: number
  drivesOnline: number
  writeQuorum: number
  /** The drives not reachable or not online, by node and slot. */
  offline: { node: string; slot: number }[]
}

export type Readiness =
  | { ready: true; body: { status: 'ready'; sets: number } }
  | {
      ready: false
      body: { status: 'not ready'; reason: string; sets: SetWithoutQuorum[] }
    }

type DriveLabel = 'node' | 'drive' | 'pool' | 'set'

/** A gateway's metrics registry, its node and drive probe, and its observability endpoints. */
export class GatewayMetrics {
  readonly registry = new Registry()
  /** Epoch ms when this registry (and so every counter in it) started from zero. */
  readonly startedAt = Date.now()
  #requests: Counter<'operation' | 'status'>
  #duration: Histogram<'operation'>
  #bytesIn: Counter
  #bytesOut: Counter
  #rpcErrors: Counter<'node' | 'code'>
  #nodeUp: Gauge<'node'>
  #driveOnline: Gauge<DriveLabel>
  #driveTotal: Gauge<DriveLabel>
  #driveFree: Gauge<DriveLabel>
  #driveUsed: Gauge<DriveLabel>
  #healQueue: Gauge<DriveLabel>
  #healHealed: Counter<DriveLabel>
  #healFailed: Counter<DriveLabel>
  #healRate: Gauge<DriveLabel>
  #interval: number
  #readyCacheMs: number
  #timeoutMs: number
  #cluster: Cluster | undefined
  #codec: CodecPoolStats | undefined
  #healReports: { readonly pending: number } | undefined
  #readBuffers: (() => { outBytes: number; freeBytes: number }) | undefined
  #digests: (() => DigestStats) | undefined
  #hedges: (() => number) | undefined
  /** Busy worker-seconds at the last utilization reading, and the value then. */
  #util = { at: performance.now(), busy: 0, value: 0 }
  #last: DriveProbe | undefined
  #probing: Promise<DriveProbe> | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(init: GatewayMetricsInit = {}) {
    this.#interval = init.sampleIntervalMs ?? SAMPLE_INTERVAL_MS
    this.#readyCacheMs = init.readyCacheMs ?? READY_CACHE_MS
    this.#timeoutMs = init.probeTimeoutMs ?? PROBE_TIMEOUT_MS
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.#requests = new Counter({
      name: 'tessera_s3_requests_total',
      help: 'S3, IAM/STS and admin requests answered, by operation (IAM action) and HTTP status.',
      labelNames: ['operation', 'status'],
      registers,
    })
    this.#duration = new Histogram({
      name: 'tessera_s3_request_duration_seconds',
      help: 'Time from receiving a request to its last byte sent, by operation.',
      labelNames: ['operation'],
      buckets: REQUEST_DURATION_BUCKETS_SECONDS,
      registers,
    })
    this.#bytesIn = new Counter({
      name: 'tessera_s3_bytes_received_total',
      help: 'Request body bytes received from S3 clients.',
      registers,
    })
    this.#bytesOut = new Counter({
      name: 'tessera_s3_bytes_sent_total',
      help: 'Response body bytes sent to S3 clients.',
      registers,
    })
    this.#rpcErrors = new Counter({
      name: 'tessera_rpc_errors_total',
      help: 'Failed calls from this gateway to a node, by node and store error code.',
      labelNames: ['node', 'code'],
      registers,
    })
    // A scrape right after start waits for the first probe rather than showing no drives.
    const firstProbe = async (): Promise<void> => {
      if (this.#cluster !== undefined && this.#last === undefined) await this.probe(this.#interval)
    }
    this.#nodeUp = new Gauge({
      name: 'tessera_node_up',
      help: 'Whether the node answered the last drive probe (1) or not (0).',
      labelNames: ['node'],
      registers,
      collect: firstProbe,
    })
    const drive = (name: string, help: string, probed = true) =>
      new Gauge<DriveLabel>({
        name,
        help,
        labelNames: ['node', 'drive', 'pool', 'set'],
        registers,
        ...(probed ? { collect: firstProbe } : {}),
      })
    this.#driveOnline = drive(
      'tessera_drive_online',
      'Whether the drive is reachable and online (1) or not (0).',
    )
    this.#driveTotal = drive(
      'tessera_drive_total_bytes',
      'Size of the file system holding the drive.',
    )
    this.#driveFree = drive(
      'tessera_drive_free_bytes',
      'Bytes free on the file system holding the drive.',
    )
    this.#driveUsed = drive(
      'tessera_drive_used_bytes',
      'Bytes used on the file system holding the drive.',
    )
    this.#healQueue = drive('tessera_heal_queue', 'Repairs waiting on the drive.', false)
    this.#healRate = drive(
      'tessera_heal_bytes_per_second',
      "Shard bytes written by repairs on the drive per second (the node's moving average).",
      false,
    )
    this.#healHealed = new Counter<DriveLabel>({
      name: 'tessera_heal_healed_total',
      help: 'Object versions repaired on the drive since its node started.',
      labelNames: ['node', 'drive', 'pool', 'set'],
      registers,
    })
    this.#healFailed = new Counter<DriveLabel>({
      name: 'tessera_heal_failed_total',
      help: 'Object versions that failed to be repaired on the drive since its node started.',
      labelNames: ['node', 'drive', 'pool', 'set'],
      registers,
    })
    gaugeAtScrape(
      registers,
      'tessera_codec_pool_threads',
      'Worker threads of the erasure codec pool.',
      () => this.#codec?.threads ?? 0,
    )
    gaugeAtScrape(
      registers,
      'tessera_codec_pool_queue_size',
      'Codec tasks (encode, decode, hash) waiting for a worker.',
      () => this.#codec?.queueSize ?? 0,
    )
    counterAtScrape(
      registers,
      'tessera_codec_pool_busy_seconds_total',
      'Worker-seconds the codec pool has had work since the gateway started.',
      () => this.#codec?.busySeconds ?? 0,
    )
    gaugeAtScrape(
      registers,
      'tessera_heal_reports_pending',
      'Repairs this gateway holds for nodes that could not take them yet (missed writes, bad ' +
        'shards found by reads); sent again with back-off for 10 minutes.',
      () => this.#healReports?.pending ?? 0,
    )
    counterAtScrape(
      registers,
      'tessera_read_hedges_total',
      'Version lookups (GET, HEAD, copies) that asked every drive of the set because the first ' +
        'had not all answered within 250 ms: a node that went silent, or drives this slow.',
      () => this.#hedges?.() ?? 0,
    )
    const buffers: Gauge<'state'> = new Gauge({
      name: 'tessera_read_buffer_bytes',
      help:
        'Bytes of the pooled buffers GETs receive shard data in: "lent" to reads in progress, ' +
        '"free" kept for the next ones.',
      labelNames: ['state'],
      registers,
      collect: () => {
        const st = this.#readBuffers?.()
        buffers.set({ state: 'lent' }, st?.outBytes ?? 0)
        buffers.set({ state: 'free' }, st?.freeBytes ?? 0)
      },
    })
    gaugeAtScrape(
      registers,
      'tessera_digest_backlog_bytes',
      'Bytes of request bodies copied to the digest thread (MD5, SHA-256 of bodies of 1 MiB ' +
        'and more) and not yet hashed; at most its 8 MiB ring.',
      () => this.#digests?.().backlogBytes ?? 0,
    )
    gaugeAtScrape(
      registers,
      'tessera_digest_waiting_pieces',
      'Body pieces waiting for room in the digest thread’s ring: bodies it slows down.',
      () => this.#digests?.().waiting ?? 0,
    )
    counterAtScrape(
      registers,
      'tessera_digest_bytes_total',
      'Bytes of request bodies hashed on the digest thread since the gateway started.',
      () => this.#digests?.().bytes ?? 0,
    )
    counterAtScrape(
      registers,
      'tessera_digest_waits_total',
      'Times a body waited for the digest thread to catch up since the gateway started: ' +
        'its rate is how often MD5 limits large PUTs.',
      () => this.#digests?.().waits ?? 0,
    )
    gaugeAtScrape(
      registers,
      'tessera_codec_pool_utilization',
      "Fraction of the codec workers' time with work (0..1) since the previous scrape.",
      () => this.#utilization(),
    )
  }

  /**
   * Starts watching `cluster` (probing its nodes now and every sample interval) and `codec`.
   * The S3 request metrics work without it; the node, drive and heal figures and readiness
   * need it.
   */
  watch(init: {
    cluster: Cluster
    codec?: CodecPoolStats
    healReports?: { readonly pending: number }
    readBuffers?: () => { outBytes: number; freeBytes: number }
    digests?: () => DigestStats
    hedges?: () => number
  }): void {
    this.#cluster = init.cluster
    if (init.healReports) this.#healReports = init.healReports
    if (init.digests) this.#digests = init.digests
    if (init.readBuffers) this.#readBuffers = init.readBuffers
    if (init.hedges) this.#hedges = init.hedges
    if (init.codec) {
      this.#codec = init.codec
      this.#util = { at: performance.now(), busy: init.codec.busySeconds, value: 0 }
    }
    clearInterval(this.#timer)
    this.#timer = setInterval(() => void this.#sample(), this.#interval)
    this.#timer.unref()
    void this.#sample()
  }

  /** Stops probing. */
  close(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Counts one request (not the observability endpoints' own). */
  observeRequest(r: RequestSample): void {
    if (r.operation === OBSERVABILITY_ACTION) return
    this.#requests.inc({ operation: r.operation, status: String(r.status) })
    this.#duration.observe({ operation: r.operation }, r.seconds)
    if (r.bytesIn > 0) this.#bytesIn.inc(r.bytesIn)
    if (r.bytesOut > 0) this.#bytesOut.inc(r.bytesOut)
  }

  /**
   * The S3 request counters summed over their labels, for the whole-cluster figures the nodes
   * collect (see admin/request-stats.ts): the same numbers a scrape of this registry shows.
   */
  async requestStats(): Promise<GatewayRequestStats> {
    const at = Date.now()
    const [requests, duration] = await Promise.all([this.#requests.get(), this.#duration.get()])
    const stats: GatewayRequestStats = {
      startedAt: this.startedAt,
      at,
      requests: 0,
      durationSum: 0,
      durationCount: 0,
      buckets: [],
      errors: { client: 0, server: 0 },
    }
    for (const v of requests.values) {
      stats.requests += v.value
      const status = Number(v.labels.status)
      if (status >= 500) stats.errors.server += v.value
      else if (status >= 400) stats.errors.client += v.value
    }
    const buckets = new Map<number, number>(REQUEST_DURATION_BUCKETS_SECONDS.map((b) => [b, 0]))
    for (const v of duration.values) {
      if (v.metricName?.endsWith('_sum')) stats.durationSum += v.value
      else if (v.metricName?.endsWith('_count')) stats.durationCount += v.value
      else if (v.metricName?.endsWith('_bucket')) {
        // The bucket series carry an `le` label the histogram's own label type does not name.
        const le = Number((v.labels as Record<string, string | number | undefined>).le)
        if (buckets.has(le)) buckets.set(le, (buckets.get(le) ?? 0) + v.value)
      }
    }
    stats.buckets = [...buckets]
    return stats
  }

  /** Counts a failed call to node `nodeId`, unless its code is one of {@link ANSWER_CODES}. */
  rpcFailed(nodeId: string, err: unknown): void {
    const code = asStoreError(err).code
    if (ANSWER_CODES.has(code)) return
    this.#rpcErrors.inc({ node: nodeId, code })
  }

  /**
   * Every node's drives, from a probe at most `maxAgeMs` old: the cached one, the one in
   * flight, or a new one. Never rejects; a node that fails is undefined in the result.
   */
  probe(maxAgeMs: number): Promise<DriveProbe> {
    const last = this.#last
    if (last !== undefined && performance.now() - last.at <= maxAgeMs) return Promise.resolve(last)
    this.#probing ??= this.#runProbe().finally(() => {
      this.#probing = undefined
    })
    return this.#probing
  }

  /** Whether every erasure set has its write quorum of drives reachable and online. */
  async readiness(): Promise<Readiness> {
    const cluster = this.#cluster
    if (cluster === undefined) {
      return { ready: false, body: { status: 'not ready', reason: 'starting', sets: [] } }
    }
    const probe = await this.probe(this.#readyCacheMs)
    const online = onlineDrives(probe)
    const lacking: SetWithoutQuorum[] = []
    for (const set of cluster.sets) {
      const offline = set.drives.filter((d) => !online.has(driveKey(d.nodeId, d)))
      const drivesOnline = set.drives.length - offline.length
      if (drivesOnline < cluster.writeQuorum) {
        lacking.push({
          pool: set.pool,
          set: set.index,
          drivesOnline,
          writeQuorum: cluster.writeQuorum,
          offline: offline.map((d) => ({ node: d.nodeId, slot: d.slot })),
        })
      }
    }
    if (lacking.length === 0) {
      return { ready: true, body: { status: 'ready', sets: cluster.sets.length } }
    }
    return {
      ready: false,
      body: {
        status: 'not ready',
        reason: 'erasure sets without their write quorum of online drives',
        sets: lacking,
      },
    }
  }

  /** Whether `rawPath` is one of the endpoints {@link serve} answers. */
  serves(rawPath: string): boolean {
    return rawPath === METRICS_PATH || rawPath === HEALTH_LIVE_PATH || rawPath === HEALTH_READY_PATH
  }

  /** Answers GET or HEAD of {@link METRICS_PATH}, {@link HEALTH_LIVE_PATH}, {@link HEALTH_READY_PATH}. */
  async serve(req: Request, res: Response): Promise<void> {
    res.header('Cache-Control', 'no-store')
    const send = (status: number, type: string, body: string) => {
      res.status(status).header('Content-Type', type)
      if (req.method === 'HEAD') res.endWithoutBody(Buffer.byteLength(body))
      else res.end(body)
    }
    const json = (status: number, body: object) =>
      send(status, 'application/json', JSON.stringify(body))
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.body.discard()
      res.header('Allow', 'GET, HEAD')
      json(405, { status: 'error', reason: `${req.method} is not allowed here; use GET` })
      return
    }
    if (req.rawPath === HEALTH_LIVE_PATH) json(200, { status: 'live' })
    else if (req.rawPath === HEALTH_READY_PATH) {
      const r = await this.readiness()
      json(r.ready ? 200 : 503, r.body)
    } else send(200, this.registry.contentType, await this.registry.metrics())
  }

  #utilization(): number {
    const c = this.#codec
    if (c === undefined) return 0
    const now = performance.now()
    const seconds = (now - this.#util.at) / 1000
    // Closer scrapes than a second keep the last reading rather than a noisy one.
    if (seconds >= 1) {
      const busy = c.busySeconds
      const value = Math.min(1, Math.max(0, (busy - this.#util.busy) / (seconds * c.threads)))
      this.#util = { at: now, busy, value }
    }
    return this.#util.value
  }

  async #sample(): Promise<void> {
    await Promise.all([this.probe(this.#interval / 2), this.#sampleHeal()])
  }

  async #runProbe(): Promise<DriveProbe> {
    const cluster = this.#cluster
    const nodes = new Map<string, readonly DriveInfo[] | undefined>()
    if (cluster !== undefined) {
      await Promise.all(
        nodeIds(cluster).map(async (id) => {
          try {
            nodes.set(id, (await this.#ask(cluster, id, GetDriveInfo)).drives)
          } catch (err) {
            nodes.set(id, undefined)
            this.rpcFailed(id, err)
          }
        }),
      )
      this.#publishDrives(cluster, nodes)
    }
    const probe: DriveProbe = { at: performance.now(), nodes }
    this.#last = probe
    return probe
  }

  #publishDrives(cluster: Cluster, nodes: ReadonlyMap<string, readonly DriveInfo[] | undefined>) {
    const info = new Map<string, DriveInfo>()
    for (const [id, drives] of nodes) for (const d of drives ?? []) info.set(driveKey(id, d), d)
    // Reset and set in one synchronous run: a scrape never sees half a probe.
    this.#nodeUp.reset()
    for (const g of [this.#driveOnline, this.#driveTotal, this.#driveFree, this.#driveUsed]) {
      g.reset()
    }
    for (const [id, drives] of nodes) this.#nodeUp.set({ node: id }, drives === undefined ? 0 : 1)
    for (const slot of cluster.drives) {
      const labels = driveLabels(slot.nodeId, slot.path, slot)
      const d = info.get(driveKey(slot.nodeId, slot))
      const online = d?.online === true
      this.#driveOnline.set(labels, online ? 1 : 0)
      if (d === undefined || !online) continue
      this.#driveTotal.set(labels, d.totalBytes)
      this.#driveFree.set(labels, d.freeBytes)
      this.#driveUsed.set(labels, d.usedBytes)
    }
  }

  async #sampleHeal(): Promise<void> {
    const cluster = this.#cluster
    if (cluster === undefined) return
    const states: { node: string; d: DriveHealState }[] = []
    await Promise.all(
      nodeIds(cluster).map(async (id) => {
        try {
          for (const d of (await this.#ask(cluster, id, HealStatus)).drives) {
            states.push({ node: id, d })
          }
        } catch {
          // No heal data from this node: down, or a release without HealStatus.
        }
      }),
    )
    this.#healQueue.reset()
    this.#healRate.reset()
    this.#healHealed.reset()
    this.#healFailed.reset()
    for (const { node, d } of states) {
      const labels = driveLabels(node, d.path, d)
      this.#healQueue.set(labels, d.queued)
      this.#healRate.set(labels, d.bytesPerSec)
      this.#healHealed.inc(labels, d.healed)
      this.#healFailed.inc(labels, d.failed)
    }
  }

  async #ask<Res>(
    cluster: Cluster,
    nodeId: string,
    def: RpcDef<Record<string, never>, Res>,
  ): Promise<Res> {
    const call = cluster.peers.call(cluster.peer(nodeId), def, {}, { timeoutMs: this.#timeoutMs })
    return withDeadline(call, this.#timeoutMs, `node ${nodeId} (${def.name})`)
  }
}

/**
 * The gateway's Cluster, counting every failed call to a node in `metrics`
 * (tessera_rpc_errors_total). Protocol's Cluster reports nothing itself; every caller of call,
 * callStream and callAll goes through here.
 */
export class MeteredCluster extends Cluster {
  #metrics: GatewayMetrics

  constructor(init: ClusterInit, metrics: GatewayMetrics) {
    super(init)
    this.#metrics = metrics
  }

  override async call<Req extends DriveRef, Res>(
    drive: DriveSlot,
    def: RpcDef<Req, Res>,
    req: Omit<Req, keyof DriveRef>,
    opts: { body?: AsyncIterable<Uint8Array>; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<Res> {
    try {
      return await super.call(drive, def, req, opts)
    } catch (err) {
      this.#metrics.rpcFailed(drive.nodeId, err)
      throw err
    }
  }

  override async callStream<Req extends DriveRef, Res>(
    drive: DriveSlot,
    def: RpcDef<Req, Res>,
    req: Omit<Req, keyof DriveRef>,
    opts: { signal?: AbortSignal } = {},
  ): Promise<{ res: Res; body: AsyncIterable<Uint8Array> }> {
    try {
      return await super.callStream(drive, def, req, opts)
    } catch (err) {
      this.#metrics.rpcFailed(drive.nodeId, err)
      throw err
    }
  }
}

function nodeIds(cluster: Cluster): string[] {
  return cluster.map.pools.flatMap((p) => p.nodes.map((n) => n.id))
}

/** A drive as answered by (or expected from) node `nodeId`. */
function driveKey(nodeId: string, d: DriveRef): string {
  return `${nodeId}|${d.pool}/${d.set}/${d.slot}`
}

function driveLabels(node: string, path: string, d: DriveRef): Record<DriveLabel, string> {
  return { node, drive: path, pool: String(d.pool), set: String(d.set) }
}

function onlineDrives(probe: DriveProbe): Set<string> {
  const out = new Set<string>()
  for (const [id, drives] of probe.nodes) {
    for (const d of drives ?? []) if (d.online) out.add(driveKey(id, d))
  }
  return out
}

/** `p`, or DEADLINE_EXCEEDED after `ms` (a dial can take longer than the call's own deadline). */
function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StoreError('DEADLINE_EXCEEDED', `${what} did not answer within ${ms} ms`)),
      ms,
    )
  })
  // The loser settles later; its rejection is expected.
  p.catch(() => {})
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

/** A gauge whose value is read from `read` at each scrape. */
function gaugeAtScrape(
  registers: Registry[],
  name: string,
  help: string,
  read: () => number,
): void {
  const g: Gauge = new Gauge({
    name,
    help,
    registers,
    collect: () => {
      g.set(read())
    },
  })
}

/** A counter whose total (kept elsewhere, never decreasing) is read from `read` at each scrape. */
function counterAtScrape(
  registers: Registry[],
  name: string,
  help: string,
  read: () => number,
): void {
  const c: Counter = new Counter({
    name,
    help,
    registers,
    collect: () => {
      c.reset()
      c.inc(read())
    },
  })
}
