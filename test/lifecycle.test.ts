/**
 * Bucket lifecycle end to end: the S3 configuration API through a real gateway, then the nodes'
 * background worker acting on real objects.
 *
 * How time passes: days cannot go by in a test, so the nodes judge ages by a clock the test
 * moves. Every node runs with `lifecycleClockOffsetMs` in its node.yaml (added to the wall clock
 * by the lifecycle worker only; records are still written with the real time). The test writes
 * its objects at offset 0, then rewrites the offset in every node.yaml and restarts the nodes:
 * first 4 days ahead, then 10. After each step it waits for a lifecycle cycle that started
 * after the restart, ran with the new offset, acted for the set and hit no error (the node logs
 * `lifecycle cycle done` with those facts), and only then looks at the buckets through S3.
 */
import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { Sha256 } from '@aws-crypto/sha256-js'
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketLifecycleCommand,
  DeleteObjectCommand,
  GetBucketLifecycleConfigurationCommand,
  GetObjectCommand,
  type LifecycleRule,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import { ConfigError, loadConfig } from '@tessera/node'
import t from 'tap'
import { ROOT, startCluster, type TestCluster } from './harness/cluster.ts'
import { bodyBytes, s3Client, s3Fault, sha256, uniqueBucket } from './harness/s3.ts'

const DAY_MS = 86_400_000

const signer = new SignatureV4({
  service: 's3',
  region: 'us-east-1',
  credentials: { accessKeyId: ROOT.accessKeyId, secretAccessKey: ROOT.secretAccessKey },
  sha256: Sha256,
  uriEscapePath: false,
  applyChecksum: false,
})

/** A request signed with the official signer, without the SDK's own checksum headers. */
async function signedFetch(
  endpoint: string,
  req: {
    method: string
    path: string
    query: Record<string, string>
    body?: Buffer
    headers?: Record<string, string>
  },
): Promise<{ status: number; text: string }> {
  const url = new URL(endpoint)
  const body = req.body ?? Buffer.alloc(0)
  const signed = await signer.sign(
    new HttpRequest({
      method: req.method,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: req.path,
      query: req.query,
      headers: {
        host: url.host,
        'x-amz-content-sha256': sha256(body),
        ...(req.method === 'GET' ? {} : { 'content-length': String(body.length) }),
        ...req.headers,
      },
      body,
    }),
  )
  const qs = new URLSearchParams(req.query).toString()
  const res = await fetch(`${endpoint}${req.path}?${qs}`, {
    method: req.method,
    headers: signed.headers as Record<string, string>,
    ...(req.method === 'GET' ? {} : { body }),
  })
  return { status: res.status, text: await res.text() }
}

const xmlCode = (text: string) => /<Code>([^<]+)<\/Code>/.exec(text)?.[1]
const xmlMessage = (text: string) => /<Message>([^<]+)<\/Message>/.exec(text)?.[1]

interface CycleLine {
  sets: number
  errors: number
  clockOffsetMs: number
  startedAt: number
  expired: number
  markers: number
  noncurrent: number
  noncurrentDefault: number
  deleteMarkers: number
  uploads: number
}

/** The `lifecycle cycle done` lines every node has logged so far. */
async function cycleLines(c: TestCluster): Promise<CycleLine[]> {
  const out: CycleLine[] = []
  for (const n of c.nodes) {
    const text = await readFile(n.logPath, 'utf8').catch(() => '')
    for (const line of text.split('\n')) {
      if (line.includes('"lifecycle cycle done"')) out.push(JSON.parse(line) as CycleLine)
    }
  }
  return out
}

/**
 * Waits for a whole lifecycle cycle that started at `since` or later with the clock offset
 * `offsetMs`, acted for a set and failed nowhere.
 */
async function cycleAfter(c: TestCluster, offsetMs: number, since: number): Promise<CycleLine> {
  const deadline = Date.now() + 90_000
  for (;;) {
    const lines = await cycleLines(c)
    const done = lines.find(
      (l) => l.clockOffsetMs === offsetMs && l.startedAt >= since && l.sets >= 1 && l.errors === 0,
    )
    if (done) return done
    if (Date.now() > deadline) {
      throw new Error(
        `no clean lifecycle cycle at offset ${offsetMs}: ${JSON.stringify(lines.slice(-4))}`,
      )
    }
    await sleep(200)
  }
}

