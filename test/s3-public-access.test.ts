/**
 * The public access block and anonymous access end to end: Get/Put/DeletePublicAccessBlock,
 * each of its four settings enforced as AWS does (BlockPublicAcls, IgnorePublicAcls,
 * BlockPublicPolicy, RestrictPublicBuckets), GetBucketPolicyStatus, and unsigned requests,
 * which only a public ACL or a Principal "*" bucket policy lets in, and never to IAM, STS or
 * the admin API.
 *
 * One real cluster for the file; signed requests go through @aws-sdk/client-s3, unsigned ones
 * through plain `fetch`. Every refusal checks the exact S3 code and HTTP status.
 */
import {
  type BucketCannedACL,
  CreateBucketCommand,
  DeleteBucketPolicyCommand,
  DeletePublicAccessBlockCommand,
  GetBucketPolicyStatusCommand,
  GetObjectCommand,
  GetPublicAccessBlockCommand,
  type PublicAccessBlockConfiguration,
  PutBucketAclCommand,
  PutBucketPolicyCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  PutPublicAccessBlockCommand,
} from '@aws-sdk/client-s3'
import t, { type Test } from 'tap'
import { adminCall, createProject, createUserWithKey } from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { bodyBytes, s3Client, s3Fault, uniqueBucket } from './harness/s3.ts'

const PROJECT = 'alpha'
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers'

async function refused(
  t: Test,
  run: Promise<unknown>,
  code: string,
  status: number,
  what: string,
): Promise<void> {
  try {
    await run
  } catch (err) {
    const f = s3Fault(err)
    t.same({ code: f.code, status: f.status }, { code, status }, `${what}: ${code} ${status}`)
    t.ok(f.message.trim().length > 0, `${what}: the error has a message`)
    return
  }
  t.fail(`${what}: succeeded, expected ${code} ${status}`)
}

async function allowed(t: Test, run: Promise<unknown>, what: string): Promise<void> {
  try {
    await run
    t.pass(`${what}: allowed`)
  } catch (err) {
    const f = s3Fault(err)
    t.fail(`${what}: refused with ${f.code} ${f.status}: ${f.message}`)
  }
}

/** The `<Code>` of an XML error body. */
function xmlCode(body: string): string | undefined {
  return /<Code>([^<]*)<\/Code>/.exec(body)?.[1]
}

