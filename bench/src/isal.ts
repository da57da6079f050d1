import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * One run of the ISA-L harness. Figures are GB/s (1e9 bytes/s) of data, counted as
 * k * shardLen bytes per operation, the median of 5 timed runs. `best` is ec_encode_data
 * (ISA-L's runtime-dispatched path, e.g. AVX2 or AVX-512); `sse` is ec_encode_data_sse, the
 * 128-bit path with the same vector width as WebAssembly SIMD, or null when the installed
 * libisal does not export it.
 */
export interface IsalResult {
  k: number
  m: number
  blockBytes: number
  encode: { best: number; sse: number | null }
  reconstruct: { best: number; sse: number | null }
}

/** A compiled harness, ready to run. */
export interface IsalHarness {
  available: true
  /** Runs RS(k, m) on blocks of `blockBytes`, timing `iterations` calls per run. */
  run(k: number, m: number, blockBytes: number, iterations: number): IsalResult
}

/** ISA-L could not be used here; `note` says why and how to fix it. */
export interface IsalMissing {
  available: false
  note: string
}

const SOURCE = fileURLToPath(new URL('../isal/isal-bench.c', import.meta.url))
const BUILD_DIR = fileURLToPath(new URL('../.build/', import.meta.url))
const BINARY = `${BUILD_DIR}isal-bench`
// The harness includes <isa-l/erasure_code.h>; cc searches both prefixes by default.
const HEADERS = ['/usr/include/isa-l/erasure_code.h', '/usr/local/include/isa-l/erasure_code.h']
const INSTALL_HINT = 'apt-get install -y libisal-dev'

const headerFound = (): boolean => HEADERS.some((path) => existsSync(path))

/** Runs a command to completion, feeding its output to `log`; returns whether it succeeded. */
function runLogged(cmd: string, args: string[], log: (line: string) => void): boolean {
  log(`$ ${cmd} ${args.join(' ')}`)
  const result = spawnSync(cmd, args, {
    encoding: 'utf8',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    maxBuffer: 64 * 1024 * 1024,
  })
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`
  for (const line of output.split('\n')) if (line.trim() !== '') log(line)
  if (result.error) log(`${cmd}: ${result.error.message}`)
  return result.error === undefined && result.status === 0
}

function installIsal(log: (line: string) => void): void {
  const install = ['install', '-y', 'libisal-dev']
  if (runLogged('apt-get', install, log)) return
  // A fresh container often has empty package lists: refresh them once and retry.
  runLogged('apt-get', ['update'], log)
  runLogged('apt-get', install, log)
}

function compilerFound(): boolean {
  const probe = spawnSync('cc', ['--version'], { stdio: 'ignore' })
  return probe.error === undefined && probe.status === 0
}

const mtime = (path: string): number => statSync(path).mtimeMs

/** Compiles the harness unless the binary is newer than the source; returns an error or null. */
function compile(log: (line: string) => void): string | null {
  if (existsSync(BINARY) && mtime(BINARY) >= mtime(SOURCE)) return null
  mkdirSync(BUILD_DIR, { recursive: true })
  // Build under a private name and rename, so a concurrent run never sees a half-written file.
  const tmp = `${BINARY}.${process.pid}.tmp`
  const args = ['-O2', '-Wall', '-Wextra', '-o', tmp, SOURCE, '-lisal']
  log(`$ cc ${args.join(' ')}`)
  const result = spawnSync('cc', args, { encoding: 'utf8' })
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim()
  if (output !== '') for (const line of output.split('\n')) log(line)
  if (result.error || result.status !== 0) {
    return result.error?.message ?? (output || `cc exited with status ${result.status}`)
  }
  renameSync(tmp, BINARY)
  return null
}

function isGbps(value: unknown, nullable: boolean): boolean {
  return (typeof value === 'number' && Number.isFinite(value)) || (nullable && value === null)
}

function parseResult(line: string): IsalResult {
  const parsed = JSON.parse(line) as IsalResult
  const ok =
    typeof parsed.k === 'number' &&
    typeof parsed.m === 'number' &&
    typeof parsed.blockBytes === 'number' &&
    isGbps(parsed.encode?.best, false) &&
    isGbps(parsed.encode?.sse, true) &&
    isGbps(parsed.reconstruct?.best, false) &&
    isGbps(parsed.reconstruct?.sse, true)
  if (!ok) throw new Error(`isal-bench printed unexpected output: ${line}`)
  return parsed
}

/**
 * Finds or installs libisal-dev, compiles the harness into bench/.build/, returns a runner or
 * a clear note why not. Never throws for a missing library or compiler: those come back as
 * `{ available: false, note }`.
 *
 * @param options.install - install libisal-dev with apt-get when missing and running as root
 *   (default true)
 * @param options.log - receives apt-get and compiler output, one line at a time
 */
export function prepareIsal(
  options: { install?: boolean; log?: (line: string) => void } = {},
): IsalHarness | IsalMissing {
  const { install = true, log = () => {} } = options

  if (!headerFound()) {
    const root = process.getuid?.() === 0
    if (install && root) installIsal(log)
    if (!headerFound()) {
      const why = !install
        ? 'installing was not allowed (install: false)'
        : !root
          ? 'not running as root, so it could not be installed automatically'
          : `\`${INSTALL_HINT}\` did not provide it (see the log)`
      return {
        available: false,
        note:
          `ISA-L not found: no ${HEADERS.join(' or ')}; ${why}. ` +
          `Install it with \`sudo ${INSTALL_HINT}\` (Debian/Ubuntu) and rerun.`,
      }
    }
  }

  if (!compilerFound()) {
    return {
      available: false,
      note:
        'No C compiler: `cc` was not found on PATH, so the ISA-L harness cannot be built. ' +
        'Install one with `sudo apt-get install -y gcc` and rerun.',
    }
  }

  let error: string | null
  try {
    error = compile(log)
  } catch (err) {
    error = err instanceof Error ? err.message : String(err)
  }
  if (error !== null) {
    // Compiler output opens with context lines ("In function ..."): quote the first error.
    const lines = error.split('\n')
    const first = lines.find((line) => /error/i.test(line)) ?? lines[0] ?? ''
    return {
      available: false,
      note:
        `Compiling ${SOURCE} against ISA-L failed: ${first.trim()}. ` +
        `Check that libisal is installed (\`${INSTALL_HINT}\`) and that \`cc\` works.`,
    }
  }

  return {
    available: true,
    run(k, m, blockBytes, iterations) {
      const args = [k, m, blockBytes, iterations].map(String)
      const stdout = execFileSync(BINARY, args, { encoding: 'utf8' })
      return parseResult(stdout.trim())
    },
  }
}
