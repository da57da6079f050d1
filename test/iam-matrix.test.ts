/**
 * The access decision of design §7 as a matrix: every role × representative S3 actions ×
 * bucket policy absent/present × the key's own project/another project. Each cell is a real
 * request through @aws-sdk/client-s3 against a real cluster, asserting allowed or AccessDenied.
 *
 * The expected table is written out here from the design, independently of the gateway's code.
 */
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketPolicyCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import t from 'tap'
import { createProject, createUserWithKey } from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { s3Client, s3Fault } from './harness/s3.ts'

const ROLES = [
  { role: 'owner' },
  { role: 'admin' },
  { role: 'user-admin' },
  { role: 'reader' },
  { role: 'project-admin', project: 'alpha' },
  { role: 'observer', project: 'alpha' },
  { role: 's3-admin', project: 'alpha' },
  { role: 's3-user', project: 'alpha' },
] as const
type RoleName = (typeof ROLES)[number]['role']

const ACTIONS = [
  'ListBucket',
  'GetObject',
  'PutObject',
  'DeleteObject',
  'PutBucketTagging',
  'GetBucketPolicy',
] as const
type Action = (typeof ACTIONS)[number]

const READS: readonly Action[] = ['ListBucket', 'GetObject', 'GetBucketPolicy']

/** What the roles grant in the key's own project when the bucket has no policy. */
function allowedWithoutPolicy(role: RoleName, action: Action): boolean {
  switch (role) {
    case 'owner':
    case 'admin':
    case 'project-admin':
    case 's3-admin':
      return true
    case 'reader':
    case 'observer':
      return READS.includes(action)
    case 'user-admin': // users and keys only, no data
    case 's3-user': // nothing until a policy allows it
      return false
  }
}

/**
 * With a bucket policy (it allows the s3-user's user ListBucket and GetObject, nobody else):
 * default deny, except that owner, admin and project-admin can always manage the policy.
 */
function allowedWithPolicy(role: RoleName, action: Action): boolean {
  if (action === 'GetBucketPolicy')
    return role === 'owner' || role === 'admin' || role === 'project-admin'
  if (role === 's3-user') return action === 'ListBucket' || action === 'GetObject'
  return false
}

function expected(role: RoleName, action: Action, policy: boolean, ownProject: boolean): boolean {
  if (!ownProject) return false // a key works only on its project's buckets
  return policy ? allowedWithPolicy(role, action) : allowedWithoutPolicy(role, action)
}

async function attempt(
  s3: S3Client,
  action: Action,
  bucket: string,
  cell: string,
): Promise<string> {
  try {
    switch (action) {
      case 'ListBucket':
        await s3.send(new ListObjectsV2Command({ Bucket: bucket }))
        break
      case 'GetObject':
        await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'seed.txt' }))
        break
      case 'PutObject':
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `cells/${cell}`, Body: cell }))
        break
      case 'DeleteObject':
        await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `cells/${cell}-gone` }))
        break
      case 'PutBucketTagging':
        await s3.send(
          new PutBucketTaggingCommand({
            Bucket: bucket,
            Tagging: { TagSet: [{ Key: 'cell', Value: cell.slice(0, 200) }] },
          }),
        )
        break
      case 'GetBucketPolicy':
        await s3.send(new GetBucketPolicyCommand({ Bucket: bucket }))
        break
    }
    return 'allowed'
  } catch (err) {
    const f = s3Fault(err)
    // Reaching the operation and finding no policy is being allowed.
    if (f.code === 'NoSuchBucketPolicy') return 'allowed'
    if (f.code === 'AccessDenied' && f.status === 403) return 'denied'
    return `unexpected ${f.code} ${f.status}: ${f.message}`
  }
}

