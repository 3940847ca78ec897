// `nec01 verify` as a user runs it: real documents in every input form, trust options,
// exit codes, and one-line errors for anything broken.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, readFileSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { npubEncode } from 'nostr-tools/nip19'
import { hexToBytes } from '@noble/hashes/utils.js'
import { buildRootEvent, withTeeRoot } from '../nec01/event.js'
import { buildReleaseSignature } from '../nec01/release.js'
import { NsmSimulator } from '../src/nsm/simulator.js'
import { NEC01_DIR, NITRO_DIR, nitroFixtures } from './fixtures.js'
import { tempDir } from './service-harness.js'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')
const work = tempDir('nec01-cli-')
after(() => work.remove())

function run(args: string[], input?: string | Uint8Array): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'verify', ...args], { input, encoding: 'utf8', timeout: 30_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

function file(name: string, data: string | Uint8Array): string {
  const path = join(work.path, name)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, data)
  return path
}

const fixtures = nitroFixtures()
const good = fixtures.find((f) => f.name === 'turnkey-2025-09-16a-nondebug')!
const debug = fixtures.find((f) => f.name === 'eternis-2024-09-09-debug')!
const inside = (f: typeof good): string => String(Math.floor((f.validFrom + f.validUntil) / 2))

test('raw CBOR, base64 and hex documents are recognised and verified', () => {
  const raw = join(NITRO_DIR, `${good.name}.cose`)
  const b64 = file('doc.b64', Buffer.from(good.bytes).toString('base64') + '\n')
  const hex = file('doc.hex', Buffer.from(good.bytes).toString('hex'))
  for (const path of [raw, b64, hex]) {
    const r = run([path, '--any-pcrs', '--at', inside(good)])
    assert.equal(r.code, 0, `${path}: ${r.stdout}${r.stderr}`)
    assert.match(r.stdout, /^✓ signature/m)
    assert.match(r.stdout, /\nVALID\n?$/)
    assert.match(r.stderr, /warning: --any-pcrs/)
  }
  // standard input too
  const piped = run(['-', '--any-pcrs', '--at', inside(good)], good.bytes)
  assert.equal(piped.code, 0)
})

test('--pcrs reads nitro-cli output and plain maps; a mismatch is invalid with pcrs', () => {
  const measurements = file('pcrs.json', JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: good.pcr0, PCR1: good.pcr1, PCR2: good.pcr2 } }))
  const ok = run([join(NITRO_DIR, `${good.name}.cose`), '--pcrs', measurements, '--at', inside(good)])
  assert.equal(ok.code, 0, ok.stdout)
  const plain = file('plain.json', JSON.stringify({ 0: good.pcr0 }))
  assert.equal(run([join(NITRO_DIR, `${good.name}.cose`), '--pcrs', plain, '--at', inside(good)]).code, 0)
  const wrong = run([join(NITRO_DIR, `${good.name}.cose`), '--pcr', `1=${'ab'.repeat(48)}`, '--at', inside(good)])
  assert.equal(wrong.code, 1)
  assert.match(wrong.stdout, /INVALID \(pcrs\)/)
  // the real encli build output parses too
  const encli = run([join(NITRO_DIR, `${good.name}.cose`), '--pcrs', join(NEC01_DIR, 'encli-build-pcrs.json'), '--at', inside(good)])
  assert.equal(encli.code, 1)
  assert.match(encli.stdout, /INVALID \(pcrs\)/)
})