/** Moves the nodes' lifecycle clock to `days` ahead of the wall clock (restarts every node). */
async function setClock(c: TestCluster, days: number): Promise<number> {
  const offset = days * DAY_MS
  for (const n of c.nodes) {
    const text = await readFile(n.configPath, 'utf8')
    await writeFile(
      n.configPath,
      text.replace(/^lifecycleClockOffsetMs: .*$/m, `lifecycleClockOffsetMs: ${offset}`),
    )
  }
  const since = Date.now()
  await Promise.all(c.nodes.map((n) => c.stop(n.id)))
  await Promise.all(c.nodes.map((n) => c.start(n.id)))
  // The gateway may have found the nodes gone while they restarted and waits a back-off before
  // it dials again: the checks that follow start once it says it can serve again.
  const ready = `${c.gateways[0]!.endpoint}/_tessera/health/ready`
  const until = Date.now() + 30_000
  while (
    (await fetch(ready).then(
      (r) => r.status,
      () => 0,
    )) !== 200
  ) {
    if (Date.now() > until) throw new Error('the gateway was not ready 30 s after the restart')
    await sleep(100)
  }
  return since
}

async function text(s3: S3Client, bucket: string, key: string): Promise<string | number> {
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    return (await bodyBytes(r.Body)).toString()
  } catch (err) {
    return s3Fault(err).status
  }
}

/** A key's versions newest first: each version's id, or `dm` for a delete marker. */
async function history(s3: S3Client, bucket: string, key: string): Promise<string[]> {
  const r = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }))
  // The SDK splits versions and markers apart: put them back in order (latest first, then time).
  const all = [
    ...(r.Versions ?? []).map((v) => ({ ...v, dm: false })),
    ...(r.DeleteMarkers ?? []).map((v) => ({ ...v, dm: true })),
  ].filter((v) => v.Key === key)
  all.sort(
    (a, b) =>
      Number(b.IsLatest) - Number(a.IsLatest) ||
      b.LastModified!.getTime() - a.LastModified!.getTime(),
  )
  return all.map((v) => (v.dm ? 'dm' : v.VersionId!))
}

