/**
 * The web console end to end, second part (issue #9): every role binding the product has,
 * signed in through Debian's chromium, with a table of what each must see and must not see,
 * and for hidden controls, the gateway refusing the call too. Then, through the browser, what
 * console.test.ts does not drive: downloads (the bytes compared, an older version too),
 * deleting one version, a folder upload with relative paths, the lifecycle rule form with the
 * 7-day default, CORS and public access block edits checked with the AWS SDK, projects, users
 * (disable, delete), keys (project selector, rotation warning, deactivate, delete), managed
 * policies (create, attach, detach, delete), guardrails and the maximum key age, and the heal
 * button with the heal progress it shows. Screenshots go to test/artifacts/console/.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetObjectCommand,
  GetPublicAccessBlockCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3'
import type { Browser, Page } from 'playwright-core'
import t, { type Test } from 'tap'
import {
  type AdminCredentials,
  adminCall,
  createProject,
  createUserWithKey,
} from './harness/admin.ts'
import { consolePage, launchBrowser, showsTestId, signInToConsole } from './harness/browser.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { bodyBytes, bytes, s3Client, s3Fault, sha256 } from './harness/s3.ts'

const PROJECT = 'alpha'
const BUCKET = 'alpha-data'
const ARTIFACTS = fileURLToPath(new URL('../artifacts/console/', import.meta.url))

/** Controls (test ids) the role table speaks of, by the page that shows them. */
const BUCKETS_PAGE = ['create-bucket', 'nav-identity', 'nav-cluster']
const OBJECTS_PAGE = ['download-object', 'upload-button', 'delete-object', 'tab-settings']
const IDENTITY_PAGE = [
  'my-keys',
  'users',
  'create-user',
  'projects',
  'create-project',
  'managed-policies',
  'create-policy',
  'guardrails',
  'account-save',
  'audit',
]
const CLUSTER_PAGE = ['heal-button']

/** A call the UI hides from a role; the gateway must refuse it as well. */
interface Refused {
  what: string
  call(endpoint: string, creds: AdminCredentials): Promise<number>
}

const admin =
  (method: string, path: string, body?: unknown) =>
  async (endpoint: string, creds: AdminCredentials): Promise<number> =>
    (await adminCall(endpoint, creds, method, path, body)).status

/** The HTTP status of an S3 call (200 when it succeeds). */
async function s3Status(fn: () => Promise<unknown>): Promise<number> {
  try {
    await fn()
    return 200
  } catch (err) {
    return s3Fault(err).status
  }
}

interface RoleCase {
  role: string
  project?: string
  /** Whether the role sees BUCKET in the bucket list (and so its objects page). */
  listsBucket: boolean
  /** Test ids that must be shown; every other id of the pages above must not be. */
  see: string[]
  refused: Refused[]
}

const putObject: Refused = {
  what: 'PutObject',
  call: (endpoint, creds) =>
    s3Status(() =>
      s3Client(endpoint, { credentials: creds }).send(
        new PutObjectCommand({ Bucket: BUCKET, Key: 'refused.txt', Body: 'x' }),
      ),
    ),
}
const createBucket: Refused = {
  what: 'CreateBucket',
  call: (endpoint, creds) =>
    s3Status(() =>
      s3Client(endpoint, { credentials: creds }).send(
        new CreateBucketCommand({ Bucket: 'refused-bucket' }),
      ),
    ),
}
const listBuckets: Refused = {
  what: 'ListBuckets',
  call: (endpoint, creds) =>
    s3Status(() => s3Client(endpoint, { credentials: creds }).send(new ListBucketsCommand({}))),
}
const createUser: Refused = { what: 'POST /users', call: admin('POST', '/users', { name: 'mal' }) }
const listUsers: Refused = { what: 'GET /users', call: admin('GET', '/users') }
const createProjectCall: Refused = {
  what: 'POST /projects',
  call: admin('POST', '/projects', { name: 'refused' }),
}
const updateAccount: Refused = {
  what: 'PATCH /account',
  call: admin('PATCH', '/account', { maxKeyAgeDays: 1 }),
}
const createPolicy: Refused = {
  what: 'POST /policies',
  call: admin('POST', '/policies', {
    name: 'refused',
    document: {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }],
    },
  }),
}
const clusterStatus: Refused = { what: 'GET /cluster', call: admin('GET', '/cluster') }
const startHeal: Refused = {
  what: 'POST /heal',
  call: admin('POST', '/heal', { node: 'n1', drive: '/nope', mode: 'full' }),
}

