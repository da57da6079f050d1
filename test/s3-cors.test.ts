/**
 * Bucket CORS against a real cluster: Get/Put/DeleteBucketCors through @aws-sdk/client-s3 and
 * awscli, preflight (OPTIONS) answers from the bucket's rules, and the Access-Control-* headers
 * on actual requests, including their error answers. Each case checks the allowed path and the
 * refused one, with S3's exact error code, status and message.
 */
import { request } from 'node:http'
import { join } from 'node:path'
import {
  type CORSRule,
  CreateBucketCommand,
  DeleteBucketCorsCommand,
  GetBucketCorsCommand,
  GetObjectCommand,
  PutBucketCorsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import t from 'tap'
import { ROOT, startCluster } from './harness/cluster.ts'
import { ensureDebianPackages, sh } from './harness/debian.ts'
import { s3Client, s3Fault, uniqueBucket } from './harness/s3.ts'

const NOT_ALLOWED =
  "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."

interface Raw {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** A plain HTTP request (Node's fetch would not send an Origin header of our choosing). */
function raw(
  method: string,
  url: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const r = request(url, { method, headers }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(parts).toString('utf8'),
        }),
      )
      res.on('error', reject)
    })
    r.on('error', reject)
    r.end(body)
  })
}

const tag = (xml: string, name: string) =>
  new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1]?.replaceAll('&apos;', "'")

