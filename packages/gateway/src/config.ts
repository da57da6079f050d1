/**
 * tessera-gateway's configuration: one YAML file (`--config`), overridden by TESSERA_*
 * environment variables; every problem reported at once. The root credential comes from a
 * file that must be mode 0600 (or from the environment), never from the config file itself.
 */
import { readFile, stat } from 'node:fs/promises'
import { ConfigError, LOG_LEVELS, readConfigSource } from '@tessera/protocol'
import { parse } from 'yaml'
import { parseMasterKey, readMasterKeyFile } from './iam/crypto.ts'

export const ENV_PREFIX = 'TESSERA_'
export const ENV = {
  map: `${ENV_PREFIX}MAP`,
  identity: `${ENV_PREFIX}IDENTITY`,
  listen: `${ENV_PREFIX}GATEWAY_LISTEN`,
  region: `${ENV_PREFIX}REGION`,
  domain: `${ENV_PREFIX}DOMAIN`,
  logLevel: `${ENV_PREFIX}LOG_LEVEL`,
  credentials: `${ENV_PREFIX}ROOT_CREDENTIALS`,
  rootAccessKey: `${ENV_PREFIX}ROOT_ACCESS_KEY`,
  rootSecretKey: `${ENV_PREFIX}ROOT_SECRET_KEY`,
  masterKeyFile: `${ENV_PREFIX}MASTER_KEY_FILE`,
  /** The master key itself (64 hex characters), for deployments that inject secrets by env. */
  masterKey: `${ENV_PREFIX}MASTER_KEY`,
  /** 'false' turns the web console off (its path then answers 404). */
  console: `${ENV_PREFIX}CONSOLE`,
  /** Directory of a console build to serve instead of the @tessera/console package's. */
  consoleDir: `${ENV_PREFIX}CONSOLE_DIR`,
} as const

export interface GatewayConfig {
  /** Path of cluster.yaml. */
  map: string
  /** Path of the gateway's identity key (0600); its public id must be in the map's gateways. */
  identity: string
  /** host:port for S3; default 0.0.0.0:9000. */
  listen: string
  /** Region name reported to clients and expected in signatures; default us-east-1. */
  region: string
  /** Domain for virtual-hosted-style requests (<bucket>.<domain>); none by default. */
  domain?: string
  /** pino level. */
  logLevel: string
  /** Root credential, from the 0600 credentials file or the environment. */
  root: { accessKeyId: string; secretAccessKey: string }
  /** Cluster master key, from the 0600 file `masterKeyFile` or the environment. */
  masterKey: Buffer
  /** Serve the web console under /_tessera/console/; default true. */
  console: boolean
  /** Directory of the console build; default the @tessera/console package's dist. */
  consoleDir?: string
}

export const DEFAULTS = {
  listen: '0.0.0.0:9000',
  region: 'us-east-1',
  logLevel: 'info',
  console: true,
} as const

const FILE_KEYS = [
  'map',
  'identity',
  'listen',
  'region',
  'domain',
  'logLevel',
  'credentials',
  'masterKeyFile',
  'console',
  'consoleDir',
] as const

export { ConfigError }

/** Reads a root credentials file (YAML: accessKeyId, secretAccessKey), refusing loose modes. */
export async function readCredentials(
  path: string,
): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const st = await stat(path)
  if ((st.mode & 0o077) !== 0) {
    throw new Error(
      `${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`,
    )
  }
  const doc = parse(await readFile(path, 'utf8')) as Record<string, unknown> | null
  const id = doc?.accessKeyId
  const secret = doc?.secretAccessKey
  if (typeof id !== 'string' || typeof secret !== 'string' || id === '' || secret.length < 8) {
    throw new Error(`${path} must hold accessKeyId and secretAccessKey (at least 8 characters)`)
  }
  return { accessKeyId: id, secretAccessKey: secret }
}

export async function loadConfig(init: {
  file?: string
  env: NodeJS.ProcessEnv
}): Promise<GatewayConfig> {
  const src = await readConfigSource({
    ...(init.file ? { file: init.file } : {}),
    keys: FILE_KEYS,
    env: Object.fromEntries(FILE_KEYS.map((k) => [k, ENV[k]])),
    processEnv: init.env,
  })
  const { problems } = src
  const map = src.path(src.str('map', true))
  const identity = src.path(src.str('identity', true))
  const listen = src.str('listen', false) ?? DEFAULTS.listen
  if (!/^\[?[^\]]+\]?:\d{1,5}$/.test(listen)) problems.push(`listen "${listen}" is not host:port`)
  const region = src.str('region', false) ?? DEFAULTS.region
  const domain = src.str('domain', false)
  const logLevel = src.str('logLevel', false) ?? DEFAULTS.logLevel
  if (!LOG_LEVELS.has(logLevel))
    problems.push(`logLevel "${logLevel}" is not one of ${[...LOG_LEVELS].join(', ')}`)
  let root: GatewayConfig['root'] | undefined
  const envId = init.env[ENV.rootAccessKey]
  const envSecret = init.env[ENV.rootSecretKey]
  if (envId && envSecret) root = { accessKeyId: envId, secretAccessKey: envSecret }
  else {
    const file = src.str('credentials', false)
    if (file === undefined)
      problems.push(
        `root credentials are required: credentials (a 0600 file) or ${ENV.rootAccessKey} and ${ENV.rootSecretKey}`,
      )
    else {
      try {
        root = await readCredentials(src.path(file))
      } catch (err) {
        problems.push(`credentials: ${(err as Error).message}`)
      }
    }
  }
  let masterKey: Buffer | undefined
  const envKey = init.env[ENV.masterKey]
  if (envKey) {
    try {
      masterKey = parseMasterKey(envKey, ENV.masterKey)
    } catch (err) {
      problems.push((err as Error).message)
    }
  } else {
    const file = src.str('masterKeyFile', false)
    if (file === undefined)
      problems.push(
        `the cluster master key is required: masterKeyFile (a 0600 file, the same on every gateway) or ${ENV.masterKey}`,
      )
    else {
      try {
        masterKey = await readMasterKeyFile(src.path(file))
      } catch (err) {
        problems.push(`masterKeyFile: ${(err as Error).message}`)
      }
    }
  }
  const consoleOn = readBoolean(src.values.console, 'console', problems) ?? DEFAULTS.console
  const consoleDirRaw = src.str('consoleDir', false)
  const consoleDir = consoleDirRaw !== undefined ? src.path(consoleDirRaw) : undefined
  if (problems.length > 0) throw new ConfigError(init.file ?? 'environment', problems)
  return {
    map,
    identity,
    listen,
    region,
    ...(domain ? { domain } : {}),
    logLevel,
    root: root!,
    masterKey: masterKey!,
    console: consoleOn,
    ...(consoleDir !== undefined ? { consoleDir } : {}),
  }
}

/** A YAML boolean, or 'true'/'false' from the environment; undefined when not set. */
function readBoolean(v: unknown, key: string, problems: string[]): boolean | undefined {
  if (v === undefined || typeof v === 'boolean') return v
  if (v === 'true' || v === 'false') return v === 'true'
  problems.push(`${key} must be true or false, not ${JSON.stringify(v)}`)
  return undefined
}
