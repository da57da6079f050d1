/**
 * A gateway: connections to the cluster's nodes, the object and bucket stores over them, and
 * the S3 API on a uWS server. Keeps no state of its own (caches only).
 */
import { CodecPool, DigestThread, InlineCodec } from '@tessera/codec'
import type { ClusterMap, Identity } from '@tessera/protocol'
import { ClusterAdmin } from './admin/cluster-admin.ts'
import { RequestStatsReporter } from './admin/request-stats.ts'
import { Capabilities } from './console/capabilities.ts'
import {
  type ConsoleAbsence,
  ConsoleAssets,
  defaultConsoleDir,
  isConsolePath,
  serveNoConsole,
} from './console/serve.ts'
import { type HttpServer, listenHttp } from './http/server.ts'
import { type AuthLimits, ClusterAccess } from './iam/cluster-access.ts'
import { Sealer } from './iam/crypto.ts'
import { Iam } from './iam/iam.ts'
import { IamStore } from './iam/store.ts'
import { GatewayMetrics, MeteredCluster } from './metrics.ts'
import { S3Api } from './s3/api.ts'
import type { Logger } from './s3/context.ts'
import { BucketStore } from './store/buckets.ts'
import type { Cluster } from './store/cluster.ts'
import { HealReporter } from './store/heal-reporter.ts'
import { MultipartStore } from './store/multipart.ts'
import { ObjectStore } from './store/object-store.ts'

export interface GatewayInit {
  map: ClusterMap
  mapHash: string
  identity: Identity
  host?: string
  /** S3 port; 0 picks a free one. */
  port: number
  region: string
  domain?: string
  /** The root credential: the account owner's break-glass key, from the config. */
  root: { accessKeyId: string; secretAccessKey: string }
  /** The cluster master key (32 bytes) that seals stored secrets and session tokens. */
  masterKey: Buffer
  /** Failed-authentication limits; defaults in DEFAULT_AUTH_LIMITS. */
  authLimits?: AuthLimits
  /** Worker threads for the codec; default the machine's parallelism. */
  codecThreads?: number
  /**
   * Serve the web console under /_tessera/console/ (default true); `dir` names a console build
   * to serve instead of the @tessera/console package's.
   */
  console?: boolean | { dir: string }
}

export interface GatewayComponents {
  logger: Logger
}

export class Gateway {
  readonly port: number
  #http: HttpServer
  #cluster: Cluster
  #pool: CodecPool
  #digests: DigestThread
  #iam: IamStore
  #heal: HealReporter
  /** Pushes this gateway's request counters to the nodes, for GET /requests on any gateway. */
  #requestStats: RequestStatsReporter | undefined
  #log: Logger
  /** The gateway's Prometheus registry and health probe (served on the S3 port). */
  readonly metrics: GatewayMetrics

  private constructor(
    port: number,
    http: HttpServer,
    cluster: Cluster,
    pool: CodecPool,
    digests: DigestThread,
    iam: IamStore,
    heal: HealReporter,
    log: Logger,
    metrics: GatewayMetrics,
  ) {
    this.port = port
    this.#http = http
    this.#cluster = cluster
    this.#pool = pool
    this.#digests = digests
    this.#iam = iam
    this.#heal = heal
    this.#log = log
    this.metrics = metrics
  }

