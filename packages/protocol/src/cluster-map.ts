/**
 * The cluster map, `cluster.yaml`: the one file every node and gateway shares. It names the
 * cluster, fixes the erasure code, lists the pools with their nodes and drives, and the
 * gateways allowed to connect. {@link parseClusterMap} checks all of it and reports every
 * problem at once; {@link mapHash} is the fingerprint compared in every handshake.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { posix, win32 } from 'node:path'
import {
  Document,
  isAlias,
  isCollection,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
} from 'yaml'
import { poolSetMembers } from './placement.ts'

/** A storage node: one `tessera-node` process and the drives it owns. */
export interface NodeSpec {
  /** Name of the node, unique in the cluster: letters, digits, `.`, `_` and `-`. */
  id: string
  /** Where its RPC listens, `host:port`; an IPv6 host goes in brackets (`[fd00::1]:7373`). */
  address: string
  /** The node's identity: the libp2p peer id of its key (base58, `12D3KooW…`). */
  publicKey: string
  /** Absolute paths of its drive folders; their order fixes their slots in the layout. */
  drives: string[]
  /** Failure domain (rack, room, site); erasure sets spread over zones where they are given. */
  zone?: string
}

/** A server pool: nodes whose drives are cut into erasure sets together. */
export interface PoolSpec {
  nodes: NodeSpec[]
}

/** The erasure code of every object in the cluster. */
export interface ErasureSpec {
  /** Data shards per block, k ≥ 1. */
  data: number
  /** Parity shards per block, m ≥ 0; k + m ≤ 256. */
  parity: number
  /** Bytes of object data per block, from k to 64 MiB; default 1 MiB. */
  blockSize: number
  /** Objects below this many bytes live inline in their version records; default 128 KiB. */
  inlineBelow: number
}

/** The parsed, normalized cluster map: sizes in bytes, defaults filled in. */
export interface ClusterMap {
  /** Cluster id, written into every drive's format file; drives of other clusters are refused. */
  cluster: string
  erasure: ErasureSpec
  /** Pools in map order; a pool's index is its position, so pools are only ever appended. */
  pools: PoolSpec[]
  /** Peer ids of the gateways allowed to connect (nodes of the map always are). */
  gateways: string[]
}

/** One thing wrong with a cluster map. */
export interface ClusterMapProblem {
  /** Where: `pools[0].nodes[1].drives[2]`, `erasure.parity`, or `(root)` for the whole file. */
  path: string
  /** What is wrong and what to do about it. */
  message: string
  /** 1-based line in the file, where the problem has one. */
  line?: number
}

/** Every problem of a cluster map, found at once; thrown by {@link parseClusterMap}. */
export class ClusterMapError extends Error {
  static override name = 'ClusterMapError'
  readonly code = 'INVALID_CLUSTER_MAP'
  /** The file (or label) the map came from. */
  readonly source: string
  readonly problems: ClusterMapProblem[]

