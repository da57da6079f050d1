/**
 * ACLs and object ownership end to end: AWS's defaults for new buckets (BucketOwnerEnforced,
 * ACLs refused), ownership controls, canned ACLs on CreateBucket, PutObject, CopyObject and
 * CreateMultipartUpload, explicit grants by id, e-mail and group (headers and XML bodies),
 * Get/Put ACL round trips (also by versionId), ACLs in the access decision, owners in listings,
 * and the awscli's s3api ACL commands.
 *
 * One real cluster for the file; requests go through @aws-sdk/client-s3, presigned URLs for the
 * raw XML, and the awscli. Every refusal checks the exact S3 code and HTTP status.
 */
import {
  type BucketCannedACL,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketOwnershipControlsCommand,
  DeleteBucketPolicyCommand,
  DeletePublicAccessBlockCommand,
  GetBucketAclCommand,
  GetBucketOwnershipControlsCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  GetPublicAccessBlockCommand,
  type Grant,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  type ObjectOwnership,
  PutBucketAclCommand,
  PutBucketOwnershipControlsCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import t, { type Test } from 'tap'
import { adminCall, createProject, createUserWithKey } from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { ensureDebianPackages, sh } from './harness/debian.ts'
import { bodyBytes, s3Client, s3Fault, uniqueBucket } from './harness/s3.ts'

const PROJECT = 'alpha'
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers'
const AUTHENTICATED_USERS = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers'
const LOG_DELIVERY = 'http://acs.amazonaws.com/groups/s3/LogDelivery'

/** Asserts that `run` fails with S3 error `code` and HTTP `status`. */
async function refused(
  t: Test,
  run: Promise<unknown>,
  code: string,
  status: number,
  what: string,
): Promise<string> {
  try {
    await run
  } catch (err) {
    const f = s3Fault(err)
    t.same({ code: f.code, status: f.status }, { code, status }, `${what}: ${code} ${status}`)
    t.ok(f.message.trim().length > 0, `${what}: the error has a message`)
    return f.message
  }
  t.fail(`${what}: succeeded, expected ${code} ${status}`)
  return ''
}

/** Asserts that `run` succeeds; answers its result. */
async function allowed<T>(t: Test, run: Promise<T>, what: string): Promise<T | undefined> {
  try {
    const out = await run
    t.pass(`${what}: allowed`)
    return out
  } catch (err) {
    const f = s3Fault(err)
    t.fail(`${what}: refused with ${f.code} ${f.status}: ${f.message}`)
    return undefined
  }
}

/** Grants as comparable strings: "<id or uri> PERMISSION", in order. */
function grantList(grants: Grant[] | undefined): string[] {
  return (grants ?? []).map(
    (g) => `${g.Grantee?.ID ?? g.Grantee?.URI ?? g.Grantee?.EmailAddress} ${g.Permission}`,
  )
}

t.test('ACLs and object ownership', async (t) => {
  const cluster = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = cluster.gateways[0]!.endpoint
  await createProject(endpoint, ROOT, PROJECT)

  const user = async (
    name: string,
    roles: { role: string; project?: string }[],
    project = PROJECT,
  ) => {
    const creds = await createUserWithKey(endpoint, ROOT, name, project, roles)
    // Every test user may list buckets, which shows its own canonical id as the Owner.
    const r = await adminCall(endpoint, ROOT, 'PUT', `/users/${name}/policies/list`, {
      document: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 's3:ListAllMyBuckets', Resource: '*' }],
      },
    })
    if (r.status >= 300) throw new Error(`policy for ${name}: ${r.status}`)
    const s3 = s3Client(endpoint, { credentials: creds })
    let owner: { ID?: string; DisplayName?: string } | undefined
    for (let i = 0; i < 40 && owner === undefined; i++) {
      owner = await s3
        .send(new ListBucketsCommand({}))
        .then((x) => x.Owner)
        .catch(() => new Promise<undefined>((res) => setTimeout(() => res(undefined), 100)))
    }
    if (owner?.ID === undefined) throw new Error(`no canonical id for ${name}`)
    return { creds, s3, id: owner.ID, displayName: owner.DisplayName }
  }
  // Buckets of alpha are made by its project administrator; wendy writes with s3-admin;
  // rita is an s3-user with no grant of her own: only ACLs open anything to her.
  const builder = await user('builder', [{ role: 'project-admin', project: PROJECT }])
  const wendy = await user('wendy', [{ role: 's3-admin', project: PROJECT }])
  const rita = await user('rita', [{ role: 's3-user', project: PROJECT }])
  const put = (s3: S3Client, Bucket: string, Key: string, extra: object = {}) =>
    s3.send(new PutObjectCommand({ Bucket, Key, Body: Key, ...extra }))
  const objectAcl = (Bucket: string, Key: string, VersionId?: string) =>
    builder.s3.send(new GetObjectAclCommand({ Bucket, Key, ...(VersionId ? { VersionId } : {}) }))
  const own = (who: { id: string }) => `${who.id} FULL_CONTROL`
  /** A bucket with ACLs enabled and nothing blocked, as an AWS user sets one up. */
  const openBucket = async (prefix: string, ownership: ObjectOwnership = 'ObjectWriter') => {
    const Bucket = uniqueBucket(prefix)
    await builder.s3.send(new CreateBucketCommand({ Bucket, ObjectOwnership: ownership }))
    await builder.s3.send(new DeletePublicAccessBlockCommand({ Bucket }))
    return Bucket
  }

  t.match(builder.id, /^[0-9a-f]{64}$/, 'canonical ids are 64 hex digits')
  t.equal(builder.displayName, 'builder', 'and the display name is the user name')
  t.not(builder.id, wendy.id, 'each user has their own')

  await t.test(
    'new buckets: ACLs disabled, public access blocked, owned by the creator',
    async (t) => {
      const Bucket = uniqueBucket('defaults')
      await builder.s3.send(new CreateBucketCommand({ Bucket }))
      const oc = await builder.s3.send(new GetBucketOwnershipControlsCommand({ Bucket }))
      t.equal(oc.OwnershipControls?.Rules?.[0]?.ObjectOwnership, 'BucketOwnerEnforced', 'ownership')
      const pab = await builder.s3.send(new GetPublicAccessBlockCommand({ Bucket }))
      t.same(
        pab.PublicAccessBlockConfiguration,
        {
          BlockPublicAcls: true,
          IgnorePublicAcls: true,
          BlockPublicPolicy: true,
          RestrictPublicBuckets: true,
        },
        'all four public access settings on',
      )
      const acl = await builder.s3.send(new GetBucketAclCommand({ Bucket }))
      t.same(acl.Owner, { ID: builder.id, DisplayName: 'builder' }, 'the creator owns the bucket')
      t.same(grantList(acl.Grants), [own(builder)], 'and has FULL_CONTROL alone')

      await allowed(t, put(builder.s3, Bucket, 'plain'), 'PutObject without an ACL')
      await allowed(
        t,
        put(wendy.s3, Bucket, 'bofc', { ACL: 'bucket-owner-full-control' }),
        'PutObject with bucket-owner-full-control',
      )
      for (const ACL of ['private', 'public-read'] as const) {
        await refused(
          t,
          put(builder.s3, Bucket, 'x', { ACL }),
          'AccessControlListNotSupported',
          400,
          `PutObject with ${ACL}`,
        )
      }
      await refused(
        t,
        builder.s3.send(
          new CopyObjectCommand({
            Bucket,
            Key: 'c',
            CopySource: `${Bucket}/plain`,
            ACL: 'private',
          }),
        ),
        'AccessControlListNotSupported',
        400,
        'CopyObject with an ACL',
      )
      await refused(
        t,
        builder.s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'm', ACL: 'public-read' })),
        'AccessControlListNotSupported',
        400,
        'CreateMultipartUpload with an ACL',
      )
      await refused(
        t,
        builder.s3.send(new PutBucketAclCommand({ Bucket, ACL: 'public-read' })),
        'AccessControlListNotSupported',
        400,
        'PutBucketAcl',
      )
      await refused(
        t,
        builder.s3.send(new PutObjectAclCommand({ Bucket, Key: 'plain', ACL: 'private' })),
        'AccessControlListNotSupported',
        400,
        'PutObjectAcl',
      )
      const oacl = await objectAcl(Bucket, 'bofc')
      t.same(oacl.Owner?.ID, builder.id, "wendy's object belongs to the bucket owner")
      t.same(grantList(oacl.Grants), [own(builder)], 'reading an ACL still works')

      await refused(
        t,
        builder.s3.send(
          new CreateBucketCommand({ Bucket: uniqueBucket('pub'), ACL: 'public-read' }),
        ),
        'InvalidBucketAclWithObjectOwnership',
        400,
        'CreateBucket with a public ACL (BucketOwnerEnforced)',
      )
      await refused(
        t,
        builder.s3.send(
          new CreateBucketCommand({
            Bucket: uniqueBucket('pub'),
            ACL: 'public-read',
            ObjectOwnership: 'ObjectWriter',
          }),
        ),
        'InvalidBucketAclWithBlockPublicAccessError',
        400,
        'CreateBucket with a public ACL (ObjectWriter, public access blocked)',
      )
      await refused(
        t,
        builder.s3.send(
          new CreateBucketCommand({
            Bucket: uniqueBucket('bad'),
            ObjectOwnership: 'Nobody' as ObjectOwnership,
          }),
        ),
        'InvalidArgument',
        400,
        'CreateBucket with an unknown ownership',
      )
      const priv = uniqueBucket('priv')
      await allowed(
        t,
        builder.s3.send(new CreateBucketCommand({ Bucket: priv, ACL: 'private' })),
        'CreateBucket with the private ACL',
      )
      const privOc = await builder.s3.send(new GetBucketOwnershipControlsCommand({ Bucket: priv }))
      t.equal(
        privOc.OwnershipControls?.Rules?.[0]?.ObjectOwnership,
        'BucketOwnerPreferred',
        'a bucket created with the private ACL gets BucketOwnerPreferred, as on S3',
      )
      await allowed(
        t,
        put(builder.s3, priv, 'k', { ACL: 'private' }),
        'and takes objects with the private ACL (what rclone sends)',
      )
    },
  )

  await t.test('ownership controls round trip', async (t) => {
    const Bucket = uniqueBucket('own')
    await builder.s3.send(new CreateBucketCommand({ Bucket }))
    for (const ObjectOwnership of [
      'ObjectWriter',
      'BucketOwnerPreferred',
      'BucketOwnerEnforced',
    ] as const) {
      await builder.s3.send(
        new PutBucketOwnershipControlsCommand({
          Bucket,
          OwnershipControls: { Rules: [{ ObjectOwnership }] },
        }),
      )
      const got = await builder.s3.send(new GetBucketOwnershipControlsCommand({ Bucket }))
      t.equal(got.OwnershipControls?.Rules?.[0]?.ObjectOwnership, ObjectOwnership, ObjectOwnership)
    }
    await builder.s3.send(new DeleteBucketOwnershipControlsCommand({ Bucket }))
    await refused(
      t,
      builder.s3.send(new GetBucketOwnershipControlsCommand({ Bucket })),
      'OwnershipControlsNotFoundError',
      404,
      'GetBucketOwnershipControls after delete',
    )
    // Without a setting ACLs are enabled, as on buckets made before AWS had one.
    await allowed(
      t,
      builder.s3.send(new PutBucketAclCommand({ Bucket, ACL: 'private' })),
      'PutBucketAcl without ownership controls',
    )
    await refused(
      t,
      builder.s3.send(
        new PutBucketOwnershipControlsCommand({
          Bucket,
          OwnershipControls: { Rules: [{ ObjectOwnership: 'Everyone' as ObjectOwnership }] },
        }),
      ),
      'MalformedXML',
      400,
      'an unknown ownership',
    )
    await refused(
      t,
      rita.s3.send(new GetBucketOwnershipControlsCommand({ Bucket })),
      'AccessDenied',
      403,
      'an s3-user without a grant reads the ownership controls',
    )
  })

  await t.test('canned ACLs on the four write operations', async (t) => {
    // CreateBucket: log-delivery-write is not public, so public access blocking lets it by.
    const Bucket = uniqueBucket('canned')
    await builder.s3.send(
      new CreateBucketCommand({
        Bucket,
        ObjectOwnership: 'ObjectWriter',
        ACL: 'log-delivery-write' as BucketCannedACL,
      }),
    )
    const bacl = await builder.s3.send(new GetBucketAclCommand({ Bucket }))
    t.same(
      grantList(bacl.Grants),
      [own(builder), `${LOG_DELIVERY} WRITE`, `${LOG_DELIVERY} READ_ACP`],
      'CreateBucket with log-delivery-write',
    )
    await builder.s3.send(new DeletePublicAccessBlockCommand({ Bucket }))

    const expect: Record<string, string[]> = {
      private: [own(wendy)],
      'public-read': [own(wendy), `${ALL_USERS} READ`],
      'public-read-write': [own(wendy), `${ALL_USERS} READ`, `${ALL_USERS} WRITE`],
      'authenticated-read': [own(wendy), `${AUTHENTICATED_USERS} READ`],
      'bucket-owner-read': [own(wendy), `${builder.id} READ`],
      'bucket-owner-full-control': [own(wendy), `${builder.id} FULL_CONTROL`],
    }
    for (const [ACL, grants] of Object.entries(expect)) {
      await put(wendy.s3, Bucket, `put-${ACL}`, { ACL })
      const got = await objectAcl(Bucket, `put-${ACL}`)
      t.equal(got.Owner?.ID, wendy.id, `PutObject ${ACL}: the writer owns the object`)
      t.same(grantList(got.Grants), grants, `PutObject ${ACL}: grants`)
    }
    await put(builder.s3, Bucket, 'src')
    await wendy.s3.send(
      new CopyObjectCommand({
        Bucket,
        Key: 'copy',
        CopySource: `${Bucket}/src`,
        ACL: 'public-read',
      }),
    )
    t.same(
      grantList((await objectAcl(Bucket, 'copy')).Grants),
      [own(wendy), `${ALL_USERS} READ`],
      'CopyObject with public-read',
    )
    await wendy.s3.send(
      new CopyObjectCommand({ Bucket, Key: 'copy2', CopySource: `${Bucket}/copy` }),
    )
    t.same(
      grantList((await objectAcl(Bucket, 'copy2')).Grants),
      [own(wendy)],
      "a copy does not take its source's ACL",
    )
    const up = await wendy.s3.send(
      new CreateMultipartUploadCommand({ Bucket, Key: 'mp', ACL: 'authenticated-read' }),
    )
    const part = await wendy.s3.send(
      new UploadPartCommand({ Bucket, Key: 'mp', UploadId: up.UploadId, PartNumber: 1, Body: 'x' }),
    )
    const parts = await builder.s3.send(
      new ListPartsCommand({ Bucket, Key: 'mp', UploadId: up.UploadId }),
    )
    t.same(
      [parts.Initiator?.ID, parts.Owner?.ID],
      [wendy.id, wendy.id],
      'ListParts: wendy initiated it and will own it',
    )
    const uploads = await builder.s3.send(new ListMultipartUploadsCommand({ Bucket }))
    t.same(
      uploads.Uploads?.map((u) => [u.Initiator?.DisplayName, u.Owner?.ID]),
      [['wendy', wendy.id]],
      'ListMultipartUploads: the same',
    )
    await wendy.s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key: 'mp',
        UploadId: up.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
      }),
    )
    const mp = await objectAcl(Bucket, 'mp')
    t.equal(mp.Owner?.ID, wendy.id, 'CreateMultipartUpload: the initiator owns the object')
    t.same(
      grantList(mp.Grants),
      [own(wendy), `${AUTHENTICATED_USERS} READ`],
      'CreateMultipartUpload with authenticated-read',
    )
    await refused(
      t,
      put(wendy.s3, Bucket, 'bad', { ACL: 'everyone-please' }),
      'InvalidArgument',
      400,
      'an unknown canned ACL',
    )
    await refused(
      t,
      put(wendy.s3, Bucket, 'both', { ACL: 'private', GrantRead: `id=${rita.id}` }),
      'InvalidRequest',
      400,
      'a canned ACL and grant headers together',
    )

    // BucketOwnerPreferred: bucket-owner-full-control hands the object to the bucket owner.
    await builder.s3.send(
      new PutBucketOwnershipControlsCommand({
        Bucket,
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerPreferred' }] },
      }),
    )
    await put(wendy.s3, Bucket, 'preferred', { ACL: 'bucket-owner-full-control' })
    const pref = await objectAcl(Bucket, 'preferred')
    t.equal(pref.Owner?.ID, builder.id, 'BucketOwnerPreferred + bucket-owner-full-control')
    t.same(grantList(pref.Grants), [own(builder)], 'and the bucket owner has FULL_CONTROL')
    await put(wendy.s3, Bucket, 'preferred-plain')
    t.equal(
      (await objectAcl(Bucket, 'preferred-plain')).Owner?.ID,
      wendy.id,
      'BucketOwnerPreferred without that ACL: the writer owns it',
    )
  })

  await t.test('explicit grants, XML bodies and ACLs in the access decision', async (t) => {
    const Bucket = await openBucket('grants')
    await put(builder.s3, Bucket, 'for-rita', { GrantRead: `id="${rita.id}"` })
    await put(builder.s3, Bucket, 'not-for-rita')
    const got = await objectAcl(Bucket, 'for-rita')
    t.same(grantList(got.Grants), [`${rita.id} READ`], 'x-amz-grant-read by id')
    t.equal(
      got.Grants?.[0]?.Grantee?.DisplayName,
      'rita',
      'the grantee is shown with its display name',
    )
    t.equal(got.Grants?.[0]?.Grantee?.Type, 'CanonicalUser', 'as a CanonicalUser')
    const read = (Key: string) => rita.s3.send(new GetObjectCommand({ Bucket, Key }))
    const body = await allowed(t, read('for-rita'), 'rita reads the object granted to her')
    t.equal(body ? (await bodyBytes(body.Body)).toString() : '', 'for-rita', 'and gets it')
    await refused(t, read('not-for-rita'), 'AccessDenied', 403, 'rita reads another object')
    await refused(
      t,
      rita.s3.send(new GetObjectAclCommand({ Bucket, Key: 'for-rita' })),
      'AccessDenied',
      403,
      'READ does not include READ_ACP',
    )
    await refused(
      t,
      rita.s3.send(new ListObjectsV2Command({ Bucket })),
      'AccessDenied',
      403,
      "an object's READ does not list the bucket",
    )

    await builder.s3.send(
      new PutBucketAclCommand({
        Bucket,
        GrantFullControl: `id=${builder.id}`,
        GrantRead: `id=${rita.id}`,
        GrantWrite: `uri="${AUTHENTICATED_USERS}"`,
      }),
    )
    t.same(
      grantList((await builder.s3.send(new GetBucketAclCommand({ Bucket }))).Grants),
      [own(builder), `${rita.id} READ`, `${AUTHENTICATED_USERS} WRITE`],
      'PutBucketAcl with grant headers',
    )
    await allowed(t, rita.s3.send(new ListObjectsV2Command({ Bucket })), 'bucket READ lists')
    await allowed(t, put(rita.s3, Bucket, 'by-rita'), 'AuthenticatedUsers WRITE writes')
    t.equal(
      (await objectAcl(Bucket, 'by-rita')).Owner?.ID,
      rita.id,
      'what rita wrote is hers (ObjectWriter)',
    )
    await allowed(t, read('by-rita'), 'and she reads it back through its default ACL')

    // ACLs come after the role gate and explicit denies.
    await createProject(endpoint, ROOT, 'beta')
    const bob = await user('bob', [{ role: 's3-admin', project: 'beta' }], 'beta')
    await put(builder.s3, Bucket, 'for-all', {
      GrantRead: `id=${bob.id}, uri="${AUTHENTICATED_USERS}"`,
    })
    t.same(
      grantList((await objectAcl(Bucket, 'for-all')).Grants),
      [`${bob.id} READ`, `${AUTHENTICATED_USERS} READ`],
      'two grantees in one grant header',
    )
    await allowed(t, read('for-all'), 'AuthenticatedUsers READ lets rita read')
    await refused(
      t,
      bob.s3.send(new GetObjectCommand({ Bucket, Key: 'for-all' })),
      'AccessDenied',
      403,
      "a grant by id does not pass the role gate for another project's key",
    )
    const account = await adminCall(endpoint, ROOT, 'GET', '/account')
    await builder.s3.send(
      new PutBucketPolicyCommand({
        Bucket,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Deny',
              Principal: { AWS: `arn:aws:iam::${account.body.id}:user/rita` },
              Action: 's3:GetObject',
              Resource: `arn:aws:s3:::${Bucket}/for-all`,
            },
          ],
        }),
      }),
    )
    await refused(t, read('for-all'), 'AccessDenied', 403, 'an explicit Deny beats the ACL')
    await allowed(t, read('for-rita'), 'where the policy denies nothing, the ACL still grants')
    await builder.s3.send(new DeleteBucketPolicyCommand({ Bucket }))

    await refused(
      t,
      put(builder.s3, Bucket, 'email', { GrantRead: 'emailAddress="someone@example.com"' }),
      'UnresolvableGrantByEmailAddress',
      400,
      'a grant by e-mail address',
    )
    await refused(
      t,
      put(builder.s3, Bucket, 'stranger', { GrantRead: `id=${'0'.repeat(64)}` }),
      'InvalidArgument',
      400,
      'a grant to an unknown canonical id',
    )
    await refused(
      t,
      put(builder.s3, Bucket, 'group', { GrantRead: 'uri="http://example.com/everyone"' }),
      'InvalidArgument',
      400,
      'a grant to an unknown group',
    )

    // The XML body, as the SDK sends it.
    const policy = {
      Owner: { ID: builder.id },
      Grants: [
        {
          Grantee: { Type: 'CanonicalUser' as const, ID: builder.id },
          Permission: 'FULL_CONTROL' as const,
        },
        { Grantee: { Type: 'Group' as const, URI: ALL_USERS }, Permission: 'READ' as const },
        {
          Grantee: { Type: 'CanonicalUser' as const, ID: rita.id },
          Permission: 'READ_ACP' as const,
        },
      ],
    }
    await builder.s3.send(
      new PutObjectAclCommand({ Bucket, Key: 'not-for-rita', AccessControlPolicy: policy }),
    )
    const back = await objectAcl(Bucket, 'not-for-rita')
    t.same(
      grantList(back.Grants),
      [own(builder), `${ALL_USERS} READ`, `${rita.id} READ_ACP`],
      'PutObjectAcl with an AccessControlPolicy body round-trips',
    )
    await allowed(
      t,
      rita.s3.send(new GetObjectAclCommand({ Bucket, Key: 'not-for-rita' })),
      'READ_ACP reads the ACL',
    )
    await refused(
      t,
      builder.s3.send(
        new PutObjectAclCommand({
          Bucket,
          Key: 'not-for-rita',
          AccessControlPolicy: {
            Owner: { ID: builder.id },
            Grants: [
              {
                Grantee: { Type: 'AmazonCustomerByEmail', EmailAddress: 'a@example.com' },
                Permission: 'READ',
              },
            ],
          },
        }),
      ),
      'UnresolvableGrantByEmailAddress',
      400,
      'an XML grant by e-mail address',
    )
    await refused(
      t,
      builder.s3.send(new PutObjectAclCommand({ Bucket, Key: 'not-for-rita' })),
      'MissingSecurityHeader',
      400,
      'PutObjectAcl with neither headers nor body',
    )
    await refused(
      t,
      builder.s3.send(
        new PutObjectAclCommand({
          Bucket,
          Key: 'for-rita',
          ACL: 'private',
          GrantRead: `id=${rita.id}`,
        }),
      ),
      'InvalidRequest',
      400,
      'PutObjectAcl with a canned ACL and grants',
    )
    await refused(
      t,
      builder.s3.send(new PutObjectAclCommand({ Bucket, Key: 'missing', ACL: 'private' })),
      'NoSuchKey',
      404,
      'PutObjectAcl of a missing key',
    )

    // The raw XML, against AWS's documented shape.
    const raw = await fetch(
      await getSignedUrl(builder.s3, new GetObjectAclCommand({ Bucket, Key: 'not-for-rita' })),
    )
    const xml = await raw.text()
    t.equal(raw.status, 200, 'GetObjectAcl over a presigned URL')
    t.match(
      xml,
      /^<\?xml version="1\.0" encoding="UTF-8"\?>\s*<AccessControlPolicy xmlns="http:\/\/s3\.amazonaws\.com\/doc\/2006-03-01\/"><Owner><ID>[0-9a-f]{64}<\/ID><DisplayName>builder<\/DisplayName><\/Owner><AccessControlList><Grant><Grantee xmlns:xsi="http:\/\/www\.w3\.org\/2001\/XMLSchema-instance" xsi:type="CanonicalUser"><ID>[0-9a-f]{64}<\/ID><DisplayName>builder<\/DisplayName><\/Grantee><Permission>FULL_CONTROL<\/Permission><\/Grant><Grant><Grantee xmlns:xsi="http:\/\/www\.w3\.org\/2001\/XMLSchema-instance" xsi:type="Group"><URI>http:\/\/acs\.amazonaws\.com\/groups\/global\/AllUsers<\/URI><\/Grantee><Permission>READ<\/Permission><\/Grant>/,
      'the document has AWS shape',
    )
    const malformed = await fetch(
      await getSignedUrl(builder.s3, new PutObjectAclCommand({ Bucket, Key: 'for-rita' })),
      {
        method: 'PUT',
        body: '<AccessControlPolicy><AccessControlList><Grant><Permission>EVERYTHING</Permission></Grant></AccessControlList></AccessControlPolicy>',
      },
    )
    t.equal(malformed.status, 400, 'a malformed ACL body: 400')
    t.match(await malformed.text(), '<Code>MalformedACLError</Code>', 'MalformedACLError')

    // Disabling ACLs needs a private bucket ACL, and then no ACL grants anything.
    await refused(
      t,
      builder.s3.send(
        new PutBucketOwnershipControlsCommand({
          Bucket,
          OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        }),
      ),
      'InvalidBucketAclWithObjectOwnership',
      400,
      'BucketOwnerEnforced while the bucket ACL grants others',
    )
    await builder.s3.send(new PutBucketAclCommand({ Bucket, ACL: 'private' }))
    await builder.s3.send(
      new PutBucketOwnershipControlsCommand({
        Bucket,
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      }),
    )
    await refused(t, read('for-rita'), 'AccessDenied', 403, 'ACLs disabled: the grant is dormant')
    const dormant = await objectAcl(Bucket, 'by-rita')
    t.equal(dormant.Owner?.ID, builder.id, 'ACLs disabled: the bucket owner owns every object')
    await builder.s3.send(
      new PutBucketOwnershipControlsCommand({
        Bucket,
        OwnershipControls: { Rules: [{ ObjectOwnership: 'ObjectWriter' }] },
      }),
    )
    await allowed(t, read('for-rita'), 'ACLs enabled again: the grant is back')
  })

  await t.test('grants by e-mail address resolve to the user who has it', async (t) => {
    const set = await adminCall(endpoint, ROOT, 'PUT', '/users/rita/email', {
      email: 'Rita@Example.com',
    })
    t.equal(set.status, 200)
    t.equal(set.body.email, 'rita@example.com', 'stored in lower case')
    const dup = await adminCall(endpoint, ROOT, 'PUT', '/users/wendy/email', {
      email: 'rita@example.com',
    })
    t.match(
      dup,
      { status: 409, body: { error: { code: 'EntityAlreadyExists' } } },
      'one user per address',
    )
    const bad = await adminCall(endpoint, ROOT, 'PUT', '/users/wendy/email', { email: 'nope' })
    t.match(bad, { status: 400 }, 'not an address')

    const Bucket = await openBucket('email')
    // The gateway that wrote the address knows it at once; poll in case of a reload in flight.
    let placed = false
    for (let i = 0; i < 40 && !placed; i++) {
      placed = await put(builder.s3, Bucket, 'by-mail', {
        GrantRead: 'emailAddress="rita@example.com"',
      }).then(
        () => true,
        () => new Promise<boolean>((r) => setTimeout(() => r(false), 100)),
      )
    }
    t.ok(placed, 'x-amz-grant-read by e-mail is accepted')
    const acl = await objectAcl(Bucket, 'by-mail')
    t.same(grantList(acl.Grants), [`${rita.id} READ`], 'stored as the user, by canonical id')
    t.equal(acl.Grants?.[0]?.Grantee?.Type, 'CanonicalUser')
    t.equal(acl.Grants?.[0]?.Grantee?.DisplayName, 'rita')
    const got = await allowed(
      t,
      rita.s3.send(new GetObjectCommand({ Bucket, Key: 'by-mail' })),
      'rita reads what was granted to her address',
    )
    t.equal(got ? (await bodyBytes(got.Body)).toString() : '', 'by-mail')
    await builder.s3.send(
      new PutObjectAclCommand({
        Bucket,
        Key: 'by-mail',
        AccessControlPolicy: {
          Owner: { ID: builder.id },
          Grants: [
            {
              Grantee: { Type: 'AmazonCustomerByEmail', EmailAddress: 'RITA@example.com' },
              Permission: 'READ_ACP',
            },
          ],
        },
      }),
    )
    t.same(
      grantList((await objectAcl(Bucket, 'by-mail')).Grants),
      [`${rita.id} READ_ACP`],
      'an XML grant by e-mail, any case, resolves too',
    )
    const cleared = await adminCall(endpoint, ROOT, 'DELETE', '/users/rita/email')
    t.equal(cleared.body.email, undefined, 'the address can be removed')
    await refused(
      t,
      put(builder.s3, Bucket, 'after', { GrantRead: 'emailAddress="rita@example.com"' }),
      'UnresolvableGrantByEmailAddress',
      400,
      'and then no longer resolves',
    )
  })

  await t.test('ACLs of versions', async (t) => {
    const Bucket = await openBucket('versions')
    await builder.s3.send(
      new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }),
    )
    const v1 = (await put(builder.s3, Bucket, 'doc', { GrantRead: `id=${rita.id}` })).VersionId!
    const v2 = (await put(builder.s3, Bucket, 'doc')).VersionId!
    const get = (VersionId?: string) =>
      rita.s3.send(
        new GetObjectCommand({ Bucket, Key: 'doc', ...(VersionId ? { VersionId } : {}) }),
      )
    await allowed(t, get(v1), 'rita reads the version granted to her')
    await refused(t, get(v2), 'AccessDenied', 403, 'not the other version')
    await refused(t, get(), 'AccessDenied', 403, 'nor the latest')
    await builder.s3.send(
      new PutObjectAclCommand({ Bucket, Key: 'doc', VersionId: v2, GrantRead: `id=${rita.id}` }),
    )
    await allowed(t, get(), 'PutObjectAcl by versionId opens that version')
    t.same(
      grantList((await objectAcl(Bucket, 'doc', v1)).Grants),
      [`${rita.id} READ`],
      'GetObjectAcl by versionId',
    )
    await refused(
      t,
      objectAcl(Bucket, 'doc', 'A'.repeat(32)),
      'NoSuchVersion',
      404,
      'GetObjectAcl of a missing version',
    )
  })

  await t.test('owners in listings', async (t) => {
    const Bucket = await openBucket('listing')
    await put(builder.s3, Bucket, 'a-builder')
    await put(wendy.s3, Bucket, 'b-wendy')
    const v1 = await builder.s3.send(new ListObjectsCommand({ Bucket }))
    t.same(
      v1.Contents?.map((c) => [c.Key, c.Owner?.ID, c.Owner?.DisplayName]),
      [
        ['a-builder', builder.id, 'builder'],
        ['b-wendy', wendy.id, 'wendy'],
      ],
      'ListObjects shows each owner',
    )
    const v2 = await builder.s3.send(new ListObjectsV2Command({ Bucket }))
    t.same(
      v2.Contents?.map((c) => c.Owner),
      [undefined, undefined],
      'ListObjectsV2 shows no owner by default',
    )
    const v2o = await builder.s3.send(new ListObjectsV2Command({ Bucket, FetchOwner: true }))
    t.same(
      v2o.Contents?.map((c) => c.Owner?.ID),
      [builder.id, wendy.id],
      'ListObjectsV2 with fetch-owner',
    )
    const vers = await builder.s3.send(new ListObjectVersionsCommand({ Bucket }))
    t.same(
      vers.Versions?.map((v) => v.Owner?.ID),
      [builder.id, wendy.id],
      'ListObjectVersions shows each owner',
    )
    const buckets = await wendy.s3.send(new ListBucketsCommand({}))
    t.same(buckets.Owner, { ID: wendy.id, DisplayName: 'wendy' }, 'ListBuckets shows the caller')
    // Under BucketOwnerEnforced the bucket owner owns everything.
    await builder.s3.send(
      new PutBucketOwnershipControlsCommand({
        Bucket,
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      }),
    )
    const enforced = await builder.s3.send(new ListObjectsCommand({ Bucket }))
    t.same(
      enforced.Contents?.map((c) => c.Owner?.ID),
      [builder.id, builder.id],
      'BucketOwnerEnforced: every listed object is the bucket owner’s',
    )
  })

  await t.test('awscli s3api ACL commands', async (t) => {
    const bin = await ensureDebianPackages({ awscli: 'aws' })
    const env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: builder.creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: builder.creds.secretAccessKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    }
    const aws = async (...args: string[]) =>
      sh(bin.aws!, ['--endpoint-url', endpoint, '--output', 'json', ...args], env)
    const Bucket = await openBucket('cli')
    const acl = JSON.parse(await aws('s3api', 'get-bucket-acl', '--bucket', Bucket))
    t.equal(acl.Owner.ID, builder.id, 'get-bucket-acl: the owner')
    t.same(grantList(acl.Grants), [own(builder)], 'get-bucket-acl: the grants')
    await aws('s3api', 'put-bucket-acl', '--bucket', Bucket, '--acl', 'public-read')
    const after = JSON.parse(await aws('s3api', 'get-bucket-acl', '--bucket', Bucket))
    t.same(grantList(after.Grants), [own(builder), `${ALL_USERS} READ`], 'put-bucket-acl --acl')
    await aws(
      's3api',
      'put-bucket-acl',
      '--bucket',
      Bucket,
      '--grant-full-control',
      `id=${builder.id}`,
      '--grant-read',
      `id=${rita.id}`,
    )
    const granted = JSON.parse(await aws('s3api', 'get-bucket-acl', '--bucket', Bucket))
    t.same(grantList(granted.Grants), [own(builder), `${rita.id} READ`], 'put-bucket-acl --grant-*')
    await aws('s3api', 'put-object', '--bucket', Bucket, '--key', 'k', '--acl', 'public-read')
    const oacl = JSON.parse(await aws('s3api', 'get-object-acl', '--bucket', Bucket, '--key', 'k'))
    t.same(grantList(oacl.Grants), [own(builder), `${ALL_USERS} READ`], 'put-object --acl')
    const anon = await fetch(`${endpoint}/${Bucket}/k`)
    t.equal(anon.status, 200, 'and the object is public')
    await anon.arrayBuffer()
    const denied = await aws(
      's3api',
      'put-object-acl',
      '--bucket',
      Bucket,
      '--key',
      'k',
      '--grant-read',
      'emailAddress=someone@example.com',
    ).catch((e: Error) => e.message)
    t.match(denied, 'UnresolvableGrantByEmailAddress', 'put-object-acl by e-mail: refused')
  })
})
