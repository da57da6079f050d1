/**
 * A real cluster for tests: `tessera-node` processes started from the compiled CLI, each with
 * its own identity key, drive folders under the test's directory, one cluster.yaml, and a
 * gateway identity that the map lists, with a PeerPool to call the nodes as a gateway would.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type ClusterLayout,
  type ClusterMap,
  computeLayout,
  generateIdentity,
  type Identity,
  mapHash,
  PeerPool,
  PROTOCOL_VERSION,
  saveIdentity,
  stringifyClusterMap,
} from '@tessera/protocol'

export const NODE_MAIN = fileURLToPath(
  new URL('../../../packages/node/dist/src/main.js', import.meta.url),
)
export const GATEWAY_MAIN = fileURLToPath(
  new URL('../../../packages/gateway/dist/src/main.js', import.meta.url),
)

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
  blockSize?: number
  inlineBelow?: number
  /** Drive folder of node i, drive j; default <dir>/n<i>/d<j>. */
  drivePath?: (dir: string, node: number, drive: number) => string
  /** tessera-gateway processes to start, each with its own identity; default 0. */
  gateways?: number
}

export interface GatewayProcess {
  id: string
  configPath: string
  logPath: string
  /** http://127.0.0.1:<port> once started. */
  endpoint: string
  child: ChildProcess | undefined
}

export interface NodeProcess {
  id: string
  address: string
  publicKey: string
  configPath: string
  logPath: string
  child: ChildProcess | undefined
}

/** A free loopback port (listen on 0, read, close). */
export async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  await once(s, 'close')
  return port
}

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
  readonly gateway: Identity
  readonly gateways: GatewayProcess[]
  readonly pool: PeerPool

  constructor(init: {
    dir: string
    map: ClusterMap
    nodes: NodeProcess[]
    gateway: Identity
    gateways?: GatewayProcess[]
  }) {
    this.dir = init.dir
    this.map = init.map
    this.hash = mapHash(init.map)
    this.layout = computeLayout(init.map)
    this.nodes = init.nodes
    this.gateway = init.gateway
    this.gateways = init.gateways ?? []
    this.pool = new PeerPool({
      identity: init.gateway,
      hello: { version: PROTOCOL_VERSION, mapHash: this.hash, role: 'gateway' },
      backoffMs: 50,
    })
  }

  node(id: string): NodeProcess {
    const n = this.nodes.find((x) => x.id === id)
    if (!n) throw new Error(`no node ${id}`)
    return n
  }

  /** The peer (id + address) to call for node `id`. */
  peer(id: string): { id: string; address: string } {
    const n = this.node(id)
    return { id: n.publicKey, address: n.address }
  }

  /** Starts node `id`'s process and waits until it listens; rejects with its stderr if it exits. */
  async start(id: string): Promise<void> {
    const n = this.node(id)
    const { child } = await spawnDaemon(NODE_MAIN, n.configPath, n.logPath, `node ${id}`)
    n.child = child
  }

  gatewayProc(id: string): GatewayProcess {
    const g = this.gateways.find((x) => x.id === id)
    if (!g) throw new Error(`no gateway ${id}`)
    return g
  }

  /** Starts gateway `id` and waits until it serves S3. */
  async startGateway(id: string): Promise<void> {
    const g = this.gatewayProc(id)
    const { child, line } = await spawnDaemon(
      GATEWAY_MAIN,
      g.configPath,
      g.logPath,
      `gateway ${id}`,
    )
    g.child = child
    const port = (JSON.parse(line) as { listening: { port: number } }).listening.port
    g.endpoint = `http://127.0.0.1:${port}`
  }

  /** Stops node or gateway `id` (SIGTERM, or SIGKILL for a crash) and waits for it to end. */
  async stop(id: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const n: { child: ChildProcess | undefined } =
      this.gateways.find((g) => g.id === id) ?? this.node(id)
    const child = n.child
    if (!child || child.exitCode !== null || child.signalCode !== null)
      return child?.exitCode ?? null
    const exited = once(child, 'exit')
    child.kill(signal)
    const [code] = await exited
    n.child = undefined
    return code as number | null
  }

  async close(): Promise<void> {
    this.pool.close()
    await Promise.all([...this.gateways, ...this.nodes].map((n) => this.stop(n.id, 'SIGKILL')))
  }
}