t.test('public access block and anonymous access', async (t) => {
  const cluster = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = cluster.gateways[0]!.endpoint
  await createProject(endpoint, ROOT, PROJECT)
  const creds = await createUserWithKey(endpoint, ROOT, 'builder', PROJECT, [
    { role: 'project-admin', project: PROJECT },
  ])
  const s3 = s3Client(endpoint, { credentials: creds })
  const account = await adminCall(endpoint, ROOT, 'GET', '/account')
  const builderArn = `arn:aws:iam::${account.body.id}:user/builder`

  /** An unsigned request: its status and XML error code. */
  const anon = async (path: string, init: RequestInit = {}) => {
    const r = await fetch(`${endpoint}${path}`, init)
    const body = await r.text()
    return { status: r.status, code: xmlCode(body), body }
  }
  const block = (Bucket: string, c: PublicAccessBlockConfiguration) =>
    s3.send(new PutPublicAccessBlockCommand({ Bucket, PublicAccessBlockConfiguration: c }))
  const newBucket = async (prefix: string) => {
    const Bucket = uniqueBucket(prefix)
    await s3.send(new CreateBucketCommand({ Bucket, ObjectOwnership: 'ObjectWriter' }))
    await s3.send(new PutObjectCommand({ Bucket, Key: 'obj.txt', Body: 'hello' }))
    return Bucket
  }
  const publicRead = (Bucket: string, extra: object = {}) =>
    JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: '*',
          Action: 's3:GetObject',
          Resource: `arn:aws:s3:::${Bucket}/*`,
          ...extra,
        },
      ],
    })
  const setPolicy = (Bucket: string, Policy: string) =>
    s3.send(new PutBucketPolicyCommand({ Bucket, Policy }))

  await t.test('Get, Put and DeletePublicAccessBlock', async (t) => {
    const Bucket = await newBucket('pab')
    await block(Bucket, { BlockPublicAcls: true, RestrictPublicBuckets: true })
    const got = await s3.send(new GetPublicAccessBlockCommand({ Bucket }))
    t.same(
      got.PublicAccessBlockConfiguration,
      {
        BlockPublicAcls: true,
        IgnorePublicAcls: false,
        BlockPublicPolicy: false,
        RestrictPublicBuckets: true,
      },
      'settings not sent are false',
    )
    await s3.send(new DeletePublicAccessBlockCommand({ Bucket }))
    await refused(
      t,
      s3.send(new GetPublicAccessBlockCommand({ Bucket })),
      'NoSuchPublicAccessBlockConfiguration',
      404,
      'GetPublicAccessBlock after delete',
    )
    await allowed(t, s3.send(new DeletePublicAccessBlockCommand({ Bucket })), 'deleting it again')
    const raw = await anon(`/${Bucket}?publicAccessBlock`)
    t.equal(raw.status, 403, 'an unsigned GetPublicAccessBlock: 403')
  })

  await t.test('BlockPublicAcls refuses public ACLs', async (t) => {
    const Bucket = await newBucket('bpa')
    await refused(
      t,
      s3.send(new PutObjectCommand({ Bucket, Key: 'p', Body: 'x', ACL: 'public-read' })),
      'AccessDenied',
      403,
      'PutObject public-read',
    )
    await refused(
      t,
      s3.send(new PutBucketAclCommand({ Bucket, ACL: 'authenticated-read' })),
      'AccessDenied',
      403,
      'PutBucketAcl authenticated-read',
    )
    await refused(
      t,
      s3.send(new PutObjectAclCommand({ Bucket, Key: 'obj.txt', GrantRead: `uri="${ALL_USERS}"` })),
      'AccessDenied',
      403,
      'PutObjectAcl granting AllUsers',
    )
    await allowed(
      t,
      s3.send(new PutBucketAclCommand({ Bucket, ACL: 'log-delivery-write' as BucketCannedACL })),
      'the log delivery group is not public',
    )
    await allowed(
      t,
      s3.send(new PutObjectCommand({ Bucket, Key: 'q', Body: 'x', ACL: 'private' })),
      'PutObject private',
    )
    await block(Bucket, { BlockPublicAcls: false })
    await allowed(
      t,
      s3.send(new PutObjectCommand({ Bucket, Key: 'p', Body: 'x', ACL: 'public-read' })),
      'PutObject public-read once BlockPublicAcls is off',
    )
  })

  await t.test('IgnorePublicAcls and anonymous reads through ACLs', async (t) => {
    const Bucket = await newBucket('ipa')
    await s3.send(new DeletePublicAccessBlockCommand({ Bucket }))
    await s3.send(
      new PutObjectCommand({ Bucket, Key: 'pub.txt', Body: 'public', ACL: 'public-read' }),
    )
    let r = await anon(`/${Bucket}/pub.txt`)
    t.equal(r.status, 200, 'unsigned GET of a public-read object: 200')
    t.equal(r.body, 'public', 'and its bytes')
    t.equal((await anon(`/${Bucket}/pub.txt`, { method: 'HEAD' })).status, 200, 'HEAD too')
    r = await anon(`/${Bucket}/obj.txt`)
    t.same([r.status, r.code], [403, 'AccessDenied'], 'unsigned GET of a private object')
    r = await anon(`/${Bucket}?list-type=2`)
    t.same([r.status, r.code], [403, 'AccessDenied'], "an object's READ does not list")
    r = await anon(`/${Bucket}/pub.txt?acl`)
    t.same([r.status, r.code], [403, 'AccessDenied'], 'nor read its ACL')

    await s3.send(new PutBucketAclCommand({ Bucket, ACL: 'public-read-write' }))
    r = await anon(`/${Bucket}?list-type=2`)
    t.equal(r.status, 200, 'bucket READ to AllUsers: unsigned listing')
    t.match(r.body, '<Key>pub.txt</Key>', 'lists the objects')
    r = await anon(`/${Bucket}/anon.txt`, { method: 'PUT', body: 'by anyone' })
    t.equal(r.status, 200, 'bucket WRITE to AllUsers: unsigned PUT')
    const back = await s3.send(new GetObjectCommand({ Bucket, Key: 'anon.txt' }))
    t.equal((await bodyBytes(back.Body)).toString(), 'by anyone', 'the owner reads it')
    r = await anon(`/${Bucket}/anon.txt`, { method: 'DELETE' })
    t.equal(r.status, 204, 'and an unsigned DELETE')

    await block(Bucket, { IgnorePublicAcls: true })
    r = await anon(`/${Bucket}/pub.txt`)
    t.same(
      [r.status, r.code],
      [403, 'AccessDenied'],
      'IgnorePublicAcls: the object grant is ignored',
    )
    r = await anon(`/${Bucket}?list-type=2`)
    t.equal(r.status, 403, 'and the bucket grant')
    await block(Bucket, { IgnorePublicAcls: false })
    t.equal((await anon(`/${Bucket}/pub.txt`)).status, 200, 'IgnorePublicAcls off: back')
    // All four on, as PutPublicAccessBlock with every setting (and as a new bucket has it).
    await block(Bucket, {
      BlockPublicAcls: true,
      IgnorePublicAcls: true,
      BlockPublicPolicy: true,
      RestrictPublicBuckets: true,
    })
    r = await anon(`/${Bucket}/pub.txt`)
    t.same([r.status, r.code], [403, 'AccessDenied'], 'refused after PutPublicAccessBlock')
  })

  await t.test('BlockPublicPolicy, RestrictPublicBuckets and policy status', async (t) => {
    const Bucket = await newBucket('bpp')
    await refused(
      t,
      s3.send(new GetBucketPolicyStatusCommand({ Bucket })),
      'NoSuchBucketPolicy',
      404,
      'GetBucketPolicyStatus without a policy',
    )
    let r = await anon(`/${Bucket}/obj.txt`)
    t.same([r.status, r.code], [403, 'AccessDenied'], 'unsigned GET without a policy')
    await refused(
      t,
      setPolicy(Bucket, publicRead(Bucket)),
      'AccessDenied',
      403,
      'a Principal "*" policy under BlockPublicPolicy',
    )
    const named = JSON.stringify({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: builderArn },
          Action: 's3:GetObject',
          Resource: `arn:aws:s3:::${Bucket}/*`,
        },
      ],
    })
    await allowed(t, setPolicy(Bucket, named), 'a policy naming its principal')
    let status = await s3.send(new GetBucketPolicyStatusCommand({ Bucket }))
    t.equal(status.PolicyStatus?.IsPublic, false, 'a named principal: not public')
    const fromNet = publicRead(Bucket, {
      Condition: { IpAddress: { 'aws:SourceIp': '10.1.0.0/16' } },
    })
    await allowed(t, setPolicy(Bucket, fromNet), 'Principal "*" pinned to a source range')
    status = await s3.send(new GetBucketPolicyStatusCommand({ Bucket }))
    t.equal(status.PolicyStatus?.IsPublic, false, 'a fixed source range: not public')
    await refused(
      t,
      setPolicy(
        Bucket,
        publicRead(Bucket, { Condition: { IpAddress: { 'aws:SourceIp': '0.0.0.0/0' } } }),
      ),
      'AccessDenied',
      403,
      'Principal "*" from every address is public',
    )

    // With a bucket policy only it decides (design §7), so change the block without one.
    await s3.send(new DeleteBucketPolicyCommand({ Bucket }))
    await block(Bucket, { BlockPublicPolicy: false, RestrictPublicBuckets: true })
    await allowed(t, setPolicy(Bucket, publicRead(Bucket)), 'the public policy once allowed')
    status = await s3.send(new GetBucketPolicyStatusCommand({ Bucket }))
    t.equal(status.PolicyStatus?.IsPublic, true, 'Principal "*": public')
    r = await anon(`/${Bucket}/obj.txt`)
    t.same(
      [r.status, r.code],
      [403, 'AccessDenied'],
      'RestrictPublicBuckets: the public policy does not reach unsigned callers',
    )
    const rita = await createUserWithKey(endpoint, ROOT, 'rita', PROJECT, [
      { role: 's3-user', project: PROJECT },
    ])
    await allowed(
      t,
      s3Client(endpoint, { credentials: rita }).send(
        new GetObjectCommand({ Bucket, Key: 'obj.txt' }),
      ),
      'RestrictPublicBuckets: a user of the account still reads through it',
    )
    await s3.send(new DeleteBucketPolicyCommand({ Bucket }))
    await block(Bucket, { RestrictPublicBuckets: false })
    await setPolicy(Bucket, publicRead(Bucket))
    r = await anon(`/${Bucket}/obj.txt`)
    t.same([r.status, r.body], [200, 'hello'], 'unsigned GET allowed by the Principal "*" policy')
    r = await anon(`/${Bucket}/obj.txt`, { method: 'PUT', body: 'defaced' })
    t.same([r.status, r.code], [403, 'AccessDenied'], 'but no unsigned PUT')
    await s3.send(new DeleteBucketPolicyCommand({ Bucket }))
    r = await anon(`/${Bucket}/obj.txt`)
    t.equal(r.status, 403, 'policy deleted: refused again')
  })

  await t.test('anonymous IAM, STS and admin calls are refused', async (t) => {
    const form = (body: string) =>
      anon('/', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      })
    let r = await form('Action=ListUsers&Version=2010-05-08')
    t.same([r.status, r.code], [403, 'MissingAuthenticationToken'], 'unsigned IAM ListUsers')
    r = await form('Action=GetCallerIdentity&Version=2011-06-15')
    t.same([r.status, r.code], [403, 'MissingAuthenticationToken'], 'unsigned STS call')
    r = await form(
      'Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::1:role/x&RoleSessionName=s',
    )
    t.same([r.status, r.code], [403, 'MissingAuthenticationToken'], 'unsigned AssumeRole')
    const adm = await fetch(`${endpoint}/_tessera/admin/v1/users`)
    const admBody = await adm.text()
    t.equal(adm.status, 403, 'unsigned admin GET /users: 403')
    t.equal(JSON.parse(admBody).error?.code, 'AccessDenied', 'unsigned admin: AccessDenied')
    r = await anon('/')
    t.same([r.status, r.code], [403, 'AccessDenied'], 'unsigned ListBuckets')
    r = await anon(`/${uniqueBucket('anon')}`, { method: 'PUT' })
    t.same([r.status, r.code], [403, 'AccessDenied'], 'unsigned CreateBucket')
  })
})