t.test('roles × actions × bucket policy × project, through real requests', async (t) => {
  const cluster = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = cluster.gateways[0]!.endpoint
  await createProject(endpoint, ROOT, 'alpha')
  await createProject(endpoint, ROOT, 'beta')

  // Buckets are made by each project's administrator (root's buckets go to 'default').
  const builders = {
    alpha: s3Client(endpoint, {
      credentials: await createUserWithKey(endpoint, ROOT, 'builder-alpha', 'alpha', [
        { role: 'project-admin', project: 'alpha' },
      ]),
    }),
    beta: s3Client(endpoint, {
      credentials: await createUserWithKey(endpoint, ROOT, 'builder-beta', 'beta', [
        { role: 'project-admin', project: 'beta' },
      ]),
    }),
  }
  const clients = new Map<RoleName, S3Client>()
  for (const r of ROLES) {
    const creds = await createUserWithKey(endpoint, ROOT, `u-${r.role}`, 'alpha', [
      'project' in r ? { role: r.role, project: r.project } : { role: r.role },
    ])
    clients.set(r.role, s3Client(endpoint, { credentials: creds }))
  }
  const account = await accountId(endpoint)
  const s3UserArn = `arn:aws:iam::${account}:user/u-s3-user`
  const buckets: Record<string, { policy: boolean; project: 'alpha' | 'beta' }> = {
    'm-alpha-plain': { policy: false, project: 'alpha' },
    'm-alpha-policy': { policy: true, project: 'alpha' },
    'm-beta-plain': { policy: false, project: 'beta' },
    'm-beta-policy': { policy: true, project: 'beta' },
  }
  for (const [name, b] of Object.entries(buckets)) {
    const s3 = builders[b.project]
    await s3.send(new (await import('@aws-sdk/client-s3')).CreateBucketCommand({ Bucket: name }))
    await s3.send(new PutObjectCommand({ Bucket: name, Key: 'seed.txt', Body: 'seed' }))
    if (b.policy) {
      await s3.send(
        new PutBucketPolicyCommand({
          Bucket: name,
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [
              {
                Effect: 'Allow',
                Principal: { AWS: [s3UserArn] },
                Action: ['s3:ListBucket', 's3:GetObject'],
                Resource: [`arn:aws:s3:::${name}`, `arn:aws:s3:::${name}/*`],
              },
            ],
          }),
        }),
      )
    }
  }

  let cells = 0
  const wrong: string[] = []
  for (const r of ROLES) {
    const s3 = clients.get(r.role)!
    for (const [bucket, b] of Object.entries(buckets)) {
      for (const action of ACTIONS) {
        const want = expected(r.role, action, b.policy, b.project === 'alpha')
          ? 'allowed'
          : 'denied'
        const cell = `${r.role}.${bucket}.${action}`
        const got = await attempt(s3, action, bucket, cell)
        cells++
        if (got !== want) wrong.push(`${cell}: want ${want}, got ${got}`)
      }
    }
  }
  t.equal(cells, ROLES.length * ACTIONS.length * 4, 'every cell was tried')
  t.same(wrong, [], 'every cell answered as the design says')
  // The table is not trivially one-sided.
  let allowed = 0
  for (const r of ROLES)
    for (const b of Object.values(buckets))
      for (const a of ACTIONS) if (expected(r.role, a, b.policy, b.project === 'alpha')) allowed++
  t.ok(allowed > 30 && allowed < cells - 30, `${allowed} of ${cells} cells allow`)

  await t.test('copies and batch deletes are decided on the bucket they touch', async (t) => {
    const s3Admin = clients.get('s3-admin')!
    const copy = (from: string) =>
      attemptCopy(s3Admin, `${from}/seed.txt`, 'm-alpha-plain', `copied-from-${from}`)
    t.equal(await copy('m-alpha-plain'), 'allowed', "a copy inside the key's project")
    t.equal(await copy('m-beta-plain'), 'denied', 'no copy out of another project')
    t.equal(await copy('m-alpha-policy'), 'denied', 'no copy out of a bucket whose policy says no')
    const del = async (s3: S3Client, bucket: string) => {
      const r = await s3.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: [{ Key: 'seed.txt' }, { Key: 'other.txt' }] },
        }),
      )
      return {
        deleted: r.Deleted?.length ?? 0,
        denied: (r.Errors ?? []).filter((e) => e.Code === 'AccessDenied').length,
      }
    }
    t.same(
      await del(clients.get('s3-user')!, 'm-alpha-policy'),
      { deleted: 0, denied: 2 },
      'each key refused under the bucket policy',
    )
    t.same(
      await del(clients.get('observer')!, 'm-alpha-plain'),
      { deleted: 0, denied: 2 },
      'each key refused to a read-only role',
    )
    t.same(
      await del(s3Admin, 'm-alpha-plain'),
      { deleted: 2, denied: 0 },
      'deleted by a role that may',
    )
  })
})

async function attemptCopy(
  s3: S3Client,
  source: string,
  bucket: string,
  key: string,
): Promise<string> {
  try {
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: key, CopySource: source }))
    return 'allowed'
  } catch (err) {
    const f = s3Fault(err)
    return f.code === 'AccessDenied' ? 'denied' : `unexpected ${f.code}`
  }
}

async function accountId(endpoint: string): Promise<string> {
  const { adminCall } = await import('./harness/admin.ts')
  const res = await adminCall(endpoint, ROOT, 'GET', '/account')
  if (res.status !== 200) throw new Error(`GET /account: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body.id as string
}
