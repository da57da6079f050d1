/**
 * Credentials end to end: keys seen by every gateway within a second of a change, nothing lost
 * when a gateway restarts, no secret on any drive, log or admin answer, key states (inactive,
 * expired, past the maximum age, user disabled), service accounts and sessions narrowed by
 * their policies and ended with their parent, and failed-authentication throttling.
 */
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListBucketsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { GetSystem, PutSystem } from '@tessera/protocol'
import t from 'tap'
import { adminCall, createProject, createUserWithKey } from './harness/admin.ts'
import { ROOT, startCluster, type TestCluster } from './harness/cluster.ts'
import { s3Client, s3Fault } from './harness/s3.ts'

type Creds = { accessKeyId: string; secretAccessKey: string; sessionToken?: string }

/** The S3 error code of a request, or 'ok'. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    return s3Fault(err).code
  }
}

async function admin(endpoint: string, creds: Creds, method: string, path: string, body?: unknown) {
  const r = await adminCall(endpoint, creds, method, path, body)
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

/** Polls `probe` until it returns `want`; the time it took, or throws after `limitMs`. */
async function until(probe: () => Promise<string>, want: string, limitMs: number): Promise<number> {
  const start = performance.now()
  let last = ''
  while (performance.now() - start < limitMs) {
    last = await probe()
    if (last === want) return performance.now() - start
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`still ${last} after ${limitMs} ms, wanted ${want}`)
}

/** Every file under `dir`, recursively. */
async function files(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await files(p)))
    else if (e.isFile()) out.push(p)
  }
  return out
}

/** Rewrites an identity record on every drive holding it (simulating the passing of time). */
async function rewriteRecord(
  c: TestCluster,
  key: string,
  change: (v: Record<string, unknown>) => void,
): Promise<void> {
  let changed = 0
  for (const set of c.layout.pools.flatMap((p) => p.sets)) {
    for (const d of set.drives) {
      const ref = { pool: d.pool, set: d.set, slot: d.slot }
      const { value } = await c.pool.call(c.peer(d.nodeId), GetSystem, { ...ref, key })
      if (value === undefined) continue
      const stamped = value as { v: Record<string, unknown>; s: number }
      change(stamped.v)
      stamped.s += 4096 * 1000
      await c.pool.call(c.peer(d.nodeId), PutSystem, { ...ref, key, value: stamped })
      await c.pool.call(c.peer(d.nodeId), PutSystem, { ...ref, key: 'iam-gen', value: stamped.s })
      changed++
    }
  }
  if (changed === 0) throw new Error(`no drive holds ${key}`)
}

