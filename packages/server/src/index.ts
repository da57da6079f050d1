/**
 * @packageDocumentation
 * `@tessera/server`: the `tessera` operator CLI, the embedded server (the one package where a
 * storage node and a gateway share a process) and the local multi-process cluster launcher.
 */
export {
  type EmbeddedInit,
  type EmbeddedServer,
  prepareEmbedded,
  startEmbedded,
} from './embedded.ts'
export {
  credentialsYaml,
  freePort,
  GATEWAY_MAIN,
  LocalCluster,
  type LocalClusterOptions,
  type LocalGateway,
  type LocalNode,
  NODE_MAIN,
  newRootCredential,
  type RootCredential,
  startLocalCluster,
} from './local-cluster.ts'