test('without trusted PCRs the verdict is invalid, and debug mode is always rejected', () => {
  const none = run([join(NITRO_DIR, `${good.name}.cose`), '--at', inside(good)])
  assert.equal(none.code, 1)
  assert.match(none.stdout, /no expected PCRs given/)
  assert.match(none.stdout, /\nhint: no expected PCRs given: pass --pcrs FILE or --pcr N=HEX \(the build you trust\), or --any-pcrs to accept any image\n?$/)
  assert.equal(run([join(NITRO_DIR, `${good.name}.cose`), '--any-pcrs', '--pcr', `1=${'ab'.repeat(48)}`, '--at', inside(good)]).stdout.includes('hint:'), false)
  const dbg = run([join(NITRO_DIR, `${debug.name}.cose`), '--any-pcrs', '--at', inside(debug)])
  assert.equal(dbg.code, 1)
  assert.match(dbg.stdout, /INVALID \(debug\)/)
  const late = run([join(NITRO_DIR, `${good.name}.cose`), '--any-pcrs', '--at', new Date((good.validUntil + 1) * 1000).toISOString()])
  assert.equal(late.code, 1)
  assert.match(late.stdout, /INVALID \(time\)/)
  // --at keeps milliseconds: half a second past notAfter is past it, notAfter itself is not
  const atEnd = run([join(NITRO_DIR, `${good.name}.cose`), '--any-pcrs', '--at', new Date(good.validUntil * 1000).toISOString()])
  assert.equal(atEnd.code, 0, atEnd.stdout)
  const halfLate = run([join(NITRO_DIR, `${good.name}.cose`), '--any-pcrs', '--at', new Date(good.validUntil * 1000 + 500).toISOString()])
  assert.equal(halfLate.code, 1)
  assert.match(halfLate.stdout, /INVALID \(time\)/)
  // no zone means UTC, whatever the machine's zone is
  const noZone = (seconds: number): string => new Date(seconds * 1000).toISOString().replace(/\.000Z$/, '')
  // the same with a space for the T, as people write it: still UTC
  const spaced = (seconds: number): string => noZone(seconds).replace('T', ' ')
  for (const [at, code] of [[noZone(good.validUntil), 0], [noZone(good.validUntil + 1), 1], [spaced(good.validUntil), 0], [spaced(good.validUntil + 1), 1]] as const) {
    const r = spawnSync(process.execPath, [CLI, 'verify', join(NITRO_DIR, `${good.name}.cose`), '--any-pcrs', '--at', at], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, TZ: 'Asia/Tokyo' } })
    assert.equal(r.status, code, `${at}: ${r.stdout}`)
    assert.match(r.stdout, new RegExp(`^[✓✗] time .*\\b${noZone(code === 0 ? good.validUntil : good.validUntil + 1)}Z`, 'm'))
  }
  // what Date.parse would read as local time, or roll over, is refused: one line, exit 2
  for (const at of ['2025-09-16 10pm', 'September 16 2025', '2025-02-30', '2025-09-16T22:00:00 GMT']) {
    const r = spawnSync(process.execPath, [CLI, 'verify', join(NITRO_DIR, `${good.name}.cose`), '--any-pcrs', '--at', at], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(r.status, 2, at)
    assert.equal(r.stderr, `nec01: --at: '${at}' is neither ISO 8601 (2025-04-01T14:00:00Z; no zone is UTC) nor unix seconds\n`)
  }
})

test('--json prints exactly the result object', () => {
  const r = run([join(NITRO_DIR, `${good.name}.cose`), '--any-pcrs', '--at', inside(good), '--json'])
  assert.equal(r.code, 0)
  const result = JSON.parse(r.stdout) as { valid: boolean; reason: null; checks: unknown[]; attestation: { module_id: string; pcrs: Record<string, string> } }
  assert.deepEqual(Object.keys(result).sort(), ['attestation', 'checks', 'reason', 'valid'])
  assert.equal(result.valid, true)
  assert.equal(result.attestation.module_id, good.module_id)
  assert.equal(result.attestation.pcrs['0'], good.pcr0)
})

