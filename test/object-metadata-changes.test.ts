// A change of an object's tags or ACL keeps its version (and modTime): a drive that missed one
// still holds the version, with the old tags. Each change carries its own time (metaTime), so
// reads take the latest state whichever drives answer first, healing brings a drive that missed
// a change up to date (from a read's report, and from its own scan), and a late change cannot
// undo a later one on a drive.
import {
  CreateBucketCommand,
  GetBucketAclCommand,
  GetObjectAclCommand,
  GetObjectTaggingCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { CommitVersion, type DriveSlot, StartHeal, type VersionRecord } from '@tessera/protocol'
import t from 'tap'
import {
  eventually,
  FOUR_NODES_RS22,
  freezeNode,
  gatewaySeesEveryDrive,
  type TestCluster,
  type TestLike,
  versionsOn,
} from './harness/cluster.ts'
import { place, shardDrive } from './harness/object-io.ts'
import { bytes, clusterWithClient, uniqueBucket } from './harness/s3.ts'

const tagSet = (v: string) => [{ Key: 'state', Value: v }]

/** Changes `key`'s tags to state=`v` while `victim`'s node is frozen: the change misses it. */
async function tagWithout(
  t: TestLike,
  c: TestCluster,
  s3: S3Client,
  victim: DriveSlot,
  bucket: string,
  key: string,
  v: string,
): Promise<void> {
  const thaw = freezeNode(t, c, victim.nodeId)
  try {
    await s3.send(
      new PutObjectTaggingCommand({ Bucket: bucket, Key: key, Tagging: { TagSet: tagSet(v) } }),
    )
  } finally {
    thaw()
  }
}

/** The tags drive `d` holds for the latest version of `bucket/key`. */
async function tagsOn(c: TestCluster, d: DriveSlot, bucket: string, key: string) {
  const [v] = await versionsOn(c, d, bucket, key)
  return v?.tags
}

t.test('a drive that missed a tag or ACL change', async (t) => {
  const { c, s3 } = await clusterWithClient(t, {
    ...FOUR_NODES_RS22,
    // No periodic scan: the second object is healed only by the scan the test starts.
    nodeConfig: { scanIntervalMs: 600_000, deepEvery: 0, healGraceMs: 1000 },
  })
  const bucket = uniqueBucket('meta')
  await s3.send(
    new CreateBucketCommand({ Bucket: bucket, ObjectOwnership: 'BucketOwnerPreferred' }),
  )

  // The drive that misses the changes holds shard 0 of each key: a lookup asks it first.
  const readKey = 'read-0'
  const victim = shardDrive(place(c, bucket, readKey), 0)
  const onVictim = (stem: string): string => {
    for (let i = 0; i < 500; i++) {
      const key = `${stem}-${i}`
      if (shardDrive(place(c, bucket, key), 0).nodeId === victim.nodeId) return key
    }
    throw new Error(`no ${stem} key has shard 0 on ${victim.nodeId}`)
  }
  const scanKey = onVictim('scan')
  const aclKey = onVictim('acl')
  for (const [i, key] of [readKey, scanKey, aclKey].entries()) {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: bytes(i === 0 ? 1000 : 200_000, i + 1),
        Tagging: 'state=old',
      }),
    )
  }
  await gatewaySeesEveryDrive(c)

  await t.test('reads take the latest change, and the drive is repaired', async (t) => {
    await tagWithout(t, c, s3, victim, bucket, readKey, 'new')
    t.same(await tagsOn(c, victim, bucket, readKey), { state: 'old' }, 'the drive missed it')
    await gatewaySeesEveryDrive(c)
    for (let i = 0; i < 20; i++) {
      const got = await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: readKey }))
      if (!t.same(got.TagSet, tagSet('new'), `read ${i + 1} has the new tags`)) break
    }
    await eventually('the drive holds the new tags', async () =>
      (await tagsOn(c, victim, bucket, readKey))?.state === 'new' ? true : undefined,
    )
    t.pass('the read reported the drive, and its node repaired the record')
  })

  await t.test("the drive's own scan finds the change it missed", async (t) => {
    await tagWithout(t, c, s3, victim, bucket, scanKey, 'new')
    t.same(await tagsOn(c, victim, bucket, scanKey), { state: 'old' }, 'the drive missed it')
    await gatewaySeesEveryDrive(c)
    const ref = { pool: victim.pool, set: victim.set, slot: victim.slot }
    const started = await c.pool.call(c.peer(victim.nodeId), StartHeal, { ...ref, mode: 'full' })
    t.equal(started.started, true, 'a scan of the drive started')
    await eventually('the scan repairs the record', async () =>
      (await tagsOn(c, victim, bucket, scanKey))?.state === 'new' ? true : undefined,
    )
    t.pass('the scan compared the change times and repaired the record')
  })

  await t.test('a tag change applies to the latest ACL, not a stale copy', async (t) => {
    const owner = (await s3.send(new GetBucketAclCommand({ Bucket: bucket }))).Owner!.ID!
    const thaw = freezeNode(t, c, victim.nodeId)
    try {
      await s3.send(
        new PutObjectAclCommand({
          Bucket: bucket,
          Key: aclKey,
          GrantFullControl: `id=${owner}`,
          GrantRead: `id=${owner}`,
        }),
      )
    } finally {
      thaw()
    }
    const [stale] = await versionsOn(c, victim, bucket, aclKey)
    t.notOk(stale?.acl, 'the drive missed the ACL change')
    await gatewaySeesEveryDrive(c)
    await s3.send(
      new PutObjectTaggingCommand({
        Bucket: bucket,
        Key: aclKey,
        Tagging: { TagSet: tagSet('after-acl') },
      }),
    )
    const acl = await s3.send(new GetObjectAclCommand({ Bucket: bucket, Key: aclKey }))
    t.equal(acl.Grants?.length, 2, 'the ACL change stays after the tag change')
    await eventually('every drive holds both changes', async () => {
      for (const slot of place(c, bucket, aclKey).set.drives) {
        const [v] = await versionsOn(c, slot, bucket, aclKey)
        if (v?.tags?.state !== 'after-acl' || v.acl?.length !== 2) return undefined
      }
      return true
    })
    t.pass('every drive holds the new tags and the ACL')
  })

  await t.test('a late change does not undo a later one on a drive', async (t) => {
    const [now] = await versionsOn(c, victim, bucket, readKey)
    t.ok(now?.metaTime, 'the record carries the time of its last change')
    const ref = { pool: victim.pool, set: victim.set, slot: victim.slot }
    const late: VersionRecord = { ...now!, tags: { state: 'late' }, metaTime: now!.metaTime! - 1 }
    const res = await c.pool.call(c.peer(victim.nodeId), CommitVersion, { ...ref, record: late })
    t.equal(res.superseded, true, 'the drive answers that a later change superseded it')
    t.same(await tagsOn(c, victim, bucket, readKey), { state: 'new' }, 'the later tags stay')
    const later: VersionRecord = { ...now!, tags: { state: 'later' }, metaTime: now!.metaTime! + 1 }
    const ok = await c.pool.call(c.peer(victim.nodeId), CommitVersion, { ...ref, record: later })
    t.notOk(ok.superseded, 'a change with a later time is written')
    t.same(await tagsOn(c, victim, bucket, readKey), { state: 'later' })
  })
})
