/**
 * @packageDocumentation
 * `@tessera/server`: the `tessera` operator CLI and the embedded server, the one package where
 * a storage node and a gateway share a process.
 */
export {
  type EmbeddedInit,
  type EmbeddedServer,
  prepareEmbedded,
  startEmbedded,
} from './embedded.ts'
