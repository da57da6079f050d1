/**
 * Debian packages a test needs (awscli, s3cmd, rclone, …), installed by the test's own setup
 * when their commands are missing: `apt-get update` once, then `apt-get install`.
 */
import { execFile } from 'node:child_process'
import { access } from 'node:fs/promises'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * Installs each package whose command is not in /usr/bin yet (or, for a package without one,
 * whose file at the absolute path given is missing); returns the commands' paths.
 */
export async function ensureDebianPackages(
  wanted: Record<string, string>,
): Promise<Record<string, string>> {
  const missing: string[] = []
  const paths: Record<string, string> = {}
  for (const [pkg, cmd] of Object.entries(wanted)) {
    const path = cmd.startsWith('/') ? cmd : `/usr/bin/${cmd}`
    paths[cmd] = path
    const ok = await access(path).then(
      () => true,
      () => false,
    )
    if (!ok) missing.push(pkg)
  }
  if (missing.length > 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    await run('apt-get', ['update', '-qq'], { env, maxBuffer: 64 * 1024 * 1024 })
    await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
      env,
      maxBuffer: 64 * 1024 * 1024,
    })
  }
  return paths
}

/** Runs a command; resolves with stdout, rejects with stdout and stderr in the message. */
export async function sh(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  try {
    const r = await run(cmd, args, { env, maxBuffer: 64 * 1024 * 1024 })
    return r.stdout
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string; code?: number }
    throw Object.assign(
      new Error(`${cmd} ${args.join(' ')} failed (${e.code}): ${e.stderr ?? ''}${e.stdout ?? ''}`),
      { stdout: e.stdout ?? '', stderr: e.stderr ?? '', exitCode: e.code },
    )
  }
}
