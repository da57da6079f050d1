/**
 * The admin API and the `tessera admin` CLI against a real cluster: the CLI runs as a real
 * process with the root credential, manages projects, users, roles, keys, service accounts,
 * policies, guardrails and the account, and the audit log shows what it did; then the API's
 * answers to malformed and unauthorized calls.
 */
import { spawn } from 'node:child_process'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { adminCall, createUserWithKey } from './harness/admin.ts'
import { ROOT, startCluster } from './harness/cluster.ts'

const TESSERA_MAIN = fileURLToPath(new URL('./main.js', import.meta.resolve('@tessera/server')))

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `tessera admin <args>` against `endpoint` with the root credential in the env. */
function tessera(endpoint: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [TESSERA_MAIN, 'admin', '--endpoint', endpoint, ...args],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: ROOT.accessKeyId,
          AWS_SECRET_ACCESS_KEY: ROOT.secretAccessKey,
          AWS_SESSION_TOKEN: '',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Repeats `probe` until it returns true: identity changes reach the gateway's cache async. */
async function eventually(probe: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await probe()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`never happened: ${what}`)
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1
}

t.test('tessera admin over the admin API on a 2-node RS(2,2) cluster', async (t) => {
  const c = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = c.gateways[0]!.endpoint
  // Beside the cluster, in its folder: a second t.testdir() would wipe the cluster's files.
  const dir = join(c.dir, 'cli-files')
  await mkdir(dir, { recursive: true })

  /** A --json command that must succeed; answers its parsed output. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the command prints
  const json = async (...args: string[]): Promise<any> => {
    const r = await tessera(endpoint, ['--json', ...args])
    if (r.code !== 0) throw new Error(`tessera admin ${args.join(' ')}: ${r.stderr}`)
    return r.stdout.trim() === '' ? undefined : JSON.parse(r.stdout)
  }

  await t.test('whoami names the root credential', async (t) => {
    const me = await json('whoami')
    t.equal(me.name, 'root')
    t.equal(me.root, true)
    t.equal(me.accessKeyId, ROOT.accessKeyId)
  })

  await t.test('projects create and list', async (t) => {
    const p = await json('projects', 'create', 'alpha', '--description', 'the first project')
    t.equal(p.name, 'alpha')
    t.match(p.created, /^\d{4}-\d{2}-\d{2}T/, 'timestamps are ISO strings')
    const list = await json('projects', 'list')
    const alpha = list.projects.find((x: { name: string }) => x.name === 'alpha')
    t.ok(alpha, 'alpha is listed')
    t.equal(alpha.description, 'the first project')
  })

  await t.test('users create and show', async (t) => {
    const u = await json('users', 'create', 'alice')
    t.equal(u.name, 'alice')
    t.equal(u.kind, 'person')
    const svc = await json('users', 'create', 'builder', '--service')
    t.equal(svc.kind, 'service')
    const shown = await json('users', 'show', 'alice')
    t.equal(shown.name, 'alice')
    t.same(shown.roles, [])
    t.equal(shown.disabled, false)
  })

  await t.test('roles bind and unbind', async (t) => {
    const u1 = await json('roles', 'bind', 'alice', 's3-user', '--project', 'alpha')
    t.same(u1.roles, [{ role: 's3-user', project: 'alpha' }])
    const u2 = await json('roles', 'bind', 'alice', 'reader')
    t.equal(u2.roles.length, 2)
    const u3 = await json('roles', 'unbind', 'alice', 'reader')
    t.same(u3.roles, [{ role: 's3-user', project: 'alpha' }])
  })

  let keyId = ''
  let secret = ''
  await t.test(
    'keys create prints the secret once and writes a 0600 credentials file',
    async (t) => {
      const out = join(dir, 'alice.credentials')
      const r = await tessera(endpoint, [
        '--json',
        'keys',
        'create',
        '--user',
        'alice',
        '--project',
        'alpha',
        '--out',
        out,
      ])
      t.equal(r.code, 0, r.stderr)
      const k = JSON.parse(r.stdout)
      keyId = k.accessKeyId
      secret = k.secretAccessKey
      t.match(keyId, /^\S{16,}$/)
      t.ok(secret.length >= 20, 'a secret is returned')
      t.equal(k.key.user, 'alice')
      t.equal(k.key.project, 'alpha')
      t.equal(count(r.stdout, secret), 1, 'the secret is printed exactly once')
      t.match(r.stderr, /will not be shown again/)
      t.equal((await stat(out)).mode & 0o777, 0o600, 'the credentials file is private')
      t.equal(
        await readFile(out, 'utf8'),
        `[default]\naws_access_key_id=${keyId}\naws_secret_access_key=${secret}\n`,
      )
      // The new key signs admin calls as alice (once the gateway's identity cache has it).
      const alice = { accessKeyId: keyId, secretAccessKey: secret }
      await eventually(
        async () => (await adminCall(endpoint, alice, 'GET', '/whoami')).status === 200,
        'the new key is accepted',
      )
      const denials = async () =>
        (await readFile(c.gateways[0]!.logPath, 'utf8')).split('access denied').length
      const before = await denials()
      const me = await adminCall(endpoint, alice, 'GET', '/whoami')
      t.equal(me.body.name, 'alice')
      t.equal(me.body.project, 'alpha')
      t.equal(me.body.capabilities.manageAccount, false, 'alice may not change the account')
      t.equal(
        await denials(),
        before,
        'the capability probes behind /whoami log no "access denied" lines',
      )
    },
  )

  await t.test('keys list shows the key and no secret', async (t) => {
    const r = await tessera(endpoint, ['--json', 'keys', 'list', '--user', 'alice'])
    t.equal(r.code, 0, r.stderr)
    const list = JSON.parse(r.stdout)
    t.same(
      list.keys.map((k: { id: string }) => k.id),
      [keyId],
    )
    t.equal(list.keys[0].status, 'Active')
    t.equal(list.keys[0].state, 'ok')
    t.equal(typeof list.keys[0].ageDays, 'number')
    t.notOk(r.stdout.includes(secret), 'the secret is not listed')
    t.notMatch(r.stdout, /secretAccessKey/)
  })

  await t.test('keys disable, enable and delete', async (t) => {
    const alice = { accessKeyId: keyId, secretAccessKey: secret }
    const off = await json('keys', 'disable', keyId)
    t.equal(off.status, 'Inactive')
    await eventually(
      async () => (await adminCall(endpoint, alice, 'GET', '/whoami')).status === 403,
      'the disabled key is refused',
    )
    const on = await json('keys', 'enable', keyId)
    t.equal(on.status, 'Active')
    await eventually(
      async () => (await adminCall(endpoint, alice, 'GET', '/whoami')).status === 200,
      'the enabled key is accepted again',
    )
    await json('keys', 'delete', keyId)
    const list = await json('keys', 'list', '--user', 'alice')
    t.same(list.keys, [], 'the deleted key is gone')
  })

  await t.test('service accounts create, list and delete', async (t) => {
    const r = await tessera(endpoint, [
      'service-accounts',
      'create',
      '--user',
      'alice',
      '--project',
      'alpha',
      '--name',
      'ci',
    ])
    t.equal(r.code, 0, r.stderr)
    const id = /AWS_ACCESS_KEY_ID=(\S+)/.exec(r.stdout)?.[1]
    const saSecret = /AWS_SECRET_ACCESS_KEY=(\S+)/.exec(r.stdout)?.[1]
    t.ok(id && saSecret, 'the human output shows the id and the secret')
    t.equal(count(r.stdout, saSecret!), 1, 'the secret is printed exactly once')
    t.match(r.stdout, /will not be shown again/)
    const list = await json('service-accounts', 'list', '--user', 'alice')
    const sa = list.serviceAccounts.find((k: { id: string }) => k.id === id)
    t.ok(sa, 'the service account is listed')
    t.equal(sa.name, 'ci')
    t.equal(sa.kind, 'service-account')
    t.notOk(JSON.stringify(list).includes(saSecret!), 'the secret is not listed')
    await json('service-accounts', 'delete', id!)
    const after = await json('service-accounts', 'list', '--user', 'alice')
    t.notOk(
      after.serviceAccounts.some((k: { id: string }) => k.id === id),
      'the deleted service account is gone',
    )
  })

  await t.test('guardrails set and show', async (t) => {
    const g = await json('guardrails', 'set', '--deny', 's3:DeleteObjectVersion')
    t.same(g.deniedActions, ['s3:DeleteObjectVersion'])
    const shown = await json('guardrails', 'show')
    t.same(shown.deniedActions, ['s3:DeleteObjectVersion'])
    t.equal(shown.offeredActions, undefined, 'every action is offered')
  })

  await t.test('account set --max-key-age-days', async (t) => {
    const a = await json('account', 'set', '--max-key-age-days', '30')
    t.equal(a.maxKeyAgeDays, 30)
    t.equal((await json('account', 'show')).maxKeyAgeDays, 30)
  })

  await t.test('policies create and attach', async (t) => {
    const file = join(dir, 'read-alpha.json')
    await writeFile(
      file,
      JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::alpha-*/*' },
        ],
      }),
    )
    const p = await json('policies', 'create', 'read-alpha', '--file', file)
    t.equal(p.name, 'read-alpha')
    t.equal(p.builtin, false)
    await json('policies', 'attach', 'alice', 'read-alpha')
    const u = await json('users', 'show', 'alice')
    t.same(u.attached, ['read-alpha'])
    const attached = await json('policies', 'attached', 'alice')
    t.same(
      attached.attached.map((a: { name: string }) => a.name),
      ['read-alpha'],
    )
  })

  await t.test('the audit log lists the changes, made by root', async (t) => {
    const log = await json('audit')
    const mine = log.entries.filter((e: { who: string }) => e.who === 'root')
    const actions = new Set(mine.map((e: { action: string }) => e.action))
    for (const a of [
      'CreateProject',
      'CreateUser',
      'BindRole',
      'UnbindRole',
      'CreateAccessKey',
      'UpdateAccessKey',
      'DeleteAccessKey',
      'CreateServiceAccount',
      'DeleteServiceAccount',
      'UpdateAccount',
      'CreatePolicy',
      'AttachUserPolicy',
    ]) {
      t.ok(actions.has(a), `audit has ${a}`)
    }
    t.ok(
      mine.some(
        (e: { action: string; target: string }) =>
          e.action === 'CreateUser' && e.target === 'user/alice',
      ),
      'CreateUser names its target',
    )
    t.notOk(JSON.stringify(log).includes(secret), 'no secret in the audit log')
    const limited = await json('audit', '--limit', '2')
    t.equal(limited.entries.length, 2)
  })

  await t.test('human output: tables and errors', async (t) => {
    const users = await tessera(endpoint, ['users', 'list'])
    t.equal(users.code, 0, users.stderr)
    t.match(users.stdout, /^NAME\s+KIND\s+ROLES/m, 'a table header')
    t.match(users.stdout, /^alice\s+person/m)
    const missing = await tessera(endpoint, ['users', 'show', 'nobody'])
    t.equal(missing.code, 1)
    t.match(missing.stderr, /^tessera admin: NoSuchEntity: /)
  })

  await t.test('admin API errors', async (t) => {
    const bad = await adminCall(endpoint, ROOT, 'POST', '/users', Buffer.from('{"name": '))
    t.equal(bad.status, 400, 'a body that is not JSON')
    t.equal(bad.body.error.code, 'InvalidInput')
    const role = await adminCall(endpoint, ROOT, 'POST', '/users/alice/roles', { role: 'wizard' })
    t.equal(role.status, 400, 'an unknown role')
    t.equal(role.body.error.code, 'ValidationError')
    const nobody = await adminCall(endpoint, ROOT, 'GET', '/users/nobody')
    t.equal(nobody.status, 404)
    t.equal(nobody.body.error.code, 'NoSuchEntity')
    const route = await adminCall(endpoint, ROOT, 'GET', '/no-such-thing')
    t.equal(route.status, 404)
    t.equal(route.body.error.code, 'NoSuchRoute')
    const method = await adminCall(endpoint, ROOT, 'GET', '/keys/AKIAEXAMPLE')
    t.equal(method.status, 405)

    const bob = await createUserWithKey(endpoint, ROOT, 'bob', 'alpha', [{ role: 's3-user' }])
    // An unknown key is refused with 403 too: wait until bob's key is known.
    await eventually(
      async () => (await adminCall(endpoint, bob, 'GET', '/whoami')).status === 200,
      "bob's key is accepted",
    )
    const denied = await adminCall(endpoint, bob, 'POST', '/users', { name: 'mallory' })
    t.equal(denied.status, 403, 'a user without user-admin may not create users')
    t.equal(denied.body.error.code, 'AccessDenied')
  })
})
