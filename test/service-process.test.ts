// `nec01 serve` as a process: the npm start banner, health, a clean SIGTERM, and the one-line
// refusals (no /dev/nsm, bad flags, a broken relays.json, a busy health port). The first test
// also watches the process's randomness from outside to prove its key never shows up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net'
import { execFile, spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { decode as nip19Decode, nsecEncode } from 'nostr-tools/nip19'
import { verifyTeeRoot } from '../nec01/event.js'
import type { NostrEvent } from '../nec01/types.js'
import { createRelayPool } from '../src/relays/pool.js'
import type { HealthReport } from '../src/service/health.js'
import { launchService } from '../src/service/launch.js'
import { quietLogger, spawnService, tempDir, type SpawnedService } from './service-harness.js'

const SAFETY_MS = 20_000
const NO_NSM = 'nec01: not inside a Nitro Enclave: /dev/nsm is missing; run with --dev to use the simulator'

/** The exit code, or a failure if the process is still running at the safety bound. */
function exitCode(svc: SpawnedService): Promise<number | null> {
  if (svc.child.exitCode !== null || svc.child.signalCode !== null) return Promise.resolve(svc.child.exitCode)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      svc.child.kill('SIGKILL')
      reject(new Error(`still running after ${SAFETY_MS} ms; stderr: ${svc.stderr()}`))
    }, SAFETY_MS)
    svc.child.once('exit', (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + SAFETY_MS
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * A refusal: exit 2 and exactly one line on stderr besides the JSON log lines (none unless
 * `logs`: a failure after the start has begun follows them), no stack trace, nothing on stdout.
 */
async function assertRefused(args: string[], expected: RegExp | string, logs = false): Promise<string> {
  const svc = spawnService(args)
  const code = await exitCode(svc)
  const err = svc.stderr()
  assert.equal(code, 2, `${args.join(' ')}: exit code (stderr: ${err})`)
  const all = err.trimEnd().split('\n')
  const lines = logs ? all.filter((l) => !l.startsWith('{"ts":')) : all
  assert.equal(lines.length, 1, `${args.join(' ')}: one line, got ${JSON.stringify(err)}`)
  assert.equal(all.at(-1), lines[0], 'the message comes last')
  assert.doesNotMatch(err, /^\s+at /m)
  if (typeof expected === 'string') assert.equal(lines[0], expected)
  else assert.match(lines[0] ?? '', expected)
  assert.equal(svc.stdout(), '')
  return lines[0] ?? ''
}

/** One run of this build's CLI (the other commands, as a user would type them). */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: SAFETY_MS }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
      resolve({ code, stdout, stderr })
    })
  })
}

// Records every 32-byte draw from node:crypto's randomBytes (the simulator's random()) in the
// child, so the test can find the service's key without the service ever handing it out.
const RECORDER = `
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { appendFileSync } from 'node:fs'
const crypto = createRequire(import.meta.url)('node:crypto')
const original = crypto.randomBytes
crypto.randomBytes = function (n, cb) {
  const out = original.call(this, n)
  if (n === 32) appendFileSync(process.env.NEC01_TEST_RANDOM_LOG, out.toString('hex') + '\\n')
  if (typeof cb === 'function') { cb(null, out); return undefined }
  return out
}
syncBuiltinESMExports()
`

