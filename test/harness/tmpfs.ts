/**
 * Small file systems of a known size for tests of full drives: tmpfs mounts (Linux, root).
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
