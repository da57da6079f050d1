/**
 * A gateway: connections to the cluster's nodes, the object and bucket stores over them, and
 * the S3 API on a uWS server. Keeps no state of its own (caches only).
 */
import { CodecPool, InlineCodec } from '@tessera/codec'
import type { ClusterMap, Identity } from '@tessera/protocol'
import { type AccessControl, RootAccess } from './auth/access.ts'
import { type HttpServer, listenHttp } from './http/server.ts'
import { S3Api } from './s3/api.ts'
import type { Logger } from './s3/context.ts'
import { BucketStore } from './store/buckets.ts'
import { Cluster } from './store/cluster.ts'
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
  /** The root credential (until identities live in the cluster, #5). */
  root: { accessKeyId: string; secretAccessKey: string }
  /** Worker threads for the codec; default the machine's parallelism. */
  codecThreads?: number
  /** Replaces the root-only access model (tests, and the identity milestone). */
  access?: AccessControl
}

export interface GatewayComponents {
  logger: Logger
}

export class Gateway {
  readonly port: number
  #http: HttpServer
  #cluster: Cluster
  #pool: CodecPool
  #log: Logger

  private constructor(
    port: number,
    http: HttpServer,
    cluster: Cluster,
    pool: CodecPool,
    log: Logger,
  ) {
    this.port = port
    this.#http = http
    this.#cluster = cluster
    this.#pool = pool
    this.#log = log
  }

  static async start(init: GatewayInit, components: GatewayComponents): Promise<Gateway> {
    const log = components.logger
    const cluster = new Cluster({ map: init.map, mapHash: init.mapHash, identity: init.identity })
    const pool = new CodecPool(
      init.codecThreads !== undefined ? { threads: init.codecThreads } : {},
    )
    const inlineCodec = await InlineCodec.create()
    const objects = new ObjectStore({
      cluster,
      codec: pool,
      inlineCodec,
      onMiss: (m) =>
        log.warn(
          {
            bucket: m.bucket,
            key: m.key,
            versionId: m.versionId,
            drive: `${m.drive.nodeId}:${m.drive.path}`,
            reason: m.reason,
          },
          'a drive missed a write or returned a bad shard',
        ),
    })
    const api = new S3Api({
      objects,
      buckets: new BucketStore(cluster),
      multipart: new MultipartStore(objects),
      access: init.access ?? new RootAccess({ ...init.root, region: init.region }),
      region: init.region,
      log,
      ...(init.domain ? { domain: init.domain } : {}),
    })
    const http = await listenHttp({
      host: init.host ?? '0.0.0.0',
      port: init.port,
      handler: (req, res) => api.handle(req, res),
      onError: (err) => log.error({ err: (err as Error).message }, 'request handler failed'),
    })
    log.info({ port: http.port, region: init.region }, 'gateway started')
    return new Gateway(http.port, http, cluster, pool, log)
  }

  async close(): Promise<void> {
    this.#http.close()
    this.#cluster.close()
    await this.#pool.close()
    this.#log.info({}, 'gateway stopped')
  }
}
