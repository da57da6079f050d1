/**
 * The web console end to end (issue #9): Debian's chromium, driven by playwright-core, against
 * a real cluster's gateway. The console signs every call in the browser, so what each role sees
 * and may do is checked on both sides: the controls the UI shows or hides, and what the gateway
 * then allows or refuses. Also checked: the strict headers and CSP (no violation reported by
 * the browser), a 50 MiB multipart upload with progress and a cancelled one, a key issued in
 * the UI and used with awscli, a bucket policy edited in the UI that makes a request fail, and
 * `console: false`. Screenshots of the main pages go to test/artifacts/console/.
 */
import { appendFile, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3'
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts'
import type { Page } from 'playwright-core'
import t from 'tap'
import { adminCall, createProject, createUserWithKey } from './harness/admin.ts'
import {
  CONSOLE_PATH,
  launchBrowser,
  consolePage as openPage,
  showsTestId as shows,
  signInToConsole as signIn,
} from './harness/browser.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { ensureDebianPackages, sh } from './harness/debian.ts'
import { bytes, s3Client, s3Fault } from './harness/s3.ts'

const PROJECT = 'alpha'
/** Screenshots of the main pages, kept as test artifacts. */
const ARTIFACTS = fileURLToPath(new URL('../artifacts/console/', import.meta.url))
const UPLOAD_BYTES = 50 * 1024 * 1024
/** How long the test holds back each uploaded part in the browser, in ms. */
const PART_DELAY_MS = 1000

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
}

