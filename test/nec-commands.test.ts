// The commands that make NEC signatures, as a maintainer runs them: `nec01 builder-cert`
// and `nec01 sign build|launch|release`, child processes of the compiled CLI, with a local
// key and with a NIP-46 remote signer on a loopback relay. What they print is checked with
// nec01's own verifier and, for the certificate, with @peculiar/x509 and node:crypto.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { nsecEncode } from 'nostr-tools/nip19'
import { bytesToHex } from '@noble/hashes/utils.js'
import { verifyNecSignature } from '../nec01/necs.js'
import { pcr4OfInstance, pcr8OfCertificate } from '../nec01/pcr.js'
import type { NostrEvent } from '../nec01/types.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { startTestBunker, type TestBunker } from './bunker.js'
import { INSTANCE_ID, person, REPO, type Person } from './nec-people.js'
import { startTestRelay, tempDir } from './service-harness.js'
import { Peer } from './talk.js'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function nec01(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, NEC01_SECRET: '', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr })
    })
  })
}

const secretOf = (p: Person): NodeJS.ProcessEnv => ({ NEC01_SECRET: nsecEncode(p.sk) })

/** stdout is exactly one signed event on one line */
function eventOf(r: Run): NostrEvent {
  assert.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  assert.equal(lines.length, 1, r.stdout)
  return JSON.parse(lines[0] ?? '') as NostrEvent
}

function assertNoSecret(r: Run, p: Person): void {
  for (const secret of [bytesToHex(p.sk), nsecEncode(p.sk)]) assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'the secret key is never printed')
}

const dir = tempDir('nec01-sign-')
after(() => dir.remove())
const PCRS = { 0: 'a0'.repeat(48), 1: 'a1'.repeat(48), 2: 'a2'.repeat(48) }
const pcrsFile = join(dir.path, 'pcrs.json')
writeFileSync(pcrsFile, JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: PCRS[0], PCR1: PCRS[1], PCR2: PCRS[2] } }))

describe('nec01 builder-cert', () => {
  const b = person()
  const cert = join(dir.path, 'b-cert.pem')
  const key = join(dir.path, 'b-key.pem')
  let out: { cert: string; key: string; npub: string; pcr8: string; notAfter: string }

  before(async () => {
    const r = await nec01(['builder-cert', b.npub, '--cert', cert, '--key', key, '--json'])
    assert.equal(r.code, 0, r.stderr)
    out = JSON.parse(r.stdout) as typeof out
  })

  it('writes a self-signed P-384 certificate with CN = the npub and O = Nostr', async () => {
    const c = new x509.X509Certificate(readFileSync(cert, 'utf8'))
    assert.deepEqual(c.subjectName.getField('CN'), [b.npub])
    assert.deepEqual(c.subjectName.getField('O'), ['Nostr'])
    assert.equal(c.subject, c.issuer)
    assert.equal(await c.isSelfSigned(), true)
    assert.equal((c.publicKey.algorithm as { namedCurve?: string }).namedCurve, 'P-384')
    assert.equal(c.signatureAlgorithm.hash.name, 'SHA-384')
    assert.equal(out.npub, b.npub)
    assert.equal(out.notAfter, c.notAfter.toISOString())
  })

  it('and its private key, mode 0600, the one the certificate holds', () => {
    const pem = readFileSync(key, 'utf8')
    assert.match(pem, /^-----BEGIN EC PRIVATE KEY-----\n/)
    assert.equal(statSync(key).mode & 0o777, 0o600)
    assert.equal(new X509Certificate(readFileSync(cert)).checkPrivateKey(createPrivateKey(pem)), true)
  })

  it("prints PCR8 = nec01's pcr8OfCertificate of the certificate DER", () => {
    const der = new Uint8Array(new X509Certificate(readFileSync(cert)).raw)
    assert.equal(out.pcr8, bytesToHex(pcr8OfCertificate(der)))
  })

  it('never overwrites: exit 2 and one line', async () => {
    const r = await nec01(['builder-cert', b.npub, '--cert', cert, '--key', join(dir.path, 'other-key.pem')])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /^nec01: .*b-cert\.pem exists/)
    assert.equal(r.stderr.trim().split('\n').length, 1)
  })
})

