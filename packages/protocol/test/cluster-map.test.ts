import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import {
  type ClusterMap,
  ClusterMapError,
  type ClusterMapProblem,
  loadClusterMap,
  mapHash,
  parseByteSize,
  parseClusterMap,
  stringifyClusterMap,
} from '../src/cluster-map.ts'
import { computeLayout } from '../src/placement.ts'

const VALID = `
cluster: 6f3c0a9e
erasure: { data: 4, parity: 2 }
pools:
  - nodes:
      - { id: n1, address: 10.0.0.1:7373, publicKey: 12D3KooWA1, drives: [/mnt/d1, /mnt/d2] }
      - { id: n2, address: 10.0.0.2:7373, publicKey: 12D3KooWA2, drives: [/mnt/d1, /mnt/d2] }
      - { id: n3, address: 10.0.0.3:7373, publicKey: 12D3KooWA3, drives: [/mnt/d1, /mnt/d2] }
gateways: [12D3KooWG1]
`

/** The problems parseClusterMap reports for `text`; none if it accepts it. */
function problemsOf(text: string, source?: string): ClusterMapProblem[] {
  try {
    parseClusterMap(text, source)
  } catch (err) {
    if (err instanceof ClusterMapError) return err.problems
    throw err
  }
  return []
}

/**
 * How `problems` differ from the `expected` [path, message pattern] pairs: the expected ones
 * not reported, and the reported ones not expected. Both empty when they match exactly.
 */
function diffProblems(
  problems: readonly ClusterMapProblem[],
  expected: readonly (readonly [string, RegExp])[],
): { missing: string[]; extra: string[] } {
  const matches = (p: ClusterMapProblem, [path, re]: readonly [string, RegExp]) =>
    p.path === path && re.test(p.message)
  return {
    missing: expected
      .filter((e) => !problems.some((p) => matches(p, e)))
      .map(([path, re]) => `${path}: ${re}`),
    extra: problems
      .filter((p) => !expected.some((e) => matches(p, e)))
      .map((p) => `${p.path}: ${p.message}`),
  }
}

const EXACTLY = { missing: [], extra: [] }

t.test('a valid map parses, with default sizes', async (t) => {
  const map = parseClusterMap(VALID)
  const node = (i: number) => ({
    id: `n${i}`,
    address: `10.0.0.${i}:7373`,
    publicKey: `12D3KooWA${i}`,
    drives: ['/mnt/d1', '/mnt/d2'],
  })
  t.same(map, {
    cluster: '6f3c0a9e',
    erasure: { data: 4, parity: 2, blockSize: 1024 * 1024, inlineBelow: 128 * 1024 },
    pools: [{ nodes: [node(1), node(2), node(3)] }],
    gateways: ['12D3KooWG1'],
  })
  t.notOk('zone' in map.pools[0]!.nodes[0]!, 'no zone key when the file gives none')
})

t.test(
  'optional parts: sizes, zones, IPv6, no gateways, text that looks like numbers',
  async (t) => {
    const map = parseClusterMap(`
cluster: 0123                 # a plain scalar keeps its spelling: not the number 123
erasure: { data: 2, parity: 1, blockSize: 1.5KiB, inlineBelow: 0 }
pools:
  - nodes:
      - id: 1
        address: "[fd00::1]:7373"
        publicKey: 12345
        drives: [/mnt/d1]
        zone: "yes"
      - { id: n2, address: host-2.example.com:1, publicKey: K2, drives: [/mnt/d1], zone: z2 }
      - { id: n3, address: 10.0.0.3:65535, publicKey: K3, drives: ['C:\\data'], zone: z3 }
gateways:
# none yet
`)
    t.equal(map.cluster, '0123')
    t.same(map.erasure, { data: 2, parity: 1, blockSize: 1536, inlineBelow: 0 })
    t.same(map.pools[0]!.nodes[0], {
      id: '1',
      address: '[fd00::1]:7373',
      publicKey: '12345',
      drives: ['/mnt/d1'],
      zone: 'yes',
    })
    t.equal(
      map.pools[0]!.nodes[2]!.drives[0],
      'C:\\data',
      'a Windows drive letter path is absolute',
    )
    t.same(map.gateways, [], 'an empty gateways list is no gateways')
  },
)

