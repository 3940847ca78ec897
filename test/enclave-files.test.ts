// What can be checked about the enclave image and the parent-instance files without AWS:
// the scripts pass shellcheck, the Dockerfile pins every base image and ships no dev
// dependencies, start.sh wires the exact vsock bridges, run.sh builds the exact nitro-cli
// command line, and the systemd units and allocator.yaml agree with them.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { after, describe, it } from 'node:test'
import { requireTools, type SystemTool } from './system-tools.js'

const ENCLAVE = join(process.cwd(), 'enclave')
const read = (name: string): string => readFileSync(join(ENCLAVE, name), 'utf8')

interface Instruction {
  op: string
  args: string
}

interface Stage {
  image: string
  name: string | null
  instructions: Instruction[]
}

/** Dockerfile → logical instructions: comments dropped, continuation lines joined. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = []
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('#') || (line === '' && pending === '')) continue
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `
      continue
    }
    const full = (pending + line).trim()
    pending = ''
    if (full === '') continue
    const m = /^(\S+)\s*(.*)$/.exec(full)
    assert.ok(m !== null, full)
    out.push({ op: (m[1] ?? '').toUpperCase(), args: m[2] ?? '' })
  }
  assert.equal(pending, '', 'the Dockerfile ends inside a continuation line')
  return out
}

function stages(text: string): Stage[] {
  const result: Stage[] = []
  for (const ins of instructions(text)) {
    if (ins.op === 'FROM') {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--platform='))
      const asIndex = words.findIndex((w) => w.toUpperCase() === 'AS')
      result.push({ image: words[0] ?? '', name: asIndex >= 0 ? (words[asIndex + 1] ?? null) : null, instructions: [] })
      continue
    }
    const current = result[result.length - 1]
    if (current === undefined) {
      assert.equal(ins.op, 'ARG', `only ARG may come before the first FROM, found ${ins.op}`)
      continue
    }
    current.instructions.push(ins)
  }
  return result
}

const runs = (stage: Stage): string[] => stage.instructions.filter((i) => i.op === 'RUN').map((i) => i.args)
/** `npm ci` / `npm install` invocations of a stage, one string each. */
const npmInstalls = (stage: Stage): string[] =>
  runs(stage).flatMap((r) => r.split(/&&|;/).map((c) => c.trim()).filter((c) => /^npm\s+(ci|install|i)\b/.test(c)))

function copyFrom(ins: Instruction): string | null {
  const m = /--from=(\S+)/.exec(ins.args)
  return m?.[1] ?? null
}

/** Joins backslash-continued shell lines so a command can be matched as one line. */
function shellLines(text: string): string[] {
  return text
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
}

const SHELLCHECK: SystemTool = { command: 'shellcheck', debian: 'shellcheck' }
// what start.sh runs besides sh and coreutils
const START_TOOLS: SystemTool[] = [
  { command: 'socat', debian: 'socat' },
  { command: 'ip', debian: 'iproute2' },
  { command: 'ss', debian: 'iproute2' },
  { command: 'setpriv', debian: 'util-linux' },
]

const SHELL_SCRIPTS = readdirSync(ENCLAVE).filter((f) => f.endsWith('.sh'))
const temps: string[] = []
after(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true })
})

