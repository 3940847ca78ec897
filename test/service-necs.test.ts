// The service's side of the NEC family: which builder, launcher and release signatures it
// carries (only those that hold for its own attestation, r and t; every other one refused
// with one log line), the announcement they end up in (verified by nec01 as a client
// would), and the parent's hand-in over the proxy port. Real parts throughout: the NSM
// simulator with PCR4 and PCR8 set, a relay on loopback, the parent proxy.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { verifyAnnouncement } from '../nec01/announcement.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { RPC_KIND } from '../nec01/kinds.js'
import type { NostrEvent } from '../nec01/types.js'
import { openNsm } from '../src/nsm/open.js'
import { bootPcrs } from '../src/nsm/pcrs.js'
import { isNsmError } from '../src/nsm/types.js'
import { createLogger } from '../src/log.js'
import { startParentProxy, allowlistFromRelays, type ProxyEvent } from '../src/parent/proxy.js'
import { acceptSignatures, parentSignatures, type SignatureScope } from '../src/service/signatures.js'
import { builder, buildSignature, INSTANCE_ID, launchSignature, OTHER_INSTANCE_ID, pcr4Hex, person, releaseSignature, REPO } from './nec-people.js'
import { startTestRelay, startTestService, tempDir } from './service-harness.js'
import { Peer, until } from './talk.js'

const randomPcr = (): string => bytesToHex(new Uint8Array(randomBytes(48)))

function capture(): { lines: Array<Record<string, unknown>>; log: ReturnType<typeof createLogger> } {
  const lines: Array<Record<string, unknown>> = []
  return { lines, log: createLogger({}, { level: 'debug', sink: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) }) }
}

const refusals = (lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> => lines.filter((l) => l.msg === 'signature refused')

describe('acceptSignatures: only what holds for this attestation, r and t', async () => {
  const b = await builder()
  const launcher = person()
  const maintainer = person()
  const code = { 0: randomPcr(), 1: randomPcr(), 2: randomPcr() }
  const scope: SignatureScope = { pcrs: { ...code, 4: pcr4Hex(), 8: b.pcr8 }, r: REPO, t: 'dev' }

  it('carries a matching build, instance and release', async () => {
    const { lines, log } = capture()
    const events = [buildSignature(b, 'dev'), launchSignature(launcher), releaseSignature(maintainer, code, 'dev')]
    const held = await acceptSignatures(events, scope, log)
    assert.equal(held.build?.id, events[0]?.id)
    assert.equal(held.instance?.id, events[1]?.id)
    assert.deepEqual(held.releases.map((e) => e.id), [events[2]?.id])
    assert.equal(refusals(lines).length, 0)
  })

  it('works with none', async () => {
    const { lines, log } = capture()
    assert.deepEqual(await acceptSignatures([], scope, log), { build: null, instance: null, releases: [] })
    assert.equal(lines.length, 0)
  })

  const other = await builder()
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['a build whose certificate is not the one PCR8 was made from', () => buildSignature(other, 'dev'), /PCR8 of its certificate .* is not the expected PCR8/],
    ['a build for prod in a dev service', () => buildSignature(b, 'prod'), /t is prod, expected dev/],
    ['a build of another repository', () => buildSignature(b, 'dev', 'https://example.org/other.git'), /r is https:\/\/example\.org\/other\.git, expected/],
    ['a launch for another instance (PCR4)', () => launchSignature(launcher, OTHER_INSTANCE_ID), /PCR4 .* is not the expected PCR4/],
    ['a release of other PCRs', () => releaseSignature(maintainer, { ...code, 1: randomPcr() }, 'dev'), /PCR1 .* is not the expected PCR1/],
    ['a release of another repository', () => releaseSignature(maintainer, code, 'dev', 'https://example.org/other.git'), /r is https:\/\/example\.org\/other\.git/],
    ['a release for prod in a dev service', () => releaseSignature(maintainer, code, 'prod'), /t is prod, expected dev/],
    ['a release with a forged signature', () => ({ ...releaseSignature(maintainer, code, 'dev'), content: 'changed' }), /event id or Schnorr signature invalid/],
    ['an event of another kind', () => ({ ...launchSignature(launcher), kind: 1 }), /kind 1 is no builder, launcher or release signature/],
    ['something that is no event', () => ({ hello: 'world' }), /not a Nostr event/],
  ]
  for (const [what, make, reason] of cases) {
    it(`refuses ${what}, with one log line saying why`, async () => {
      const { lines, log } = capture()
      const held = await acceptSignatures([make()], scope, log)
      assert.deepEqual(held, { build: null, instance: null, releases: [] })
      const refused = refusals(lines)
      assert.equal(refused.length, 1, JSON.stringify(lines))
      assert.equal(refused[0]?.level, 'warn')
      assert.match(String(refused[0]?.reason), reason)
    })
  }

  it('refuses a release when the service has no repository to match its r', async () => {
    const { lines, log } = capture()
    const held = await acceptSignatures([releaseSignature(maintainer, code, 'dev')], { ...scope, r: null }, log)
    assert.equal(held.releases.length, 0)
    assert.match(String(refusals(lines)[0]?.reason), /this service has none \(serve --repo\)/)
  })

  it('keeps the first build and one release per signer, refusing the rest', async () => {
    const { lines, log } = capture()
    const second = person()
    const events = [buildSignature(b, 'dev'), buildSignature(b, 'dev'), releaseSignature(maintainer, code, 'dev'), releaseSignature(maintainer, code, 'dev'), releaseSignature(second, code, 'dev')]
    const held = await acceptSignatures(events, scope, log)
    assert.equal(held.build?.id, events[0]?.id)
    assert.deepEqual(held.releases.map((e) => e.pubkey), [maintainer.pubkey, second.pubkey])
    assert.deepEqual(refusals(lines).map((l) => l.reason), ['a second build signature', 'a second release by the same signer'])
  })
})