describe('nec01 sign with a local key', () => {
  const b = person()
  const cert = join(dir.path, 'sign-cert.pem')
  before(async () => {
    const r = await nec01(['builder-cert', b.npub, '--cert', cert, '--key', join(dir.path, 'sign-key.pem')])
    assert.equal(r.code, 0, r.stderr)
  })

  it('build: kind 23794 with the certificate, r and t; verifies against its PCR8', async () => {
    const r = await nec01(['sign', 'build', '--cert', cert, '--t', 'dev', '--repo', REPO, '--v', '1.2.3'], secretOf(b))
    const event = eventOf(r)
    assertNoSecret(r, b)
    assert.equal(event.kind, 23794)
    assert.equal(event.pubkey, b.pubkey)
    assert.ok(event.tags.some((t) => t[0] === '-' && t.length === 1), 'not for publishing')
    const der = new Uint8Array(new X509Certificate(readFileSync(cert)).raw)
    const v = await verifyNecSignature(event, { expectedPcrs: { 8: pcr8OfCertificate(der) }, expect: 'dev', repo: REPO })
    assert.equal(v.valid, true, JSON.stringify(v.checks))
    assert.deepEqual(v.signers?.builder, b.npub)
  })

  it('build with a certificate for another npub: exit 1, nothing on stdout', async () => {
    const r = await nec01(['sign', 'build', '--cert', cert, '--t', 'dev'], secretOf(person()))
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, /^nec01: the signed event does not verify: .*not the signer/)
  })

  it('launch: kind 23795 with PCR4 of the instance id', async () => {
    const l = person()
    const event = eventOf(await nec01(['sign', 'launch', '--instance', INSTANCE_ID], secretOf(l)))
    assert.equal(event.kind, 23795)
    const v = await verifyNecSignature(event, { expectedPcrs: { 4: pcr4OfInstance(INSTANCE_ID) } })
    assert.equal(v.valid, true, JSON.stringify(v.checks))
    assert.equal(v.signers?.launcher, l.npub)
  })

  it('release: kind 63794 with PCR0/1/2 of pcrs.json, r and t', async () => {
    const m = person()
    const r = await nec01(['sign', 'release', pcrsFile, '--repo', REPO, '--t', 'prod'], secretOf(m))
    const event = eventOf(r)
    assertNoSecret(r, m)
    assert.equal(event.kind, 63794)
    assert.deepEqual(event.tags.filter((t) => t[0] === 'x'), [['x', PCRS[0], 'PCR0'], ['x', PCRS[1], 'PCR1'], ['x', PCRS[2], 'PCR2']])
    const v = await verifyNecSignature(event, { expectedPcrs: PCRS, expect: 'prod', repo: REPO })
    assert.equal(v.valid, true, JSON.stringify(v.checks))
    assert.deepEqual(v.signers?.releasers, [m.npub])
  })

  const usage: Array<[string, string[], NodeJS.ProcessEnv, RegExp]> = [
    ['no key at all', ['sign', 'launch', '--instance', INSTANCE_ID], {}, /no signing key/],
    ['a release without --t', ['sign', 'release', pcrsFile, '--repo', REPO], { NEC01_SECRET: 'ab'.repeat(32) }, /--t: required/],
    ['a release without --repo', ['sign', 'release', pcrsFile, '--t', 'dev'], { NEC01_SECRET: 'ab'.repeat(32) }, /--repo: required/],
    ['a bad instance id', ['sign', 'launch', '--instance', 'i-XYZ'], { NEC01_SECRET: 'ab'.repeat(32) }, /EC2 instance id/],
    ['--publish on a build', ['sign', 'build', '--cert', 'x.pem', '--publish'], { NEC01_SECRET: 'ab'.repeat(32) }, /^nec01: unknown option --publish \(see nec01 sign build --help\)$/m],
    ['an unknown subcommand', ['sign', 'artifact'], {}, /expected build, launch or release/],
    ['a bad key', ['sign', 'launch', '--instance', INSTANCE_ID, '--sec', 'nsec1nope'], {}, /neither an nsec nor 64 hex/],
    ['serve --signatures outside dev', ['serve', '--signatures', pcrsFile], {}, /--signatures only applies in dev/],
    ['serve --sim-builder-cert outside dev', ['serve', '--sim-builder-cert', pcrsFile], {}, /--sim-builder-cert only applies in dev/],
    ['serve --parent-signatures without --proxy', ['serve', '--dev', '--parent-signatures'], { NEC01_PROXY: '' }, /--parent-signatures needs --proxy/],
    ['serve --dev --signatures of a file that is no list', ['serve', '--dev', '--signatures', join(dir.path, 'missing.json')], {}, /--signatures: .*missing\.json: cannot read \(ENOENT\)/],
    ['serve --dev --sim-builder-cert of no certificate', ['serve', '--dev', '--sim-builder-cert', pcrsFile], {}, /is not an X\.509 certificate/],
    ['serve --dev --sim-instance-id of no instance', ['serve', '--dev', '--sim-instance-id', 'host-1'], {}, /--sim-instance-id: expected an EC2 instance id/],
  ]
  for (const [what, args, env, message] of usage) {
    it(`usage: ${what} → exit 2 and one line`, async () => {
      const r = await nec01(args, env)
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, message)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.equal(r.stdout, '')
    })
  }
})

