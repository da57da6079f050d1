// The pure logic of the load generator: its SigV4 signer against the aws4 library (the reference
// implementation it must agree with, byte for byte), percentiles, and the parsing of sizes,
// durations and mixes. The generator itself is checked by running it: pnpm bench:load -- --smoke
// and pnpm bench:validate (against aws s3 cp). `npx tap bench/dist/load-generator.test.js`
import aws4 from 'aws4'
import t from 'tap'
import { formatBytes, percentile } from './s3-load.ts'
import { canonicalQuery, createSigner, encodePath } from './sigv4.ts'
import { parseDuration, parseMix, parseSize } from './units.ts'

const creds = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
}
const host = '127.0.0.1:9000'
const now = new Date('2026-11-24T01:02:03.456Z')

/** The headers aws4 makes for the same request, as a name → value map (lower-case names). */
function reference(method: string, path: string, headers: Record<string, string>) {
  const req = { service: 's3', region: 'us-east-1', method, host, path, headers: { ...headers } }
  aws4.sign(req, creds)
  return Object.fromEntries(
    Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), String(v)]),
  )
}

function asMap(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i < flat.length; i += 2) out[flat[i]!.toLowerCase()] = flat[i + 1]!
  return out
}

t.test('signs as aws4 does: PUT with UNSIGNED-PAYLOAD, key needing encoding', async (t) => {
  const path = `/bench/${encodePath("dir/a key+(1)*!'~.txt")}`
  const ours = asMap(createSigner(creds, 'us-east-1').headers('PUT', host, path, '', now))
  const want = reference('PUT', path, {
    'X-Amz-Date': '20261124T010203Z',
    'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD',
  })
  t.equal(ours.authorization, want.authorization)
  t.equal(ours['x-amz-date'], '20261124T010203Z')
  t.equal(ours.host, host)
})

t.test('signs as aws4 does: ListObjectsV2 with a query', async (t) => {
  const query = canonicalQuery({ 'list-type': '2', prefix: 'obj-4096-', 'max-keys': '1000' })
  const ours = asMap(createSigner(creds, 'us-east-1').headers('GET', host, '/bench', query, now))
  const want = reference('GET', `/bench?${query}`, {
    'X-Amz-Date': '20261124T010203Z',
    'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD',
  })
  t.equal(ours.authorization, want.authorization)
})

t.test('signs as aws4 does: PUT with a signed payload and Content-MD5', async (t) => {
  const payload = {
    sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    md5: '1B2M2Y8AsgTpgAmY7PhCfg==',
  }
  const ours = asMap(
    createSigner(creds, 'us-east-1').headers('PUT', host, '/bench/k', '', now, payload),
  )
  const want = reference('PUT', '/bench/k', {
    'X-Amz-Date': '20261124T010203Z',
    'X-Amz-Content-Sha256': payload.sha256,
    'Content-MD5': payload.md5,
  })
  t.equal(ours.authorization, want.authorization)
  t.equal(ours['content-md5'], payload.md5)
})

t.test('reuses headers within a second only', async (t) => {
  const s = createSigner(creds, 'us-east-1')
  const a = s.headers('GET', host, '/bench/k', '', now)
  t.equal(s.headers('GET', host, '/bench/k', '', new Date(now.getTime() + 500)), a)
  const later = s.headers('GET', host, '/bench/k', '', new Date(now.getTime() + 1000))
  t.not(later, a)
  t.equal(asMap(later)['x-amz-date'], '20261124T010204Z')
})

t.test('nearest-rank percentiles', async (t) => {
  const v = Float64Array.from({ length: 100 }, (_, i) => i + 1)
  t.equal(percentile(v, 0.5), 50)
  t.equal(percentile(v, 0.99), 99)
  t.equal(percentile(v, 1), 100)
  t.equal(percentile(Float64Array.of(7), 0.99), 7)
  t.ok(Number.isNaN(percentile(new Float64Array(0), 0.5)))
})

t.test('sizes, durations and mixes', async (t) => {
  t.equal(parseSize('4KiB'), 4096)
  t.equal(parseSize('16MiB'), 16 * 1024 * 1024)
  t.equal(parseSize('1MB'), 1e6)
  t.throws(() => parseSize('lots'), /not a size/)
  t.equal(parseDuration('1m30s'), 90_000)
  t.equal(parseDuration('500ms'), 500)
  t.equal(parseDuration('2'), 2000)
  t.throws(() => parseDuration('5 minutes'), /not a duration/)
  t.same(parseMix('get=60,put=30,stat=10'), { get: 60, put: 30, head: 10 })
  t.throws(() => parseMix('get=0'), /no weight/)
  t.throws(() => parseMix('copy=5'), /not a mix/)
  t.equal(formatBytes(4096), '4KiB')
  t.equal(formatBytes(16 * 1024 * 1024), '16MiB')
  t.equal(formatBytes(1500), '1.5KiB')
})
