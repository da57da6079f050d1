/**
 * Bucket operations and listings: Create/Delete/Head/ListBuckets, location, versioning,
 * tagging, bucket policy, ListObjects V1 and V2, ListObjectVersions.
 */
import { type AclOwner, type BucketRecord, hlcMillis } from '@tessera/protocol'
import type { Caller } from '../iam/operations.ts'
import { type Policy, PolicyError, parsePolicy } from '../iam/policy.ts'
import { listLatest, listVersions } from '../store/listing.ts'
import {
  aclFromHeaders,
  aclFromRequest,
  aclsEnabled,
  aclWithoutEffect,
  bucketAclOf,
  bucketOwnerOf,
  DEFAULT_PUBLIC_ACCESS_BLOCK,
  grantsOf,
  isPublicAcl,
  isPublicPolicy,
  ownershipSettingOf,
  publicAccessBlockOf,
  publicAccessBlockSettingOf,
  xmlGrantsOf,
} from './acl.ts'
import { callerOwner, ownerOf, readSmallBody, type S3Context } from './context.ts'
import { S3Error } from './errors.ts'
import {
  checkBodyDigests,
  LIFECYCLE_MAX_BODY_BYTES,
  lifecycleConfigurationXml,
  lifecycleOf,
  parseLifecycleConfiguration,
  requireIntegrityHeader,
} from './lifecycle.ts'
import {
  accessControlPolicyXml,
  type ChecksumAlgorithm,
  listBucketsXml,
  listObjectsV1Xml,
  listObjectsV2Xml,
  listObjectVersionsXml,
  locationXml,
  OBJECT_OWNERSHIPS,
  type ObjectOwnership,
  ownershipControlsXml,
  parseCreateBucketConfiguration,
  parseOwnershipControls,
  parsePublicAccessBlock,
  parseTagging,
  parseVersioningConfiguration,
  policyStatusXml,
  publicAccessBlockXml,
  taggingXml,
  versioningXml,
} from './xml.ts'

/** S3's bucket naming rules (general purpose buckets). */
export function checkBucketName(name: string): void {
  const bad = (why: string) =>
    new S3Error('InvalidBucketName', `The specified bucket is not valid: ${why}.`, {
      BucketName: name,
    })
  if (name.length < 3 || name.length > 63) throw bad('a name has 3 to 63 characters')
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name))
    throw bad(
      'use lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit',
    )
  if (name.includes('..')) throw bad('no two adjacent dots')
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) throw bad('a name must not look like an IP address')
  if (
    name.startsWith('xn--') ||
    name.startsWith('sthree-') ||
    name.endsWith('-s3alias') ||
    name.endsWith('--ol-s3')
  )
    throw bad('reserved prefix or suffix')
}

export async function createBucket(ctx: S3Context): Promise<void> {
  const name = ctx.bucket!
  checkBucketName(name)
  const body = await readSmallBody(ctx, 64 * 1024)
  const conf = parseCreateBucketConfiguration(body)
  const region = ctx.deps.region
  if (conf.locationConstraint !== undefined && conf.locationConstraint !== region) {
    if (conf.locationConstraint === '' && region === 'us-east-1') {
      // us-east-1 is the empty constraint.
    } else {
      throw new S3Error(
        'IllegalLocationConstraintException',
        `The ${conf.locationConstraint} location constraint is incompatible for the region specific endpoint this request was sent to.`,
      )
    }
  }
  const created = await ctx.deps.buckets.create(
    name,
    ctx.deps.access.projectOf(ctx.who),
    newBucketSettings(ctx),
  )
  if (!created) {
    // Bucket names are global: one in the caller's project is theirs, any other is taken.
    const existing = await ctx.deps.buckets.get(name)
    if (existing !== undefined && !ctx.deps.access.sees(ctx.who, existing)) {
      throw new S3Error('BucketAlreadyExists', undefined, { BucketName: name })
    }
    throw new S3Error('BucketAlreadyOwnedByYou', undefined, { BucketName: name })
  }
  ctx.res.header('Location', `/${name}`).end()
}

