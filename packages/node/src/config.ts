/**
 * tessera-node's configuration: one small YAML file (`--config`), overridden by TESSERA_*
 * environment variables. Every problem is reported at once. Nothing below main.ts reads the
 * environment: the result is passed down as plain values.
 */
import { ConfigError, LOG_LEVELS, readConfigSource } from '@tessera/protocol'
import { DEFAULT_DIRECT_WRITE_BYTES } from './direct-io.ts'
import { DRIVE_STALL_MS } from './drive-health.ts'
import { DEFAULT_HEAL_CONFIG } from './heal/healer.ts'
import { LIFECYCLE_DEFAULTS } from './lifecycle/lifecycle-worker.ts'

export const ENV_PREFIX = 'TESSERA_'
export const ENV = {
  nodeId: `${ENV_PREFIX}NODE_ID`,
  map: `${ENV_PREFIX}MAP`,
  identity: `${ENV_PREFIX}IDENTITY`,
  listen: `${ENV_PREFIX}LISTEN`,
  logLevel: `${ENV_PREFIX}LOG_LEVEL`,
  trashIntervalMs: `${ENV_PREFIX}TRASH_INTERVAL_MS`,
  metricsListen: `${ENV_PREFIX}METRICS_LISTEN`,
  lifecycleIntervalMs: `${ENV_PREFIX}LIFECYCLE_INTERVAL_MS`,
  noncurrentDefaultDays: `${ENV_PREFIX}NONCURRENT_DEFAULT_DAYS`,
  abortIncompleteDefaultDays: `${ENV_PREFIX}ABORT_INCOMPLETE_DEFAULT_DAYS`,
  lifecycleClockOffsetMs: `${ENV_PREFIX}LIFECYCLE_CLOCK_OFFSET_MS`,
  scanRate: `${ENV_PREFIX}SCAN_RATE`,
  scanIntervalMs: `${ENV_PREFIX}SCAN_INTERVAL_MS`,
  deepEvery: `${ENV_PREFIX}DEEP_EVERY`,
  healGraceMs: `${ENV_PREFIX}HEAL_GRACE_MS`,
  healConcurrency: `${ENV_PREFIX}HEAL_CONCURRENCY`,
  directWriteBytes: `${ENV_PREFIX}DIRECT_WRITE_BYTES`,
  driveStallMs: `${ENV_PREFIX}DRIVE_STALL_MS`,
} as const

export interface NodeConfig {
  /** This node's id in the cluster map. */
  nodeId: string
  /** Path of cluster.yaml. */
  map: string
  /** Path of the node's identity key (mode 0600), made by `tessera-node keygen`. */
  identity: string
  /** host:port to listen on; default the node's address in the map. */
  listen?: string
  /** pino level: fatal, error, warn, info, debug, trace. */
  logLevel: string
  /** How often each drive's trash is emptied, in milliseconds. */
  trashIntervalMs: number
  /**
   * host:port of the HTTP server for /metrics and /health/live|ready (e.g. 127.0.0.1:9101);
   * none by default. Unauthenticated: keep it on loopback or a private network.
   */
  metricsListen?: string
  /** Pause between two bucket lifecycle cycles, in milliseconds (default one hour). */
  lifecycleIntervalMs: number
  /**
   * Days after which noncurrent versions expire in versioned buckets when no lifecycle rule
   * with NoncurrentVersionExpiration covers them (default 7); 0 turns the default off.
   */
  noncurrentDefaultDays: number
  /** Incomplete multipart uploads no rule covers are aborted after this many days (0: never). */
  abortIncompleteDefaultDays: number
  /**
   * Milliseconds added to the clock the lifecycle worker judges ages by (default 0). Only for
   * tests, which cannot wait days: it moves lifecycle time, not the node's writes.
   */
  lifecycleClockOffsetMs: number
  /** Object versions each drive's scanner checks per second while no client is busy (default 200). */
  scanRate: number
  /** Pause between two scan cycles of a drive, in milliseconds (default one minute). */
  scanIntervalMs: number
  /** Every this many scan cycles, one verifies every chunk checksum (default 10; 0: never). */
  deepEvery: number
  /**
   * Age (by modTime, in milliseconds) a version must reach before a drive drops it for having no
   * read quorum on its set: a write may still be committing (default one minute).
   */
  healGraceMs: number
  /** Repairs running at once on the node (default 4). */
  healConcurrency: number
  /**
   * Bytes of aligned buffers for writing shard files with O_DIRECT, shared by the node's drives:
   * 1 MiB per shard being written (default 64 MiB); writes past it, and every write when 0, go
   * through the page cache.
   */
  directWriteBytes: number
  /**
   * How long an operation may wait on a drive that gets nothing done before the drive counts as
   * stalled (a hung disk) and calls to it are refused until it answers again; default 10 s.
   */
  driveStallMs: number
}

