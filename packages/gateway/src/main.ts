#!/usr/bin/env -S UV_THREADPOOL_SIZE=64 node --single-threaded-gc --heap-growing-percent=300
// tessera-gateway: the S3 gateway's entry point. The only place that reads process.env and
// creates the logger.
import {
  generateIdentity,
  loadClusterMap,
  loadIdentity,
  STOP_WITH_STDIN_FLAG,
  saveIdentity,
  stopOnSignals,
} from '@tessera/protocol'
import { Command } from 'commander'
import { pino } from 'pino'
import { loadConfig } from './config.ts'
import { Gateway } from './gateway.ts'

const program = new Command('tessera-gateway').description('Tessera S3 gateway (stateless)')

program
  .command('keygen')
  .description('write a new identity key (mode 0600) and print its public id for cluster.yaml')
  .requiredOption('--out <file>', 'where to write the key')
  .action(async (opts: { out: string }) => {
    const id = await generateIdentity()
    await saveIdentity(opts.out, id)
    process.stdout.write(`${id.id}\n`)
  })

program
  .command('start')
  .description('connect to the cluster and serve S3')
  .option('--config <file>', 'gateway config (YAML); TESSERA_* variables override it')
  .option(
    STOP_WITH_STDIN_FLAG,
    'stop when stdin ends (for launchers: the daemon does not outlive the process that started it)',
  )
  .action(async (opts: { config?: string; stopWithStdin?: boolean }) => {
    const config = await loadConfig({ file: opts.config, env: process.env })
    const logger = pino({ level: config.logLevel, base: { component: 'tessera-gateway' } })
    const { map, hash } = await loadClusterMap(config.map)
    const identity = await loadIdentity(config.identity)
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(config.listen)!
    const gw = await Gateway.start(
      {
        map,
        mapHash: hash,
        identity,
        host: m[1]!,
        port: Number(m[2]),
        region: config.region,
        ...(config.domain ? { domain: config.domain } : {}),
        root: config.root,
        masterKey: config.masterKey,
        console: config.console && config.consoleDir ? { dir: config.consoleDir } : config.console,
      },
      { logger },
    )
    // Tests and supervisors read this line to learn the port when listening on port 0.
    process.stdout.write(`${JSON.stringify({ listening: { port: gw.port } })}\n`)
    stopOnSignals(() => gw.close(), logger, { stdin: opts.stopWithStdin === true })
  })

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`tessera-gateway: ${(err as Error).message}\n`)
  process.exit(1)
})