t.test('bucket lifecycle on a 2-node RS(2,2) cluster', async (t) => {
  const c = await startCluster(t, {
    nodes: 2,
    drivesPerNode: 2,
    k: 2,
    m: 2,
    gateways: 1,
    nodeConfig: { lifecycleIntervalMs: 300, noncurrentDefaultDays: 7, lifecycleClockOffsetMs: 0 },
  })
  const endpoint = c.gateways[0]!.endpoint
  // Node restarts leave the gateway a stale connection or two: let the SDK retry.
  const s3 = s3Client(endpoint, { maxAttempts: 6 })
  t.teardown(() => s3.destroy())
  const put = (bucket: string, key: string, body: string, tagging?: string) =>
    s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ...(tagging ? { Tagging: tagging } : {}),
      }),
    )
  const mkBucket = async (versioned: boolean) => {
    const b = uniqueBucket('lc')
    await s3.send(new CreateBucketCommand({ Bucket: b }))
    if (versioned)
      await s3.send(
        new PutBucketVersioningCommand({
          Bucket: b,
          VersioningConfiguration: { Status: 'Enabled' },
        }),
      )
    return b
  }
  const setRules = (bucket: string, rules: LifecycleRule[]) =>
    s3.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: bucket,
        LifecycleConfiguration: { Rules: rules },
      }),
    )

  await t.test('Put, Get and Delete BucketLifecycleConfiguration', async (t) => {
    const b = await mkBucket(false)
    const none = await s3
      .send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }))
      .catch(s3Fault)
    t.match(none, { code: 'NoSuchLifecycleConfiguration', status: 404 }, 'no configuration yet')
    const raw404 = await signedFetch(endpoint, {
      method: 'GET',
      path: `/${b}`,
      query: { lifecycle: '' },
    })
    t.match(raw404.text, `<BucketName>${b}</BucketName>`, 'the 404 names the bucket')

    const rules: LifecycleRule[] = [
      { ID: 'logs', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } },
      {
        ID: 'tagged',
        Status: 'Disabled',
        Filter: {
          And: { Prefix: 'a/', Tags: [{ Key: 'k', Value: 'v' }], ObjectSizeGreaterThan: 10 },
        },
        NoncurrentVersionExpiration: { NoncurrentDays: 5, NewerNoncurrentVersions: 2 },
      },
      {
        ID: 'uploads',
        Status: 'Enabled',
        Filter: { Prefix: '' },
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 },
        Expiration: { ExpiredObjectDeleteMarker: true },
      },
      {
        ID: 'dated',
        Status: 'Enabled',
        Filter: { Tag: { Key: 'x', Value: 'y' } },
        Expiration: { Date: new Date('2031-01-01T00:00:00Z') },
      },
    ]
    await setRules(b, rules)
    const got = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }))
    t.same(
      got.Rules?.map((r) => ({
        ID: r.ID,
        Status: r.Status,
        Filter: r.Filter,
        Expiration: r.Expiration,
        NoncurrentVersionExpiration: r.NoncurrentVersionExpiration,
        AbortIncompleteMultipartUpload: r.AbortIncompleteMultipartUpload,
      })),
      rules.map((r) => ({
        ID: r.ID,
        Status: r.Status,
        Filter: r.Filter,
        Expiration: r.Expiration,
        NoncurrentVersionExpiration: r.NoncurrentVersionExpiration,
        AbortIncompleteMultipartUpload: r.AbortIncompleteMultipartUpload,
      })),
      'GET gives back the rules PUT stored',
    )
    const raw = await signedFetch(endpoint, {
      method: 'GET',
      path: `/${b}`,
      query: { lifecycle: '' },
    })
    t.equal(raw.status, 200)
    t.match(
      raw.text,
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<LifecycleConfiguration xmlns="http:\/\/s3.amazonaws.com\/doc\/2006-03-01\/">/,
    )

    const bad = await setRules(b, [
      { ID: 'zero', Status: 'Enabled', Filter: { Prefix: '' }, Expiration: { Days: 0 } },
    ]).catch(s3Fault)
    t.match(bad, { code: 'InvalidArgument', status: 400 }, 'Days 0')
    const dup = await setRules(b, [
      { ID: 'same', Status: 'Enabled', Filter: { Prefix: 'a' }, Expiration: { Days: 1 } },
      { ID: 'same', Status: 'Enabled', Filter: { Prefix: 'b' }, Expiration: { Days: 1 } },
    ]).catch(s3Fault)
    t.match(dup, { code: 'InvalidArgument', status: 400 }, 'duplicate IDs')

    const xml = Buffer.from(
      '<LifecycleConfiguration><Rule><ID>r</ID><Filter/><Status>Enabled</Status>' +
        '<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>',
    )
    const noMd5 = await signedFetch(endpoint, {
      method: 'PUT',
      path: `/${b}`,
      query: { lifecycle: '' },
      body: xml,
    })
    t.equal(noMd5.status, 400)
    t.equal(xmlCode(noMd5.text), 'InvalidRequest')
    t.equal(xmlMessage(noMd5.text), 'Missing required header for this request: Content-MD5')
    const md5 = (body: Buffer) => createHash('md5').update(body).digest('base64')
    const wrongMd5 = await signedFetch(endpoint, {
      method: 'PUT',
      path: `/${b}`,
      query: { lifecycle: '' },
      body: xml,
      headers: { 'content-md5': md5(Buffer.from('other')) },
    })
    t.equal(xmlCode(wrongMd5.text), 'BadDigest', 'Content-MD5 of another body')
    const broken = Buffer.from('<LifecycleConfiguration><Rule>')
    const malformed = await signedFetch(endpoint, {
      method: 'PUT',
      path: `/${b}`,
      query: { lifecycle: '' },
      body: broken,
      headers: { 'content-md5': md5(broken) },
    })
    t.equal(malformed.status, 400)
    t.equal(xmlCode(malformed.text), 'MalformedXML')
    const withMd5 = await signedFetch(endpoint, {
      method: 'PUT',
      path: `/${b}`,
      query: { lifecycle: '' },
      body: xml,
      headers: { 'content-md5': md5(xml) },
    })
    t.equal(withMd5.status, 200, 'Content-MD5 alone is enough')
    const replaced = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }))
    t.same(
      replaced.Rules?.map((r) => r.ID),
      ['r'],
      'a PUT replaces the whole configuration',
    )

    await s3.send(new DeleteBucketLifecycleCommand({ Bucket: b }))
    const gone = await s3
      .send(new GetBucketLifecycleConfigurationCommand({ Bucket: b }))
      .catch(s3Fault)
    t.match(gone, { code: 'NoSuchLifecycleConfiguration', status: 404 }, 'deleted')
    await s3.send(new DeleteBucketLifecycleCommand({ Bucket: b }))
    t.pass('deleting again succeeds')
    const noBucket = await s3
      .send(new GetBucketLifecycleConfigurationCommand({ Bucket: uniqueBucket('none') }))
      .catch(s3Fault)
    t.match(noBucket, { code: 'NoSuchBucket', status: 404 })
  })

  // ---- the objects the worker will meet, all written at lifecycle offset 0 -------------------

  // Unversioned: expiration by prefix, by size, a disabled rule, a date in the past.
  const unver = await mkBucket(false)
  await setRules(unver, [
    { ID: 'logs', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 3 } },
    {
      ID: 'big',
      Status: 'Enabled',
      Filter: { And: { Prefix: 'size/', ObjectSizeGreaterThan: 100 } },
      Expiration: { Days: 3 },
    },
    { ID: 'off', Status: 'Disabled', Filter: { Prefix: 'dis/' }, Expiration: { Days: 1 } },
    {
      ID: 'old',
      Status: 'Enabled',
      Filter: { Prefix: 'old/' },
      Expiration: { Date: new Date('2020-01-01T00:00:00Z') },
    },
  ])
  for (const k of ['logs/a', 'logs/b', 'keep/c', 'dis/x', 'old/y'])
    await put(unver, k, `body of ${k}`)
  await put(unver, 'size/big', 'B'.repeat(200))
  await put(unver, 'size/small', 'small')

  // Versioned: expiration by tag puts a delete marker on top.
  const tagged = await mkBucket(true)
  await setRules(tagged, [
    {
      ID: 'temp',
      Status: 'Enabled',
      Filter: { Tag: { Key: 'class', Value: 'temp' } },
      Expiration: { Days: 3 },
    },
  ])
  await put(tagged, 't1', 'temp one', 'class=temp')
  await put(tagged, 't2', 'kept two', 'class=keep')
  await put(tagged, 'u', 'untagged')

  // Versioned: noncurrent versions after 2 days, keeping the newest noncurrent one.
  const nc = await mkBucket(true)
  await setRules(nc, [
    {
      ID: 'nc',
      Status: 'Enabled',
      Filter: { Prefix: 'nc/' },
      NoncurrentVersionExpiration: { NoncurrentDays: 2, NewerNoncurrentVersions: 1 },
    },
  ])
  const ncIds: string[] = []
  for (const v of ['v1', 'v2', 'v3', 'v4']) ncIds.push((await put(nc, 'nc/k', v)).VersionId!)
  const otherIds: string[] = []
  for (const v of ['w1', 'w2']) otherIds.push((await put(nc, 'other/k', v)).VersionId!)

  // Versioned, no configuration at all: only the 7-day default for noncurrent versions.
  const dflt = await mkBucket(true)
  const xIds = [(await put(dflt, 'x', 'x1')).VersionId!, (await put(dflt, 'x', 'x2')).VersionId!]
  const y1 = (await put(dflt, 'y', 'y1')).VersionId!
  await s3.send(new DeleteObjectCommand({ Bucket: dflt, Key: 'y' }))
  t.same(await history(s3, dflt, 'y'), ['dm', y1], 'setup: y is a marker over a version')

  // Versioned: expired delete markers, and noncurrent versions after a day.
  const markers = await mkBucket(true)
  await setRules(markers, [
    {
      ID: 'dm',
      Status: 'Enabled',
      Filter: { Prefix: '' },
      Expiration: { ExpiredObjectDeleteMarker: true },
      NoncurrentVersionExpiration: { NoncurrentDays: 1 },
    },
  ])
  const m1 = (await put(markers, 'm', 'm1')).VersionId!
  await s3.send(new DeleteObjectCommand({ Bucket: markers, Key: 'm' }))
  await s3.send(new DeleteObjectCommand({ Bucket: markers, Key: 'lone' }))
  await put(markers, 'live', 'alive')

  // Incomplete multipart uploads under tmp/ are aborted after a day.
  const mpu = await mkBucket(false)
  await setRules(mpu, [
    {
      ID: 'abort',
      Status: 'Enabled',
      Filter: { Prefix: 'tmp/' },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
    },
  ])
  const u1 = await s3.send(new CreateMultipartUploadCommand({ Bucket: mpu, Key: 'tmp/u1' }))
  await s3.send(
    new UploadPartCommand({
      Bucket: mpu,
      Key: 'tmp/u1',
      UploadId: u1.UploadId!,
      PartNumber: 1,
      Body: 'part one',
    }),
  )
  const u2 = await s3.send(new CreateMultipartUploadCommand({ Bucket: mpu, Key: 'keep/u2' }))
  const uploadKeys = async () =>
    ((await s3.send(new ListMultipartUploadsCommand({ Bucket: mpu }))).Uploads ?? []).map(
      (u) => u.Key,
    )

  await t.test('day 0: only what is due at once goes', async (t) => {
    await cycleAfter(c, 0, Date.now())
    t.equal(await text(s3, unver, 'old/y'), 404, 'Expiration Date in the past: expired')
    for (const k of ['logs/a', 'logs/b', 'keep/c', 'dis/x'])
      t.equal(await text(s3, unver, k), `body of ${k}`, k)
    t.equal(await text(s3, unver, 'size/big'), 'B'.repeat(200))
    t.same(
      await history(s3, markers, 'lone'),
      [],
      'a delete marker with nothing under it is removed',
    )
    t.same(await history(s3, markers, 'm'), ['dm', m1], 'a marker over a version stays')
    t.equal(await text(s3, tagged, 't1'), 'temp one', 'not yet expired')
    t.equal((await history(s3, nc, 'nc/k')).length, 4, 'noncurrent versions not yet due')
    t.same(await uploadKeys(), ['keep/u2', 'tmp/u1'], 'uploads not yet due')
  })

  await t.test('day 4: Days, NoncurrentDays and DaysAfterInitiation are due', async (t) => {
    const line = await cycleAfter(c, 4 * DAY_MS, await setClock(c, 4))
    t.ok(
      line.expired >= 3 && line.markers >= 1 && line.uploads >= 1,
      `the cycle acted: ${JSON.stringify(line)}`,
    )

    t.equal(await text(s3, unver, 'logs/a'), 404, 'unversioned: expired objects are gone')
    t.equal(await text(s3, unver, 'logs/b'), 404)
    t.same(await history(s3, unver, 'logs/a'), [], 'no version and no marker left')
    t.equal(await text(s3, unver, 'size/big'), 404, 'ObjectSizeGreaterThan selects the big one')
    t.equal(await text(s3, unver, 'size/small'), 'small', 'and leaves the small one')
    t.equal(await text(s3, unver, 'keep/c'), 'body of keep/c', 'outside every prefix: untouched')
    t.equal(await text(s3, unver, 'dis/x'), 'body of dis/x', 'a Disabled rule does nothing')

    t.equal(await text(s3, tagged, 't1'), 404, 'versioned: the expired object is hidden')
    const t1 = await history(s3, tagged, 't1')
    t.equal(t1.length, 2)
    t.equal(t1[0], 'dm', 'by a delete marker on top of its version')
    t.equal(await text(s3, tagged, 't2'), 'kept two', 'another tag value: untouched')
    t.equal(await text(s3, tagged, 'u'), 'untagged', 'no tags: untouched')
    t.equal((await history(s3, tagged, 't2')).length, 1)

    t.same(
      await history(s3, nc, 'nc/k'),
      [ncIds[3], ncIds[2]],
      'NewerNoncurrentVersions keeps the newest noncurrent one',
    )
    t.equal(await text(s3, nc, 'nc/k'), 'v4')
    t.same(
      await history(s3, nc, 'other/k'),
      [otherIds[1], otherIds[0]],
      'outside the rule, the default is 7 days',
    )
    t.same(await history(s3, dflt, 'x'), [xIds[1], xIds[0]], 'default: not yet')

    t.same(await history(s3, markers, 'm'), [], 'noncurrent version removed, then its lone marker')
    t.equal(await text(s3, markers, 'live'), 'alive')

    t.same(await uploadKeys(), ['keep/u2'], 'the upload under tmp/ was aborted')
    const parts = await s3
      .send(new ListPartsCommand({ Bucket: mpu, Key: 'tmp/u1', UploadId: u1.UploadId! }))
      .catch(s3Fault)
    t.match(parts, { code: 'NoSuchUpload', status: 404 })
    await s3.send(new ListPartsCommand({ Bucket: mpu, Key: 'keep/u2', UploadId: u2.UploadId! }))
    t.pass('the upload outside tmp/ is still there')
  })

  await t.test('day 10: the 7-day default for noncurrent versions', async (t) => {
    const line = await cycleAfter(c, 10 * DAY_MS, await setClock(c, 10))
    t.ok(line.noncurrentDefault >= 3, `the default removed versions: ${JSON.stringify(line)}`)
    t.same(await history(s3, dflt, 'x'), [xIds[1]], 'no configuration: noncurrent version gone')
    t.equal(await text(s3, dflt, 'x'), 'x2', 'the current version stays')
    t.same(
      await history(s3, dflt, 'y'),
      ['dm'],
      'a noncurrent version under a marker goes; the marker stays without a rule',
    )
    t.same(await history(s3, nc, 'other/k'), [otherIds[1]], 'keys no rule covers get the default')
    t.same(await history(s3, nc, 'nc/k'), [ncIds[3], ncIds[2]], 'keys a rule covers keep the rule')
    t.same(await history(s3, tagged, 't1'), ['dm'], 'the expired version under the marker went too')
    t.equal(await text(s3, tagged, 't2'), 'kept two')
    t.equal(await text(s3, tagged, 'u'), 'untagged')
    t.equal(await text(s3, markers, 'live'), 'alive')
    t.equal(await text(s3, unver, 'keep/c'), 'body of keep/c')
  })
})

