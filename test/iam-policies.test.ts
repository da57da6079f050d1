/**
 * Policies end to end (design §7): identity policies with policy variables and conditions,
 * managed policies attached and detached, explicit Deny, bucket policies (validation, size
 * limit, default deny, no lock-out, aws:SourceIp), anonymous access, guardrails, the limits of
 * role administration, and what the gateway log and the audit log record about it all.
 *
 * One real cluster for the file; every request goes over HTTP, through @aws-sdk/client-s3, the
 * signed admin API, or plain `fetch` for anonymous requests. Each case checks both sides: what
 * is allowed works, and what is refused answers the exact error code and HTTP status.
 */
import { readFile } from 'node:fs/promises'
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  DeletePublicAccessBlockCommand,
  GetBucketPolicyCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import t, { type Test } from 'tap'
import {
  type AdminCredentials,
  adminCall,
  createProject,
  createUserWithKey,
} from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { bodyBytes, s3Client, s3Fault, uniqueBucket } from './harness/s3.ts'

const PROJECT = 'alpha'

/** `${aws:username}` as policy text (not a template placeholder). */
const USERNAME = `\${aws:username}`

type Doc = { Version: string; Statement: object[] }

const doc = (...statements: object[]): Doc => ({ Version: '2012-10-17', Statement: statements })

