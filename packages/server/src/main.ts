#!/usr/bin/env -S UV_THREADPOOL_SIZE=64 node --single-threaded-gc --heap-growing-percent=300
// tessera: the operator CLI. `tessera server <dir>` runs the embedded default; `tessera cluster
// <dir>` a multi-process cluster on loopback; `tessera map` writes and checks cluster maps;
// `tessera admin` calls a gateway's admin API. The only place that reads process.env and creates
// the logger.
import { parseByteSize, stopOnSignals } from '@tessera/protocol'
import { Command } from 'commander'
import { destination, pino } from 'pino'
import { adminCommand } from './admin-cli.ts'
import { rootKeyId, startEmbedded } from './embedded.ts'
import { type LocalCluster, startLocalCluster } from './local-cluster.ts'
import { mapCommand } from './map-cli.ts'

const program = new Command('tessera').description(
  'Tessera: erasure-coded S3 storage on your own disks',
)

program
  .command('server')
  .description('run a node and a gateway in one process over drive folders under <dir>')
  .argument('<dir>', 'data folder: drives, keys, map and root credential live here')
  .option('--drives <n>', 'drive folders on first start', '6')
  .option('--data <k>', 'data shards on first start', '4')
  .option('--parity <m>', 'parity shards on first start', '2')
  .option('--address <host:port>', 'S3 address', '0.0.0.0:9000')
  .option('--region <name>', 'region reported to clients', 'us-east-1')
  .option('--log-level <level>', 'pino level', process.env.TESSERA_LOG_LEVEL ?? 'info')
  .action(
    async (
      dir: string,
      o: {
        drives: string
        data: string
        parity: string
        address: string
        region: string
        logLevel: string
      },
    ) => {
      const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(o.address)
      if (!m) throw new Error(`--address ${o.address} is not host:port`)
      const logger = pino(
        { level: o.logLevel, base: { component: 'tessera-server' } },
        destination(2),
      )
      const server = await startEmbedded(
        {
          dir,
          drives: Number(o.drives),
          data: Number(o.data),
          parity: Number(o.parity),
          host: m[1]!,
          port: Number(m[2]),
          region: o.region,
        },
        logger,
      )
      const endpoint = `http://127.0.0.1:${server.port}`
      const out: string[] = [`Tessera is serving S3 at ${endpoint} (region ${o.region}).`]
      if (server.created) {
        out.push(
          'Root credential (shown this once; also in credentials.yaml, mode 0600):',
          `  AWS_ACCESS_KEY_ID=${server.created.accessKeyId}`,
          `  AWS_SECRET_ACCESS_KEY=${server.created.secretAccessKey}`,
        )
      } else {
        out.push(`Root access key id: ${await rootKeyId(dir)} (secret in ${dir}/credentials.yaml).`)
      }
      out.push(`Try: aws --endpoint-url ${endpoint} s3 mb s3://my-bucket`)
      process.stdout.write(
        `${out.join('\n')}\n${JSON.stringify({ listening: { port: server.port } })}\n`,
      )
      stopOnSignals(() => server.close(), logger)
    },
  )