/**
 * A new bucket's owner (its creator), ACL, object ownership and public access block, as AWS
 * sets them since April 2023: BucketOwnerEnforced unless x-amz-object-ownership (or the
 * private canned ACL) says otherwise, and every public access setting on. A public ACL is
 * refused either way.
 */
function newBucketSettings(ctx: S3Context): Record<string, unknown> {
  const h = ctx.req.headers
  const owner = callerOwner(ctx)
  const asked = h['x-amz-object-ownership']
  if (asked !== undefined && !(OBJECT_OWNERSHIPS as readonly string[]).includes(asked)) {
    throw new S3Error('InvalidArgument', `Invalid x-amz-object-ownership header: ${asked}`, {
      ArgumentName: 'x-amz-object-ownership',
      ArgumentValue: asked,
    })
  }
  const acl = aclFromHeaders(h, ctx.deps.access)
  // S3 gives a bucket created with the private canned ACL and no ownership header
  // BucketOwnerPreferred (rclone creates buckets so), and every other new bucket
  // BucketOwnerEnforced.
  const ownership = (asked ??
    (acl?.kind === 'canned' && acl.canned === 'private'
      ? 'BucketOwnerPreferred'
      : 'BucketOwnerEnforced')) as ObjectOwnership
  const settings: Record<string, unknown> = {
    owner,
    ownership,
    publicAccessBlock: { ...DEFAULT_PUBLIC_ACCESS_BLOCK },
  }
  if (acl === undefined) return settings
  if (ownership === 'BucketOwnerEnforced' && !aclWithoutEffect(acl, owner, 'create-bucket')) {
    throw new S3Error('InvalidBucketAclWithObjectOwnership')
  }
  const grants = grantsOf(acl, owner, owner, 'bucket')
  if (isPublicAcl(grants)) throw new S3Error('InvalidBucketAclWithBlockPublicAccessError')
  if (ownership !== 'BucketOwnerEnforced') settings.acl = grants
  return settings
}

export async function deleteBucket(ctx: S3Context, b: BucketRecord): Promise<void> {
  await ctx.deps.buckets.delete(b.name)
  ctx.res.status(204).end()
}

export async function headBucket(ctx: S3Context, _b: BucketRecord): Promise<void> {
  ctx.res.header('x-amz-bucket-region', ctx.deps.region).end()
}

export async function listBuckets(ctx: S3Context): Promise<void> {
  const all = await ctx.deps.buckets.list()
  const p = ctx.params
  const prefix = p.get('prefix') ?? ''
  const max = p.get('max-buckets') === null ? 10_000 : Number(p.get('max-buckets'))
  if (!Number.isInteger(max) || max < 1 || max > 10_000)
    throw new S3Error('InvalidArgument', 'max-buckets must be an integer from 1 to 10000', {
      ArgumentName: 'max-buckets',
    })
  const token = p.get('continuation-token')
  const after = token ? Buffer.from(token, 'base64url').toString() : ''
  const list = all.filter(
    (x) => x.name.startsWith(prefix) && x.name > after && ctx.deps.access.sees(ctx.who, x),
  )
  const page = list.slice(0, max)
  const o = ownerOf(ctx)
  ctx.res.header('Content-Type', 'application/xml').end(
    listBucketsXml({
      owner: { id: o.canonicalId, displayName: o.displayName },
      buckets: page.map((x) => ({
        name: x.name,
        created: new Date(hlcMillis(x.created)),
        region: ctx.deps.region,
      })),
      ...(list.length > max
        ? { continuationToken: Buffer.from(page.at(-1)!.name).toString('base64url') }
        : {}),
      ...(prefix ? { prefix } : {}),
    }),
  )
}

export async function getBucketLocation(ctx: S3Context): Promise<void> {
  ctx.res.header('Content-Type', 'application/xml').end(locationXml(ctx.deps.region))
}

export async function getBucketVersioning(ctx: S3Context, b: BucketRecord): Promise<void> {
  const s =
    b.versioning === 'enabled' ? 'Enabled' : b.versioning === 'suspended' ? 'Suspended' : undefined
  ctx.res.header('Content-Type', 'application/xml').end(versioningXml(s))
}