  static async start(init: GatewayInit, components: GatewayComponents): Promise<Gateway> {
    const log = components.logger
    // One registry per gateway; the cluster counts its failed calls to nodes in it.
    const metrics = new GatewayMetrics()
    const cluster = new MeteredCluster(
      { map: init.map, mapHash: init.mapHash, identity: init.identity },
      metrics,
    )
    const pool = new CodecPool(
      init.codecThreads !== undefined ? { threads: init.codecThreads } : {},
    )
    // MD5 (and SHA-256) of large request bodies, off the event loop.
    const digests = new DigestThread()
    const heal = new HealReporter(cluster, log)
    const inlineCodec = await InlineCodec.create()
    const objects = new ObjectStore({
      cluster,
      codec: pool,
      inlineCodec,
      onMiss: (m) => {
        log.warn(
          {
            bucket: m.bucket,
            key: m.key,
            ...(m.versionId !== undefined ? { versionId: m.versionId } : {}),
            ...(m.upload ? { upload: m.upload } : {}),
            drive: `${m.drive.nodeId}:${m.drive.path}`,
            reason: m.reason,
          },
          'a drive missed a write or returned a bad shard; repair queued',
        )
        heal.report(m.drive, {
          bucket: m.bucket,
          key: m.key,
          ...(m.versionId !== undefined ? { versionId: m.versionId } : {}),
          ...(m.upload ? { upload: m.upload } : {}),
          reason: m.kind === 'write' ? 'write-miss' : 'read',
        })
      },
    })
    metrics.watch({
      cluster,
      codec: pool,
      healReports: heal,
      readBuffers: () => objects.readBuffers(),
      hedges: () => objects.hedges,
      digests: () => digests.stats,
    })
    const buckets = new BucketStore(cluster)
    const sealer = new Sealer(init.masterKey)
    const store = new IamStore(cluster, log)
    await startIdentity(store, log)
    const access = new ClusterAccess({
      store,
      sealer,
      root: init.root,
      region: init.region,
      log,
      bucketOf: (name) => buckets.get(name),
      ...(init.authLimits ? { limits: init.authLimits } : {}),
    })
    const iam = new Iam({ store, sealer, access, log, listBuckets: () => buckets.list() })
    const clusterAdmin = new ClusterAdmin(cluster, iam)
    const capabilities = new Capabilities({
      access,
      authorizeAdmin: (c, action, what) => iam.authorizeAdmin(c, action, what, { probe: true }),
      policyMaxBytes: () => iam.policyMaxBytes,
    })
    // A missing console build leaves the APIs up: the console's path says what to do.
    let consoleAssets: ConsoleAssets | ConsoleAbsence = 'off'
    if (init.console !== false) {
      try {
        consoleAssets = await ConsoleAssets.load(
          typeof init.console === 'object' ? init.console.dir : defaultConsoleDir(),
        )
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'web console not served')
        consoleAssets = 'missing'
      }
    }
    const api = new S3Api({
      objects,
      buckets,
      multipart: new MultipartStore(objects),
      access,
      iam,
      clusterAdmin,
      capabilities,
      region: init.region,
      log,
      metrics,
      digests,
      ...(init.domain ? { domain: init.domain } : {}),
    })
    const http = await listenHttp({
      host: init.host ?? '0.0.0.0',
      port: init.port,
      // The console's files never reach S3Api: its path cannot be a bucket ('_').
      handler: (req, res) =>
        !isConsolePath(req.rawPath)
          ? api.handle(req, res)
          : typeof consoleAssets === 'string'
            ? serveNoConsole(req, res, consoleAssets)
            : consoleAssets.serve(req, res),
      onError: (err) => log.error({ err: (err as Error).message }, 'request handler failed'),
    })
    log.info({ port: http.port, region: init.region }, 'gateway started')
    const gateway = new Gateway(http.port, http, cluster, pool, digests, store, heal, log, metrics)
    gateway.#requestStats = new RequestStatsReporter({
      cluster,
      stats: () => metrics.requestStats(),
      log,
    })
    gateway.#requestStats.start()
    return gateway
  }

  async close(): Promise<void> {
    this.#http.close()
    this.metrics.close()
    this.#iam.close()
    this.#heal.close()
    this.#requestStats?.close()
    this.#cluster.close()
    await this.#pool.close()
    await this.#digests.close()
    this.#log.info({}, 'gateway stopped')
  }
}

/** Loads the identity records, waiting for the nodes' quorum while the cluster comes up. */
async function startIdentity(store: IamStore, log: Logger): Promise<void> {
  const deadline = Date.now() + IDENTITY_START_TIMEOUT_MS
  for (let attempt = 0; ; attempt++) {
    try {
      await store.start()
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      if (attempt === 0) {
        log.warn({ err: (err as Error).message }, 'identity records not reachable yet; retrying')
      }
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

/** How long a starting gateway waits for the nodes holding the identity records. */
export const IDENTITY_START_TIMEOUT_MS = 60_000