program
  .command('cluster')
  .description(
    'run a multi-node cluster on this machine: one tessera-node process per node and ' +
      'tessera-gateway processes, all on 127.0.0.1, with their files under <dir>',
  )
  .argument('<dir>', 'cluster folder: map, keys, configs, logs, drives and root credential')
  .option('--nodes <n>', 'storage nodes on first start', '4')
  .option('--drives-per-node <n>', 'drive folders per node on first start', '1')
  .option('--data <k>', 'data shards on first start', '2')
  .option('--parity <m>', 'parity shards on first start', '2')
  .option('--gateways <n>', 'gateways on first start', '1')
  .option('--block-size <size>', 'erasure block size on first start', '1MiB')
  .option('--inline-below <size>', 'objects smaller than this are kept inline', '128KiB')
  .option(
    '--address <host:port>',
    'S3 address of the first gateway; the next ones +1',
    '127.0.0.1:9000',
  )
  .option('--log-level <level>', 'pino level', process.env.TESSERA_LOG_LEVEL ?? 'info')
  .action(
    async (
      dir: string,
      o: {
        nodes: string
        drivesPerNode: string
        data: string
        parity: string
        gateways: string
        blockSize: string
        inlineBelow: string
        address: string
        logLevel: string
      },
    ) => {
      const int = (name: string, v: string, min: number): number => {
        const n = Number(v)
        if (!Number.isInteger(n) || n < min)
          throw new Error(`--${name} ${v}: want an integer ≥ ${min}`)
        return n
      }
      const size = (name: string, v: string): number => {
        const n = parseByteSize(v)
        if (n === undefined) throw new Error(`--${name} ${v}: want a size such as 1MiB or 128KiB`)
        return n
      }
      let stopping = false
      let cluster: LocalCluster | undefined
      const closeCluster = async (): Promise<void> => {
        try {
          await cluster?.close()
          process.exit(0)
        } catch (err) {
          process.stderr.write(`tessera: stop failed: ${(err as Error).message}\n`)
          process.exit(1)
        }
      }
      // Handlers first: a signal while the processes start stops them once they have started.
      const stop = (signal: string): void => {
        if (stopping) return
        stopping = true
        process.stderr.write(`tessera: ${signal}: stopping the cluster\n`)
        if (cluster) void closeCluster()
      }
      process.on('SIGTERM', () => stop('SIGTERM'))
      process.on('SIGINT', () => stop('SIGINT'))
      let logs: Record<string, string> = {}
      cluster = await startLocalCluster({
        dir,
        nodes: int('nodes', o.nodes, 1),
        drivesPerNode: int('drives-per-node', o.drivesPerNode, 1),
        data: int('data', o.data, 1),
        parity: int('parity', o.parity, 0),
        gateways: int('gateways', o.gateways, 1),
        blockSize: size('block-size', o.blockSize),
        inlineBelow: size('inline-below', o.inlineBelow),
        gatewayAddress: o.address,
        logLevel: o.logLevel,
        onExit: (id, code, signal) => {
          if (stopping) return
          process.stderr.write(
            `tessera: ${id} exited (${code ?? signal}); see ${logs[id] ?? 'its log'}. ` +
              `The others keep running; Ctrl-C stops them.\n`,
          )
        },
      })
      logs = Object.fromEntries(
        [...cluster.nodes, ...cluster.gateways].map((p) => [p.id, p.logPath]),
      )
      const e = cluster.map.erasure
      const out: string[] = [
        `Tessera cluster ${cluster.map.cluster} in ${cluster.dir}` +
          (cluster.created ? ' (created now)' : ' (existing; layout options ignored)') +
          `: ${cluster.nodes.length} nodes, RS(${e.data},${e.parity}), block ${bytes(e.blockSize)}, ` +
          `inline below ${bytes(e.inlineBelow)}.`,
      ]
      for (const n of cluster.nodes) out.push(`  node ${n.id}  ${n.address}  log ${n.logPath}`)
      for (const g of cluster.gateways)
        out.push(`  gateway ${g.id}  S3 at ${g.endpoint}  log ${g.logPath}`)
      if (cluster.createdRoot) {
        out.push(
          `Root credential (shown this once; also in ${cluster.credentialsPath}, mode 0600):`,
          `  AWS_ACCESS_KEY_ID=${cluster.createdRoot.accessKeyId}`,
          `  AWS_SECRET_ACCESS_KEY=${cluster.createdRoot.secretAccessKey}`,
        )
      } else {
        out.push(
          `Root access key id: ${cluster.root.accessKeyId} (secret in ${cluster.credentialsPath}).`,
        )
      }
      out.push(`Try: aws --endpoint-url ${cluster.gateways[0]?.endpoint} s3 mb s3://my-bucket`)
      out.push('Ctrl-C stops every process; the files stay for the next start.')
      process.stdout.write(
        `${out.join('\n')}\n${JSON.stringify({ listening: { port: cluster.gateways[0]?.port, gateways: cluster.gateways.map((g) => ({ id: g.id, port: g.port })) } })}\n`,
      )
      if (stopping) await closeCluster()
    },
  )

// `tessera admin …`: the admin API client, defined in admin-cli.ts (cluster and heal: ops-cli.ts).
program.addCommand(adminCommand(process.env))

// `tessera map …`: writing and checking cluster.yaml for real servers, defined in map-cli.ts.
program.addCommand(mapCommand())

/** `1048576` → `1MiB`: the largest binary unit that divides the size. */
function bytes(n: number): string {
  for (const [unit, f] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (n >= f && n % f === 0) return `${n / f}${unit}`
  }
  return `${n}B`
}

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`tessera: ${(err as Error).message}\n`)
  process.exit(1)
})