test('kind:23793 events and tee_root carriers from the simulator, with --root PEM and --pubkey', async () => {
  const sim = await NsmSimulator.open({ stateDir: join(work.path, 'sim') })
  try {
    const sk = generateSecretKey()
    const pk = getPublicKey(sk)
    const doc = await sim.attest({ publicKey: hexToBytes(pk) })
    const expiration = Math.floor(Date.now() / 1000) + 3600
    const root = finalizeEvent(buildRootEvent({ attestation: doc, t: 'dev', expiration }), sk)
    const note = finalizeEvent(withTeeRoot({ kind: 1, created_at: Math.floor(Date.now() / 1000), content: 'hello', tags: [] }, root), sk)
    const rootPem = file('root.pem', sim.rootPem())
    const trust = ['--root', rootPem, '--any-pcrs', '--expect', 'dev']
    const r1 = run([file('root.json', JSON.stringify(root)), ...trust, '--pubkey', pk])
    assert.equal(r1.code, 0, r1.stdout + r1.stderr)
    const r2 = run([file('note.json', JSON.stringify(note)), ...trust])
    assert.equal(r2.code, 0, r2.stdout + r2.stderr)
    assert.match(r2.stdout, /carrier pubkey equals the root pubkey/)
    // expect prod (the default) rejects a dev root
    assert.match(run([file('note.json', JSON.stringify(note)), '--root', rootPem, '--any-pcrs']).stdout, /INVALID \(t\)/)
    // the AWS root (default) rejects the simulator
    assert.match(run([file('note.json', JSON.stringify(note)), '--any-pcrs', '--expect', 'dev']).stdout, /INVALID \(root\)/)
  } finally {
    await sim.close()
  }
})

test('the real noauth-enclaved attestation binds its event pubkey', () => {
  const r = run([join(NEC01_DIR, 'noauth-enclaved-README-ca61c6e-attestation.b64'), '--any-pcrs', '--at', '2025-04-01T14:00:00Z', '--pubkey', 'ac116b22152178636e06d75188c260da10ecd54765d3999bcb579c8f530a9441'])
  assert.equal(r.code, 0, r.stdout)
  assert.match(r.stdout, /public_key equals the expected ac116b22/)
  // the kind 63793 announcement around it is recognised (no longer an input verdict); today it is long expired
  const instance = run([join(NEC01_DIR, 'noauth-enclaved-README-ca61c6e-instance-event.json'), '--any-pcrs'])
  assert.equal(instance.code, 1)
  assert.match(instance.stdout, /^✓ kind +kind 63793 \(legacy, read as 13793\)$/m)
  assert.doesNotMatch(instance.stdout, /INVALID \(input\)/)
})