t.test('identity across gateways, restarts and faults', async (t) => {
  const c = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 2 })
  const [g1, g2] = [c.gateways[0]!.endpoint, c.gateways[1]!.endpoint]
  await createProject(g1, ROOT, 'alpha')
  const alice = await createUserWithKey(g1, ROOT, 'alice', 'alpha', [
    { role: 's3-admin', project: 'alpha' },
  ])
  const s3 = (endpoint: string, creds: Creds): S3Client =>
    s3Client(endpoint, { credentials: creds })
  await s3(g1, alice).send(new CreateBucketCommand({ Bucket: 'alpha-data' }))
  await s3(g1, alice).send(
    new PutObjectCommand({ Bucket: 'alpha-data', Key: 'a.txt', Body: 'alpha' }),
  )
  const list = (endpoint: string, creds: Creds) =>
    outcome(s3(endpoint, creds).send(new ListBucketsCommand({})))

  await t.test('a change on one gateway is seen by the other within a second', async (t) => {
    const bob = await createUserWithKey(g1, ROOT, 'bob', 'alpha', [
      { role: 'observer', project: 'alpha' },
    ])
    // The key made on g1 works on g2 (it has seen the new records).
    const seen = await until(() => list(g2, bob), 'ok', 1000)
    t.ok(seen < 1000, `a new key works on the other gateway after ${Math.round(seen)} ms`)
    await admin(g1, ROOT, 'PATCH', `/keys/${bob.accessKeyId}`, { status: 'Inactive' })
    t.equal(await list(g1, bob), 'InvalidAccessKeyId', 'refused at once where it was disabled')
    const refused = await until(() => list(g2, bob), 'InvalidAccessKeyId', 1000)
    t.ok(refused < 1000, `refused by the other gateway after ${Math.round(refused)} ms`)
    await admin(g2, ROOT, 'PATCH', `/keys/${bob.accessKeyId}`, { status: 'Active' })
    await until(() => list(g1, bob), 'ok', 1000)
    await admin(g2, ROOT, 'DELETE', `/keys/${bob.accessKeyId}`)
    const gone = await until(() => list(g1, bob), 'InvalidAccessKeyId', 1000)
    t.ok(gone < 1000, `a deleted key is refused by the other gateway after ${Math.round(gone)} ms`)
  })

  await t.test('a restarted gateway keeps every identity', async (t) => {
    await c.stop('g1')
    await c.startGateway('g1')
    const g1b = c.gateways[0]!.endpoint
    t.equal(await list(g1b, alice), 'ok', 'the key still works after the restart')
    const users = await admin(g1b, ROOT, 'GET', '/users')
    t.ok(
      JSON.stringify(users).includes('"alice"'),
      'the user is still listed after the gateway restarted',
    )
  })

  await t.test('key states: inactive, expired, too old, user disabled', async (t) => {
    const g = c.gateways[0]!.endpoint
    const carol = await createUserWithKey(g, ROOT, 'carol', 'alpha', [
      { role: 'observer', project: 'alpha' },
    ])
    t.equal(await list(g, carol), 'ok')
    // Past the maximum key age (the record is aged on the drives, as 91 days would).
    await rewriteRecord(c, `iam/key/${carol.accessKeyId}`, (v) => {
      v.created = Date.now() - 91 * 86_400_000
    })
    await until(() => list(g, carol), 'InvalidAccessKeyId', 2000)
    const err = await s3(g, carol)
      .send(new ListBucketsCommand({}))
      .catch((e: unknown) => s3Fault(e))
    t.match(err, { status: 403, message: /older than the account's maximum key age of 90 days/ })
    const keys = await admin(g, ROOT, 'GET', '/users/carol/keys')
    t.match(JSON.stringify(keys), /too-old/, 'the key list shows why the key is refused')
    // Raising the account's maximum age makes it usable again.
    await admin(g, ROOT, 'PATCH', '/account', { maxKeyAgeDays: 120 })
    t.equal(await list(g, carol), 'ok', 'usable under a longer maximum age')
    await admin(g, ROOT, 'PATCH', '/account', { maxKeyAgeDays: 90 })

    // An expiry date.
    const expiring = await admin(g, ROOT, 'POST', '/users/carol/keys', {
      project: 'alpha',
      expires: new Date(Date.now() + 1500).toISOString(),
    })
    const exp: Creds = {
      accessKeyId: expiring.accessKeyId,
      secretAccessKey: expiring.secretAccessKey,
    }
    t.equal(await list(g, exp), 'ok', 'works before its expiry')
    await new Promise((r) => setTimeout(r, 1600))
    const expired = await s3(g, exp)
      .send(new ListBucketsCommand({}))
      .catch((e: unknown) => s3Fault(e))
    t.match(expired, { code: 'InvalidAccessKeyId', status: 403, message: /expired on/ })

    // Disabling the user stops all its keys; enabling brings them back.
    const fresh = await admin(g, ROOT, 'POST', '/users/carol/keys', { project: 'alpha' })
    const carol2: Creds = { accessKeyId: fresh.accessKeyId, secretAccessKey: fresh.secretAccessKey }
    t.equal(await list(g, carol2), 'ok')
    await admin(g, ROOT, 'POST', '/users/carol/disable')
    const disabled = await s3(g, carol2)
      .send(new ListBucketsCommand({}))
      .catch((e: unknown) => s3Fault(e))
    t.match(disabled, { code: 'InvalidAccessKeyId', message: /disabled/ })
    await admin(g, ROOT, 'POST', '/users/carol/enable')
    t.equal(await list(g, carol2), 'ok', 'enabled again')
  })

  await t.test('service accounts inherit, narrow, and go with their parent', async (t) => {
    const g = c.gateways[0]!.endpoint
    const dave = await createUserWithKey(g, ROOT, 'dave', 'alpha', [
      { role: 's3-admin', project: 'alpha' },
    ])
    const plain = await admin(g, dave, 'POST', '/service-accounts', { name: 'ci' })
    const sa: Creds = { accessKeyId: plain.accessKeyId, secretAccessKey: plain.secretAccessKey }
    const put = (creds: Creds, key: string) =>
      outcome(
        s3(g, creds).send(new PutObjectCommand({ Bucket: 'alpha-data', Key: key, Body: 'x' })),
      )
    const get = (creds: Creds) =>
      outcome(s3(g, creds).send(new GetObjectCommand({ Bucket: 'alpha-data', Key: 'a.txt' })))
    t.equal(await put(sa, 'sa/1'), 'ok', 'a service account can do what its parent can')
    const narrow = await admin(g, dave, 'POST', '/service-accounts', {
      name: 'reader',
      policy: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::*' }],
      },
    })
    const ro: Creds = { accessKeyId: narrow.accessKeyId, secretAccessKey: narrow.secretAccessKey }
    t.equal(await get(ro), 'ok', 'the narrowing policy allows reads')
    t.equal(await put(ro, 'sa/2'), 'AccessDenied', 'and nothing else')
    // A narrowing policy cannot widen: the parent (s3-admin in alpha) has no other project.
    const widen = await admin(g, dave, 'POST', '/service-accounts', {
      policy: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
      },
    })
    const wide: Creds = { accessKeyId: widen.accessKeyId, secretAccessKey: widen.secretAccessKey }
    const r = await adminCall(g, wide, 'POST', '/users', { name: 'sneaky' })
    t.equal(r.status, 403, 'a service account cannot do more than its parent')

    // At most 100 per user.
    const have = (await admin(g, ROOT, 'GET', '/service-accounts?user=dave')).serviceAccounts
      .length as number
    for (let i = have; i < 100; i++)
      await admin(g, ROOT, 'POST', '/service-accounts', { user: 'dave' })
    const over = await adminCall(g, ROOT, 'POST', '/service-accounts', { user: 'dave' })
    t.equal(over.status, 409, 'the 101st service account is refused')
    t.equal(over.body?.error?.code, 'LimitExceeded')

    // Deleting the parent removes its service accounts.
    await admin(g, ROOT, 'DELETE', '/users/dave')
    t.equal(await get(ro), 'InvalidAccessKeyId', "a deleted parent's service account is refused")
    const left = (await admin(g, ROOT, 'GET', '/service-accounts')).serviceAccounts as {
      user: string
    }[]
    t.notOk(
      left.some((x) => x.user === 'dave'),
      'none of its service accounts is left',
    )
  })

  await t.test('sessions are narrowed and end with their parent', async (t) => {
    const g = c.gateways[0]!.endpoint
    const erin = await createUserWithKey(g, ROOT, 'erin', 'alpha', [
      { role: 's3-admin', project: 'alpha' },
    ])
    const session = async (policy?: object): Promise<Creds> => {
      const { STSClient, AssumeRoleCommand } = await import('@aws-sdk/client-sts')
      const sts = new STSClient({
        endpoint: g,
        region: 'us-east-1',
        credentials: erin,
        maxAttempts: 1,
      })
      const r = await sts.send(
        new AssumeRoleCommand({
          RoleArn: 'arn:aws:iam::000000000000:role/work',
          RoleSessionName: 'w1',
          DurationSeconds: 900,
          ...(policy ? { Policy: JSON.stringify(policy) } : {}),
        }),
      )
      return {
        accessKeyId: r.Credentials!.AccessKeyId!,
        secretAccessKey: r.Credentials!.SecretAccessKey!,
        sessionToken: r.Credentials!.SessionToken!,
      }
    }
    const full = await session()
    const ro = await session({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }],
    })
    const put = (creds: Creds) =>
      outcome(
        s3(g, creds).send(new PutObjectCommand({ Bucket: 'alpha-data', Key: 'sess', Body: 'x' })),
      )
    const get = (creds: Creds) =>
      outcome(s3(g, creds).send(new GetObjectCommand({ Bucket: 'alpha-data', Key: 'a.txt' })))
    t.equal(await put(full), 'ok', 'a session can do what its parent can')
    t.equal(await get(ro), 'ok', 'the session policy allows reads')
    t.equal(await put(ro), 'AccessDenied', 'and narrows everything else')
    // A tampered token is refused.
    const bad = { ...full, sessionToken: `${full.sessionToken!.slice(0, -4)}AAAA` }
    t.equal(await get(bad), 'InvalidToken', 'a forged session token is refused')
    // Disabling the parent key ends its sessions at once, on every gateway.
    await admin(g, ROOT, 'PATCH', `/keys/${erin.accessKeyId}`, { status: 'Inactive' })
    t.equal(await get(full), 'InvalidToken', 'the session ended with its parent key')
    const ended = await until(() => get({ ...full }).then((x) => x), 'InvalidToken', 1000)
    t.ok(ended < 1000)
    await admin(g, ROOT, 'PATCH', `/keys/${erin.accessKeyId}`, { status: 'Active' })
    t.equal(await get(full), 'ok', 'and works again when the parent does')
    await admin(g, ROOT, 'DELETE', '/users/erin')
    const g2end = await until(
      () =>
        outcome(s3(g2, full).send(new GetObjectCommand({ Bucket: 'alpha-data', Key: 'a.txt' }))),
      'InvalidToken',
      1000,
    )
    t.ok(
      g2end < 1000,
      `deleting the parent user ends the session on the other gateway (${Math.round(g2end)} ms)`,
    )
  })

  await t.test('failed authentications are throttled per key', async (t) => {
    const g = c.gateways[0]!.endpoint
    const frank = await createUserWithKey(g, ROOT, 'frank', 'alpha', [
      { role: 'observer', project: 'alpha' },
    ])
    const wrong: Creds = {
      accessKeyId: frank.accessKeyId,
      secretAccessKey: 'not-the-secret-000000',
    }
    const codes: string[] = []
    for (let i = 0; i < 22; i++) codes.push(await list(g, wrong))
    t.equal(codes[0], 'SignatureDoesNotMatch')
    t.equal(codes.at(-1), 'SlowDown', 'a key with many failures is slowed down')
    t.equal(await list(g, frank), 'SlowDown', 'even with the right secret, until the window passes')
    t.equal(await list(g, alice), 'ok', 'other keys are not affected')
  })

  await t.test('no secret on any drive, in any log or admin answer', async (t) => {
    const g = c.gateways[0]!.endpoint
    const made = await admin(g, ROOT, 'POST', '/users', { name: 'grace' })
    t.ok(made)
    await admin(g, ROOT, 'POST', '/users/grace/roles', { role: 'observer', project: 'alpha' })
    const k = await admin(g, ROOT, 'POST', '/users/grace/keys', { project: 'alpha' })
    const secret = k.secretAccessKey as string
    t.equal(secret.length, 40, 'the secret is shown once, at creation')
    // Use it, fail with it, so every code path that logs has had the chance.
    t.equal(await list(g, { accessKeyId: k.accessKeyId, secretAccessKey: secret }), 'ok')
    await list(g, { accessKeyId: k.accessKeyId, secretAccessKey: `${secret.slice(0, -1)}x` })
    const answers = JSON.stringify([
      await admin(g, ROOT, 'GET', '/users/grace/keys'),
      await admin(g, ROOT, 'GET', '/users/grace'),
      await admin(g, ROOT, 'GET', '/users'),
      await admin(g, ROOT, 'GET', '/audit'),
      await admin(g, ROOT, 'GET', '/service-accounts'),
    ])
    t.notOk(answers.includes(secret), 'no admin answer holds the secret')
    await new Promise((r) => setTimeout(r, 300)) // let logs flush
    const needles = [
      secret,
      Buffer.from(secret).toString('base64'),
      Buffer.from(secret).toString('hex'),
    ]
    let scanned = 0
    const found: string[] = []
    for (const f of await files(c.dir)) {
      const data = await readFile(f)
      scanned++
      for (const n of needles) if (data.includes(n)) found.push(f)
    }
    t.ok(scanned > 20, `${scanned} files scanned (drives, metadata, logs, configs)`)
    t.same(found, [], 'no file holds the secret in clear')
    const mk = await stat(join(c.dir, 'master.key'))
    t.equal(mk.mode & 0o777, 0o600, 'the master key file is 0600')
  })

  await t.test('keys show when they were last used', async (t) => {
    const g = c.gateways[0]!.endpoint
    const keys = (await admin(g, ROOT, 'GET', '/users/alice/keys')).keys as {
      id: string
      lastUsed?: string
    }[]
    const k = keys.find((x) => x.id === alice.accessKeyId)
    t.ok(k?.lastUsed, 'the key list has a last-used time')
    t.ok(Date.now() - Date.parse(k!.lastUsed!) < 10 * 60_000, 'and it is recent')
  })

  // Last: it blocks this gateway for loopback for a minute.
  await t.test('failed authentications are throttled per source address', async (t) => {
    const g = c.gateways[0]!.endpoint
    let tries = 0
    let code = ''
    while (tries < 150 && code !== 'SlowDown') {
      tries++
      code = await list(g, {
        accessKeyId: `TKIAUNKNOWN${String(tries).padStart(9, '0')}`,
        secretAccessKey: 'x'.repeat(40),
      })
    }
    t.equal(code, 'SlowDown', `the address is slowed down after ${tries} more failures`)
    t.equal(await list(g, alice), 'SlowDown', 'then even a good key from that address waits')
    t.equal(await list(g2, alice), 'ok', 'the other gateway keeps its own count')
  })

  await t.test('identities load from the drives that remain when a node is down', async (t) => {
    await c.stop(c.nodes[1]!.id, 'SIGKILL')
    await c.stop('g2')
    await c.startGateway('g2')
    const g = c.gateways[1]!.endpoint
    t.equal(await list(g, alice), 'ok', 'a restarted gateway knows every key with half the drives')
  })
})