/** The service's latest announcement on the relay. */
async function announcement(peer: Peer, service: string, relay: string): Promise<NostrEvent> {
  let found: NostrEvent[] = []
  await until(async () => (found = await peer.stored({ kinds: [13793], authors: [service] }, relay)).length > 0, 'the announcement')
  return found.sort((a, b) => b.created_at - a.created_at)[0] as NostrEvent
}

const tagsNamed = (e: NostrEvent, name: string): string[][] => e.tags.filter((t) => t[0] === name)

/** PCR0/1/2 the simulator in this process measures (the same dist, runtime and lock file). */
function simulatedCode(der: Uint8Array): { 0: string; 1: string; 2: string } {
  const pcrs = bootPcrs({ instanceId: INSTANCE_ID, signingCertificate: der })
  return { 0: bytesToHex(pcrs[0] as Uint8Array), 1: bytesToHex(pcrs[1] as Uint8Array), 2: bytesToHex(pcrs[2] as Uint8Array) }
}

describe('the announcement carries the signatures that hold', () => {
  it('NEC-02 tags; build, instance and release carried with p markers; nec01 verifies it trusting the people', async () => {
    const relay = await startTestRelay()
    const b = await builder()
    const launcher = person()
    const maintainer = person()
    const code = simulatedCode(b.cert.der)
    const stranger = launchSignature(person(), OTHER_INSTANCE_ID)
    const offered = [buildSignature(b, 'dev'), launchSignature(launcher), releaseSignature(maintainer, code, 'dev'), stranger]
    const svc = await startTestService({
      relays: [relay.url],
      nsm: { instanceId: INSTANCE_ID, signingCertificate: b.cert.der },
      config: { repo: REPO, signatures: async () => offered },
    })
    const peer = new Peer([relay.url])
    try {
      const ann = await announcement(peer, svc.service.identity.pubkey, relay.url)
      assert.deepEqual(tagsNamed(ann, 'r'), [['r', REPO]])
      assert.deepEqual(tagsNamed(ann, 'name'), [['name', 'nec01-test']])
      assert.deepEqual(tagsNamed(ann, 'v'), [['v', '0.0.0-test']])
      assert.ok(ann.content.length > 0, 'content describes the service')
      assert.ok(tagsNamed(ann, 'k').some((t) => t[1] === String(RPC_KIND)), 'k names the RPC kind')
      assert.deepEqual(tagsNamed(ann, 'x').find((t) => t[2] === 'PCR4'), ['x', pcr4Hex(), 'PCR4'])
      assert.deepEqual(tagsNamed(ann, 'x').find((t) => t[2] === 'PCR8'), ['x', b.pcr8, 'PCR8'])
      assert.deepEqual(tagsNamed(ann, 'build').map((t) => (JSON.parse(t[1] ?? '') as NostrEvent).id), [offered[0]?.id])
      assert.deepEqual(tagsNamed(ann, 'instance').map((t) => (JSON.parse(t[1] ?? '') as NostrEvent).id), [offered[1]?.id])
      assert.deepEqual(tagsNamed(ann, 'release').map((t) => (JSON.parse(t[1] ?? '') as NostrEvent).id), [offered[2]?.id])
      assert.deepEqual(tagsNamed(ann, 'p').sort(), [['p', b.pubkey, 'builder'], ['p', launcher.pubkey, 'launcher'], ['p', maintainer.pubkey, 'releaser']].sort())

      // a client that trusts people, not hashes: no expectedPcrs, no anyPcrs
      const result = await verifyAnnouncement(ann, { root: svc.rootDer, expect: 'dev', repo: REPO, releaseSigners: [maintainer.npub], builder: b.npub, launcher: launcher.npub })
      assert.equal(result.valid, true, JSON.stringify(result.checks.filter((c) => !c.ok)))
      assert.deepEqual(result.signers, { builder: b.npub, launcher: launcher.npub, releasers: [maintainer.npub] })

      // the stranger's launch signature was refused, once per root, with its reason
      const refused = svc.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'signature refused')
      assert.equal(refused.length, 1)
      assert.equal(refused[0]?.id, stranger.id)
      assert.match(String(refused[0]?.reason), /PCR4/)
    } finally {
      await peer.close()
      await svc.close()
      await relay.close()
    }
  })

  it('with none and no repository: no r, no signatures, and it still verifies', async () => {
    const relay = await startTestRelay()
    const svc = await startTestService({ relays: [relay.url] })
    const peer = new Peer([relay.url])
    try {
      const ann = await announcement(peer, svc.service.identity.pubkey, relay.url)
      for (const name of ['r', 'build', 'instance', 'release', 'p']) assert.deepEqual(tagsNamed(ann, name), [], name)
      assert.equal(tagsNamed(ann, 'x').some((t) => t[2] === 'PCR8'), false, 'an unsigned image announces no PCR8')
      const result = await verifyAnnouncement(ann, { root: svc.rootDer, anyPcrs: true, expect: 'dev' })
      assert.equal(result.valid, true, JSON.stringify(result.checks.filter((c) => !c.ok)))
    } finally {
      await peer.close()
      await svc.close()
      await relay.close()
    }
  })
})