t.test('node.yaml lifecycle settings: defaults, overrides, problems', async (t) => {
  const dir = t.testdir()
  const file = `${dir}/node.yaml`
  const base = 'node: n1\nmap: cluster.yaml\nidentity: node.key\n'
  await writeFile(file, base)
  const defaults = await loadConfig({ file, env: {} })
  t.equal(defaults.lifecycleIntervalMs, 3_600_000, 'one hour between cycles')
  t.equal(defaults.noncurrentDefaultDays, 7, 'noncurrent versions: 7 days by default')
  t.equal(defaults.lifecycleClockOffsetMs, 0, 'the real clock')
  await writeFile(
    file,
    `${base}lifecycleIntervalMs: 500\nnoncurrentDefaultDays: 0\nlifecycleClockOffsetMs: 86400000\n`,
  )
  const set = await loadConfig({ file, env: { TESSERA_NONCURRENT_DEFAULT_DAYS: '30' } })
  t.equal(set.lifecycleIntervalMs, 500)
  t.equal(set.noncurrentDefaultDays, 30, 'the environment wins over the file')
  t.equal(set.lifecycleClockOffsetMs, DAY_MS)
  await writeFile(
    file,
    `${base}lifecycleIntervalMs: 5\nnoncurrentDefaultDays: -1\nlifecycleClockOffsetMs: soon\n`,
  )
  const err = await loadConfig({ file, env: {} }).catch((e: unknown) => e)
  t.ok(err instanceof ConfigError)
  t.same(
    (err as ConfigError).problems,
    [
      'lifecycleIntervalMs must be an integer of at least 100',
      'noncurrentDefaultDays must be a whole number of days (0: off)',
      'lifecycleClockOffsetMs must be an integer (milliseconds)',
    ],
    'every problem at once',
  )
})