export async function putBucketVersioning(ctx: S3Context, b: BucketRecord): Promise<void> {
  const conf = parseVersioningConfiguration(await readSmallBody(ctx, 64 * 1024))
  await ctx.deps.buckets.update(b.name, (x) => ({
    ...x,
    versioning: conf.status === 'Enabled' ? 'enabled' : 'suspended',
  }))
  ctx.res.end()
}

export async function getBucketTagging(ctx: S3Context, b: BucketRecord): Promise<void> {
  const tags = b.settings?.tags as Record<string, string> | undefined
  if (!tags || Object.keys(tags).length === 0)
    throw new S3Error('NoSuchTagSet', undefined, { BucketName: b.name })
  ctx.res
    .header('Content-Type', 'application/xml')
    .end(taggingXml(Object.entries(tags).map(([key, value]) => ({ key, value }))))
}

export async function putBucketTagging(
  ctx: S3Context,
  b: BucketRecord,
  remove: boolean,
): Promise<void> {
  const tags = remove ? [] : parseTagging(await readSmallBody(ctx, 64 * 1024), { maxTags: 50 })
  await ctx.deps.buckets.update(b.name, (x) => {
    const settings = { ...x.settings }
    if (tags.length > 0) settings.tags = Object.fromEntries(tags.map((t) => [t.key, t.value]))
    else delete settings.tags
    return { ...x, settings }
  })
  ctx.res.status(remove ? 204 : 200).end()
}

function maxKeysOf(ctx: S3Context): number {
  const v = ctx.params.get('max-keys')
  if (v === null) return 1000
  const n = Number(v)
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n))
    throw new S3Error(
      'InvalidArgument',
      'Provided max-keys not an integer or within integer range',
      {
        ArgumentName: 'max-keys',
        ArgumentValue: v,
      },
    )
  return Math.min(1000, n)
}

function encodingOf(ctx: S3Context): 'url' | undefined {
  const v = ctx.params.get('encoding-type')
  if (v === null) return undefined
  if (v.toLowerCase() !== 'url')
    throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request', {
      ArgumentName: 'encoding-type',
      ArgumentValue: v,
    })
  return 'url'
}

export async function listObjects(ctx: S3Context, b: BucketRecord, v2: boolean): Promise<void> {
  const p = ctx.params
  const prefix = p.get('prefix') ?? ''
  const delimiter = p.get('delimiter') ?? ''
  const maxKeys = maxKeysOf(ctx)
  const encodingType = encodingOf(ctx)
  let startAfter: string | undefined
  const token = p.get('continuation-token')
  if (v2) {
    if (token !== null) {
      const decoded = decodeToken(token)
      if (decoded === undefined)
        throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', {
          ArgumentName: 'continuation-token',
        })
      startAfter = decoded
    } else startAfter = p.get('start-after') ?? undefined
  } else startAfter = p.get('marker') ?? undefined
  const page = await listLatest(ctx.deps.objects.cluster, {
    bucket: b.name,
    prefix,
    ...(delimiter ? { delimiter } : {}),
    maxKeys,
    ...(startAfter !== undefined ? { startAfter } : {}),
  })
  const contents = page.entries.map((e) => ({
    key: e.key,
    lastModified: new Date(hlcMillis(e.modTime)),
    etag: e.etag,
    size: e.size,
    ...(e.checksums && Object.keys(e.checksums).length > 0
      ? { checksumAlgorithm: Object.keys(e.checksums)[0] as ChecksumAlgorithm }
      : {}),
    owner: listedOwner(ctx, b, e),
  }))
  ctx.res.header('Content-Type', 'application/xml')
  if (v2) {
    const fetchOwner = p.get('fetch-owner') === 'true'
    ctx.res.end(
      listObjectsV2Xml({
        bucket: b.name,
        prefix,
        ...(delimiter ? { delimiter } : {}),
        maxKeys,
        keyCount: page.entries.length + page.commonPrefixes.length,
        isTruncated: page.isTruncated,
        ...(token !== null ? { continuationToken: token } : {}),
        ...(page.isTruncated && page.nextMarker !== undefined
          ? { nextContinuationToken: encodeToken(page.nextMarker) }
          : {}),
        ...(p.get('start-after') !== null ? { startAfter: p.get('start-after')! } : {}),
        ...(encodingType ? { encodingType } : {}),
        fetchOwner,
        contents,
        commonPrefixes: page.commonPrefixes,
      }),
    )
  } else {
    ctx.res.end(
      listObjectsV1Xml({
        bucket: b.name,
        prefix,
        marker: p.get('marker') ?? '',
        ...(delimiter ? { delimiter } : {}),
        maxKeys,
        isTruncated: page.isTruncated,
        ...(page.isTruncated && delimiter && page.nextMarker !== undefined
          ? { nextMarker: page.nextMarker }
          : {}),
        ...(encodingType ? { encodingType } : {}),
        contents,
        commonPrefixes: page.commonPrefixes,
      }),
    )
  }
}

