/**
 * What every Tessera daemon's entry point shares: reading its YAML config file (a mapping of
 * known settings, every problem reported at once) and stopping cleanly on SIGTERM or SIGINT.
 */
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { parse } from 'yaml'

/**
 * The V8 flags every Tessera daemon runs with (node, gateway, the embedded server): systemd
 * units, `pnpm start`, the bins' shebangs and the local cluster all pass them.
 *
 * `--single-threaded-gc`: V8 does its garbage collection on the main thread instead of on
 * background threads. Streaming shards allocates a buffer per frame (Node's AEAD has no
 * decrypt-into API), so V8 collects dozens of times a second; with the background threads the
 * collector ran beside the event loop and took a core's share on 2-core machines (perf: 30–40% of
 * a node in concurrent marking and sweeping). Measured in one run each on a 4-node RS(2,2)
 * cluster on tmpfs (2 cores): 64 MiB PUT 127 → 200 MB/s, GET 276 → 351 MB/s; 4 KiB at
 * concurrency 32 unchanged within noise (PUT 1,807 → 1,997, GET 5,489 → 5,234 ops/s, p99 within
 * 3 ms); one PutShard stream into a node 0.6 → 0.95–1.05 GB/s. The heaps are small (tens of MB),
 * so the collector's pauses on the main thread stay short. NODE_OPTIONS cannot carry this flag,
 * and setting it at run time crashes V8: it must be on the command line.
 *
 * `--heap-growing-percent=300`: after a full collection the old generation may grow to 4× what
 * survived (V8's own largest factor) before the next one starts. V8 otherwise picks a smaller
 * factor for these small, busy heaps; a node's 15 MB live heap then got a limit of about 42 MB,
 * and since the slack (limit − size) stayed below the young generation's capacity, V8 started
 * a full mark every few hundred ms. In a 64 MiB GET at concurrency 8 the four nodes ran 45–118
 * full collections (each 15–40 ms of marking steps on the event loop); with this flag, 7–9.
 * The live heap is what it was; only the garbage between collections grows, by tens of MB.
 */
export const DAEMON_V8_FLAGS: readonly string[] = [
  '--single-threaded-gc',
  '--heap-growing-percent=300',
]

/**
 * The environment every Tessera daemon runs with, beside DAEMON_V8_FLAGS (the launchers set it:
 * systemd units, `pnpm start`, the bins' shebangs, the local cluster; a value already in the
 * environment wins).
 *
 * `UV_THREADPOOL_SIZE=64`: file system calls and LevelDB's work run on libuv's thread pool, 4
 * threads by default, shared by all of a node's drives. A drive that hangs (a dying disk, a
 * stalled controller, a frozen file system) keeps every thread that calls into it until it
 * answers, so with 4 threads a few writes to it took the pool, and every other drive of the
 * node, and its drive probe, hung behind them: the whole node went offline for one disk.
 * With 64 (idle threads cost only address space), the node refuses calls to the hung drive
 * once one has waited on it too long (drive-health.ts in the node) and its other drives go
 * on. libuv reads the variable when it starts the pool, before a daemon's own code runs, so
 * it must be in the environment the process starts with.
 */
export const DAEMON_ENV: Readonly<Record<string, string>> = { UV_THREADPOOL_SIZE: '64' }

/** `env` with DAEMON_ENV filled in where `env` does not set the variable itself. */
export function daemonEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env }
  for (const [k, v] of Object.entries(DAEMON_ENV)) out[k] ??= v
  return out
}

