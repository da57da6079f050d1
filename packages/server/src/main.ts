#!/usr/bin/env node
// tessera: the operator CLI. `tessera server <dir>` runs the embedded default. The only place
// that reads process.env and creates the logger.
import { Command } from 'commander'
import { destination, pino } from 'pino'
import { rootKeyId, startEmbedded } from './embedded.ts'

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
      let stopping = false
      const stop = (signal: string) => {
        if (stopping) return
        stopping = true
        logger.info({ signal }, 'stopping')
        server.close().then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err: (err as Error).message }, 'stop failed')
            process.exit(1)
          },
        )
      }
      process.on('SIGTERM', () => stop('SIGTERM'))
      process.on('SIGINT', () => stop('SIGINT'))
    },
  )

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`tessera: ${(err as Error).message}\n`)
  process.exit(1)
})