test('broken input: one line, exit 1 or 2, never a stack trace', () => {
  const cases: Array<{ args: string[]; input?: string | Uint8Array; code: number; msg: RegExp }> = [
    { args: [file('garbage.bin', Uint8Array.from([0xff, 0x00, 0x13, 0x37]))], code: 1, msg: /INVALID \(input\)/ },
    { args: [file('truncated.cose', good.bytes.subarray(0, 1000)), '--any-pcrs'], code: 1, msg: /INVALID \(cose\)/ },
    { args: [file('empty.txt', '')], code: 1, msg: /input is empty/ },
    { args: [file('notjson.json', '{"kind": 23793,')], code: 1, msg: /not valid JSON/ },
    { args: [join(work.path, 'missing.b64')], code: 2, msg: /cannot read .*ENOENT/ },
    { args: [work.path], code: 2, msg: /is a directory/ },
    { args: [file('huge.b64', Buffer.alloc(2 * 1024 * 1024, 0x41))], code: 2, msg: /larger than/ },
    { args: ['-', '--at', 'yesterday'], input: 'x', code: 2, msg: /--at: 'yesterday'/ },
    { args: ['-', '--pcr', '0=zz'], input: 'x', code: 2, msg: /--pcr 0: expected 96 hex/ },
    { args: ['-', '--expect', 'staging'], input: 'x', code: 2, msg: /--expect/ },
    { args: ['-', '--root', file('bad.pem', 'not a certificate')], input: 'x', code: 2, msg: /--root/ },
    // devices and directories as side files: bounded, never read to an end that never comes
    { args: ['-', '--pcrs', '/dev/zero'], input: 'x', code: 2, msg: /--pcrs: \/dev\/zero: larger than/ },
    { args: ['-', '--root', '/dev/urandom'], input: 'x', code: 2, msg: /--root: \/dev\/urandom: larger than/ },
    { args: ['-', '--pcrs', work.path], input: 'x', code: 2, msg: /--pcrs: .*: is a directory/ },
    // 50 MB on standard input: refused once past the limit, not buffered
    { args: ['-'], input: Buffer.alloc(50 * 1024 * 1024, 0x41), code: 2, msg: /input is larger than/ },
    { args: ['-', '--bogus'], input: 'x', code: 2, msg: /^nec01: unknown option --bogus \(see nec01 verify --help\)$/ },
    { args: ['-', '--any-pcr'], input: 'x', code: 2, msg: /^nec01: unknown option --any-pcr: did you mean --any-pcrs\? \(see nec01 verify --help\)$/ },
    { args: ['-', '--roots', 'x.pem'], input: 'x', code: 2, msg: /^nec01: unknown option --roots: did you mean --root\?/ },
    { args: ['-', '--pcrs'], input: 'x', code: 2, msg: /^nec01: --pcrs needs a value \(see nec01 verify --help\)$/ },
    { args: ['-', '--pcrs', '--any-pcrs'], input: 'x', code: 2, msg: /^nec01: --pcrs needs a value, got --any-pcrs/ },
    { args: ['-', '--json=yes'], input: 'x', code: 2, msg: /^nec01: --json takes no value/ },
    // a usage error after --any-pcrs is that one line: the warning is for a run that happens
    { args: [join(work.path, 'missing.b64'), '--any-pcrs'], code: 2, msg: /^nec01: .*cannot read .*ENOENT/ },
    { args: [join(NITRO_DIR, `${good.name}.cose`), '--any-pcrs', '--builder', npubEncode(getPublicKey(generateSecretKey()))], code: 2, msg: /^nec01: the NEC trust flags/ },
    { args: ['a', 'b'], code: 2, msg: /expected one INPUT/ },
  ]
  for (const c of cases) {
    const r = run(c.args, c.input ?? '')
    assert.equal(r.code, c.code, `${c.args.join(' ')}: ${r.stdout} ${r.stderr}`)
    assert.match((r.stdout + r.stderr).trim(), c.msg)
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
    if (c.code === 2) {
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
      assert.match(r.stderr.trim(), c.msg)
    }
  }
})

test('npx nec01 runs the built CLI from the project, as the README and npm start tell users', () => {
  // npm links the bin to dist/src/cli.js; it must be executable once built
  const r = spawnSync('npx', ['--no-install', 'nec01', '--help'], { cwd: join(dirname(CLI), '..', '..'), encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /^nec01 — AWS Nitro Enclave attestations for Nostr/)
})

test('nec01 with no command: usage on stderr, nothing on stdout, exit 2; --help: usage on stdout, exit 0', () => {
  const nec01 = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 })
  const bare = nec01([])
  assert.equal(bare.status, 2)
  assert.equal(bare.stdout, '')
  assert.match(bare.stderr, /^nec01 — .*\n\nusage: nec01 <command>/)
  const help = nec01(['--help'])
  assert.equal(help.status, 0)
  assert.equal(help.stderr, '')
  assert.match(help.stdout, /usage: nec01 <command>/)
})

