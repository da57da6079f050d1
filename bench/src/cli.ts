// What every bench script's command line shares: commander programs that print --help, refuse
// unknown options and bad values with a clear message (exit 1), option parsers, and an orderly
// end on Ctrl-C or SIGTERM (the clusters a run started are stopped and its drive folders go).
import { Command, InvalidArgumentError } from 'commander'
import { parseSize } from './units.ts'

/** A bench's program: `name` as `pnpm <name>` shows it, and what it measures. */
export function benchCommand(name: string, description: string): Command {
  return new Command(name).description(description).showHelpAfterError().allowExcessArguments(false)
}

/** A bench whose CI form is `--smoke`: a tiny run of every case, no result file. */
export function smokeCommand(name: string, description: string): Command {
  return benchCommand(name, description).option(
    '--smoke',
    'a tiny run of every case (CI), no result file',
  )
}

/** A bench of timed runs: `--quick` (CI's form, described by `quick`), `--ms`, `--repeats`. */
export function runsCommand(name: string, description: string, quick: string): Command {
  return benchCommand(name, description)
    .option('--quick', quick)
    .option('--ms <n>', 'timed phase of each run, in ms (default 3000)', positive('--ms'))
    .option('--repeats <n>', 'runs of each case (default 3)', positive('--repeats'))
}

/** Parses this process's arguments into `program`'s options (`pnpm bench:x -- --a` passes `--` on). */
export function parseBench<T>(program: Command): T {
  const argv = process.argv.slice(2)
  if (argv[0] === '--') argv.shift()
  return program.parse(argv, { from: 'user' }).opts<T & Record<string, unknown>>()
}

/** An option parser for a positive integer (or, with `int` false, any positive number). */
export const positive =
  (what: string, int = true) =>
  (v: string): number => {
    const n = Number(v)
    if (!(n > 0) || (int && !Number.isInteger(n)))
      throw new InvalidArgumentError(`${what} must be a positive ${int ? 'integer' : 'number'}`)
    return n
  }

/** `parse`, its errors turned into commander's (shown with the option's name and the usage). */
export const wrap =
  <T>(parse: (v: string) => T) =>
  (v: string): T => {
    try {
      return parse(v)
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message)
    }
  }

/** A comma-separated list of `parse`'s values. */
export const list =
  <T>(parse: (v: string) => T) =>
  (v: string): T[] =>
    v.split(',').map(parse)

/** `4KiB,1MiB` → bytes. */
export const sizeList = wrap(list(parseSize))

/** `1,8,32` → positive integers. */
export const countList = (what: string) => list(positive(what))

const cleanups = new Set<() => Promise<void>>()
let installed = false

/**
 * Runs `cleanup` if the process is interrupted (SIGINT, SIGTERM) before the returned function
 * is called; then the process exits with 130 (SIGINT) or 143 (SIGTERM). A second signal exits
 * at once. The daemons of a local cluster stop with this process anyway (they watch their
 * stdin); what cleanup adds is an orderly stop and the removal of what the run wrote.
 */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  if (!installed) {
    installed = true
    let stopping = false
    const stop = (signal: NodeJS.Signals): void => {
      const code = signal === 'SIGINT' ? 130 : 143
      if (stopping) process.exit(code)
      stopping = true
      process.stderr.write(`\ninterrupted (${signal}): stopping and cleaning up\n`)
      void Promise.allSettled([...cleanups].map((f) => f())).then(() => process.exit(code))
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  }
  cleanups.add(cleanup)
  return () => {
    cleanups.delete(cleanup)
  }
}
