#!/usr/bin/env node
import {
  generateIdentity,
  loadClusterMap,
  loadIdentity,
  saveIdentity,
  stopOnSignals,
} from '@tessera/protocol'
// tessera-node: the storage daemon's entry point. The only place that reads process.env and
// creates the logger.
import { Command } from 'commander'
import { pino } from 'pino'
import { loadConfig } from './config.ts'
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
  .action(async (opts: { config?: string }) => {
    const config = await loadConfig({ file: opts.config, env: process.env })
    const logger = pino({
      level: config.logLevel,
      base: { component: 'tessera-node', node: config.nodeId },
    })
    const { map, hash } = await loadClusterMap(config.map)
    const identity = await loadIdentity(config.identity)
    const listen = config.listen ? splitAddress(config.listen) : undefined
    const node = await StorageNode.start(
      {
        map,
        mapHash: hash,
        nodeId: config.nodeId,
        identity,
        trashIntervalMs: config.trashIntervalMs,
        ...(listen ? { listen: { host: listen[0], port: Number(listen[1]) } } : {}),
      },
      { logger },
    )
    // Tests and supervisors read this line to learn the port when listening on port 0.
    process.stdout.write(`${JSON.stringify({ listening: node.address, nodeId: node.nodeId })}\n`)
    stopOnSignals(() => node.close(), logger)
  })

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`tessera-node: ${(err as Error).message}\n`)
  process.exit(1)
})