test('nec01 --version prints the package version, also when installed under a path with a space', () => {
  const root = join(dirname(CLI), '..', '..')
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
  const r = spawnSync(process.execPath, [CLI, '--version'], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stdout, `nec01 ${pkg.version}\n`)
  // package files are found by path, not by a URL's %20-escaped pathname
  const spaced = join(work.path, 'with space')
  cpSync(join(root, 'dist', 'src'), join(spaced, 'dist', 'src'), { recursive: true })
  cpSync(join(root, 'dist', 'nec01'), join(spaced, 'dist', 'nec01'), { recursive: true })
  cpSync(join(root, 'package.json'), join(spaced, 'package.json'))
  symlinkSync(join(root, 'node_modules'), join(spaced, 'node_modules'))
  const moved = spawnSync(process.execPath, [join(spaced, 'dist', 'src', 'cli.js'), '--version'], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(moved.stdout, `nec01 ${pkg.version}\n`, moved.stderr)
})

test('--help documents every option', () => {
  const r = run(['--help'])
  assert.equal(r.code, 0)
  for (const opt of ['--pcr', '--pcrs', '--any-pcrs', '--expect', '--at', '--root', '--pubkey', '--nonce', '--json', '--release-signers', '--release-threshold', '--releases', '--builder', '--launcher', '--repo']) {
    assert.ok(r.stdout.includes(opt), opt)
  }
  assert.ok(readFileSync(join(NITRO_DIR, 'AWS_NitroEnclaves_Root-G1.pem'), 'utf8').includes('BEGIN CERTIFICATE'))
})

const NOAUTH = join(NEC01_DIR, 'noauth-enclaved-README-ca61c6e-instance-event.json')
const NOAUTH_AT = '2025-04-01T14:00:00Z'

test('NEC family: the noauth-enclaved announcement is detected; build and instance verify; INVALID (expiration)', () => {
  const r = run([NOAUTH, '--any-pcrs', '--expect', 'dev', '--at', NOAUTH_AT])
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stdout, /^✓ kind +kind 63793 \(legacy, read as 13793\)$/m)
  assert.match(r.stdout, /^✓ build +built by npub1xdtd/m)
  assert.match(r.stdout, /^✓ instance +launched by npub1xdtd/m)
  assert.match(r.stdout, /^✗ expiration +expiration 2025-04-01T17:16:10Z is after the leaf certificate's notAfter/m)
  assert.match(r.stdout, /^built by +npub1xdtd/m)
  assert.match(r.stdout, /\nINVALID \(expiration\)\n?$/)
  const json = JSON.parse(run([NOAUTH, '--any-pcrs', '--expect', 'dev', '--at', NOAUTH_AT, '--json']).stdout) as { reason: string; signers: { launcher: string } }
  assert.equal(json.reason, 'expiration')
  assert.match(json.signers.launcher, /^npub1xdtd/)
})

test('NEC family: release signers from a --releases file stand in for --pcrs; threshold, unlisted signers and r are enforced', () => {
  const ann = JSON.parse(readFileSync(NOAUTH, 'utf8')) as { tags: string[][] }
  const x = (i: number): string => ann.tags.find((t) => t[0] === 'x' && t[2] === `PCR${i}`)![1]!
  const maintainer = generateSecretKey()
  const npub = npubEncode(getPublicKey(maintainer))
  const repo = 'https://github.com/nostrband/noauth-enclaved'
  const release = finalizeEvent(buildReleaseSignature({ pcrs: { 0: x(0), 1: x(1), 2: x(2) }, r: repo, t: 'dev' }), maintainer)
  const releases = file('releases.jsonl', JSON.stringify(release) + '\n')
  const base = [NOAUTH, '--expect', 'dev', '--at', NOAUTH_AT, '--releases', releases]
  const ok = run([...base, '--release-signers', npub, '--repo', repo])
  assert.match(ok.stdout, /^✓ pcrs +PCR0\/1\/2 released by 1 of 1 trusted signer \(npub1/m)
  assert.match(ok.stdout, /\nINVALID \(expiration\)\n?$/, 'the announcement\'s own expiration still fails')
  const other = run([...base, '--release-signers', npubEncode(getPublicKey(generateSecretKey()))])
  assert.match(other.stdout, /^✗ pcrs +PCR0\/1\/2 released by 0 of 1/m)
  const wrongRepo = run([...base, '--release-signers', npub, '--r', 'https://github.com/evil/fork'])
  assert.match(wrongRepo.stdout, /^✗ announcement r is \["https:\/\/github.com\/nostrband\/noauth-enclaved"\], expected/m)
  assert.equal(run([...base, '--release-signers', npub, '--release-threshold', '2']).code, 2)
  assert.match(run([...base, '--release-signers', 'npub1bogus']).stderr, /--release-signers: 'npub1bogus' is neither an npub nor 64 hex/)
  // a release on its own, against the build's PCRs
  const pcrs = join(NEC01_DIR, 'encli-build-pcrs.json')
  const measured = (JSON.parse(readFileSync(pcrs, 'utf8')) as { Measurements: Record<string, string> }).Measurements
  const own = file('release.json', JSON.stringify(finalizeEvent(buildReleaseSignature({ pcrs: { 0: measured.PCR0!, 1: measured.PCR1!, 2: measured.PCR2! }, r: repo, t: 'dev' }), maintainer)))
  const alone = run([own, '--pcrs', pcrs, '--expect', 'dev', '--repo', repo])
  assert.equal(alone.code, 0, alone.stdout)
  assert.match(alone.stdout, /^released by +npub1/m)
})

test('NEC family: the encli builder signature against its pcrs.json; a bare document refuses the NEC flags', () => {
  const build = join(NEC01_DIR, 'encli-build-build.json')
  const ok = run([build, '--pcrs', join(NEC01_DIR, 'encli-build-pcrs.json'), '--expect', 'dev', '--at', '2025-07-01T00:00:00Z'])
  assert.equal(ok.code, 0, ok.stdout)
  assert.match(ok.stdout, /PCR8 934273acbc39… equals the expected PCR8/)
  const wrong = run([build, '--pcr', `8=${'ab'.repeat(48)}`, '--expect', 'dev', '--at', '2025-07-01T00:00:00Z'])
  assert.equal(wrong.code, 1)
  assert.match(wrong.stdout, /INVALID \(build\)/)
  const doc = run([join(NITRO_DIR, `${good.name}.cose`), '--any-pcrs', '--at', inside(good), '--builder', readFileSync(join(NEC01_DIR, 'encli-build-npub.txt'), 'utf8').trim()])
  assert.equal(doc.code, 2)
  assert.match(doc.stderr, /apply to events, not to a bare document/)
})

test('every command: a mistyped flag is one line that names the closest known flag', () => {
  const cases: Array<[string[], string]> = [
    [['serve', '--dev', '--embeded-relay'], 'unknown option --embeded-relay: did you mean --embedded-relay? (see nec01 serve --help)'],
    [['dm', 'npub1x', 'hi', '--any-pcr'], 'unknown option --any-pcr: did you mean --any-pcrs? (see nec01 dm --help)'],
    [['attest', 'npub1x', '--nonse', 'aa'], 'unknown option --nonse: did you mean --nonce? (see nec01 attest --help)'],
    [['fetch', 'npub1x', '--limt', '3'], 'unknown option --limt: did you mean --limit? (see nec01 fetch --help)'],
    [['parent', '--alow', 'relay.example:443'], 'unknown option --alow: did you mean --allow? (see nec01 parent --help)'],
    [['verify', '--xyzzy'], 'unknown option --xyzzy (see nec01 verify --help)'],
  ]
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 })
    assert.equal(r.status, 2, args.join(' '))
    assert.equal(r.stdout, '')
    assert.equal(r.stderr, `nec01: ${message}\n`)
  }
})

test('nec01 help COMMAND shows that command\'s help; nec01 version is --version; a mistyped command is named', () => {
  const nec01 = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 })
  for (const name of ['verify', 'dm', 'attest', 'fetch', 'serve', 'parent']) {
    const help = nec01(['help', name])
    assert.equal(help.status, 0, `${name}: ${help.stderr}`)
    assert.equal(help.stdout, nec01([name, '--help']).stdout, name)
    assert.match(help.stdout, new RegExp(`^usage: nec01 ${name}`))
  }
  const version = nec01(['version'])
  assert.equal(version.status, 0)
  assert.equal(version.stdout, nec01(['--version']).stdout)
  assert.match(version.stdout, /^nec01 \d+\.\d+\.\d+/)
  const typo = nec01(['help', 'veryfy'])
  assert.equal(typo.status, 2)
  assert.equal(typo.stderr, "nec01: unknown command 'veryfy': did you mean verify? (try: nec01 --help)\n")
  assert.equal(nec01(['serv']).stderr, "nec01: unknown command 'serv': did you mean serve? (try: nec01 --help)\n")
})
