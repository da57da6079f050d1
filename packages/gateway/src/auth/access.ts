/**
 * Authentication and authorization behind one interface: the S3 handlers ask `authenticate`
 * who is calling and `authorize` whether they may do an action on a resource. The cluster's
 * identity model (design §7) implements it in `iam/cluster-access.ts`.
 */
import { createHash } from 'node:crypto'
import type { AclGrant, AclOwner, BucketRecord } from '@tessera/protocol'
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
  /**
   * Object actions an object ACL can grant (GetObject, Get/PutObjectAcl): loads the ACL of the
   * version the request names, consulted only when the rest of the decision denies.
   */
  objectAcl?: () => Promise<{ grants: readonly AclGrant[]; ignorePublic: boolean } | undefined>
  /** A probe, not a request (the console's capabilities): a denial is not logged. */
  probe?: boolean
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
  /** The account as an ACL owner (the root credential): owner of buckets made before owners. */
  accountOwner(): AclOwner
  /** The user (or the account) with this canonical id, for ACL grants; undefined if none. */
  canonicalUser(id: string): AclOwner | undefined
  /** The user whose e-mail address this is (ACL grants by `emailAddress`), as an ACL owner. */
  canonicalUserByEmail(email: string): AclOwner | undefined
  /** The account id that owns every bucket (x-amz-expected-bucket-owner compares to it). */
  accountId(): string
  /**
   * Verifies the SigV4 signature of a browser-form POST policy with the signing key's secret
   * and returns the caller; throws S3Error (SignatureDoesNotMatch, InvalidAccessKeyId, …).
   */
  authenticatePost(form: PostPolicyCredentials, sourceIp: string): Promise<Authenticated>
}

/** The signature fields of a browser-form POST (lower-case form field names). */
export interface PostPolicyCredentials {
  /** x-amz-credential: 'AKID/YYYYMMDD/region/s3/aws4_request'. */
  credential: string
  /** x-amz-date, 'YYYYMMDDTHHMMSSZ'. */
  date: string
  /** x-amz-signature, hex. */
  signature: string
  /** The policy field, base64 JSON, exactly as sent (the signed string). */
  policy: string
  /** x-amz-security-token, for temporary credentials. */
  securityToken?: string
}

/** A stable 64-hex canonical user id for a user, like AWS's opaque ids (not secret). */
export function canonicalIdOf(name: string): string {
  return createHash('sha256').update(`tessera-canonical-user:${name}`).digest('hex')
}
