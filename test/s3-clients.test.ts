/**
 * The S3 command-line clients operators use, from Debian's packages (installed by the test):
 * awscli (`s3` and `s3api`), s3cmd and rclone (`copy`, `sync`, `check`), against a real
 * 4-node RS(2,2) cluster and its gateway.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, startCluster } from './harness/cluster.ts'
import { ensureDebianPackages, sh } from './harness/debian.ts'
import { bytes, uniqueBucket } from './harness/s3.ts'

const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

t.test('awscli, s3cmd and rclone against a cluster', async (t) => {
  const bin = await ensureDebianPackages({ awscli: 'aws', s3cmd: 's3cmd', rclone: 'rclone' })
  const c = await startCluster(t, {
    nodes: 4,
    drivesPerNode: 1,
    k: 2,
    m: 2,
    blockSize: 256 * 1024,
    inlineBelow: 16 * 1024,
    gateways: 1,
  })
  const endpoint = c.gateways[0]!.endpoint
  // Beside the cluster, in its folder: a second t.testdir() would wipe the cluster's files.
  const dir = join(c.dir, 'client-files')
  await mkdir(dir, { recursive: true })
  const files = join(dir, 'files')
  await mkdir(files, { recursive: true })
  const contents = new Map<string, Buffer>([
    ['small.txt', Buffer.from('hello tessera\n')],
    ['empty', Buffer.alloc(0)],
    ['mid.bin', bytes(300_000, 5)],
    ['big.bin', bytes(20 * 1024 * 1024 + 11, 6)],
    ['sub dir/ü.txt', Buffer.from('unicode name')],
  ])
  for (const [name, data] of contents) {
    await mkdir(join(files, name, '..'), { recursive: true })
    await writeFile(join(files, name), data)
  }
  // Local CA bundles of this machine confuse the clients' plain-HTTP setup; drop them.
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

  await t.test('awscli s3 and s3api', async (t) => {
    const bucket = uniqueBucket('aws')
    await aws('s3', 'mb', `s3://${bucket}`)
    await aws('s3', 'cp', '--recursive', '--no-progress', files, `s3://${bucket}/up/`)
    const ls = await aws('s3', 'ls', '--recursive', `s3://${bucket}/`)
    for (const name of contents.keys()) t.match(ls, `up/${name}`, `aws s3 ls shows ${name}`)
    const back = join(dir, 'aws-back')
    await aws('s3', 'cp', '--recursive', '--no-progress', `s3://${bucket}/up/`, back)
    for (const [name, data] of contents) {
      t.equal(hash(await readFile(join(back, name))), hash(data), `aws s3 cp round trip: ${name}`)
    }
    const head = JSON.parse(
      await aws('s3api', 'head-object', '--bucket', bucket, '--key', 'up/big.bin'),
    ) as { ContentLength: number; ETag: string }
    t.equal(head.ContentLength, contents.get('big.bin')!.length)
    t.match(head.ETag, /-\d+"$/, 'the CLI uploaded big.bin in parts')
    const list = JSON.parse(
      await aws(
        's3api',
        'list-objects-v2',
        '--bucket',
        bucket,
        '--prefix',
        'up/',
        '--delimiter',
        '/',
      ),
    ) as { Contents: { Key: string }[]; CommonPrefixes: { Prefix: string }[] }
    t.same(
      list.CommonPrefixes.map((p) => p.Prefix),
      ['up/sub dir/'],
    )
    await aws(
      's3api',
      'put-object',
      '--bucket',
      bucket,
      '--key',
      'api.txt',
      '--body',
      join(files, 'small.txt'),
    )
    await aws('s3api', 'delete-object', '--bucket', bucket, '--key', 'api.txt')
    const missing = await aws('s3api', 'head-object', '--bucket', bucket, '--key', 'api.txt').catch(
      (e: Error) => e.message,
    )
    t.match(missing, /404|Not Found/, 'deleted object is gone')
    await aws('s3', 'sync', '--no-progress', '--delete', files, `s3://${bucket}/up/`)
    await aws('s3', 'rm', '--recursive', `s3://${bucket}/`)
    await aws('s3', 'rb', `s3://${bucket}`)
    const err = await aws('s3api', 'head-bucket', '--bucket', bucket).catch((e: Error) => e.message)
    t.match(err, /404|Not Found/, 'bucket removed')
  })

  await t.test('s3cmd put, get, ls, del', async (t) => {
    const bucket = uniqueBucket('s3cmd')
    const cfg = join(dir, 's3cfg')
    const host = endpoint.replace('http://', '')
    await writeFile(
      cfg,
      `[default]\naccess_key = ${ROOT.accessKeyId}\nsecret_key = ${ROOT.secretAccessKey}\n` +
        `host_base = ${host}\nhost_bucket = ${host}\nuse_https = False\nsignature_v2 = False\n` +
        'bucket_location = us-east-1\n',
      { mode: 0o600 },
    )
    const s3cmd = (...args: string[]) => sh(bin.s3cmd!, ['-c', cfg, ...args], env)
    await s3cmd('mb', `s3://${bucket}`)
    await s3cmd('put', join(files, 'big.bin'), `s3://${bucket}/big.bin`)
    await s3cmd('put', join(files, 'mid.bin'), `s3://${bucket}/mid.bin`)
    const ls = await s3cmd('ls', `s3://${bucket}/`)
    t.match(ls, 'big.bin')
    t.match(ls, 'mid.bin')
    const out = join(dir, 's3cmd-big.out')
    await s3cmd('get', '--force', `s3://${bucket}/big.bin`, out)
    t.equal(hash(await readFile(out)), hash(contents.get('big.bin')!), 's3cmd round trip')
    await s3cmd('del', `s3://${bucket}/big.bin`, `s3://${bucket}/mid.bin`)
    t.notMatch(await s3cmd('ls', `s3://${bucket}/`), 'big.bin', 'deleted')
    await s3cmd('rb', `s3://${bucket}`)
  })

  await t.test('rclone copy, check, sync', async (t) => {
    const bucket = uniqueBucket('rclone')
    const renv: NodeJS.ProcessEnv = {
      ...env,
      RCLONE_CONFIG: join(dir, 'rclone.conf'),
      RCLONE_CONFIG_T_TYPE: 's3',
      RCLONE_CONFIG_T_PROVIDER: 'Other',
      RCLONE_CONFIG_T_ENDPOINT: endpoint,
      RCLONE_CONFIG_T_ACCESS_KEY_ID: ROOT.accessKeyId,
      RCLONE_CONFIG_T_SECRET_ACCESS_KEY: ROOT.secretAccessKey,
      RCLONE_CONFIG_T_REGION: 'us-east-1',
    }
    await writeFile(join(dir, 'rclone.conf'), '')
    const rclone = (...args: string[]) => sh(bin.rclone!, args, renv)
    await rclone('mkdir', `t:${bucket}`)
    await rclone('copy', files, `t:${bucket}/data`)
    // rclone check exits non-zero on any difference.
    await t.resolves(rclone('check', files, `t:${bucket}/data`), 'rclone check after copy')
    await rm(join(files, 'mid.bin'))
    await writeFile(join(files, 'new.txt'), 'added later')
    await rclone('sync', files, `t:${bucket}/data`)
    const listing = await rclone('lsf', '-R', `t:${bucket}/data`)
    t.notMatch(listing, 'mid.bin', 'sync removed the deleted file')
    t.match(listing, 'new.txt', 'sync uploaded the new file')
    await t.resolves(rclone('check', files, `t:${bucket}/data`), 'rclone check after sync')
  })
})