  constructor(source: string, problems: ClusterMapProblem[], options?: { cause?: unknown }) {
    const lines = problems.map(
      (p) => `${p.path}: ${p.message}${p.line === undefined ? '' : ` (line ${p.line})`}`,
    )
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`
    super([`cluster map ${source}: ${count}`, ...lines].join('\n'), options)
    this.name = 'ClusterMapError'
    this.source = source
    this.problems = problems
  }
}

const KiB = 1024
const MiB = 1024 * KiB
const DEFAULT_BLOCK_SIZE_BYTES = MiB
const DEFAULT_INLINE_BELOW_BYTES = 128 * KiB
const MAX_BLOCK_SIZE_BYTES = 64 * MiB
// The codec works over GF(2^8): a set has at most 256 shards.
const MAX_SET_DRIVES = 256

const SIZE_UNITS: ReadonlyMap<string, bigint> = new Map([
  ['', 1n],
  ['b', 1n],
  ['kb', 1000n],
  ['mb', 1000n ** 2n],
  ['gb', 1000n ** 3n],
  ['tb', 1000n ** 4n],
  ['kib', 1024n],
  ['mib', 1024n ** 2n],
  ['gib', 1024n ** 3n],
  ['tib', 1024n ** 4n],
])
const SIZE_SYNTAX = /^(\d+)(?:\.(\d+))?\s*([a-z]*)$/i
const SIZE_HINT = 'a size such as 1MiB, 128KiB, 4GiB, 512B or 1MB (decimal), or a number of bytes'

/**
 * Bytes in a size written as `1MiB`, `128KiB`, `4GiB`, `512B`, `1MB` (KB, MB, GB and TB are
 * decimal; KiB, MiB, GiB and TiB binary; units ignore case) or a plain number of bytes.
 * Fractions are allowed when they give whole bytes (`1.5KiB`). Undefined when `text` is none
 * of these or exceeds Number.MAX_SAFE_INTEGER.
 */
export function parseByteSize(text: string): number | undefined {
  const match = SIZE_SYNTAX.exec(text.trim())
  const unit = SIZE_UNITS.get(match?.[3]?.toLowerCase() ?? '-')
  if (match === null || unit === undefined) return undefined
  const fraction = match[2] ?? ''
  const scale = 10n ** BigInt(fraction.length)
  const scaled = (BigInt(match[1]!) * scale + BigInt(fraction || '0')) * unit
  if (scaled % scale !== 0n) return undefined
  const bytes = scaled / scale
  return bytes <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(bytes) : undefined
}

const ROOT_KEYS = ['cluster', 'erasure', 'pools', 'gateways'] as const
const ERASURE_KEYS = ['data', 'parity', 'blockSize', 'inlineBelow'] as const
const POOL_KEYS = ['nodes'] as const
const NODE_KEYS = ['id', 'address', 'publicKey', 'drives', 'zone'] as const

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
const BASE58 = /^[1-9A-HJ-NP-Za-km-z]+$/
const HOST_LABEL = '[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?'
const HOST_NAME = new RegExp(`^${HOST_LABEL}(\\.${HOST_LABEL})*$`)
const ADDRESS_HINT =
  'host:port with a port from 1 to 65535, such as 10.0.0.1:7373 or [fd00::1]:7373'

type Path = readonly (string | number)[]

interface Entry {
  key: unknown
  value: unknown
}

interface Ctx {
  doc: Document.Parsed
  lines: LineCounter
  problems: ClusterMapProblem[]
}

/** A node as read from the file, with what the checks across nodes need. */
interface NodeRef {
  spec: NodeSpec
  path: Path
  yaml: unknown
  /** Its drive list was read (it may still hold bad entries), so drive counts are known. */
  drivesKnown: boolean
}

/**
 * Parses and checks a cluster map. Every problem is collected (YAML syntax, unknown keys, wrong
 * types, missing fields, bad sizes, erasure limits, duplicate ids, addresses, keys or drives,
 * addresses that are not host:port, drive paths that are not absolute, pools whose drives
 * cannot be cut into erasure sets, and sets that lose data when one node fails) and thrown
 * together.
 *
 * @param source - names the file in the error message.
 * @throws ClusterMapError listing every problem, one per line.
 */
export function parseClusterMap(text: string, source = 'cluster.yaml'): ClusterMap {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false })
  const ctx: Ctx = { doc, lines, problems: [] }
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const message =
        err.code === 'MULTIPLE_DOCS'
          ? 'the file must hold one YAML document; remove the second "---" and what follows'
          : err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')
      ctx.problems.push({
        path: '(root)',
        message: `YAML syntax error: ${message}`,
        line: lines.linePos(err.pos[0]).line,
      })
    }
    throw new ClusterMapError(source, ctx.problems)
  }
  if (doc.contents === null) {
    report(ctx, [], `the file is empty; it must be a mapping with keys ${ROOT_KEYS.join(', ')}`)
    throw new ClusterMapError(source, ctx.problems)
  }
  const root = mapping(ctx, doc.contents, [], ROOT_KEYS)
  if (root === undefined) throw new ClusterMapError(source, ctx.problems)

  const cluster = readCluster(ctx, root.fields)
  const erasure = readErasure(ctx, root)
  const nodes: NodeRef[] = []
  const pools = readPools(ctx, root, nodes)
  const gateways: { key: string; index: number; yaml: unknown }[] = []
  const gatewayItems = list(ctx, root.fields.get('gateways'), ['gateways'], 'peer ids')
  gatewayItems?.forEach((item, index) => {
    const key = publicKey(ctx, item, ['gateways', index], root.fields.get('gateways')?.key)
    if (key !== undefined) gateways.push({ key, index, yaml: deref(ctx, item) })
  })

  checkUnique(ctx, nodes, gateways)
  const { shards } = erasure
  if (shards !== undefined) {
    pools.forEach((pool, p) => {
      const refs = nodes.filter((ref) => ref.path[1] === p)
      checkPool(ctx, p, pool.yaml, refs, shards)
    })
  }

  const spec = erasure.spec
  if (ctx.problems.length > 0 || cluster === undefined || spec === undefined) {
    // Checks across nodes run last; file order is easier to work through (the sort is stable).
    ctx.problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
    throw new ClusterMapError(source, ctx.problems)
  }
  return {
    cluster,
    erasure: spec,
    pools: pools.map((pool) => pool.spec),
    gateways: gateways.map((g) => g.key),
  }
}

function readCluster(ctx: Ctx, fields: Map<string, Entry>): string | undefined {
  const entry = required(ctx, fields, ['cluster'], 'the cluster id, a non-empty text')
  if (entry === undefined) return undefined
  const id = text(ctx, entry.value, ['cluster'], 'the cluster id, a non-empty text', entry.key)
  if (id === undefined) return undefined
  if (id === '' || /\s/.test(id)) {
    report(
      ctx,
      ['cluster'],
      `must be a non-empty cluster id without spaces (got "${id}")`,
      entry.value,
    )
    return undefined
  }
  return id
}

/** The erasure settings if all are valid, and the shard counts if those alone are. */
interface ErasureRead {
  spec?: ErasureSpec
  shards?: { data: number; parity: number }
}

function readErasure(ctx: Ctx, root: { node: unknown; fields: Map<string, Entry> }): ErasureRead {
  const entry = required(ctx, root.fields, ['erasure'], 'e.g. { data: 4, parity: 2 }', root.node)
  if (entry === undefined) return {}
  const erasure = mapping(ctx, entry.value, ['erasure'], ERASURE_KEYS, entry.key)
  if (erasure === undefined) return {}
  const { fields } = erasure
  const count = (name: 'data' | 'parity', what: string) => {
    const e = required(ctx, fields, ['erasure', name], what, erasure.node)
    return e && integer(ctx, e.value, ['erasure', name], e.key)
  }
  const sizeOf = (name: 'blockSize' | 'inlineBelow', fallback: number) => {
    const e = fields.get(name)
    return e === undefined ? fallback : size(ctx, e.value, ['erasure', name], e.key)
  }
  const data = count('data', 'the number of data shards per block, e.g. 4')
  const parity = count('parity', 'the number of parity shards per block, e.g. 2')
  const blockSize = sizeOf('blockSize', DEFAULT_BLOCK_SIZE_BYTES)
  const inlineBelow = sizeOf('inlineBelow', DEFAULT_INLINE_BELOW_BYTES)
  let ok = true
  const fail = (name: string, message: string) => {
    report(ctx, ['erasure', name], message, fields.get(name)?.value ?? erasure.node)
    ok = false
  }
  if (data !== undefined && data < 1) fail('data', `must be at least 1 (got ${data})`)
  if (parity !== undefined && parity < 0) fail('parity', `must be at least 0 (got ${parity})`)
  if (data !== undefined && parity !== undefined && ok && data + parity > MAX_SET_DRIVES) {
    report(
      ctx,
      ['erasure'],
      `data + parity is ${data + parity}, more than the ${MAX_SET_DRIVES} shards a set can have`,
      erasure.node,
    )
    ok = false
  }
  const shards = ok && data !== undefined && parity !== undefined ? { data, parity } : undefined
  if (blockSize !== undefined) {
    if (data !== undefined && data >= 1 && blockSize < data) {
      fail(
        'blockSize',
        `must be at least data = ${data} bytes, one per data shard (got ${blockSize})`,
      )
    } else if (blockSize > MAX_BLOCK_SIZE_BYTES) {
      fail('blockSize', `must be at most 64MiB (got ${blockSize} bytes)`)
    } else if (blockSize < 1) {
      fail('blockSize', 'must be at least 1 byte')
    }
  }
  if (!ok || shards === undefined || blockSize === undefined || inlineBelow === undefined) {
    return { shards }
  }
  return { spec: { ...shards, blockSize, inlineBelow }, shards }
}

function readPools(
  ctx: Ctx,
  root: { node: unknown; fields: Map<string, Entry> },
  nodes: NodeRef[],
): { spec: PoolSpec; yaml: unknown }[] {
  const entry = required(ctx, root.fields, ['pools'], 'a list of pools, each with nodes', root.node)
  const items = entry && list(ctx, entry, ['pools'], 'pools')
  if (items === undefined) return []
  if (items.length === 0) {
    report(ctx, ['pools'], 'must list at least one pool of nodes', entry?.value ?? entry?.key)
  }
  return items.map((item, p) => {
    const spec: PoolSpec = { nodes: [] }
    const pool = mapping(ctx, item, ['pools', p], POOL_KEYS)
    if (pool === undefined) return { spec, yaml: item }
    const nodesEntry = required(ctx, pool.fields, ['pools', p, 'nodes'], 'a list', pool.node)
    const nodeItems = nodesEntry && list(ctx, nodesEntry, ['pools', p, 'nodes'], 'nodes')
    if (nodeItems?.length === 0) {
      report(ctx, ['pools', p, 'nodes'], 'must list at least one node', nodesEntry?.key)
    }
    nodeItems?.forEach((nodeItem, i) => {
      const ref = readNode(ctx, nodeItem, ['pools', p, 'nodes', i])
      spec.nodes.push(ref.spec)
      nodes.push(ref)
    })
    return { spec, yaml: pool.node }
  })
}

function readNode(ctx: Ctx, item: unknown, path: Path): NodeRef {
  const spec: NodeSpec = { id: '', address: '', publicKey: '', drives: [] }
  const ref: NodeRef = { spec, path, yaml: deref(ctx, item), drivesKnown: false }
  const node = mapping(ctx, item, path, NODE_KEYS)
  if (node === undefined) return ref
  const { fields } = node

  const idEntry = required(ctx, fields, [...path, 'id'], 'a node name such as n1', node.node)
  const id = idEntry && text(ctx, idEntry.value, [...path, 'id'], 'a node name', idEntry.key)
  if (id !== undefined && !NODE_ID.test(id)) {
    report(
      ctx,
      [...path, 'id'],
      `"${id}" is not a valid node id: use letters, digits, ".", "_" and "-", ` +
        'starting with a letter or digit',
      idEntry?.value,
    )
  } else if (id !== undefined) {
    spec.id = id
  }

  const addrEntry = required(ctx, fields, [...path, 'address'], ADDRESS_HINT, node.node)
  const address = addrEntry && text(ctx, addrEntry.value, [...path, 'address'], ADDRESS_HINT)
  if (address !== undefined) {
    const problem = checkAddress(address)
    if (problem === undefined) spec.address = address
    else report(ctx, [...path, 'address'], problem, addrEntry?.value)
  }

  const keyEntry = required(
    ctx,
    fields,
    [...path, 'publicKey'],
    "the peer id of the node's identity key (12D3KooW…)",
    node.node,
  )
  const key = keyEntry && publicKey(ctx, keyEntry.value, [...path, 'publicKey'], keyEntry.key)
  if (key !== undefined) spec.publicKey = key

  const drivesEntry = required(
    ctx,
    fields,
    [...path, 'drives'],
    'a list of absolute drive folders such as [/mnt/d1, /mnt/d2]',
    node.node,
  )
  const drives =
    drivesEntry &&
    list(ctx, drivesEntry, [...path, 'drives'], 'drive folders such as [/mnt/d1, /mnt/d2]')
  if (drives !== undefined) {
    ref.drivesKnown = true
    if (drives.length === 0) {
      report(ctx, [...path, 'drives'], 'must list at least one drive folder', drivesEntry?.key)
    }
    const seen: { norm: string; index: number }[] = []
    drives.forEach((item, d) => {
      const drivePath = [...path, 'drives', d]
      const drive = text(ctx, item, drivePath, 'an absolute folder path')
      // The placeholder keeps the count right for the pool checks even when this entry is bad.
      spec.drives.push(drive ?? '')
      if (drive === undefined) return
      if (!isAbsolutePath(drive)) {
        report(ctx, drivePath, `must be an absolute path such as /mnt/d1 (got "${drive}")`, item)
        return
      }
      const norm = normalizeDrive(drive)
      for (const other of seen) {
        const where = formatPath([...path, 'drives', other.index])
        if (other.norm === norm) {
          report(ctx, drivePath, `duplicate drive "${drive}" on this node (also ${where})`, item)
          return
        }
        if (isInside(norm, other.norm) || isInside(other.norm, norm)) {
          report(
            ctx,
            drivePath,
            `"${drive}" and ${where} are nested; each drive must be a separate folder`,
            item,
          )
          return
        }
      }
      seen.push({ norm, index: d })
    })
  }

  const zoneEntry = fields.get('zone')
  if (zoneEntry !== undefined) {
    const zone = text(ctx, zoneEntry.value, [...path, 'zone'], 'a zone name', zoneEntry.key)
    if (zone === '') {
      report(ctx, [...path, 'zone'], 'must not be empty; remove the key for no zone', zoneEntry.key)
    } else if (zone !== undefined) {
      spec.zone = zone
    }
  }
  return ref
}

function publicKey(ctx: Ctx, node: unknown, path: Path, near?: unknown): string | undefined {
  const what = 'a peer id of an identity key (base58, such as 12D3KooW…)'
  const key = text(ctx, node, path, what, near)
  if (key === undefined) return undefined
  if (!BASE58.test(key)) {
    report(
      ctx,
      path,
      `"${key}" is not a peer id: it must be base58 (no 0, O, I, l, spaces or punctuation); ` +
        'copy it again from the identity of the node or gateway',
      deref(ctx, node) ?? near,
    )
    return undefined
  }
  return key
}

/** Duplicate node ids, addresses and public keys (nodes and gateways), across all pools. */
function checkUnique(
  ctx: Ctx,
  nodes: readonly NodeRef[],
  gateways: readonly { key: string; index: number; yaml: unknown }[],
): void {
  const ids = new Map<string, Path>()
  const addresses = new Map<string, Path>()
  const keys = new Map<string, string>()
  const label = (ref: NodeRef) => `node ${ref.spec.id || '?'} (${formatPath(ref.path)})`
  for (const ref of nodes) {
    const { id, address, publicKey: key } = ref.spec
    const first = ids.get(id)
    if (id !== '' && first !== undefined) {
      report(
        ctx,
        [...ref.path, 'id'],
        `duplicate node id "${id}", already used by ${formatPath(first)}; ` +
          'ids must be unique across all pools',
        ref.yaml,
      )
    } else if (id !== '') {
      ids.set(id, ref.path)
    }
    const norm = address.toLowerCase()
    const firstAddress = addresses.get(norm)
    if (address !== '' && firstAddress !== undefined) {
      report(
        ctx,
        [...ref.path, 'address'],
        `duplicate address "${address}", already used by ${formatPath(firstAddress)}; ` +
          'every node needs its own address',
        ref.yaml,
      )
    } else if (address !== '') {
      addresses.set(norm, ref.path)
    }
    const owner = keys.get(key)
    if (key !== '' && owner !== undefined) {
      report(ctx, [...ref.path, 'publicKey'], duplicateKey(owner), ref.yaml)
    } else if (key !== '') {
      keys.set(key, label(ref))
    }
  }
  for (const { key, index, yaml } of gateways) {
    const owner = keys.get(key)
    if (owner !== undefined) {
      report(ctx, ['gateways', index], duplicateKey(owner), yaml)
    } else {
      keys.set(key, `gateway ${formatPath(['gateways', index])}`)
    }
  }
}

/** Drive counts, zones and, on the computed layout, what one node outage would cost. */
function checkPool(
  ctx: Ctx,
  p: number,
  yaml: unknown,
  refs: readonly NodeRef[],
  shards: { data: number; parity: number },
): void {
  if (refs.length === 0 || !refs.every((ref) => ref.drivesKnown)) return
  const { data, parity } = shards
  const n = data + parity
  const drives = refs.reduce((sum, ref) => sum + ref.spec.drives.length, 0)
  const code = `k+m = ${data}+${parity} = ${n}`
  if (drives < n) {
    report(
      ctx,
      ['pools', p],
      `${code} is larger than the pool's ${drives} drive(s): an erasure set needs ${n} drives; ` +
        'add drives to the pool or lower erasure.data/parity',
      yaml,
    )
    return
  }
  if (drives % n !== 0) {
    const below = drives - (drives % n)
    report(
      ctx,
      ['pools', p],
      `the pool has ${drives} drives, which is not a multiple of ${code}: ` +
        `give it ${below} or ${below + n} drives, or change erasure.data/parity`,
      yaml,
    )
    return
  }
  const zoned = refs.filter((ref) => ref.spec.zone !== undefined)
  if (zoned.length > 0 && zoned.length < refs.length) {
    const missing = refs.filter((ref) => ref.spec.zone === undefined).map((ref) => ref.spec.id)
    report(
      ctx,
      ['pools', p],
      `node(s) ${missing.join(', ')} have no zone while others of the pool do; ` +
        'give every node of the pool a zone, or none',
      yaml,
    )
    return
  }
  if (refs.length < 2) return

  const sets = poolSetMembers(
    refs.map((ref) => ref.spec),
    n,
  )
  const losses = new Map<number, { set: number; count: number }[]>()
  sets.forEach((members, s) => {
    const counts = new Map<number, number>()
    for (const { node } of members) counts.set(node, (counts.get(node) ?? 0) + 1)
    for (const [node, count] of counts) {
      if (count <= parity) continue
      const list = losses.get(node) ?? []
      list.push({ set: s, count })
      losses.set(node, list)
    }
  })
  for (const [node, lost] of losses) {
    const ref = refs[node]!
    const id = ref.spec.id || '?'
    const names = lost.map((l) => l.set).join(', ')
    const most = Math.max(...lost.map((l) => l.count))
    report(
      ctx,
      ref.path,
      `losing node ${id} loses data of set${lost.length > 1 ? 's' : ''} ${names} of pool ${p}: ` +
        `it holds up to ${most} of a set's ${n} drives and parity is ${parity}. ` +
        `It has ${ref.spec.drives.length} of the pool's ${drives} drives; with ${sets.length} ` +
        `set(s) a node may hold at most parity × sets = ${parity * sets.length}. ` +
        'Spread the drives over more nodes or raise erasure.parity',
      ref.yaml,
    )
  }
}

