#!/usr/bin/env node
// Checks the package graph of ../shared/style.md §2.1: which workspace package may depend on
// which, and that each package's tsconfig references match its workspace dependencies.
// Run by `pnpm lint`; exits non-zero with every problem listed.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const ALLOWED = {
  '@tessera/codec': [],
  '@tessera/protocol': [],
  '@tessera/node': ['@tessera/protocol', '@tessera/codec'],
  // The web console is a browser app built by Vite; the gateway serves its built files.
  '@tessera/console': [],
  '@tessera/gateway': ['@tessera/protocol', '@tessera/codec', '@tessera/console'],
  // The operator CLI and embedded server: the one place node and gateway meet in a process.
  '@tessera/server': ['@tessera/protocol', '@tessera/node', '@tessera/gateway'],
  '@tessera/bench': '*',
  '@tessera/test': '*',
}
// Packages that are not TypeScript projects of the root `tsc -b` (the console builds with its
// own tsconfig and Vite): a dependency on them needs no tsconfig reference.
const ASSET_PACKAGES = new Set(['@tessera/console'])
const DIRS = [
  'packages/codec',
  'packages/console',
  'packages/protocol',
  'packages/node',
  'packages/gateway',
  'packages/server',
  'bench',
  'test',
]
const byName = new Map()
const problems = []

for (const dir of DIRS) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  byName.set(pkg.name, dir)
}
for (const dir of DIRS) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  const deps = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies }).filter((d) =>
    byName.has(d),
  )
  const allowed = ALLOWED[pkg.name]
  if (allowed === undefined) problems.push(`${dir}: ${pkg.name} is not in the package graph`)
  else if (allowed !== '*') {
    for (const d of deps)
      if (!allowed.includes(d)) problems.push(`${dir}: ${pkg.name} may not depend on ${d}`)
  }
  for (const d of deps) {
    if (byName.get(d) === 'bench' || byName.get(d) === 'test')
      problems.push(`${dir}: nothing may depend on ${d}`)
  }
  const tsconfig = JSON.parse(readFileSync(join(dir, 'tsconfig.json'), 'utf8'))
  const refs = (tsconfig.references ?? []).map((r) => join(dir, r.path))
  const want = deps.filter((d) => !ASSET_PACKAGES.has(d)).map((d) => byName.get(d))
  for (const w of want)
    if (!refs.includes(w)) problems.push(`${dir}: tsconfig.json lacks a reference to ${w}`)
  for (const r of refs)
    if (!want.includes(r)) problems.push(`${dir}: tsconfig.json references ${r}, not a dependency`)
}
if (problems.length > 0) {
  console.error(
    `package graph: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join('\n')}`,
  )
  process.exit(1)
}
console.log(`package graph: ${DIRS.length} packages, all edges allowed`)
