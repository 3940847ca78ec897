// The NEC family end to end, every part a real process: a builder makes a certificate and
// signs the build, a launcher signs the instance, a maintainer signs the release of the
// PCRs (all with `nec01 builder-cert` / `nec01 sign`); `nec01 parent --signatures` hands
// them to `nec01 serve --dev --embedded-relay` (simulator with that instance id and that
// certificate) through its proxy port; `nec01 fetch --release-signers <maintainer>`, with
// no --pcrs, then finds the service trusted for who built, launched and released it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decode } from 'nostr-tools/nip19'
import { nsecEncode } from 'nostr-tools/nip19'
import { bytesToHex } from '@noble/hashes/utils.js'
import type { NostrEvent } from '../nec01/types.js'
import { bootPcrs } from '../src/nsm/pcrs.js'
import { INSTANCE_ID, person, REPO, type Person } from './nec-people.js'
import { freePort, spawnNode, spawnService, tempDir, type SpawnedService } from './service-harness.js'
import { Peer, until } from './talk.js'

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli.js')

function nec01(args: string[], who?: Person): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env, NEC01_SECRET: who === undefined ? '' : nsecEncode(who.sk) }
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr })
    })
  })
}

async function signed(args: string[], who: Person): Promise<string> {
  const r = await nec01(args, who)
  assert.equal(r.code, 0, r.stderr)
  return r.stdout.trim()
}

describe('NEC family end to end: signatures made by the CLI, handed in by the parent, trusted by fetch', () => {
  const dir = tempDir('nec01-necs-e2e-')
  const builder = person()
  const launcher = person()
  const maintainer = person()
  let parent: SpawnedService
  let service: SpawnedService
  let relayUrl: string
  let npub: string
  let rootPem: string

  before(async () => {
    const cert = join(dir.path, 'builder-cert.pem')
    const made = await nec01(['builder-cert', builder.npub, '--cert', cert, '--key', join(dir.path, 'builder-key.pem')])
    assert.equal(made.code, 0, made.stderr)
    // what nitro-cli build-enclave would print for this image: the simulator measures the same
    const der = new Uint8Array(new X509Certificate(readFileSync(cert)).raw)
    const pcrs = bootPcrs({ instanceId: INSTANCE_ID, signingCertificate: der })
    const measurements = Object.fromEntries([0, 1, 2, 8].map((i) => [`PCR${i}`, bytesToHex(pcrs[i] as Uint8Array)]))
    writeFileSync(join(dir.path, 'pcrs.json'), JSON.stringify({ Measurements: measurements }))
    const lines = [
      await signed(['sign', 'build', '--cert', cert, '--t', 'dev', '--repo', REPO], builder),
      await signed(['sign', 'launch', '--instance', INSTANCE_ID], launcher),
      await signed(['sign', 'release', join(dir.path, 'pcrs.json'), '--t', 'dev', '--repo', REPO], maintainer),
    ]
    const signatures = join(dir.path, 'signatures.jsonl')
    writeFileSync(signatures, `${lines.join('\n')}\n`)

    const relayPort = await freePort()
    relayUrl = `ws://127.0.0.1:${relayPort}`
    parent = spawnNode('src/cli.js', ['parent', '--port', '0', '--allow', `127.0.0.1:${relayPort}`, '--signatures', signatures])
    let proxyPort = ''
    await until(() => (proxyPort = /listening on 127\.0\.0\.1:(\d+)/.exec(parent.stdout())?.[1] ?? '') !== '', 'the parent proxy')
    service = spawnService([
      '--dev', '--embedded-relay', '--embedded-port', String(relayPort), '--health-port', '0', '--state-dir', join(dir.path, 'state'),
      '--proxy', `http://127.0.0.1:${proxyPort}`, '--parent-signatures', '--repo', REPO,
      '--sim-instance-id', INSTANCE_ID, '--sim-builder-cert', cert,
    ])
    npub = await service.ready
    rootPem = /^root:\s+(\S+)/m.exec(service.stdout())?.[1] ?? ''
    const peer = new Peer([relayUrl])
    try {
      const pubkey = decode(npub).data as string
      let found: NostrEvent[] = []
      await until(async () => (found = await peer.stored({ kinds: [13793], authors: [pubkey] }, relayUrl)).length > 0, 'the announcement')
      assert.deepEqual(found[0]?.tags.filter((t) => t[0] === 'p').map((t) => t[2]).sort(), ['builder', 'launcher', 'releaser'])
    } finally {
      await peer.close()
    }
  })
  after(async () => {
    await service?.stop()
    await parent?.stop()
    dir.remove()
  })

  it('the parent handed the three signatures over its proxy port', () => {
    const handed = parent.stderr().split('\n').filter((l) => l.includes('"event":"signatures"')).map((l) => JSON.parse(l) as { status: number; count: number })
    assert.ok(handed.some((h) => h.status === 200 && h.count === 3), parent.stderr())
    assert.doesNotMatch(service.stderr(), /signature refused/)
  })

  it('fetch --release-signers <maintainer>, no --pcrs: VALID, built, launched and released by the right people; exit 0', async () => {
    const r = await nec01(['fetch', npub, '--relay', relayUrl, '--root', rootPem, '--expect', 'dev', '--release-signers', maintainer.npub, '--timeout', '5'])
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`)
    assert.match(r.stdout, /^✓ kind 13793 announcement /m)
    assert.match(r.stdout, /^✓ pcrs +PCR0\/1\/2 released by 1 of 1 trusted signer/m)
    assert.match(r.stdout, new RegExp(`^built by +${builder.npub}$`, 'm'))
    assert.match(r.stdout, new RegExp(`^launched by ${launcher.npub}$`, 'm'))
    assert.match(r.stdout, new RegExp(`^released by ${maintainer.npub}$`, 'm'))
    assert.match(r.stdout, /(\d+)\/\1 events verified/)
    assert.doesNotMatch(r.stderr, /any-pcrs/)
  })

  it('trusting another maintainer instead: INVALID (pcrs), exit 1', async () => {
    const r = await nec01(['fetch', npub, '--relay', relayUrl, '--root', rootPem, '--expect', 'dev', '--release-signers', person().npub, '--timeout', '5'])
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stdout, /^✗ kind 13793 announcement .* INVALID \(pcrs\)$/m)
  })

  it('--builder and --launcher name the people too', async () => {
    const ok = await nec01(['fetch', npub, '--relay', relayUrl, '--root', rootPem, '--expect', 'dev', '--builder', builder.npub, '--launcher', launcher.npub, '--limit', '0', '--timeout', '5'])
    assert.equal(ok.code, 0, ok.stdout)
    const wrong = await nec01(['fetch', npub, '--relay', relayUrl, '--root', rootPem, '--expect', 'dev', '--builder', launcher.npub, '--limit', '0', '--timeout', '5'])
    assert.equal(wrong.code, 1)
    assert.match(wrong.stdout, /PCR8: not built by the trusted/)
  })
})