t.test('sizes: binary and decimal units, plain integers, nothing else', async (t) => {
  const good: [string, number][] = [
    ['1MiB', 1024 ** 2],
    ['128KiB', 128 * 1024],
    ['4GiB', 4 * 1024 ** 3],
    ['512B', 512],
    ['1MB', 1_000_000],
    ['2 kb', 2000],
    ['1TiB', 1024 ** 4],
    ['1.5MiB', 1.5 * 1024 ** 2],
    ['0.3KB', 300],
    ['4096', 4096],
  ]
  for (const [text, bytes] of good) t.equal(parseByteSize(text), bytes, `${text} = ${bytes} bytes`)
  for (const text of ['1M', '1 MiBs', '-1KiB', '1.2B', 'MiB', '', '1e3', '99999999TiB']) {
    t.equal(parseByteSize(text), undefined, `"${text}" is refused`)
  }
})

t.test('a map with many problems reports every one at once, with paths', async (t) => {
  const text = `cluster: c1
erasure: { data: 4, parity: 2, blockSize: 1MiB, inlineBelow: 12 parsecs }
pools:
  - nodes:   # 12 drives, 2 sets, but n1 holds 10 of them: at least 5 of a set
      - { id: n1, address: 10.0.0.1:7373, publicKey: K1,
          drives: [/d/1, /d/2, /d/3, /d/4, /d/5, /d/6, /d/7, /d/8, /d/9, /d/10] }
      - { id: n2, address: 10.0.0.2:7373, publicKey: K2, drives: [/d/1, /d/2] }
  - nodes:
      - { id: n3, address: 10.0.0.3:7373, publicKey: K3, drives: [/d/1, /d/2, /d/3, /d/3/] }
  - nodes:
      - { id: n1, address: 10.0.0.2:7373, publicKey: K2, drives: [/d/1, /d/2], zonee: z1 }
      - { id: n5, address: 10.0.0.5, publicKey: K5, drives: [d/1, /d/2] }
      - { id: n6, address: "[fd00::1]:99999", publicKey: K6, drives: [/d/1, /d/2] }
  - nodes:
      - { id: n7, address: "fd00::1", publicKey: K7,
          drives: [/d/1, /d/2, /d/3, /d/4, /d/5, /d/6, /d/7, /d/8] }
gateways: [K3]
extra: 1
`
  let error: unknown
  try {
    parseClusterMap(text, '/etc/tessera/cluster.yaml')
  } catch (err) {
    error = err
  }
  if (!(error instanceof ClusterMapError)) {
    t.fail('parseClusterMap must throw a ClusterMapError', { got: error })
    return
  }
  t.same(
    diffProblems(error.problems, [
      ['erasure.inlineBelow', /must be a size such as 1MiB.*got the text "12 parsecs"/],
      ['pools[0].nodes[0]', /losing node n1 loses data of sets 0, 1 of pool 0.*parity is 2/],
      ['pools[1]', /k\+m = 4\+2 = 6 is larger than the pool's 4 drive/],
      [
        'pools[1].nodes[0].drives[3]',
        /duplicate drive "\/d\/3\/".*pools\[1\]\.nodes\[0\]\.drives\[2\]/,
      ],
      ['pools[2].nodes[0].id', /duplicate node id "n1", already used by pools\[0\]\.nodes\[0\]/],
      ['pools[2].nodes[0].address', /duplicate address "10\.0\.0\.2:7373".*pools\[0\]\.nodes\[1\]/],
      ['pools[2].nodes[0].publicKey', /duplicate public key, already used by node n2/],
      ['pools[2].nodes[0].zonee', /unknown key "zonee" \(did you mean "zone"\?\).*id, address/],
      ['pools[2].nodes[1].address', /must be host:port.*got "10\.0\.0\.5"/],
      ['pools[2].nodes[1].drives[0]', /must be an absolute path.*got "d\/1"/],
      ['pools[2].nodes[2].address', /port 99999 is out of range/],
      ['pools[3]', /8 drives, which is not a multiple of k\+m = 4\+2 = 6: give it 6 or 12 drives/],
      ['pools[3].nodes[0].address', /IPv6 host goes in brackets/],
      ['gateways[0]', /duplicate public key, already used by node n3/],
      ['extra', /unknown key "extra"; allowed keys here are cluster, erasure, pools, gateways/],
    ]),
    EXACTLY,
  )

  const lines = error.message.split('\n')
  t.equal(lines[0], 'cluster map /etc/tessera/cluster.yaml: 15 problems', 'header names the file')
  for (const p of error.problems) {
    t.ok(
      lines.includes(`${p.path}: ${p.message} (line ${p.line})`),
      `message has the line for ${p.path}`,
    )
  }
  const dup = error.problems.find((p) => p.path === 'pools[1].nodes[0].drives[3]')
  t.equal(dup?.line, 9, 'problems carry the line of the offending value')
  const sorted = error.problems.every(
    (p, i, all) => i === 0 || (all[i - 1]!.line ?? 0) <= (p.line ?? 0),
  )
  t.ok(sorted, 'problems come in file order')
})

t.test('wrong types, missing fields and out-of-range numbers are all reported', async (t) => {
  const text = `cluster: ""
erasure:
  data: "4"
  parity: -1
  blockSize: 128MiB
  data: 5
pools:
  - nodes:
      - id: n 1
        drives: /mnt/d1
        publicKey: not-base58-0OIl
      - 7
      - { id: n2, address: 10.0.0.2:0, publicKey: K2, drives: [] }
  - nodes: []
  - {}
gateways: K9
`
  t.same(
    diffProblems(problemsOf(text), [
      ['cluster', /must be a non-empty cluster id/],
      ['erasure.data', /must be a whole number, got the text "4"; write it without quotes/],
      ['erasure.data', /is given more than once/],
      ['erasure.parity', /must be at least 0 \(got -1\)/],
      ['erasure.blockSize', /must be at most 64MiB/],
      ['pools[0].nodes[0].id', /"n 1" is not a valid node id/],
      ['pools[0].nodes[0].address', /is missing: expected host:port/],
      ['pools[0].nodes[0].drives', /must be a list of drive folders.*got the text "\/mnt\/d1"/],
      ['pools[0].nodes[0].publicKey', /is not a peer id: it must be base58/],
      [
        'pools[0].nodes[1]',
        /must be a mapping with keys id, address, publicKey, drives, zone, got 7/,
      ],
      ['pools[0].nodes[2].address', /port 0 is out of range/],
      ['pools[0].nodes[2].drives', /must list at least one drive folder/],
      ['pools[1].nodes', /must list at least one node/],
      ['pools[2].nodes', /is missing/],
      ['gateways', /must be a list of peer ids, got the text "K9"/],
    ]),
    EXACTLY,
  )
})

t.test('erasure limits: data ≥ 1, data + parity ≤ 256, blockSize ≥ data', async (t) => {
  const withErasure = (erasure: string) =>
    VALID.replace('erasure: { data: 4, parity: 2 }', `erasure: ${erasure}`)
  t.same(
    diffProblems(problemsOf(withErasure('{ data: 0, parity: 2 }')), [
      ['erasure.data', /must be at least 1 \(got 0\)/],
    ]),
    EXACTLY,
  )
  t.same(
    diffProblems(problemsOf(withErasure('{ data: 200, parity: 57 }')), [
      ['erasure', /data \+ parity is 257, more than the 256 shards/],
    ]),
    EXACTLY,
  )
  t.same(
    diffProblems(problemsOf(withErasure('{ data: 4, parity: 2, blockSize: 3 }')), [
      ['erasure.blockSize', /must be at least data = 4 bytes/],
    ]),
    EXACTLY,
  )
  t.same(
    diffProblems(problemsOf(withErasure('{ data: 4 }')), [['erasure.parity', /is missing/]]),
    EXACTLY,
  )
  t.same(
    diffProblems(problemsOf(withErasure('{ data: 4, parity: 2, inlineBelow: -1 }')), [
      ['erasure.inlineBelow', /must be a size/],
    ]),
    EXACTLY,
  )
  t.same(
    problemsOf(withErasure('{ data: 4, parity: 2, blockSize: 64MiB }')),
    [],
    '64MiB is allowed',
  )
})

t.test('addresses must be host:port', async (t) => {
  const withAddress = (address: string) =>
    problemsOf(VALID.replace('address: 10.0.0.1:7373', `address: "${address}"`))
  for (const ok of ['localhost:1', '10.0.0.9:65535', '[::1]:7373', 'node-1.example.com:7373']) {
    t.same(withAddress(ok), [], `${ok} is accepted`)
  }
  for (const bad of ['10.0.0.9', '10.0.0.9:', ':7373', '10.0.0.9:65536', '999.0.0.1:80']) {
    const problems = withAddress(bad)
    t.equal(problems[0]?.path, 'pools[0].nodes[0].address', `${bad} is refused`)
  }
  for (const bad of ['[10.0.0.9]:80', 'a b:80', 'fd00::1:7373', '-host:80']) {
    t.equal(withAddress(bad).length, 1, `${bad} is refused`)
  }
})

t.test('a duplicate key and a YAML syntax error are reported with their lines', async (t) => {
  const dup = problemsOf(`${VALID}cluster: again\n`)
  t.match(dup, [{ path: 'cluster', message: /given more than once/, line: 10 }])
  const syntax = problemsOf('cluster: x\nerasure: { data: 4, parity: 2\npools: []\n')
  t.equal(syntax.length > 0 && syntax.every((p) => p.path === '(root)'), true, 'at the root')
  t.match(syntax[0], { message: /^YAML syntax error: /, line: Number })
  t.same(problemsOf(''), [
    {
      path: '(root)',
      message:
        'the file is empty; it must be a mapping with keys cluster, erasure, pools, gateways',
    },
  ])
})

t.test(
  'anchors and aliases can share drive lists; an alias without anchor is reported',
  async (t) => {
    const shared = VALID.replace(
      'drives: [/mnt/d1, /mnt/d2] }',
      'drives: &d [/mnt/d1, /mnt/d2] }',
    ).replace('12D3KooWA2, drives: [/mnt/d1, /mnt/d2] }', '12D3KooWA2, drives: *d }')
    t.not(shared, VALID, 'the test really uses an alias')
    t.same(parseClusterMap(shared), parseClusterMap(VALID), 'an alias reads as its anchor')
    const broken = shared.replace('drives: *d }', 'drives: *e }')
    t.same(
      diffProblems(problemsOf(broken), [
        ['pools[0].nodes[1].drives', /got \*e, an alias with no anchor &e before it/],
      ]),
      EXACTLY,
    )
    t.match(problemsOf(`${VALID}---\ncluster: other\n`), [
      { path: '(root)', message: /one YAML document/, line: 10 },
    ])
  },
)

t.test('a single-node pool (one machine, several drive folders) is accepted', async (t) => {
  const map = parseClusterMap(`
cluster: local
erasure: { data: 4, parity: 2 }
pools:
  - nodes:
      - id: local
        address: 127.0.0.1:7373
        publicKey: K1
        drives: [/d/1, /d/2, /d/3, /d/4, /d/5, /d/6]
`)
  const layout = computeLayout(map)
  t.equal(layout.pools[0]!.sets.length, 1)
  t.same(
    layout.pools[0]!.sets[0]!.drives.map((d) => d.path),
    ['/d/1', '/d/2', '/d/3', '/d/4', '/d/5', '/d/6'],
    'the one set holds every drive, in map order',
  )
})

t.test('nested drives and half-zoned pools are refused', async (t) => {
  const nested = VALID.replace('drives: [/mnt/d1, /mnt/d2] }', 'drives: [/mnt/d1, /mnt/d1/x] }')
  t.same(
    diffProblems(problemsOf(nested), [
      [
        'pools[0].nodes[0].drives[1]',
        /"\/mnt\/d1\/x" and pools\[0\]\.nodes\[0\]\.drives\[0\] are nested/,
      ],
    ]),
    EXACTLY,
  )
  const halfZoned = VALID.replace(
    'drives: [/mnt/d1, /mnt/d2] }',
    'drives: [/mnt/d1, /mnt/d2], zone: a }',
  )
  t.same(
    diffProblems(problemsOf(halfZoned), [['pools[0]', /node\(s\) n2, n3 have no zone/]]),
    EXACTLY,
  )
})

t.test('the node-outage check agrees with its formula on random pools', async (t) => {
  // A node's drives spread at best evenly over the pool's S sets, so one node outage loses
  // data exactly when some node of a multi-node pool has more than parity × S drives.
  const rng = mulberry32(0x7e55e2a)
  let accepted = 0
  let refused = 0
  for (let round = 0; round < 600; round++) {
    const data = 1 + Math.floor(rng() * 4)
    const parity = Math.floor(rng() * 3)
    const n = data + parity
    const counts = Array.from(
      { length: 1 + Math.floor(rng() * 5) },
      () => 1 + Math.floor(rng() * 7),
    )
    const total = counts.reduce((a, b) => a + b, 0)
    if (total % n !== 0 || total < n) continue
    const sets = total / n
    const loses = counts.length > 1 && counts.some((d) => d > parity * sets)
    const map = testMap(data, parity, [counts])
    const problems = problemsOf(stringifyClusterMap(map))
    const ok = problems.length === 0
    if (ok === loses) {
      t.fail(`drives per node ${counts} with ${data}+${parity}`, { problems })
      return
    }
    if (ok) accepted++
    else refused++
    if (!ok && !problems.every((p) => /^losing node n\d+ loses data of set/.test(p.message))) {
      t.fail('only the node-outage check fires', { problems })
      return
    }
  }
  t.ok(accepted > 20 && refused > 20, `${accepted} accepted and ${refused} refused as predicted`)
})

t.test('mapHash ignores formatting, comments and key order, not meaning', async (t) => {
  const reformatted = `# the same cluster, written differently
gateways:
  - 12D3KooWG1
pools:
  - nodes:
      - drives:
          - /mnt/d1     # first drive
          - /mnt/d2
        publicKey: 12D3KooWA1
        address: 10.0.0.1:7373
        id: n1
      - { id: n2, address: 10.0.0.2:7373, publicKey: 12D3KooWA2, drives: [/mnt/d1, /mnt/d2] }
      - { id: n3, address: 10.0.0.3:7373, publicKey: 12D3KooWA3, drives: [/mnt/d1, /mnt/d2] }
erasure:
  parity: 2
  data: 4
  blockSize: 1024KiB
  inlineBelow: 131072
cluster: "6f3c0a9e"
`
  const base = mapHash(parseClusterMap(VALID))
  t.match(base, /^[0-9a-f]{64}$/, 'hex sha256')
  t.equal(mapHash(parseClusterMap(reformatted)), base, 'same map, same hash')
  t.equal(
    base,
    'ec02080851dab5fced9f9815a91ed4f713065bf8447c86e386c630d4aa1c0228',
    'the canonical form is stable across releases (nodes of two releases compare it)',
  )
  const changes: [string, string, string][] = [
    [
      'a drive path',
      '[/mnt/d1, /mnt/d2] }\n      - { id: n3',
      '[/mnt/d1, /mnt/d3] }\n      - { id: n3',
    ],
    [
      "the order of a node's drives",
      'drives: [/mnt/d1, /mnt/d2] }',
      'drives: [/mnt/d2, /mnt/d1] }',
    ],
    ['a node id', 'id: n1, address: 10.0.0.1', 'id: n0, address: 10.0.0.1'],
    ['a zone', 'drives: [/mnt/d1, /mnt/d2] }', 'drives: [/mnt/d1, /mnt/d2], zone: z1 }'],
    ['the block size', 'parity: 2 }', 'parity: 2, blockSize: 2MiB }'],
    ['a gateway', '[12D3KooWG1]', '[12D3KooWG1, 12D3KooWG2]'],
    ['the cluster id', 'cluster: 6f3c0a9e', 'cluster: 6f3c0a9f'],
  ]
  for (const [what, from, to] of changes) {
    const changed = VALID.replaceAll(from, to)
    t.not(changed, VALID, `the test really changes ${what}`)
    t.not(mapHash(parseClusterMap(changed)), base, `changing ${what} changes the hash`)
  }
  const map = parseClusterMap(VALID)
  const swapped = { ...map, pools: [{ nodes: [...map.pools[0]!.nodes].reverse() }] }
  t.not(mapHash(swapped), base, 'reordering nodes (which moves slots) changes the hash')
  const gateways = { ...map, gateways: ['B', 'A'] }
  t.equal(
    mapHash(gateways),
    mapHash({ ...map, gateways: ['A', 'B'] }),
    'the order of gateways means nothing',
  )
})

t.test('stringifyClusterMap output parses back to an equal map', async (t) => {
  const maps: ClusterMap[] = [
    parseClusterMap(VALID),
    testMap(4, 2, [[6], [2, 2, 2, 2, 2, 2]]),
    testMap(8, 4, [[12, 12, 12, 12, 12, 12, 12, 12]], {
      zones: 3,
      blockSize: 3000,
      inlineBelow: 0,
    }),
    {
      cluster: '1e5',
      erasure: { data: 1, parity: 0, blockSize: 48 * 1024 ** 2 + 1, inlineBelow: 1 },
      pools: [
        {
          nodes: [
            {
              id: 'true',
              address: '[fd00::1]:7373',
              publicKey: '123456',
              drives: ['/mnt/my disk', 'C:\\data', '/mnt/#x', "/mnt/it's"],
              zone: 'null',
            },
          ],
        },
      ],
      gateways: ['12D3KooWz', '1'],
    },
  ]
  for (const [i, map] of maps.entries()) {
    const text = stringifyClusterMap(map)
    let back: ClusterMap | undefined
    try {
      back = parseClusterMap(text, `map ${i}`)
    } catch (err) {
      t.fail(`map ${i} does not parse back`, { err: String(err), text })
      continue
    }
    t.same(back, map, `map ${i} round-trips`)
    t.equal(mapHash(back), mapHash(map), `map ${i} keeps its hash`)
  }
  t.match(stringifyClusterMap(maps[0]!), /blockSize: 1MiB, inlineBelow: 128KiB/, 'sizes in units')
})

t.test('loadClusterMap reads a file and names it in errors', async (t) => {
  const dir = t.testdir({ 'cluster.yaml': VALID, 'bad.yaml': VALID.replace('10.0.0.2:7373', 'x') })
  const { map, hash } = await loadClusterMap(join(dir, 'cluster.yaml'))
  t.same(map, parseClusterMap(VALID))
  t.equal(hash, mapHash(map))

  const bad = join(dir, 'bad.yaml')
  await t.rejects(loadClusterMap(bad), {
    name: 'ClusterMapError',
    code: 'INVALID_CLUSTER_MAP',
    source: bad,
    message: new RegExp(
      `^cluster map ${escapeRe(bad)}: 1 problem\npools\\[0\\]\\.nodes\\[1\\]\\.address: `,
    ),
  })
  const missing = join(dir, 'missing.yaml')
  await t.rejects(loadClusterMap(missing), {
    name: 'ClusterMapError',
    message: new RegExp(
      `^cluster map ${escapeRe(missing)}: 1 problem\n\\(root\\): cannot read the file.*ENOENT`,
    ),
  })
  await writeFile(join(dir, 'cluster.yaml'), `${VALID}# trailing comment\n`)
  t.equal((await loadClusterMap(join(dir, 'cluster.yaml'))).hash, hash, 'a comment keeps the hash')
})

/** A map with one node per entry of each pool's drive counts; drives /d/0…, nodes n1…. */
function testMap(
  data: number,
  parity: number,
  pools: number[][],
  opts: { zones?: number; blockSize?: number; inlineBelow?: number } = {},
): ClusterMap {
  let id = 0
  return {
    cluster: 'test',
    erasure: {
      data,
      parity,
      blockSize: opts.blockSize ?? 1024 * 1024,
      inlineBelow: opts.inlineBelow ?? 128 * 1024,
    },
    pools: pools.map((counts) => ({
      nodes: counts.map((count) => {
        id++
        return {
          id: `n${id}`,
          address: `10.0.${id >> 8}.${id & 255}:7373`,
          publicKey: `K${id}`,
          drives: Array.from({ length: count }, (_, d) => `/d/${d}`),
          ...(opts.zones === undefined ? {} : { zone: `z${id % opts.zones}` }),
        }
      }),
    })),
    gateways: [],
  }
}

/** A small seeded PRNG, so the random pools are the same on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

function escapeRe(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
