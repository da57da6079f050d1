/**
 * A real cluster for tests: `tessera-node` and `tessera-gateway` processes started by
 * `startLocalCluster` of `@tessera/server` under the test's directory, plus what only tests
 * need: a gateway identity listed in the map with a PeerPool to call the nodes directly, and
 * teardown with the test.
 */
import {
  type ClusterLayout,
  type ClusterMap,
  computeLayout,
  type DriveSlot,
  generateIdentity,
  type Identity,
  mapHash,
  PeerPool,
  PROTOCOL_VERSION,
  ReadVersions,
  type VersionRecord,
} from '@tessera/protocol'
import {
  freePort,
  GATEWAY_MAIN,
  type LocalCluster,
  type LocalGateway,
  type LocalNode,
  NODE_MAIN,
  startLocalCluster,
} from '@tessera/server'

export { freePort, GATEWAY_MAIN, NODE_MAIN }

/** The root credential every test gateway is started with. */
export const ROOT = {
  accessKeyId: 'TESSERAROOTTESTKEY01',
  secretAccessKey: 'test-secret-key-0123456789abcdefghijklmnop',
} as const

export interface ClusterOptions {
  nodes: number
  drivesPerNode: number
  k: number
  m: number
  /** Default 64 KiB. */
  blockSize?: number
  /** Default 4096. */
  inlineBelow?: number
  /** Drive folder of node i, drive j; default <dir>/n<i>/d<j>. */
  drivePath?: (dir: string, node: number, drive: number) => string
  /** tessera-gateway processes to start, each with its own identity; default 0. */
  gateways?: number
  /** Domain for virtual-hosted-style requests on the gateways. */
  domain?: string
  /** Further node.yaml settings for every node (`startLocalCluster`'s `nodeConfig`). */
  nodeConfig?: Readonly<Record<string, string | number>>
}

/**
 * The small cluster most end-to-end tests start: 4 nodes of one drive, RS(2,2) (write quorum
 * 3), 64 KiB blocks, objects under 4 KiB inline, one gateway.
 */
export const FOUR_NODES_RS22 = {
  nodes: 4,
  drivesPerNode: 1,
  k: 2,
  m: 2,
  blockSize: 64 * 1024,
  inlineBelow: 4096,
  gateways: 1,
} as const satisfies ClusterOptions

/** A gateway process: `endpoint` is http://127.0.0.1:<port> once started. */
export type GatewayProcess = LocalGateway

/** A node process: id, address, publicKey, configPath, logPath and the running child. */
export type NodeProcess = LocalNode

export interface TestLike {
  testdir(): string
  teardown(fn: () => unknown): void
}

export class TestCluster {
  readonly dir: string
  readonly map: ClusterMap
  readonly hash: string
  readonly layout: ClusterLayout
  readonly nodes: NodeProcess[]
  /** The test's own gateway identity (listed in the map), which `pool` calls nodes with. */
  readonly gateway: Identity
  readonly gateways: GatewayProcess[]
  readonly pool: PeerPool
  /** The processes. */
  readonly local: LocalCluster

  constructor(init: { local: LocalCluster; gateway: Identity }) {
    this.local = init.local
    this.dir = init.local.dir
    this.map = init.local.map
    this.hash = mapHash(init.local.map)
    this.layout = computeLayout(init.local.map)
    this.nodes = [...init.local.nodes]
    this.gateway = init.gateway
    this.gateways = [...init.local.gateways]
    this.pool = new PeerPool({
      identity: init.gateway,
      hello: { version: PROTOCOL_VERSION, mapHash: this.hash, role: 'gateway' },
      backoffMs: 50,
    })
  }

  node(id: string): NodeProcess {
    return this.local.node(id)
  }

  /** The peer (id + address) to call for node `id`. */
  peer(id: string): { id: string; address: string } {
    const n = this.node(id)
    return { id: n.publicKey, address: n.address }
  }

  /** Starts node `id`'s process and waits until it listens; rejects with its stderr if it exits. */
  async start(id: string): Promise<void> {
    this.node(id)
    await this.local.start(id)
  }

  gatewayProc(id: string): GatewayProcess {
    return this.local.gateway(id)
  }

  /** Starts gateway `id` and waits until it serves S3. */
  async startGateway(id: string): Promise<void> {
    this.gatewayProc(id)
    await this.local.start(id)
  }

  /** Stops node or gateway `id` (SIGTERM, or SIGKILL for a crash) and waits for it to end. */
  async stop(id: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    return this.local.stop(id, signal)
  }