/**
 * What every role binding of the product (packages/gateway/src/iam/actions.ts) must see and
 * not see in the console, and calls the gateway must refuse it.
 */
const ROLES: RoleCase[] = [
  {
    role: 'owner',
    listsBucket: true,
    see: [...BUCKETS_PAGE, ...OBJECTS_PAGE, ...IDENTITY_PAGE, ...CLUSTER_PAGE],
    refused: [],
  },
  {
    role: 'admin',
    listsBucket: true,
    see: [
      ...BUCKETS_PAGE,
      ...OBJECTS_PAGE,
      ...IDENTITY_PAGE.filter((id) => id !== 'create-user' && id !== 'account-save'),
      ...CLUSTER_PAGE,
    ],
    refused: [createUser, updateAccount],
  },
  {
    role: 'user-admin',
    listsBucket: false,
    see: [
      'nav-identity',
      'my-keys',
      'users',
      'create-user',
      'projects',
      'managed-policies',
      'guardrails',
      'audit',
    ],
    refused: [
      createBucket,
      createProjectCall,
      createPolicy,
      updateAccount,
      clusterStatus,
      startHeal,
    ],
  },
  {
    role: 'reader',
    listsBucket: true,
    see: [
      'nav-identity',
      'nav-cluster',
      'download-object',
      'tab-settings',
      'my-keys',
      'users',
      'projects',
      'managed-policies',
      'guardrails',
      'audit',
    ],
    refused: [createBucket, putObject, createUser, createProjectCall, startHeal],
  },
  {
    role: 'project-admin',
    project: PROJECT,
    listsBucket: true,
    see: ['create-bucket', 'nav-identity', ...OBJECTS_PAGE, 'my-keys'],
    refused: [listUsers, createProjectCall, clusterStatus],
  },
  {
    role: 's3-admin',
    project: PROJECT,
    listsBucket: true,
    see: ['create-bucket', 'nav-identity', ...OBJECTS_PAGE, 'my-keys'],
    refused: [listUsers, createPolicy, clusterStatus],
  },
  {
    role: 'observer',
    project: PROJECT,
    listsBucket: true,
    see: ['nav-identity', 'download-object', 'tab-settings', 'my-keys'],
    refused: [createBucket, putObject, listUsers, clusterStatus],
  },
  {
    role: 's3-user',
    project: PROJECT,
    listsBucket: false,
    see: ['nav-identity', 'my-keys'],
    refused: [listBuckets, createBucket, putObject, listUsers, clusterStatus],
  },
]

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
}

/** Checks one page's controls against the role's table row. */
async function checkControls(
  t: Test,
  page: Page,
  ids: string[],
  see: string[],
  where: string,
): Promise<void> {
  // Shown controls first: once they are there, the page has what it will show.
  for (const id of ids.filter((i) => see.includes(i))) {
    const shown = await page
      .getByTestId(id)
      .first()
      .waitFor({ timeout: 10_000 })
      .then(
        () => true,
        () => false,
      )
    t.ok(shown, `${where}: shows ${id}`)
  }
  for (const id of ids.filter((i) => !see.includes(i)))
    t.notOk(await showsTestId(page, id), `${where}: hides ${id}`)
}

/** Clicks `button` and answers the bytes of the download it starts. */
async function downloadBytes(page: Page, click: () => Promise<void>): Promise<Buffer> {
  const [dl] = await Promise.all([page.waitForEvent('download'), click()])
  const path = await dl.path()
  return readFile(path)
}