export const DEFAULTS = {
  logLevel: 'info',
  trashIntervalMs: 10_000,
  lifecycleIntervalMs: LIFECYCLE_DEFAULTS.intervalMs,
  noncurrentDefaultDays: LIFECYCLE_DEFAULTS.noncurrentDefaultDays,
  abortIncompleteDefaultDays: LIFECYCLE_DEFAULTS.abortIncompleteDefaultDays,
  lifecycleClockOffsetMs: LIFECYCLE_DEFAULTS.clockOffsetMs,
  scanRate: DEFAULT_HEAL_CONFIG.scanRate,
  scanIntervalMs: DEFAULT_HEAL_CONFIG.scanIntervalMs,
  deepEvery: DEFAULT_HEAL_CONFIG.deepEvery,
  healGraceMs: DEFAULT_HEAL_CONFIG.graceMs,
  healConcurrency: DEFAULT_HEAL_CONFIG.concurrency,
  directWriteBytes: DEFAULT_DIRECT_WRITE_BYTES,
  driveStallMs: DRIVE_STALL_MS,
} as const

/** File keys, and the config fields they set. */
const FILE_KEYS: Record<string, keyof NodeConfig> = {
  node: 'nodeId',
  map: 'map',
  identity: 'identity',
  listen: 'listen',
  logLevel: 'logLevel',
  trashIntervalMs: 'trashIntervalMs',
  metricsListen: 'metricsListen',
  lifecycleIntervalMs: 'lifecycleIntervalMs',
  noncurrentDefaultDays: 'noncurrentDefaultDays',
  abortIncompleteDefaultDays: 'abortIncompleteDefaultDays',
  lifecycleClockOffsetMs: 'lifecycleClockOffsetMs',
  scanRate: 'scanRate',
  scanIntervalMs: 'scanIntervalMs',
  deepEvery: 'deepEvery',
  healGraceMs: 'healGraceMs',
  healConcurrency: 'healConcurrency',
  directWriteBytes: 'directWriteBytes',
  driveStallMs: 'driveStallMs',
}

export { ConfigError }