function duplicateKey(owner: string): string {
  return `duplicate public key, already used by ${owner}; every node and gateway needs its own key`
}

function checkAddress(address: string): string | undefined {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d+)$/.exec(address)
  if (match === null) {
    const hint = isIP(address) === 6 ? '; an IPv6 host goes in brackets, as in [fd00::1]:7373' : ''
    return `must be ${ADDRESS_HINT} (got "${address}")${hint}`
  }
  const [, v6, host, portText] = match
  const port = Number(portText)
  if (!(port >= 1 && port <= 65535)) {
    return `port ${portText} is out of range: must be ${ADDRESS_HINT} (got "${address}")`
  }
  if (v6 !== undefined ? isIP(v6) !== 6 : !isHost(host ?? '')) {
    const what = `"${v6 ?? host}" is not a host name or IP address`
    return `${what}: must be ${ADDRESS_HINT} (got "${address}")`
  }
  return undefined
}

function isHost(host: string): boolean {
  if (/^[\d.]+$/.test(host)) return isIP(host) === 4
  return HOST_NAME.test(host)
}

// The map is the same on every machine, so the check must not depend on the platform parsing it.
function isAbsolutePath(path: string): boolean {
  return posix.isAbsolute(path) || /^[A-Za-z]:[\\/]/.test(path)
}

