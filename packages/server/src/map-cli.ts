/**
 * `tessera map …`: writing and checking `cluster.yaml` (design §2) for real servers.
 *
 * - `generate` builds a map from MinIO-style ellipsis patterns (`node{1...4}.example.net:7373`,
 *   `/mnt/disk{01...16}`), one pool per `--nodes`/`--drives` pair (or `--pool`), with the nodes'
 *   public keys from a keys file or a folder of `<host>.pub` files.
 * - `add-pool` appends pools to an existing map: how a cluster grows.
 * - `validate` checks a map file and explains its layout.
 *
 * Every check of the map itself is parseClusterMap's (the same code the daemons run at start);
 * this module only builds maps, reports what the patterns and keys got wrong, and explains
 * what a valid map means: sets, usable capacity, and how many drive or node failures each set
 * survives.
 */
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
import {
  type ClusterMap,
  ClusterMapError,
  computeLayout,
  loadClusterMap,
  mapHash,
  type NodeSpec,
  type PoolSpec,
  parseByteSize,
  parseClusterMap,
  stringifyClusterMap,
} from '@tessera/protocol'
import { Command } from 'commander'
import { table } from './admin-cli.ts'

/** Port of a node address given without one: tessera-node's default RPC port. */
export const DEFAULT_NODE_PORT = 7373
/** Most names one pattern may expand to, so that a typo such as `{1...10000}` fails at once. */
export const MAX_PATTERN_NAMES = 4096

/** A usage problem of `tessera map`: printed as `tessera map: <message>`, exit status 1. */
export class MapCliError extends Error {
  static override name = 'MapCliError'
  constructor(message: string) {
    super(message)
    this.name = 'MapCliError'
  }
}

// Ellipsis patterns -------------------------------------------------------------------------------

const RANGE = /\{([^{}]*)\}/g

/**
 * Expands MinIO-style ellipsis ranges: `node{1...4}` is node1 … node4, `{01...16}` is
 * zero-padded to the width of its start (01 … 16), and several ranges in one pattern expand as
 * a product, the leftmost varying slowest (`n{1...2}d{1...2}`: n1d1, n1d2, n2d1, n2d2). A
 * pattern without a range is itself.
 *
 * @throws MapCliError for a malformed range, stray braces, a range that counts down, or more
 *   than {@link MAX_PATTERN_NAMES} names.
 */
export function expandPattern(pattern: string): string[] {
  const parts: string[][] = []
  let last = 0
  for (const match of pattern.matchAll(RANGE)) {
    parts.push([literal(pattern, pattern.slice(last, match.index))])
    parts.push(range(pattern, match[1]!))
    last = match.index + match[0].length
  }
  parts.push([literal(pattern, pattern.slice(last))])
  let names = ['']
  for (const alternatives of parts) {
    if (names.length * alternatives.length > MAX_PATTERN_NAMES) {
      throw new MapCliError(
        `"${pattern}" expands to more than ${MAX_PATTERN_NAMES} names; check its ranges`,
      )
    }
    names = names.flatMap((prefix) => alternatives.map((a) => prefix + a))
  }
  return names
}

function literal(pattern: string, text: string): string {
  if (/[{}]/.test(text)) {
    throw new MapCliError(
      `"${pattern}" has an unmatched or nested brace; a range is written {1...4}`,
    )
  }
  return text
}

