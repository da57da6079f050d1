/**
 * The IAM and STS query APIs as operators use them: the real aws CLI (Debian's awscli,
 * installed by the test) against a 2-node RS(2,2) cluster and its gateway. Users, access keys,
 * inline and managed policies as the root credential; then a user with a role assumes a role
 * and works with the temporary credentials STS hands out, which may do S3 but not IAM or STS.
 */
import { execFile } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { bindRole } from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { ensureDebianPackages } from './harness/debian.ts'

interface Creds {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

/** One aws CLI run: exit code, output, and stdout read as JSON when it is JSON. */
interface AwsRun {
  code: number
  stdout: string
  stderr: string
  json: unknown
}

interface User {
  Path: string
  UserName: string
  UserId: string
  Arn: string
  CreateDate: string
}

interface AccessKey {
  UserName: string
  AccessKeyId: string
  Status: string
  SecretAccessKey: string
  CreateDate: string
}

interface Policy {
  PolicyName: string
  PolicyId: string
  Arn: string
  Path: string
  DefaultVersionId: string
  AttachmentCount: number
  IsAttachable: boolean
  Description?: string
  CreateDate: string
  UpdateDate: string
}

interface Identity {
  Arn: string
  UserId: string
  Account: string
}

interface AssumeRole {
  Credentials: {
    AccessKeyId: string
    SecretAccessKey: string
    SessionToken: string
    Expiration: string
  }
  AssumedRoleUser: { Arn: string; AssumedRoleId: string }
  PackedPolicySize?: number
}

// A policy whose resource holds characters the URL encoding of policy documents must carry.
const TEAM_READ = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Action: ['s3:GetObject', 's3:ListBucket'],
      Resource: ['arn:aws:s3:::team-data', "arn:aws:s3:::team-data/a b+c&d%'(1)*!~é/*"],
    },
  ],
}

const SESSION_POLICY = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 's3:ListAllMyBuckets', Resource: '*' }],
}

