/**
 * Virtual-hosted-style requests: with a domain configured, `<bucket>.<domain>` names the bucket
 * by host, and path-style requests keep working on the same gateway.
 */
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import t from 'tap'
import { startCluster } from './harness/cluster.ts'
import { bodyBytes, s3Client, uniqueBucket } from './harness/s3.ts'

t.test('virtual-hosted-style and path-style on one gateway', async (t) => {
  const c = await startCluster(t, {
    nodes: 3,
    drivesPerNode: 2,
    k: 2,
    m: 1,
    gateways: 1,
    domain: 's3.tessera.test',
  })
  const endpoint = c.gateways[0]!.endpoint
  const port = new URL(endpoint).port
  const pathStyle = s3Client(endpoint)
  // The SDK puts the bucket into the host name; a custom lookup sends every such host to the
  // gateway on loopback, as DNS with a wildcard record would.
  const virtual = s3Client(`http://s3.tessera.test:${port}`, { forcePathStyle: false })
  virtual.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { hostname?: string; headers: Record<string, string> }
      if (req.hostname?.endsWith('.s3.tessera.test')) {
        req.headers.host = `${req.hostname}:${port}`
        req.hostname = '127.0.0.1'
      }
      return next(args)
    },
    { step: 'finalizeRequest', name: 'loopbackHost', priority: 'low' },
  )
  t.teardown(() => {
    pathStyle.destroy()
    virtual.destroy()
  })
  const bucket = uniqueBucket('vh')
  await pathStyle.send(new CreateBucketCommand({ Bucket: bucket }))
  await virtual.send(new PutObjectCommand({ Bucket: bucket, Key: 'a/b.txt', Body: 'virtual' }))
  const viaPath = await pathStyle.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/b.txt' }))
  t.equal((await bodyBytes(viaPath.Body)).toString(), 'virtual', 'written by host, read by path')
  await pathStyle.send(new PutObjectCommand({ Bucket: bucket, Key: 'c.txt', Body: 'path' }))
  const viaHost = await virtual.send(new GetObjectCommand({ Bucket: bucket, Key: 'c.txt' }))
  t.equal((await bodyBytes(viaHost.Body)).toString(), 'path', 'written by path, read by host')
  const raw = await fetch(`${endpoint}/${bucket}/c.txt`, {
    headers: { host: `${bucket}.s3.tessera.test` },
  })
  t.equal(raw.status, 403, 'an unsigned request by host is refused like any other')
  t.match(await raw.text(), /<Code>AccessDenied<\/Code>/)
})
