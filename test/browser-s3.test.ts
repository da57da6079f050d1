/**
 * A real browser against a real cluster: Debian's chromium (headless, through playwright-core)
 * loads a page from another origin (a small node:http server on its own loopback port) that
 * 1. fetch()es an object through a presigned URL and PUTs one with a header that needs a
 *    preflight, both allowed by the bucket's CORS rules, and is refused by the browser for a
 *    bucket without a matching rule and for a header the rules do not allow;
 * 2. submits an HTML form upload (POST Object) signed with a policy, as a web server would
 *    sign it, and lands back on the page's origin through success_action_redirect.
 * Every upload is then read back through @aws-sdk/client-s3 and compared byte for byte.
 */
import { createHash, createHmac } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketCorsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import t from 'tap'
import { launchBrowser } from './harness/browser.ts'
import { ROOT, startCluster } from './harness/cluster.ts'
import { bodyBytes, bytes, s3Client, uniqueBucket } from './harness/s3.ts'

const hmac = (k: string | Buffer, d: string) => createHmac('sha256', k).update(d).digest()

/** The SigV4 fields of a form policy, as a web server signs them for its page. */
function signForm(bucket: string, conditions: unknown[]): Record<string, string> {
  const now = new Date()
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
  const day = amzDate.slice(0, 8)
  const credential = `${ROOT.accessKeyId}/${day}/us-east-1/s3/aws4_request`
  const policy = Buffer.from(
    JSON.stringify({
      expiration: new Date(now.getTime() + 600_000).toISOString(),
      conditions: [
        { bucket },
        { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' },
        { 'x-amz-credential': credential },
        { 'x-amz-date': amzDate },
        ...conditions,
      ],
    }),
  ).toString('base64')
  const key = hmac(
    hmac(hmac(hmac(`AWS4${ROOT.secretAccessKey}`, day), 'us-east-1'), 's3'),
    'aws4_request',
  )
  return {
    'x-amz-algorithm': 'AWS4-HMAC-SHA256',
    'x-amz-credential': credential,
    'x-amz-date': amzDate,
    policy,
    'x-amz-signature': hmac(key, policy).toString('hex'),
  }
}

const escapeHtml = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;')

t.test('a browser page on another origin uses CORS and form uploads', async (t) => {
  const browser = await launchBrowser(t)
  const c = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = c.gateways[0]!.endpoint
  const s3 = s3Client(endpoint)
  t.teardown(() => s3.destroy())

  // The page's own origin: another port on loopback.
  let formHtml = ''
  const pages = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    res.setHeader('Content-Type', 'text/html; charset=utf-8')
    if (path === '/form') res.end(formHtml)
    else if (path === '/done') res.end('<!doctype html><title>done</title><p>uploaded</p>')
    else res.end('<!doctype html><title>app</title><p>app</p>')
  })
  await new Promise<void>((r) => pages.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => pages.close(r)))
  const origin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`

  const open = uniqueBucket('web')
  const closed = uniqueBucket('closed')
  for (const b of [open, closed]) {
    await s3.send(new CreateBucketCommand({ Bucket: b }))
    await s3.send(new PutObjectCommand({ Bucket: b, Key: 'hello.txt', Body: 'hello browser' }))
  }
  await s3.send(
    new PutBucketCorsCommand({
      Bucket: open,
      CORSConfiguration: {
        CORSRules: [
          {
            AllowedOrigins: [origin],
            AllowedMethods: ['GET', 'PUT', 'POST'],
            AllowedHeaders: ['cache-control', 'content-type'],
            ExposeHeaders: ['ETag'],
            MaxAgeSeconds: 60,
          },
        ],
      },
    }),
  )
  // The closed bucket has rules too, but none for this origin.
  await s3.send(
    new PutBucketCorsCommand({
      Bucket: closed,
      CORSConfiguration: {
        CORSRules: [{ AllowedOrigins: ['http://other.example'], AllowedMethods: ['GET'] }],
      },
    }),
  )

  const page = await browser.newPage()
  await page.goto(`${origin}/`)

  await t.test('fetch() with CORS: allowed and refused', async (t) => {
    const getOpen = await getSignedUrl(s3, new GetObjectCommand({ Bucket: open, Key: 'hello.txt' }))
    const getClosed = await getSignedUrl(
      s3,
      new GetObjectCommand({ Bucket: closed, Key: 'hello.txt' }),
    )
    const putUrl = await getSignedUrl(
      s3,
      new PutObjectCommand({ Bucket: open, Key: 'from-browser.txt' }),
    )
    const putDenied = await getSignedUrl(
      s3,
      new PutObjectCommand({ Bucket: open, Key: 'never.txt' }),
    )
    const out = await page.evaluate(
      async ({ getOpen, getClosed, putUrl, putDenied }) => {
        const attempt = async (run: () => Promise<Response>) => {
          try {
            const r = await run()
            return { ok: true, status: r.status, text: await r.text(), etag: r.headers.get('ETag') }
          } catch (err) {
            return { ok: false, error: String(err) }
          }
        }
        return {
          get: await attempt(() => fetch(getOpen)),
          blocked: await attempt(() => fetch(getClosed)),
          put: await attempt(() =>
            fetch(putUrl, {
              method: 'PUT',
              headers: { 'Cache-Control': 'max-age=60', 'Content-Type': 'text/plain' },
              body: 'put by the browser',
            }),
          ),
          putBlocked: await attempt(() =>
            fetch(putDenied, {
              method: 'PUT',
              headers: { 'X-Custom-Thing': '1' },
              body: 'never',
            }),
          ),
        }
      },
      { getOpen, getClosed, putUrl, putDenied },
    )
    t.same(
      { ok: out.get.ok, status: out.get.status, text: out.get.text },
      { ok: true, status: 200, text: 'hello browser' },
      'the CORS GET reads the object',
    )
    t.equal(
      out.blocked.ok,
      false,
      `the browser refuses a bucket without a rule: ${out.blocked.error}`,
    )
    t.equal(out.put.ok, true, `the preflighted PUT went through: ${out.put.error ?? ''}`)
    t.equal(out.put.status, 200)
    const want = createHash('md5').update('put by the browser').digest('hex')
    t.equal(out.put.etag, `"${want}"`, 'the exposed ETag is readable')
    t.equal(out.putBlocked.ok, false, 'a header the rules do not allow fails the preflight')
    const back = await s3.send(new GetObjectCommand({ Bucket: open, Key: 'from-browser.txt' }))
    t.equal(back.CacheControl, 'max-age=60', 'the custom header was stored')
    t.equal((await bodyBytes(back.Body)).toString(), 'put by the browser')
    const never = await s3.send(new HeadObjectCommand({ Bucket: open, Key: 'never.txt' })).then(
      () => 'exists',
      () => 'absent',
    )
    t.equal(never, 'absent', 'the refused PUT never reached the gateway')
  })

  await t.test('an HTML form upload with a signed policy', async (t) => {
    const redirect = `${origin}/done`
    const fields: Record<string, string> = {
      key: `forms/$\{filename}`,
      success_action_redirect: redirect,
      'Content-Type': 'application/octet-stream',
      ...signForm(open, [
        ['starts-with', '$key', 'forms/'],
        { success_action_redirect: redirect },
        ['starts-with', '$Content-Type', ''],
        ['content-length-range', 1, 10 * 1024 * 1024],
      ]),
    }
    const inputs = Object.entries(fields)
      .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
      .join('\n')
    formHtml = `<!doctype html><title>upload</title>
<form id="up" method="post" action="${endpoint}/${open}" enctype="multipart/form-data">
${inputs}
<input type="file" name="file">
<button type="submit">Upload</button>
</form>`
    const data = bytes(2 * 1024 * 1024 + 123, 42)
    await page.goto(`${origin}/form`)
    await page.setInputFiles('input[type=file]', {
      name: 'photo.bin',
      mimeType: 'application/octet-stream',
      buffer: data,
    })
    await Promise.all([page.waitForURL(`${redirect}?**`), page.click('button[type=submit]')])
    const landed = new URL(page.url())
    t.equal(landed.origin, origin, 'redirected back to the page origin')
    t.equal(landed.searchParams.get('bucket'), open)
    t.equal(landed.searchParams.get('key'), 'forms/photo.bin')
    const md5 = createHash('md5').update(data).digest('hex')
    t.equal(landed.searchParams.get('etag'), `"${md5}"`)
    const back = await bodyBytes(
      (await s3.send(new GetObjectCommand({ Bucket: open, Key: 'forms/photo.bin' }))).Body,
    )
    t.equal(back.length, data.length)
    t.ok(back.equals(data), 'the uploaded bytes landed')
  })
})