test('npm start: banner, health, root.pem, verified announcements, SIGTERM exits 0, and the key is never shown', async () => {
  const dir = tempDir()
  const recorder = join(dir.path, 'recorder.mjs')
  const randomLog = join(dir.path, 'random.log')
  writeFileSync(recorder, RECORDER)
  const svc = spawnService(['--dev', '--embedded-relay', '--embedded-port', '0', '--health-port', '0', '--state-dir', join(dir.path, 'state')], {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(recorder).href}`.trim(),
    NEC01_TEST_RANDOM_LOG: randomLog,
    NEC01_LOG_LEVEL: 'debug',
  })
  let exited: number | null | undefined
  try {
    const npub = await svc.ready
    await waitFor(() => /^try:/m.test(svc.stdout()), 'the whole banner')
    const out = svc.stdout()
    const relayUrl = /^relays:\s+(ws:\/\/127\.0\.0\.1:\d+)\s+\(embedded relay\)$/m.exec(out)?.[1]
    const rootPath = /^root:\s+(\S+)\s/m.exec(out)?.[1]
    const healthUrl = /^health:\s+(http:\/\/127\.0\.0\.1:\d+\/health)$/m.exec(out)?.[1]
    assert.ok(relayUrl !== undefined && rootPath !== undefined && healthUrl !== undefined, out)
    assert.match(out, /DEV MODE: simulated NSM/)
    assert.equal(rootPath, join(dir.path, 'state', 'nsm-simulator', 'root.pem'))
    assert.ok(existsSync(rootPath))
    assert.ok(out.includes(`try:     npx nec01 dm ${npub} ping --relay ${relayUrl} --root ${rootPath} --any-pcrs --expect dev`), out)

    const pubkey = nip19Decode(npub).data as string
    await waitFor(async () => ((await (await fetch(healthUrl)).json()) as HealthReport).status === 'ok', 'health ok')
    const healthBody = await (await fetch(healthUrl)).text()
    const health = JSON.parse(healthBody) as HealthReport
    assert.equal(health.npub, npub)
    assert.equal(health.pubkey, pubkey)
    assert.equal(health.tee, 'simulated')
    assert.equal(health.t, 'dev')
    assert.deepEqual(health.relays.map((r) => [r.url, r.connected]), [[relayUrl, true]])
    const pem = await (await fetch(healthUrl.replace(/\/health$/, '/root.pem'))).text()
    assert.equal(pem, readFileSync(rootPath, 'utf8'))

    // What a client finds on the embedded relay verifies against that root.pem.
    const client = createRelayPool({ relays: [{ url: relayUrl, read: true, write: true }], logger: quietLogger, signAuth: async (t) => finalizeEvent(t, generateSecretKey()) })
    let events: NostrEvent[] = []
    try {
      await waitFor(async () => {
        events = await client.fetchEvents([{ authors: [pubkey] }], { timeoutMs: 2000 })
        return new Set(events.map((e) => e.kind)).size >= 4
      }, 'the four describing events')
    } finally {
      await client.close()
    }
    for (const e of events) {
      const r = await verifyTeeRoot(e, { root: pem, anyPcrs: true, expect: 'dev' })
      assert.equal(r.valid, true, `kind ${e.kind}: ${r.reason ?? ''}`)
    }

    // The banner's command works as printed (npx nec01 = this build's CLI).
    const tryArgs = (/^try:\s+npx nec01 (.+)$/m.exec(out)?.[1] ?? '').split(' ')
    const dm = await runCli([...tryArgs, '--timeout', '15'])
    assert.equal(dm.code, 0, `${tryArgs.join(' ')}: ${dm.stderr}`)
    assert.match(dm.stdout, /pong/)
    assert.match(dm.stdout, /VALID/)

    exited = await svc.stop()
    assert.equal(exited, 0, `SIGTERM exits 0 (stderr tail: ${svc.stderr().slice(-500)})`)
    assert.match(svc.stderr(), /"msg":"shutting down".*"signal":"SIGTERM"/)
    for (const line of svc.stderr().trimEnd().split('\n')) JSON.parse(line)

    // The key, found among the recorded draws by its public key, is in none of the outputs.
    const draws = readFileSync(randomLog, 'utf8').trim().split('\n')
    const skHex = draws.find((h) => getPublicKey(hexToBytes(h)) === pubkey)
    assert.ok(skHex !== undefined, `the key was one of the ${draws.length} recorded draws`)
    const sk = hexToBytes(skHex)
    const haystack = [out, svc.stderr(), healthBody, JSON.stringify(events)].join('\n')
    for (const needle of [bytesToHex(sk), bytesToHex(sk).toUpperCase(), nsecEncode(sk), Buffer.from(sk).toString('base64'), Buffer.from(sk).toString('base64url')]) {
      assert.ok(!haystack.includes(needle), `the secret key (${needle.slice(0, 6)}…) is not in stdout, stderr, health or events`)
    }
  } finally {
    if (exited === undefined) await svc.stop()
    dir.remove()
  }
})

test('without --dev and without /dev/nsm: the exact message, exit 2', { skip: existsSync('/dev/nsm') ? 'this machine has /dev/nsm' : false }, async () => {
  await assertRefused(['--relay', 'ws://127.0.0.1:9', '--health-port', '0'], NO_NSM)
})

test('bad flags: one line and exit 2', async () => {
  const dir = tempDir()
  try {
    const state = ['--state-dir', join(dir.path, 'state')]
    await Promise.all([
      assertRefused(['--dev', '--bogus'], 'nec01: unknown option --bogus (see nec01 serve --help)'),
      assertRefused(['--dev', '--t', 'staging', ...state], "nec01: --t: expected prod or dev, got 'staging'"),
      assertRefused(['--dev', '--health-port', '99999', ...state], "nec01: --health-port: expected a whole number from 0 to 65535, got '99999'"),
      assertRefused(['--dev', '--margin', 'soon', ...state], /^nec01: --margin: /),
      assertRefused(['--embedded-relay'], 'nec01: --embedded-relay is for development: use it with --dev'),
      assertRefused(['--dev', '--relays', 'x.json', '--relay', 'ws://127.0.0.1:9', ...state], 'nec01: give --relays FILE or --relay URL..., not both'),
      assertRefused(['--dev', '--relay', 'http://127.0.0.1:9', ...state], /^nec01: --relay: not a ws:\/\/ or wss:\/\/ URL: "http:\/\/127\.0\.0\.1:9"$/),
      assertRefused(['--dev', '--relay', 'ws://127.0.0.1:9', '--proxy', 'socks5://user:hunter2@127.0.0.1:1080', ...state], 'nec01: --proxy: expected an HTTP CONNECT proxy URL like http://127.0.0.1:1080 (scheme socks5:)'),
    ])
  } finally {
    dir.remove()
  }
})

test('a broken relays.json stops the service at start with one line naming the file and the problem', async () => {
  const dir = tempDir()
  try {
    const file = (name: string, text: string): string => {
      const path = join(dir.path, name)
      writeFileSync(path, text)
      return path
    }
    const cases: Array<[string, RegExp]> = [
      [file('truncated.json', '{"relays": [ { "url": "wss://a.example" '), /not valid JSON/],
      [file('typo.json', '{"relays": [ { "url": "wss://a.example", "wirte": true } ]}'), /relays\[0\]: unknown key "wirte"/],
      [file('scheme.json', '{"relays": [ { "url": "https://a.example" } ]}'), /relays\[0\]\.url: not a ws:\/\/ or wss:\/\/ URL: "https:\/\/a\.example"/],
      [file('empty.json', '{"relays": []}'), /relays: the list is empty/],
      [join(dir.path, 'missing.json'), /cannot read \(ENOENT\)/],
    ]
    await Promise.all(
      cases.map(async ([path, problem]) => {
        const line = await assertRefused(['--dev', '--relays', path, '--health-port', '0', '--state-dir', join(dir.path, 'state')], problem)
        assert.ok(line.startsWith(`nec01: ${path}: `), line)
      }),
    )
  } finally {
    dir.remove()
  }
})

test('a busy health port or embedded relay port: one line naming the flag, before anything starts, exit 2', async () => {
  const dir = tempDir()
  const busy: Server = createNetServer()
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()))
  const port = (busy.address() as AddressInfo).port
  const state = join(dir.path, 'state')
  try {
    // no log line at all: the ports are checked before the identity, the attestation or a relay
    await assertRefused(
      ['--dev', '--relay', 'ws://127.0.0.1:9', '--health-port', String(port), '--state-dir', state],
      `nec01: health port ${port} on 127.0.0.1 is in use (pick another with --health-port N; with npm start: npm start -- --health-port N)`,
    )
    // npm start's case: the embedded relay's port is free, the health port is not
    await assertRefused(
      ['--dev', '--embedded-relay', '--embedded-port', '0', '--health-port', String(port), '--state-dir', state],
      `nec01: health port ${port} on 127.0.0.1 is in use (pick another with --health-port N; with npm start: npm start -- --health-port N)`,
    )
    // npm start's relay port (7777) taken: the message says how to move it
    await assertRefused(
      ['--dev', '--embedded-relay', '--embedded-port', String(port), '--health-port', '0', '--state-dir', state],
      `nec01: embedded relay port ${port} on 127.0.0.1 is in use (pick another with --embedded-port N; with npm start: npm start -- --embedded-port N)`,
    )
    await assertRefused(['--dev', '--embedded-relay', '--embedded-port', '7781', '--health-port', '7781', '--state-dir', state], 'nec01: --embedded-port and --health-port are both 7781: give one of them another port')
    assert.equal(existsSync(state), false, 'the simulator was never opened')
    // the library's launcher checks the same before anything starts, and throws the listen error
    await assert.rejects(launchService({ mode: 'dev', healthPort: port, embeddedRelayPort: 0, stateDir: state, log: quietLogger }), { code: 'EADDRINUSE' })
    assert.equal(existsSync(state), false, 'launchService opened nothing either')
  } finally {
    await new Promise<void>((r) => busy.close(() => r()))
    dir.remove()
  }
})

test('in dev the banner comes first on a shared terminal: info lines wait for it', async () => {
  const dir = tempDir()
  const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')
  // one pipe for both streams, as one terminal shows them: the order is the order written
  const child = spawn('sh', ['-c', 'exec "$0" "$@" 2>&1', process.execPath, cli, 'serve', '--dev', '--embedded-relay', '--embedded-port', '0', '--health-port', '0', '--state-dir', join(dir.path, 'state')], {
    stdio: ['ignore', 'pipe', 'ignore'],
  })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  try {
    await waitFor(() => /^try:/m.test(out) && /"msg":"identity created/.test(out), 'the banner and the held lines')
    const lines = out.split('\n')
    assert.match(lines[0] ?? '', /^nec01 serve .* DEV MODE/, out)
    const tryLine = lines.findIndex((l) => l.startsWith('try:'))
    assert.ok(tryLine > 0 && lines.slice(0, tryLine).every((l) => !l.startsWith('{"ts":')), `the banner is one block: ${out}`)
    assert.ok(lines.findIndex((l) => l.includes('"msg":"identity created')) > tryLine, out)
  } finally {
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
    dir.remove()
  }
})

test('SIGINT also shuts down cleanly with exit 0; with --relay beside the embedded relay, try: names the embedded one', async () => {
  const dir = tempDir()
  const svc = spawnService(['--dev', '--embedded-relay', '--embedded-port', '0', '--relay', 'ws://127.0.0.1:9', '--health-port', '0', '--state-dir', join(dir.path, 'state')])
  try {
    await svc.ready
    await waitFor(() => /^try:/m.test(svc.stdout()), 'the whole banner')
    const embedded = /^relays:\s+ws:\/\/127\.0\.0\.1:9\s+(ws:\/\/127\.0\.0\.1:\d+)\s+\(embedded relay\)$/m.exec(svc.stdout())?.[1]
    assert.ok(embedded !== undefined, svc.stdout())
    assert.match(svc.stdout(), new RegExp(`^try: .* --relay ${embedded} `, 'm'))
    svc.child.kill('SIGINT')
    assert.equal(await exitCode(svc), 0)
    assert.match(svc.stderr(), /"msg":"shutting down".*"signal":"SIGINT"/)
  } finally {
    await svc.stop()
    dir.remove()
  }
})