describe('nec01 sign through a NIP-46 remote signer, and --publish', () => {
  let relay: EmbeddedRelay
  let bunker: TestBunker
  const maintainer = person()

  before(async () => {
    relay = await startTestRelay()
    bunker = await startTestBunker(relay.url, maintainer.sk)
  })
  after(async () => {
    await bunker.close()
    await relay.close()
  })

  it('--bunker: the remote signer signs as the maintainer; nobody pastes a key', async () => {
    const r = await nec01(['sign', 'release', pcrsFile, '--repo', REPO, '--t', 'dev', '--bunker', bunker.url, '--bunker-timeout', '20'])
    const event = eventOf(r)
    assert.equal(event.pubkey, maintainer.pubkey)
    const v = await verifyNecSignature(event, { expectedPcrs: PCRS, expect: 'dev', repo: REPO })
    assert.equal(v.valid, true, JSON.stringify(v.checks))
    assert.deepEqual(bunker.methods.slice(0, 3), ['connect', 'get_public_key', 'sign_event'])
  })

  it('a remote signer that declines: exit 1 and one line', async () => {
    bunker.refuseSigning.on = true
    try {
      const r = await nec01(['sign', 'launch', '--instance', INSTANCE_ID, '--bunker', bunker.url, '--bunker-timeout', '20'])
      assert.equal(r.code, 1, r.stderr)
      assert.equal(r.stdout, '')
      assert.match(r.stderr, /^nec01: the remote signer refused sign_event: the user declined\n$/)
    } finally {
      bunker.refuseSigning.on = false
    }
  })

  it('--publish: the release is on the relay, and the event still goes to stdout', async () => {
    const m = person()
    const r = await nec01(['sign', 'release', pcrsFile, '--repo', REPO, '--t', 'dev', '--publish', '--relay', relay.url], secretOf(m))
    const event = eventOf(r)
    assert.match(r.stderr, new RegExp(`✓ ${relay.url}`))
    const peer = new Peer([relay.url])
    try {
      const stored = await peer.stored({ kinds: [63794], authors: [m.pubkey] }, relay.url)
      assert.deepEqual(stored.map((e) => e.id), [event.id])
    } finally {
      await peer.close()
    }
  })
})