export async function listObjectVersions(ctx: S3Context, b: BucketRecord): Promise<void> {
  const p = ctx.params
  const prefix = p.get('prefix') ?? ''
  const delimiter = p.get('delimiter') ?? ''
  const maxKeys = maxKeysOf(ctx)
  const encodingType = encodingOf(ctx)
  const keyMarker = p.get('key-marker') ?? undefined
  const versionIdMarker = p.get('version-id-marker') ?? undefined
  if (versionIdMarker !== undefined && keyMarker === undefined)
    throw new S3Error(
      'InvalidArgument',
      'A version-id marker cannot be specified without a key marker.',
      {
        ArgumentName: 'version-id-marker',
        ArgumentValue: versionIdMarker,
      },
    )
  const page = await listVersions(ctx.deps.objects.cluster, {
    bucket: b.name,
    prefix,
    ...(delimiter ? { delimiter } : {}),
    maxKeys,
    ...(keyMarker !== undefined ? { keyMarker } : {}),
    ...(versionIdMarker !== undefined ? { versionIdMarker } : {}),
  })
  ctx.res.header('Content-Type', 'application/xml').end(
    listObjectVersionsXml({
      bucket: b.name,
      prefix,
      keyMarker: keyMarker ?? '',
      versionIdMarker: versionIdMarker ?? '',
      ...(delimiter ? { delimiter } : {}),
      maxKeys,
      isTruncated: page.isTruncated,
      ...(page.isTruncated && page.nextKeyMarker !== undefined
        ? { nextKeyMarker: page.nextKeyMarker }
        : {}),
      ...(page.isTruncated && page.nextVersionIdMarker !== undefined
        ? { nextVersionIdMarker: page.nextVersionIdMarker }
        : {}),
      ...(encodingType ? { encodingType } : {}),
      versions: page.entries.map(({ record: e, isLatest }) =>
        e.deleteMarker
          ? {
              deleteMarker: true as const,
              key: e.key,
              versionId: e.versionId,
              isLatest,
              lastModified: new Date(hlcMillis(e.modTime)),
              owner: listedOwner(ctx, b, e),
            }
          : {
              key: e.key,
              versionId: e.versionId,
              isLatest,
              lastModified: new Date(hlcMillis(e.modTime)),
              etag: e.etag,
              size: e.size,
              owner: listedOwner(ctx, b, e),
            },
      ),
      commonPrefixes: page.commonPrefixes,
    }),
  )
}

/** An object version's owner as listings show it. */
function listedOwner(ctx: S3Context, b: BucketRecord, rec: { owner?: AclOwner }): AclOwner {
  return aclsEnabled(b) && rec.owner !== undefined ? rec.owner : bucketOwnerOf(b, ctx.deps.access)
}

/** Continuation tokens are opaque to clients: the last key or prefix, base64url. */
export function encodeToken(last: string): string {
  return Buffer.from(`1:${last}`).toString('base64url')
}

export function decodeToken(t: string): string | undefined {
  const s = Buffer.from(t, 'base64url').toString()
  return s.startsWith('1:') ? s.slice(2) : undefined
}

/** The caller of an identity-changing S3 call, for the audit log. */
function callerOf(ctx: S3Context): Caller {
  return {
    principal: ctx.who.principal ?? ownerOf(ctx),
    requestId: ctx.requestId,
    sourceIp: ctx.req.remoteAddress,
    secure: false,
  }
}

