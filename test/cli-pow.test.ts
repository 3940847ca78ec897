// `nec01 dm` and `nec01 attest` against `nec01 serve --pow N`, all real processes on loopback:
// the CLI reads the bits from the service's announcement and mines its request (the gift wrap
// for NIP-17, the event itself for kind 4 and JSON-RPC), so a first-time user gets a reply;
// a request without them is dropped, and when no announcement can be read the no-reply
// message says the service may want proof of work and names --pow.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import type { HealthReport } from '../src/service/health.js'
import { spawnService, startTestRelay, tempDir, type SpawnedService } from './service-harness.js'
import { until } from './talk.js'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')
/** small, so the tests stay fast: 2^8 hashes */
const POW = 8

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function nec01(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, NEC01_SECRET: '' }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr })
    })
  })
}

/** What the banner says: the npub, the root, the health URL and (with --embedded-relay) the relay. */
async function banner(svc: SpawnedService): Promise<{ npub: string; root: string; health: string; relay: string | undefined }> {
  const npub = await svc.ready
  await until(() => /^try:/m.test(svc.stdout()), 'the whole banner')
  const out = svc.stdout()
  const root = /^root:\s+(\S+)\s/m.exec(out)?.[1]
  const health = /^health:\s+(\S+)$/m.exec(out)?.[1]
  assert.ok(root !== undefined && health !== undefined, out)
  return { npub, root, health, relay: /^relays:\s+(ws:\/\/\S+)\s+\(embedded relay\)$/m.exec(out)?.[1] }
}

async function counters(health: string): Promise<Record<string, number>> {
  return ((await (await fetch(health)).json()) as HealthReport).counters as Record<string, number>
}

const dir = tempDir('nec01-cli-pow-')
const services: SpawnedService[] = []
after(async () => {
  for (const svc of services) await svc.stop()
  dir.remove()
})

describe(`serve --dev --embedded-relay --pow ${POW}: dm and attest without --pow get their reply`, () => {
  let trust: string[] = []
  let npub = ''
  let health = ''

  before(async () => {
    const svc = spawnService(['--dev', '--embedded-relay', '--embedded-port', '0', '--health-port', '0', '--pow', String(POW), '--state-dir', join(dir.path, 'a')])
    services.push(svc)
    const b = await banner(svc)
    assert.ok(b.relay !== undefined)
    ;({ npub, health } = b)
    trust = ['--relay', b.relay, '--root', b.root, '--any-pcrs', '--expect', 'dev', '--timeout', '10']
    // the announcement that carries ["pow", "8"] is among the first publications
    await until(async () => ((await counters(health)).published ?? 0) >= 4, 'the announcements')
  })

  for (const [name, args] of [['dm (NIP-17: the gift wrap is mined)', ['ping']], ['dm --nip04 (the kind 4 is mined)', ['ping', '--nip04']]] as const) {
    it(`${name}: pong, VALID, exit 0`, async () => {
      const r = await nec01(['dm', npub, ...args, ...trust])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, /^reply \(nip(17|04)\):\npong\n/)
    })
  }

  it('attest (the JSON-RPC event is mined): VALID, exit 0', async () => {
    const r = await nec01(['attest', npub, ...trust])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /\nVALID\n?$/)
  })

  it('--pow 0 forces none: the service drops the request (dropped_no_pow), the CLI times out without the --pow hint', async () => {
    const before = (await counters(health)).dropped_no_pow ?? 0
    const r = await nec01(['dm', npub, 'ping', ...trust.slice(0, -2), '--timeout', '3', '--pow', '0'])
    assert.equal(r.code, 1)
    assert.match(r.stderr.trim(), /\nnec01: no reply within 3 s \(is the service running and on these relays\?\)$/)
    assert.equal((await counters(health)).dropped_no_pow, before + 1)
  })

  it(`--pow above the service's maximum is a usage error`, async () => {
    const r = await nec01(['dm', npub, 'ping', ...trust, '--pow', '33'])
    assert.equal(r.code, 2)
    assert.equal(r.stderr.trim(), "nec01: --pow: expected a whole number from 0 to 32, got '33'")
  })
})

describe('an announcement the CLI cannot read: no proof of work, and the no-reply message names --pow', () => {
  let dark: EmbeddedRelay
  let lit: EmbeddedRelay
  let npub = ''
  let health = ''

  before(async () => {
    // The service reads requests from `dark` but publishes only to `lit`: a client on `dark`
    // reaches the service and never sees its announcement.
    dark = await startTestRelay()
    lit = await startTestRelay()
    const relays = join(dir.path, 'relays.json')
    writeFileSync(relays, JSON.stringify({ relays: [{ url: lit.url, read: true, write: true }, { url: dark.url, read: true, write: false }] }))
    const svc = spawnService(['--dev', '--relays', relays, '--health-port', '0', '--pow', String(POW), '--state-dir', join(dir.path, 'b')])
    services.push(svc)
    ;({ npub, health } = await banner(svc))
    await until(async () => ((await counters(health)).published ?? 0) >= 4, 'the announcements')
  })
  after(async () => {
    await dark.close()
    await lit.close()
  })

  for (const command of [['dm', 'ping'], ['attest']]) {
    it(`${command[0]}: the request is dropped for lack of work; exit 1, one line that says so and names --pow`, async () => {
      const before = (await counters(health)).dropped_no_pow ?? 0
      const r = await nec01([command[0]!, npub, ...command.slice(1), '--relay', dark.url, '--any-pcrs', '--timeout', '3'])
      assert.equal(r.code, 1, r.stderr)
      const errors = r.stderr.trim().split('\n').filter((l) => !l.startsWith('warning:'))
      assert.deepEqual(errors, [
        'nec01: no reply within 3 s (is the service running and on these relays? Its announcement could not be read, so the request carries no proof of work: the service may require some; try --pow N)',
      ])
      assert.equal((await counters(health)).dropped_no_pow, before + 1, 'the service got it and dropped it')
    })
  }

  it(`dm --pow ${POW} on the same relay: the request is answered, not dropped`, async () => {
    const before = await counters(health)
    const r = await nec01(['dm', npub, 'ping', '--relay', dark.url, '--root', join(dir.path, 'b', 'nsm-simulator', 'root.pem'), '--any-pcrs', '--expect', 'dev', '--timeout', '10', '--pow', String(POW)])
    const now = await counters(health)
    assert.equal(now.dropped_no_pow ?? 0, before.dropped_no_pow ?? 0)
    assert.equal(now.answered, (before.answered ?? 0) + 1)
    assert.equal(r.code, 0, r.stderr)
  })
})
