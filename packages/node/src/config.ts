/**
 * tessera-node's configuration: one small YAML file (`--config`), overridden by TESSERA_*
 * environment variables. Every problem is reported at once. Nothing below main.ts reads the
 * environment: the result is passed down as plain values.
 */
import { ConfigError, LOG_LEVELS, readConfigSource } from '@tessera/protocol'

export const ENV_PREFIX = 'TESSERA_'
export const ENV = {
  nodeId: `${ENV_PREFIX}NODE_ID`,
  map: `${ENV_PREFIX}MAP`,
  identity: `${ENV_PREFIX}IDENTITY`,
  listen: `${ENV_PREFIX}LISTEN`,
  logLevel: `${ENV_PREFIX}LOG_LEVEL`,
  trashIntervalMs: `${ENV_PREFIX}TRASH_INTERVAL_MS`,
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
}

export const DEFAULTS = { logLevel: 'info', trashIntervalMs: 10_000 } as const

/** File keys, and the config fields they set. */
const FILE_KEYS: Record<string, keyof NodeConfig> = {
  node: 'nodeId',
  map: 'map',
  identity: 'identity',
  listen: 'listen',
  logLevel: 'logLevel',
  trashIntervalMs: 'trashIntervalMs',
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
  const logLevel = src.str('logLevel', false) ?? DEFAULTS.logLevel
  if (!LOG_LEVELS.has(logLevel))
    problems.push(`logLevel "${logLevel}" is not one of ${[...LOG_LEVELS].join(', ')}`)
  const trash = Number(src.values.trashIntervalMs ?? DEFAULTS.trashIntervalMs)
  if (!Number.isInteger(trash) || trash < 100)
    problems.push('trashIntervalMs must be an integer of at least 100')
  if (problems.length > 0) throw new ConfigError(init.file ?? 'environment', problems)
  return {
    nodeId: nodeId!,
    map,
    identity,
    ...(listen !== undefined ? { listen } : {}),
    logLevel,
    trashIntervalMs: trash,
  }
}