/** Reads the config file (if any) and the environment; relative paths are taken from the file's folder. */
export async function loadConfig(init: {
  file?: string
  env: NodeJS.ProcessEnv
}): Promise<NodeConfig> {
  const src = await readConfigSource({
    ...(init.file ? { file: init.file } : {}),
    keys: Object.keys(FILE_KEYS),
    // Environment variables by file key.
    env: Object.fromEntries(
      Object.entries(FILE_KEYS).map(([k, field]) => [k, ENV[field as keyof typeof ENV]]),
    ),
    processEnv: init.env,
  })
  const { problems } = src
  const nodeId = src.str('node', true)
  const map = src.path(src.str('map', true))
  const identity = src.path(src.str('identity', true))
  const listen = src.str('listen', false)
  if (listen !== undefined && !/^\[?[^\]]+\]?:\d{1,5}$/.test(listen))
    problems.push(`listen "${listen}" is not host:port`)
  const metricsListen = src.str('metricsListen', false)
  if (metricsListen !== undefined && !/^\[?[^\]]+\]?:\d{1,5}$/.test(metricsListen))
    problems.push(`metricsListen "${metricsListen}" is not host:port`)
  const logLevel = src.str('logLevel', false) ?? DEFAULTS.logLevel
  if (!LOG_LEVELS.has(logLevel))
    problems.push(`logLevel "${logLevel}" is not one of ${[...LOG_LEVELS].join(', ')}`)
  const trash = Number(src.values.trashIntervalMs ?? DEFAULTS.trashIntervalMs)
  if (!Number.isInteger(trash) || trash < 100)
    problems.push('trashIntervalMs must be an integer of at least 100')
  const lifecycleIntervalMs = Number(src.values.lifecycleIntervalMs ?? DEFAULTS.lifecycleIntervalMs)
  if (!Number.isInteger(lifecycleIntervalMs) || lifecycleIntervalMs < 100)
    problems.push('lifecycleIntervalMs must be an integer of at least 100')
  const noncurrentDefaultDays = Number(
    src.values.noncurrentDefaultDays ?? DEFAULTS.noncurrentDefaultDays,
  )
  if (!Number.isInteger(noncurrentDefaultDays) || noncurrentDefaultDays < 0)
    problems.push('noncurrentDefaultDays must be a whole number of days (0: off)')
  const abortIncompleteDefaultDays = Number(
    src.values.abortIncompleteDefaultDays ?? DEFAULTS.abortIncompleteDefaultDays,
  )
  if (!Number.isInteger(abortIncompleteDefaultDays) || abortIncompleteDefaultDays < 0)
    problems.push('abortIncompleteDefaultDays must be a whole number of days (0: off)')
  const lifecycleClockOffsetMs = Number(
    src.values.lifecycleClockOffsetMs ?? DEFAULTS.lifecycleClockOffsetMs,
  )
  if (!Number.isSafeInteger(lifecycleClockOffsetMs))
    problems.push('lifecycleClockOffsetMs must be an integer (milliseconds)')
  const heal = {
    scanRate: Number(src.values.scanRate ?? DEFAULTS.scanRate),
    scanIntervalMs: Number(src.values.scanIntervalMs ?? DEFAULTS.scanIntervalMs),
    deepEvery: Number(src.values.deepEvery ?? DEFAULTS.deepEvery),
    healGraceMs: Number(src.values.healGraceMs ?? DEFAULTS.healGraceMs),
    healConcurrency: Number(src.values.healConcurrency ?? DEFAULTS.healConcurrency),
  }
  if (!(Number.isFinite(heal.scanRate) && heal.scanRate > 0))
    problems.push('scanRate must be a positive number of object versions per second')
  if (!Number.isInteger(heal.scanIntervalMs) || heal.scanIntervalMs < 100)
    problems.push('scanIntervalMs must be an integer of at least 100')
  if (!Number.isInteger(heal.deepEvery) || heal.deepEvery < 0)
    problems.push('deepEvery must be a whole number of cycles (0: never)')
  if (!Number.isInteger(heal.healGraceMs) || heal.healGraceMs < 0)
    problems.push('healGraceMs must be a whole number of milliseconds')
  if (!Number.isInteger(heal.healConcurrency) || heal.healConcurrency < 1)
    problems.push('healConcurrency must be an integer of at least 1')
  const directWriteBytes = Number(src.values.directWriteBytes ?? DEFAULTS.directWriteBytes)
  if (!Number.isSafeInteger(directWriteBytes) || directWriteBytes < 0)
    problems.push('directWriteBytes must be a whole number of bytes (0: no direct writes)')
  const driveStallMs = Number(src.values.driveStallMs ?? DEFAULTS.driveStallMs)
  if (!Number.isInteger(driveStallMs) || driveStallMs < 1000)
    problems.push('driveStallMs must be an integer of at least 1000 (milliseconds)')
  if (problems.length > 0) throw new ConfigError(init.file ?? 'environment', problems)
  return {
    nodeId: nodeId!,
    map,
    identity,
    ...(listen !== undefined ? { listen } : {}),
    logLevel,
    trashIntervalMs: trash,
    ...(metricsListen !== undefined ? { metricsListen } : {}),
    lifecycleIntervalMs,
    noncurrentDefaultDays,
    abortIncompleteDefaultDays,
    lifecycleClockOffsetMs,
    ...heal,
    directWriteBytes,
    driveStallMs,
  }
}
