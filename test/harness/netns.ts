/**
 * Hosts as Linux network namespaces, for multi-host tests: `deploy/netns/netns-cluster.sh`
 * makes them (a bridge in this namespace, one namespace per host with its own address, a veth
 * pair between them), and {@link startNetnsCluster} starts a cluster whose nodes run inside them,
 * one per host, listening on the host's address, with the gateway (and the test) out here.
 * Names and the subnet are unique per run; teardown stops the processes and removes it all.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { generateIdentity, parseClusterMap, stringifyClusterMap } from '@tessera/protocol'
import { startLocalCluster } from '@tessera/server'
import { ROOT, TestCluster, type TestLike } from './cluster.ts'

const run = promisify(execFile)

/** The script that makes, cuts and removes the hosts. */
export const NETNS_SCRIPT = fileURLToPath(
  new URL('../../../deploy/netns/netns-cluster.sh', import.meta.url),
)

/** The RPC port of every node: each host has its own ports. */
export const NETNS_NODE_PORT = 7373

/** Hosts made by the script, with this run's prefix and subnet. */
export class NetnsHosts {
  readonly prefix: string
  /** The first three numbers of the hosts' /24. */
  readonly subnet: string
  readonly count: number

  constructor(prefix: string, subnet: string, count: number) {
    this.prefix = prefix
    this.subnet = subnet
    this.count = count
  }

  /** Namespace of host `i` (1-based). */
  ns(i: number): string {
    return `${this.prefix}-h${i}`
  }

  /** Address of host `i`. */
  address(i: number): string {
    return `${this.subnet}.${i}`
  }

  /** The namespace a process runs in, by name ('' for one without a name, such as this one). */
  async namespaceOf(pid: number): Promise<string> {
    return (await run('ip', ['netns', 'identify', String(pid)])).stdout.trim()
  }

  /** Runs the script with this run's prefix and subnet; rejects with its stderr. */
  async script(...args: string[]): Promise<string> {
    const { stdout } = await run(
      'sh',
      [NETNS_SCRIPT, '--prefix', this.prefix, '--subnet', this.subnet, ...args],
      { timeout: 30_000 },
    )
    return stdout
  }

  /** Cuts host `i`'s link: its packets are dropped silently. */
  async cut(i: number): Promise<void> {
    await this.script('cut', String(i))
  }

  async restore(i: number): Promise<void> {
    await this.script('restore', String(i))
  }

  /** Removes every namespace, link and the bridge (killing what still runs inside). */
  async down(): Promise<void> {
    await this.script('down')
  }
}

/** A fresh prefix and a subnet 10.77.X.0/24 unused here (undefined when all are taken). */
async function freshHosts(count: number): Promise<NetnsHosts | undefined> {
  let inUse = ''
  try {
    inUse = (await run('ip', ['-4', '-o', 'addr', 'show'])).stdout
  } catch {}
  const free = Array.from({ length: 254 }, (_, i) => i + 1).filter(
    (x) => !inUse.includes(` 10.77.${x}.`),
  )
  if (free.length === 0) return undefined
  const subnet = `10.77.${free[Math.floor(Math.random() * free.length)]}`
  return new NetnsHosts(`ts${randomBytes(3).toString('hex')}`, subnet, count)
}

/**
 * Why this machine cannot run network-namespace tests (not Linux, not root, no iproute2, or the
 * kernel or container refuses namespaces, veth pairs or bridges), found by making one host and
 * removing it again; undefined when it can.
 */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces need Linux, not ${process.platform}`
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  try {
    await run('ip', ['-V'])
  } catch (err) {
    return `iproute2 (ip) is not usable: ${(err as Error).message}`
  }
  const probe = await freshHosts(1)
  if (probe === undefined) return 'every subnet 10.77.X.0/24 is in use here'
  try {
    await probe.script('up', '1')
    return undefined
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    return `cannot make network namespaces here: ${(e.stderr || e.message).trim()}`
  } finally {
    await probe.down().catch(() => {})
  }
}

/** Makes `count` hosts with a fresh prefix and subnet, removed when `t` ends. */
export async function makeHosts(t: TestLike, count: number): Promise<NetnsHosts> {
  const hosts = await freshHosts(count)
  if (hosts === undefined) throw new Error('every subnet 10.77.X.0/24 is in use here')
  // Registered first, so it runs last: after the cluster's processes are stopped.
  t.teardown(() => hosts.down())
  await hosts.script('up', String(count))
  return hosts
}

export interface NetnsClusterOptions {
  k: number
  m: number
  /** Default 64 KiB. */
  blockSize?: number
  /** Default 4096. */
  inlineBelow?: number
  /** Gateways, each with its own identity, all in this namespace; default 1. */
  gateways?: number
  /** Further node.yaml settings for every node. */
  nodeConfig?: Readonly<Record<string, string | number>>
}

/**
 * A cluster with one node (one drive) per host: node n<i> runs in host i's namespace and listens
 * on `<host address>:7373`, which cluster.yaml lists; the gateways run here on loopback, and
 * the test's own gateway identity (the TestCluster's `pool`) calls the nodes across the bridge.
 * Teardown kills the processes (before {@link makeHosts}'s teardown removes the hosts).
 */
export async function startNetnsCluster(
  t: TestLike,
  hosts: NetnsHosts,
  opts: NetnsClusterOptions,
): Promise<TestCluster> {
  let cluster: TestCluster | undefined
  t.teardown(() => cluster?.close())
  const gateway = await generateIdentity()
  const base = {
    dir: t.testdir(),
    nodes: hosts.count,
    drivesPerNode: 1,
    data: opts.k,
    parity: opts.m,
    blockSize: opts.blockSize ?? 64 * 1024,
    inlineBelow: opts.inlineBelow ?? 4096,
    gateways: opts.gateways ?? 1,
    extraGateways: [gateway.id],
    clusterName: `test-${randomBytes(4).toString('hex')}`,
    root: ROOT,
    logLevel: 'info',
    trashIntervalMs: 200,
    ...(opts.nodeConfig ? { nodeConfig: opts.nodeConfig } : {}),
  }
  // First the files (keys, configs, a map on loopback), then the nodes moved onto the hosts.
  const files = await startLocalCluster({ ...base, start: false })
  const mapPath = join(files.dir, 'cluster.yaml')
  const map = parseClusterMap(await readFile(mapPath, 'utf8'), mapPath)
  for (const [i, n] of map.pools[0]!.nodes.entries()) {
    n.address = `${hosts.address(i + 1)}:${NETNS_NODE_PORT}`
  }
  await writeFile(mapPath, stringifyClusterMap(map))
  const hostOf = new Map(map.pools[0]!.nodes.map((n, i) => [n.id, i + 1]))
  const local = await startLocalCluster({
    ...base,
    launcher: (id) => {
      const i = hostOf.get(id)
      return i === undefined ? undefined : ['ip', 'netns', 'exec', hosts.ns(i)]
    },
  })
  cluster = new TestCluster({ local, gateway })
  return cluster
}
