/**
 * A multi-process cluster on loopback, for tests, benchmarks and operators trying Tessera out:
 * N `tessera-node` processes and G `tessera-gateway` processes started from the compiled CLIs,
 * each with its own identity key and config file, sharing one cluster.yaml and one root
 * credential, all under one folder:
 *
 * ```
 * <dir>/cluster.yaml           the map (nodes on 127.0.0.1, erasure settings, gateway ids)
 * <dir>/credentials.yaml       root credential, mode 0600, read by every gateway
 * <dir>/master.key             cluster master key, mode 0600, read by every gateway
 * <dir>/n1/node.key            identity (0600), node.yaml, node.log, drive folders d1…
 * <dir>/g1/gateway.key         identity (0600), gateway.yaml, gateway.log
 * ```
 *
 * The first start writes these files; a later start on the same folder reuses the map, keys and
 * credential (so data survives restarts) and ignores the layout options. Nothing here depends on
 * a test framework: `test/harness/cluster.ts` and the S3 benchmark wrap it.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeNewMasterKeyFile } from '@tessera/gateway'
import {
  type ClusterMap,
  DAEMON_V8_FLAGS,
  daemonEnv,
  generateIdentity,
  type Identity,
  loadClusterMap,
  loadIdentity,
  parseClusterMap,
  STOP_WITH_STDIN_FLAG,
  saveIdentity,
  stringifyClusterMap,
} from '@tessera/protocol'

/** The compiled `tessera-node` CLI (`dist/src/main.js` next to the package's entry point). */
export const NODE_MAIN = fileURLToPath(new URL('./main.js', import.meta.resolve('@tessera/node')))
/** The compiled `tessera-gateway` CLI. */
export const GATEWAY_MAIN = fileURLToPath(
  new URL('./main.js', import.meta.resolve('@tessera/gateway')),
)

/** An S3 root credential. */
export interface RootCredential {
  accessKeyId: string
  secretAccessKey: string
}

/** What {@link startLocalCluster} builds. Layout options apply on the first start only. */
export interface LocalClusterOptions {
  /** Folder of every file of the cluster; created (mode 0700) if missing. */
  dir: string
  /** Storage node processes; default 4. */
  nodes?: number
  /** Drive folders per node; default 1. */
  drivesPerNode?: number
  /** Data shards per stripe; default 2. */
  data?: number
  /** Parity shards per stripe; default 2. */
  parity?: number
  /** Erasure block size in bytes; default 1 MiB. */
  blockSize?: number
  /** Objects smaller than this many bytes are stored inline in metadata; default 128 KiB. */
  inlineBelow?: number
  /** Gateway processes, each with its own identity; default 1. */
  gateways?: number
  /** Drive folder of node `node` (0-based), drive `drive` (0-based); default <dir>/n<i>/d<j>. */
  drivePath?: (dir: string, node: number, drive: number) => string
  /**
   * Public ids of further gateway identities to list in the map (first), such as a test's own
   * PeerPool that calls nodes directly.
   */
  extraGateways?: readonly string[]
  /** The cluster id in the map; default `local-<random>`. */
  clusterName?: string
  /**
   * The root credential. Given: written to credentials.yaml (replacing any). Not given: the
   * folder's credentials.yaml, or a new random one (then {@link LocalCluster.createdRoot} is set).
   */
  root?: RootCredential
  /**
   * Where gateways listen: `host:port`, gateway i on port+i (port 0: any free port, chosen anew
   * at each start). Default `127.0.0.1:0`. Read at every start.
   */
  gatewayAddress?: string
  /** pino level of every process; default `info`. Read at every start. */
  logLevel?: string
  /** Domain for virtual-hosted-style requests on every gateway (`<bucket>.<domain>`). */
  domain?: string
  /** How often nodes empty their drives' trash (ms); default the node's own. Read at every start. */
  trashIntervalMs?: number
  /**
   * Give every node a metrics and health server on a free loopback port (`metricsListen:
   * 127.0.0.1:0`), its URL in {@link LocalNode.metricsEndpoint}. Read at every start.
   */
  nodeMetrics?: boolean
  /**
   * Further `node.yaml` settings for every node, written as `key: value` lines (for example
   * `{ lifecycleIntervalMs: 500 }`). Read at every start.
   */
  nodeConfig?: Readonly<Record<string, string | number>>
  /** `node` flags for every process after DAEMON_V8_FLAGS (e.g. `--max-old-space-size=512`). */
  execArgv?: readonly string[]
  /**
   * A command that process `id` runs under, in front of `node` (such as `['ip', 'netns',
   * 'exec', 'h1']` to start it in a network namespace). It must exec `node` in its place, so
   * that the signals of {@link LocalCluster.stop} reach the daemon. Undefined or empty: `node`
   * itself. Read at every start.
   */
  launcher?: (id: string) => readonly string[] | undefined
  /** How long a process may take to listen before it is killed and the start fails; default 60 s. */
  startTimeoutMs?: number
  /** Whether to start every process now (default true); false only writes the files. */
  start?: boolean
  /** Called when a process exits without {@link LocalCluster.stop} having been asked to stop it. */
  onExit?: (id: string, code: number | null, signal: NodeJS.Signals | null) => void
}

