/**
 * @packageDocumentation
 * `@tessera/gateway`: the stateless S3 front door. It speaks S3 over uWebSockets.js, verifies
 * AWS Signature V4, and stores objects erasure-coded on the cluster's nodes through the
 * protocol's RPCs. It keeps nothing that is not also on the nodes.
 *
 * @example
 * ```ts
 * import { Gateway } from '@tessera/gateway'
 * const gw = await Gateway.start({ map, mapHash, identity, port: 9000, region: 'us-east-1',
 *   root: { accessKeyId, secretAccessKey }, masterKey }, { logger })
 * ```
 */
export { ADMIN_PREFIX } from './admin/admin-api.ts'
export type { GatewayRequestsView, RequestsReport } from './admin/request-stats.ts'
export type { AccessControl, Principal } from './auth/access.ts'
export { ConfigError, type GatewayConfig, loadConfig, readCredentials } from './config.ts'
export { Gateway, type GatewayComponents, type GatewayInit } from './gateway.ts'
export { parseMasterKey, readMasterKeyFile, writeNewMasterKeyFile } from './iam/crypto.ts'
export { S3_ERRORS, S3Error, type S3ErrorCode } from './s3/errors.ts'