export async function getBucketPolicy(ctx: S3Context, b: BucketRecord): Promise<void> {
  const policy = b.settings?.policy
  if (typeof policy !== 'string') {
    throw new S3Error('NoSuchBucketPolicy', undefined, { BucketName: b.name })
  }
  ctx.res.header('Content-Type', 'application/json').end(policy)
}

export async function putBucketPolicy(ctx: S3Context, b: BucketRecord): Promise<void> {
  const max = ctx.deps.iam.policyMaxBytes
  // Read a little more than the limit, so an oversized policy gets the size error, not a cut.
  const body = (await readSmallBody(ctx, max * 16 + 1024)).toString('utf8')
  if (body.trim() === '') throw new S3Error('MissingRequestBodyError')
  let parsed: Policy
  try {
    parsed = parsePolicy(body, { kind: 'bucket', maxBytes: max, bucket: b.name })
  } catch (err) {
    if (err instanceof PolicyError) {
      throw new S3Error(
        'MalformedPolicy',
        err.tooLarge
          ? `Policy exceeds the maximum allowed document size (${max} bytes).`
          : err.reason,
      )
    }
    throw err
  }
  if (publicAccessBlockOf(b).BlockPublicPolicy && isPublicPolicy(parsed)) {
    throw new S3Error(
      'AccessDenied',
      'Access Denied: the bucket blocks public policies (BlockPublicPolicy); delete or change its public access block first.',
    )
  }
  await ctx.deps.buckets.update(b.name, (x) => ({
    ...x,
    settings: { ...x.settings, policy: body },
  }))
  await ctx.deps.iam.record(callerOf(ctx), 'PutBucketPolicy', `bucket/${b.name}`)
  ctx.res.status(204).end()
}

export async function deleteBucketPolicy(ctx: S3Context, b: BucketRecord): Promise<void> {
  if (typeof b.settings?.policy === 'string') {
    await ctx.deps.buckets.update(b.name, (x) => {
      const settings = { ...x.settings }
      delete settings.policy
      return { ...x, settings }
    })
    await ctx.deps.iam.record(callerOf(ctx), 'DeleteBucketPolicy', `bucket/${b.name}`)
  }
  ctx.res.status(204).end()
}

export async function getBucketLifecycle(ctx: S3Context, b: BucketRecord): Promise<void> {
  const conf = lifecycleOf(b.settings)
  if (conf === undefined) {
    throw new S3Error('NoSuchLifecycleConfiguration', undefined, { BucketName: b.name })
  }
  ctx.res.header('Content-Type', 'application/xml').end(lifecycleConfigurationXml(conf))
}

export async function putBucketLifecycle(ctx: S3Context, b: BucketRecord): Promise<void> {
  const integrity = requireIntegrityHeader(ctx.req.headers)
  const body = await readSmallBody(ctx, LIFECYCLE_MAX_BODY_BYTES)
  // readSmallBody checks the flexible checksum of streamed bodies only.
  if (!ctx.who.auth?.payload.startsWith('streaming')) checkBodyDigests(integrity, body)
  const lifecycle = parseLifecycleConfiguration(body)
  await ctx.deps.buckets.update(b.name, (x) => ({ ...x, settings: { ...x.settings, lifecycle } }))
  ctx.res.end()
}

export async function deleteBucketLifecycle(ctx: S3Context, b: BucketRecord): Promise<void> {
  if (b.settings?.lifecycle !== undefined) {
    await ctx.deps.buckets.update(b.name, (x) => {
      const settings = { ...x.settings }
      delete settings.lifecycle
      return { ...x, settings }
    })
  }
  ctx.res.status(204).end()
}

export async function getBucketAcl(ctx: S3Context, b: BucketRecord): Promise<void> {
  const owner = bucketOwnerOf(b, ctx.deps.access)
  ctx.res
    .header('Content-Type', 'application/xml')
    .end(accessControlPolicyXml({ owner, grants: xmlGrantsOf(bucketAclOf(b, ctx.deps.access)) }))
}

