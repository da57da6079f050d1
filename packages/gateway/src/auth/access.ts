/**
 * Authentication and authorization behind one interface: the S3 handlers ask `authenticate`
 * who is calling and `authorize` whether they may do an action on a resource. The cluster's
 * identity model (design §7) implements it in `iam/cluster-access.ts`.
 */
import { createHash } from 'node:crypto'
import type { BucketRecord } from '@tessera/protocol'
import type { Principal } from '../iam/operations.ts'
import type { SignedRequest, SigV4Auth } from './sigv4.ts'

export type { Principal }

export interface Authenticated {
  /** Undefined for an anonymous (unsigned) request. */
  principal?: Principal
  auth?: SigV4Auth
}

/** Facts about the request that policy conditions look at. */
export interface RequestFacts {
  requestId: string
  sourceIp: string
  /** True when the request came over TLS (aws:SecureTransport). */
  secure: boolean
  headers: Record<string, string>
  params: URLSearchParams
}

/** What a request wants to do: an IAM action name and the resource it touches. */
export interface AccessRequest {
  action: string
  bucket?: string
  key?: string
  /** The bucket's record when the bucket exists (its project and policy). */
  bucketRecord?: BucketRecord
  request?: RequestFacts
}

export interface AccessControl {
  /**
   * Verifies the signature (or accepts an anonymous request); throws S3Error. `bodySha256` is
   * the hash of a small body already read, for STS and IAM clients that do not send
   * x-amz-content-sha256.
   */
  authenticate(req: SignedRequest, sourceIp: string, bodySha256?: string): Promise<Authenticated>
  /** Throws AccessDenied unless the caller may do `what`. */
  authorize(who: Authenticated, what: AccessRequest): Promise<void>
  /** The project a caller's new buckets go to. */
  projectOf(who: Authenticated): string
  /** Whether ListBuckets shows this bucket to the caller (its key's project). */
  sees(who: Authenticated, bucket: BucketRecord): boolean
}

/** A stable 64-hex canonical user id for a user, like AWS's opaque ids (not secret). */
export function canonicalIdOf(name: string): string {
  return createHash('sha256').update(`tessera-canonical-user:${name}`).digest('hex')
}