/** A storage node process of the cluster. */
export interface LocalNode {
  /** `n1`, `n2`, …: the node's id in the map. */
  id: string
  /** RPC address, `127.0.0.1:<port>`. */
  address: string
  /** The node's peer id (its identity's public key). */
  publicKey: string
  /** The node's folder: key, config and log. */
  home: string
  drives: string[]
  configPath: string
  /** stdout and stderr of every start, appended. */
  logPath: string
  /** The running process, if any. */
  child: ChildProcess | undefined
  /**
   * `http://127.0.0.1:<port>` of the node's metrics server (/metrics, /health/live|ready) while
   * it runs with `metricsListen` set in its config, else ''.
   */
  metricsEndpoint: string
}

/** A gateway process of the cluster. */
export interface LocalGateway {
  /** `g1`, `g2`, … */
  id: string
  publicKey: string
  home: string
  configPath: string
  logPath: string
  /** `http://<host>:<port>` while running (127.0.0.1 for a wildcard host), else ''. */
  endpoint: string
  /** The S3 port while running, else 0. */
  port: number
  /** The host clients connect to (`[::1]` style for IPv6). */
  host: string
  child: ChildProcess | undefined
}

/** Ports freePort gave out in this process, oldest first (a cluster's are not bound yet). */
const givenOut = new Set<number>()

/** A free loopback port (listen on 0, read, close). */
export async function freePort(): Promise<number> {
  // Below Linux's ephemeral range (32768 and up): a port the kernel hands out for listen(0)
  // can be taken by any process's next outgoing connection before our node binds it, which
  // happens when tests run side by side. A random port down here only clashes with another
  // random pick, and is checked free first; a pick this process made before is skipped, since
  // the ports of a cluster are all picked before any is bound (two nodes got the same port
  // about once in ten CI runs).
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (givenOut.has(port) || !(await canListen(port))) continue
    givenOut.add(port)
    if (givenOut.size > 4000) givenOut.delete(givenOut.values().next().value!)
    return port
  }
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  await once(s, 'close')
  return port
}

/** Whether a loopback listener can take `port` right now. */
export async function canListen(port: number): Promise<boolean> {
  const s = createServer()
  try {
    s.listen(port, '127.0.0.1')
    await once(s, 'listening')
    s.close()
    await once(s, 'close')
    return true
  } catch {
    return false
  }
}

/** A running (or stopped) local cluster; see {@link startLocalCluster}. */
export class LocalCluster {
  /** Absolute path of the cluster's folder. */
  readonly dir: string
  readonly map: ClusterMap
  readonly nodes: readonly LocalNode[]
  readonly gateways: readonly LocalGateway[]
  /** The root credential every gateway accepts. */
  readonly root: RootCredential
  /** credentials.yaml (mode 0600). */
  readonly credentialsPath: string
  /** Set when this start created the root credential (to show it once). */
  readonly createdRoot: RootCredential | undefined
  /** Whether this start created the cluster's files (false: an existing folder was reused). */
  readonly created: boolean
  readonly #opts: LocalClusterOptions
  readonly #stopping = new Set<string>()

  constructor(init: {
    dir: string
    map: ClusterMap
    nodes: LocalNode[]
    gateways: LocalGateway[]
    root: RootCredential
    createdRoot: RootCredential | undefined
    created: boolean
    opts: LocalClusterOptions
  }) {
    this.dir = init.dir
    this.map = init.map
    this.nodes = init.nodes
    this.gateways = init.gateways
    this.root = init.root
    this.credentialsPath = join(init.dir, 'credentials.yaml')
    this.createdRoot = init.createdRoot
    this.created = init.created
    this.#opts = init.opts
  }

  /** Node `id`; throws if there is none. */
  node(id: string): LocalNode {
    const n = this.nodes.find((x) => x.id === id)
    if (!n) throw new Error(`no node ${id}`)
    return n
  }

