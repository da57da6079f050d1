/**
 * A drive folder whose disk can be made to stop answering reads, as a dying disk does while its
 * node stays up: a pass-through FUSE file system (hangfs.py, Debian's python3-fusepy) over a
 * folder of the test's. Linux and root only.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureDebianPackages, sh } from './debian.ts'

const SCRIPT = fileURLToPath(new URL('../../harness/hangfs.py', import.meta.url))

export interface HangingFolder {
  /** The folder to use as a drive. */
  path: string
  /** From now on every read of a shard file (under data/) blocks, until resume(). */
  hangReads(): Promise<void>
  resume(): Promise<void>
}

async function mounted(path: string): Promise<boolean> {
  const mounts = await readFile('/proc/mounts', 'utf8')
  return mounts.split('\n').some((l) => l.split(' ')[1] === path)
}

/** A new hanging folder, unmounted and removed when the test ends. */
export async function hangingFolder(t: {
  teardown(fn: () => Promise<void>): void
}): Promise<HangingFolder> {
  await ensureDebianPackages({
    python3: 'python3',
    'python3-fusepy': '/usr/lib/python3/dist-packages/fusepy.py',
  })
  const dir = await mkdtemp(join(tmpdir(), 'tessera-hangfs-'))
  const backing = join(dir, 'backing')
  const mnt = join(dir, 'mnt')
  const flag = join(dir, 'hang')
  await mkdir(backing)
  await mkdir(mnt)
  let child: ChildProcess | undefined = spawn('/usr/bin/python3', [SCRIPT, backing, mnt, flag], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  t.teardown(async () => {
    await rm(flag, { force: true })
    await sh('umount', ['-l', mnt]).catch(() => {})
    child?.kill('SIGKILL')
    child = undefined
    await rm(dir, { recursive: true, force: true })
  })
  for (let i = 0; !(await mounted(mnt)); i++) {
    if (child.exitCode !== null || i > 100)
      throw new Error(`hangfs did not mount ${mnt}: ${stderr.trim() || `exit ${child.exitCode}`}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  const path = join(mnt, 'drive')
  await mkdir(path)
  return {
    path,
    hangReads: async () => {
      await writeFile(flag, '')
      // What is in the page cache would still be served: every read must reach the disk.
      await writeFile('/proc/sys/vm/drop_caches', '3')
    },
    resume: () => rm(flag, { force: true }),
  }
}