t.test('the web console: roles, administration, settings', async (t) => {
  await mkdir(ARTIFACTS, { recursive: true })
  // A slow scan rate (versions per second), so a deep scan lasts long enough to show its ETA:
  // one asked for runs at 10× the rate, 2 versions/s.
  const cluster = await startCluster(t, {
    nodes: 2,
    drivesPerNode: 2,
    k: 2,
    m: 2,
    gateways: 1,
    nodeConfig: { scanRate: 0.2 },
  })
  const endpoint = cluster.gateways[0]!.endpoint
  const root = s3Client(endpoint, { credentials: ROOT })
  await createProject(endpoint, ROOT, PROJECT)
  const creds = new Map<string, AdminCredentials>()
  for (const r of ROLES) {
    const name = `u-${r.role}`
    creds.set(
      r.role,
      await createUserWithKey(endpoint, ROOT, name, PROJECT, [
        { role: r.role, ...(r.project ? { project: r.project } : {}) },
      ]),
    )
  }
  await s3Client(endpoint, { credentials: creds.get('project-admin')! }).send(
    new CreateBucketCommand({ Bucket: BUCKET }),
  )
  await root.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'readme.txt', Body: 'hello' }))

  const browser: Browser = await launchBrowser(t)
  const problems: string[] = []

  await t.test(
    'every role sees exactly its controls; the gateway refuses the hidden ones',
    async (t) => {
      for (const r of ROLES) {
        const c = creds.get(r.role)!
        const page = await consolePage(browser, problems)
        await signInToConsole(page, endpoint, c)
        const who = `${r.role}${r.project ? `@${r.project}` : ''}`
        t.match(await page.getByTestId('whoami').textContent(), who, `${who}: signed in`)
        // Buckets page: the list (or the note that the roles do not allow listing).
        if (r.listsBucket) await page.getByRole('link', { name: BUCKET }).waitFor()
        else await page.getByText('Your roles do not allow listing buckets.').waitFor()
        await checkControls(t, page, BUCKETS_PAGE, r.see, `${who} buckets`)
        if (r.listsBucket) {
          await page.getByRole('link', { name: BUCKET }).click()
          await page.getByTestId('bucket-tabs').waitFor()
          await page.getByTestId('object-row').first().waitFor()
          await checkControls(t, page, OBJECTS_PAGE, r.see, `${who} objects`)
          await shot(page, `20-role-${r.role}-objects`)
        }
        if (r.see.includes('nav-identity')) {
          await page.getByTestId('nav-identity').click()
          await checkControls(t, page, IDENTITY_PAGE, r.see, `${who} identity`)
          await shot(page, `21-role-${r.role}-identity`)
        }
        if (r.see.includes('nav-cluster')) {
          await page.getByTestId('nav-cluster').click()
          await page.getByTestId('erasure-set').first().waitFor()
          await checkControls(t, page, CLUSTER_PAGE, r.see, `${who} cluster`)
        }
        for (const x of r.refused) {
          t.equal(await x.call(endpoint, c), 403, `${who}: the gateway refuses ${x.what}`)
        }
        await page.close()
      }
    },
  )

  await t.test('objects: downloads, versions, folder upload', async (t) => {
    const bucket = 'lab'
    await root.send(new CreateBucketCommand({ Bucket: bucket }))
    await root.send(
      new PutBucketVersioningCommand({
        Bucket: bucket,
        VersioningConfiguration: { Status: 'Enabled' },
      }),
    )
    const v1 = bytes(300_000, 1)
    const v2 = bytes(200_000, 2)
    const first = await root.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'data.bin', Body: v1 }),
    )
    await root.send(new PutObjectCommand({ Bucket: bucket, Key: 'data.bin', Body: v2 }))
    const page = await consolePage(browser, problems)
    await signInToConsole(page, endpoint, ROOT)
    await page.getByRole('link', { name: bucket }).click()
    const row = page.getByTestId('object-row').filter({ hasText: 'data.bin' })
    const got = await downloadBytes(page, () => row.getByTestId('download-object').click())
    t.equal(sha256(got), sha256(v2), 'the download holds the bytes of the latest version')

    await page.getByTestId('tab-versions').click()
    const older = page.locator(`[data-version-id="${first.VersionId}"]`)
    await older.waitFor()
    const old = await downloadBytes(page, () => older.getByTestId('download-version').click())
    t.equal(sha256(old), sha256(v1), 'an older version downloads with its own bytes')
    await shot(page, '22-versions')
    await older.getByTestId('delete-version').click()
    await page.getByText(`Deleted version ${first.VersionId} of data.bin`).waitFor()
    const left = await root.send(new ListObjectVersionsCommand({ Bucket: bucket }))
    t.same(
      (left.Versions ?? []).map((v) => v.VersionId).includes(first.VersionId),
      false,
      'the deleted version is gone',
    )
    t.equal((left.Versions ?? []).length, 1, 'the other version stays')
    await t.rejects(
      root.send(
        new GetObjectCommand({ Bucket: bucket, Key: 'data.bin', VersionId: first.VersionId }),
      ),
      'the deleted version cannot be read',
    )

    // A folder picked whole: its files get keys with their paths relative to the folder.
    await page.getByRole('button', { name: 'Objects' }).click()
    const dir = join(t.testdir(), 'album')
    await mkdir(join(dir, 'sub'), { recursive: true })
    await writeFile(join(dir, 'a.txt'), 'first file')
    await writeFile(join(dir, 'sub', 'b.txt'), 'second file')
    await page.getByTestId('folder-input').setInputFiles(dir)
    for (const name of ['album/a.txt', 'album/sub/b.txt'])
      await page.getByTestId('upload-item').filter({ hasText: name }).getByText('done').waitFor()
    const b = await root.send(new GetObjectCommand({ Bucket: bucket, Key: 'album/sub/b.txt' }))
    t.equal((await bodyBytes(b.Body)).toString(), 'second file', 'a nested file keeps its path')
    await root.send(new HeadObjectCommand({ Bucket: bucket, Key: 'album/a.txt' }))
    t.pass('the folder upload made album/a.txt and album/sub/b.txt')

    // A folder dropped from the desktop: chromium's own drag (through the DevTools protocol,
    // with real paths) makes directory entries, which the console walks.
    const trip = join(t.testdir(), 'trip')
    await mkdir(join(trip, 'day1', 'raw'), { recursive: true })
    await writeFile(join(trip, 'notes.txt'), 'notes')
    await writeFile(join(trip, 'day1', 'raw', 'img.bin'), bytes(5000, 3))
    const zone = await page.getByTestId('drop-zone').boundingBox()
    const cdp = await page.context().newCDPSession(page)
    const at = { x: (zone?.x ?? 0) + 20, y: (zone?.y ?? 0) + 20 }
    const data = { items: [], files: [trip], dragOperationsMask: 1 }
    for (const type of ['dragEnter', 'dragOver', 'drop'] as const)
      await cdp.send('Input.dispatchDragEvent', { type, ...at, data })
    for (const name of ['trip/notes.txt', 'trip/day1/raw/img.bin'])
      await page.getByTestId('upload-item').filter({ hasText: name }).getByText('done').waitFor()
    const img = await root.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'trip/day1/raw/img.bin' }),
    )
    t.equal(
      sha256(await bodyBytes(img.Body)),
      sha256(bytes(5000, 3)),
      'a dropped folder is uploaded with its relative paths',
    )
    await page.close()
  })

  await t.test('bucket settings: lifecycle form, CORS, public access block', async (t) => {
    const bucket = 'lab'
    const page = await consolePage(browser, problems)
    await signInToConsole(page, endpoint, ROOT)
    await page.getByRole('link', { name: bucket }).click()
    await page.getByTestId('tab-settings').click()

    // Lifecycle: a new rule starts from the 7-day defaults, which are visible in the form.
    const lc = page.getByTestId('lifecycle')
    await lc.getByTestId('lifecycle-add').click()
    const form = lc.getByTestId('lifecycle-form')
    t.equal(
      await form.getByLabel('Noncurrent versions expire after (days)').inputValue(),
      '7',
      'the form shows the 7-day noncurrent default',
    )
    t.equal(await form.getByLabel('Abort incomplete uploads after (days)').inputValue(), '7')
    await form.getByLabel('Rule ID').fill('logs')
    await form.getByLabel('Key prefix (empty: every object)').fill('logs/')
    await form.getByLabel('Expire current versions after (days)').fill('30')
    await form.getByLabel('Remove expired delete markers').check()
    await form
      .getByTestId('lifecycle-problems')
      .getByText(/goes with no expiry days/)
      .waitFor()
    t.ok(await form.getByTestId('lifecycle-save').isDisabled(), 'an invalid rule cannot be saved')
    await form.getByLabel('Remove expired delete markers').uncheck()
    await form.getByLabel('Noncurrent versions expire after (days)').fill('3')
    await form.getByTestId('lifecycle-save').click()
    await lc.getByText('Rule logs saved').waitFor()
    await shot(page, '23-lifecycle')
    const rules = await root.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))
    t.same(
      rules.Rules?.map((r) => ({
        id: r.ID,
        status: r.Status,
        prefix: r.Filter?.Prefix,
        days: r.Expiration?.Days,
        noncurrent: r.NoncurrentVersionExpiration?.NoncurrentDays,
        abort: r.AbortIncompleteMultipartUpload?.DaysAfterInitiation,
      })),
      [{ id: 'logs', status: 'Enabled', prefix: 'logs/', days: 30, noncurrent: 3, abort: 7 }],
      'the rule made in the form is the bucket lifecycle',
    )
    // Edit the same rule: disable it; it is replaced, not added.
    await lc
      .getByTestId('lifecycle-rule')
      .filter({ hasText: 'logs' })
      .getByRole('button', { name: 'Edit' })
      .click()
    await form.getByLabel('Enabled').uncheck()
    await form.getByTestId('lifecycle-save').click()
    await lc.getByTestId('lifecycle-rule').filter({ hasText: 'Disabled' }).waitFor()
    const edited = await root.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))
    t.same(
      edited.Rules?.map((r) => `${r.ID} ${r.Status}`),
      ['logs Disabled'],
      'editing a rule replaces it',
    )

    // CORS.
    const cors = page.getByTestId('cors')
    await cors.getByLabel('CORS rules').fill(
      JSON.stringify([
        {
          AllowedOrigins: ['https://app.example'],
          AllowedMethods: ['GET', 'PUT'],
          MaxAgeSeconds: 600,
        },
      ]),
    )
    await cors.getByRole('button', { name: 'Save CORS' }).click()
    await cors.getByText('CORS saved').waitFor()
    const c = await root.send(new GetBucketCorsCommand({ Bucket: bucket }))
    t.same(
      c.CORSRules?.map((r) => ({ o: r.AllowedOrigins, m: r.AllowedMethods, age: r.MaxAgeSeconds })),
      [{ o: ['https://app.example'], m: ['GET', 'PUT'], age: 600 }],
      'the CORS rule edited in the console is stored',
    )
    const preflight = await fetch(`${endpoint}/${bucket}/data.bin`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT' },
    })
    t.equal(
      preflight.headers.get('access-control-allow-origin'),
      'https://app.example',
      'the gateway answers the preflight by the new rule',
    )

    // Public access block: one flag toggled off, then on again.
    const pab = page.getByTestId('public-access-block')
    const flag = pab.getByRole('checkbox', { name: 'Block public bucket policies' })
    await flag.waitFor()
    const before = await flag.isChecked()
    await flag.click()
    await t.resolveMatch(
      (async () => {
        for (let i = 0; i < 50; i++) {
          if ((await flag.isChecked()) !== before) return true
          await new Promise((r) => setTimeout(r, 100))
        }
        return false
      })(),
      true,
      'the checkbox shows the new state',
    )
    const pabNow = await root.send(new GetPublicAccessBlockCommand({ Bucket: bucket }))
    t.equal(
      pabNow.PublicAccessBlockConfiguration?.BlockPublicPolicy ?? false,
      !before,
      'the bucket public access block changed',
    )
    await shot(page, '24-settings')
    await page.close()
  })

  await t.test('identity: projects, users, keys, managed policies, guardrails', async (t) => {
    const page = await consolePage(browser, problems)
    await signInToConsole(page, endpoint, ROOT)
    await page.getByTestId('nav-identity').click()

    // A project made in the console.
    const projects = page.getByTestId('projects')
    await projects.getByLabel('New project name').fill('beta')
    await projects.getByLabel('Description').fill('made in the console')
    await projects.getByRole('button', { name: 'Create project' }).click()
    await projects.getByTestId('project-beta').waitFor()
    const listed = await adminCall(endpoint, ROOT, 'GET', '/projects')
    t.ok(
      listed.body.projects.some(
        (p: { name: string; description?: string }) =>
          p.name === 'beta' && p.description === 'made in the console',
      ),
      'the project is stored',
    )

    // A user made in the console gets a key bound to a project chosen from the list.
    const users = page.getByTestId('users')
    await users.getByLabel('New user name').fill('kim')
    await users.getByRole('button', { name: 'Create user' }).click()
    await page.getByTestId('user-kim').waitFor()
    await page.getByTestId('open-user-kim').click()
    const detail = page.locator('tr.detail')
    await detail.getByLabel('Role', { exact: true }).selectOption('s3-admin')
    await detail.getByLabel('Project', { exact: true }).selectOption('beta')
    await detail.getByRole('button', { name: 'Bind role' }).click()
    await page.getByTestId('user-kim').getByText('s3-admin@beta').waitFor()
    const keys = page.getByTestId('keys-kim')
    const options = await keys.getByTestId('key-project').locator('option').allTextContents()
    t.ok(options.includes('beta') && options.includes(PROJECT), `projects offered: ${options}`)
    await keys.getByTestId('key-project').selectOption('beta')
    await keys.getByTestId('create-key').click()
    const keyId = ((await page.getByTestId('new-key-id').textContent()) ?? '').trim()
    const secret = ((await page.getByTestId('new-key-secret').textContent()) ?? '').trim()
    await page.getByTestId('new-key-done').click()
    const kim = { accessKeyId: keyId, secretAccessKey: secret }
    const kimKeys = await adminCall(endpoint, ROOT, 'GET', '/users/kim/keys')
    t.equal(
      kimKeys.body.keys.find((k: { id: string }) => k.id === keyId)?.project,
      'beta',
      'the key is bound to the chosen project',
    )
    await s3Client(endpoint, { credentials: kim }).send(
      new CreateBucketCommand({ Bucket: 'beta-box' }),
    )
    t.pass('the new key works')

    // Guardrails and the maximum key age, edited as the owner.
    const original = (await adminCall(endpoint, ROOT, 'GET', '/account')).body
    const account = page.getByTestId('guardrails')
    await account.getByLabel('Access keys must be rotated after (days)').fill('10')
    await account
      .getByLabel('Actions denied to everyone but the owner (guardrails)')
      .fill('s3:DeleteBucket')
    await account.getByTestId('account-save').click()
    await account.getByText('Saved').waitFor()
    const acct = await adminCall(endpoint, ROOT, 'GET', '/account')
    t.equal(acct.body.maxKeyAgeDays, 10, 'the maximum key age is stored')
    t.same(acct.body.guardrails.deniedActions, ['s3:DeleteBucket'], 'the guardrail is stored')
    const denied = await s3Status(() =>
      s3Client(endpoint, { credentials: kim }).send(
        new DeleteBucketCommand({ Bucket: 'beta-box' }),
      ),
    )
    t.equal(denied, 403, 'the guardrail denies DeleteBucket to a non-owner')

    // Rotation: a 10-day maximum age makes every key due within 14 days, and the list says so.
    await page.reload()
    await page.getByTestId('open-user-kim').click()
    const kimRow = page.getByTestId('keys-kim').locator(`[data-key-id="${keyId}"]`)
    await kimRow.getByTestId('key-warning').waitFor()
    t.match(await kimRow.getByTestId('key-warning').textContent(), /rotate within 1[01] days/)
    await shot(page, '25-key-rotation')

    // Deactivate, then delete the key.
    await kimRow.getByRole('button', { name: 'Deactivate', exact: true }).click()
    await kimRow.getByRole('button', { name: 'Activate', exact: true }).waitFor()
    t.not(
      await s3Status(() =>
        s3Client(endpoint, { credentials: kim }).send(new ListBucketsCommand({})),
      ),
      200,
      'a deactivated key is refused',
    )
    t.equal(
      (await adminCall(endpoint, ROOT, 'GET', '/users/kim/keys')).body.keys[0].status,
      'Inactive',
    )
    await kimRow.getByRole('button', { name: 'Delete', exact: true }).click()
    await kimRow.waitFor({ state: 'detached' })
    t.same(
      (await adminCall(endpoint, ROOT, 'GET', '/users/kim/keys')).body.keys,
      [],
      'the key deleted in the console is gone',
    )

    // Managed policies: create one, attach it to kim, detach it, delete it.
    const policies = page.getByTestId('managed-policies')
    await policies.getByLabel('Policy name').fill('read-beta')
    await policies.getByLabel('Policy document').fill(
      JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::beta-box/*' },
        ],
      }),
    )
    await policies.getByRole('button', { name: 'Create policy' }).click()
    await policies.getByTestId('policy-read-beta').waitFor()
    await page.reload()
    await page.getByTestId('open-user-kim').click()
    const attached = page.getByTestId('attached-kim')
    await attached.getByLabel('Policy to attach').selectOption('read-beta')
    await attached.getByRole('button', { name: 'Attach' }).click()
    await attached.getByRole('button', { name: 'Detach read-beta' }).waitFor()
    t.same(
      (await adminCall(endpoint, ROOT, 'GET', '/users/kim/attached')).body.attached.map(
        (a: { name: string }) => a.name,
      ),
      ['read-beta'],
      'the policy is attached',
    )
    await attached.getByRole('button', { name: 'Detach read-beta' }).click()
    await attached.getByRole('button', { name: 'Detach read-beta' }).waitFor({ state: 'detached' })
    t.same(
      (await adminCall(endpoint, ROOT, 'GET', '/users/kim/attached')).body.attached,
      [],
      'the policy is detached',
    )
    await page.getByTestId('policy-read-beta').getByRole('button', { name: 'Delete' }).click()
    await page.getByTestId('policy-read-beta').waitFor({ state: 'detached' })
    t.equal(
      (await adminCall(endpoint, ROOT, 'GET', '/policies/read-beta')).status,
      404,
      'the policy is deleted',
    )

    // Disable a user: its keys stop working; then delete it.
    const reader = creds.get('reader')!
    await page.getByTestId('open-user-kim').click()
    await page.getByTestId('open-user-u-reader').click()
    const readerDetail = page.locator('tr.detail')
    await readerDetail.getByRole('button', { name: 'Disable user' }).click()
    await page.getByTestId('user-u-reader').getByText('disabled').waitFor()
    t.not(
      await s3Status(() =>
        s3Client(endpoint, { credentials: reader }).send(new ListBucketsCommand({})),
      ),
      200,
      "a disabled user's key is refused",
    )
    await readerDetail.getByRole('button', { name: 'Delete user' }).click()
    await page.getByTestId('user-u-reader').waitFor({ state: 'detached' })
    t.equal(
      (await adminCall(endpoint, ROOT, 'GET', '/users/u-reader')).status,
      404,
      'the user deleted in the console is gone',
    )
    await shot(page, '26-identity-admin')
    // Leave the account as it was for what follows.
    const restored = await adminCall(endpoint, ROOT, 'PATCH', '/account', {
      maxKeyAgeDays: original.maxKeyAgeDays,
      guardrails: { deniedActions: original.guardrails.deniedActions },
    })
    t.equal(restored.status, 200, 'the account settings are restored')
    await page.close()
  })

  await t.test('cluster: the Heal button starts a heal whose progress is shown', async (t) => {
    // Enough versions on every drive that a deep scan at 2 versions/s runs for half a minute.
    await root.send(new CreateBucketCommand({ Bucket: 'heal-eta' }))
    for (let i = 0; i < 40; i++) {
      await root.send(new PutObjectCommand({ Bucket: 'heal-eta', Key: `v/${i}`, Body: `v${i}` }))
    }
    const page = await consolePage(browser, problems)
    await signInToConsole(page, endpoint, ROOT)
    await page.getByTestId('nav-cluster').click()
    const drive = page.getByTestId('drive-row').first()
    await drive.waitFor()
    const name = (await drive.getAttribute('data-drive')) ?? ''
    const [node, ...path] = name.split(':')
    const clicked = Date.now()
    await drive.getByTestId('heal-button').click()
    // The healer reports the pass it ran (done / total versions); the page refreshes every 5 s.
    const pass = drive.getByTestId('heal-pass')
    await pass.waitFor({ timeout: 30_000 })
    let report: { state: string; total?: number; done?: number; startedAt?: number } | undefined
    for (let i = 0; i < 300; i++) {
      const heal = await adminCall(endpoint, ROOT, 'GET', '/heal')
      report = heal.body.drives.find(
        (d: { node: string; path: string }) => d.node === node && d.path === path.join(':'),
      )
      if (report && (report.startedAt ?? 0) >= clicked - 1000 && report.state === 'idle') break
      await new Promise((r) => setTimeout(r, 100))
    }
    t.ok((report?.startedAt ?? 0) >= clicked - 1000, 'the Heal button started a pass on the drive')
    t.equal(report?.done, report?.total, 'the pass went through every version')
    // The page shows that pass: done / total with a progress bar.
    const want = `${report?.done} / ${report?.total}`
    await drive.getByTestId('heal-pass').getByText(want).waitFor({ timeout: 15_000 })
    t.ok(await drive.locator('progress').isVisible(), 'with a progress bar')
    // Root may view the cluster: the charts add up every gateway's requests (GET /requests).
    await page
      .getByTestId('metrics')
      .getByRole('heading', { name: /whole cluster \(1 gateway\)/ })
      .waitFor({ timeout: 30_000 })
    t.match(
      await page.getByTestId('metrics').textContent(),
      /S3 requests, whole cluster \(1 gateway\)/,
      'the request charts say they are the whole cluster’s',
    )
    await shot(page, '27-heal')

    // A deep scan asked for is paced at 10× the scan rate: while it runs, the row shows done /
    // total and an ETA in seconds or minutes, the admin API's estimate for that drive.
    await drive.getByTestId('deep-scan-button').click()
    const eta = drive.getByTestId('heal-eta')
    let shownEta = ''
    for (let i = 0; i < 100 && !/^\d+ (s|min)/.test(shownEta); i++) {
      shownEta = ((await eta.count()) > 0 ? await eta.textContent() : '') ?? ''
      if (!/^\d+ (s|min)/.test(shownEta)) await new Promise((r) => setTimeout(r, 200))
    }
    t.match(shownEta, /^\d+ (s|min)/, `the running scan's ETA is shown (${shownEta})`)
    const running = (await adminCall(endpoint, ROOT, 'GET', '/heal')).body.drives.find(
      (d: { node: string; path: string }) => d.node === node && d.path === path.join(':'),
    )
    t.equal(running?.state, 'scanning', 'the drive is in its deep scan')
    t.ok(running?.done < running?.total, `${running?.done} of ${running?.total} versions done`)
    // At 10 × 0.2 = 2 versions/s the rest takes (total − done) / 2 s; client traffic may slow the
    // scan a little.
    const nominal = (running?.total - running?.done) / 2
    t.ok(
      running?.etaSeconds >= nominal / 2 && running?.etaSeconds <= nominal * 5,
      `the admin API estimates ${running?.etaSeconds} s left, about the ${nominal} s the scan rate gives`,
    )
    t.match(
      await drive.getByTestId('heal-pass').textContent(),
      /^\d+ \/ \d+$/,
      'with the pass as done / total',
    )
    await shot(page, '28-deep-scan-eta')
    await page.close()
  })

  t.same(problems, [], 'the browser reported no CSP violation or page error')
})
