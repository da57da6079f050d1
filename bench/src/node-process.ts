/**
 * A real tessera-node for benchmarks: identity, map, config and drive folders in a temporary
 * directory, the compiled CLI started as a child process, a PeerPool to call it as a gateway.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type ClusterMap,
  DAEMON_V8_FLAGS,
  daemonEnv,
  generateIdentity,
  mapHash,
  type Peer,
  PeerPool,
  PROTOCOL_VERSION,
  saveIdentity,
  stringifyClusterMap,
} from '@tessera/protocol'
import { freePort } from '@tessera/server'

const NODE_MAIN = fileURLToPath(new URL('../../packages/node/dist/src/main.js', import.meta.url))

export interface BenchNode {
  dir: string
  map: ClusterMap
  peer: Peer
  pool: PeerPool
  child: ChildProcess
  /** Peak resident memory of the node process so far (VmHWM), in bytes. */
  peakRssBytes(): Promise<number>
  close(): Promise<void>
}

/** Starts one node whose drives are the given folders (created if missing). */
export async function startBenchNode(opts: {
  drives: string[]
  k: number
  m: number
  connectionsPerPeer?: number
  /** The daemon's node flags; DAEMON_V8_FLAGS (as shipped) when undefined. */
  execArgv?: string[]
}): Promise<BenchNode> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-'))
  for (const d of opts.drives) await mkdir(d, { recursive: true })
  const node = await generateIdentity()
  const gateway = await generateIdentity()
  await saveIdentity(join(dir, 'node.key'), node)
  const address = `127.0.0.1:${await freePort()}`
  const map: ClusterMap = {
    cluster: 'bench',
    erasure: { data: opts.k, parity: opts.m, blockSize: 1024 * 1024, inlineBelow: 128 * 1024 },
    pools: [{ nodes: [{ id: 'n1', address, publicKey: node.id, drives: opts.drives }] }],
    gateways: [gateway.id],
  }
  await writeFile(join(dir, 'cluster.yaml'), stringifyClusterMap(map))
  await writeFile(
    join(dir, 'node.yaml'),
    'node: n1\nmap: cluster.yaml\nidentity: node.key\nlogLevel: warn\ntrashIntervalMs: 200\n',
  )
  const child = spawn(
    process.execPath,
    [...(opts.execArgv ?? DAEMON_V8_FLAGS), NODE_MAIN, 'start', '--config', join(dir, 'node.yaml')],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: daemonEnv(process.env),
    },
  )
  await new Promise<void>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('"listening"')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`tessera-node exited with ${code}`)))
  })
  const pool = new PeerPool({
    identity: gateway,
    hello: { version: PROTOCOL_VERSION, mapHash: mapHash(map), role: 'gateway' },
    connectionsPerPeer: opts.connectionsPerPeer ?? 4,
  })
  return {
    dir,
    map,
    peer: { id: node.id, address },
    pool,
    child,
    async peakRssBytes() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8')
      const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1]
      return Number(kb ?? 0) * 1024
    },
    async close() {
      pool.close()
      child.kill('SIGTERM')
      await once(child, 'exit')
      await rm(dir, { recursive: true, force: true })
    },
  }
}