t.test('bucket CORS on a 2-node cluster', async (t) => {
  const c = await startCluster(t, { nodes: 2, drivesPerNode: 2, k: 2, m: 2, gateways: 1 })
  const endpoint = c.gateways[0]!.endpoint
  const s3 = s3Client(endpoint)
  t.teardown(() => s3.destroy())
  const bucket = uniqueBucket('cors')
  const plain = uniqueBucket('nocors')
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  await s3.send(new CreateBucketCommand({ Bucket: plain }))
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'a.txt', Body: 'hello cors' }))

  await t.test('GetBucketCors before any configuration', async (t) => {
    try {
      await s3.send(new GetBucketCorsCommand({ Bucket: bucket }))
      t.fail('GetBucketCors succeeded')
    } catch (err) {
      const f = s3Fault(err)
      t.same([f.code, f.status], ['NoSuchCORSConfiguration', 404])
      t.equal(f.message, 'The CORS configuration does not exist')
    }
  })

  await t.test('PutBucketCors validates the rules', async (t) => {
    const bad = async (rules: CORSRule[], code: string, message?: string) => {
      try {
        await s3.send(
          new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: rules } }),
        )
        t.fail(`accepted ${JSON.stringify(rules)}`)
      } catch (err) {
        const f = s3Fault(err)
        t.same([f.code, f.status], [code, 400], `${JSON.stringify(rules)} → ${code}`)
        if (message !== undefined) t.equal(f.message, message)
        else t.not(f.message, '', 'a message')
      }
    }
    await bad(
      [{ AllowedMethods: ['MYMETHOD'], AllowedOrigins: ['*'] }],
      'InvalidRequest',
      'Found unsupported HTTP method in CORS config. Unsupported method is MYMETHOD',
    )
    await bad([], 'MalformedXML')
    await bad([{ AllowedMethods: ['GET'], AllowedOrigins: [] }], 'MalformedXML')
    await bad(
      [{ AllowedMethods: ['GET'], AllowedOrigins: ['http://*.a.*'] }],
      'InvalidRequest',
      'AllowedOrigin "http://*.a.*" can not have more than one wildcard.',
    )
    const many = Array.from({ length: 101 }, () => ({
      AllowedMethods: ['GET'],
      AllowedOrigins: ['*'],
    }))
    await bad(many, 'InvalidRequest')
  })

  const rules = [
    {
      ID: 'app',
      AllowedOrigins: ['http://app.example', 'http://*.example.org'],
      AllowedMethods: ['GET', 'PUT'],
      AllowedHeaders: ['x-amz-*', 'content-type'],
      ExposeHeaders: ['ETag', 'x-amz-request-id'],
      MaxAgeSeconds: 3000,
    },
    { AllowedOrigins: ['*'], AllowedMethods: ['HEAD'] },
  ]

  await t.test('PutBucketCors and GetBucketCors round trip', async (t) => {
    await s3.send(
      new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: rules } }),
    )
    const got = await s3.send(new GetBucketCorsCommand({ Bucket: bucket }))
    t.same(got.CORSRules, rules, 'the rules come back as stored')
  })

  await t.test('anonymous callers may not read or change the CORS rules', async (t) => {
    const r = await raw('GET', `${endpoint}/${bucket}?cors`)
    t.equal(r.status, 403)
    t.equal(tag(r.body, 'Code'), 'AccessDenied')
    const p = await raw(
      'PUT',
      `${endpoint}/${bucket}?cors`,
      {},
      '<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>',
    )
    t.equal(p.status, 403)
    t.equal(tag(p.body, 'Code'), 'AccessDenied')
    const got = await s3.send(new GetBucketCorsCommand({ Bucket: bucket }))
    t.equal(got.CORSRules?.length, 2, 'the rules are unchanged')
  })

  await t.test('preflight allowed by the first matching rule', async (t) => {
    const r = await raw('OPTIONS', `${endpoint}/${bucket}/a.txt`, {
      Origin: 'http://app.example',
      'Access-Control-Request-Method': 'PUT',
      'Access-Control-Request-Headers': 'X-Amz-Meta-Color, Content-Type',
    })
    t.equal(r.status, 200, r.body)
    t.equal(r.headers['access-control-allow-origin'], 'http://app.example')
    t.equal(r.headers['access-control-allow-credentials'], 'true')
    t.equal(r.headers['access-control-allow-methods'], 'GET, PUT')
    t.equal(r.headers['access-control-allow-headers'], 'x-amz-meta-color, content-type')
    t.equal(r.headers['access-control-expose-headers'], 'ETag, x-amz-request-id')
    t.equal(r.headers['access-control-max-age'], '3000')
    t.equal(r.headers.vary, 'Origin, Access-Control-Request-Headers, Access-Control-Request-Method')
    const w = await raw('OPTIONS', `${endpoint}/${bucket}/a.txt`, {
      Origin: 'http://cdn.example.org',
      'Access-Control-Request-Method': 'GET',
    })
    t.equal(w.status, 200, 'a wildcard origin pattern matches')
    t.equal(w.headers['access-control-allow-origin'], 'http://cdn.example.org')
    const any = await raw('OPTIONS', `${endpoint}/${bucket}/a.txt`, {
      Origin: 'http://elsewhere.test',
      'Access-Control-Request-Method': 'HEAD',
    })
    t.equal(any.status, 200, 'the * rule allows HEAD from anywhere')
    t.equal(any.headers['access-control-allow-origin'], '*')
    t.equal(any.headers['access-control-allow-credentials'], undefined, 'no credentials for *')
  })

  await t.test('preflight refusals', async (t) => {
    const refuse = async (
      url: string,
      headers: Record<string, string>,
      status: number,
      code: string,
      message: string,
      extra: Record<string, string> = {},
    ) => {
      const r = await raw('OPTIONS', url, headers)
      t.equal(r.status, status, `${JSON.stringify(headers)} → ${status}`)
      t.equal(tag(r.body, 'Code'), code)
      t.equal(tag(r.body, 'Message'), message)
      for (const [k, v] of Object.entries(extra)) t.equal(tag(r.body, k), v, `${k} ${v}`)
      t.equal(r.headers['access-control-allow-origin'], undefined, 'no CORS headers')
    }
    await refuse(
      `${endpoint}/${bucket}/a.txt`,
      { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'GET' },
      403,
      'AccessForbidden',
      NOT_ALLOWED,
      { Method: 'GET', ResourceType: 'OBJECT' },
    )
    await refuse(
      `${endpoint}/${bucket}/a.txt`,
      { Origin: 'http://app.example', 'Access-Control-Request-Method': 'DELETE' },
      403,
      'AccessForbidden',
      NOT_ALLOWED,
    )
    await refuse(
      `${endpoint}/${bucket}/a.txt`,
      {
        Origin: 'http://app.example',
        'Access-Control-Request-Method': 'PUT',
        'Access-Control-Request-Headers': 'authorization',
      },
      403,
      'AccessForbidden',
      NOT_ALLOWED,
    )
    await refuse(
      `${endpoint}/${bucket}/a.txt`,
      { 'Access-Control-Request-Method': 'GET' },
      400,
      'BadRequest',
      'Insufficient information. Origin request header needed.',
    )
    await refuse(
      `${endpoint}/${plain}/a.txt`,
      { Origin: 'http://app.example', 'Access-Control-Request-Method': 'PUT' },
      403,
      'AccessForbidden',
      'CORSResponse: CORS is not enabled for this bucket.',
      { Method: 'PUT', ResourceType: 'BUCKET' },
    )
    await refuse(
      `${endpoint}/${uniqueBucket('missing')}/a.txt`,
      { Origin: 'http://app.example', 'Access-Control-Request-Method': 'PUT' },
      403,
      'AccessForbidden',
      'CORSResponse: Bucket not found',
    )
  })

  await t.test('actual requests carry the CORS headers, errors too', async (t) => {
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: 'a.txt' }))
    const ok = await raw('GET', url, { Origin: 'http://app.example' })
    t.equal(ok.status, 200)
    t.equal(ok.body, 'hello cors')
    t.equal(ok.headers['access-control-allow-origin'], 'http://app.example')
    t.equal(ok.headers['access-control-allow-credentials'], 'true')
    t.equal(ok.headers['access-control-expose-headers'], 'ETag, x-amz-request-id')
    const other = await raw('GET', url, { Origin: 'http://evil.example' })
    t.equal(other.status, 200, 'a request from another origin is still served')
    t.equal(other.headers['access-control-allow-origin'], undefined, 'without CORS headers')
    const none = await raw('GET', url)
    t.equal(none.headers['access-control-allow-origin'], undefined, 'no Origin, no CORS headers')
    const missing = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: 'nope' }))
    const nf = await raw('GET', missing, { Origin: 'http://app.example' })
    t.equal(nf.status, 404)
    t.equal(tag(nf.body, 'Code'), 'NoSuchKey')
    t.equal(nf.headers['access-control-allow-origin'], 'http://app.example', 'on errors too')
    const denied = await raw('GET', `${endpoint}/${bucket}/a.txt`, { Origin: 'http://app.example' })
    t.equal(denied.status, 403)
    t.equal(denied.headers['access-control-allow-origin'], 'http://app.example', 'on 403 too')
  })

  await t.test('awscli put-bucket-cors, get-bucket-cors, delete-bucket-cors', async (t) => {
    const bin = await ensureDebianPackages({ awscli: 'aws' })
    const dir = t.testdir()
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWS_ACCESS_KEY_ID: ROOT.accessKeyId,
      AWS_SECRET_ACCESS_KEY: ROOT.secretAccessKey,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(dir, 'aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'aws-credentials'),
    }
    delete env.AWS_CA_BUNDLE
    const aws = (...args: string[]) => sh(bin.aws!, ['--endpoint-url', endpoint, ...args], env)
    const conf = {
      CORSRules: [{ AllowedOrigins: ['http://cli.example'], AllowedMethods: ['GET', 'POST'] }],
    }
    await aws(
      's3api',
      'put-bucket-cors',
      '--bucket',
      plain,
      '--cors-configuration',
      JSON.stringify(conf),
    )
    const got = JSON.parse(await aws('s3api', 'get-bucket-cors', '--bucket', plain))
    t.same(got.CORSRules, conf.CORSRules, 'awscli reads back what it stored')
    await aws('s3api', 'delete-bucket-cors', '--bucket', plain)
    const err = await aws('s3api', 'get-bucket-cors', '--bucket', plain).then(
      () => '',
      (e: Error) => e.message,
    )
    t.match(err, /NoSuchCORSConfiguration/, 'gone after delete-bucket-cors')
  })

  await t.test('DeleteBucketCors', async (t) => {
    const del = await s3.send(new DeleteBucketCorsCommand({ Bucket: bucket }))
    t.equal(del.$metadata.httpStatusCode, 204)
    try {
      await s3.send(new GetBucketCorsCommand({ Bucket: bucket }))
      t.fail('rules still there')
    } catch (err) {
      t.equal(s3Fault(err).code, 'NoSuchCORSConfiguration')
    }
    const again = await s3.send(new DeleteBucketCorsCommand({ Bucket: bucket }))
    t.equal(again.$metadata.httpStatusCode, 204, 'deleting nothing is fine')
    const r = await raw('OPTIONS', `${endpoint}/${bucket}/a.txt`, {
      Origin: 'http://app.example',
      'Access-Control-Request-Method': 'GET',
    })
    t.equal(r.status, 403, 'preflights are refused once the rules are gone')
  })
})
