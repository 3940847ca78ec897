// The NEC family (NEC-02..05 and enclaved's tee_cert delegation): real published events
// first, cross-checked with the reference library, then forgeries built with the NSM
// simulator and test/forge.ts.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { finalizeEvent, generateSecretKey, getPublicKey, type EventTemplate } from 'nostr-tools/pure'
import { npubEncode } from 'nostr-tools/nip19'
import { sha384 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { buildAnnouncement, verifyAnnouncement } from '../nec01/announcement.js'
import { buildBuilderSignature } from '../nec01/build.js'
import { parseCertificate } from '../nec01/cert.js'
import { TEE_CERT_TAG } from '../nec01/delegation.js'
import { buildRootEvent, clearTeeRootMemo, verifyRootEvent, verifyTeeRoot, withTeeRoot } from '../nec01/event.js'
import { isNotChecked } from '../nec01/result.js'
import { BUILD_KIND, CERT_KIND, RPC_KIND } from '../nec01/kinds.js'
import { buildLauncherSignature } from '../nec01/launch.js'
import { verifyNecEvent, verifyNecSignature } from '../nec01/necs.js'
import { pcr4OfInstance, pcr8OfCertificate } from '../nec01/pcr.js'
import { buildReleaseSignature } from '../nec01/release.js'
import type { NecVerifyOptions, NostrEvent, VerifyResult } from '../nec01/types.js'
import { SIM_INSTANCE_ID } from '../src/nsm/pki.js'
import { NsmSimulator } from '../src/nsm/simulator.js'
import { readNec01 } from './fixtures.js'
import { alterHex, makeCert, nameDer, p384 } from './forge.js'
import { tempDir } from './service-harness.js'

// The reference (nostr-enclaves): its type declarations do not resolve under node16
// module resolution, so the few members used are typed here.
interface ReferenceValidator {
  validateInstance(event: NostrEvent): Promise<boolean>
  validateBuildCert(cert: string, pubkey: string, pcr8: string): Promise<void>
}
const { Validator, pcrDigest } = (await import('nostr-enclaves')) as unknown as {
  Validator: new (options?: { allowExpired?: boolean }) => ReferenceValidator
  pcrDigest(data: Uint8Array | string): string
}

const REPO = 'https://github.com/example/enclaved-thing'
const DAY = 86_400_000

// ---- helpers -----------------------------------------------------------------------

function failed(result: VerifyResult): string[] {
  return result.checks.filter((c) => !c.ok).map((c) => c.id)
}

function detail(result: VerifyResult, id: string): string {
  return result.checks.filter((c) => c.id === id).map((c) => c.detail).join(' | ')
}

function keyPair(): { sk: Uint8Array; pk: string; npub: string } {
  const sk = generateSecretKey()
  const pk = getPublicKey(sk)
  return { sk, pk, npub: npubEncode(pk) }
}

function pem(der: Uint8Array): string {
  return `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`
}

interface CertOptions {
  cn: string
  org?: string
  key?: { publicKey: KeyObject; privateKey: KeyObject }
  /** signs with this key instead of the certificate's own */
  signer?: KeyObject
  notBefore?: number
  notAfter?: number
}

/** A NEC-03 build certificate: self-signed, subject C=US, O=Nostr, CN=<npub>. */
function buildCert(o: CertOptions): Uint8Array {
  const key = o.key ?? p384()
  const name = nameDer(o.cn, o.org ?? 'Nostr')
  return makeCert({
    subject: name,
    issuer: name,
    notBefore: o.notBefore ?? Date.now() - DAY,
    notAfter: o.notAfter ?? Date.now() + 365 * DAY,
    publicKey: key.publicKey,
    signer: o.signer ?? key.privateKey,
  })
}

function sign(template: EventTemplate, sk: Uint8Array): NostrEvent {
  return finalizeEvent(template, sk) as NostrEvent
}

// ---- the simulated family ----------------------------------------------------------

const state = tempDir('nec01-necs-')
const service = keyPair()
const builder = keyPair()
const launcher = keyPair()
const maintainer = keyPair()
const second = keyPair()
const stranger = keyPair()
const goodCert = buildCert({ cn: builder.npub })
let sim: NsmSimulator
let root: NostrEvent
let pcrs: Record<string, string>
let notAfter: number

before(async () => {
  sim = await NsmSimulator.open({ stateDir: state.path, bootPcrs: { 8: pcr8OfCertificate(goodCert) } })
  root = await rootEvent(service.sk)
  const checked = await verifyRootEvent(root, { root: sim.rootDer(), anyPcrs: true, expect: 'dev' })
  assert.equal(checked.valid, true, JSON.stringify(checked.checks.filter((c) => !c.ok)))
  pcrs = checked.attestation!.pcrs
  notAfter = checked.attestation!.certificate.notAfter
})
after(async () => {
  await sim.close()
  state.remove()
})

async function rootEvent(sk: Uint8Array, expirationDelta = 0): Promise<NostrEvent> {
  const doc = await sim.attest({ publicKey: hexToBytes(getPublicKey(sk)) })
  const probe = await verifyRootEvent(sign(buildRootEvent({ attestation: doc, t: 'dev', expiration: 1 }), sk), { root: sim.rootDer(), anyPcrs: true, expect: 'dev' })
  const leafNotAfter = probe.attestation!.certificate.notAfter
  return sign(buildRootEvent({ attestation: doc, t: 'dev', expiration: leafNotAfter + expirationDelta }), sk)
}

function buildSig(cert = goodCert, who = builder): NostrEvent {
  return sign(buildBuilderSignature({ certificate: pem(cert), t: 'dev', r: REPO, v: '1.0.0' }), who.sk)
}

/** A builder signature around any certificate, even one buildBuilderSignature refuses. */
function forgedBuildSig(cert: Uint8Array): NostrEvent {
  return sign({ kind: BUILD_KIND, created_at: Math.floor(Date.now() / 1000), content: '', tags: [['-'], ['r', REPO], ['t', 'dev'], ['cert', pem(cert)]] }, builder.sk)
}

function launchSig(instanceId = SIM_INSTANCE_ID, who = launcher): NostrEvent {
  return sign(buildLauncherSignature({ instanceId }), who.sk)
}

function releaseSig(who = maintainer, o: { r?: string; t?: 'prod' | 'dev'; pcr0?: string } = {}): NostrEvent {
  return sign(buildReleaseSignature({ pcrs: { 0: o.pcr0 ?? pcrs['0']!, 1: pcrs['1']!, 2: pcrs['2']! }, r: o.r ?? REPO, t: o.t ?? 'dev' }), who.sk)
}

function announce(o: { build?: NostrEvent; instance?: NostrEvent; releases?: NostrEvent[]; root?: NostrEvent; tags?: (t: string[][]) => string[][] } = {}): NostrEvent {
  const template = buildAnnouncement({
    root: o.root ?? root,
    pcrs,
    content: 'a test service',
    r: REPO,
    t: 'dev',
    name: 'thing',
    v: '1.0.0',
    kinds: [RPC_KIND],
    ...('build' in o ? (o.build === undefined ? {} : { build: o.build }) : { build: buildSig() }),
    ...('instance' in o ? (o.instance === undefined ? {} : { instance: o.instance }) : { instance: launchSig() }),
    ...('releases' in o ? { releases: o.releases ?? [] } : { releases: [releaseSig()] }),
  })
  if (o.tags !== undefined) template.tags = o.tags(template.tags)
  return sign(template, service.sk)
}

function opts(extra: NecVerifyOptions = {}): NecVerifyOptions {
  return { root: sim.rootDer(), expect: 'dev', ...extra }
}

// ---- real data -----------------------------------------------------------------------

const noauth = (): NostrEvent => JSON.parse(readNec01('noauth-enclaved-README-ca61c6e-instance-event.json')) as NostrEvent
const NOAUTH_AT = Date.parse('2025-04-01T14:00:00Z') / 1000
const NOAUTH_BUILDER = 'npub1xdtducdnjerex88gkg2qk2atsdlqsyxqaag4h05jmcpyspqt30wscmntxy'

test('real noauth-enclaved 63793: build (PCR8) and instance (PCR4) verify; INVALID for its expiration', async () => {
  const result = await verifyAnnouncement(noauth(), { now: NOAUTH_AT, anyPcrs: true, expect: 'dev' })
  assert.equal(result.valid, false)
  assert.equal(result.reason, 'expiration')
  assert.deepEqual(failed(result), ['expiration'])
  assert.match(detail(result, 'expiration'), /after the leaf certificate's notAfter 2025-04-01T16:16:08Z/)
  assert.ok(result.checks.some((c) => c.id === 'build' && c.ok), detail(result, 'build'))
  assert.ok(result.checks.some((c) => c.id === 'instance' && c.ok), detail(result, 'instance'))
  assert.match(detail(result, 'announcement'), /x tags \(PCR0, PCR1, PCR2, PCR4, PCR8\) equal the attested PCRs/)
  assert.deepEqual(result.signers, { builder: NOAUTH_BUILDER, launcher: NOAUTH_BUILDER, releasers: [] })
  // the same answer through the family entry point
  assert.equal((await verifyNecEvent(noauth(), { now: NOAUTH_AT, anyPcrs: true, expect: 'dev' })).reason, 'expiration')
})

test('real v1 build certificate: accepted only where NEC-03 needs it, never in the Nitro PKI profile', () => {
  const build = JSON.parse(noauth().tags.find((t) => t[0] === 'build')![1]!) as NostrEvent
  const der = new Uint8Array(Buffer.from(build.tags.find((t) => t[0] === 'cert')![1]!, 'base64'))
  assert.throws(() => parseCertificate(der), /not a v3 certificate/)
  const cert = parseCertificate(der, { allowV1: true })
  assert.equal(cert.commonName, 'Nostr')
  assert.equal(cert.keyUsage, null)
})

test('real noauth-enclaved 63793: the reference accepts its build and instance signatures too', async () => {
  // nostr-enclaves does not apply NEC-01's expiration rule; allowExpired skips its clock
  const reference = new Validator({ allowExpired: true })
  assert.equal(await reference.validateInstance(noauth() as NostrEvent), true)
})

test('real noauth-enclaved 63793: trusting its builder or launcher by npub replaces --any-pcrs for PCR8/PCR4', async () => {
  const byBuilder = await verifyAnnouncement(noauth(), { now: NOAUTH_AT, expect: 'dev', builder: NOAUTH_BUILDER })
  assert.deepEqual(failed(byBuilder), ['expiration'])
  assert.match(detail(byBuilder, 'pcrs'), /PCR8: built by the trusted npub1xdtd/)
  const wrong = await verifyAnnouncement(noauth(), { now: NOAUTH_AT, expect: 'dev', builder: stranger.npub })
  assert.deepEqual(failed(wrong), ['expiration', 'pcrs'])
  assert.match(detail(wrong, 'pcrs'), /not built by the trusted .* \(built by npub1xdtd/)
  // a launcher names the host, not the code: alone it cannot stand in for PCRs
  const launcherOnly = await verifyAnnouncement(noauth(), { now: NOAUTH_AT, expect: 'dev', launcher: NOAUTH_BUILDER })
  assert.ok(failed(launcherOnly).includes('pcrs'))
  assert.match(detail(launcherOnly, 'pcrs'), /no expected PCRs given/)
  assert.match(detail(launcherOnly, 'pcrs'), /PCR4: launched by the trusted/)
})

test('real noauth-enclaved 9228dfb: its "instance" signature is kind 63795 (a build kind): we and the reference reject it', async () => {
  const ann = JSON.parse(readNec01('noauth-enclaved-README-9228dfb-instance-event.json')) as NostrEvent
  const at = Date.parse('2025-03-25T15:00:00Z') / 1000
  const result = await verifyAnnouncement(ann, { now: at, anyPcrs: true, expect: 'dev' })
  assert.match(detail(result, 'instance'), /kind 63795, expected 23795/)
  await assert.rejects(new Validator({ allowExpired: true }).validateInstance(ann as NostrEvent), /Invalid instance signature event kind/)
})

test('real encli builder signature: PCR8 of its certificate equals pcrs.json; the reference agrees', async () => {
  const build = JSON.parse(readNec01('encli-build-build.json')) as NostrEvent
  const measured = (JSON.parse(readNec01('encli-build-pcrs.json')) as { Measurements: Record<string, string> }).Measurements
  const at = Date.parse('2025-07-01T00:00:00Z') / 1000
  const result = await verifyNecSignature(build, { now: at, expect: 'dev', expectedPcrs: { 8: measured.PCR8! } })
  assert.equal(result.valid, true, JSON.stringify(result.checks))
  assert.match(detail(result, 'build'), /PCR8 934273acbc39… equals the expected PCR8/)
  assert.equal(result.signers?.builder, readNec01('encli-build-npub.txt').trim())
  // our PCR8 arithmetic against the reference's, on the real certificate
  const der = new Uint8Array(Buffer.from(readNec01('encli-build-crt.pem').replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'))
  assert.equal(bytesToHex(pcr8OfCertificate(der)), pcrDigest(sha384(der)))
  assert.equal(bytesToHex(pcr8OfCertificate(der)), measured.PCR8)
  await new Validator().validateBuildCert(build.tags.find((t) => t[0] === 'cert')![1]!, build.pubkey, measured.PCR8!)
  // the same certificate rebuilt into a template carries the same PCR8
  assert.deepEqual(buildBuilderSignature({ certificate: readNec01('encli-build-crt.pem'), t: 'dev' }).tags.find((t) => t[0] === 'PCR8'), ['PCR8', measured.PCR8])
  // another PCR8 is a mismatch, and no expectation at all proves nothing
  const other = await verifyNecSignature(build, { now: at, expect: 'dev', expectedPcrs: { 8: alterHex(measured.PCR8!) } })
  assert.equal(other.reason, 'build')
  assert.equal((await verifyNecSignature(build, { now: at, expect: 'dev' })).reason, 'pcrs')
})

test('real PCR4: a launcher signature built for noauth-enclaved\'s instance id carries its announced PCR4', () => {
  const pcr4 = noauth().tags.find((t) => t[0] === 'x' && t[2] === 'PCR4')![1]
  assert.equal(bytesToHex(pcr4OfInstance('i-0ffff615a409a72d7')), pcr4)
  assert.deepEqual(buildLauncherSignature({ instanceId: 'i-0ffff615a409a72d7' }).tags, [['-'], ['PCR4', pcr4]])
  assert.equal(pcrDigest('i-0ffff615a409a72d7'), pcr4)
})

// ---- a simulated service: the whole family ------------------------------------------

test('an announcement with build, instance and release verifies by trusted people alone (no PCRs)', async () => {
  const ann = announce()
  const result = await verifyAnnouncement(ann, opts({ releaseSigners: [maintainer.npub], builder: builder.npub, launcher: launcher.npub, repo: REPO }))
  assert.equal(result.valid, true, JSON.stringify(result.checks.filter((c) => !c.ok)))
  assert.deepEqual(result.signers, { builder: builder.npub, launcher: launcher.npub, releasers: [maintainer.npub] })
  for (const id of ['announcement', 'build', 'instance', 'release', 'pcrs', 'expiration', 't']) assert.ok(result.checks.some((c) => c.id === id && c.ok), id)
  assert.equal(result.event?.id, root.id)
  // without any trust option nothing names the code
  assert.equal((await verifyAnnouncement(ann, opts())).reason, 'pcrs')
})

test('forged build certificates: another npub, not self-signed, another curve, expired, wrong O', async () => {
  const other = buildCert({ cn: stranger.npub })
  const notSelf = buildCert({ cn: builder.npub, signer: p384().privateKey })
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const curve = buildCert({ cn: builder.npub, key: p256 })
  const expired = buildCert({ cn: builder.npub, notBefore: Date.now() - 10 * DAY, notAfter: Date.now() - DAY })
  const org = buildCert({ cn: builder.npub, org: 'Not Nostr' })
  const cases: [Uint8Array, RegExp][] = [
    [other, /not the signer npub/],
    [notSelf, /not self-signed/],
    [curve, /certificate: public key is not EC P-384/],
    [expired, /valid .* not at/],
    [org, /subject O is \["Not Nostr"\]/],
  ]
  for (const [cert, why] of cases) {
    const result = await verifyAnnouncement(announce({ build: forgedBuildSig(cert) }), opts({ anyPcrs: true }))
    assert.equal(result.reason, 'build', detail(result, 'build'))
    assert.match(detail(result, 'build'), why)
    assert.equal(result.signers?.builder, null)
  }
})

test('PCR8 and PCR4 mismatches: a valid certificate for another image, a launcher of another instance', async () => {
  const build = await verifyAnnouncement(announce({ build: buildSig(buildCert({ cn: builder.npub })) }), opts({ anyPcrs: true }))
  assert.equal(build.reason, 'build')
  assert.match(detail(build, 'build'), /PCR8 of its certificate .* is not the attested PCR8/)
  const instance = await verifyAnnouncement(announce({ instance: launchSig('i-0123456789abcdef0') }), opts({ anyPcrs: true }))
  assert.equal(instance.reason, 'instance')
  assert.match(detail(instance, 'instance'), /its PCR4 .* is not the attested PCR4/)
})

test('releases: unlisted signer, other PCRs, other r, other t, below the threshold', async () => {
  const listed = opts({ releaseSigners: [maintainer.npub] })
  const unlisted = await verifyAnnouncement(announce({ releases: [releaseSig(stranger)] }), listed)
  assert.deepEqual(failed(unlisted), ['pcrs'])
  assert.match(detail(unlisted, 'pcrs'), /released by 0 of 1 trusted signer, threshold 1/)
  const cases: [NostrEvent, RegExp][] = [
    [releaseSig(maintainer, { pcr0: alterHex(pcrs['0']!) }), /its PCR0 .* is not the attested PCR0/],
    [releaseSig(maintainer, { r: 'https://github.com/evil/fork' }), /r is https:\/\/github.com\/evil\/fork, expected/],
    [releaseSig(maintainer, { t: 'prod' }), /t is prod, expected dev/],
  ]
  for (const [release, why] of cases) {
    // carried by the service: the bad release fails its own check
    const carried = await verifyAnnouncement(announce({ releases: [release] }), listed)
    assert.deepEqual(failed(carried), ['release', 'pcrs'])
    assert.match(detail(carried, 'release'), why)
    // found on a relay: it simply does not count, and the pcrs detail says why
    const found = await verifyAnnouncement(announce({ releases: [] }), { ...listed, releases: [release] })
    assert.deepEqual(failed(found), ['pcrs'])
    assert.match(detail(found, 'pcrs'), why)
  }
  const two = opts({ releaseSigners: [maintainer.npub, second.pk], releaseThreshold: 2 })
  const below = await verifyAnnouncement(announce(), two)
  assert.deepEqual(failed(below), ['pcrs'])
  assert.match(detail(below, 'pcrs'), /released by 1 of 2 trusted signers .* threshold 2/)
  const met = await verifyAnnouncement(announce(), { ...two, releases: [releaseSig(second)] })
  assert.equal(met.valid, true, detail(met, 'pcrs'))
  assert.equal(met.signers?.releasers.length, 2)
})

test('announcement forgeries: x tags unlike the attestation, expiration after the root\'s, another key\'s root, an unbacked p marker', async () => {
  const x = await verifyAnnouncement(announce({ tags: (tags) => tags.map((t) => (t[0] === 'x' && t[2] === 'PCR1' ? ['x', alterHex(t[1]!), 'PCR1'] : t)) }), opts({ anyPcrs: true }))
  assert.equal(x.reason, 'announcement')
  assert.match(detail(x, 'announcement'), /x PCR1 .* is not the attested/)
  const noPcr2 = await verifyAnnouncement(announce({ tags: (tags) => tags.filter((t) => !(t[0] === 'x' && t[2] === 'PCR2')) }), opts({ anyPcrs: true }))
  assert.match(detail(noPcr2, 'announcement'), /no x tag for PCR2/)

  const earlyRoot = await rootEvent(service.sk, -600)
  const late = announce({ root: earlyRoot, tags: (tags) => tags.map((t) => (t[0] === 'expiration' ? ['expiration', String(notAfter - 300)] : t)) })
  const lateResult = await verifyAnnouncement(late, opts({ anyPcrs: true }))
  assert.equal(lateResult.reason, 'expiration')
  assert.match(detail(lateResult, 'expiration'), /after the tee_root's expiration/)

  const otherRoot = await rootEvent(stranger.sk)
  const foreign = await verifyAnnouncement(announce({ root: otherRoot }), opts({ anyPcrs: true }))
  assert.equal(foreign.reason, 'announcement')
  assert.match(detail(foreign, 'announcement'), /tee_root is by npub.*not the announcement key/)

  const unbacked = await verifyAnnouncement(announce({ build: undefined, tags: (tags) => [...tags, ['p', builder.pk, 'builder']] }), opts({ anyPcrs: true }))
  assert.equal(unbacked.reason, 'announcement')
  assert.match(detail(unbacked, 'announcement'), /as builder without a build signature by them/)

  const repo = await verifyAnnouncement(announce(), opts({ anyPcrs: true, repo: 'https://github.com/other/repo' }))
  assert.match(detail(repo, 'announcement'), /r is \["https:\/\/github.com\/example\/enclaved-thing"\], expected https:\/\/github.com\/other\/repo/)
})

// ---- tee_root carriers: dynamic trust, the memo, delegation --------------------------

test('a note\'s tee_root verifies with release signatures passed in; the memo keeps the options apart', async () => {
  clearTeeRootMemo()
  const note = sign(withTeeRoot({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: [], content: 'hi' }, root), service.sk)
  const trust = opts({ releaseSigners: [maintainer.npub], repo: REPO })
  const good = await verifyTeeRoot(note, { ...trust, releases: [releaseSig()] })
  assert.equal(good.valid, true, JSON.stringify(good.checks.filter((c) => !c.ok)))
  assert.deepEqual(good.signers?.releasers, [maintainer.npub])
  // a hit must not carry the verdict over to other releases, to none, or to an empty publicKey
  assert.equal((await verifyTeeRoot(note, { ...trust, releases: [releaseSig(stranger)] })).reason, 'pcrs')
  assert.equal((await verifyTeeRoot(note, trust)).reason, 'pcrs')
  assert.equal((await verifyTeeRoot(note, { ...trust, releases: [releaseSig()], publicKey: '' })).reason, 'pubkey')
  assert.equal((await verifyTeeRoot(note, { ...trust, releases: [releaseSig()] })).valid, true)
  // builder and launcher signatures only ride on announcements
  const builderOnly = await verifyTeeRoot(note, opts({ builder: builder.npub }))
  assert.match(detail(builderOnly, 'pcrs'), /not built by the trusted .* \(no valid build signature\)/)
})

test('malformed trust options are input verdicts, before any lookup', async () => {
  const note = sign(withTeeRoot({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: [], content: 'hi' }, root), service.sk)
  const bad: NecVerifyOptions[] = [
    { releaseSigners: [] },
    { releaseSigners: ['npub1nothing'] },
    { releaseSigners: [maintainer.npub], releaseThreshold: 2 },
    { releaseThreshold: 1 },
    { builder: 'someone' },
    { repo: '' },
    { releases: [{} as NostrEvent] },
  ]
  for (const extra of bad) {
    for (const verify of [verifyTeeRoot, verifyRootEvent, verifyAnnouncement]) {
      const result = await verify(verify === verifyTeeRoot ? note : verify === verifyRootEvent ? root : announce(), opts({ anyPcrs: true, ...extra }))
      assert.equal(result.reason, 'input', `${verify.name} ${JSON.stringify(extra)}`)
    }
  }
})

function certEvent(signerSk: Uint8Array, delegate: string, expiration = Math.floor(Date.now() / 1000) + 3600): NostrEvent {
  return sign({ kind: CERT_KIND, created_at: Math.floor(Date.now() / 1000), content: '', tags: [['p', delegate], ['expiration', String(expiration)]] }, signerSk)
}

function delegated(signer: { sk: Uint8Array }, certs: NostrEvent[]): NostrEvent {
  const template = withTeeRoot({ kind: 1, created_at: Math.floor(Date.now() / 1000), tags: certs.map((c) => [TEE_CERT_TAG, JSON.stringify(c)]), content: 'from a container' }, root)
  return sign(template, signer.sk)
}

test('delegation: a tee_cert chain root → container → event key verifies and is listed', async () => {
  const container = keyPair()
  const leaf = keyPair()
  const chain = [certEvent(service.sk, container.pk), certEvent(container.sk, leaf.pk)]
  const result = await verifyTeeRoot(delegated(leaf, chain), opts({ anyPcrs: true }))
  assert.equal(result.valid, true, JSON.stringify(result.checks.filter((c) => !c.ok)))
  assert.deepEqual(result.delegation?.map((l) => [l.signer, l.delegate]), [[service.pk, container.pk], [container.pk, leaf.pk]])
  // without the chain, another key is just another key
  assert.equal((await verifyTeeRoot(delegated(leaf, []), opts({ anyPcrs: true }))).reason, 'carrier')
})

test('delegation forgeries: wrong order, wrong p, expired, bad signature, wrong kind, a chain ending elsewhere', async () => {
  const container = keyPair()
  const leaf = keyPair()
  const first = certEvent(service.sk, container.pk)
  const secondLink = certEvent(container.sk, leaf.pk)
  const cases: [NostrEvent[], RegExp][] = [
    [[secondLink, first], /tee_cert 0 is signed by npub.*not by npub.*\(the root key\)/],
    [[certEvent(service.sk, stranger.pk), secondLink], /tee_cert 1 is signed by .*named by tee_cert 0/],
    [[first, certEvent(container.sk, leaf.pk, Math.floor(Date.now() / 1000) - 1)], /tee_cert 1 expired/],
    [[first, { ...secondLink, sig: alterHex(secondLink.sig) }], /tee_cert 1: event id or Schnorr signature invalid/],
    [[first, sign({ kind: 1, created_at: secondLink.created_at, content: '', tags: secondLink.tags }, container.sk)], /tee_cert 1 is kind 1, expected 23797/],
    [[first], /the chain ends at npub.*not at the event's pubkey/],
  ]
  for (const [certs, why] of cases) {
    const result = await verifyTeeRoot(delegated(leaf, certs), opts({ anyPcrs: true }))
    assert.equal(result.reason, 'cert', JSON.stringify(result.checks.filter((c) => !c.ok)))
    assert.match(detail(result, 'cert'), why)
    assert.equal(result.delegation, undefined)
  }
})

test('RPC_KIND is ephemeral and no NEC kind', () => {
  assert.ok(RPC_KIND >= 20000 && RPC_KIND < 30000)
  assert.ok(![23793, 23794, 23795, 23796, 23797, 13793, 63793, 63794, 63795, 63796, 24133, 24135, 29425, 29525].includes(RPC_KIND))
})

test('an announcement whose attestation does not verify lists what depends on it as not checked, and stays invalid', async () => {
  // the real 63793 against the simulator's root: its AWS document cannot chain to it
  const result = await verifyAnnouncement(noauth(), { now: NOAUTH_AT, expect: 'dev', root: sim.rootDer(), builder: NOAUTH_BUILDER })
  assert.equal(result.valid, false)
  assert.equal(result.reason, 'root')
  assert.match(detail(result, 'root'), /^cabundle\[0\] \(CN=aws\.nitro-enclaves\) is not byte-identical to the given trusted root/)
  const skipped = result.checks.filter((c) => isNotChecked(c))
  assert.deepEqual(
    skipped.map((c) => c.id),
    ['debug', 'pubkey', 'announcement', 'expiration', 'build', 'instance', 'pcrs'],
  )
  for (const c of skipped) assert.equal(c.ok, false, `${c.id} fails closed`)
  assert.match(detail(result, 'expiration'), /^not checked: the attestation did not verify, so the leaf certificate's notAfter is unknown \(expiration 2025-/)
  // no check that could not run is reported as a plain failure, nor as a pass
  assert.deepEqual(failed(result).filter((id) => !skipped.some((c) => c.id === id)), ['root'])
})
