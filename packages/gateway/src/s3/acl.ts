/**
 * S3 access control lists, object ownership and the public access block: what a bucket's
 * settings say, what an ACL grants, and the checks S3 makes when a request carries an ACL.
 *
 * Design notes
 * - A bucket keeps its owner, ACL, ownership setting and public access block in its record's
 *   settings. An object version keeps `owner` only when it differs from the bucket's owner and
 *   `acl` only when it is not the default (its owner's FULL_CONTROL alone), so a bucket that
 *   does not use ACLs (BucketOwnerEnforced, the default) writes nothing extra per object.
 * - Bucket records from before these settings have no ownership setting and no public access
 *   block: they behave as ObjectWriter with nothing blocked, which is what an AWS bucket does
 *   once both settings are deleted. Their owner is the account (the root credential).
 * - How ACLs take part in the access decision is in `iam/decide.ts` (step 5) and in
 *   docs/s3-access-control.md; this file only says what a grant grants.
 * - Stored grants name users by canonical id (with the display name known when they were
 *   written) and groups by URI; a grant by e-mail address is resolved when it is written.
 */
import type { AclGrant, AclOwner, AclPermission, BucketRecord } from '@tessera/protocol'
import type { AccessControl } from '../auth/access.ts'
import type { Policy } from '../iam/policy.ts'
import type { ObjectStore } from '../store/object-store.ts'
import { S3Error } from './errors.ts'
import {
  type ObjectOwnership,
  type PublicAccessBlock,
  parseAccessControlPolicy,
  type XmlGrant,
} from './xml.ts'

/** Everyone, signed or not. */
export const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers'
/** Every signed request (of a principal that passes the role gate, here). */
export const AUTHENTICATED_USERS = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers'
/** S3 server access log delivery; no principal of ours is in it. */
export const LOG_DELIVERY = 'http://acs.amazonaws.com/groups/s3/LogDelivery'

const GROUPS = new Set([ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY])

/** The canonical id AWS shows for unsigned requests. */
export const ANONYMOUS_CANONICAL_ID = '65a011a29cdf8ec533ec3d1ccaae921c'

/** The canned ACLs S3 accepts in x-amz-acl. */
export const CANNED_ACLS = [
  'private',
  'public-read',
  'public-read-write',
  'authenticated-read',
  'aws-exec-read',
  'bucket-owner-read',
  'bucket-owner-full-control',
  'log-delivery-write',
] as const

export type CannedAcl = (typeof CANNED_ACLS)[number]

/** The x-amz-grant-* headers and the permission each grants. */
const GRANT_HEADERS: readonly [string, AclPermission][] = [
  ['x-amz-grant-full-control', 'FULL_CONTROL'],
  ['x-amz-grant-read', 'READ'],
  ['x-amz-grant-write', 'WRITE'],
  ['x-amz-grant-read-acp', 'READ_ACP'],
  ['x-amz-grant-write-acp', 'WRITE_ACP'],
]

/**
 * The actions an ACL permission allows, as AWS documents the mapping: on a bucket, READ lists
 * it, WRITE creates, overwrites and deletes objects in it (and the multipart calls that make
 * one), READ_ACP/WRITE_ACP read and replace the bucket's ACL; on an object, READ reads it,
 * READ_ACP/WRITE_ACP read and replace its ACL. FULL_CONTROL is all of them.
 */
export const ACL_ACTIONS: Readonly<
  Record<string, { scope: 'bucket' | 'object'; permission: AclPermission }>
