#!/usr/bin/env -S UV_THREADPOOL_SIZE=64 node --single-threaded-gc --heap-growing-percent=300
import {
  generateIdentity,
  loadClusterMap,
  loadIdentity,
  STOP_WITH_STDIN_FLAG,
  saveIdentity,
  stopOnSignals,
} from '@tessera/protocol'
// tessera-node: the storage daemon's entry point. The only place that reads process.env and
// creates the logger.
import { Command } from 'commander'
import { pino } from 'pino'
import { loadConfig } from './config.ts'
import { healCommand } from './heal/cli.ts'
import { listenMetrics, NodeMetrics } from './metrics.ts'
import { StorageNode, splitAddress } from './storage-node.ts'

const program = new Command('tessera-node').description(
  'Tessera storage node: owns a server’s drives',
)

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
  .description('format or check the drives, then serve the cluster')
  .option('--config <file>', 'node config (YAML); TESSERA_* variables override it')
  .option(
    STOP_WITH_STDIN_FLAG,
    'stop when stdin ends (for launchers: the daemon does not outlive the process that started it)',
  )
  .action(async (opts: { config?: string; stopWithStdin?: boolean }) => {
    const config = await loadConfig({ file: opts.config, env: process.env })
    const logger = pino({
      level: config.logLevel,
      base: { component: 'tessera-node', node: config.nodeId },
    })
    const { map, hash } = await loadClusterMap(config.map)
    const identity = await loadIdentity(config.identity)
    const listen = config.listen ? splitAddress(config.listen) : undefined
    // Metrics and health over HTTP, only when metricsListen is set.
    const metrics = config.metricsListen ? new NodeMetrics({ nodeId: config.nodeId }) : undefined
    const metricsAt = config.metricsListen ? splitAddress(config.metricsListen) : undefined
    const metricsServer =
      metrics && metricsAt
        ? await listenMetrics({ host: metricsAt[0], port: Number(metricsAt[1]), metrics })
        : undefined
    const node = await StorageNode.start(
      {
        map,
        mapHash: hash,
        nodeId: config.nodeId,
        identity,
        trashIntervalMs: config.trashIntervalMs,
        ...(listen ? { listen: { host: listen[0], port: Number(listen[1]) } } : {}),
        lifecycle: {
          intervalMs: config.lifecycleIntervalMs,
          noncurrentDefaultDays: config.noncurrentDefaultDays,
          abortIncompleteDefaultDays: config.abortIncompleteDefaultDays,
          clockOffsetMs: config.lifecycleClockOffsetMs,
        },
        heal: {
          scanRate: config.scanRate,
          scanIntervalMs: config.scanIntervalMs,
          deepEvery: config.deepEvery,
          graceMs: config.healGraceMs,
          concurrency: config.healConcurrency,
        },
        directWriteBytes: config.directWriteBytes,
        driveStallMs: config.driveStallMs,
      },
      { logger, ...(metrics ? { metrics } : {}) },
    )
    metrics?.markServing()
    if (metricsServer) logger.info({ address: metricsServer.address }, 'metrics server started')
    // Tests and supervisors read this line to learn the port when listening on port 0.
    process.stdout.write(
      `${JSON.stringify({
        listening: node.address,
        nodeId: node.nodeId,
        ...(metricsServer ? { metrics: metricsServer.address } : {}),
      })}\n`,
    )
    stopOnSignals(
      async () => {
        await metricsServer?.close()
        await node.close()
      },
      logger,
      { stdin: opts.stopWithStdin === true },
    )
  })

program
  .command('heal')
  .description('start a full heal (or a deep scan) of one drive of the running node; show progress')
  .option('--config <file>', 'node config (YAML); TESSERA_* variables override it')
  .requiredOption('--drive <path>', 'the drive folder, as listed in cluster.yaml')
  .option('--deep', 'a deep scan cycle (every chunk checksum) instead of a full heal')
  .option('--no-wait', 'return once started')
  .action(async (opts: { config?: string; drive: string; deep?: boolean; wait: boolean }) => {
    const config = await loadConfig({ file: opts.config, env: process.env })
    await healCommand({
      config,
      drive: opts.drive,
      deep: opts.deep === true,
      wait: opts.wait,
      print: (line) => process.stdout.write(`${line}\n`),
    })
  })

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`tessera-node: ${(err as Error).message}\n`)
  process.exit(1)
})