describe('enclave scripts', () => {
  it('shellcheck passes on every script in enclave/', (t) => {
    assert.ok(SHELL_SCRIPTS.length >= 4, `expected the enclave scripts, found ${SHELL_SCRIPTS.join(', ')}`)
    if (!requireTools(t, [SHELLCHECK])) return
    const result = spawnSync('shellcheck', ['--external-sources', ...SHELL_SCRIPTS.map((f) => join(ENCLAVE, f))], { encoding: 'utf8' })
    assert.equal(result.status, 0, `shellcheck found problems:\n${result.stdout}${result.stderr}`)
  })

  it('every script is executable and starts with a shebang and set -eu', () => {
    for (const file of SHELL_SCRIPTS) {
      const text = read(file)
      assert.match(text, /^#!\/(usr\/bin\/env bash|bin\/sh)\n/, file)
      assert.match(text, /^set -eu(o pipefail)?$/m, file)
      assert.doesNotThrow(() => accessSync(join(ENCLAVE, file), constants.X_OK), `${file} is not executable`)
    }
  })

  it('start.sh brings up lo, starts the exact vsock bridges and execs nec01 serve through the proxy', () => {
    const lines = shellLines(read('start.sh'))
    assert.ok(lines.some((l) => /\bip link set dev lo up\b/.test(l)))
    assert.ok(lines.some((l) => /\bip addr add 127\.0\.0\.1\/8 dev lo\b/.test(l)))
    const socats = lines.filter((l) => /\bsocat\b/.test(l) && !l.startsWith('log'))
    assert.deepEqual(socats, [
      'keep_running socat TCP-LISTEN:1080,bind=127.0.0.1,fork,reuseaddr VSOCK-CONNECT:3:1080 &',
      'keep_running socat VSOCK-LISTEN:8765,fork,reuseaddr TCP:127.0.0.1:8765 &',
    ])
    const execs = lines.filter((l) => l.startsWith('exec '))
    assert.ok(execs.length >= 1)
    for (const e of execs) {
      assert.match(e, / node dist\/src\/cli\.js serve --proxy http:\/\/127\.0\.0\.1:1080 --parent-signatures --health-port 8765 --t "\$NEC01_T"$/, e)
    }
    // The service never keeps root: every exec of node goes through setpriv when root.
    assert.ok(execs.some((e) => e.startsWith('exec setpriv --reuid="$RUN_AS"')))
    assert.match(read('start.sh'), /^NEC01_T=\$\{NEC01_T:-prod\}$/m)
  })
})

// start.sh for real, in fresh network and PID namespaces (lo down, as in an enclave), with
// a stand-in for `nec01 serve` that reports what it was started with. When it exits, the
// namespace's other processes (the socat loops) die with it, as they do in the enclave.
const canUnshare = spawnSync('unshare', ['--net', '--pid', '--fork', 'true']).status === 0

describe('enclave/start.sh in a fresh network namespace', () => {
  it(
    'brings up lo, listens on 127.0.0.1:1080, drops to the service user and passes the serve flags',
    { skip: canUnshare ? false : 'needs root for unshare --net --pid (CI runs as root)', timeout: 30_000 },
    (t) => {
      if (!requireTools(t, START_TOOLS)) return
      const app = mkdtempSync(join(tmpdir(), 'nec01-start-'))
      temps.push(app)
      chmodSync(app, 0o755)
      mkdirSync(join(app, 'dist', 'src'), { recursive: true })
      writeFileSync(
        join(app, 'dist', 'src', 'cli.js'),
        String.raw`const net = require('node:net')
const fs = require('node:fs')
const os = require('node:os')
const status = fs.readFileSync('/proc/self/status', 'utf8')
const field = (name) => (new RegExp('^' + name + ':\\s*(\\S+)', 'm').exec(status) || [])[1]
const lo = (os.networkInterfaces().lo || []).map((a) => a.address)
let tries = 0
const attempt = () => {
  const s = net.connect(1080, '127.0.0.1')
  s.on('connect', () => { s.destroy(); report(true) })
  s.on('error', () => (++tries < 50 ? setTimeout(attempt, 100) : report(false)))
}
const report = (bridge) => {
  process.stdout.write(JSON.stringify({ argv: process.argv.slice(2), uid: process.getuid(), capEff: field('CapEff'), noNewPrivs: field('NoNewPrivs'), lo, bridge, cwd: process.cwd() }) + '\n')
}
attempt()
`,
      )
      chmodSync(join(app, 'dist', 'src', 'cli.js'), 0o644)
      // CommonJS stand-in: no package.json "type" in the temp app.
      const nodeDir = dirname(process.execPath)
      const r = spawnSync('unshare', ['--net', '--pid', '--fork', 'sh', join(ENCLAVE, 'start.sh')], {
        // the PATH the tools were found on
        env: { PATH: `${nodeDir}${delimiter}${process.env.PATH ?? ''}`, NEC01_APP_DIR: app, NEC01_USER: 'nobody', NEC01_T: 'dev' },
        encoding: 'utf8',
        timeout: 25_000,
      })
      assert.equal(r.status, 0, r.stderr)
      const line = r.stdout.trim().split('\n').pop() ?? ''
      const got = JSON.parse(line) as { argv: string[]; uid: number; capEff: string; noNewPrivs: string; lo: string[]; bridge: boolean; cwd: string }
      assert.deepEqual(got.argv, ['serve', '--proxy', 'http://127.0.0.1:1080', '--parent-signatures', '--health-port', '8765', '--t', 'dev'])
      assert.ok(got.lo.includes('127.0.0.1'), `lo addresses: ${got.lo.join(', ')}`)
      assert.equal(got.bridge, true, 'nothing listened on 127.0.0.1:1080')
      const nobody = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout.trim()
      assert.equal(String(got.uid), nobody)
      assert.equal(got.capEff, '0000000000000000')
      assert.equal(got.noNewPrivs, '1')
      assert.equal(got.cwd, app)
    },
  )
})

describe('enclave/Dockerfile', () => {
  const dockerfile = read('Dockerfile')
  const all = stages(dockerfile)
  const final = all[all.length - 1]

  it('pins every base image by digest, and uses no unpinned frontend', () => {
    assert.ok(all.length >= 2, 'expected a multi-stage build')
    for (const stage of all) {
      assert.match(stage.image, /^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?@sha256:[0-9a-f]{64}$/, `FROM ${stage.image} is not pinned by digest`)
    }
    const syntax = /^#\s*syntax=(\S+)/m.exec(dockerfile)
    if (syntax !== null) assert.match(syntax[1] ?? '', /@sha256:[0-9a-f]{64}$/, 'the # syntax= frontend is not pinned')
  })

  it('the final stage gets node_modules only from a production-only stage and installs nothing from npm', () => {
    assert.ok(final !== undefined)
    assert.deepEqual(npmInstalls(final), [], 'the final stage must not run npm install/ci')
    const nodeModules = final.instructions.filter((i) => i.op === 'COPY' && /node_modules/.test(i.args))
    assert.equal(nodeModules.length, 1, 'exactly one COPY of node_modules into the final stage')
    const from = copyFrom(nodeModules[0] as Instruction)
    assert.ok(from !== null, 'node_modules must come from a build stage, not the context')
    const source = all.find((s) => s.name === from)
    assert.ok(source !== undefined, `no stage named ${from}`)
    const installs = npmInstalls(source)
    const pruned = runs(source).some((r) => /\bnpm prune\b[^&;]*--omit=dev/.test(r))
    assert.ok(installs.length > 0 || pruned, `stage ${from} installs no node_modules`)
    for (const cmd of installs) {
      assert.ok(/--omit=dev\b/.test(cmd) || pruned, `stage ${from} runs '${cmd}' with dev dependencies and never prunes them`)
      assert.match(cmd, /^npm ci\b/, `stage ${from} must install from the lockfile with npm ci, not '${cmd}'`)
    }
    // The stage that compiles (with dev dependencies) hands over compiled output only.
    for (const ins of final.instructions.filter((i) => i.op === 'COPY')) {
      const stageName = copyFrom(ins)
      if (stageName === null || stageName === from) continue
      assert.match(ins.args, /\/dist\//, `COPY ${ins.args}: only dist/ may come from the build stage`)
    }
  })

  it('the final stage has the runtime pieces: socat, iproute2, SOURCE_DATE_EPOCH, start.sh entrypoint', () => {
    assert.ok(final !== undefined)
    const finalRuns = runs(final).join('\n')
    assert.match(finalRuns, /apt-get install[^;&]*\bsocat\b/)
    assert.match(finalRuns, /apt-get install[^;&]*\biproute2\b/)
    assert.ok(final.instructions.some((i) => i.op === 'ARG' && /^SOURCE_DATE_EPOCH\b/.test(i.args)))
    assert.match(finalRuns, /touch -h -d "@\$\{SOURCE_DATE_EPOCH\}"/)
    const copies = final.instructions.filter((i) => i.op === 'COPY' && copyFrom(i) === null).map((i) => i.args)
    assert.deepEqual(copies, ['package.json relays.json ./', 'operator.json ./', 'enclave/start.sh ./enclave/start.sh'])
    const entry = final.instructions.filter((i) => i.op === 'ENTRYPOINT')
    assert.deepEqual(entry, [{ op: 'ENTRYPOINT', args: '["/app/enclave/start.sh"]' }])
  })

  it('bakes in no secrets', () => {
    for (const stage of all) {
      for (const ins of stage.instructions) {
        if (ins.op === 'ARG' || ins.op === 'ENV') {
          assert.doesNotMatch(ins.args, /(KEY|SECRET|TOKEN|PASSWORD|NSEC|PRIVATE)/i, `${ins.op} ${ins.args}`)
        }
        if (ins.op === 'COPY' || ins.op === 'ADD') {
          assert.doesNotMatch(ins.args, /(\.pem|\.key|\.env|nsec|secret)/i, `${ins.op} ${ins.args}`)
        }
      }
    }
  })

  it('the build context is an allowlist that covers every COPY from the context', () => {
    const ignore = read('Dockerfile.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
    assert.equal(ignore[0], '*', 'the context starts from nothing')
    const allowed = new Set(ignore.slice(1).map((l) => l.replace(/^!/, '')))
    for (const stage of all) {
      for (const ins of stage.instructions.filter((i) => i.op === 'COPY' && copyFrom(i) === null)) {
        const sources = ins.args.split(/\s+/).slice(0, -1)
        for (const src of sources) assert.ok(allowed.has(src.replace(/\/$/, '')), `COPY source ${src} is excluded by Dockerfile.dockerignore`)
      }
    }
  })
})

describe('enclave/run.sh', () => {
  // A stand-in nitro-cli on PATH records the command line run.sh builds; AWS's binary
  // only exists on a parent instance.
  function withNitroCli(): { dir: string; argsFile: string; env: NodeJS.ProcessEnv; eif: string } {
    const dir = mkdtempSync(join(tmpdir(), 'nec01-run-'))
    temps.push(dir)
    const argsFile = join(dir, 'args')
    const stub = join(dir, 'nitro-cli')
    writeFileSync(stub, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > '${argsFile}'\n`)
    chmodSync(stub, 0o755)
    const eif = join(dir, 'enclave.eif')
    writeFileSync(eif, 'not a real image')
    const env: NodeJS.ProcessEnv = { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}` }
    return { dir, argsFile, env, eif }
  }

  it('runs nitro-cli run-enclave with the defaults and no debug mode', () => {
    const { argsFile, env, eif } = withNitroCli()
    const r = spawnSync('bash', [join(ENCLAVE, 'run.sh'), '--eif', eif], { env, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(readFileSync(argsFile, 'utf8').trim().split('\n'), [
      'run-enclave',
      '--enclave-name',
      'nec01',
      '--eif-path',
      eif,
      '--cpu-count',
      '2',
      '--memory',
      '2048',
      '--enclave-cid',
      '16',
    ])
    assert.doesNotMatch(r.stderr, /DEBUG/)
  })

  it('--debug adds --debug-mode with a loud warning; the environment sets the resources', () => {
    const { argsFile, env, eif } = withNitroCli()
    const r = spawnSync('bash', [join(ENCLAVE, 'run.sh'), '--debug', '--eif', eif], {
      env: { ...env, NEC01_CPUS: '4', NEC01_MEMORY_MIB: '4096', NEC01_CID: '20' },
      encoding: 'utf8',
    })
    assert.equal(r.status, 0, r.stderr)
    const args = readFileSync(argsFile, 'utf8').trim().split('\n')
    assert.equal(args[args.length - 1], '--debug-mode')
    assert.deepEqual(args.slice(5, 11), ['--cpu-count', '4', '--memory', '4096', '--enclave-cid', '20'])
    assert.match(r.stderr, /WARNING: DEBUG MODE/)
    assert.match(r.stderr, /REJECTS/)
  })

  it('refuses bad settings with exit 2 before touching nitro-cli', () => {
    const { argsFile, env, eif } = withNitroCli()
    for (const [name, value] of [
      ['NEC01_CID', '3'],
      ['NEC01_CID', '4294967295'],
      ['NEC01_CPUS', 'two'],
      ['NEC01_CPUS', '0'],
      ['NEC01_CPUS', '07'],
      ['NEC01_MEMORY_MIB', 'lots'],
      ['NEC01_MEMORY_MIB', '0'],
      ['NEC01_MEMORY_MIB', '99999999999'],
    ] as const) {
      const r = spawnSync('bash', [join(ENCLAVE, 'run.sh'), '--eif', eif], { env: { ...env, [name]: value }, encoding: 'utf8' })
      assert.equal(r.status, 2, `${name}=${value}: ${r.stderr}`)
      assert.equal(r.stderr.trim().split('\n').length, 1)
    }
    const bad = spawnSync('bash', [join(ENCLAVE, 'run.sh'), '--bogus'], { env, encoding: 'utf8' })
    assert.equal(bad.status, 2)
    assert.throws(() => readFileSync(argsFile), /ENOENT/)
  })
})

describe('enclave/build.sh', () => {
  // A throwaway git checkout holding build.sh and the build context, with stand-ins for
  // docker and nitro-cli that record their arguments: the real ones need a Docker daemon
  // and AWS's nitro-cli. What is checked is what build.sh decides, not Docker itself.
  const EPOCH = 1_700_000_000
  const PCR = (n: number): string => n.toString(16).repeat(96)

  function checkout(): { root: string; env: NodeJS.ProcessEnv; log: string } {
    const root = mkdtempSync(join(tmpdir(), 'nec01-build-'))
    temps.push(root)
    const bin = join(root, '.bin')
    const log = join(root, '.calls')
    mkdirSync(join(root, 'enclave'))
    mkdirSync(join(root, 'src'))
    mkdirSync(join(root, 'nec01'))
    mkdirSync(bin)
    writeFileSync(join(root, 'enclave', 'build.sh'), read('build.sh'), { mode: 0o755 })
    writeFileSync(join(root, 'enclave', 'start.sh'), read('start.sh'), { mode: 0o755 })
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'relays.json', 'operator.json']) writeFileSync(join(root, f), '{}\n')
    writeFileSync(join(root, 'src', 'cli.ts'), 'export {}\n')
    writeFileSync(join(root, 'nec01', 'index.ts'), 'export {}\n')
    writeFileSync(join(root, '.gitignore'), '.bin/\n.calls\nbuild/\n*.log\n')
    const measurements = JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: PCR(10), PCR1: PCR(11), PCR2: PCR(12) } }, null, 2)
    writeFileSync(
      join(bin, 'docker'),
      `#!/bin/sh\nprintf 'docker %s\\n' "$*" >> '${log}'\nprintf 'env SOURCE_DATE_EPOCH=%s\\n' "$SOURCE_DATE_EPOCH" >> '${log}'\n[ "$1" = image ] && echo sha256:feed\nexit 0\n`,
      { mode: 0o755 },
    )
    writeFileSync(
      join(bin, 'nitro-cli'),
      `#!/bin/sh\nprintf 'nitro-cli %s\\n' "$*" >> '${log}'\n[ "$1" = build-enclave ] || { echo 'Nitro CLI 1.4.2'; exit 0; }\necho 'Start building the Enclave Image...'\ncat <<'JSON'\n${measurements}\nJSON\n`,
      { mode: 0o755 },
    )
    const env: NodeJS.ProcessEnv = {
      PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`,
      HOME: root,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@example.invalid',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@example.invalid',
      GIT_AUTHOR_DATE: `@${EPOCH} +0000`,
      GIT_COMMITTER_DATE: `@${EPOCH} +0000`,
    }
    for (const args of [['init', '-q'], ['add', '-A'], ['commit', '-q', '-m', 'x']]) {
      const g = spawnSync('git', args, { cwd: root, env, encoding: 'utf8' })
      assert.equal(g.status, 0, `git ${args.join(' ')}: ${g.stderr}`)
    }
    return { root, env, log }
  }

  const build = (root: string, env: NodeJS.ProcessEnv, args: string[] = []) =>
    spawnSync('bash', [join(root, 'enclave', 'build.sh'), ...args], { cwd: root, env, encoding: 'utf8' })
  const calls = (log: string): string => {
    try {
      return readFileSync(log, 'utf8')
    } catch {
      return ''
    }
  }

  it('builds with SOURCE_DATE_EPOCH = commit time and rewritten timestamps, writes pcrs.json and prints how to pin it', () => {
    const { root, env, log } = checkout()
    const r = build(root, env)
    assert.equal(r.status, 0, r.stderr)
    const ran = calls(log)
    assert.match(ran, /^docker buildx build .*--build-arg SOURCE_DATE_EPOCH=1700000000 .*rewrite-timestamp=true/m)
    assert.match(ran, /^env SOURCE_DATE_EPOCH=1700000000$/m)
    assert.match(ran, /^nitro-cli build-enclave --docker-uri \S+ --output-file build\/enclave\.eif$/m)
    const pcrs = JSON.parse(readFileSync(join(root, 'build', 'pcrs.json'), 'utf8')) as { Measurements: Record<string, string> }
    assert.equal(pcrs.Measurements.PCR2, PCR(12))
    assert.ok(r.stdout.includes(`PCR0 ${PCR(10)}`), r.stdout)
    assert.match(r.stdout, /nec01 verify --pcrs build\/pcrs\.json/)
  })

  it('passes --signing-key and --signing-cert to nitro-cli (PCR8), and wants both', () => {
    const { root, env, log } = checkout()
    writeFileSync(join(root, 'key.log'), 'k')
    writeFileSync(join(root, 'cert.log'), 'c')
    const one = build(root, env, ['--signing-key', 'key.log'])
    assert.equal(one.status, 2)
    const r = build(root, env, ['--signing-key', 'key.log', '--signing-cert', 'cert.log'])
    assert.equal(r.status, 0, r.stderr)
    assert.match(calls(log), /^nitro-cli build-enclave .* --private-key key\.log --signing-certificate cert\.log$/m)
  })

  it('takes the builder key and certificate as --sign-key/--sign-cert or NEC01_SIGN_KEY/NEC01_SIGN_CERT', () => {
    const { root, env, log } = checkout()
    writeFileSync(join(root, 'key.log'), 'k')
    writeFileSync(join(root, 'cert.log'), 'c')
    const one = build(root, env, ['--sign-cert', 'cert.log'])
    assert.equal(one.status, 2)
    assert.match(one.stderr, /--sign-cert needs --sign-key/)
    const flags = build(root, env, ['--sign-key', 'key.log', '--sign-cert', 'cert.log'])
    assert.equal(flags.status, 0, flags.stderr)
    assert.match(flags.stdout, /nec01 sign build --cert cert\.log/)
    const fromEnv = build(root, { ...env, NEC01_SIGN_KEY: 'key.log', NEC01_SIGN_CERT: 'cert.log' })
    assert.equal(fromEnv.status, 0, fromEnv.stderr)
    const runs = calls(log).split('\n').filter((l) => l.startsWith('nitro-cli build-enclave'))
    assert.equal(runs.length, 2)
    for (const run of runs) assert.match(run, / --private-key key\.log --signing-certificate cert\.log$/)
    // unsigned builds say nothing about signing
    assert.doesNotMatch(build(root, env).stdout, /nec01 sign build/)
  })

  it('refuses a work tree whose build context holds files the commit does not', () => {
    const { root, env, log } = checkout()
    // untracked, and ignored: both would be compiled into the image
    writeFileSync(join(root, 'src', 'extra.ts'), 'export const x = 1\n')
    writeFileSync(join(root, 'nec01', 'debug.log'), 'x\n')
    const r = build(root, env)
    assert.equal(r.status, 1, r.stdout)
    assert.match(r.stderr, /untracked files in the build context .*src\/extra\.ts/)
    assert.match(r.stderr, /nec01\/debug\.log/)
    assert.equal(r.stderr.trim().split('\n').length, 1)
    assert.doesNotMatch(calls(log), /buildx build|build-enclave/)
    const dirty = build(root, env, ['--allow-dirty'])
    assert.equal(dirty.status, 0, dirty.stderr)
    assert.match(dirty.stderr, /WARNING: untracked files in the build context/)
  })

  it("checks exactly the build context that Dockerfile.dockerignore lets in", () => {
    const listed = /^context=\(([^)]*)\)$/m.exec(read('build.sh'))?.[1]?.split(' ')
    const allowed = read('Dockerfile.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1))
    assert.deepEqual([...(listed ?? [])].sort(), allowed.sort())
  })
})

describe('parent-instance files', () => {
  const unit = (name: string): string => readFileSync(join(ENCLAVE, 'systemd', name), 'utf8')
  const execStart = (text: string): string => {
    const lines = text.split('\n').filter((l) => l.startsWith('ExecStart='))
    assert.equal(lines.length, 1)
    return (lines[0] ?? '').slice('ExecStart='.length)
  }

  it('the vsock bridges on the parent mirror the ones in start.sh', () => {
    assert.equal(execStart(unit('nec01-vsock-out.service')), '/usr/bin/socat VSOCK-LISTEN:1080,fork,reuseaddr TCP:127.0.0.1:1080')
    assert.equal(execStart(unit('nec01-vsock-health.service')), '/usr/bin/socat TCP-LISTEN:8765,bind=127.0.0.1,fork,reuseaddr VSOCK-CONNECT:16:8765')
  })

  it('the proxy listens on loopback port 1080 and the enclave unit restarts the enclave', () => {
    assert.match(execStart(unit('nec01-parent.service')), / parent --relays \S+ --host 127\.0\.0\.1 --port 1080 --signatures \/etc\/nec01\/signatures\.json$/)
    const enclave = unit('nec01-enclave.service')
    assert.match(execStart(enclave), /\/enclave\/watch\.sh$/)
    assert.match(enclave, /^Restart=always$/m)
    assert.match(enclave, /NEC01_CID=16\b/)
    for (const name of ['nec01-parent.service', 'nec01-vsock-out.service', 'nec01-vsock-health.service', 'nec01-enclave.service']) {
      const text = unit(name)
      for (const section of ['[Unit]', '[Service]', '[Install]']) assert.ok(text.includes(section), `${name} lacks ${section}`)
    }
  })

  it('allocator.yaml reserves at least what run.sh asks for by default', () => {
    const text = read('allocator.yaml')
    const memory = Number(/^memory_mib:\s*(\d+)\s*$/m.exec(text)?.[1])
    const cpus = Number(/^cpu_count:\s*(\d+)\s*$/m.exec(text)?.[1])
    assert.ok(memory >= 2048, `memory_mib ${memory}`)
    assert.ok(cpus >= 2 && cpus % 2 === 0, `cpu_count ${cpus} (full cores: an even number)`)
  })
})