t.test('the aws CLI against the IAM and STS query APIs', async (t) => {
  const bin = await ensureDebianPackages({ awscli: 'aws' })
  const c = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = c.gateways[0]!.endpoint
  // Beside the cluster, in its folder: a second t.testdir() would wipe the cluster's files.
  const dir = join(c.dir, 'cli-files')
  await mkdir(dir, { recursive: true })

  // Nothing of this machine's AWS setup may reach the CLI: no profile, no session token, and no
  // CA bundle (local bundles confuse its plain-HTTP setup).
  const baseEnv: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('AWS_')) baseEnv[name] = value
  }
  Object.assign(baseEnv, {
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(dir, 'aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'aws-credentials'),
    AWS_PAGER: '',
    // A failure is answered once, not retried.
    AWS_RETRY_MODE: 'standard',
    AWS_MAX_ATTEMPTS: '1',
  })

  const run = (creds: Creds, ...args: string[]): Promise<AwsRun> => {
    const env: NodeJS.ProcessEnv = {
      ...baseEnv,
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    }
    if (creds.sessionToken !== undefined) env.AWS_SESSION_TOKEN = creds.sessionToken
    const argv = ['--endpoint-url', endpoint, '--output', 'json', ...args]
    return new Promise((resolve) => {
      execFile(bin.aws!, argv, { env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
        let json: unknown
        try {
          json = stdout.trim() === '' ? undefined : JSON.parse(stdout)
        } catch {
          json = undefined
        }
        resolve({ code, stdout, stderr, json })
      })
    })
  }
  const root = (...args: string[]) => run(ROOT, ...args)

  /** Asserts the run succeeded and returns its JSON output. */
  const ok = <T>(tt: Test, r: AwsRun, what: string): T => {
    tt.equal(r.code, 0, `${what} succeeds${r.code === 0 ? '' : `: ${r.stderr}`}`)
    return r.json as T
  }
  /** Asserts the run failed with the AWS error `code`. */
  const fails = (tt: Test, r: AwsRun, code: string, what: string): void => {
    tt.not(r.code, 0, `${what} fails`)
    tt.match(r.stderr, `(${code})`, `${what}: ${code}`)
  }

  await t.test('users', async (t) => {
    const created = ok<{ User: User }>(
      t,
      await root('iam', 'create-user', '--user-name', 'alice'),
      'create-user',
    )
    t.equal(created.User.UserName, 'alice')
    t.match(created.User.Arn, /^arn:aws:iam::\d{12}:user\/alice$/)
    t.equal(created.User.Path, '/')
    t.type(created.User.UserId, 'string')
    t.ok(Number.isFinite(Date.parse(created.User.CreateDate)), 'CreateDate is a date')

    fails(
      t,
      await root('iam', 'create-user', '--user-name', 'alice'),
      'EntityAlreadyExists',
      'creating alice twice',
    )
    fails(
      t,
      await root('iam', 'create-user', '--user-name', 'no spaces allowed'),
      'ValidationError',
      'a user name outside [\\w+=,.@-]',
    )

    const got = ok<{ User: User }>(
      t,
      await root('iam', 'get-user', '--user-name', 'alice'),
      'get-user',
    )
    t.same(got.User, created.User, 'get-user shows the user create-user made')

    for (const name of ['carol', 'dave']) {
      ok(t, await root('iam', 'create-user', '--user-name', name), `create-user ${name}`)
    }
    const listed = ok<{ Users: User[] }>(t, await root('iam', 'list-users'), 'list-users')
    const names = listed.Users.map((u) => u.UserName).sort()
    t.ok(names.includes('alice'), 'list-users shows alice')
    t.same(
      listed.Users.find((u) => u.UserName === 'alice'),
      created.User,
    )
    // The CLI follows Marker from page to page; one user a page must list the same users.
    const paged = ok<{ Users: User[] }>(
      t,
      await root('iam', 'list-users', '--page-size', '1'),
      'list-users one user a page',
    )
    t.same(paged.Users.map((u) => u.UserName).sort(), names, 'paging lists every user once')
    for (const name of ['carol', 'dave']) {
      ok(t, await root('iam', 'delete-user', '--user-name', name), `delete-user ${name}`)
    }

    fails(
      t,
      await root('iam', 'get-user', '--user-name', 'nobody'),
      'NoSuchEntity',
      'get-user of an unknown user',
    )
    fails(
      t,
      await root('iam', 'delete-user', '--user-name', 'nobody'),
      'NoSuchEntity',
      'delete-user of an unknown user',
    )
  })

  await t.test('access keys', async (t) => {
    const created = ok<{ AccessKey: AccessKey }>(
      t,
      await root('iam', 'create-access-key', '--user-name', 'alice'),
      'create-access-key',
    )
    const key = created.AccessKey
    t.equal(key.UserName, 'alice')
    t.equal(key.Status, 'Active')
    t.match(key.AccessKeyId, /^\w{16,128}$/)
    t.type(key.SecretAccessKey, 'string')
    t.ok(key.SecretAccessKey.length >= 20, 'the secret is shown when the key is made')

    const list = await root('iam', 'list-access-keys', '--user-name', 'alice')
    const listed = ok<{ AccessKeyMetadata: Omit<AccessKey, 'SecretAccessKey'>[] }>(
      t,
      list,
      'list-access-keys',
    )
    t.same(
      listed.AccessKeyMetadata.map((k) => [k.UserName, k.AccessKeyId, k.Status]),
      [['alice', key.AccessKeyId, 'Active']],
    )
    t.notOk(list.stdout.includes(key.SecretAccessKey), 'list-access-keys never shows the secret')
    t.notOk(list.stderr.includes(key.SecretAccessKey))
    const user = await root('iam', 'get-user', '--user-name', 'alice')
    t.notOk(user.stdout.includes(key.SecretAccessKey), 'get-user never shows the secret')

    ok(
      t,
      await root(
        'iam',
        'update-access-key',
        '--user-name',
        'alice',
        '--access-key-id',
        key.AccessKeyId,
        '--status',
        'Inactive',
      ),
      'update-access-key to Inactive',
    )
    const after = ok<{ AccessKeyMetadata: AccessKey[] }>(
      t,
      await root('iam', 'list-access-keys', '--user-name', 'alice'),
      'list-access-keys after the update',
    )
    t.equal(after.AccessKeyMetadata[0]?.Status, 'Inactive')
    fails(
      t,
      await root(
        'iam',
        'update-access-key',
        '--user-name',
        'alice',
        '--access-key-id',
        key.AccessKeyId,
        '--status',
        'Bogus',
      ),
      'ValidationError',
      'a status other than Active and Inactive',
    )

    ok(
      t,
      await root(
        'iam',
        'delete-access-key',
        '--user-name',
        'alice',
        '--access-key-id',
        key.AccessKeyId,
      ),
      'delete-access-key',
    )
    const none = ok<{ AccessKeyMetadata: AccessKey[] }>(
      t,
      await root('iam', 'list-access-keys', '--user-name', 'alice'),
      'list-access-keys after the delete',
    )
    t.same(none.AccessKeyMetadata, [])
  })

  await t.test('inline user policies', async (t) => {
    const doc = JSON.stringify(TEAM_READ)
    const user = ['--user-name', 'alice']
    ok(
      t,
      await root(
        'iam',
        'put-user-policy',
        ...user,
        '--policy-name',
        'p1',
        '--policy-document',
        doc,
      ),
      'put-user-policy',
    )
    const got = ok<{ UserName: string; PolicyName: string; PolicyDocument: unknown }>(
      t,
      await root('iam', 'get-user-policy', ...user, '--policy-name', 'p1'),
      'get-user-policy',
    )
    t.equal(got.UserName, 'alice')
    t.equal(got.PolicyName, 'p1')
    t.same(got.PolicyDocument, TEAM_READ, 'the document round-trips')

    const names = ok<{ PolicyNames: string[] }>(
      t,
      await root('iam', 'list-user-policies', ...user),
      'list-user-policies',
    )
    t.same(names.PolicyNames, ['p1'])

    fails(
      t,
      await root(
        'iam',
        'put-user-policy',
        ...user,
        '--policy-name',
        'broken',
        '--policy-document',
        '{"Version":"2012-10-17","Statement":',
      ),
      'MalformedPolicyDocument',
      'a policy that is not JSON',
    )

    ok(
      t,
      await root('iam', 'delete-user-policy', ...user, '--policy-name', 'p1'),
      'delete-user-policy',
    )
    const empty = ok<{ PolicyNames: string[] }>(
      t,
      await root('iam', 'list-user-policies', ...user),
      'list-user-policies after the delete',
    )
    t.same(empty.PolicyNames, [])
    fails(
      t,
      await root('iam', 'get-user-policy', ...user, '--policy-name', 'p1'),
      'NoSuchEntity',
      'get-user-policy of a deleted policy',
    )
  })

  await t.test('managed policies', async (t) => {
    const created = ok<{ Policy: Policy }>(
      t,
      await root(
        'iam',
        'create-policy',
        '--policy-name',
        'team-read',
        '--policy-document',
        JSON.stringify(TEAM_READ),
        '--description',
        'Read the team bucket',
      ),
      'create-policy',
    )
    const arn = created.Policy.Arn
    t.match(arn, /^arn:aws:iam::\d{12}:policy\/team-read$/)
    t.equal(created.Policy.PolicyName, 'team-read')
    t.equal(created.Policy.DefaultVersionId, 'v1')
    t.equal(created.Policy.AttachmentCount, 0)
    t.equal(created.Policy.IsAttachable, true)

    const got = ok<{ Policy: Policy }>(
      t,
      await root('iam', 'get-policy', '--policy-arn', arn),
      'get-policy',
    )
    t.equal(got.Policy.Arn, arn)
    t.equal(got.Policy.Description, 'Read the team bucket')

    const version = ok<{
      PolicyVersion: { Document: unknown; VersionId: string; IsDefaultVersion: boolean }
    }>(
      t,
      await root('iam', 'get-policy-version', '--policy-arn', arn, '--version-id', 'v1'),
      'get-policy-version',
    )
    t.same(version.PolicyVersion.Document, TEAM_READ, 'the document round-trips')
    t.equal(version.PolicyVersion.VersionId, 'v1')
    t.equal(version.PolicyVersion.IsDefaultVersion, true)
    fails(
      t,
      await root('iam', 'get-policy-version', '--policy-arn', arn, '--version-id', 'v2'),
      'NoSuchEntity',
      'a version other than v1',
    )

    const arnsOf = async (...args: string[]) =>
      ok<{ Policies: Policy[] }>(
        t,
        await root('iam', 'list-policies', ...args),
        'list-policies',
      ).Policies.map((p) => p.Arn)
    t.ok((await arnsOf('--scope', 'Local')).includes(arn), 'list-policies --scope Local')
    const builtin = await arnsOf('--scope', 'AWS')
    t.notOk(builtin.includes(arn), '--scope AWS lists only the built-in policies')
    t.ok(builtin.length > 0, 'there are built-in policies')
    t.notOk(
      (await arnsOf('--scope', 'Local', '--only-attached')).includes(arn),
      '--only-attached leaves out a policy attached to no one',
    )

    ok(
      t,
      await root('iam', 'attach-user-policy', '--user-name', 'alice', '--policy-arn', arn),
      'attach-user-policy',
    )
    const attached = ok<{ AttachedPolicies: { PolicyName: string; PolicyArn: string }[] }>(
      t,
      await root('iam', 'list-attached-user-policies', '--user-name', 'alice'),
      'list-attached-user-policies',
    )
    t.same(attached.AttachedPolicies, [{ PolicyName: 'team-read', PolicyArn: arn }])
    t.ok((await arnsOf('--scope', 'Local', '--only-attached')).includes(arn), 'now attached')
    const counted = ok<{ Policy: Policy }>(
      t,
      await root('iam', 'get-policy', '--policy-arn', arn),
      'get-policy when attached',
    )
    t.equal(counted.Policy.AttachmentCount, 1)

    ok(
      t,
      await root('iam', 'detach-user-policy', '--user-name', 'alice', '--policy-arn', arn),
      'detach-user-policy',
    )
    const detached = ok<{ AttachedPolicies: unknown[] }>(
      t,
      await root('iam', 'list-attached-user-policies', '--user-name', 'alice'),
      'list-attached-user-policies after the detach',
    )
    t.same(detached.AttachedPolicies, [])

    ok(t, await root('iam', 'delete-policy', '--policy-arn', arn), 'delete-policy')
    fails(
      t,
      await root('iam', 'get-policy', '--policy-arn', arn),
      'NoSuchEntity',
      'get-policy of a deleted policy',
    )
  })

  await t.test('delete-user', async (t) => {
    ok(t, await root('iam', 'delete-user', '--user-name', 'alice'), 'delete-user')
    fails(
      t,
      await root('iam', 'get-user', '--user-name', 'alice'),
      'NoSuchEntity',
      'get-user of a deleted user',
    )
    const listed = ok<{ Users: User[] }>(t, await root('iam', 'list-users'), 'list-users')
    t.notOk(
      listed.Users.some((u) => u.UserName === 'alice'),
      'list-users no longer shows alice',
    )
  })

  await t.test('STS: caller identity and assumed roles', async (t) => {
    const rootId = ok<Identity>(
      t,
      await root('sts', 'get-caller-identity'),
      'get-caller-identity as root',
    )
    t.match(rootId.Account, /^\d{12}$/)
    t.equal(rootId.Arn, `arn:aws:iam::${rootId.Account}:root`)

    ok(t, await root('iam', 'create-user', '--user-name', 'bob'), 'create-user bob')
    const key = ok<{ AccessKey: AccessKey }>(
      t,
      await root('iam', 'create-access-key', '--user-name', 'bob'),
      'create-access-key for bob',
    ).AccessKey
    const bob: Creds = { accessKeyId: key.AccessKeyId, secretAccessKey: key.SecretAccessKey }
    // observer: reads in the project, so the session below may list buckets (s3-user could not).
    await bindRole(endpoint, ROOT, 'bob', 'observer', 'default')

    const bobId = ok<Identity>(t, await run(bob, 'sts', 'get-caller-identity'), 'bob is known')
    t.equal(bobId.Arn, `arn:aws:iam::${rootId.Account}:user/bob`)
    t.equal(bobId.Account, rootId.Account)

    const roleArgs = [
      'sts',
      'assume-role',
      '--role-arn',
      'arn:aws:iam::000000000000:role/any',
      '--role-session-name',
      's1',
    ]
    const before = Date.now()
    const assumed = ok<AssumeRole>(
      t,
      await run(bob, ...roleArgs, '--duration-seconds', '900'),
      'assume-role as bob',
    )
    const temp = assumed.Credentials
    t.type(temp.AccessKeyId, 'string')
    t.type(temp.SecretAccessKey, 'string')
    t.ok(temp.SessionToken.length > 0, 'a session token')
    t.ok(Date.parse(temp.Expiration) > before, 'the credentials expire after they were asked for')
    t.type(assumed.AssumedRoleUser.Arn, 'string')
    t.type(assumed.AssumedRoleUser.AssumedRoleId, 'string')
    t.equal(assumed.PackedPolicySize, undefined, 'no PackedPolicySize without a policy')

    fails(
      t,
      await run(bob, ...roleArgs, '--duration-seconds', '43201'),
      'ValidationError',
      'DurationSeconds over 43200',
    )
    const narrowed = ok<AssumeRole>(
      t,
      await run(
        bob,
        ...roleArgs,
        '--duration-seconds',
        '900',
        '--policy',
        JSON.stringify(SESSION_POLICY),
      ),
      'assume-role with a session policy',
    )
    t.type(narrowed.PackedPolicySize, 'number', 'PackedPolicySize with a policy')

    const session: Creds = {
      accessKeyId: temp.AccessKeyId,
      secretAccessKey: temp.SecretAccessKey,
      sessionToken: temp.SessionToken,
    }
    ok(t, await run(session, 's3api', 'list-buckets'), 'list-buckets with the session')
    const sessionId = ok<Identity>(
      t,
      await run(session, 'sts', 'get-caller-identity'),
      'get-caller-identity with the session',
    )
    t.equal(sessionId.Arn, assumed.AssumedRoleUser.Arn, 'the session is the assumed role')
    t.equal(sessionId.Account, rootId.Account)
    fails(
      t,
      await run(session, ...roleArgs, '--duration-seconds', '900'),
      'AccessDenied',
      'assume-role with temporary credentials',
    )
    fails(
      t,
      await run(session, 'iam', 'list-users'),
      'AccessDenied',
      'list-users with temporary credentials',
    )

    ok(t, await root('iam', 'delete-user', '--user-name', 'bob'), 'delete-user bob')
  })
})
