// pnpm bench:shard-write — a node writing shard files (writeShard: tmp file, fsync), through
// the page cache (the baseline, `directWriteBytes: 0`) and with O_DIRECT through aligned slabs
// (the candidate, the default), side by side in one run: MB/s and CPU seconds per GB (the
// whole process: JS, libuv's threads and the kernel's work on their behalf). Shards of 32 MiB
// (a 64 MiB object at RS(2,2)) and 1 MiB, by 1 and 4 writers at once, bodies arriving in 64 KiB
// pieces as RPC DATA frames do. Each run writes to fresh files, deleted after the run; the two
// modes alternate, 5 runs each, medians. Prints a table and writes results/shard-write.json.
// `--smoke` runs one small round and writes no result file. `--dir <path>` measures another
// file system (default: the OS temp folder).
import { mkdtempSync, rmSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AlignedSlabs, DEFAULT_DIRECT_WRITE_BYTES, Drive, writeShard } from '@tessera/node'
import { parseBench, smokeCommand } from './cli.ts'
import { machine, median, printTable, round, writeResults } from './measure.ts'

const opts = parseBench<{ smoke?: boolean; dir?: string }>(
  smokeCommand(
    'bench:shard-write',
    'A node writing shard files through the page cache and with O_DIRECT: MB/s and CPU per GB; writes results/shard-write.json.',
  ).option('--dir <path>', 'folder to measure (default: the OS temp folder)'),
)
const smoke = opts.smoke === true
const parent = opts.dir ?? tmpdir()
const MiB = 1024 * 1024
const RUNS = smoke ? 1 : 5
const PIECE_BYTES = 64 * 1024
/** Bytes each run writes in all, per case. */
const RUN_BYTES = smoke ? 8 * MiB : 512 * MiB
const CASES: { shardBytes: number; writers: number }[] = [
  { shardBytes: 32 * MiB, writers: 1 },
  { shardBytes: 32 * MiB, writers: 4 },
  { shardBytes: 1 * MiB, writers: 1 },
  { shardBytes: 1 * MiB, writers: 4 },
]

/** One random body, cut in pieces that each writeShard call streams. */
const source = Buffer.allocUnsafe(32 * MiB)
for (let i = 0; i < source.length; i += 4) source.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i)

async function* body(size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < size; at += PIECE_BYTES) {
    // A fresh piece each time, as the RPC layer delivers them (decrypted into new buffers).
    yield Buffer.from(source.subarray(at, Math.min(size, at + PIECE_BYTES)))
  }
}

interface Sample {
  mbps: number
  cpuSecondsPerGB: number
}

let serial = 0
/** `writers` loops writing shards of `shardBytes` until RUN_BYTES are written; then deletes them. */
async function run(drive: Drive, shardBytes: number, writers: number): Promise<Sample> {
  const perWriter = Math.max(1, Math.floor(RUN_BYTES / shardBytes / writers))
  const tmpIds: string[] = []
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let i = 0; i < perWriter; i++) {
        const tmpId = `bench-${String(serial++).padStart(8, '0')}`
        tmpIds.push(tmpId)
        const ref = { ...drive.ref, bucket: 'bench', key: 'k', dataDir: 'dd-bench-0000', part: 1 }
        await writeShard(drive, { ...ref, tmpId, size: shardBytes }, body(shardBytes))
      }
    }),
  )
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const bytes = perWriter * writers * shardBytes
  await Promise.all(tmpIds.map((id) => rm(drive.tmpPath(id), { recursive: true, force: true })))
  return {
    mbps: bytes / seconds / 1e6,
    cpuSecondsPerGB: (cpu.user + cpu.system) / 1e6 / (bytes / 1e9),
  }
}

type Row = {
  case: string
  shardBytes: number
  writers: number
  bufferedMBps: number
  directMBps: number
  vsBuffered: number
  bufferedCpuSecPerGB: number
  directCpuSecPerGB: number
  cpuVsBuffered: number
}

const root = mkdtempSync(join(parent, 'tessera-shard-write-bench-'))
const rows: Row[] = []
let drives: Drive[] = []
try {
  const ref = { pool: 0, set: 0, slot: 0 }
  const buffered = await Drive.open({ path: join(root, 'buffered'), cluster: 'bench', ref })
  const slabs = new AlignedSlabs(DEFAULT_DIRECT_WRITE_BYTES)
  const direct = await Drive.open({ path: join(root, 'direct'), cluster: 'bench', ref, slabs })
  drives = [buffered, direct]
  if (!direct.directIo.direct) {
    console.log(`note: ${parent} refuses O_DIRECT; the "direct" side writes through the page cache`)
  }
  for (const { shardBytes, writers } of CASES) {
    await run(buffered, shardBytes, writers)
    await run(direct, shardBytes, writers)
    const b: Sample[] = []
    const d: Sample[] = []
    // Alternating, so drift on a shared machine hits both sides alike.
    for (let r = 0; r < RUNS; r++) {
      b.push(await run(buffered, shardBytes, writers))
      d.push(await run(direct, shardBytes, writers))
    }
    const bufferedMBps = median(b.map((s) => s.mbps))
    const directMBps = median(d.map((s) => s.mbps))
    const bufferedCpu = median(b.map((s) => s.cpuSecondsPerGB))
    const directCpu = median(d.map((s) => s.cpuSecondsPerGB))
    rows.push({
      case: `${shardBytes / MiB}MiB×${writers}`,
      shardBytes,
      writers,
      bufferedMBps: round(bufferedMBps, 1),
      directMBps: round(directMBps, 1),
      vsBuffered: round(directMBps / bufferedMBps),
      bufferedCpuSecPerGB: round(bufferedCpu),
      directCpuSecPerGB: round(directCpu),
      cpuVsBuffered: round(directCpu / bufferedCpu),
    })
  }
} finally {
  await Promise.all(drives.map((d) => d.close()))
  rmSync(root, { recursive: true, force: true })
}

printTable(rows, [
  'case',
  'bufferedMBps',
  'directMBps',
  'vsBuffered',
  'bufferedCpuSecPerGB',
  'directCpuSecPerGB',
  'cpuVsBuffered',
])
if (!smoke) {
  writeResults('shard-write', rows, {
    bench: 'shard-write',
    machine: machine(),
    dir: parent,
    runs: RUNS,
    runBytes: RUN_BYTES,
    pieceBytes: PIECE_BYTES,
    rows,
  })
}
