/**
 * tessera-node's configuration: one small YAML file (`--config`), overridden by TESSERA_*
 * environment variables. Every problem is reported at once. Nothing below main.ts reads the
 * environment: the result is passed down as plain values.
 */
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { parse } from 'yaml'

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

const FILE_KEYS: Record<string, keyof NodeConfig> = {
  node: 'nodeId',
  map: 'map',
  identity: 'identity',
  listen: 'listen',
  logLevel: 'logLevel',
  trashIntervalMs: 'trashIntervalMs',
}
const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

export class ConfigError extends Error {
  static override name = 'ConfigError'
  readonly problems: string[]
  constructor(source: string, problems: string[]) {
    super(`${source}: ${problems.length} problem(s)\n  ${problems.join('\n  ')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** Reads the config file (if any) and the environment; relative paths are taken from the file's folder. */
export async function loadConfig(init: {
  file?: string
  env: NodeJS.ProcessEnv
}): Promise<NodeConfig> {
  const problems: string[] = []
  const raw: Record<string, unknown> = {}
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
      const field = FILE_KEYS[k]
      if (field === undefined)
        problems.push(`unknown setting "${k}" (allowed: ${Object.keys(FILE_KEYS).join(', ')})`)
      else raw[field] = v
    }
  }
  for (const [field, name] of Object.entries(ENV)) {
    const v = init.env[name]
    if (v !== undefined && v !== '') raw[field] = v
  }
  const str = (field: keyof NodeConfig, required: boolean): string | undefined => {
    const v = raw[field]
    if (v === undefined) {
      if (required)
        problems.push(`${field} is required (file key or ${ENV[field as keyof typeof ENV]})`)
      return undefined
    }
    if (typeof v !== 'string' || v === '') {
      problems.push(`${field} must be a non-empty string`)
      return undefined
    }
    return v
  }
  const path = (v: string | undefined): string =>
    v === undefined || isAbsolute(v) ? (v ?? '') : resolve(base, v)
  const nodeId = str('nodeId', true)
  const map = path(str('map', true))
  const identity = path(str('identity', true))
  const listen = str('listen', false)
  if (listen !== undefined && !/^\[?[^\]]+\]?:\d{1,5}$/.test(listen))
    problems.push(`listen "${listen}" is not host:port`)
  const logLevel = str('logLevel', false) ?? DEFAULTS.logLevel
  if (!LEVELS.has(logLevel))
    problems.push(`logLevel "${logLevel}" is not one of ${[...LEVELS].join(', ')}`)
  const trash = Number(raw.trashIntervalMs ?? DEFAULTS.trashIntervalMs)
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