> = {
  's3:ListBucket': { scope: 'bucket', permission: 'READ' },
  's3:ListBucketVersions': { scope: 'bucket', permission: 'READ' },
  's3:ListBucketMultipartUploads': { scope: 'bucket', permission: 'READ' },
  's3:PutObject': { scope: 'bucket', permission: 'WRITE' },
  's3:DeleteObject': { scope: 'bucket', permission: 'WRITE' },
  's3:AbortMultipartUpload': { scope: 'bucket', permission: 'WRITE' },
  's3:ListMultipartUploadParts': { scope: 'bucket', permission: 'WRITE' },
  's3:GetBucketAcl': { scope: 'bucket', permission: 'READ_ACP' },
  's3:PutBucketAcl': { scope: 'bucket', permission: 'WRITE_ACP' },
  's3:GetObject': { scope: 'object', permission: 'READ' },
  's3:GetObjectVersion': { scope: 'object', permission: 'READ' },
  's3:GetObjectAcl': { scope: 'object', permission: 'READ_ACP' },
  's3:GetObjectVersionAcl': { scope: 'object', permission: 'READ_ACP' },
  's3:PutObjectAcl': { scope: 'object', permission: 'WRITE_ACP' },
  's3:PutObjectVersionAcl': { scope: 'object', permission: 'WRITE_ACP' },
}

/** The ACL that applies to a decision, with the public access block's IgnorePublicAcls. */
export interface AclInForce {
  grants: readonly AclGrant[]
  ignorePublic: boolean
}

/**
 * Whether `grants` give the caller (by canonical id; undefined when anonymous) the permission
 * `action` needs. AllUsers takes in everyone, AuthenticatedUsers every signed caller; both are
 * skipped when the bucket ignores public ACLs.
 */
export function aclAllows(acl: AclInForce, action: string, canonicalId: string | undefined) {
  const need = ACL_ACTIONS[action]?.permission
  if (need === undefined) return false
  return acl.grants.some((g) => {
    if (g.permission !== need && g.permission !== 'FULL_CONTROL') return false
    const who = g.grantee
    if (who.type === 'CanonicalUser') return canonicalId !== undefined && who.id === canonicalId
    if (acl.ignorePublic) return false
    if (who.uri === ALL_USERS) return true
    return who.uri === AUTHENTICATED_USERS && canonicalId !== undefined
  })
}

/** Whether an ACL grants anything to AllUsers or AuthenticatedUsers (AWS's "public"). */
export function isPublicAcl(grants: readonly AclGrant[]): boolean {
  return grants.some(
    (g) =>
      g.grantee.type === 'Group' &&
      (g.grantee.uri === ALL_USERS || g.grantee.uri === AUTHENTICATED_USERS),
  )
}

// ---------------------------------------------------------------------------------------------
// Bucket settings

/** The ownership setting; undefined for buckets that have none (they act as ObjectWriter). */
export function ownershipSettingOf(b: BucketRecord): ObjectOwnership | undefined {
  const o = b.settings?.ownership
  return typeof o === 'string' ? (o as ObjectOwnership) : undefined
}

/** The ownership in effect. */
export function ownershipOf(b: BucketRecord): ObjectOwnership {
  return ownershipSettingOf(b) ?? 'ObjectWriter'
}

/** Whether ACLs take part in access decisions (everything but BucketOwnerEnforced). */
export function aclsEnabled(b: BucketRecord): boolean {
  return ownershipOf(b) !== 'BucketOwnerEnforced'
}

/** The public access block as stored; undefined when the bucket has none. */
export function publicAccessBlockSettingOf(b: BucketRecord): PublicAccessBlock | undefined {
  const p = b.settings?.publicAccessBlock
  return typeof p === 'object' && p !== null ? (p as PublicAccessBlock) : undefined
}

/** The public access block in effect (all off without one). */
export function publicAccessBlockOf(b: BucketRecord): PublicAccessBlock {
  return (
    publicAccessBlockSettingOf(b) ?? {
      BlockPublicAcls: false,
      IgnorePublicAcls: false,
      BlockPublicPolicy: false,
      RestrictPublicBuckets: false,
    }
  )
}

/** What AWS gives a bucket made since April 2023: every public access setting on. */
export const DEFAULT_PUBLIC_ACCESS_BLOCK: PublicAccessBlock = {
  BlockPublicAcls: true,
  IgnorePublicAcls: true,
  BlockPublicPolicy: true,
  RestrictPublicBuckets: true,
}