/** Every problem of a daemon's configuration, found at once. */
export class ConfigError extends Error {
  static override name = 'ConfigError'
  readonly problems: string[]
  constructor(source: string, problems: string[]) {
    super(`${source}: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export interface ConfigSource {
  /** Settings from the file (only known keys), then overridden by the environment. */
  values: Record<string, unknown>
  /** Unknown keys and the like; the caller adds its own and throws ConfigError. */
  problems: string[]
  /** Resolves a path setting against the config file's folder (or the working directory). */
  path(v: string | undefined): string
  /** Reads a string setting, recording a problem when it is required and missing, or empty. */
  str(key: string, required: boolean): string | undefined
}

/**
 * Reads `file` (YAML mapping; keys outside `keys` are problems) and the environment variables
 * named by `env` (setting key → variable), which win over the file.
 */
export async function readConfigSource(init: {
  file?: string
  keys: readonly string[]
  env: Readonly<Record<string, string>>
  processEnv: NodeJS.ProcessEnv
}): Promise<ConfigSource> {
  const problems: string[] = []
  const values: Record<string, unknown> = {}
  const base = init.file ? dirname(resolve(init.file)) : process.cwd()
  if (init.file) {
    let doc: unknown
    try {
      doc = parse(await readFile(init.file, 'utf8'))
    } catch (err) {
      throw new ConfigError(init.file, [(err as Error).message])
    }
    if (doc !== null && (typeof doc !== 'object' || Array.isArray(doc))) {
      throw new ConfigError(init.file, ['the file must be a mapping of settings'])
    }
    for (const [k, v] of Object.entries((doc ?? {}) as Record<string, unknown>)) {
      if (!init.keys.includes(k))
        problems.push(`unknown setting "${k}" (allowed: ${init.keys.join(', ')})`)
      else values[k] = v
    }
  }
  for (const [key, name] of Object.entries(init.env)) {
    const v = init.processEnv[name]
    if (v !== undefined && v !== '') values[key] = v
  }
  return {
    values,
    problems,
    path: (v) => (v === undefined || isAbsolute(v) ? (v ?? '') : resolve(base, v)),
    str(key, required) {
      const v = values[key]
      if (v === undefined) {
        if (required) {
          const name = init.env[key]
          problems.push(`${key} is required (file key${name ? ` or ${name}` : ''})`)
        }
        return undefined
      }
      if (typeof v !== 'string' || v === '') {
        problems.push(`${key} must be a non-empty string`)
        return undefined
      }
      return v
    },
  }
}

/** pino's levels, for config checks. */
export const LOG_LEVELS: ReadonlySet<string> = new Set([
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
])

/** How long a daemon may take to stop after SIGTERM or SIGINT before it exits anyway. */
export const STOP_DEADLINE_MS = 10_000

/**
 * Runs `close` once on the first SIGTERM or SIGINT, then exits (0, or 1 when closing failed or
 * took longer than STOP_DEADLINE_MS). With `stdin`, also when stdin ends: a launcher that owns
 * the daemon (the local cluster, a benchmark) holds the other end of a pipe, and the kernel
 * closes it however the launcher ends, SIGKILL and crashes included, so its daemons never
 * outlive it.
 */
export function stopOnSignals(
  close: () => Promise<void>,
  log: {
    info(obj: object, msg?: string): void
    error(obj: object, msg?: string): void
    /** pino's: set to 'silent' once the launcher is gone (see below). */
    level?: string
  },
  opts: { stdin?: boolean } = {},
): void {
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'stopping')
    // A close that hangs (a peer that never lets go) must not keep a stopped daemon alive.
    setTimeout(() => {
      log.error({ signal, afterMs: STOP_DEADLINE_MS }, 'stop took too long; exiting')
      process.exit(1)
    }, STOP_DEADLINE_MS).unref()
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: (err as Error).message }, 'stop failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  if (opts.stdin) {
    const orphaned = (): void => {
      // The launcher read our stdout and stderr too. With it gone, a write to them fails or
      // is left pending, and pino flushes pending lines synchronously at exit, retrying for
      // ever: a gateway was found spinning in that flush 35 minutes after its launcher was
      // killed. So nothing more is logged, and write errors do not cut the stop short.
      if (log.level !== undefined) log.level = 'silent'
      process.stdout.on('error', () => {})
      process.stderr.on('error', () => {})
      stop('stdin closed')
    }
    process.stdin.on('data', () => {})
    process.stdin.once('end', orphaned)
    // A launcher gone mid-write leaves a reset pipe rather than an end.
    process.stdin.once('error', orphaned)
  }
}

/** The `start` flag that ties a daemon to its launcher (see stopOnSignals' `stdin`). */
export const STOP_WITH_STDIN_FLAG = '--stop-with-stdin'
