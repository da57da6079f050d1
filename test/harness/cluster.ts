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

export interface ClusterOptions {
  nodes: number
  drivesPerNode: number
  k: number
  m: number
  blockSize?: number
  inlineBelow?: number
  /** Drive folder of node i, drive j; default <dir>/n<i>/d<j>. */
  drivePath?: (dir: string, node: number, drive: number) => string
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
  readonly pool: PeerPool

  constructor(init: {
    dir: string
    map: ClusterMap
    nodes: NodeProcess[]
    gateway: Identity
  }) {
    this.dir = init.dir
    this.map = init.map
    this.hash = mapHash(init.map)
    this.layout = computeLayout(init.map)
    this.nodes = init.nodes
    this.gateway = init.gateway
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
    const log = createWriteStream(n.logPath, { flags: 'a' })
    const child = spawn(process.execPath, [NODE_MAIN, 'start', '--config', n.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    n.child = child
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString()
      log.write(d)
    })
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const onData = (d: Buffer): void => {
        out += d.toString()
        log.write(d)
        if (out.includes('"listening"')) {
          child.stdout!.off('data', onData)
          child.stdout!.on('data', (x: Buffer) => log.write(x))
          resolve()
        }
      }
      child.stdout!.on('data', onData)
      child.once('exit', (code) => reject(new Error(`node ${id} exited with ${code}: ${stderr}`)))
    })
  }

  /** Stops node `id` (SIGTERM, or SIGKILL for a crash) and waits for the process to end. */
  async stop(id: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const n = this.node(id)
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
    await Promise.all(this.nodes.map((n) => this.stop(n.id, 'SIGKILL')))
  }
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
  await writeFile(join(dir, 'cluster.yaml'), stringifyClusterMap(map))
  const cluster = new TestCluster({ dir, map, nodes, gateway })
  t.teardown(() => cluster.close())
  await Promise.all(nodes.map((n) => cluster.start(n.id)))
  return cluster
}