  /** Gateway `id`; throws if there is none. */
  gateway(id: string): LocalGateway {
    const g = this.gateways.find((x) => x.id === id)
    if (!g) throw new Error(`no gateway ${id}`)
    return g
  }

  /** Pids of the running processes, by id. */
  pids(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const p of [...this.nodes, ...this.gateways]) {
      if (p.child?.pid !== undefined && running(p.child)) out[p.id] = p.child.pid
    }
    return out
  }

  /**
   * Starts node or gateway `id` and waits until it listens; rejects with (the start of) its
   * stderr if it exits first or takes longer than `startTimeoutMs`.
   */
  async start(id: string): Promise<void> {
    const g = this.gateways.find((x) => x.id === id)
    const p: LocalNode | LocalGateway = g ?? this.node(id)
    if (p.child && running(p.child)) throw new Error(`${id} is already running`)
    const { child, line } = await spawnDaemon({
      main: g ? GATEWAY_MAIN : NODE_MAIN,
      configPath: p.configPath,
      logPath: p.logPath,
      what: `${g ? 'gateway' : 'node'} ${id}`,
      execArgv: this.#opts.execArgv ?? [],
      launcher: this.#opts.launcher?.(id) ?? [],
      timeoutMs: this.#opts.startTimeoutMs ?? 60_000,
    })
    p.child = child
    child.once('exit', (code, signal) => {
      if (p.child === child) p.child = undefined
      if (g) {
        g.endpoint = ''
        g.port = 0
      } else (p as LocalNode).metricsEndpoint = ''
      if (!this.#stopping.has(id)) this.#opts.onExit?.(id, code, signal)
    })
    if (g) {
      g.port = (JSON.parse(line) as { listening: { port: number } }).listening.port
      g.endpoint = `http://${g.host}:${g.port}`
    } else {
      const m = (JSON.parse(line) as { metrics?: { port: number } }).metrics
      ;(p as LocalNode).metricsEndpoint = m ? `http://127.0.0.1:${m.port}` : ''
    }
  }

  /**
   * Stops node or gateway `id` with `signal` (SIGTERM: an orderly stop; SIGKILL: a crash) and
   * waits for it to end, SIGKILLing it if it takes longer than `killAfterMs` (default 10 s).
   * Resolves with its exit code (null when killed by a signal or not running).
   */
  async stop(
    id: string,
    signal: NodeJS.Signals = 'SIGTERM',
    killAfterMs = 10_000,
  ): Promise<number | null> {
    const p: LocalNode | LocalGateway = this.gateways.find((g) => g.id === id) ?? this.node(id)
    const child = p.child
    if (!child || !running(child)) return child?.exitCode ?? null
    this.#stopping.add(id)
    try {
      const exited = once(child, 'exit')
      child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
      const [code] = await exited
      clearTimeout(timer)
      return code as number | null
    } finally {
      this.#stopping.delete(id)
    }
  }

  /**
   * Stops every process: gateways first, then nodes. `SIGTERM` (default) lets each finish what
   * it is doing; `SIGKILL` is quicker for throwaway clusters. The files stay.
   */
  async close(opts: { signal?: NodeJS.Signals } = {}): Promise<void> {
    const signal = opts.signal ?? 'SIGTERM'
    await Promise.all(this.gateways.map((g) => this.stop(g.id, signal)))
    await Promise.all(this.nodes.map((n) => this.stop(n.id, signal)))
  }
}

/**
 * Writes (or reuses) a cluster's files under `opts.dir` and starts every node, then every
 * gateway. If a process fails to start, those already started are stopped and the error thrown.
 */