  async close(): Promise<void> {
    this.pool.close()
    await this.local.close({ signal: 'SIGKILL' })
  }
}

/** Writes keys, map and configs for a cluster under `t.testdir()`, starts every process. */
export async function startCluster(t: TestLike, opts: ClusterOptions): Promise<TestCluster> {
  let cluster: TestCluster | undefined
  // Registered before t.testdir(): tap removes the folder after the teardowns only when one was
  // registered first. Otherwise it removes it under the running nodes (ENOTEMPTY while they write)
  // and, when that throws, never runs the teardown, so the processes outlive the test.
  t.teardown(() => cluster?.close())
  const gateway = await generateIdentity()
  const local = await startLocalCluster({
    dir: t.testdir(),
    nodes: opts.nodes,
    drivesPerNode: opts.drivesPerNode,
    data: opts.k,
    parity: opts.m,
    blockSize: opts.blockSize ?? 64 * 1024,
    inlineBelow: opts.inlineBelow ?? 4096,
    gateways: opts.gateways ?? 0,
    ...(opts.drivePath ? { drivePath: opts.drivePath } : {}),
    ...(opts.domain ? { domain: opts.domain } : {}),
    ...(opts.nodeConfig ? { nodeConfig: opts.nodeConfig } : {}),
    extraGateways: [gateway.id],
    clusterName: `test-${Math.random().toString(16).slice(2, 10)}`,
    root: ROOT,
    logLevel: 'info',
    trashIntervalMs: 200,
  })
  cluster = new TestCluster({ local, gateway })
  return cluster
}

/** The version records drive `d` holds of `bucket/key`, newest first (ReadVersions). */
export async function versionsOn(
  c: TestCluster,
  d: DriveSlot,
  bucket: string,
  key: string,
): Promise<VersionRecord[]> {
  const ref = { pool: d.pool, set: d.set, slot: d.slot }
  return (await c.pool.call(c.peer(d.nodeId), ReadVersions, { ...ref, bucket, key })).versions
}

/**
 * Polls `check` until it returns a value (not undefined) or `timeoutMs` passes; then throws,
 * naming `what` and the last error `check` threw.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const end = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > end)
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${String(last)})` : ''}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * Waits until gateway `g` sees every drive of the map online. A gateway holds off a node for a
 * moment after losing it, so a test that restarted one waits for this before it relies on
 * every drive taking its writes; the drive probe, which /health/ready refreshes, says when.
 */
export async function gatewaySeesEveryDrive(c: TestCluster, g = 0): Promise<void> {
  const gw = c.gateways[g]!.endpoint
  const drives = c.layout.pools.reduce((n, p) => n + p.sets.length * p.sets[0]!.drives.length, 0)
  for (let i = 0; ; i++) {
    await fetch(`${gw}/_tessera/health/ready`).then((r) => r.arrayBuffer())
    const metrics = await (await fetch(`${gw}/_tessera/metrics`)).text()
    const online = metrics.split('\n').filter((l) => l.startsWith('tessera_drive_online{'))
    if (online.length === drives && online.every((l) => l.endsWith(' 1'))) return
    if (i === 60)
      throw new Error(`the gateway does not see every drive online:\n${online.join('\n')}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/**
 * Freezes node `nodeId` with SIGSTOP (its sockets stay open and nothing answers, as with a cut
 * link). Returns a function that resumes it; the test's teardown resumes it too.
 */
export function freezeNode(t: TestLike, c: TestCluster, nodeId: string): () => void {
  const pid = c.local.pids()[nodeId]
  if (pid === undefined) throw new Error(`no pid for ${nodeId}`)
  process.kill(pid, 'SIGSTOP')
  let frozen = true
  const thaw = () => {
    if (frozen) process.kill(pid, 'SIGCONT')
    frozen = false
  }
  t.teardown(thaw)
  return thaw
}

/** Calls to node `nodeId` a gateway counts as failed (tessera_rpc_errors_total), any code. */
export async function failedCalls(endpoint: string, nodeId: string): Promise<number> {
  return gatewayCounter(endpoint, 'tessera_rpc_errors_total', `node="${nodeId}"`)
}

/** A counter of a gateway's metrics, summed over the series whose labels include `match`. */
export async function gatewayCounter(endpoint: string, name: string, match = ''): Promise<number> {
  const text = await (await fetch(`${endpoint}/_tessera/metrics`)).text()
  let n = 0
  for (const line of text.split('\n')) {
    if ((line.startsWith(`${name}{`) || line.startsWith(`${name} `)) && line.includes(match))
      n += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return n
}