function range(pattern: string, body: string): string[] {
  const match = /^(\d+)\.\.\.(\d+)$/.exec(body)
  if (match === null) {
    const hint = /^\d+\.\.\d+$/.test(body)
      ? 'a range has three dots, as in {1...4}'
      : 'write a range of numbers such as {1...4}, or {01...16} for zero-padded ones'
    throw new MapCliError(`"{${body}}" in "${pattern}" is not a range: ${hint}`)
  }
  const [, startText, endText] = match as unknown as [string, string, string]
  const start = Number(startText)
  const end = Number(endText)
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) {
    throw new MapCliError(`"{${body}}" in "${pattern}": the numbers are too large`)
  }
  if (start > end) {
    throw new MapCliError(
      `"{${body}}" in "${pattern}" counts down; write it from low to high, as {${endText}...${startText}}`,
    )
  }
  if (end - start + 1 > MAX_PATTERN_NAMES) {
    throw new MapCliError(
      `"${pattern}" expands to more than ${MAX_PATTERN_NAMES} names; check its ranges`,
    )
  }
  // A leading zero asks for zero-padding to the start's width (MinIO: {01...16}).
  const width = startText.length > 1 && startText.startsWith('0') ? startText.length : 0
  return Array.from({ length: end - start + 1 }, (_, i) => String(start + i).padStart(width, '0'))
}

// Pools from the command line ---------------------------------------------------------------------

/** The nodes and drives patterns of one pool. */
export interface PoolPattern {
  /** Node addresses, `host[:port]`, with ellipsis ranges. */
  nodes: string
  /** Drive folders of every node of the pool, with ellipsis ranges. */
  drives: string
}

/** A pool option as given on the command line, in order. */
export interface PoolArg {
  kind: 'nodes' | 'drives' | 'pool'
  value: string
}

/**
 * Pairs `--nodes` and `--drives` options in the order given (each `--nodes` with the next
 * unpaired `--drives`, or the other way round) and splits each `--pool 'nodes/drives'`
 * (`node{1...4}.example.net:7373/mnt/disk{1...4}`), keeping the order of the pools.
 *
 * @throws MapCliError when an option lacks its partner, or a `--pool` has no drive path.
 */
export function poolPatterns(args: readonly PoolArg[]): PoolPattern[] {
  const pools: Partial<PoolPattern>[] = []
  for (const { kind, value } of args) {
    if (kind === 'pool') {
      const slash = value.indexOf('/')
      if (slash <= 0) {
        throw new MapCliError(
          `--pool "${value}" must be nodes followed by drives, as in ` +
            "'node{1...4}.example.net:7373/mnt/disk{1...4}'",
        )
      }
      pools.push({ nodes: value.slice(0, slash), drives: value.slice(slash) })
      continue
    }
    const other = kind === 'nodes' ? 'drives' : 'nodes'
    const open = pools.find((p) => p[kind] === undefined && p[other] !== undefined)
    if (open !== undefined) open[kind] = value
    else pools.push({ [kind]: value })
  }
  if (pools.length === 0) {
    throw new MapCliError(
      "give the pool's nodes and drives: --nodes 'node{1...4}.example.net:7373' " +
        "--drives '/mnt/disk{1...4}' (once per pool), or --pool '<nodes>/<drives>'",
    )
  }
  for (const p of pools) {
    if (p.nodes === undefined) throw new MapCliError(`--drives "${p.drives}" has no --nodes`)
    if (p.drives === undefined) throw new MapCliError(`--nodes "${p.nodes}" has no --drives`)
  }
  return pools as PoolPattern[]
}

/** A node address from a pattern: the host (for ids and key lookups) and `host:port`. */
function nodeAddress(entry: string): { host: string; address: string } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry)
  if (v6 !== null) return { host: v6[1]!, address: `[${v6[1]}]:${v6[2] ?? DEFAULT_NODE_PORT}` }
  if (isIP(entry) === 6) {
    throw new MapCliError(
      `node "${entry}": an IPv6 address goes in brackets, as in [${entry}]:${DEFAULT_NODE_PORT}`,
    )
  }
  const colon = entry.lastIndexOf(':')
  if (colon < 0) return { host: entry, address: `${entry}:${DEFAULT_NODE_PORT}` }
  return { host: entry.slice(0, colon), address: entry }
}

/**
 * Node ids for node addresses (`host[:port]`): the first label of each host name (`node1` for
 * `node1.example.net`); the whole host when those would not be unique (among these and the ids
 * `taken` already); host and port (`node1.example.net-7374`) when even hosts repeat. IP
 * addresses are used whole, an IPv6 one with `-` for `:`.
 */