export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  const dir = resolve(opts.dir)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const mapPath = join(dir, 'cluster.yaml')
  const created = !(await exists(mapPath))
  const map = created ? await createFiles(dir, opts) : (await loadClusterMap(mapPath)).map
  const { root, createdRoot } = await rootCredential(dir, opts.root)
  // One master key for every gateway: it seals stored secrets and session tokens.
  const masterKeyPath = join(dir, 'master.key')
  if (!(await exists(masterKeyPath))) await writeNewMasterKeyFile(masterKeyPath)

  const logLevel = opts.logLevel ?? 'info'
  const nodes: LocalNode[] = []
  for (const spec of map.pools.flatMap((p) => p.nodes)) {
    const home = join(dir, spec.id)
    const configPath = join(home, 'node.yaml')
    await writeFile(
      configPath,
      `node: ${spec.id}\nmap: ../cluster.yaml\nidentity: node.key\nlogLevel: ${logLevel}\n` +
        (opts.trashIntervalMs === undefined ? '' : `trashIntervalMs: ${opts.trashIntervalMs}\n`) +
        (opts.nodeMetrics ? 'metricsListen: 127.0.0.1:0\n' : '') +
        Object.entries(opts.nodeConfig ?? {})
          .map(([k, v]) => `${k}: ${v}\n`)
          .join(''),
    )
    nodes.push({
      id: spec.id,
      address: spec.address,
      publicKey: spec.publicKey,
      home,
      drives: [...spec.drives],
      configPath,
      logPath: join(home, 'node.log'),
      child: undefined,
      metricsEndpoint: '',
    })
  }

  const listen = /^\[?([^\]]+?)\]?:(\d+)$/.exec(opts.gatewayAddress ?? '127.0.0.1:0')
  if (!listen) throw new Error(`gateway address ${opts.gatewayAddress} is not host:port`)
  const host = listen[1]!.includes(':') ? `[${listen[1]}]` : listen[1]!
  const basePort = Number(listen[2])
  const connectHost =
    host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' || host === '::' ? '[::1]' : host
  const gateways: LocalGateway[] = []
  for (let i = 1; await exists(join(dir, `g${i}`, 'gateway.key')); i++) {
    const home = join(dir, `g${i}`)
    const identity = await loadIdentity(join(home, 'gateway.key'))
    const configPath = join(home, 'gateway.yaml')
    await writeFile(
      configPath,
      `map: ../cluster.yaml\nidentity: gateway.key\nlisten: ${host}:${basePort === 0 ? 0 : basePort + i - 1}\n` +
        `credentials: ../credentials.yaml\nmasterKeyFile: ../master.key\nlogLevel: ${logLevel}\n` +
        (opts.domain ? `domain: ${opts.domain}\n` : ''),
    )
    gateways.push({
      id: `g${i}`,
      publicKey: identity.id,
      home,
      configPath,
      logPath: join(home, 'gateway.log'),
      endpoint: '',
      port: 0,
      host: connectHost,
      child: undefined,
    })
  }

  const cluster = new LocalCluster({
    dir,
    map,
    nodes,
    gateways,
    root,
    createdRoot,
    created,
    opts,
  })
  if (opts.start ?? true) {
    try {
      await Promise.all(nodes.map((n) => cluster.start(n.id)))
      await Promise.all(gateways.map((g) => cluster.start(g.id)))
    } catch (err) {
      await cluster.close({ signal: 'SIGKILL' })
      throw err
    }
  }
  return cluster
}

/** First start: identities, drive folders and cluster.yaml. Returns the map. */
async function createFiles(dir: string, opts: LocalClusterOptions): Promise<ClusterMap> {
  const nodeCount = opts.nodes ?? 4
  const drivesPerNode = opts.drivesPerNode ?? 1
  const nodeIds: Identity[] = []
  const specs: ClusterMap['pools'][number]['nodes'] = []
  for (let i = 0; i < nodeCount; i++) {
    const identity = await generateIdentity()
    nodeIds.push(identity)
    const id = `n${i + 1}`
    specs.push({
      id,
      address: `127.0.0.1:${await freePort()}`,
      publicKey: identity.id,
      drives: Array.from({ length: drivesPerNode }, (_, j) =>
        resolve(opts.drivePath ? opts.drivePath(dir, i, j) : join(dir, id, `d${j + 1}`)),
      ),
    })
  }
  const gatewayIds: Identity[] = []
  for (let i = 0; i < (opts.gateways ?? 1); i++) gatewayIds.push(await generateIdentity())
  const map: ClusterMap = {
    cluster: opts.clusterName ?? `local-${randomBytes(4).toString('hex')}`,
    erasure: {
      data: opts.data ?? 2,
      parity: opts.parity ?? 2,
      blockSize: opts.blockSize ?? 1024 * 1024,
      inlineBelow: opts.inlineBelow ?? 128 * 1024,
    },
    pools: [{ nodes: specs }],
    gateways: [...(opts.extraGateways ?? []), ...gatewayIds.map((g) => g.id)],
  }
  const text = stringifyClusterMap(map)
  // Every problem of the layout (too few drives for the erasure set, …) before any file is written.
  parseClusterMap(text, `the cluster of ${dir}`)
  for (const [i, spec] of specs.entries()) {
    await mkdir(join(dir, spec.id), { recursive: true })
    await saveIdentity(join(dir, spec.id, 'node.key'), nodeIds[i]!)
  }
  for (const [i, identity] of gatewayIds.entries()) {
    const home = join(dir, `g${i + 1}`)
    await mkdir(home, { recursive: true })
    await saveIdentity(join(home, 'gateway.key'), identity)
  }
  await writeFile(join(dir, 'cluster.yaml'), text)
  return map
}