describe('the parent hands the signatures in over the proxy port', () => {
  it('GET /nec01/signatures: the service fetches them through --proxy and carries those that hold', async () => {
    const relay = await startTestRelay()
    const b = await builder()
    const launcher = person()
    const maintainer = person()
    const offered = [buildSignature(b, 'dev'), launchSignature(launcher), releaseSignature(maintainer, simulatedCode(b.cert.der), 'dev')]
    const events: ProxyEvent[] = []
    const proxy = await startParentProxy({ port: 0, allow: allowlistFromRelays([{ url: relay.url }]), log: (e) => events.push(e), signatures: async () => offered })
    const proxyUrl = `http://127.0.0.1:${proxy.port}`
    const svc = await startTestService({
      relays: [relay.url],
      nsm: { instanceId: INSTANCE_ID, signingCertificate: b.cert.der },
      config: { repo: REPO, proxy: proxyUrl, signatures: parentSignatures(proxyUrl) },
    })
    const peer = new Peer([relay.url])
    try {
      const ann = await announcement(peer, svc.service.identity.pubkey, relay.url)
      assert.equal(tagsNamed(ann, 'build').length, 1)
      assert.equal(tagsNamed(ann, 'instance').length, 1)
      assert.equal(tagsNamed(ann, 'release').length, 1)
      assert.ok(events.some((e) => e.event === 'signatures' && e.status === 200 && e.count === 3), JSON.stringify(events))
      const result = await verifyAnnouncement(ann, { root: svc.rootDer, expect: 'dev', releaseSigners: [maintainer.npub] })
      assert.equal(result.valid, true, JSON.stringify(result.checks.filter((c) => !c.ok)))
    } finally {
      await peer.close()
      await svc.close()
      await proxy.close()
      await relay.close()
    }
  })

  it('a parent that cannot read its list answers 503; the service logs it and announces without', async () => {
    const relay = await startTestRelay()
    const events: ProxyEvent[] = []
    const proxy = await startParentProxy({
      port: 0,
      allow: allowlistFromRelays([{ url: relay.url }]),
      log: (e) => events.push(e),
      signatures: async () => {
        throw new Error('signatures.json: not JSON')
      },
    })
    const proxyUrl = `http://127.0.0.1:${proxy.port}`
    const svc = await startTestService({ relays: [relay.url], config: { repo: REPO, proxy: proxyUrl, signatures: parentSignatures(proxyUrl) } })
    const peer = new Peer([relay.url])
    try {
      const ann = await announcement(peer, svc.service.identity.pubkey, relay.url)
      assert.deepEqual(tagsNamed(ann, 'build'), [])
      assert.ok(events.some((e) => e.event === 'signatures' && e.status === 503 && e.detail === 'signatures.json: not JSON'))
      const warned = svc.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'signatures unavailable; keeping the last list')
      assert.equal(warned.length, 1)
      assert.match(String(warned[0]?.error), /HTTP 503/)
      // the proxy still tunnels: the GET did not disturb CONNECT
      assert.ok(events.some((e) => e.event === 'open'))
    } finally {
      await peer.close()
      await svc.close()
      await proxy.close()
      await relay.close()
    }
  })
})

describe('the simulator as a signed image on a given instance', () => {
  it('PCR4 = nec01 pcr4OfInstance(id), PCR8 = pcr8OfCertificate(DER), module id on that instance', async () => {
    const b = await builder()
    const dir = tempDir('nec01-sim-necs-')
    const sim = await openNsm({ dev: true, stateDir: dir.path, instanceId: INSTANCE_ID, signingCertificate: b.cert.der })
    try {
      assert.equal(bytesToHex((await sim.describePcr(4)).value), pcr4Hex())
      assert.equal(bytesToHex((await sim.describePcr(8)).value), b.pcr8)
      assert.equal((await sim.describe()).moduleId.startsWith(`${INSTANCE_ID}-enc`), true)
      await assert.rejects(openNsm({ dev: true, stateDir: dir.path, instanceId: 'i-NOPE' }), (err: unknown) => isNsmError(err) && err.code === 'InvalidArgument')
    } finally {
      await sim.close()
      dir.remove()
    }
  })
})
