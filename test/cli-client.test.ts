// The client commands as a user runs them: `nec01 dm`, `nec01 attest` and `nec01 fetch`,
// each a child process of the compiled CLI, against the service in dev mode on a real relay.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { npubEncode, nsecEncode } from 'nostr-tools/nip19'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { canonicalJson } from '../nec01/canonical.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { startTestRelay, startTestService, tempDir, type TestService } from './service-harness.js'
import { until } from './talk.js'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function nec01(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    // the timeout is a safety net for a hung child, far above any --timeout given here
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, NEC01_SECRET: '', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
      resolve({ code, stdout, stderr })
    })
  })
}

describe('nec01 dm, attest and fetch against a running service', () => {
  let relay: EmbeddedRelay
  let svc: TestService
  let npub: string
  let trust: string[]

  before(async () => {
    relay = await startTestRelay()
    svc = await startTestService({ relays: [relay.url] })
    npub = svc.service.identity.npub
    trust = ['--relay', relay.url, '--root', svc.simulator.rootPemPath(), '--any-pcrs', '--expect', 'dev', '--timeout', '20']
    // fetch reads what the service announced at start
    await until(() => (svc.service.counters.published ?? 0) >= 4, 'the announcements')
  })
  after(async () => {
    await svc.close()
    await relay.close()
  })

  it('dm ping over NIP-17 (default): pong, VALID, exit 0', async () => {
    const r = await nec01(['dm', npub, 'ping', ...trust])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^reply \(nip17\):\npong\n/)
    assert.match(r.stdout, /\nVALID\n?$/)
    assert.match(r.stderr, /--any-pcrs accepts any enclave image/)
  })

  it('dm --nip04 ping, to the hex pubkey: pong, VALID, exit 0', async () => {
    const r = await nec01(['dm', svc.service.identity.pubkey, 'ping', '--nip04', ...trust])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^reply \(nip04\):\npong\n/)
    assert.match(r.stdout, /\nVALID\n?$/)
  })

  it('dm --json prints one JSON object with the reply and the verification', async () => {
    const r = await nec01(['dm', npub, 'info', '--json', ...trust])
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { transport: string; from: string; reply: string; event: { kind: number }; verification: { valid: boolean } }
    assert.equal(out.transport, 'nip17')
    assert.equal(out.from, svc.service.identity.pubkey)
    assert.match(out.reply, /tee: simulated/)
    assert.equal(out.event.kind, 14)
    assert.equal(out.verification.valid, true)
  })

  it('dm --sec / NEC01_SECRET speaks as that key', async () => {
    const sk = generateSecretKey()
    const r = await nec01(['dm', npub, 'ping', '--json', ...trust], { NEC01_SECRET: nsecEncode(sk) })
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { event: { tags: string[][] } }
    assert.deepEqual(out.event.tags.find((t) => t[0] === 'p'), ['p', getPublicKey(sk)])
    assert.ok(!r.stdout.includes(nsecEncode(sk)) && !r.stderr.includes(nsecEncode(sk)), 'the secret is never printed')
  })

  it('dm verified against the wrong expectation exits 1 with the reply shown as INVALID', async () => {
    const r = await nec01(['dm', npub, 'ping', ...trust.filter((a) => a !== 'dev' && a !== '--expect')])
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stdout, /pong/)
    assert.match(r.stdout, /INVALID \(t\)/)
  })

  it('dm without --root, --expect or PCRs: the checks that could not run say so, and the hints name every flag', async () => {
    const rootPem = svc.simulator.rootPemPath()
    const stateDir = dirname(dirname(rootPem))
    const r = await nec01(['dm', npub, 'ping', '--relay', relay.url, '--timeout', '20'], { NEC01_STATE_DIR: stateDir })
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stdout, /^✗ root +cabundle\[0\] \(CN=nec01 simulated NSM root — NOT AWS\) is not byte-identical to the pinned AWS Nitro root G1/m)
    assert.match(r.stdout, /^- expiration not checked: the attestation did not verify/m)
    assert.match(r.stdout, /^- pcrs +not checked: the attestation did not verify/m)
    assert.doesNotMatch(r.stdout, /^✗ expiration/m)
    const hints = r.stdout.split('\n').filter((l) => l.startsWith('hint: '))
    assert.deepEqual(hints, [
      `hint: this document comes from the NSM simulator (a dev service), not AWS: add --root ${rootPem}`,
      'hint: no expected PCRs given: pass --pcrs FILE or --pcr N=HEX (the build you trust), or --any-pcrs to accept any image',
      'hint: a dev service (t=dev): add --expect dev',
    ])
    // with the flags the hints name, the same reply verifies
    const fixed = await nec01(['dm', npub, 'ping', '--relay', relay.url, '--timeout', '20', '--root', rootPem, '--any-pcrs', '--expect', 'dev'])
    assert.equal(fixed.code, 0, fixed.stdout)
    assert.doesNotMatch(fixed.stdout, /hint:/)
  })

  it('attest --data: nonce, public_key and user_data checked, then the full verification; exit 0', async () => {
    const data = { order: 42, b: [1, 2] }
    const r = await nec01(['attest', npub, '--data', JSON.stringify(data), ...trust])
    assert.equal(r.code, 0, r.stderr)
    const digest = bytesToHex(sha256(utf8ToBytes(canonicalJson(data))))
    assert.match(r.stdout, new RegExp(`custom_digest: ${digest}`))
    assert.match(r.stdout, new RegExp(`user_data\\s+${digest}`))
    assert.match(r.stdout, new RegExp(`public_key\\s+${svc.service.identity.pubkey}`))
    assert.match(r.stdout, /✓ nonce/)
    assert.match(r.stdout, /\nVALID\n?$/)
  })

  it('attest --nonce --json: the result carries our nonce and verifies', async () => {
    const nonce = 'c0ffee'.repeat(8)
    const r = await nec01(['attest', npub, '--nonce', nonce, '--json', ...trust])
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { result: { nonce: string }; verification: { valid: boolean; attestation: { nonce: string } } }
    assert.equal(out.result.nonce, nonce)
    assert.equal(out.verification.valid, true)
    assert.equal(out.verification.attestation.nonce, nonce)
  })

  it('fetch: every published event verifies; exit 0', async () => {
    const r = await nec01(['fetch', npub, ...trust.filter((a, i, all) => a !== '--timeout' && all[i - 1] !== '--timeout'), '--timeout', '5'])
    assert.equal(r.code, 0, r.stderr)
    for (const what of ['kind 0 profile', 'kind 10050 DM relays', 'kind 10002 relay list', 'kind 13793 announcement']) assert.match(r.stdout, new RegExp(`✓ ${what}`))
    assert.match(r.stdout, /(\d+)\/\1 events verified/)
  })

  it('fetch --save DIR writes each event it fetched, and nec01 verify checks one as docs/verify.md shows', async () => {
    const dir = tempDir('nec01-save-')
    try {
      const save = join(dir.path, 'events')
      const r = await nec01(['fetch', npub, '--save', save, '--json', ...trust])
      assert.equal(r.code, 0, r.stderr)
      const fetched = JSON.parse(r.stdout) as Array<{ kind: number; id: string }>
      assert.deepEqual(readdirSync(save).sort(), fetched.map((e) => `${e.kind}-${e.id}.json`).sort())
      assert.match(r.stderr, new RegExp(`^saved ${fetched.length} events to ${save} `, 'm'))
      const profile = fetched.find((e) => e.kind === 0)!
      const verified = await nec01(['verify', join(save, `0-${profile.id}.json`), '--root', svc.simulator.rootPemPath(), '--any-pcrs', '--expect', 'dev'])
      assert.equal(verified.code, 0, verified.stdout)
      assert.match(verified.stdout, /\nVALID\n?$/)
      // a place it cannot write is a usage error before anything is fetched
      const bad = await nec01(['fetch', npub, '--save', join(dir.path, 'no', 'such'), ...trust])
      assert.equal(bad.code, 2)
      assert.equal(bad.stderr, `nec01: --save: ${join(dir.path, 'no', 'such')}: cannot write there (its parent directory does not exist)\n`)
    } finally {
      dir.remove()
    }
  })

  it('fetch --json prints the verification of each event', async () => {
    const r = await nec01(['fetch', npub, '--json', ...trust])
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as Array<{ kind: number; verification: { valid: boolean } }>
    assert.ok(out.length >= 4)
    assert.ok(out.every((e) => e.verification.valid))
  })

  it('no reply in time (a service that does not exist): exit 1 and one line', async () => {
    const nobody = npubEncode(getPublicKey(generateSecretKey()))
    const r = await nec01(['dm', nobody, 'ping', ...trust.slice(0, -2), '--timeout', '2'])
    assert.equal(r.code, 1)
    // no announcement either: it may be a service that wants proof of work (test/cli-pow.test.ts)
    assert.equal(
      r.stderr.trim().split('\n').filter((l) => !l.startsWith('warning:')).join('\n'),
      'nec01: no reply within 2 s (is the service running and on these relays? Its announcement could not be read, so the request carries no proof of work: the service may require some; try --pow N)',
    )
    const a = await nec01(['attest', nobody, ...trust.slice(0, -2), '--timeout', '2'])
    assert.equal(a.code, 1)
    assert.match(a.stderr, /nec01: no reply within 2 s/)
  })

  it('a request no relay takes (nothing listens there): exit 1 and one line that says so', async () => {
    const gone = await startTestRelay()
    await gone.close()
    for (const args of [['dm', npub, 'ping', '--nip04'], ['attest', npub]]) {
      const r = await nec01([...args, '--relay', gone.url, '--timeout', '2'])
      assert.equal(r.code, 1, r.stderr)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.match(r.stderr, new RegExp(`^nec01: no relay accepted the request \\(${gone.url}: not connected`))
    }
  })

  it('fetch of a key nobody published anything for: exit 1', async () => {
    const r = await nec01(['fetch', npubEncode(getPublicKey(generateSecretKey())), '--relay', relay.url, '--timeout', '2'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^nec01: nothing from [0-9a-f]{64} found/)
  })

  it('attest --data that is JSON without a canonical form (a lone surrogate): exit 2, one line naming --data', async () => {
    const r = await nec01(['attest', '0'.repeat(64), '--data', '{"note":"\\ud800"}', '--relay', relay.url])
    assert.equal(r.code, 2, r.stdout + r.stderr)
    assert.equal(r.stderr.trim(), 'nec01: --data: canonical JSON has no lone surrogates (strings must be valid Unicode)')
  })

  for (const [name, args] of [
    ['dm to a bad npub', ['dm', 'npub1notakey', 'ping']],
    ['attest to a bad npub', ['attest', 'npub1xyz']],
    ['fetch of a short hex key', ['fetch', 'abcd']],
    ['dm without text', ['dm', 'npub1x']],
    ['attest with a non-hex nonce', ['attest', '0'.repeat(64), '--nonce', 'xyz']],
    ['attest with --data that is not JSON', ['attest', '0'.repeat(64), '--data', '{oops']],
    ['dm with a bad --timeout', ['dm', '0'.repeat(64), 'ping', '--timeout', 'soon']],
    ['dm with --timeout 0', ['dm', '0'.repeat(64), 'ping', '--timeout', '0']],
    ['dm with --timeout over an hour', ['dm', '0'.repeat(64), 'ping', '--timeout', '3601']],
    ['dm with a bad secret key', ['dm', '0'.repeat(64), 'ping', '--sec', 'nsec1bad']],
  ] as const) {
    it(`usage: ${name} → exit 2 and one line`, async () => {
      const r = await nec01([...args, '--relay', relay.url])
      assert.equal(r.code, 2, r.stdout + r.stderr)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.match(r.stderr, /^nec01: /)
      assert.ok(!r.stderr.includes('nsec1bad'), 'a secret key is never echoed')
    })
  }
})
