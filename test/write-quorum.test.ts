// A write answers once its write quorum of drives committed: a node that has gone silent
// (frozen with SIGSTOP: its sockets stay open and nothing answers) does not hold it up until its
// channel is declared dead (5 s of silence). Shown without timing: right after the PUT's answer,
// the gateway's call to the frozen node has not failed yet (tessera_rpc_errors_total counts
// nothing for it); it fails later, and the node gets the write once it runs again.
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3'
import t from 'tap'
import {
  eventually,
  FOUR_NODES_RS22,
  failedCalls,
  freezeNode,
  gatewaySeesEveryDrive,
  versionsOn,
} from './harness/cluster.ts'
import { place, shardDrive } from './harness/object-io.ts'
import {
  bodyBytes,
  bytes,
  clusterWithClient,
  sha256,
  uniqueBucket,
  versionedBucket,
} from './harness/s3.ts'

t.test('a write does not wait for a silent node beyond its write quorum', async (t) => {
  const { c, endpoint, s3 } = await clusterWithClient(t, FOUR_NODES_RS22)
  const bucket = await versionedBucket(s3)
  // Every connection is open and warm before the node goes silent.
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'warm', Body: bytes(1000, 1) }))

  const freeze = (nodeId: string) => freezeNode(t, c, nodeId)

  await t.test('an inline PUT', async (t) => {
    const key = 'quorum/small'
    const silent = shardDrive(place(c, bucket, key), 3)
    const before = await failedCalls(endpoint, silent.nodeId)
    const data = bytes(1000, 2)
    const thaw = freeze(silent.nodeId)
    const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }))
    t.equal(
      await failedCalls(endpoint, silent.nodeId),
      before,
      'answered while the call to the silent node was still open',
    )
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    t.equal(sha256(await bodyBytes(got.Body)), sha256(data), 'the object reads back')
    await eventually(
      'the call to the silent node fails',
      async () => ((await failedCalls(endpoint, silent.nodeId)) > before ? true : undefined),
      30_000,
    )
    t.pass('the call to the silent node failed later, and was counted')
    thaw()
    const v = await eventually(
      'the write reaches the node',
      async () => {
        const found = (await versionsOn(c, silent, bucket, key)).find(
          (x) => x.versionId === put.VersionId,
        )
        return found?.inline !== undefined ? found : undefined
      },
      30_000,
    )
    t.equal(v.versionId, put.VersionId, 'the node holds the write once it runs again')
  })

  await t.test('a delete marker', async (t) => {
    // The node frozen above may be this one: the gateway must have it back first, or its call
    // would fail at once (the pool's backoff) rather than stay open.
    await gatewaySeesEveryDrive(c)
    const key = 'quorum/deleted'
    const silent = shardDrive(place(c, bucket, key), 0)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes(300_000, 3) }))
    const before = await failedCalls(endpoint, silent.nodeId)
    const thaw = freeze(silent.nodeId)
    const del = await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))
    t.ok(del.DeleteMarker, 'a delete marker was written')
    t.equal(
      await failedCalls(endpoint, silent.nodeId),
      before,
      'answered while the call to the silent node was still open',
    )
    thaw()
    await eventually(
      'the marker reaches the node',
      async () =>
        (await versionsOn(c, silent, bucket, key)).some(
          (x) => x.versionId === del.VersionId && x.deleteMarker,
        )
          ? true
          : undefined,
      30_000,
    )
    t.pass('the node holds the delete marker once it runs again')
  })
})
