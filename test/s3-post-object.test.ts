/**
 * POST Object (browser form uploads) against a real cluster: forms signed with a SigV4 policy
 * the way a web server would sign them, sent as multipart/form-data, then checked through
 * @aws-sdk/client-s3. Each policy condition's allowed and refused paths, the success_action_*
 * answers, streamed large files, and S3's exact error codes and messages.
 */
import { createHash, createHmac } from 'node:crypto'
import {
  CreateBucketCommand,
  DeletePublicAccessBlockCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
} from '@aws-sdk/client-s3'
import t, { type Test } from 'tap'
import { adminCall, createProject, createUserWithKey } from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { bodyBytes, bytes, s3Client, s3Fault, uniqueBucket } from './harness/s3.ts'

interface Key {
  accessKeyId: string
  secretAccessKey: string
}

const hmac = (k: string | Buffer, d: string) => createHmac('sha256', k).update(d).digest()

/**
 * The signature fields and policy of a form, as a server signs them: the caller's conditions
 * plus those covering the signature fields and the bucket.
 */
export function signForm(
  key: Key,
  bucket: string,
  conditions: unknown[],
  opts: { expiresInMs?: number; region?: string } = {},
): Record<string, string> {
  const now = new Date()
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
  const day = amzDate.slice(0, 8)
  const region = opts.region ?? 'us-east-1'
  const credential = `${key.accessKeyId}/${day}/${region}/s3/aws4_request`
  const policy = Buffer.from(
    JSON.stringify({
      expiration: new Date(now.getTime() + (opts.expiresInMs ?? 600_000)).toISOString(),
      conditions: [
        { bucket },
        { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' },
        { 'x-amz-credential': credential },
        { 'x-amz-date': amzDate },
        ...conditions,
      ],
    }),
  ).toString('base64')
  const signingKey = hmac(
    hmac(hmac(hmac(`AWS4${key.secretAccessKey}`, day), region), 's3'),
    'aws4_request',
  )
  return {
    'x-amz-algorithm': 'AWS4-HMAC-SHA256',
    'x-amz-credential': credential,
    'x-amz-date': amzDate,
    policy,
    'x-amz-signature': hmac(signingKey, policy).toString('hex'),
  }
}

interface Answer {
  status: number
  headers: Headers
  text: string
}

/** Posts a form with the file last, as browsers do. */
async function post(
  url: string,
  fields: Record<string, string>,
  file?: { data: Uint8Array; name?: string },
  headers: Record<string, string> = {},
): Promise<Answer> {
  const form = new FormData()
  for (const [k, v] of Object.entries(fields)) form.append(k, v)
  if (file) form.append('file', new Blob([file.data]), file.name ?? 'upload.bin')
  const r = await fetch(url, { method: 'POST', body: form, redirect: 'manual', headers })
  return { status: r.status, headers: r.headers, text: await r.text() }
}

const tag = (xml: string, name: string) =>
  new RegExp(`<${name}>([^<]*)</${name}>`)
    .exec(xml)?.[1]
    ?.replaceAll('&quot;', '"')
    .replaceAll('&apos;', "'")

function refused(
  t: Test,
  r: Answer,
  status: number,
  code: string,
  message?: string,
  what = code,
): void {
  t.equal(r.status, status, `${what}: HTTP ${status}`)
  t.equal(tag(r.text, 'Code'), code, `${what}: ${code}`)
  if (message !== undefined) t.equal(tag(r.text, 'Message'), message, `${what}: message`)
  else t.not(tag(r.text, 'Message') ?? '', '', `${what}: a message`)
}

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex')

t.test('POST Object on a 2-node cluster', async (t) => {
  const c = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = c.gateways[0]!.endpoint
  const s3 = s3Client(endpoint)
  t.teardown(() => s3.destroy())
  const bucket = uniqueBucket('forms')
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  const url = `${endpoint}/${bucket}`
  const get = async (key: string) =>
    bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body)

  await t.test('201 answers the PostResponse document; the object is stored', async (t) => {
    const data = bytes(5000, 7)
    const r = await post(
      url,
      {
        key: 'up/one.bin',
        success_action_status: '201',
        'x-amz-meta-color': 'blue',
        'Content-Type': 'image/png',
        ...signForm(ROOT, bucket, [
          ['starts-with', '$key', 'up/'],
          { success_action_status: '201' },
          ['eq', '$x-amz-meta-color', 'blue'],
          ['starts-with', '$Content-Type', 'image/'],
          ['content-length-range', 1, 10_000],
        ]),
      },
      { data },
    )
    t.equal(r.status, 201, r.text)
    t.equal(tag(r.text, 'Bucket'), bucket)
    t.equal(tag(r.text, 'Key'), 'up/one.bin')
    t.equal(tag(r.text, 'ETag'), `"${md5(data)}"`)
    t.equal(tag(r.text, 'Location'), `${endpoint}/${bucket}/up/one.bin`)
    t.same(await get('up/one.bin'), data, 'the bytes landed')
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'up/one.bin' }))
    t.equal(head.ContentType, 'image/png', 'Content-Type from the form')
    t.same(head.Metadata, { color: 'blue' }, 'metadata from the form')
  })

  await t.test('204 by default; the filename variable names the key', async (t) => {
    const data = Buffer.from('plain text body')
    const r = await post(
      url,
      {
        key: `files/$\{filename}`,
        acl: 'bucket-owner-full-control',
        ...signForm(ROOT, bucket, [
          ['starts-with', '$key', 'files/'],
          { acl: 'bucket-owner-full-control' },
        ]),
      },
      { data, name: 'notes.txt' },
    )
    t.equal(r.status, 204, r.text)
    t.equal(r.headers.get('etag'), `"${md5(data)}"`)
    t.equal(r.headers.get('location'), `${endpoint}/${bucket}/files/notes.txt`)
    t.same(await get('files/notes.txt'), data)
    // The acl field takes PutObject's x-amz-acl path: new buckets enforce bucket ownership.
    const acl = await post(
      url,
      {
        key: 'pub.txt',
        acl: 'public-read',
        ...signForm(ROOT, bucket, [{ key: 'pub.txt' }, { acl: 'public-read' }]),
      },
      { data },
    )
    refused(t, acl, 400, 'AccessControlListNotSupported', undefined, 'acl field like x-amz-acl')
  })

  await t.test('success_action_redirect answers 303 with bucket, key and etag', async (t) => {
    const data = Buffer.from('redirected')
    const r = await post(
      url,
      {
        key: 'r.txt',
        success_action_redirect: 'http://app.example/done?x=1',
        ...signForm(ROOT, bucket, [
          { key: 'r.txt' },
          ['starts-with', '$success_action_redirect', 'http://app.example/'],
        ]),
      },
      { data },
    )
    t.equal(r.status, 303, r.text)
    const loc = new URL(r.headers.get('location') ?? 'http://none/')
    t.equal(loc.origin + loc.pathname, 'http://app.example/done')
    t.equal(loc.searchParams.get('x'), '1')
    t.equal(loc.searchParams.get('bucket'), bucket)
    t.equal(loc.searchParams.get('key'), 'r.txt')
    t.equal(loc.searchParams.get('etag'), `"${md5(data)}"`)
  })

  await t.test('a large file streams into the store', async (t) => {
    const data = bytes(3 * 1024 * 1024 + 17, 9)
    const r = await post(
      url,
      { key: 'big.bin', ...signForm(ROOT, bucket, [{ key: 'big.bin' }]) },
      { data },
    )
    t.equal(r.status, 204, r.text)
    t.equal(r.headers.get('etag'), `"${md5(data)}"`)
    const back = await get('big.bin')
    t.equal(back.length, data.length)
    t.ok(back.equals(data), 'the bytes landed')
  })

  await t.test('versioned buckets answer the version id', async (t) => {
    const vb = uniqueBucket('formsv')
    await s3.send(new CreateBucketCommand({ Bucket: vb }))
    await s3.send(
      new PutBucketVersioningCommand({
        Bucket: vb,
        VersioningConfiguration: { Status: 'Enabled' },
      }),
    )
    const r = await post(
      `${endpoint}/${vb}`,
      { key: 'v', ...signForm(ROOT, vb, [{ key: 'v' }]) },
      { data: Buffer.from('v1') },
    )
    t.equal(r.status, 204, r.text)
    t.match(r.headers.get('x-amz-version-id') ?? '', /^[A-Za-z0-9_-]{32}$/)
  })

  await t.test('policy conditions refuse what they do not allow', async (t) => {
    const data = Buffer.from('0123456789ab')
    const big = await post(
      url,
      {
        key: 'c1',
        ...signForm(ROOT, bucket, [{ key: 'c1' }, ['content-length-range', 0, 10]]),
      },
      { data },
    )
    refused(t, big, 400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size')
    t.equal(tag(big.text, 'ProposedSize'), '12')
    t.equal(tag(big.text, 'MaxSizeAllowed'), '10')
    const huge = await post(
      url,
      {
        key: 'c2',
        ...signForm(ROOT, bucket, [{ key: 'c2' }, ['content-length-range', 0, 1024 * 1024]]),
      },
      { data: bytes(8 * 1024 * 1024, 3) },
    )
    refused(t, huge, 400, 'EntityTooLarge', undefined, 'a large file over the range')
    t.equal(tag(huge.text, 'ProposedSize'), String(8 * 1024 * 1024))
    const small = await post(
      url,
      {
        key: 'c1',
        ...signForm(ROOT, bucket, [{ key: 'c1' }, ['content-length-range', 20, 100]]),
      },
      { data },
    )
    refused(
      t,
      small,
      400,
      'EntityTooSmall',
      'Your proposed upload is smaller than the minimum allowed size',
    )
    t.equal(tag(small.text, 'MinSizeAllowed'), '20')
    const eq = await post(
      url,
      {
        key: 'c1',
        'x-amz-meta-color': 'red',
        ...signForm(ROOT, bucket, [{ key: 'c1' }, ['eq', '$x-amz-meta-color', 'blue']]),
      },
      { data },
    )
    refused(
      t,
      eq,
      403,
      'AccessDenied',
      'Invalid according to Policy: Policy Condition failed: ["eq", "$x-amz-meta-color", "blue"]',
    )
    const starts = await post(
      url,
      { key: 'other/c1', ...signForm(ROOT, bucket, [['starts-with', '$key', 'up/']]) },
      { data },
    )
    refused(
      t,
      starts,
      403,
      'AccessDenied',
      'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "up/"]',
    )
    const extra = await post(
      url,
      {
        key: 'c1',
        'x-amz-meta-sneaky': 'yes',
        'x-ignore-this': 'fine',
        ...signForm(ROOT, bucket, [{ key: 'c1' }]),
      },
      { data },
    )
    refused(
      t,
      extra,
      403,
      'AccessDenied',
      'Invalid according to Policy: Extra input fields: x-amz-meta-sneaky',
    )
    const otherBucket = await post(
      url,
      { key: 'c1', ...signForm(ROOT, 'someone-else', [{ key: 'c1' }]) },
      { data },
    )
    refused(
      t,
      otherBucket,
      403,
      'AccessDenied',
      `Invalid according to Policy: Policy Condition failed: {"bucket": "someone-else"}`,
    )
    const expired = await post(
      url,
      { key: 'c1', ...signForm(ROOT, bucket, [{ key: 'c1' }], { expiresInMs: -1000 }) },
      { data },
    )
    refused(t, expired, 403, 'AccessDenied', 'Invalid according to Policy: Policy expired.')
    try {
      await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'c1' }))
      t.fail('a refused form stored an object')
    } catch (err) {
      t.equal(s3Fault(err).status, 404, 'nothing was stored')
    }
  })

  await t.test('signature and form errors', async (t) => {
    const data = Buffer.from('x')
    const wrong = await post(
      url,
      {
        key: 'e1',
        ...signForm({ ...ROOT, secretAccessKey: 'not-the-secret' }, bucket, [{ key: 'e1' }]),
      },
      { data },
    )
    refused(t, wrong, 403, 'SignatureDoesNotMatch')
    const unknown = await post(
      url,
      {
        key: 'e1',
        ...signForm({ accessKeyId: 'NOSUCHKEY0000000', secretAccessKey: 'x' }, bucket, [
          { key: 'e1' },
        ]),
      },
      { data },
    )
    refused(t, unknown, 403, 'InvalidAccessKeyId')
    const signed = signForm(ROOT, bucket, [{ key: 'e1' }])
    const { 'x-amz-signature': _sig, ...noSignature } = signed
    refused(
      t,
      await post(url, { key: 'e1', ...noSignature }, { data }),
      400,
      'InvalidArgument',
      "Bucket POST must contain a field named 'X-Amz-Signature'.  If it is specified, please check the order of the fields.",
    )
    refused(
      t,
      await post(url, { ...signed }, { data }),
      400,
      'InvalidArgument',
      "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
    )
    refused(
      t,
      await post(url, { key: 'e1', ...signed }),
      400,
      'InvalidArgument',
      'POST requires exactly one file upload per request.',
    )
    refused(
      t,
      await post(
        url,
        { key: 'e1', 'x-ignore-padding': 'p'.repeat(30 * 1024), ...signed },
        { data },
      ),
      400,
      'MaxPostPreDataLengthExceededError',
      'Your POST request fields preceding the upload file were too large.',
    )
    refused(
      t,
      await post(`${endpoint}/${uniqueBucket('nobucket')}`, { key: 'e1', ...signed }, { data }),
      404,
      'NoSuchBucket',
    )
  })

  await t.test('authorization: anonymous and keys without PutObject are refused', async (t) => {
    const data = Buffer.from('anon')
    refused(
      t,
      await post(url, { key: 'anon.txt' }, { data }),
      403,
      'AccessDenied',
      'Access Denied',
      'unsigned form on a private bucket',
    )
    // An early refusal of a large body must not take the gateway down while the rest arrives.
    const bigPut = await fetch(`${url}/anon-big.bin`, {
      method: 'PUT',
      body: bytes(8 * 1024 * 1024, 5),
    })
    t.equal(bigPut.status, 403, 'an unsigned 8 MiB PUT is refused')
    await bigPut.text()
    await createProject(endpoint, ROOT, 'alpha')
    const viewer = await createUserWithKey(endpoint, ROOT, 'viewer', 'alpha', [
      { role: 'observer' },
    ])
    refused(
      t,
      await post(url, { key: 'v.txt', ...signForm(viewer, bucket, [{ key: 'v.txt' }]) }, { data }),
      403,
      'AccessDenied',
      'Access Denied',
      'a key without s3:PutObject',
    )
  })

  await t.test('temporary credentials sign forms with their session token', async (t) => {
    const erin = await createUserWithKey(endpoint, ROOT, 'erin', 'alpha', [
      { role: 's3-admin', project: 'alpha' },
    ])
    const own = uniqueBucket('sess')
    const erinS3 = s3Client(endpoint, { credentials: erin })
    t.teardown(() => erinS3.destroy())
    await erinS3.send(new CreateBucketCommand({ Bucket: own }))
    const { STSClient, AssumeRoleCommand } = await import('@aws-sdk/client-sts')
    const sts = new STSClient({ endpoint, region: 'us-east-1', credentials: erin, maxAttempts: 1 })
    t.teardown(() => sts.destroy())
    const session = async (policy?: object) => {
      const r = await sts.send(
        new AssumeRoleCommand({
          RoleArn: 'arn:aws:iam::000000000000:role/forms',
          RoleSessionName: 'forms',
          DurationSeconds: 900,
          ...(policy ? { Policy: JSON.stringify(policy) } : {}),
        }),
      )
      return {
        key: {
          accessKeyId: r.Credentials!.AccessKeyId!,
          secretAccessKey: r.Credentials!.SecretAccessKey!,
        },
        token: r.Credentials!.SessionToken!,
      }
    }
    const form = (s: { key: Key; token: string }, key: string) => ({
      key,
      'x-amz-security-token': s.token,
      ...signForm(s.key, own, [{ key }, { 'x-amz-security-token': s.token }]),
    })
    const data = Buffer.from('from a session')
    const full = await session()
    const ok = await post(`${endpoint}/${own}`, form(full, 's.txt'), { data })
    t.equal(ok.status, 204, ok.text)
    const back = await bodyBytes(
      (await erinS3.send(new GetObjectCommand({ Bucket: own, Key: 's.txt' }))).Body,
    )
    t.same(back, data, 'stored by the session')
    const readOnly = await session({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }],
    })
    refused(
      t,
      await post(`${endpoint}/${own}`, form(readOnly, 'r.txt'), { data }),
      403,
      'AccessDenied',
      'Access Denied',
      'a session policy without PutObject',
    )
    const forged = { ...full, token: `${full.token.slice(0, -4)}AAAA` }
    refused(
      t,
      await post(`${endpoint}/${own}`, form(forged, 'f.txt'), { data }),
      400,
      'InvalidToken',
      undefined,
      'a forged session token',
    )
  })

  /** A signed form for `key` whose policy allows exactly the given extra fields. */
  const form = (key: string, extra: Record<string, string>) => ({
    key,
    ...extra,
    ...signForm(ROOT, bucket, [
      { key },
      ...Object.entries(extra).map(([k, v]) => ['eq', `$${k}`, v]),
    ]),
  })
  const absent = async (t: Test, key: string) => {
    const err = await s3
      .send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
      .then(() => undefined, s3Fault)
    t.equal(err?.status, 404, `${key}: nothing stored`)
  }
  const tagging = (tags: [string, string][]) =>
    `<Tagging><TagSet>${tags
      .map(([k, v]) => `<Tag><Key>${k}</Key><Value>${v}</Value></Tag>`)
      .join('')}</TagSet></Tagging>`

  await t.test('the tagging field tags the new object', async (t) => {
    const data = Buffer.from('tagged')
    const r = await post(
      url,
      form('tg/ok', {
        tagging: tagging([
          ['project', 'blue sky'],
          ['a&amp;b', 'x=y&amp;z é'],
        ]),
      }),
      { data },
    )
    t.equal(r.status, 204, r.text)
    const got = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tg/ok' }))
    t.same(
      (got.TagSet ?? []).map((x) => [x.Key, x.Value]).sort(),
      [
        ['a&b', 'x=y&z é'],
        ['project', 'blue sky'],
      ],
      'both tags, decoded',
    )
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'tg/ok' }))
    t.equal(head.TagCount, 2, 'x-amz-tagging-count')
    const empty = await post(url, form('tg/empty', { tagging: tagging([]) }), { data })
    t.equal(empty.status, 204, `an empty TagSet: ${empty.text}`)
    const none = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tg/empty' }))
    t.same(none.TagSet, [], 'no tags')
  })

  await t.test('a tagging field S3 refuses stores nothing', async (t) => {
    const data = Buffer.from('x')
    const eleven = Array.from({ length: 11 }, (_, i): [string, string] => [`k${i}`, 'v'])
    const cases: [string, string, string, string, string | undefined][] = [
      [
        'tg/11',
        tagging(eleven),
        'InvalidTag',
        'more than 10 tags',
        'Object tags cannot be greater than 10',
      ],
      [
        'tg/dup',
        tagging([
          ['k', '1'],
          ['k', '2'],
        ]),
        'InvalidTag',
        'a duplicate key',
        'Cannot provide multiple Tags with the same key',
      ],
      [
        'tg/longkey',
        tagging([['k'.repeat(129), 'v']]),
        'InvalidTag',
        'a 129-character key',
        undefined,
      ],
      [
        'tg/longval',
        tagging([['k', 'v'.repeat(257)]]),
        'InvalidTag',
        'a 257-character value',
        undefined,
      ],
      ['tg/nokey', tagging([['', 'v']]), 'InvalidTag', 'an empty key', undefined],
      ['tg/xml', '<Tagging><TagSet><Tag><Key>k</Key>', 'MalformedXML', 'unclosed XML', undefined],
      ['tg/root', '<Tags><TagSet/></Tags>', 'MalformedXML', 'the wrong root element', undefined],
      ['tg/text', 'k=v', 'MalformedXML', 'the header form instead of XML', undefined],
    ]
    for (const [key, value, code, what, message] of cases) {
      refused(t, await post(url, form(key, { tagging: value }), { data }), 400, code, message, what)
      await absent(t, key)
    }
    // At the limits: 10 tags, a 128-character key and a 256-character value.
    const ten = Array.from({ length: 10 }, (_, i): [string, string] => [`k${i}`, 'v'])
    ten[0] = ['k'.repeat(128), 'v'.repeat(256)]
    const ok = await post(url, form('tg/limits', { tagging: tagging(ten) }), { data })
    t.equal(ok.status, 204, `at the limits: ${ok.text}`)
  })

  await t.test('fields for what Tessera does not do are refused, never ignored', async (t) => {
    const data = Buffer.from('x')
    for (const [field, value] of [
      ['x-amz-server-side-encryption', 'AES256'],
      ['x-amz-server-side-encryption', 'aws:kms'],
      ['x-amz-server-side-encryption-aws-kms-key-id', 'alias/key'],
      ['x-amz-server-side-encryption-customer-algorithm', 'AES256'],
    ] as const) {
      const r = await post(url, form('sse', { [field]: value }), { data })
      refused(t, r, 501, 'NotImplemented', undefined, `${field}: ${value}`)
      t.equal(tag(r.text, 'Header'), field, `${field}: the error names the field`)
    }
    await absent(t, 'sse')
    refused(
      t,
      await post(url, form('lock', { 'x-amz-object-lock-mode': 'GOVERNANCE' }), { data }),
      400,
      'InvalidRequest',
      'Bucket is missing Object Lock Configuration',
      'object lock',
    )
    refused(
      t,
      await post(url, form('lock', { 'x-amz-object-lock-legal-hold': 'ON' }), { data }),
      400,
      'InvalidRequest',
      'Bucket is missing Object Lock Configuration',
      'legal hold',
    )
    await absent(t, 'lock')
    for (const sc of ['GLACIER', 'STANDARD_IA', 'FAST']) {
      const r = await post(url, form('cold', { 'x-amz-storage-class': sc }), { data })
      refused(t, r, 400, 'InvalidStorageClass', undefined, `storage class ${sc}`)
      t.equal(tag(r.text, 'StorageClassRequested'), sc)
    }
    await absent(t, 'cold')
    const std = await post(url, form('std', { 'x-amz-storage-class': 'STANDARD' }), { data })
    t.equal(std.status, 204, `STANDARD is stored: ${std.text}`)
    // Stored and answered as PutObject's x-amz-website-redirect-location header is.
    const redirect = await post(
      url,
      form('moved', { 'x-amz-website-redirect-location': '/elsewhere.html' }),
      { data },
    )
    t.equal(redirect.status, 204, redirect.text)
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'moved' }))
    t.equal(head.WebsiteRedirectLocation, '/elsewhere.html')
  })

  await t.test('x-amz-expected-bucket-owner as a header or a form field', async (t) => {
    const account = await adminCall(endpoint, ROOT, 'GET', '/account')
    const owner = account.body.id as string
    t.match(owner, /^\d{12}$/, 'the account id')
    const other = owner === '111122223333' ? '111122223334' : '111122223333'
    const data = Buffer.from('owned')
    const plain = (key: string) => form(key, {})
    const h = (v: string) => ({ 'x-amz-expected-bucket-owner': v })
    const ok = await post(url, plain('own/h'), { data }, h(owner))
    t.equal(ok.status, 204, `the right owner in the header: ${ok.text}`)
    t.same(await get('own/h'), data)
    const okField = await post(url, form('own/f', { 'x-amz-expected-bucket-owner': owner }), {
      data,
    })
    t.equal(okField.status, 204, `the right owner in a field: ${okField.text}`)
    refused(
      t,
      await post(url, plain('own/wrong'), { data }, h(other)),
      403,
      'AccessDenied',
      'Access Denied',
      'another account in the header',
    )
    refused(
      t,
      await post(url, form('own/wrong', { 'x-amz-expected-bucket-owner': other }), { data }),
      403,
      'AccessDenied',
      'Access Denied',
      'another account in a field',
    )
    refused(
      t,
      await post(url, plain('own/wrong'), { data }, h('12345')),
      400,
      'InvalidBucketOwnerAWSAccountID',
      'The value of the expected bucket owner parameter must be an AWS Account ID... [12345]',
      'a malformed owner',
    )
    await absent(t, 'own/wrong')
  })

  await t.test('an unsigned form where a bucket policy lets anyone upload', async (t) => {
    const drop = uniqueBucket('drop')
    await s3.send(new CreateBucketCommand({ Bucket: drop }))
    await s3.send(new DeletePublicAccessBlockCommand({ Bucket: drop }))
    await s3.send(
      new PutBucketPolicyCommand({
        Bucket: drop,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Principal: '*',
              Action: 's3:PutObject',
              Resource: `arn:aws:s3:::${drop}/inbox/*`,
            },
          ],
        }),
      }),
    )
    const data = Buffer.from('dropped anonymously')
    const ok = await post(`${endpoint}/${drop}`, { key: 'inbox/a.txt' }, { data })
    t.equal(ok.status, 204, ok.text)
    const back = await bodyBytes(
      (await s3.send(new GetObjectCommand({ Bucket: drop, Key: 'inbox/a.txt' }))).Body,
    )
    t.same(back, data, 'stored')
    refused(
      t,
      await post(`${endpoint}/${drop}`, { key: 'elsewhere/a.txt' }, { data }),
      403,
      'AccessDenied',
      'Access Denied',
      'outside the prefix the policy opens',
    )
  })
})