/** Asserts that `run` fails with S3 error `code` and HTTP `status`; answers the fault. */
async function refused(
  t: Test,
  run: Promise<unknown>,
  code: string,
  status: number,
  what: string,
): Promise<{ code: string; status: number; message: string; requestId: string }> {
  try {
    await run
  } catch (err) {
    const f = s3Fault(err)
    t.same({ code: f.code, status: f.status }, { code, status }, `${what}: ${code} ${status}`)
    const requestId = (err as { $metadata?: { requestId?: string } }).$metadata?.requestId ?? ''
    return { ...f, requestId }
  }
  t.fail(`${what}: succeeded, expected ${code} ${status}`)
  return { code: '', status: 0, message: '', requestId: '' }
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

/** Whether an S3 call succeeds (for polling); any error other than AccessDenied throws. */
async function succeeds(run: Promise<unknown>): Promise<boolean> {
  try {
    await run
    return true
  } catch (err) {
    const f = s3Fault(err)
    if (f.code === 'AccessDenied' && f.status === 403) return false
    throw err
  }
}

/** Repeats `probe` until it returns true (identity caches), for at most a few seconds. */
async function eventually(probe: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    if (await probe()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`never happened: ${what}`)
}

/** The text of an object read through the SDK. */
async function text(s3: S3Client, Bucket: string, Key: string): Promise<string> {
  const r = await s3.send(new GetObjectCommand({ Bucket, Key }))
  return (await bodyBytes(r.Body)).toString('utf8')
}

/** The `<Code>` of an S3/IAM XML error body. */
function xmlCode(body: string): string | undefined {
  return /<Code>([^<]*)<\/Code>/.exec(body)?.[1]
}

t.test('identity, managed and bucket policies, guardrails and role limits', async (t) => {
  const cluster = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const gateway = cluster.gateways[0]!
  const endpoint = gateway.endpoint
  await createProject(endpoint, ROOT, PROJECT)

  const account = await adminCall(endpoint, ROOT, 'GET', '/account')
  t.equal(account.status, 200, 'GET /account')
  const accountId = account.body.id as string
  t.match(accountId, /^\S+$/, 'the account has an id')
  t.equal(account.body.policyMaxBytes, 2048, 'the default policy size limit is 2048 bytes')
  const userArn = (name: string) => `arn:aws:iam::${accountId}:user/${name}`

  /** A user with `roles` in alpha and a key for alpha, and an S3 client signing with it. */
  const user = async (name: string, roles: { role: string; project?: string }[]) => {
    const creds = await createUserWithKey(endpoint, ROOT, name, PROJECT, roles)
    return { creds, s3: s3Client(endpoint, { credentials: creds }) }
  }
  const admin = (
    creds: AdminCredentials,
    method: string,
    path: string,
    body?: unknown,
    // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the route answers
  ): Promise<{ status: number; body: any }> => adminCall(endpoint, creds, method, path, body)

  // Buckets of alpha are made by its project administrator (root's would land in 'default').
  const builder = await user('builder', [{ role: 'project-admin', project: PROJECT }])
  const newBucket = async (prefix: string): Promise<string> => {
    const name = uniqueBucket(prefix)
    await builder.s3.send(new CreateBucketCommand({ Bucket: name }))
    return name
  }
  const put = (s3: S3Client, Bucket: string, Key: string, Body = Key) =>
    s3.send(new PutObjectCommand({ Bucket, Key, Body }))

  await t.test(
    'identity policy with the aws:username variable and an s3:prefix condition',
    async (t) => {
      const bucket = await newBucket('home')
      const homes = doc(
        {
          Sid: 'OwnHome',
          Effect: 'Allow',
          Action: ['s3:PutObject', 's3:GetObject'],
          Resource: [`arn:aws:s3:::${bucket}/home/${USERNAME}/*`],
        },
        {
          Sid: 'ListOwnHome',
          Effect: 'Allow',
          Action: 's3:ListBucket',
          Resource: `arn:aws:s3:::${bucket}`,
          Condition: { StringLike: { 's3:prefix': `home/${USERNAME}/*` } },
        },
      )
      const alice = await user('alice', [{ role: 's3-user', project: PROJECT }])
      const bob = await user('bob', [{ role: 's3-user', project: PROJECT }])
      await put(builder.s3, bucket, 'top.txt', 'top')
      await put(builder.s3, bucket, 'home/bob/seed.txt', 'bob seed')
      await put(builder.s3, bucket, 'home/alice/seed.txt', 'alice seed')

      // Without a policy an s3-user can do nothing.
      await refused(
        t,
        alice.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'home/alice/seed.txt' })),
        'AccessDenied',
        403,
        'alice reads her home before any policy',
      )
      for (const name of ['alice', 'bob']) {
        const r = await admin(ROOT, 'PUT', `/users/${name}/policies/homes`, { document: homes })
        t.equal(r.status, 204, `PUT the inline policy of ${name}`)
      }
      const stored = await admin(ROOT, 'GET', '/users/alice/policies/homes')
      t.equal(stored.status, 200, 'GET the inline policy')
      t.same(stored.body.document, homes, 'the stored inline policy is the one put')

      await allowed(
        t,
        put(alice.s3, bucket, 'home/alice/notes.txt', 'mine'),
        'alice puts in her home',
      )
      t.equal(await text(alice.s3, bucket, 'home/alice/notes.txt'), 'mine', 'alice reads it back')
      t.equal(await text(alice.s3, bucket, 'home/alice/seed.txt'), 'alice seed', 'and the seed')
      await refused(
        t,
        put(alice.s3, bucket, 'home/bob/intruder.txt'),
        'AccessDenied',
        403,
        "alice puts in bob's home",
      )
      await refused(
        t,
        alice.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'home/bob/seed.txt' })),
        'AccessDenied',
        403,
        "alice reads bob's object",
      )
      await refused(
        t,
        put(alice.s3, bucket, 'top-alice.txt'),
        'AccessDenied',
        403,
        'alice puts at the top',
      )
      await refused(
        t,
        alice.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'top.txt' })),
        'AccessDenied',
        403,
        'alice reads at the top',
      )
      // A home named like the user but one level off does not match.
      await refused(
        t,
        put(alice.s3, bucket, 'home/alice2/x.txt'),
        'AccessDenied',
        403,
        'alice puts in home/alice2/',
      )

      const listed = await allowed(
        t,
        alice.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'home/alice/' })),
        'alice lists home/alice/',
      )
      t.same(
        (listed?.Contents ?? []).map((o) => o.Key).sort(),
        ['home/alice/notes.txt', 'home/alice/seed.txt'],
        'her listing holds her objects only',
      )
      await refused(
        t,
        alice.s3.send(new ListObjectsV2Command({ Bucket: bucket })),
        'AccessDenied',
        403,
        'alice lists without a prefix',
      )
      await refused(
        t,
        alice.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'home/bob/' })),
        'AccessDenied',
        403,
        'alice lists home/bob/',
      )
      await refused(
        t,
        alice.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'home/' })),
        'AccessDenied',
        403,
        'alice lists home/',
      )

      // The same document means bob's home for bob.
      await allowed(t, put(bob.s3, bucket, 'home/bob/notes.txt', 'his'), 'bob puts in his home')
      t.equal(await text(bob.s3, bucket, 'home/bob/seed.txt'), 'bob seed', 'bob reads his seed')
      await refused(
        t,
        bob.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'home/alice/notes.txt' })),
        'AccessDenied',
        403,
        "bob reads alice's object",
      )
      await allowed(
        t,
        bob.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'home/bob/' })),
        'bob lists home/bob/',
      )
    },
  )

  await t.test('managed policies: built-in readonly, a custom one, detaching', async (t) => {
    const bucket = await newBucket('managed')
    await put(builder.s3, bucket, 'data.txt', 'data')
    const mia = await user('mia', [{ role: 's3-user', project: PROJECT }])
    const read = () => mia.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'data.txt' }))
    const write = () => put(mia.s3, bucket, 'mia.txt', 'mia')

    await refused(t, read(), 'AccessDenied', 403, 'mia reads with no policy')
    const attach = await admin(ROOT, 'POST', '/users/mia/attached', { policy: 'readonly' })
    t.equal(attach.status, 204, 'attach readonly')
    await eventually(() => succeeds(read()), 'readonly reaches the gateway')
    t.equal(await text(mia.s3, bucket, 'data.txt'), 'data', 'readonly: mia reads')
    await allowed(
      t,
      mia.s3.send(new ListObjectsV2Command({ Bucket: bucket })),
      'readonly: mia lists',
    )
    await refused(t, write(), 'AccessDenied', 403, 'readonly: mia writes')
    await refused(
      t,
      mia.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'data.txt' })),
      'AccessDenied',
      403,
      'readonly: mia deletes',
    )

    const name = `put-${bucket}`
    const custom = doc({
      Effect: 'Allow',
      Action: 's3:PutObject',
      Resource: `arn:aws:s3:::${bucket}/*`,
    })
    const created = await admin(ROOT, 'POST', '/policies', {
      name,
      document: custom,
      description: 'uploads into one bucket',
    })
    t.equal(created.status, 201, 'POST /policies creates the managed policy')
    t.equal(created.body.name, name, 'it answers the policy')
    t.equal(created.body.builtin, false, 'a custom policy is not built in')
    t.same(created.body.document, custom, 'with its document')
    const attached = await admin(ROOT, 'POST', '/users/mia/attached', { policy: name })
    t.equal(attached.status, 204, 'attach the custom policy')
    const list = await admin(ROOT, 'GET', '/users/mia/attached')
    t.same(
      list.body.attached.map((a: { name: string }) => a.name).sort(),
      [name, 'readonly'].sort(),
      'mia has both policies attached',
    )
    await eventually(() => succeeds(write()), 'the custom policy reaches the gateway')
    t.equal(await text(mia.s3, bucket, 'mia.txt'), 'mia', 'custom + readonly: mia reads her upload')
    await refused(
      t,
      mia.s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: 'tagged.txt', Body: 'x', Tagging: 'a=b' }),
      ),
      'AccessDenied',
      403,
      'tags with an upload need s3:PutObjectTagging as well',
    )
    await refused(
      t,
      mia.s3.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'tagged.bin', Tagging: 'a=b' }),
      ),
      'AccessDenied',
      403,
      'so does a multipart upload with tags',
    )
    await refused(
      t,
      builder.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'tagged.txt' })),
      'NotFound',
      404,
      'the refused upload left nothing',
    )
    const other = await newBucket('other')
    await refused(
      t,
      put(mia.s3, other, 'mia.txt'),
      'AccessDenied',
      403,
      'the custom policy does not reach another bucket',
    )

    const detach = await admin(ROOT, 'DELETE', `/users/mia/attached/${name}`)
    t.equal(detach.status, 204, 'detach the custom policy')
    await eventually(async () => !(await succeeds(write())), 'detaching ends the uploads')
    await refused(t, write(), 'AccessDenied', 403, 'after detaching: mia writes')
    t.equal(await text(mia.s3, bucket, 'data.txt'), 'data', 'after detaching: readonly still reads')

    const detach2 = await admin(ROOT, 'DELETE', '/users/mia/attached/readonly')
    t.equal(detach2.status, 204, 'detach readonly')
    await eventually(async () => !(await succeeds(read())), 'detaching ends the reads')
    await refused(t, read(), 'AccessDenied', 403, 'with nothing attached: mia reads')
  })

  await t.test('an explicit Deny wins over the s3-admin role', async (t) => {
    const bucket = await newBucket('deny')
    const sam = await user('sam', [{ role: 's3-admin', project: PROJECT }])
    await allowed(t, put(sam.s3, bucket, 'a.txt'), 's3-admin puts')
    await allowed(
      t,
      sam.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'a.txt' })),
      's3-admin deletes before the Deny',
    )
    const r = await admin(ROOT, 'PUT', '/users/sam/policies/no-delete', {
      document: doc({
        Sid: 'NoDelete',
        Effect: 'Deny',
        Action: 's3:DeleteObject',
        Resource: 'arn:aws:s3:::*',
      }),
    })
    t.equal(r.status, 204, 'PUT the inline Deny')
    await allowed(t, put(sam.s3, bucket, 'b.txt', 'bee'), 's3-admin still puts')
    t.equal(await text(sam.s3, bucket, 'b.txt'), 'bee', 's3-admin still reads')
    await refused(
      t,
      sam.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'b.txt' })),
      'AccessDenied',
      403,
      's3-admin deletes under the Deny',
    )
    t.equal(await text(builder.s3, bucket, 'b.txt'), 'bee', 'the object is still there')
  })

  await t.test('bucket policy: round trip, validation and the size limit', async (t) => {
    const bucket = await newBucket('bp')
    const other = await newBucket('bp-other')
    const policy = doc({
      Sid: 'ReadAll',
      Effect: 'Allow',
      Principal: { AWS: [userArn('builder')] },
      Action: ['s3:GetObject'],
      Resource: [`arn:aws:s3:::${bucket}/*`],
    })
    const get = () => builder.s3.send(new GetBucketPolicyCommand({ Bucket: bucket }))
    await refused(t, get(), 'NoSuchBucketPolicy', 404, 'GET before any policy')

    await allowed(
      t,
      builder.s3.send(
        new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }),
      ),
      'PUT the bucket policy',
    )
    const got = await get()
    t.same(JSON.parse(got.Policy ?? ''), policy, 'GET answers the document')
    await allowed(
      t,
      builder.s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket })),
      'DELETE the bucket policy',
    )
    await refused(t, get(), 'NoSuchBucketPolicy', 404, 'GET after DELETE')

    const putRaw = (Policy: string) =>
      builder.s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy }))
    const bad = await refused(
      t,
      putRaw('{"Version": "2012-10-17", "Statement": [ '),
      'MalformedPolicy',
      400,
      'malformed JSON',
    )
    t.ok(bad.message.trim().length > 0, `malformed JSON has a message: ${bad.message}`)
    const elsewhere = await refused(
      t,
      putRaw(
        JSON.stringify(
          doc({
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:GetObject',
            Resource: `arn:aws:s3:::${other}/*`,
          }),
        ),
      ),
      'MalformedPolicy',
      400,
      'a resource of another bucket',
    )
    t.ok(elsewhere.message.trim().length > 0, `it says why: ${elsewhere.message}`)
    await refused(t, get(), 'NoSuchBucketPolicy', 404, 'refused policies are not stored')

    // Over the default limit of 2048 bytes of minified JSON, well under 8192.
    const big = doc({
      Sid: 'ManyPrefixes',
      Effect: 'Allow',
      Principal: { AWS: [userArn('builder')] },
      Action: ['s3:GetObject'],
      Resource: Array.from({ length: 90 }, (_, i) => `arn:aws:s3:::${bucket}/prefix-${i}/*`),
    })
    const bigText = JSON.stringify(big)
    t.ok(
      Buffer.byteLength(bigText) > 2048 && Buffer.byteLength(bigText) < 8192,
      `the big policy is ${Buffer.byteLength(bigText)} bytes`,
    )
    const tooBig = await refused(
      t,
      putRaw(bigText),
      'MalformedPolicy',
      400,
      'a policy over 2048 bytes',
    )
    t.match(tooBig.message, /size/i, `it names the size: ${tooBig.message}`)
    await refused(t, get(), 'NoSuchBucketPolicy', 404, 'the big policy was not stored')

    const raise = await admin(ROOT, 'PATCH', '/account', { policyMaxBytes: 8192 })
    t.equal(raise.status, 200, 'PATCH /account raises the limit')
    t.equal(raise.body.policyMaxBytes, 8192, 'to 8192 bytes')
    try {
      await allowed(t, putRaw(bigText), 'the big policy under the raised limit')
      t.same(JSON.parse((await get()).Policy ?? ''), big, 'and GET answers it')
    } finally {
      const lower = await admin(ROOT, 'PATCH', '/account', { policyMaxBytes: 2048 })
      t.equal(lower.status, 200, 'the limit is back to 2048')
    }
  })

  await t.test('a bucket policy means default deny; admins are never locked out', async (t) => {
    const bucket = await newBucket('dd')
    const pat = await user('pat', [{ role: 's3-user', project: PROJECT }])
    await put(builder.s3, bucket, 'obj.txt', 'payload')
    const adminGet = () => builder.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'obj.txt' }))
    const patGet = () => pat.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'obj.txt' }))
    const policyFor = (cidr: string) =>
      JSON.stringify(
        doc({
          Sid: 'PatFromNet',
          Effect: 'Allow',
          Principal: { AWS: userArn('pat') },
          Action: 's3:GetObject',
          Resource: `arn:aws:s3:::${bucket}/*`,
          Condition: { IpAddress: { 'aws:SourceIp': cidr } },
        }),
      )
    const putPolicy = (cidr: string) =>
      builder.s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: policyFor(cidr) }))

    t.equal(
      await text(builder.s3, bucket, 'obj.txt'),
      'payload',
      'project-admin reads with no policy',
    )
    await refused(t, patGet(), 'AccessDenied', 403, 's3-user reads with no policy')

    await allowed(t, putPolicy('127.0.0.0/8'), 'project-admin PUTs the policy')
    await allowed(
      t,
      builder.s3.send(new GetBucketPolicyCommand({ Bucket: bucket })),
      'project-admin GETs the policy it is not named in',
    )
    await refused(
      t,
      adminGet(),
      'AccessDenied',
      403,
      'project-admin reads an object under the policy',
    )
    await refused(
      t,
      put(builder.s3, bucket, 'new.txt'),
      'AccessDenied',
      403,
      'project-admin writes under the policy',
    )
    t.equal(
      await text(pat.s3, bucket, 'obj.txt'),
      'payload',
      's3-user reads from 127.0.0.0/8 as the policy allows',
    )
    await refused(
      t,
      pat.s3.send(new ListObjectsV2Command({ Bucket: bucket })),
      'AccessDenied',
      403,
      's3-user lists: the policy allows only GetObject',
    )
    await refused(
      t,
      pat.s3.send(new GetBucketPolicyCommand({ Bucket: bucket })),
      'AccessDenied',
      403,
      's3-user reads the bucket policy',
    )

    await allowed(t, putPolicy('10.0.0.0/8'), 'project-admin replaces the policy (10.0.0.0/8)')
    await refused(t, patGet(), 'AccessDenied', 403, 's3-user reads from outside 10.0.0.0/8')
    await refused(t, adminGet(), 'AccessDenied', 403, 'project-admin still cannot read')

    await allowed(
      t,
      builder.s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket })),
      'project-admin DELETEs the policy',
    )
    t.equal(await text(builder.s3, bucket, 'obj.txt'), 'payload', 'without it the role reads again')
    await refused(t, patGet(), 'AccessDenied', 403, 'and the s3-user is back to nothing')
  })

  await t.test('anonymous requests', async (t) => {
    const bucket = await newBucket('anon')
    await put(builder.s3, bucket, 'public.txt', 'hello world')
    const url = `${endpoint}/${bucket}/public.txt`

    const before = await fetch(url)
    const beforeBody = await before.text()
    t.equal(before.status, 403, 'unsigned GET without a policy: 403')
    t.equal(xmlCode(beforeBody), 'AccessDenied', 'unsigned GET without a policy: AccessDenied')
    t.match(before.headers.get('content-type') ?? '', /xml/, 'as S3 XML')

    // New buckets block public policies, as on AWS since April 2023: lift the block first.
    const publicRead = JSON.stringify(
      doc({
        Sid: 'PublicRead',
        Effect: 'Allow',
        Principal: '*',
        Action: 's3:GetObject',
        Resource: `arn:aws:s3:::${bucket}/*`,
      }),
    )
    await refused(
      t,
      builder.s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: publicRead })),
      'AccessDenied',
      403,
      'a public policy while the bucket blocks public policies',
    )
    await builder.s3.send(new DeletePublicAccessBlockCommand({ Bucket: bucket }))
    await builder.s3.send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: JSON.stringify(
          doc({
            Sid: 'PublicRead',
            Effect: 'Allow',
            Principal: '*',
            Action: 's3:GetObject',
            Resource: `arn:aws:s3:::${bucket}/*`,
          }),
        ),
      }),
    )
    const after = await fetch(url)
    t.equal(after.status, 200, 'unsigned GET with a public-read policy: 200')
    t.equal(await after.text(), 'hello world', 'and the object')

    const write = await fetch(`${endpoint}/${bucket}/anon.txt`, { method: 'PUT', body: 'anon' })
    t.equal(write.status, 403, 'unsigned PUT: 403')
    t.equal(xmlCode(await write.text()), 'AccessDenied', 'unsigned PUT: AccessDenied')
    const overwrite = await fetch(url, { method: 'PUT', body: 'defaced' })
    t.equal(overwrite.status, 403, 'unsigned overwrite: 403')
    await overwrite.text()
    const list = await fetch(`${endpoint}/${bucket}?list-type=2`)
    t.equal(list.status, 403, 'unsigned listing: 403')
    t.equal(xmlCode(await list.text()), 'AccessDenied', 'unsigned listing: AccessDenied')
    t.equal(await text(builder.s3, bucket, 'public.txt'), 'hello world', 'the object is unchanged')

    const iam = await fetch(`${endpoint}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=ListUsers&Version=2010-05-08',
    })
    const iamBody = await iam.text()
    t.equal(iam.status, 403, 'unsigned IAM ListUsers: 403')
    t.equal(
      xmlCode(iamBody),
      'MissingAuthenticationToken',
      'unsigned IAM: MissingAuthenticationToken',
    )
    t.notMatch(iamBody, /builder/, 'and no user names')

    const adm = await fetch(`${endpoint}/_tessera/admin/v1/users`)
    const admBody = await adm.text()
    t.equal(adm.status, 403, 'unsigned admin GET /users: 403')
    t.equal(JSON.parse(admBody).error?.code, 'AccessDenied', 'unsigned admin: AccessDenied')
    t.notMatch(admBody, /builder/, 'and no user names')
  })

  await t.test('guardrails: denied actions and offered actions', async (t) => {
    const bucket = await newBucket('guard')
    const gina = await user('gina', [{ role: 's3-admin', project: PROJECT }])
    const olga = await user('olga', [{ role: 'owner' }])
    const root = s3Client(endpoint)
    const del = (s3: S3Client, Key: string) =>
      s3.send(new DeleteObjectCommand({ Bucket: bucket, Key }))
    const tag = (s3: S3Client) =>
      s3.send(
        new PutBucketTaggingCommand({
          Bucket: bucket,
          Tagging: { TagSet: [{ Key: 'team', Value: 'storage' }] },
        }),
      )
    for (const k of ['g1.txt', 'g2.txt', 'g3.txt', 'g4.txt']) await put(gina.s3, bucket, k)
    await allowed(t, del(gina.s3, 'g1.txt'), 's3-admin deletes before the guardrail')
    await allowed(t, tag(olga.s3), 'owner tags before the guardrail')

    try {
      const deny = await admin(ROOT, 'PATCH', '/account', {
        guardrails: { deniedActions: ['s3:DeleteObject'] },
      })
      t.equal(deny.status, 200, 'PATCH /account sets deniedActions')
      t.same(deny.body.guardrails, { deniedActions: ['s3:DeleteObject'] }, 'the account shows it')
      await refused(
        t,
        del(gina.s3, 'g2.txt'),
        'AccessDenied',
        403,
        's3-admin deletes under the guardrail',
      )
      await allowed(t, put(gina.s3, bucket, 'g5.txt'), 's3-admin still puts')
      await allowed(t, del(olga.s3, 'g2.txt'), 'the owner user still deletes')
      await refused(
        t,
        gina.s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'g2.txt' })),
        'NoSuchKey',
        404,
        'the owner really deleted it',
      )

      const offered = [
        's3:GetObject',
        's3:PutObject',
        's3:ListBucket',
        's3:ListAllMyBuckets',
        's3:CreateBucket',
        's3:DeleteObject',
      ]
      const offer = await admin(ROOT, 'PATCH', '/account', {
        guardrails: { offeredActions: offered },
      })
      t.equal(offer.status, 200, 'PATCH /account sets offeredActions')
      t.same(
        offer.body.guardrails,
        { deniedActions: ['s3:DeleteObject'], offeredActions: offered },
        'deniedActions is kept when only offeredActions is given',
      )
      await refused(t, tag(olga.s3), 'AccessDenied', 403, 'the owner user tags: not offered')
      await refused(t, tag(gina.s3), 'AccessDenied', 403, 's3-admin tags: not offered')
      await refused(t, tag(root), 'AccessDenied', 403, 'the root credential tags: not offered')
      await allowed(t, put(olga.s3, bucket, 'o.txt', 'owner'), 'the owner user puts: offered')
      t.equal(await text(gina.s3, bucket, 'o.txt'), 'owner', 's3-admin reads: offered')
      await allowed(
        t,
        gina.s3.send(new ListObjectsV2Command({ Bucket: bucket })),
        's3-admin lists: offered',
      )
      await refused(
        t,
        del(gina.s3, 'g3.txt'),
        'AccessDenied',
        403,
        's3-admin deletes: offered but still denied',
      )
      await allowed(t, del(olga.s3, 'g3.txt'), 'the owner user deletes: offered, owner exempt')
    } finally {
      const reset = await admin(ROOT, 'PATCH', '/account', {
        guardrails: { deniedActions: [], offeredActions: null },
      })
      t.equal(reset.status, 200, 'the guardrails are reset')
      t.same(reset.body.guardrails, { deniedActions: [] }, 'to nothing')
    }
    await allowed(t, tag(olga.s3), 'after the reset the owner user tags')
    await allowed(t, tag(gina.s3), 'and the s3-admin tags')
    await allowed(t, del(gina.s3, 'g4.txt'), 'and the s3-admin deletes')
  })

  await t.test('role administration: what user-admin and s3-user may do', async (t) => {
    const uma = await user('uma', [{ role: 'user-admin' }])
    const sue = await user('sue', [{ role: 's3-user', project: PROJECT }])

    const mk = await admin(uma.creds, 'POST', '/users', { name: 'newbie' })
    t.equal(mk.status, 201, 'user-admin creates a user')
    const bind = await admin(uma.creds, 'POST', '/users/newbie/roles', {
      role: 's3-user',
      project: PROJECT,
    })
    t.equal(bind.status, 200, 'user-admin binds a project role')
    t.same(bind.body.roles, [{ role: 's3-user', project: PROJECT }], 'the user holds it')
    const key = await admin(uma.creds, 'POST', '/users/newbie/keys', { project: PROJECT })
    t.equal(key.status, 201, 'user-admin issues a key to the user')
    t.equal(key.body.key?.user, 'newbie', 'the key is the new user’s')
    const newbie = { accessKeyId: key.body.accessKeyId, secretAccessKey: key.body.secretAccessKey }
    const who = await admin(newbie, 'GET', '/whoami')
    t.equal(who.status, 200, 'the issued key authenticates')
    t.equal(who.body.name, 'newbie', 'as the new user')
    t.equal(who.body.project, PROJECT, 'bound to alpha')

    for (const role of ['owner', 'admin']) {
      const r = await admin(uma.creds, 'POST', '/users/newbie/roles', { role })
      t.equal(r.status, 403, `user-admin grants ${role}: 403`)
      t.equal(r.body?.error?.code, 'AccessDenied', `user-admin grants ${role}: AccessDenied`)
    }
    const self = await admin(uma.creds, 'POST', '/users/uma/roles', { role: 'owner' })
    t.equal(self.status, 403, 'user-admin promotes itself to owner: 403')
    const roles = await admin(ROOT, 'GET', '/users/newbie/roles')
    t.same(roles.body.roles, [{ role: 's3-user', project: PROJECT }], 'no account role was granted')
    const umaRoles = await admin(ROOT, 'GET', '/users/uma/roles')
    t.same(umaRoles.body.roles, [{ role: 'user-admin' }], 'nor to the user-admin itself')

    const sueMk = await admin(sue.creds, 'POST', '/users', { name: 'sues-friend' })
    t.equal(sueMk.status, 403, 's3-user creates a user: 403')
    t.equal(sueMk.body?.error?.code, 'AccessDenied', 's3-user creates a user: AccessDenied')
    const sueKey = await admin(sue.creds, 'POST', '/users/newbie/keys', { project: PROJECT })
    t.equal(sueKey.status, 403, 's3-user issues a key to another user: 403')
    t.equal(sueKey.body?.error?.code, 'AccessDenied', 'AccessDenied')
    const sueKey2 = await admin(sue.creds, 'POST', '/keys', { user: 'newbie', project: PROJECT })
    t.equal(sueKey2.status, 403, 's3-user issues a key to another user via /keys: 403')
    const sueBind = await admin(sue.creds, 'POST', '/users/sue/roles', {
      role: 's3-admin',
      project: PROJECT,
    })
    t.equal(sueBind.status, 403, 's3-user binds itself a role: 403')
    const keys = await admin(ROOT, 'GET', '/users/newbie/keys')
    t.equal(keys.body.keys.length, 1, 'newbie still has only the key user-admin issued')

    const own = await admin(sue.creds, 'POST', '/keys', { project: PROJECT })
    t.equal(own.status, 201, 's3-user issues a key for itself')
    t.equal(own.body.key?.user, 'sue', 'the key is its own')
    t.equal(own.body.key?.project, PROJECT, 'for its project')
    const sue2 = { accessKeyId: own.body.accessKeyId, secretAccessKey: own.body.secretAccessKey }
    const sueWho = await admin(sue2, 'GET', '/whoami')
    t.equal(sueWho.status, 200, 'the self-issued key authenticates')
    t.equal(sueWho.body.name, 'sue', 'as sue')
  })

  await t.test('the gateway log gives each denial a reason; the audit log says who', async (t) => {
    const bucket = await newBucket('logs')
    const lee = await user('lee', [{ role: 's3-user', project: PROJECT }])
    const probe = `probe-${Date.now().toString(36)}.txt`
    const s3Denied = await refused(
      t,
      lee.s3.send(new GetObjectCommand({ Bucket: bucket, Key: probe })),
      'AccessDenied',
      403,
      'the denied S3 request',
    )
    const adminDenied = await admin(lee.creds, 'POST', '/users', { name: 'never-made' })
    t.equal(adminDenied.status, 403, 'the denied admin request')

    type Line = Record<string, unknown>
    const readLines = async (): Promise<Line[]> =>
      (await readFile(gateway.logPath, 'utf8'))
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Line]
          } catch {
            return []
          }
        })
    let s3Line: Line | undefined
    let adminLine: Line | undefined
    await eventually(async () => {
      const lines = await readLines()
      s3Line = lines.find(
        (l) => l.msg === 'access denied' && String(l.resource ?? '').endsWith(`/${probe}`),
      )
      adminLine = lines.find(
        (l) =>
          l.msg === 'access denied' &&
          l.action === 'iam:CreateUser' &&
          String(l.resource ?? '').endsWith(':user/never-made'),
      )
      return s3Line !== undefined && adminLine !== undefined
    }, 'the denials reach the gateway log')
    t.equal(s3Line?.action, 's3:GetObject', 'the S3 denial names the action')
    t.equal(s3Line?.resource, `arn:aws:s3:::${bucket}/${probe}`, 'and the resource')
    t.equal(s3Line?.principal, userArn('lee'), 'and the principal')
    t.equal(s3Line?.accessKeyId, lee.creds.accessKeyId, 'and the access key')
    t.match(s3Line?.reason, /\S/, `and a reason: ${String(s3Line?.reason)}`)
    if (s3Denied.requestId !== '') {
      t.equal(s3Line?.reqId, s3Denied.requestId, 'and the request id the client got')
    }
    t.match(adminLine?.reason, /\S/, `the admin denial has a reason: ${String(adminLine?.reason)}`)
    t.equal(adminLine?.principal, userArn('lee'), 'and the principal')

    const audit = await admin(ROOT, 'GET', '/audit')
    t.equal(audit.status, 200, 'GET /audit')
    type Entry = { who: string; action: string; target: string; detail?: Record<string, unknown> }
    const entries = audit.body.entries as Entry[]
    const has = (what: string, want: Partial<Entry>) =>
      t.ok(
        entries.some(
          (e) =>
            e.action === want.action &&
            e.who === want.who &&
            (want.target === undefined || e.target === want.target) &&
            (want.detail === undefined ||
              Object.entries(want.detail).every(([k, v]) => e.detail?.[k] === v)),
        ),
        `the audit log has ${what}`,
      )
    const bp = entries.filter((e) => e.action === 'PutBucketPolicy')
    t.ok(bp.length >= 5, `PutBucketPolicy is recorded (${bp.length} entries)`)
    t.ok(
      bp.every((e) => e.who === 'builder' && e.target.startsWith('bucket/')),
      'each by the project-admin, naming the bucket',
    )
    has('DeleteBucketPolicy by builder', { action: 'DeleteBucketPolicy', who: 'builder' })
    has('CreateUser newbie by uma', { action: 'CreateUser', who: 'uma', target: 'user/newbie' })
    has('BindRole s3-user to newbie by uma', {
      action: 'BindRole',
      who: 'uma',
      target: 'user/newbie',
      detail: { role: 's3-user', project: PROJECT },
    })
    has('CreateAccessKey for newbie by uma', {
      action: 'CreateAccessKey',
      who: 'uma',
      detail: { user: 'newbie' },
    })
    has('CreateAccessKey for sue by sue', {
      action: 'CreateAccessKey',
      who: 'sue',
      detail: { user: 'sue' },
    })
    has('BindRole owner to olga by root', {
      action: 'BindRole',
      who: 'root',
      target: 'user/olga',
      detail: { role: 'owner' },
    })
    has('PutUserPolicy on alice by root', {
      action: 'PutUserPolicy',
      who: 'root',
      target: 'user/alice',
      detail: { policy: 'homes' },
    })
    has('AttachUserPolicy on mia by root', {
      action: 'AttachUserPolicy',
      who: 'root',
      target: 'user/mia',
      detail: { policy: 'readonly' },
    })
    has('DetachUserPolicy on mia by root', {
      action: 'DetachUserPolicy',
      who: 'root',
      target: 'user/mia',
    })
    has('UpdateAccount by root', { action: 'UpdateAccount', who: 'root', target: 'account' })
    t.notOk(
      entries.some((e) => e.target === 'user/never-made' || e.target === 'user/sues-friend'),
      'refused changes are not in the audit log',
    )
    t.notOk(
      entries.some((e) => e.action === 'BindRole' && e.detail?.role === 'owner' && e.who === 'uma'),
      'nor the refused owner grant',
    )
  })
})