export async function putBucketAcl(ctx: S3Context, b: BucketRecord): Promise<void> {
  const owner = bucketOwnerOf(b, ctx.deps.access)
  const body = await readSmallBody(ctx, 64 * 1024)
  const acl = aclFromRequest(ctx.req.headers, body, owner, ctx.deps.access)
  if (!aclsEnabled(b) && !aclWithoutEffect(acl, owner, 'put-acl')) {
    throw new S3Error('AccessControlListNotSupported')
  }
  const grants = grantsOf(acl, owner, owner, 'bucket')
  if (publicAccessBlockOf(b).BlockPublicAcls && isPublicAcl(grants)) {
    throw new S3Error('AccessDenied', 'Access Denied: the bucket blocks public ACLs.')
  }
  await ctx.deps.buckets.update(b.name, (x) => ({
    ...x,
    settings: { ...x.settings, acl: grants },
  }))
  ctx.res.end()
}

export async function getBucketOwnershipControls(ctx: S3Context, b: BucketRecord): Promise<void> {
  const ownership = ownershipSettingOf(b)
  if (ownership === undefined) {
    throw new S3Error('OwnershipControlsNotFoundError', undefined, { BucketName: b.name })
  }
  ctx.res.header('Content-Type', 'application/xml').end(ownershipControlsXml(ownership))
}

export async function putBucketOwnershipControls(ctx: S3Context, b: BucketRecord): Promise<void> {
  const ownership = parseOwnershipControls(await readSmallBody(ctx, 64 * 1024))
  if (ownership === 'BucketOwnerEnforced') {
    // ACLs can be disabled only once the bucket's own ACL grants nobody but its owner.
    const owner = bucketOwnerOf(b, ctx.deps.access)
    const grants = bucketAclOf(b, ctx.deps.access)
    if (grants.some((g) => g.grantee.type !== 'CanonicalUser' || g.grantee.id !== owner.id)) {
      throw new S3Error('InvalidBucketAclWithObjectOwnership')
    }
  }
  await ctx.deps.buckets.update(b.name, (x) => ({
    ...x,
    settings: { ...x.settings, ownership },
  }))
  ctx.res.end()
}

export async function deleteBucketOwnershipControls(
  ctx: S3Context,
  b: BucketRecord,
): Promise<void> {
  if (ownershipSettingOf(b) !== undefined) {
    await ctx.deps.buckets.update(b.name, (x) => {
      const settings = { ...x.settings }
      delete settings.ownership
      return { ...x, settings }
    })
  }
  ctx.res.status(204).end()
}

export async function getPublicAccessBlock(ctx: S3Context, b: BucketRecord): Promise<void> {
  const pab = publicAccessBlockSettingOf(b)
  if (pab === undefined) {
    throw new S3Error('NoSuchPublicAccessBlockConfiguration', undefined, { BucketName: b.name })
  }
  ctx.res.header('Content-Type', 'application/xml').end(publicAccessBlockXml(pab))
}

export async function putPublicAccessBlock(ctx: S3Context, b: BucketRecord): Promise<void> {
  const pab = parsePublicAccessBlock(await readSmallBody(ctx, 64 * 1024))
  await ctx.deps.buckets.update(b.name, (x) => ({
    ...x,
    settings: { ...x.settings, publicAccessBlock: pab },
  }))
  ctx.res.end()
}

export async function deletePublicAccessBlock(ctx: S3Context, b: BucketRecord): Promise<void> {
  if (publicAccessBlockSettingOf(b) !== undefined) {
    await ctx.deps.buckets.update(b.name, (x) => {
      const settings = { ...x.settings }
      delete settings.publicAccessBlock
      return { ...x, settings }
    })
  }
  ctx.res.status(204).end()
}

/** GetBucketPolicyStatus: whether the bucket policy is public (NoSuchBucketPolicy without one). */
export async function getBucketPolicyStatus(ctx: S3Context, b: BucketRecord): Promise<void> {
  const policy = b.settings?.policy
  if (typeof policy !== 'string') {
    throw new S3Error('NoSuchBucketPolicy', undefined, { BucketName: b.name })
  }
  const parsed = parsePolicy(policy, {
    kind: 'bucket',
    maxBytes: Number.MAX_SAFE_INTEGER,
    bucket: b.name,
  })
  ctx.res.header('Content-Type', 'application/xml').end(policyStatusXml(isPublicPolicy(parsed)))
}
