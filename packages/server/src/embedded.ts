/**
 * The embedded default (design §1, `tessera server <dir>`): one machine, N drive folders under
 * <dir>, a storage node and a gateway in one process. The first start writes the cluster map,
 * both identity keys and a root credential (all 0600) into <dir>; later starts reuse them, so
 * data and keys survive restarts.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import {
  Gateway,
  readCredentials,
  readMasterKeyFile,
  writeNewMasterKeyFile,
} from '@tessera/gateway'
import { StorageNode } from '@tessera/node'
import {
  type ClusterMap,
  generateIdentity,
  loadClusterMap,
  loadIdentity,
  saveIdentity,
  stringifyClusterMap,
} from '@tessera/protocol'
import { canListen, exists, freePort } from './local-cluster.ts'

export interface EmbeddedInit {
  dir: string
  /** Drive folders on first start; default 6. */
  drives?: number
  /** Data and parity shards on first start; default 4 and 2. */
  data?: number
  parity?: number
  /** S3 listen address; default 0.0.0.0:9000. */
  host?: string
  port?: number
  region?: string
}

export interface Logger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
}

export interface EmbeddedServer {
  port: number
  /** Set on the first start only: the root credential, to print once. */
  created?: { accessKeyId: string; secretAccessKey: string }
  close(): Promise<void>
}

/** A root access key id in AWS's shape: 20 upper-case characters. */
function newAccessKeyId(): string {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  return `TS${Array.from(randomBytes(18), (b) => abc[b & 31]).join('')}`
}

/** Creates <dir>'s files on first start; returns the credential when it was created now. */
export async function prepareEmbedded(
  init: EmbeddedInit,
): Promise<{ created?: { accessKeyId: string; secretAccessKey: string } }> {
  const dir = resolve(init.dir)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const mapPath = join(dir, 'cluster.yaml')
  let created: { accessKeyId: string; secretAccessKey: string } | undefined
  if (!(await exists(mapPath))) {
    const drives = init.drives ?? 6
    const data = init.data ?? 4
    const parity = init.parity ?? 2
    const node = await generateIdentity()
    const gateway = await generateIdentity()
    await saveIdentity(join(dir, 'node.key'), node)
    await saveIdentity(join(dir, 'gateway.key'), gateway)
    // The node's RPC port goes into the map: the default when free, else any free one.
    const port = (await canListen(7373)) ? 7373 : await freePort()
    const driveDirs = Array.from({ length: drives }, (_, i) => join(dir, 'drives', `d${i + 1}`))
    for (const d of driveDirs) await mkdir(d, { recursive: true })
    const map: ClusterMap = {
      cluster: randomBytes(8).toString('hex'),
      erasure: { data, parity, blockSize: 1024 * 1024, inlineBelow: 128 * 1024 },
      pools: [
        {
          nodes: [
            { id: 'local', address: `127.0.0.1:${port}`, publicKey: node.id, drives: driveDirs },
          ],
        },
      ],
      gateways: [gateway.id],
    }
    await writeFile(mapPath, stringifyClusterMap(map), { mode: 0o644 })
  }
  const credPath = join(dir, 'credentials.yaml')
  if (!(await exists(credPath))) {
    created = {
      accessKeyId: newAccessKeyId(),
      secretAccessKey: randomBytes(30).toString('base64url'),
    }
    await writeFile(
      credPath,
      `# Tessera root credential. Keep this file private (mode 0600).\naccessKeyId: ${created.accessKeyId}\nsecretAccessKey: ${created.secretAccessKey}\n`,
      { mode: 0o600 },
    )
  }
  // The cluster master key seals stored secrets and session tokens (0600, never in the map).
  if (!(await exists(join(dir, 'master.key')))) await writeNewMasterKeyFile(join(dir, 'master.key'))
  return created ? { created } : {}
}

/** Starts node and gateway for <dir> (preparing it on first start). */
export async function startEmbedded(
  init: EmbeddedInit,
  logger: Logger & { child?: unknown },
): Promise<EmbeddedServer> {
  const dir = resolve(init.dir)
  const { created } = await prepareEmbedded(init)
  const { map, hash } = await loadClusterMap(join(dir, 'cluster.yaml'))
  const nodeSpec = map.pools[0]?.nodes[0]
  if (!nodeSpec) throw new Error(`${dir}/cluster.yaml has no node`)
  const node = await StorageNode.start(
    {
      map,
      mapHash: hash,
      nodeId: nodeSpec.id,
      identity: await loadIdentity(join(dir, 'node.key')),
    },
    { logger },
  )
  let gw: Gateway
  try {
    gw = await Gateway.start(
      {
        map,
        mapHash: hash,
        identity: await loadIdentity(join(dir, 'gateway.key')),
        host: init.host ?? '0.0.0.0',
        port: init.port ?? 9000,
        region: init.region ?? 'us-east-1',
        root: await readCredentials(join(dir, 'credentials.yaml')),
        masterKey: await readMasterKeyFile(join(dir, 'master.key')),
      },
      { logger },
    )
  } catch (err) {
    await node.close()
    throw err
  }
  return {
    port: gw.port,
    ...(created ? { created } : {}),
    async close() {
      await gw.close()
      await node.close()
    },
  }
}

/** Reads the root access key id of <dir> (for messages; never the secret). */
export async function rootKeyId(dir: string): Promise<string | undefined> {
  const text = await readFile(join(resolve(dir), 'credentials.yaml'), 'utf8').catch(() => '')
  return /accessKeyId:\s*(\S+)/.exec(text)?.[1]
}