export function nodeIds(
  addresses: readonly string[],
  taken: ReadonlySet<string> = new Set(),
): string[] {
  const nodes = addresses.map(nodeAddress)
  const whole = nodes.map(({ host }) => (isIP(host) === 6 ? host.replaceAll(':', '-') : host))
  const short = nodes.map(({ host }, i) => (isIP(host) === 0 ? host.split('.')[0]! : whole[i]!))
  const unique = (ids: string[]) =>
    new Set(ids).size === ids.length && !ids.some((id) => taken.has(id))
  if (unique(short)) return short
  if (unique(whole)) return whole
  return nodes.map(({ address }, i) => `${whole[i]}-${address.slice(address.lastIndexOf(':') + 1)}`)
}

// Public keys -------------------------------------------------------------------------------------

/** Finds a node's public key under any of its names (address, host, id); undefined if none. */
export type KeyLookup = (names: readonly string[]) => Promise<string | undefined>

/**
 * Reads a keys file: one `<host> <public key>` per line (the host may carry its port, or be the
 * node id), `#` comments and blank lines ignored.
 *
 * @throws MapCliError listing every malformed line and every host given two different keys.
 */
export function parseKeysFile(text: string, source: string): Map<string, string> {
  const keys = new Map<string, string>()
  const problems: string[] = []
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim()
    if (line === '') return
    const fields = line.split(/\s+/)
    if (fields.length !== 2) {
      problems.push(`${source}:${i + 1}: want "<host> <public key>", got "${line}"`)
      return
    }
    const [host, key] = fields as [string, string]
    const known = keys.get(host)
    if (known !== undefined && known !== key) {
      problems.push(`${source}:${i + 1}: ${host} has another key on an earlier line`)
    }
    keys.set(host, key)
  })
  if (problems.length > 0) throw new MapCliError(problems.join('\n'))
  return keys
}