t.test('the web console', async (t) => {
  await mkdir(ARTIFACTS, { recursive: true })
  const cluster = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  t.teardown(() => cluster.close())
  const gw = cluster.gateways[0]!
  const endpoint = () => gw.endpoint
  const root = s3Client(endpoint(), { credentials: ROOT })
  await createProject(endpoint(), ROOT, PROJECT)
  const reader = await createUserWithKey(endpoint(), ROOT, 'rita', PROJECT, [{ role: 'reader' }])
  const s3user = await createUserWithKey(endpoint(), ROOT, 'sam', PROJECT, [{ role: 's3-user' }])
  const padmin = await createUserWithKey(endpoint(), ROOT, 'pat', PROJECT, [
    { role: 'project-admin' },
  ])
  const bucket = 'alpha-photos'
  await s3Client(endpoint(), { credentials: padmin }).send(
    new CreateBucketCommand({ Bucket: bucket }),
  )
  await root.send(new PutObjectCommand({ Bucket: bucket, Key: 'docs/readme.txt', Body: 'hello' }))

  const browser = await launchBrowser(t)
  const problems: string[] = []

  await t.test('served with strict headers; no inline code', async (t) => {
    const res = await fetch(`${endpoint()}${CONSOLE_PATH}`)
    t.equal(res.status, 200)
    t.match(res.headers.get('content-type'), /^text\/html/)
    const csp = res.headers.get('content-security-policy') ?? ''
    for (const d of [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
      "object-src 'none'",
      "base-uri 'none'",
    ])
      t.ok(csp.includes(d), `CSP has ${d}`)
    t.equal(res.headers.get('x-content-type-options'), 'nosniff')
    t.equal(res.headers.get('referrer-policy'), 'no-referrer')
    t.equal(res.headers.get('x-frame-options'), 'DENY')
    t.equal(res.headers.get('cache-control'), 'no-cache', 'index.html is revalidated')
    const html = await res.text()
    t.notMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script')
    t.notMatch(html, /<style|style=/, 'no inline style')
    const asset = /src="([^"]+\.js)"/.exec(html)?.[1]
    t.ok(asset, 'index.html loads a hashed script')
    const js = await fetch(`${endpoint()}${asset}`)
    t.equal(js.status, 200)
    t.match(js.headers.get('cache-control'), /max-age=31536000, immutable/, 'assets cached long')
    t.match(js.headers.get('content-type'), /javascript/)
    const missing = await fetch(`${endpoint()}${CONSOLE_PATH}nope.js`)
    t.equal(missing.status, 404, 'an unknown file is 404')
    const post = await fetch(`${endpoint()}${CONSOLE_PATH}`, { method: 'POST', body: 'x' })
    t.equal(post.status, 405, 'the console only serves GET and HEAD')
    const bare = await fetch(`${endpoint()}/_tessera/console`, { redirect: 'manual' })
    t.equal(bare.status, 301)
    t.equal(bare.headers.get('location'), CONSOLE_PATH)
  })

  await t.test('whoami reports capabilities from the real decision', async (t) => {
    const r = await adminCall(endpoint(), reader, 'GET', `/whoami?bucket=${bucket}`)
    t.equal(r.status, 200)
    t.equal(r.body.name, 'rita')
    t.same(r.body.roles, [{ role: 'reader' }])
    t.equal(r.body.capabilities.listBuckets, true)
    t.equal(r.body.capabilities.createBucket, false)
    t.equal(r.body.capabilities.manageUsers, false)
    t.equal(r.body.capabilities.viewUsers, true)
    t.equal(r.body.capabilities.viewCluster, true)
    t.equal(r.body.bucket.capabilities.read, true)
    t.equal(r.body.bucket.capabilities.upload, false)
    t.equal(r.body.limits.policyMaxBytes, 2048)
    const p = await adminCall(endpoint(), padmin, 'GET', `/whoami?bucket=${bucket}`)
    t.equal(p.body.capabilities.createBucket, true)
    t.equal(p.body.capabilities.viewCluster, false)
    t.equal(p.body.capabilities.manageUsers, false)
    t.equal(p.body.bucket.capabilities.upload, true)
    t.equal(p.body.bucket.capabilities.writePolicy, true)
    const bad = await adminCall(endpoint(), padmin, 'GET', '/whoami?prefix=a')
    t.equal(bad.status, 400, 'a prefix without a bucket is refused')
    t.equal(bad.body.error.code, 'InvalidInput')
  })

  await t.test('root: everything is visible; create a bucket; 50 MiB upload', async (t) => {
    const page = await openPage(browser, problems)
    await page.goto(`${endpoint()}${CONSOLE_PATH}`)
    await shot(page, '01-sign-in')
    // A wrong secret is refused by the gateway and the page says so.
    await page.getByTestId('access-key').fill(ROOT.accessKeyId)
    await page.getByTestId('secret-key').fill('not-the-secret')
    await page.getByTestId('sign-in').click()
    await page.getByRole('alert').waitFor()
    t.match(await page.getByRole('alert').textContent(), /SignatureDoesNotMatch|AccessDenied/)
    await signIn(page, endpoint(), ROOT)
    t.ok(await shows(page, 'nav-identity'), 'root sees Identity')
    t.ok(await shows(page, 'nav-cluster'), 'root sees Cluster')
    await page.getByTestId('bucket-list').waitFor()
    t.ok(await shows(page, 'create-bucket'), 'root may create buckets')
    await page.getByLabel('New bucket name').fill('console-made')
    await page.getByRole('button', { name: 'Create bucket' }).click()
    await page.getByRole('link', { name: 'console-made' }).waitFor()
    await shot(page, '02-buckets')

    // Folders, prefix search and pages of the object browser.
    for (let i = 0; i < 7; i++) {
      await root.send(
        new PutObjectCommand({ Bucket: 'console-made', Key: `many/k${i}`, Body: `${i}` }),
      )
    }
    await page.getByRole('link', { name: 'console-made' }).click()
    await page.getByRole('link', { name: /many\// }).click()
    await page.getByTestId('object-row').first().waitFor()
    t.equal(await page.getByTestId('object-row').count(), 7, 'a folder lists its keys')
    await page.getByTestId('search').fill('k3')
    await page.getByTestId('object-row').nth(1).waitFor({ state: 'detached' })
    t.equal(await page.getByTestId('object-row').count(), 1)
    t.match(await page.getByTestId('object-row').textContent(), /k3/)
    t.pass('prefix search narrows the listing to many/k3')
    await page.getByTestId('search').fill('')

    // Pages: 60 keys at 50 a page take two pages, fetched with a continuation token.
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        root.send(
          new PutObjectCommand({
            Bucket: 'console-made',
            Key: `paged/p${String(i).padStart(2, '0')}`,
            Body: 'x',
          }),
        ),
      ),
    )
    await page.getByRole('link', { name: 'console-made' }).last().click()
    await page.getByRole('combobox').selectOption('50')
    await page.getByRole('link', { name: /paged\// }).click()
    await page.getByTestId('object-row').filter({ hasText: 'p49' }).waitFor()
    t.equal(await page.getByTestId('object-row').count(), 50, 'the first page holds 50 keys')
    await page.getByTestId('next-page').click()
    await page.getByTestId('object-row').filter({ hasText: 'p59' }).waitFor()
    t.equal(await page.getByTestId('object-row').count(), 10, 'the second page the other 10')
    t.equal(await page.getByTestId('page-number').textContent(), 'Page 2')
    t.ok(await page.getByTestId('next-page').isDisabled(), 'no third page')

    // Upload 50 MiB through the file input; lib-storage makes it multipart (8 MiB parts).
    const file = join(t.testdir(), 'big.bin')
    await writeFile(file, bytes(UPLOAD_BYTES, 9))
    await page.getByRole('link', { name: 'console-made' }).last().click()
    await page.getByTestId('upload-button').waitFor()
    // A loopback upload of 50 MiB takes a fraction of a second: each part is held back a
    // moment in the browser, so progress and cancel are observable without a race.
    await page.route(
      (url) => url.searchParams.has('partNumber'),
      async (route) => {
        await new Promise((r) => setTimeout(r, PART_DELAY_MS))
        await route.continue().catch(() => {})
      },
    )
    await page.getByTestId('file-input').setInputFiles(file)
    const seen = new Set<number>()
    const state = page.getByTestId('upload-state').first()
    for (;;) {
      const v = Number(await page.getByTestId('upload-progress').first().getAttribute('value'))
      seen.add(v)
      const s = (await state.textContent()) ?? ''
      if (s === 'done' || s.startsWith('failed')) break
      if (seen.size === 3) await shot(page, '03-upload-progress')
      await new Promise((r) => setTimeout(r, 20))
    }
    t.equal(await state.textContent(), 'done', 'the 50 MiB upload finished')
    t.ok(seen.size >= 3, 'progress was reported more than once')
    t.ok(
      [...seen].some((v) => v > 0 && v < 100),
      `progress was shown between 0 and 100 (${[...seen].sort((a, b) => a - b).join(', ')})`,
    )
    const head = await root.send(new HeadObjectCommand({ Bucket: 'console-made', Key: 'big.bin' }))
    t.equal(head.ContentLength, UPLOAD_BYTES, 'the object has all 50 MiB')
    t.match(head.ETag, /-7"$/, 'it was uploaded in 7 parts')
    await page.getByTestId('object-row').filter({ hasText: 'big.bin' }).waitFor()
    await shot(page, '04-objects')

    // Drag and drop: a file dropped on the listing is uploaded into the current folder.
    const dropped = await page.evaluateHandle(() => {
      const g = globalThis as unknown as {
        DataTransfer: new () => { items: { add(f: unknown): void } }
        File: new (parts: string[], name: string) => unknown
      }
      const dt = new g.DataTransfer()
      dt.items.add(new g.File(['dropped bytes'], 'dropped.txt'))
      return dt
    })
    await page.getByTestId('drop-zone').dispatchEvent('drop', { dataTransfer: dropped })
    await page
      .getByTestId('upload-item')
      .filter({ hasText: 'dropped.txt' })
      .getByText('done')
      .waitFor()
    const droppedHead = await root.send(
      new HeadObjectCommand({ Bucket: 'console-made', Key: 'dropped.txt' }),
    )
    t.equal(droppedHead.ContentLength, 13, 'a dropped file is uploaded')

    // Tags and a share link on a small object: the link works without any credential.
    await root.send(
      new PutObjectCommand({ Bucket: 'console-made', Key: 'note.txt', Body: 'shared text' }),
    )
    await page.getByTestId('search').fill('note')
    const note = page.getByTestId('object-row').filter({ hasText: 'note.txt' })
    await note.getByRole('button', { name: 'Tags' }).click()
    await page.getByLabel('Tags').fill('team=photo\nstage=raw')
    await page.getByTestId('tags-save').click()
    await page.getByText('Tags saved').waitFor()
    const tags = await root.send(
      new GetObjectTaggingCommand({ Bucket: 'console-made', Key: 'note.txt' }),
    )
    t.same(
      (tags.TagSet ?? []).map((x) => `${x.Key}=${x.Value}`).sort(),
      ['stage=raw', 'team=photo'],
      'tags edited in the console are stored',
    )
    await note.getByRole('button', { name: 'Share' }).click()
    await page.getByRole('button', { name: 'Link valid 1 day' }).click()
    const link = await page.getByTestId('share-url').inputValue()
    t.match(link, /X-Amz-Expires=86400/, 'the link expires in a day')
    t.notOk(link.includes(ROOT.secretAccessKey), 'the link does not hold the secret')
    const shared = await fetch(link)
    t.equal(await shared.text(), 'shared text', 'the share link reads the object anonymously')
    await shot(page, '04b-share-and-tags')
    await page.getByTestId('search').fill('')

    // Versioning from the settings tab; versions and delete markers in the versions tab.
    await page.getByTestId('tab-settings').click()
    await page
      .getByTestId('noncurrent-default')
      .getByText(/after 7 days/)
      .first()
      .waitFor()
    t.pass('the 7-day noncurrent default is shown')
    await page.getByRole('button', { name: 'Enable' }).click()
    await page.getByTestId('versioning-status').getByText('Enabled').waitFor()
    await root.send(new PutObjectCommand({ Bucket: 'console-made', Key: 'note.txt', Body: 'v2' }))
    await root.send(new DeleteObjectCommand({ Bucket: 'console-made', Key: 'note.txt' }))
    await page.getByTestId('tab-versions').click()
    const versions = page.getByTestId('version-list')
    await versions.getByText('delete marker').waitFor()
    t.equal(
      await versions.locator('tr', { hasText: 'note.txt' }).count(),
      3,
      'two versions and a delete marker of note.txt',
    )
    await shot(page, '04c-versions')
    await page.getByRole('button', { name: 'Objects' }).click()

    // Cancel: a second upload aborted at once leaves no object and no multipart upload.
    const second = join(t.testdir(), 'cancelled.bin')
    await writeFile(second, bytes(UPLOAD_BYTES, 10))
    await page.getByTestId('file-input').setInputFiles(second)
    const item = page.getByTestId('upload-item').filter({ hasText: 'cancelled.bin' })
    await item.getByRole('button', { name: 'Cancel' }).click()
    await item.getByText('cancelled', { exact: true }).waitFor()
    t.pass('the upload shows cancelled')
    await t.rejects(
      root.send(new HeadObjectCommand({ Bucket: 'console-made', Key: 'cancelled.bin' })),
      'a cancelled upload leaves no object',
    )
    let pending = 1
    for (let i = 0; i < 50 && pending > 0; i++) {
      const l = await root.send(new ListMultipartUploadsCommand({ Bucket: 'console-made' }))
      pending = (l.Uploads ?? []).length
      if (pending > 0) await new Promise((r) => setTimeout(r, 100))
    }
    t.equal(pending, 0, 'the cancelled multipart upload was aborted')

    // Delete from the browser.
    await page
      .getByTestId('object-row')
      .filter({ hasText: 'big.bin' })
      .getByTestId('delete-object')
      .click()
    await page.getByText('Deleted big.bin').waitFor()
    await t.rejects(root.send(new HeadObjectCommand({ Bucket: 'console-made', Key: 'big.bin' })))

    // Cluster and identity pages.
    await page.getByTestId('nav-cluster').click()
    await page.getByTestId('cluster-summary').waitFor()
    await page.getByTestId('erasure-set').first().waitFor()
    t.equal(await page.getByTestId('erasure-set').count(), 1, 'one erasure set')
    t.match(await page.getByTestId('cluster-summary').textContent(), /4 \/ 4/, '4 drives online')
    // The charts need two samples of /_tessera/metrics, 5 s apart.
    await page
      .getByTestId('metrics')
      .locator('polyline')
      .first()
      .waitFor({ state: 'attached', timeout: 60_000 })
    t.match(
      await page.getByTestId('metrics').textContent(),
      /Requests per second \(whole cluster\): \d/,
      'the request rate is charted',
    )
    await shot(page, '05-cluster')
    await page.getByTestId('nav-identity').click()
    await page.getByTestId('users').getByText('rita').waitFor()
    t.ok(await shows(page, 'create-user'), 'root may create users')
    await shot(page, '06-identity')
    t.ok(await shows(page, 'managed-policies'), 'root sees managed policies')
    t.ok(await shows(page, 'guardrails'), 'root sees the guardrails')
    await page.getByTestId('audit').getByText('CreateUser').first().waitFor()
    t.pass('the audit view lists identity changes')
    await page.close()
  })

  await t.test('a key issued in the console works with awscli', async (t) => {
    const page = await openPage(browser, problems)
    await signIn(page, endpoint(), ROOT)
    await page.getByTestId('nav-identity').click()
    await page.getByTestId('open-user-pat').click()
    const keys = page.getByTestId('keys-pat')
    await keys.getByTestId('key-project').selectOption(PROJECT)
    await keys.getByTestId('create-key').click()
    await page.getByTestId('new-key').waitFor()
    const id = ((await page.getByTestId('new-key-id').textContent()) ?? '').trim()
    const secret = ((await page.getByTestId('new-key-secret').textContent()) ?? '').trim()
    t.match(id, /^\S{16,}$/, 'the key id is shown')
    t.ok(secret.length >= 20, 'the secret is shown once')
    t.ok(
      await page.getByRole('link', { name: 'Download credentials file' }).isVisible(),
      'a credentials file can be downloaded',
    )
    await shot(page, '07-new-key')
    await page.getByTestId('new-key-done').click()
    t.notOk(await shows(page, 'new-key'), 'the secret is gone once acknowledged')
    t.notOk(page.url().includes(secret), 'the secret is not in the URL')
    const stored = await page.evaluate(() => {
      const g = globalThis as unknown as { localStorage: { length: number } }
      return g.localStorage.length
    })
    t.equal(stored, 0, 'nothing in localStorage')

    // A role bound in the console is a role the gateway knows.
    await page.getByTestId('open-user-rita').click()
    const ritaRow = page.locator('tr.detail')
    await ritaRow.getByLabel('Role', { exact: true }).selectOption('observer')
    await ritaRow.getByLabel('Project', { exact: true }).selectOption(PROJECT)
    await ritaRow.getByRole('button', { name: 'Bind role' }).click()
    await page.getByTestId('user-rita').getByText('observer@alpha').waitFor()
    const rita = await adminCall(endpoint(), ROOT, 'GET', '/users/rita/roles')
    t.same(
      rita.body.roles,
      [{ role: 'reader' }, { role: 'observer', project: PROJECT }],
      'the binding made in the console is stored',
    )

    const bin = await ensureDebianPackages({ awscli: 'aws' })
    const dir = t.testdir()
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWS_ACCESS_KEY_ID: id,
      AWS_SECRET_ACCESS_KEY: secret,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(dir, 'aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'aws-credentials'),
    }
    delete env.AWS_CA_BUNDLE
    const out = await sh(
      bin.aws!,
      ['--endpoint-url', endpoint(), 's3', 'ls', `s3://${bucket}/docs/`],
      env,
    )
    t.match(out, /readme\.txt/, 'awscli lists the bucket with the new key')
    await page.close()
  })

  await t.test('reader: sees, cannot change', async (t) => {
    const page = await openPage(browser, problems)
    await signIn(page, endpoint(), reader)
    await page.getByTestId('bucket-list').waitFor()
    t.notOk(await shows(page, 'create-bucket'), 'no create-bucket form')
    t.ok(await shows(page, 'nav-cluster'), 'the cluster page is visible')
    await page.getByRole('link', { name: bucket }).click()
    await page.getByRole('link', { name: /docs\// }).click()
    await page.getByTestId('object-row').first().waitFor()
    t.ok(await page.getByRole('button', { name: 'Download' }).isVisible(), 'may download')
    t.notOk(await shows(page, 'upload-button'), 'no upload button')
    t.notOk(await shows(page, 'delete-object'), 'no delete button')
    await shot(page, '08-reader-objects')
    await page.getByTestId('nav-identity').click()
    await page.getByTestId('users').waitFor()
    t.notOk(await shows(page, 'create-user'), 'no create-user form')
    // The server refuses what the UI hides.
    const r = await adminCall(endpoint(), reader, 'POST', '/users', { name: 'mallory' })
    t.equal(r.status, 403)
    await page.close()
  })

  await t.test('s3-user without a policy: nothing to list; own keys only', async (t) => {
    const page = await openPage(browser, problems)
    await signIn(page, endpoint(), s3user)
    await page.getByText('Your roles do not allow listing buckets.').waitFor()
    t.notOk(await shows(page, 'create-bucket'), 'no create-bucket form')
    t.notOk(await shows(page, 'nav-cluster'), 'no cluster page')
    await page.getByTestId('nav-identity').click()
    await page.getByTestId('my-keys').waitFor()
    t.notOk(await shows(page, 'users'), 'no user list')
    t.notOk(await shows(page, 'projects'), 'no project list')
    await shot(page, '09-s3-user')
    await page.close()
  })

  await t.test('project-admin: bucket policy edited in the console denies a request', async (t) => {
    const page = await openPage(browser, problems)
    await signIn(page, endpoint(), padmin)
    await page.getByTestId('bucket-list').waitFor()
    t.ok(await shows(page, 'create-bucket'), 'may create buckets in its project')
    await page.getByTestId('nav-identity').click()
    await page.getByLabel('Service account name').fill('ci')
    await page.getByRole('button', { name: 'Create service account' }).click()
    await page.getByTestId('new-key').waitFor()
    const saId = ((await page.getByTestId('new-key-id').textContent()) ?? '').trim()
    const saSecret = ((await page.getByTestId('new-key-secret').textContent()) ?? '').trim()
    await page.getByTestId('new-key-done').click()
    const sa = s3Client(endpoint(), {
      credentials: { accessKeyId: saId, secretAccessKey: saSecret },
    })
    const listed = await sa.send(new ListObjectsV2Command({ Bucket: bucket }))
    t.ok((listed.KeyCount ?? 0) > 0, 'the service account made in the console lists the bucket')
    t.notOk(await shows(page, 'users'), 'a project-admin has no user list')
    await page.getByRole('link', { name: 'Buckets' }).click()
    await page.getByTestId('bucket-list').waitFor()
    t.notOk(await shows(page, 'nav-cluster'), 'no cluster page')
    await page.getByRole('link', { name: bucket }).click()
    await page.getByTestId('upload-button').waitFor()
    await page.getByTestId('tab-settings').click()
    const editor = page.getByTestId('policy-editor')
    await editor.waitFor()
    await page.getByTestId('acl').waitFor()
    for (const id of ['public-access-block', 'cors', 'acl'])
      t.ok(await shows(page, id), `the settings tab shows ${id}`)
    t.ok(
      await page.getByRole('checkbox', { name: 'Block public bucket policies' }).isChecked(),
      'new buckets block public policies',
    )
    // Validation: bad JSON and an oversized document are caught before sending.
    await editor.fill('{"Version": ')
    await page
      .getByTestId('policy-problems')
      .getByText(/Not valid JSON/)
      .waitFor()
    t.ok(await page.getByTestId('policy-save').isDisabled(), 'cannot save invalid JSON')
    const big = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Deny',
          Principal: '*',
          Action: 's3:PutObject',
          Resource: Array.from({ length: 60 }, (_, i) => `arn:aws:s3:::${bucket}/p${i}/*`),
        },
      ],
    }
    await editor.fill(JSON.stringify(big))
    await page
      .getByTestId('policy-problems')
      .getByText(/the limit is 2048/)
      .waitFor()
    t.ok(await page.getByTestId('policy-save').isDisabled(), 'cannot save an oversized policy')
    // Not public (BlockPublicPolicy is on by default): it names pat, allows reading and denies
    // uploads.
    const accountId = (await adminCall(endpoint(), ROOT, 'GET', '/account')).body.id as string
    const pat = { AWS: `arn:aws:iam::${accountId}:user/pat` }
    const deny = {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'NoUploads',
          Effect: 'Deny',
          Principal: pat,
          Action: 's3:PutObject',
          Resource: `arn:aws:s3:::${bucket}/*`,
        },
        {
          Sid: 'Read',
          Effect: 'Allow',
          Principal: pat,
          Action: ['s3:GetObject', 's3:ListBucket'],
          Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`],
        },
      ],
    }
    await editor.fill(JSON.stringify(deny, null, 2))
    await page.getByTestId('policy-save').click()
    const saved = page.getByText('Policy saved').or(page.getByRole('alert'))
    await saved.first().waitFor()
    const said = await saved.first().textContent()
    t.equal(said, 'Policy saved', `the policy is saved (${said})`)
    await shot(page, '10-bucket-policy')
    // The gateway now refuses an upload by this user...
    try {
      await s3Client(endpoint(), { credentials: padmin }).send(
        new PutObjectCommand({ Bucket: bucket, Key: 'x.txt', Body: 'x' }),
      )
      t.fail('PutObject after the Deny policy succeeded')
    } catch (err) {
      t.same(
        { code: s3Fault(err).code, status: s3Fault(err).status },
        { code: 'AccessDenied', status: 403 },
        'PutObject is denied by the policy edited in the console',
      )
    }
    // ...and the console hides the upload control.
    await page.reload()
    await page.getByTestId('object-list').waitFor()
    await page.getByTestId('tab-settings').waitFor()
    t.notOk(await shows(page, 'upload-button'), 'the upload button is hidden now')
    await page.getByTestId('sign-out').click()
    await page.getByTestId('sign-in').waitFor()
    const left = await page.evaluate(() => {
      const g = globalThis as unknown as { sessionStorage: { length: number } }
      return g.sessionStorage.length
    })
    t.equal(left, 0, 'sign-out clears the session storage')
    await page.close()
  })

  await t.test('temporary credentials sign in; a session manages no identities', async (t) => {
    const sts = new STSClient({
      endpoint: endpoint(),
      region: 'us-east-1',
      credentials: padmin,
      maxAttempts: 1,
    })
    const r = await sts.send(
      new AssumeRoleCommand({
        RoleArn: 'arn:aws:iam::000000000000:role/console',
        RoleSessionName: 'console',
        DurationSeconds: 900,
      }),
    )
    const page = await openPage(browser, problems)
    await page.goto(`${endpoint()}${CONSOLE_PATH}`)
    await page.getByTestId('access-key').fill(r.Credentials!.AccessKeyId!)
    await page.getByTestId('secret-key').fill(r.Credentials!.SecretAccessKey!)
    await page.getByLabel('Temporary credentials (session token)').check()
    await page.getByRole('textbox', { name: 'Session token' }).fill(r.Credentials!.SessionToken!)
    await page.getByTestId('sign-in').click()
    await page.getByTestId('whoami').waitFor()
    t.match(await page.getByTestId('whoami').textContent(), /session/, 'signed in as a session')
    await page.getByRole('link', { name: bucket }).waitFor()
    t.pass('the session lists the project bucket')
    t.notOk(await shows(page, 'nav-identity'), 'a session has no identity page')
    await page.close()
  })

  t.same(problems, [], 'the browser reported no CSP violation or page error')

  await t.test('console: false turns it off', async (t) => {
    await cluster.stop(gw.id)
    await appendFile(gw.configPath, '\nconsole: false\n')
    await cluster.startGateway(gw.id)
    const res = await fetch(`${endpoint()}${CONSOLE_PATH}`)
    t.equal(res.status, 404)
    t.match(await res.text(), /turned off/)
    const who = await adminCall(endpoint(), ROOT, 'GET', '/whoami')
    t.equal(who.status, 200, 'the admin API still answers')
  })
})