function normalizeDrive(path: string): string {
  if (path.startsWith('/')) return posix.normalize(path).replace(/(.)\/+$/, '$1')
  return win32
    .normalize(path)
    .toLowerCase()
    .replace(/(.)\\+$/, '$1')
}

function isInside(path: string, folder: string): boolean {
  const sep = folder.startsWith('/') ? '/' : '\\'
  return path.startsWith(folder.endsWith(sep) ? folder : folder + sep)
}

// ---------------------------------------------------------------------------------------------
// Reading the YAML tree with paths and line numbers.

function formatPath(path: Path): string {
  let out = ''
  for (const part of path) {
    out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`
  }
  return out === '' ? '(root)' : out
}

function report(ctx: Ctx, path: Path, message: string, at?: unknown): void {
  const problem: ClusterMapProblem = { path: formatPath(path), message }
  const range = (at as { range?: unknown } | null | undefined)?.range
  if (Array.isArray(range) && typeof range[0] === 'number') {
    problem.line = ctx.lines.linePos(range[0]).line
  }
  ctx.problems.push(problem)
}

// An alias without its anchor stays an alias, so the problem report can name it.
function deref(ctx: Ctx, node: unknown): unknown {
  return isAlias(node) ? (node.resolve(ctx.doc) ?? node) : node
}

function describe(node: unknown): string {
  if (node === undefined || node === null) return 'nothing'
  if (isMap(node)) return 'a mapping'
  if (isSeq(node)) return 'a list'
  if (isAlias(node)) return `*${node.source}, an alias with no anchor &${node.source} before it`
  if (isScalar(node)) {
    if (node.value === null) return 'an empty value'
    if (typeof node.value === 'string') return `the text "${node.value}"`
    return `${node.source ?? String(node.value)}`
  }
  return 'an unsupported value'
}

function mapping(
  ctx: Ctx,
  item: unknown,
  path: Path,
  allowed: readonly string[],
  near?: unknown,
): { node: unknown; fields: Map<string, Entry> } | undefined {
  const node = deref(ctx, item)
  if (!isMap(node)) {
    report(
      ctx,
      path,
      `must be a mapping with keys ${allowed.join(', ')}, got ${describe(node)}`,
      node ?? near,
    )
    return undefined
  }
  const fields = new Map<string, Entry>()
  for (const pair of node.items) {
    const key = deref(ctx, pair.key)
    const name = isScalar(key) ? scalarText(key) : undefined
    if (name === undefined) {
      report(ctx, path, `keys must be plain names, got ${describe(key)}`, key)
    } else if (!allowed.includes(name)) {
      report(
        ctx,
        [...path, name],
        `unknown key "${name}"${suggest(name, allowed)}; ` +
          `allowed keys here are ${allowed.join(', ')}`,
        key,
      )
    } else if (fields.has(name)) {
      report(ctx, [...path, name], 'is given more than once; keep one', key)
    } else {
      fields.set(name, { key, value: pair.value })
    }
  }
  return { node, fields }
}

function required(
  ctx: Ctx,
  fields: Map<string, Entry>,
  path: Path,
  expect: string,
  near?: unknown,
): Entry | undefined {
  const entry = fields.get(path[path.length - 1] as string)
  if (entry === undefined) report(ctx, path, `is missing: expected ${expect}`, near)
  return entry
}

/** The items of a list; an empty value counts as an empty list. */
function list(ctx: Ctx, entry: Entry | undefined, path: Path, what: string): unknown[] | undefined {
  if (entry === undefined) return []
  const node = deref(ctx, entry.value)
  if (node === null || (isScalar(node) && node.value === null)) return []
  if (isSeq(node)) return node.items
  report(ctx, path, `must be a list of ${what}, got ${describe(node)}`, node ?? entry.key)
  return undefined
}

// Scalars read as text keep their spelling in the file: `id: 0123` is "0123", not 123.
function scalarText(node: { value: unknown; source?: string }): string | undefined {
  const { value } = node
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return node.source ?? String(value)
  }
  return undefined
}

function text(
  ctx: Ctx,
  item: unknown,
  path: Path,
  expect: string,
  near?: unknown,
): string | undefined {
  const node = deref(ctx, item)
  const value = isScalar(node) ? scalarText(node) : undefined
  if (value === undefined)
    report(ctx, path, `must be ${expect}, got ${describe(node)}`, node ?? near)
  return value
}

function integer(ctx: Ctx, item: unknown, path: Path, near?: unknown): number | undefined {
  const node = deref(ctx, item)
  if (isScalar(node) && typeof node.value === 'number' && Number.isSafeInteger(node.value)) {
    return node.value
  }
  const quoted =
    isScalar(node) && typeof node.value === 'string' && /^-?\d+$/.test(node.value)
      ? '; write it without quotes'
      : ''
  report(ctx, path, `must be a whole number, got ${describe(node)}${quoted}`, node ?? near)
  return undefined
}

function size(ctx: Ctx, item: unknown, path: Path, near?: unknown): number | undefined {
  const node = deref(ctx, item)
  if (isScalar(node)) {
    const { value } = node
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value
    const bytes = typeof value === 'string' ? parseByteSize(value) : undefined
    if (bytes !== undefined) return bytes
  }
  report(ctx, path, `must be ${SIZE_HINT}, got ${describe(node)}`, node ?? near)
  return undefined
}

function suggest(name: string, allowed: readonly string[]): string {
  const close = allowed.find((a) => editDistance(name.toLowerCase(), a.toLowerCase()) <= 2)
  return close === undefined ? '' : ` (did you mean "${close}"?)`
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost))
    }
    prev = row
  }
  return prev[b.length]!
}

// ---------------------------------------------------------------------------------------------
// Hash, load, stringify.

/**
 * The map's fingerprint, compared in every handshake: hex SHA-256 of a canonical JSON form of
 * the normalized map (keys in alphabetical order at every level, sizes in bytes, gateways
 * sorted because their order means nothing). Comments, formatting, key order and size
 * spelling in the file do not change it; any change of meaning does, including the order of
 * pools, nodes and drives, which fixes the layout.
 */
export function mapHash(map: ClusterMap): string {
  const { blockSize, data, inlineBelow, parity } = map.erasure
  const canonical = {
    cluster: map.cluster,
    erasure: { blockSize, data, inlineBelow, parity },
    gateways: [...map.gateways].sort(),
    pools: map.pools.map((pool) => ({
      nodes: pool.nodes.map(({ address, drives, id, publicKey, zone }) => ({
        address,
        drives: [...drives],
        id,
        publicKey,
        ...(zone === undefined ? {} : { zone }),
      })),
    })),
  }
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex')
}

/**
 * Reads and parses the cluster map at `path`.
 *
 * @throws ClusterMapError naming the file, when it cannot be read or is not a valid map.
 */
export async function loadClusterMap(path: string): Promise<{ map: ClusterMap; hash: string }> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err)
    throw new ClusterMapError(
      path,
      [
        {
          path: '(root)',
          message: `cannot read the file (${why}); check the path and its permissions`,
        },
      ],
      { cause: err },
    )
  }
  const map = parseClusterMap(text, path)
  return { map, hash: mapHash(map) }
}

/**
 * The map as `cluster.yaml` text that {@link parseClusterMap} reads back to an equal map:
 * erasure settings and each node on one flow-style line, sizes in the largest binary unit
 * that divides them.
 */
export function stringifyClusterMap(map: ClusterMap): string {
  const doc = new Document()
  const flow = (value: unknown) => {
    const node = doc.createNode(value)
    if (isCollection(node)) node.flow = true
    return node
  }
  doc.contents = doc.createNode({
    cluster: map.cluster,
    erasure: flow({
      data: map.erasure.data,
      parity: map.erasure.parity,
      blockSize: formatSize(map.erasure.blockSize),
      inlineBelow: formatSize(map.erasure.inlineBelow),
    }),
    pools: map.pools.map((pool) => ({
      nodes: pool.nodes.map((node) =>
        flow({
          id: node.id,
          address: node.address,
          publicKey: node.publicKey,
          drives: [...node.drives],
          ...(node.zone === undefined ? {} : { zone: node.zone }),
        }),
      ),
    })),
    gateways: flow([...map.gateways]),
  })
  return doc.toString({ lineWidth: 0 })
}

function formatSize(bytes: number): string | number {
  for (const [unit, factor] of [
    ['TiB', 1024 ** 4],
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes > 0 && bytes % factor === 0) return `${bytes / factor}${unit}`
  }
  return bytes
}