/** The bucket's owner: its creator, or the account for buckets from before owners. */
export function bucketOwnerOf(b: BucketRecord, access: AccessControl): AclOwner {
  const o = b.settings?.owner as AclOwner | undefined
  return o !== undefined && typeof o.id === 'string' ? o : access.accountOwner()
}

/** The owner's FULL_CONTROL: the default ACL of everything. */
export function ownerOnly(owner: AclOwner): AclGrant[] {
  return [
    {
      grantee: { type: 'CanonicalUser', id: owner.id, displayName: owner.displayName },
      permission: 'FULL_CONTROL',
    },
  ]
}

/** The bucket's ACL (the owner's FULL_CONTROL when none was set). */
export function bucketAclOf(b: BucketRecord, access: AccessControl): AclGrant[] {
  const acl = b.settings?.acl
  return Array.isArray(acl) ? (acl as AclGrant[]) : ownerOnly(bucketOwnerOf(b, access))
}

/** The bucket ACL that takes part in decisions, or undefined when ACLs are disabled. */
export function bucketAclInForce(b: BucketRecord, access: AccessControl): AclInForce | undefined {
  if (!aclsEnabled(b)) return undefined
  return {
    grants: bucketAclOf(b, access),
    ignorePublic: publicAccessBlockOf(b).IgnorePublicAcls,
  }
}

/** An object version's owner and ACL as S3 shows them under the bucket's current setting. */
export function objectAclOf(
  b: BucketRecord,
  rec: { owner?: AclOwner; acl?: AclGrant[] },
  access: AccessControl,
): { owner: AclOwner; grants: AclGrant[] } {
  const bucketOwner = bucketOwnerOf(b, access)
  // With ACLs disabled, the bucket owner owns everything and stored ACLs are dormant.
  if (!aclsEnabled(b)) return { owner: bucketOwner, grants: ownerOnly(bucketOwner) }
  const owner = rec.owner ?? bucketOwner
  return { owner, grants: rec.acl ?? ownerOnly(owner) }
}

/**
 * A loader of an object version's ACL for the access decision (undefined when the version
 * does not exist or is a delete marker: the decision then stands as it is).
 */