/** Key lookups in a keys file (`--keys`) and then a folder of `<name>.pub` files (`--keys-dir`). */
export async function keyLookup(opts: { keys?: string; keysDir?: string }): Promise<KeyLookup> {
  if (opts.keys === undefined && opts.keysDir === undefined) {
    throw new MapCliError(
      "give the nodes' public keys: --keys <file> with one '<host> <public key>' per line, " +
        "or --keys-dir <folder> of '<host>.pub' files (what 'tessera-node keygen' printed)",
    )
  }
  let fromFile = new Map<string, string>()
  if (opts.keys !== undefined) {
    fromFile = parseKeysFile(await readText(opts.keys, '--keys'), opts.keys)
  }
  const dir = opts.keysDir
  return async (names) => {
    for (const name of names) {
      const key = fromFile.get(name)
      if (key !== undefined) return key
    }
    if (dir === undefined) return undefined
    for (const name of names) {
      const text = await readFile(join(dir, `${name}.pub`), 'utf8').catch(() => undefined)
      const key = text
        ?.split(/\r?\n/)
        .map((l) => l.replace(/#.*/, '').trim())
        .find((l) => l !== '')
      if (key !== undefined) return key
    }
    return undefined
  }
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new MapCliError(`${what} ${path}: ${(err as Error).message}`)
  }
}

// Building maps ---------------------------------------------------------------------------------

/** What {@link generateMap} builds a map from. */
export interface GenerateInit {
  /** Cluster id, written into every drive's format file. */
  cluster: string
  data: number
  parity: number
  /** Bytes per erasure block; default parseClusterMap's (1 MiB). */
  blockSize?: number
  /** Objects below this many bytes are kept inline; default parseClusterMap's (128 KiB). */
  inlineBelow?: number
  pools: readonly PoolPattern[]
  /** Peer ids of the gateways. */
  gateways: readonly string[]
  keys: KeyLookup
}

/** A map that parseClusterMap accepted, as written to the file. */
export interface BuiltMap {
  map: ClusterMap
  /** The cluster.yaml text. */
  text: string
  hash: string
}

/**
 * Builds a cluster map from patterns and keys, and checks it with parseClusterMap.
 *
 * @throws MapCliError for bad patterns or missing keys (all of them at once), and
 *   ClusterMapError, its problems tagged with the node they concern, when the map is invalid.
 */
export async function generateMap(init: GenerateInit): Promise<BuiltMap> {
  const pools = await buildPools(init.pools, init.keys, new Set())
  const map: ClusterMap = {
    cluster: init.cluster,
    erasure: {
      data: init.data,
      parity: init.parity,
      blockSize: init.blockSize ?? 1024 * 1024,
      inlineBelow: init.inlineBelow ?? 128 * 1024,
    },
    pools,
    gateways: [...init.gateways],
  }
  return checked(map)
}

/**
 * Appends pools (and gateways) to `base`: the expansion of a running cluster. Existing pools
 * keep their index, nodes and drive order, so no drive changes its slot.
 */
export async function addPools(
  base: ClusterMap,
  init: Pick<GenerateInit, 'pools' | 'gateways' | 'keys'>,
): Promise<BuiltMap> {
  const taken = new Set(base.pools.flatMap((p) => p.nodes.map((n) => n.id)))
  const pools = await buildPools(init.pools, init.keys, taken)
  const gateways = [...base.gateways, ...init.gateways.filter((g) => !base.gateways.includes(g))]
  return checked({ ...base, pools: [...base.pools, ...pools], gateways })
}

async function buildPools(
  patterns: readonly PoolPattern[],
  keys: KeyLookup,
  taken: ReadonlySet<string>,
): Promise<PoolSpec[]> {
  const problems: string[] = []
  const expanded = patterns.map((p, i) => {
    const label = patterns.length > 1 ? `pool ${i + 1} (${p.nodes} ${p.drives})` : 'pool'
    try {
      const addresses = expandPattern(p.nodes).map(nodeAddress)
      const drives = expandPattern(p.drives)
      const relative = drives.find((d) => !d.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(d))
      if (relative !== undefined) {
        throw new MapCliError(
          `drive folder "${relative}" is not an absolute path such as /mnt/disk1`,
        )
      }
      return { addresses, drives }
    } catch (err) {
      problems.push(`${label}: ${(err as Error).message}`)
      return { addresses: [], drives: [] }
    }
  })
  const ids = nodeIds(
    expanded.flatMap((p) => p.addresses.map((a) => a.address)),
    taken,
  )
  const missing: string[] = []
  const pools: PoolSpec[] = []
  let next = 0
  for (const { addresses, drives } of expanded) {
    const nodes: NodeSpec[] = []
    for (const { host, address } of addresses) {
      const id = ids[next++]!
      const publicKey = (await keys([address, host, id])) ?? ''
      if (publicKey === '') missing.push(host)
      nodes.push({ id, address, publicKey, drives: [...drives] })
    }
    pools.push({ nodes })
  }
  if (missing.length > 0) {
    problems.push(
      `no public key for ${missing.join(', ')}: add a line "<host> <public key>" for each to the ` +
        "keys file (or a <host>.pub file to the keys folder); 'tessera-node keygen' printed it " +
        'and deploy/install.sh keeps it in /etc/tessera/node.pub',
    )
  }
  if (problems.length > 0) throw new MapCliError(problems.join('\n'))
  return pools
}

/** Round-trips `map` through its text and parseClusterMap, so that what is written is valid. */
function checked(map: ClusterMap): BuiltMap {
  const text = stringifyClusterMap(map)
  try {
    const parsed = parseClusterMap(text, 'the generated map')
    return { map: parsed, text, hash: mapHash(parsed) }
  } catch (err) {
    if (!(err instanceof ClusterMapError)) throw err
    // The paths are those of the generated file, which the operator has not seen: name the node.
    const problems = err.problems.map((p) => {
      const at = /^pools\[(\d+)\]\.nodes\[(\d+)\]/.exec(p.path)
      const node = at ? map.pools[Number(at[1])]?.nodes[Number(at[2])] : undefined
      const message = node ? `${p.message} [node ${node.id}, ${node.address}]` : p.message
      return { path: p.path, message }
    })
    throw new ClusterMapError(err.source, problems)
  }
}

// Summaries -------------------------------------------------------------------------------------

/** One pool of {@link MapSummary}. */
export interface PoolSummary {
  pool: number
  nodes: number
  drives: number
  sets: number
  /** Drives of each node, when every node of the pool has the same number. */
  drivesPerNode?: number
  /** Fewest nodes any set of the pool spans. */
  nodesPerSet: number
  /** Most drives of one set on one node. */
  maxSetDrivesPerNode: number
  /** Whole nodes that may fail with every set of the pool still readable. */
  nodeFailuresForReads: number
  /** Whole nodes that may fail with every set of the pool still writable. */
  nodeFailuresForWrites: number
}

/** What a valid map means: layout, usable capacity and tolerated failures. */
export interface MapSummary {
  cluster: string
  hash: string
  data: number
  parity: number
  /** Drives per erasure set: data + parity. */
  setSize: number
  blockSize: number
  inlineBelow: number
  /** Usable share of raw capacity: data / (data + parity). */
  usableFraction: number
  /** Drives per set that must answer a write: data, plus one when data = parity. */
  writeQuorum: number
  /** Failed drives per set with objects still readable: parity. */
  driveFailuresForReads: number
  /** Failed drives per set with writes still accepted: set size − write quorum. */
  driveFailuresForWrites: number
  nodes: number
  drives: number
  sets: number
  gateways: number
  pools: PoolSummary[]
}

/** Summarizes a map that parseClusterMap accepted. */
export function summarizeMap(map: ClusterMap): MapSummary {
  const { data, parity, blockSize, inlineBelow } = map.erasure
  const n = data + parity
  const writeQuorum = data === parity ? data + 1 : data
  const layout = computeLayout(map)
  const pools = layout.pools.map(({ index, sets }): PoolSummary => {
    const nodes = map.pools[index]!.nodes
    const counts = new Set(nodes.map((node) => node.drives.length))
    let nodesPerSet = Number.POSITIVE_INFINITY
    let maxSetDrivesPerNode = 0
    let reads = Number.POSITIVE_INFINITY
    let writes = Number.POSITIVE_INFINITY
    for (const set of sets) {
      const perNode = new Map<string, number>()
      for (const d of set.drives) perNode.set(d.nodeId, (perNode.get(d.nodeId) ?? 0) + 1)
      const desc = [...perNode.values()].sort((a, b) => b - a)
      nodesPerSet = Math.min(nodesPerSet, desc.length)
      maxSetDrivesPerNode = Math.max(maxSetDrivesPerNode, desc[0] ?? 0)
      reads = Math.min(reads, nodesThatMayFail(desc, parity))
      writes = Math.min(writes, nodesThatMayFail(desc, n - writeQuorum))
    }
    return {
      pool: index,
      nodes: nodes.length,
      drives: nodes.reduce((sum, node) => sum + node.drives.length, 0),
      sets: sets.length,
      ...(counts.size === 1 ? { drivesPerNode: [...counts][0]! } : {}),
      nodesPerSet,
      maxSetDrivesPerNode,
      nodeFailuresForReads: reads,
      nodeFailuresForWrites: writes,
    }
  })
  return {
    cluster: map.cluster,
    hash: mapHash(map),
    data,
    parity,
    setSize: n,
    blockSize,
    inlineBelow,
    usableFraction: data / n,
    writeQuorum,
    driveFailuresForReads: parity,
    driveFailuresForWrites: n - writeQuorum,
    nodes: pools.reduce((sum, p) => sum + p.nodes, 0),
    drives: pools.reduce((sum, p) => sum + p.drives, 0),
    sets: pools.reduce((sum, p) => sum + p.sets, 0),
    gateways: map.gateways.length,
    pools,
  }
}

/** With a set's drives per node in descending order: how many nodes may fail, the worst ones. */
function nodesThatMayFail(desc: readonly number[], driveBudget: number): number {
  let lost = 0
  let nodes = 0
  for (const count of desc) {
    lost += count
    if (lost > driveBudget) break
    nodes++
  }
  return nodes
}

/** The summary for people, one fact a line. */
export function summaryText(s: MapSummary): string {
  const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`
  const lines = [
    `Cluster ${s.cluster}: ${plural(s.pools.length, 'pool')}, ${plural(s.nodes, 'node')}, ` +
      `${plural(s.drives, 'drive')}, ${plural(s.sets, 'erasure set')}, ${plural(s.gateways, 'gateway')}`,
    `Erasure: ${s.data}+${s.parity} (k+m) on sets of ${s.setSize} drives; block ` +
      `${sizeText(s.blockSize)}, objects below ${sizeText(s.inlineBelow)} inline`,
    `Usable capacity: ${Math.round(s.usableFraction * 1000) / 10}% of raw ` +
      `(${s.data} data shards in every ${s.setSize})`,
    `Each set survives ${plural(s.driveFailuresForReads, 'failed drive')} for reads and ` +
      `${s.driveFailuresForWrites} for writes (write quorum ${s.writeQuorum}` +
      `${s.data === s.parity ? ': data + 1, since data = parity' : ''})`,
  ]
  for (const p of s.pools) {
    const drives =
      p.drivesPerNode === undefined
        ? `${plural(p.nodes, 'node')}, ${plural(p.drives, 'drive')}`
        : `${plural(p.nodes, 'node')} × ${plural(p.drivesPerNode, 'drive')} = ${p.drives} drives`
    lines.push(
      `Pool ${p.pool}: ${drives}, ${plural(p.sets, 'set')}; each set spans ` +
        `${p.nodesPerSet === p.nodes ? (p.nodes > 1 ? 'all ' : '') : 'at least '}` +
        `${plural(p.nodesPerSet, 'node')} ` +
        `with at most ${p.maxSetDrivesPerNode} of its drives on one; ` +
        `survives ${plural(p.nodeFailuresForReads, 'failed node')} for reads, ` +
        `${p.nodeFailuresForWrites} for writes`,
    )
  }
  lines.push(`Map hash: ${s.hash}`)
  return lines.join('\n')
}

/** Notes on a valid map that may still not be what the operator wants. */
export function mapNotes(map: ClusterMap): string[] {
  const notes: string[] = []
  if (map.gateways.length === 0) {
    notes.push(
      'the map lists no gateway, so no gateway can connect: add --gateway <peer id> for each ' +
        "(printed by 'tessera-gateway keygen', kept in /etc/tessera/gateway.pub by install.sh)",
    )
  }
  if (map.erasure.parity === 0) notes.push('parity is 0: losing any drive loses data')
  map.pools.forEach((pool, p) => {
    if (pool.nodes.length === 1) {
      notes.push(`pool ${p} has one node: while it is down, the objects of the pool are too`)
    }
  })
  return notes
}

function sizeText(bytes: number): string {
  for (const [unit, factor] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`
  }
  return `${bytes}B`
}

