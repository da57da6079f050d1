/**
 * Small file systems for tests of full and hung drives: tmpfs mounts, and ext4 images that can
 * be frozen (Linux, root).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Mounts a tmpfs of `mib` MiB at `path`; undefined, or the reason it cannot. */
export async function mountTmpfs(path: string, mib: number): Promise<string | undefined> {
  if (process.platform !== 'linux') return `tmpfs needs Linux, not ${process.platform}`
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root'
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0700`, 'tmpfs', path])
    return undefined
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    return (e.stderr || e.message).trim().split('\n')[0]
  }
}

/** Unmounts `path` (lazily if it is busy). */
export async function unmountTmpfs(path: string): Promise<void> {
  await run('umount', [path]).catch(() => run('umount', ['-l', path]).catch(() => {}))
}

/**
 * A new folder with a tmpfs of `mib` MiB mounted on it, unmounted and removed when the test
 * ends; throws the reason when it cannot be mounted.
 */
export async function tmpfsFolder(
  t: { teardown(fn: () => Promise<void>): void },
  mib: number,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-tmpfs-'))
  const problem = await mountTmpfs(dir, mib)
  if (problem !== undefined) {
    await rm(dir, { recursive: true, force: true })
    throw new Error(`cannot mount a tmpfs: ${problem}`)
  }
  t.teardown(async () => {
    await unmountTmpfs(dir)
    await rm(dir, { recursive: true, force: true })
  })
  return dir
}

/** A folder on its own ext4 file system that the test can freeze (fsfreeze) and thaw. */
export interface FreezableFolder {
  path: string
  /** Freezes the file system: every write to it blocks until thaw, as on a hung disk. */
  freeze(): Promise<void>
  thaw(): Promise<void>
}

/**
 * A new folder with an ext4 file system of `mib` MiB (a loop-mounted image) on it, thawed,
 * unmounted and removed when the test ends; throws the reason when it cannot be mounted
 * (Linux, root, loop devices).
 */
export async function freezableFolder(
  t: { teardown(fn: () => Promise<void>): void },
  mib: number,
): Promise<FreezableFolder> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-ext4-'))
  const image = `${dir}.img`
  const path = join(dir, 'mnt')
  let frozen = false
  const thaw = async () => {
    if (!frozen) return
    await run('fsfreeze', ['-u', path])
    frozen = false
  }
  try {
    await run('truncate', ['-s', `${mib}M`, image])
    await run('mkfs.ext4', ['-q', '-F', image])
    await run('mkdir', ['-p', path])
    await run('mount', ['-o', 'loop', image, path])
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    await rm(image, { force: true })
    const e = err as { stderr?: string; message: string }
    throw new Error(`cannot mount an ext4 image: ${(e.stderr || e.message).trim()}`)
  }
  t.teardown(async () => {
    await thaw().catch(() => {})
    await unmountTmpfs(path)
    await rm(dir, { recursive: true, force: true })
    await rm(image, { force: true })
  })
  return {
    path,
    freeze: async () => {
      await run('fsfreeze', ['-f', path])
      frozen = true
    },
    thaw,
  }
}