/** Spawns a daemon's `start --config`, resolving with its first stdout line once it listens. */
async function spawnDaemon(
  main: string,
  configPath: string,
  logPath: string,
  what: string,
): Promise<{ child: ChildProcess; line: string }> {
  const log = createWriteStream(logPath, { flags: 'a' })
  const child = spawn(process.execPath, [main, 'start', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
    log.write(d)
  })
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    const onData = (d: Buffer): void => {
      out += d.toString()
      log.write(d)
      const at = out.indexOf('"listening"')
      if (at >= 0 && out.indexOf('\n', at) >= 0) {
        child.stdout!.off('data', onData)
        child.stdout!.on('data', (x: Buffer) => log.write(x))
        const start = out.lastIndexOf('\n', at) + 1
        resolve(out.slice(start, out.indexOf('\n', at)))
      }
    }
    child.stdout!.on('data', onData)
    child.once('exit', (code) => reject(new Error(`${what} exited with ${code}: ${stderr}`)))
  })
  return { child, line }
}

/** Writes keys, map and configs for a cluster under `t.testdir()`, starts every node. */
export async function startCluster(t: TestLike, opts: ClusterOptions): Promise<TestCluster> {
  const dir = t.testdir()
  const gateway = await generateIdentity()
  const nodes: NodeProcess[] = []
  const specs: ClusterMap['pools'][number]['nodes'] = []
  for (let i = 0; i < opts.nodes; i++) {
    const id = `n${i + 1}`
    const home = join(dir, id)
    await mkdir(home, { recursive: true })
    const identity = await generateIdentity()
    await saveIdentity(join(home, 'node.key'), identity)
    const address = `127.0.0.1:${await freePort()}`
    const drives = Array.from({ length: opts.drivesPerNode }, (_, j) =>
      opts.drivePath ? opts.drivePath(dir, i, j) : join(home, `d${j + 1}`),
    )
    specs.push({ id, address, publicKey: identity.id, drives })
    const configPath = join(home, 'node.yaml')
    await writeFile(
      configPath,
      `node: ${id}\nmap: ../cluster.yaml\nidentity: node.key\nlogLevel: info\ntrashIntervalMs: 200\n`,
    )
    nodes.push({
      id,
      address,
      publicKey: identity.id,
      configPath,
      logPath: join(home, 'node.log'),
      child: undefined,
    })
  }
  const map: ClusterMap = {
    cluster: `test-${Math.random().toString(16).slice(2, 10)}`,
    erasure: {
      data: opts.k,
      parity: opts.m,
      blockSize: opts.blockSize ?? 64 * 1024,
      inlineBelow: opts.inlineBelow ?? 4096,
    },
    pools: [{ nodes: specs }],
    gateways: [gateway.id],
  }
  const gateways: GatewayProcess[] = []
  for (let i = 0; i < (opts.gateways ?? 0); i++) {
    const id = `g${i + 1}`
    const home = join(dir, id)
    await mkdir(home, { recursive: true })
    const identity = await generateIdentity()
    await saveIdentity(join(home, 'gateway.key'), identity)
    map.gateways.push(identity.id)
    await writeFile(
      join(home, 'root.yaml'),
      `accessKeyId: ${ROOT.accessKeyId}\nsecretAccessKey: ${ROOT.secretAccessKey}\n`,
      { mode: 0o600 },
    )
    const configPath = join(home, 'gateway.yaml')
    await writeFile(
      configPath,
      'map: ../cluster.yaml\nidentity: gateway.key\nlisten: 127.0.0.1:0\n' +
        'credentials: root.yaml\nlogLevel: info\n',
    )
    gateways.push({
      id,
      configPath,
      logPath: join(home, 'gateway.log'),
      endpoint: '',
      child: undefined,
    })
  }
  await writeFile(join(dir, 'cluster.yaml'), stringifyClusterMap(map))
  const cluster = new TestCluster({ dir, map, nodes, gateway, gateways })
  t.teardown(() => cluster.close())
  await Promise.all(nodes.map((n) => cluster.start(n.id)))
  await Promise.all(gateways.map((g) => cluster.startGateway(g.id)))
  return cluster
}