/** The root credential of `dir`: `given` (written), the existing file, or a new one. */
async function rootCredential(
  dir: string,
  given: RootCredential | undefined,
): Promise<{ root: RootCredential; createdRoot?: RootCredential }> {
  const path = join(dir, 'credentials.yaml')
  if (given === undefined && (await exists(path))) {
    const text = await readFile(path, 'utf8')
    const field = (name: string) =>
      new RegExp(`^${name}:\\s*"?([^"\\s]+)"?\\s*$`, 'm').exec(text)?.[1]
    const accessKeyId = field('accessKeyId')
    const secretAccessKey = field('secretAccessKey')
    if (!accessKeyId || !secretAccessKey)
      throw new Error(`${path} must hold accessKeyId and secretAccessKey`)
    await chmod(path, 0o600)
    return { root: { accessKeyId, secretAccessKey } }
  }
  const root = given ?? newRootCredential()
  await writeFile(path, credentialsYaml(root), { mode: 0o600 })
  // An existing file keeps its mode on write: make sure it is private.
  await chmod(path, 0o600)
  return given === undefined ? { root, createdRoot: root } : { root }
}

/** A new random root credential: an access key id in AWS's shape, a 40-character secret. */
export function newRootCredential(): RootCredential {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  const accessKeyId = `TS${Array.from(randomBytes(18), (b) => abc[b & 31]).join('')}`
  let secretAccessKey = ''
  // Starting with a letter keeps the plain YAML scalar a string whatever follows.
  while (!/^[A-Za-z]/.test(secretAccessKey)) secretAccessKey = randomBytes(30).toString('base64url')
  return { accessKeyId, secretAccessKey }
}

/** The credentials.yaml text that `tessera-gateway` and `tessera server` read. */
export function credentialsYaml(root: RootCredential): string {
  return (
    '# Tessera root credential. Keep this file private (mode 0600).\n' +
    `accessKeyId: ${root.accessKeyId}\nsecretAccessKey: ${root.secretAccessKey}\n`
  )
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** Whether a path exists. */
export async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  )
}

/** How much of a failed daemon's stderr goes into the error. */
const STDERR_TAIL = 8192

/**
 * Spawns a daemon's `start --config`; resolves with its `{"listening":…}` stdout line once it
 * listens. Everything it prints goes to `logPath` as well.
 */
async function spawnDaemon(init: {
  main: string
  configPath: string
  logPath: string
  what: string
  execArgv: readonly string[]
  launcher: readonly string[]
  timeoutMs: number
}): Promise<{ child: ChildProcess; line: string }> {
  const log = createWriteStream(init.logPath, { flags: 'a' })
  // The config decides everything: TESSERA_* variables of this process would override it.
  const env = daemonEnv(
    Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_'))),
  )
  // A launcher goes in front of node: `ip netns exec h1 node … start --config …`.
  const argv = [
    ...init.launcher,
    process.execPath,
    ...DAEMON_V8_FLAGS,
    ...init.execArgv,
    init.main,
    'start',
    '--config',
    init.configPath,
    // The daemon stops when its stdin ends: this process holds the pipe's other end, so the
    // cluster never outlives it, whether it stops, crashes or is killed.
    STOP_WITH_STDIN_FLAG,
  ]
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env })
  child.stdin!.on('error', () => {})
  child.once('exit', () => {
    log.end()
    child.stdin!.destroy()
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < STDERR_TAIL) stderr += d.toString()
    log.write(d)
  })
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`${init.what} did not listen within ${init.timeoutMs} ms: ${stderr}`))
      }, init.timeoutMs)
      const onData = (d: Buffer): void => {
        out += d.toString()
        log.write(d)
        const at = out.indexOf('"listening"')
        if (at >= 0 && out.indexOf('\n', at) >= 0) {
          clearTimeout(timer)
          child.stdout!.off('data', onData)
          child.stdout!.on('data', (x: Buffer) => log.write(x))
          const start = out.lastIndexOf('\n', at) + 1
          resolve(out.slice(start, out.indexOf('\n', at)))
        }
      }
      child.stdout!.on('data', onData)
      child.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(
          new Error(
            `${init.what} exited with ${code ?? signal}: ${stderr || `see ${init.logPath}`}`,
          ),
        )
      })
    })
    return { child, line }
  } catch (err) {
    if (running(child)) child.kill('SIGKILL')
    throw err
  }
}