/** The layout as a table: every drive with its pool, set and slot. */
export function layoutText(map: ClusterMap): string {
  const rows = computeLayout(map).pools.flatMap((pool) =>
    pool.sets.flatMap((set) =>
      set.drives.map((d) => [String(d.pool), String(d.set), String(d.slot), d.nodeId, d.path]),
    ),
  )
  return table(['POOL', 'SET', 'SLOT', 'NODE', 'DRIVE'], rows, 'No drives.')
}

/** A ClusterMapError as lines for people: a header and one `path: message (line N)` each. */
export function problemsText(err: ClusterMapError): string {
  const count = err.problems.length === 1 ? '1 problem' : `${err.problems.length} problems`
  return [
    `${err.source}: ${count}`,
    ...err.problems.map(
      (p) => `  ${p.path}: ${p.message}${p.line === undefined ? '' : ` (line ${p.line})`}`,
    ),
  ].join('\n')
}

// The command tree ------------------------------------------------------------------------------

interface PoolOptions {
  keys?: string
  keysDir?: string
  gateway?: string[]
  out?: string
  force?: boolean
  json?: boolean
}

/** The `map` command group: generate, add-pool, validate. Reads no environment. */
export function mapCommand(): Command {
  const map = new Command('map').description(
    'write and check cluster.yaml, the cluster map shared by every node and gateway',
  )

  /** Runs an action, printing failures as `tessera map: …` with exit status 1. */
  const run =
    <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await fn(...args)
      } catch (err) {
        const text = err instanceof ClusterMapError ? problemsText(err) : (err as Error).message
        process.stderr.write(`tessera map: ${text}\n`)
        process.exitCode = 1
      }
    }

  /** --nodes, --drives and --pool, kept in command-line order so that pools keep theirs. */
  const withPools = (cmd: Command, poolArgs: PoolArg[]): Command => {
    const collect = (kind: PoolArg['kind']) => (value: string) => {
      poolArgs.push({ kind, value })
      return value
    }
    return cmd
      .option(
        '--nodes <pattern>',
        "a pool's node addresses, host[:port] (port 7373 by default), with ranges such as " +
          "'node{1...4}.example.net:7373'; repeat with --drives for each pool",
        collect('nodes'),
      )
      .option(
        '--drives <pattern>',
        "the drive folders of every node of that pool, such as '/mnt/disk{1...4}' or " +
          "'/mnt/disk{01...16}'",
        collect('drives'),
      )
      .option(
        '--pool <pattern>',
        "a pool as nodes and drives in one: 'node{1...4}.example.net:7373/mnt/disk{1...4}'",
        collect('pool'),
      )
      .option('--keys <file>', "nodes' public keys: one '<host> <public key>' per line")
      .option('--keys-dir <dir>', "nodes' public keys: one '<host>.pub' file per node")
      .option(
        '--gateway <peer id>',
        'public id of a gateway allowed to connect (repeat for each)',
        (v: string, all: string[] | undefined) => [...(all ?? []), v],
      )
      .option('--out <file>', 'write the map here (default: print it on stdout)')
      .option('--force', 'replace the --out file if it exists')
      .option('--json', 'print the summary as JSON')
  }

  const generateArgs: PoolArg[] = []
  withPools(
    map
      .command('generate')
      .description(
        'write a new cluster map: one pool per --nodes/--drives pair (or --pool), node ids from ' +
          'the host names (node1 for node1.example.net; the whole host when those clash)',
      )
      .requiredOption('--cluster <id>', 'cluster id, written into every drive (e.g. prod)')
      .requiredOption('--data <k>', 'data shards per object block')
      .requiredOption('--parity <m>', 'parity shards per object block')
      .option('--block-size <size>', 'erasure block size, such as 1MiB (default 1MiB)')
      .option('--inline-below <size>', 'objects below this size live inline (default 128KiB)'),
    generateArgs,
  ).action(
    run(
      async (
        o: PoolOptions & {
          cluster: string
          data: string
          parity: string
          blockSize?: string
          inlineBelow?: string
        },
      ) => {
        const built = await generateMap({
          cluster: o.cluster,
          data: count('--data', o.data),
          parity: count('--parity', o.parity),
          ...(o.blockSize !== undefined ? { blockSize: size('--block-size', o.blockSize) } : {}),
          ...(o.inlineBelow !== undefined
            ? { inlineBelow: size('--inline-below', o.inlineBelow) }
            : {}),
          pools: poolPatterns(generateArgs),
          gateways: o.gateway ?? [],
          keys: await keyLookup(o),
        })
        await emit(built, o)
      },
    ),
  )

  const addArgs: PoolArg[] = []
  withPools(
    map
      .command('add-pool')
      .description(
        'append pools (and gateways) to an existing map: existing pools, nodes and drive order ' +
          'stay as they are; comments of the old file are not kept',
      )
      .argument('<map>', 'the current cluster.yaml'),
    addArgs,
  ).action(
    run(async (file: string, o: PoolOptions) => {
      const { map: base } = await loadClusterMap(file)
      const built = await addPools(base, {
        pools: poolPatterns(addArgs),
        gateways: o.gateway ?? [],
        keys: await keyLookup(o),
      })
      await emit(built, o)
    }),
  )

  map
    .command('validate')
    .description(
      'check a cluster map: print every problem with its path and exit 1, or a summary of ' +
        'pools, nodes, drives, sets and the map hash',
    )
    .argument('<map>', 'cluster.yaml')
    .option('--layout', 'also list every drive with its pool, set and slot')
    .option('--json', 'print the summary (or the problems) as JSON')
    .action(
      run(async (file: string, o: { layout?: boolean; json?: boolean }) => {
        let loaded: { map: ClusterMap }
        try {
          loaded = await loadClusterMap(file)
        } catch (err) {
          if (!(err instanceof ClusterMapError)) throw err
          if (o.json) {
            const { source, problems } = err
            process.stdout.write(`${JSON.stringify({ valid: false, source, problems }, null, 2)}\n`)
          } else {
            process.stderr.write(`${problemsText(err)}\n`)
          }
          process.exitCode = 1
          return
        }
        const summary = summarizeMap(loaded.map)
        const notes = mapNotes(loaded.map)
        if (o.json) {
          const layout = o.layout ? { layout: computeLayout(loaded.map) } : {}
          const answer = { valid: true, summary, notes, ...layout }
          process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`)
          return
        }
        const out = [`${file}: valid`, summaryText(summary), ...notes.map((n) => `Note: ${n}`)]
        if (o.layout) out.push('', layoutText(loaded.map))
        process.stdout.write(`${out.join('\n')}\n`)
      }),
    )

  return map
}

/** Writes the map (to --out or stdout) and the summary (stdout, or stderr when stdout has the map). */
async function emit(built: BuiltMap, o: PoolOptions): Promise<void> {
  const summary = summarizeMap(built.map)
  const notes = mapNotes(built.map)
  if (o.out !== undefined) {
    if (!o.force && (await stat(o.out).catch(() => undefined)) !== undefined) {
      throw new MapCliError(`--out ${o.out} exists; give --force to replace it`)
    }
    // A new file renamed over the old: a map in use is never seen half written.
    const tmp = `${o.out}.${process.pid}.tmp`
    try {
      await writeFile(tmp, built.text, { flag: 'wx', mode: 0o644 })
      await rename(tmp, o.out)
    } catch (err) {
      await rm(tmp, { force: true })
      throw new MapCliError(`--out ${o.out}: ${(err as Error).message}`)
    }
  } else {
    process.stdout.write(built.text)
  }
  const report = (text: string) =>
    (o.out === undefined ? process.stderr : process.stdout).write(`${text}\n`)
  if (o.json) {
    report(JSON.stringify({ ...(o.out ? { wrote: o.out } : {}), summary, notes }, null, 2))
    return
  }
  report(
    [
      ...(o.out ? [`Wrote ${o.out}`] : []),
      summaryText(summary),
      ...notes.map((n) => `Note: ${n}`),
    ].join('\n'),
  )
}

function count(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new MapCliError(`${flag} ${value}: want a whole number`)
  return Number(value)
}

function size(flag: string, value: string): number {
  const bytes = parseByteSize(value)
  if (bytes === undefined) {
    throw new MapCliError(`${flag} ${value}: want a size such as 1MiB, 128KiB or 4096`)
  }
  return bytes
}
