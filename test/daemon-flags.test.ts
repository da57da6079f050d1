// Every way a daemon is started carries DAEMON_V8_FLAGS, all of them, in order, and the
// environment of DAEMON_ENV: the bins' shebangs (as built), `pnpm start` and the systemd units
// shipped in deploy/. (LocalCluster is checked on live processes in packages/server's
// local-cluster test, install.sh's rendered units in ops-cli.test.)
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DAEMON_ENV, DAEMON_V8_FLAGS } from '@tessera/protocol'
import t from 'tap'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const flags = DAEMON_V8_FLAGS.join(' ')
const env = Object.entries(DAEMON_ENV)

t.test('the bins run node with the daemon flags', async (t) => {
  for (const pkg of ['node', 'gateway', 'server']) {
    const main = join(REPO, 'packages', pkg, 'dist', 'src', 'main.js')
    const first = (await readFile(main, 'utf8')).split('\n')[0]
    const vars = env.map(([k, v]) => `${k}=${v}`).join(' ')
    t.equal(first, `#!/usr/bin/env -S ${vars} node ${flags}`, `${pkg}'s shebang`)
  }
})

t.test('pnpm start and the systemd units pass the daemon flags', async (t) => {
  const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8'))
  // A value already in the environment wins.
  const vars = env.map(([k, v]) => `${k}=\${${k}:-${v}} `).join('')
  t.match(pkg.scripts.start, `${vars}node ${flags} packages/server/dist/src/main.js server `)
  for (const unit of ['tessera-node.service', 'tessera-gateway.service']) {
    const text = await readFile(join(REPO, 'deploy', 'systemd', unit), 'utf8')
    t.match(text, new RegExp(`^ExecStart=/usr/bin/node ${flags} /`, 'm'), unit)
    for (const [k, v] of env)
      t.match(text, new RegExp(`^Environment=${k}=${v}$`, 'm'), `${unit}: ${k}`)
  }
})