export function objectAclLoader(
  objects: ObjectStore,
  access: AccessControl,
  b: BucketRecord,
  key: string,
  versionId: string | undefined,
): () => Promise<AclInForce | undefined> {
  return async () => {
    if (!aclsEnabled(b)) return undefined
    const r = await objects.resolve(b.name, key, versionId).catch(() => undefined)
    if (r === undefined || r.record.deleteMarker) return undefined
    return {
      grants: objectAclOf(b, r.record, access).grants,
      ignorePublic: publicAccessBlockOf(b).IgnorePublicAcls,
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ACLs sent with a request

/** An ACL a request carries: a canned one, or explicit grants (headers or an XML body). */
export type RequestedAcl =
  | { kind: 'canned'; canned: CannedAcl }
  | { kind: 'grants'; grants: AclGrant[] }

/** Expands a canned ACL for a resource owned by `owner` in a bucket owned by `bucketOwner`. */
export function cannedGrants(
  canned: CannedAcl,
  owner: AclOwner,
  bucketOwner: AclOwner,
  scope: 'bucket' | 'object',
): AclGrant[] {
  const grants = ownerOnly(owner)
  const group = (uri: string, permission: AclPermission) =>
    grants.push({ grantee: { type: 'Group', uri }, permission })
  const bucketOwnerGets = (permission: AclPermission) => {
    // On a bucket (or an object of the bucket's owner) these say nothing more.
    if (scope === 'bucket' || bucketOwner.id === owner.id) return
    grants.push({
      grantee: { type: 'CanonicalUser', id: bucketOwner.id, displayName: bucketOwner.displayName },
      permission,
    })
  }
  switch (canned) {
    case 'public-read':
      group(ALL_USERS, 'READ')
      break
    case 'public-read-write':
      group(ALL_USERS, 'READ')
      group(ALL_USERS, 'WRITE')
      break
    case 'authenticated-read':
      group(AUTHENTICATED_USERS, 'READ')
      break
    case 'bucket-owner-read':
      bucketOwnerGets('READ')
      break
    case 'bucket-owner-full-control':
      bucketOwnerGets('FULL_CONTROL')
      break
    case 'log-delivery-write':
      if (scope === 'bucket') {
        group(LOG_DELIVERY, 'WRITE')
        group(LOG_DELIVERY, 'READ_ACP')
      }
      break
    // private, and aws-exec-read (its EC2 grantee has no counterpart here).
  }
  return grants
}

/** Splits a grant header value (`id="…", uri="…"`) into its grantees, as written. */
function parseGrantHeader(name: string, value: string): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = []
  const re = /\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([^,\s]+))\s*(?:,|$)/y
  let at = 0
  while (at < value.length) {
    re.lastIndex = at
    const m = re.exec(value)
    if (m === null) {
      throw new S3Error('InvalidArgument', `The ${name} header is not valid.`, {
        ArgumentName: name,
        ArgumentValue: value,
      })
    }
    out.push({ type: m[1]!, value: (m[2] ?? m[3] ?? '').trim() })
    at = re.lastIndex
  }
  return out
}

/** Turns a grantee by id, e-mail or group into a stored grantee, checking that it exists. */
export function resolveGrantee(g: XmlGrant['grantee'], access: AccessControl): AclGrant['grantee'] {
  switch (g.type) {
    case 'CanonicalUser': {
      const user = access.canonicalUser(g.id)
      if (user === undefined) {
        throw new S3Error('InvalidArgument', 'Invalid id', {
          ArgumentName: 'CanonicalUser/ID',
          ArgumentValue: g.id,
        })
      }
      return { type: 'CanonicalUser', id: user.id, displayName: user.displayName }
    }
    case 'Group':
      if (!GROUPS.has(g.uri)) {
        throw new S3Error('InvalidArgument', 'Invalid group uri', {
          ArgumentName: 'Group/URI',
          ArgumentValue: g.uri,
        })
      }
      return { type: 'Group', uri: g.uri }
    case 'AmazonCustomerByEmail': {
      // Stored as the user it names, as S3 does: the grant lists a CanonicalUser afterwards.
      const user = access.canonicalUserByEmail(g.emailAddress)
      if (user === undefined) {
        throw new S3Error('UnresolvableGrantByEmailAddress', undefined, {
          EmailAddress: g.emailAddress,
        })
      }
      return { type: 'CanonicalUser', id: user.id, displayName: user.displayName }
    }
  }
}

/**
 * The ACL a request's headers carry: x-amz-acl, or x-amz-grant-* (not both), or undefined.
 * Grantees are resolved and checked. The POST form upload maps its `acl` field onto x-amz-acl
 * and reuses this.
 */
export function aclFromHeaders(
  headers: Record<string, string | undefined>,
  access: AccessControl,
): RequestedAcl | undefined {
  const canned = headers['x-amz-acl']
  const present = GRANT_HEADERS.filter(([h]) => headers[h] !== undefined)
  if (canned !== undefined && present.length > 0) {
    throw new S3Error(
      'InvalidRequest',
      'Specifying both Canned ACLs and Header Grants is not allowed',
    )
  }
  if (canned !== undefined) {
    const v = canned.trim()
    if (!(CANNED_ACLS as readonly string[]).includes(v)) {
      throw new S3Error('InvalidArgument', undefined, {
        ArgumentName: 'x-amz-acl',
        ArgumentValue: canned,
      })
    }
    return { kind: 'canned', canned: v as CannedAcl }
  }
  if (present.length === 0) return undefined
  const grants: AclGrant[] = []
  for (const [h, permission] of present) {
    for (const g of parseGrantHeader(h, headers[h]!)) {
      const type = g.type.toLowerCase()
      let grantee: XmlGrant['grantee']
      if (type === 'id') grantee = { type: 'CanonicalUser', id: g.value }
      else if (type === 'uri') grantee = { type: 'Group', uri: g.value }
      else if (type === 'emailaddress')
        grantee = { type: 'AmazonCustomerByEmail', emailAddress: g.value }
      else {
        throw new S3Error('InvalidArgument', `Unknown grantee type ${g.type}.`, {
          ArgumentName: h,
          ArgumentValue: headers[h]!,
        })
      }
      grants.push({ grantee: resolveGrantee(grantee, access), permission })
    }
  }
  return { kind: 'grants', grants }
}

/**
 * The ACL a PutBucketAcl or PutObjectAcl request sets: from its headers or from its
 * `AccessControlPolicy` body, never both (UnexpectedContent) and never neither
 * (MissingSecurityHeader). A body's Owner must be the resource's owner.
 */
export function aclFromRequest(
  headers: Record<string, string | undefined>,
  body: Uint8Array,
  owner: AclOwner,
  access: AccessControl,
): RequestedAcl {
  const fromHeaders = aclFromHeaders(headers, access)
  const hasBody = Buffer.from(body).toString('utf8').trim() !== ''
  if (fromHeaders !== undefined) {
    if (hasBody) throw new S3Error('UnexpectedContent')
    return fromHeaders
  }
  if (!hasBody) {
    throw new S3Error(
      'MissingSecurityHeader',
      'Your request was missing a required header: send x-amz-acl, x-amz-grant-* or an AccessControlPolicy body.',
      { MissingHeaderName: 'x-amz-acl' },
    )
  }
  const doc = parseAccessControlPolicy(body)
  if (doc.owner !== undefined && doc.owner.id !== owner.id) {
    throw new S3Error('AccessDenied', 'Access Denied: the Owner of the ACL is not the owner.')
  }
  return {
    kind: 'grants',
    grants: doc.grants.map((g) => ({
      grantee: resolveGrantee(g.grantee, access),
      permission: g.permission,
    })),
  }
}

/** The grants an ACL of a request comes to, for a resource of `owner` in `bucketOwner`'s bucket. */
export function grantsOf(
  acl: RequestedAcl,
  owner: AclOwner,
  bucketOwner: AclOwner,
  scope: 'bucket' | 'object',
): AclGrant[] {
  return acl.kind === 'canned' ? cannedGrants(acl.canned, owner, bucketOwner, scope) : acl.grants
}

/** Whether grants say no more than "the bucket owner has FULL_CONTROL". */
function onlyBucketOwnerFullControl(grants: readonly AclGrant[], bucketOwner: AclOwner): boolean {
  return grants.every(
    (g) =>
      g.permission === 'FULL_CONTROL' &&
      g.grantee.type === 'CanonicalUser' &&
      g.grantee.id === bucketOwner.id,
  )
}

/**
 * Whether an ACL sent to a bucket with ACLs disabled is one S3 still accepts: for objects the
 * bucket-owner-full-control canned ACL, and for either explicit grants of FULL_CONTROL to the
 * bucket owner alone; for a new bucket also `private`.
 */
export function aclWithoutEffect(
  acl: RequestedAcl,
  bucketOwner: AclOwner,
  op: 'create-bucket' | 'object' | 'put-acl',
): boolean {
  if (acl.kind === 'canned') {
    if (acl.canned === 'bucket-owner-full-control') return op === 'object'
    return op === 'create-bucket' && acl.canned === 'private'
  }
  return onlyBucketOwnerFullControl(acl.grants, bucketOwner)
}

/**
 * The owner and ACL to store with an object version a request writes (`undefined` where the
 * default applies), after S3's checks: AccessControlListNotSupported when the bucket disables
 * ACLs and the request sets one, AccessDenied when it blocks public ACLs and the ACL is public.
 */
export function objectAclForWrite(
  b: BucketRecord,
  writer: AclOwner,
  acl: RequestedAcl | undefined,
  access: AccessControl,
): { owner?: AclOwner; acl?: AclGrant[] } {
  const bucketOwner = bucketOwnerOf(b, access)
  const ownership = ownershipOf(b)
  if (ownership === 'BucketOwnerEnforced') {
    if (acl !== undefined && !aclWithoutEffect(acl, bucketOwner, 'object')) {
      throw new S3Error('AccessControlListNotSupported')
    }
    return {}
  }
  const owner =
    ownership === 'BucketOwnerPreferred' &&
    acl?.kind === 'canned' &&
    acl.canned === 'bucket-owner-full-control'
      ? bucketOwner
      : writer
  const grants = acl ? grantsOf(acl, owner, bucketOwner, 'object') : ownerOnly(owner)
  if (publicAccessBlockOf(b).BlockPublicAcls && isPublicAcl(grants)) {
    throw new S3Error('AccessDenied', 'Access Denied: the bucket blocks public ACLs.')
  }
  return {
    ...(owner.id !== bucketOwner.id ? { owner } : {}),
    ...(isOwnerOnly(grants, owner) ? {} : { acl: grants }),
  }
}

function isOwnerOnly(grants: readonly AclGrant[], owner: AclOwner): boolean {
  return (
    grants.length === 1 &&
    grants[0]!.permission === 'FULL_CONTROL' &&
    grants[0]!.grantee.type === 'CanonicalUser' &&
    grants[0]!.grantee.id === owner.id
  )
}

/** The grants as the ACL document writes them. */
export function xmlGrantsOf(grants: readonly AclGrant[]): XmlGrant[] {
  return grants.map((g) => ({
    grantee:
      g.grantee.type === 'CanonicalUser'
        ? {
            type: 'CanonicalUser',
            id: g.grantee.id,
            ...(g.grantee.displayName !== undefined ? { displayName: g.grantee.displayName } : {}),
          }
        : { type: 'Group', uri: g.grantee.uri },
    permission: g.permission,
  }))
}

// ---------------------------------------------------------------------------------------------
// Public policies

// Condition keys whose fixed values tie a statement to known callers, so that AWS does not
// count it as public.
const FIXING_KEYS = new Set([
  'aws:sourceip',
  'aws:sourcearn',
  'aws:sourcevpc',
  'aws:sourcevpce',
  'aws:sourceaccount',
  'aws:sourceowner',
  'aws:principalaccount',
  'aws:principalarn',
  'aws:principalorgid',
  'aws:userid',
  's3:dataaccesspointarn',
  's3:dataaccesspointaccount',
])

const FIXING_OPERATORS = new Set([
  'StringEquals',
  'StringEqualsIgnoreCase',
  'StringLike',
  'ArnEquals',
  'ArnLike',
  'IpAddress',
])

/**
 * Whether a bucket policy is public as AWS defines it: some Allow statement names every
 * principal (`*`, or a wildcard in a principal) and no condition of it pins the caller to fixed
 * values of the keys AWS lists (source IP ranges other than everything, source ARN/VPC/account,
 * principal account/ARN/organization, user id, access point).
 */
export function isPublicPolicy(policy: Policy): boolean {
  return policy.statements.some((st) => {
    if (st.effect !== 'Allow') return false
    const wide =
      st.notPrincipal !== undefined ||
      st.principal === undefined ||
      st.principal === '*' ||
      Object.values(st.principal).some((list) =>
        (list as string[] | undefined)?.some((v) => v.includes('*')),
      )
    if (!wide) return false
    const fixed = st.conditions.some(
      (c) =>
        !c.ifExists &&
        FIXING_OPERATORS.has(c.base) &&
        FIXING_KEYS.has(c.key.toLowerCase()) &&
        c.values.length > 0 &&
        c.values.every((v) =>
          c.base === 'IpAddress' ? !/\/0$/.test(v.trim()) : !v.includes('*') && !v.includes('?'),
        ),
    )
    return !fixed
  })
}
