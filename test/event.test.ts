// NEC-01 events: kind:23793 root events and tee_root carriers, built from real simulator
// documents and from the real noauth-enclaved attestation.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateSecretKey, getPublicKey, finalizeEvent, getEventHash } from 'nostr-tools/pure'
import { hexToBytes } from '@noble/hashes/utils.js'
import { decodeAttestation } from '../nec01/attestation.js'
import { base64ToBytes } from '../nec01/encoding.js'
import { buildRootEvent, clearTeeRootMemo, teeRootMemoStats, verifyRootEvent, verifyTeeRoot, withTeeRoot, ROOT_KIND, TEE_ROOT_TAG } from '../nec01/event.js'
import { isNotChecked } from '../nec01/result.js'
import type { NostrEvent, VerifyOptions } from '../nec01/types.js'
import { NsmSimulator } from '../src/nsm/simulator.js'
import { readNec01 } from './fixtures.js'
import { alterHex } from './forge.js'
import { tempDir } from './service-harness.js'

const state = tempDir('nec01-event-')
let sim: NsmSimulator
let debugSim: NsmSimulator
const sk = generateSecretKey()
const pubkey = getPublicKey(sk)

before(async () => {
  sim = await NsmSimulator.open({ stateDir: state.path })
  debugSim = await NsmSimulator.open({ stateDir: state.path, debug: true })
})
after(async () => {
  await sim.close()
  await debugSim.close()
  state.remove()
})

function trust(extra: VerifyOptions = {}): VerifyOptions {
  return { root: sim.rootDer(), anyPcrs: true, expect: 'dev', ...extra }
}

async function rootEvent(opts: { nsm?: NsmSimulator; key?: Uint8Array; bindKey?: string; expirationDelta?: number; t?: 'prod' | 'dev'; tags?: (tags: string[][]) => string[][] } = {}): Promise<{ event: NostrEvent; notAfter: number; notBefore: number }> {
  const nsm = opts.nsm ?? sim
  const key = opts.key ?? sk
  const doc = await nsm.attest({ publicKey: hexToBytes(opts.bindKey ?? getPublicKey(key)) })
  const leaf = decodeAttestation(doc)
  // Read the leaf validity through the verifier itself, as the service does.
  const checked = await verifyRootEvent(finalizeEvent(buildRootEvent({ attestation: doc, t: 'dev', expiration: 1 }), key), trust())
  const notAfter = checked.attestation?.certificate.notAfter ?? 0
  const notBefore = checked.attestation?.certificate.notBefore ?? 0
  assert.ok(leaf.certificate.length > 0 && notAfter > 0)
  const template = buildRootEvent({ attestation: doc, t: opts.t ?? 'dev', expiration: notAfter + (opts.expirationDelta ?? 0) })
  if (opts.tags !== undefined) template.tags = opts.tags(template.tags)
  return { event: finalizeEvent(template, key), notAfter, notBefore }
}

function ids(result: { checks: { id: string; ok: boolean }[] }): string[] {
  return result.checks.filter((c) => !c.ok).map((c) => c.id)
}

test('a root event built from a simulator document verifies with the simulator root', async () => {
  const { event, notAfter } = await rootEvent()
  assert.equal(event.kind, ROOT_KIND)
  assert.deepEqual(event.tags, [['-'], ['t', 'dev'], ['expiration', String(notAfter)]])
  const result = await verifyRootEvent(event, trust())
  assert.equal(result.valid, true, JSON.stringify(result.checks.filter((c) => !c.ok)))
  assert.equal(result.reason, null)
  assert.equal(result.attestation?.public_key, pubkey)
  assert.equal(result.event?.id, event.id)
  for (const id of ['input', 'event', 'kind', 'protected', 't', 'cose', 'payload', 'root', 'chain', 'time', 'signature', 'debug', 'pcrs', 'pubkey', 'expiration']) {
    assert.ok(result.checks.some((c) => c.id === id && c.ok), `check ${id} present and passing`)
  }
})

test('t: default expectation is prod; dev must be asked for; any accepts both', async () => {
  const { event } = await rootEvent()
  const prod = await verifyRootEvent(event, { root: sim.rootDer(), anyPcrs: true })
  assert.equal(prod.valid, false)
  assert.equal(prod.reason, 't')
  assert.equal((await verifyRootEvent(event, trust({ expect: 'any' }))).valid, true)
  const bad = await rootEvent({ tags: (tags) => tags.map((t) => (t[0] === 't' ? ['t', 'staging'] : t)) })
  assert.equal((await verifyRootEvent(bad.event, trust({ expect: 'any' }))).reason, 't')
})

test('the document must bind the event pubkey (real noauth-enclaved attestation signed by another key)', async () => {
  const doc = base64ToBytes(readNec01('noauth-enclaved-README-ca61c6e-attestation.b64').trim())
  const at = Date.parse('2025-04-01T14:00:00Z') / 1000
  const event = finalizeEvent(buildRootEvent({ attestation: doc, t: 'dev', expiration: Date.parse('2025-04-01T16:16:08Z') / 1000, created_at: at }), sk)
  const result = await verifyRootEvent(event, { now: at, anyPcrs: true, expect: 'dev' })
  assert.equal(result.valid, false)
  assert.deepEqual(ids(result), ['pubkey'])
  assert.equal(result.attestation?.public_key, 'ac116b22152178636e06d75188c260da10ecd54765d3999bcb579c8f530a9441')
})

test('a simulator document that binds another key fails pubkey', async () => {
  const other = getPublicKey(generateSecretKey())
  const { event } = await rootEvent({ bindKey: other })
  const result = await verifyRootEvent(event, trust())
  assert.equal(result.reason, 'pubkey')
})

test('expiration: after the leaf notAfter, in the past, missing or malformed all fail', async () => {
  const late = await rootEvent({ expirationDelta: 1 })
  const r1 = await verifyRootEvent(late.event, trust())
  assert.equal(r1.reason, 'expiration')
  assert.match(r1.checks.find((c) => c.id === 'expiration')?.detail ?? '', /after the leaf certificate's notAfter/)
  const early = await rootEvent({ expirationDelta: -1 })
  assert.equal((await verifyRootEvent(early.event, trust())).valid, true)
  // expired: validate one second after the expiration, still inside the leaf window
  const expired = await rootEvent({ expirationDelta: -600 })
  const r2 = await verifyRootEvent(expired.event, trust({ now: expired.notAfter - 599 }))
  assert.equal(r2.reason, 'expiration')
  const missing = await rootEvent({ tags: (tags) => tags.filter((t) => t[0] !== 'expiration') })
  assert.equal((await verifyRootEvent(missing.event, trust())).reason, 'expiration')
  const twice = await rootEvent({ tags: (tags) => [...tags, ['expiration', '1']] })
  assert.equal((await verifyRootEvent(twice.event, trust())).reason, 'expiration')
  const text = await rootEvent({ tags: (tags) => tags.map((t) => (t[0] === 'expiration' ? ['expiration', 'soon'] : t)) })
  assert.equal((await verifyRootEvent(text.event, trust())).reason, 'expiration')
})

test('the NIP-70 ["-"] tag is required', async () => {
  const { event } = await rootEvent({ tags: (tags) => tags.filter((t) => t[0] !== '-') })
  assert.equal((await verifyRootEvent(event, trust())).reason, 'protected')
})

test('wrong kind, a tampered signature and tampered content are rejected', async () => {
  const { event } = await rootEvent()
  const otherKind = finalizeEvent({ kind: 1, created_at: event.created_at, tags: event.tags, content: event.content }, sk)
  assert.equal((await verifyRootEvent(otherKind, trust())).reason, 'kind')
  const badSig = { ...event, sig: alterHex(event.sig) }
  assert.equal((await verifyRootEvent(badSig, trust())).reason, 'event')
  const notBase64 = finalizeEvent({ ...buildRootEvent({ attestation: new Uint8Array([1]), t: 'dev', expiration: 2 }), content: '%%%' }, sk)
  assert.equal((await verifyRootEvent(notBase64, trust())).reason, 'cose')
})

test('a debug-mode document is rejected whatever the options say', async () => {
  const { event } = await rootEvent({ nsm: debugSim })
  const result = await verifyRootEvent(event, trust())
  assert.equal(result.reason, 'debug')
})

test('a simulator root event is rejected under the pinned AWS root', async () => {
  const { event } = await rootEvent()
  const result = await verifyRootEvent(event, { anyPcrs: true, expect: 'dev' })
  assert.equal(result.reason, 'root')
})

test('without expected PCRs the verdict is invalid (pcrs)', async () => {
  const { event } = await rootEvent()
  const result = await verifyRootEvent(event, { root: sim.rootDer(), expect: 'dev' })
  assert.equal(result.reason, 'pcrs')
  const pcrs = result.attestation?.pcrs ?? {}
  const pinned = await verifyRootEvent(event, { root: sim.rootDer(), expect: 'dev', expectedPcrs: { 0: pcrs['0'] ?? '', 1: pcrs['1'] ?? '', 2: pcrs['2'] ?? '' } })
  assert.equal(pinned.valid, true)
})

test('withTeeRoot replaces an earlier tee_root and never carries ["-"]', async () => {
  const { event: root } = await rootEvent()
  const template = withTeeRoot({ kind: 1, created_at: 1, content: 'hi', tags: [['-'], [TEE_ROOT_TAG, 'old'], ['t', 'x']] }, root)
  assert.deepEqual(template.tags, [['t', 'x'], [TEE_ROOT_TAG, JSON.stringify(root)]])
})

test('carriers: valid, wrong signer, outside the validity, missing or broken tee_root', async () => {
  const { event: root, notBefore, notAfter } = await rootEvent()
  const now = Math.floor(Date.now() / 1000)
  const note = finalizeEvent(withTeeRoot({ kind: 1, created_at: now, content: 'attested hello', tags: [] }, root), sk)
  const ok = await verifyTeeRoot(note, trust())
  assert.equal(ok.valid, true, JSON.stringify(ok.checks.filter((c) => !c.ok)))
  assert.equal(ok.event?.id, root.id)

  const otherKey = generateSecretKey()
  const foreign = finalizeEvent(withTeeRoot({ kind: 1, created_at: now, content: 'x', tags: [] }, root), otherKey)
  const r1 = await verifyTeeRoot(foreign, trust())
  assert.equal(r1.reason, 'carrier')
  assert.match(r1.checks.find((c) => !c.ok)?.detail ?? '', /is not the root pubkey/)

  const tooEarly = finalizeEvent(withTeeRoot({ kind: 1, created_at: notBefore - 10, content: 'x', tags: [] }, root), sk)
  assert.equal((await verifyTeeRoot(tooEarly, trust())).reason, 'carrier')
  const tooLate = finalizeEvent(withTeeRoot({ kind: 1, created_at: notAfter + 10, content: 'x', tags: [] }, root), sk)
  assert.equal((await verifyTeeRoot(tooLate, trust())).reason, 'carrier')

  const none = finalizeEvent({ kind: 1, created_at: now, content: 'x', tags: [] }, sk)
  assert.equal((await verifyTeeRoot(none, trust())).reason, 'carrier')
  const broken = finalizeEvent({ kind: 1, created_at: now, content: 'x', tags: [[TEE_ROOT_TAG, '{not json']] }, sk)
  assert.equal((await verifyTeeRoot(broken, trust())).reason, 'carrier')
  const two = finalizeEvent({ kind: 1, created_at: now, content: 'x', tags: [[TEE_ROOT_TAG, JSON.stringify(root)], [TEE_ROOT_TAG, JSON.stringify(root)]] }, sk)
  assert.equal((await verifyTeeRoot(two, trust())).reason, 'carrier')
  const tampered = { ...note, content: 'changed' }
  assert.equal((await verifyTeeRoot(tampered, trust())).reason, 'carrier')
  // a carrier whose root is invalid reports the root's reason
  const prodOnly = await verifyTeeRoot(note, { root: sim.rootDer(), anyPcrs: true })
  assert.equal(prodOnly.reason, 't')
})

test('a NIP-17 rumor is checked against the seal signer instead of a signature', async () => {
  const { event: root } = await rootEvent()
  const now = Math.floor(Date.now() / 1000)
  const rumor = { ...withTeeRoot({ kind: 14, created_at: now, content: 'pong', tags: [['p', 'ab'.repeat(32)]] }, root), pubkey }
  const withId = { ...rumor, id: getEventHash(rumor) }
  const ok = await verifyTeeRoot(withId, trust({ sealSigner: pubkey } as VerifyOptions))
  assert.equal(ok.valid, true, JSON.stringify(ok.checks.filter((c) => !c.ok)))
  const otherSigner = getPublicKey(generateSecretKey())
  assert.equal((await verifyTeeRoot(withId, { ...trust(), sealSigner: otherSigner })).reason, 'carrier')
  assert.equal((await verifyTeeRoot({ ...withId, id: 'ff'.repeat(32) }, { ...trust(), sealSigner: pubkey })).reason, 'carrier')
  // without the option an unsigned rumor is not a valid carrier
  assert.equal((await verifyTeeRoot(withId, trust())).reason, 'carrier')
})

test('the tee_root memo: a repeated root is looked up, options and time still apply', async () => {
  clearTeeRootMemo()
  const { event: root, notAfter } = await rootEvent()
  const now = Math.floor(Date.now() / 1000)
  const notes = [0, 1, 2].map((i) => finalizeEvent(withTeeRoot({ kind: 1, created_at: now, content: `note ${i}`, tags: [] }, root), sk))
  for (const n of notes) assert.equal((await verifyTeeRoot(n, trust())).valid, true)
  assert.equal(teeRootMemoStats().hits, 2)
  // other options are another key: no hit, and the verdict is their own
  const before = teeRootMemoStats().hits
  assert.equal((await verifyTeeRoot(notes[0], { root: sim.rootDer(), expect: 'dev' })).reason, 'pcrs')
  assert.equal(teeRootMemoStats().hits, before)
  // past the root's expiration the memo does not answer
  const late = await verifyTeeRoot(notes[0], trust({ now: notAfter + 1 }))
  assert.equal(late.valid, false)
  assert.equal(teeRootMemoStats().hits, before)
  // a caller that edits its result changes nothing for the next one
  const first = await verifyTeeRoot(notes[1], trust())
  const pristine = JSON.stringify(first)
  first.checks.forEach((c) => (c.ok = false))
  first.attestation!.pcrs['0'] = '00'.repeat(48)
  first.event!.tags.length = 0
  const again = await verifyTeeRoot(notes[1], trust())
  assert.equal(teeRootMemoStats().hits, before + 2, 'both answered by the memo')
  assert.equal(JSON.stringify(again), pristine)
  // failures are never memoized
  clearTeeRootMemo()
  await verifyTeeRoot(notes[0], { root: sim.rootDer(), anyPcrs: true })
  assert.equal(teeRootMemoStats().size, 0)
})

test('the tee_root memo: an empty publicKey, nonce or userData is not "not given", cold or warm, and options are checked before the lookup', async () => {
  clearTeeRootMemo()
  const { event: root } = await rootEvent()
  const note = finalizeEvent(withTeeRoot({ kind: 1, created_at: Math.floor(Date.now() / 1000), content: 'x', tags: [] }, root), sk)
  const empties: Array<[string, VerifyOptions]> = []
  for (const name of ['publicKey', 'nonce', 'userData'] as const) {
    empties.push([`${name} ''`, trust({ [name]: '' })], [`${name} bytes(0)`, trust({ [name]: new Uint8Array(0) })])
  }
  // cold: nothing memoized yet
  const cold = new Map<string, string | null | undefined>()
  for (const [label, options] of empties) {
    const r = await verifyTeeRoot(note, options)
    assert.equal(r.valid, false, `cold ${label}`)
    cold.set(label, r.reason)
  }
  assert.equal(teeRootMemoStats().size, 0, 'no failure memoized')
  // warm: the same carrier verified without them, then the same calls again
  assert.equal((await verifyTeeRoot(note, trust())).valid, true)
  const hits = teeRootMemoStats().hits
  for (const [label, options] of empties) {
    const r = await verifyTeeRoot(note, options)
    assert.equal(r.valid, false, `warm ${label}`)
    assert.equal(r.reason, cold.get(label), `warm ${label}: the cold verdict`)
  }
  assert.equal(teeRootMemoStats().hits, hits, 'none answered by the memo')
  // a root of the wrong type is refused on a hit as on a miss
  const badRoots: unknown[] = [123, true, {}, [], 'not a certificate', new Uint8Array(0), null]
  for (const bad of badRoots) {
    const r = await verifyTeeRoot(note, { ...trust(), root: bad } as unknown as VerifyOptions)
    assert.equal(r.reason, 'input', `root ${JSON.stringify(bad)} on a hit`)
    clearTeeRootMemo()
    const c = await verifyTeeRoot(note, { ...trust(), root: bad } as unknown as VerifyOptions)
    assert.equal(c.reason, 'input', `root ${JSON.stringify(bad)} cold`)
    assert.equal((await verifyTeeRoot(note, trust())).valid, true)
  }
  // the same options as bytes or as hex, any case, are one key (one verdict, memoized once)
  const pk = getPublicKey(sk)
  clearTeeRootMemo()
  for (const publicKey of [pk, pk.toUpperCase(), hexToBytes(pk)]) assert.equal((await verifyTeeRoot(note, trust({ publicKey }))).valid, true)
  assert.equal(teeRootMemoStats().size, 1)
  assert.equal(teeRootMemoStats().hits, 2)
})

test('bad input of any type gives an input result, never a throw', async () => {
  for (const value of [null, undefined, 42, 'event', [], {}, { kind: ROOT_KIND }, { tags: 'x' }]) {
    const r1 = await verifyRootEvent(value)
    assert.equal(r1.valid, false)
    assert.equal(r1.reason, 'input')
    const r2 = await verifyTeeRoot(value)
    assert.equal(r2.reason, 'input')
  }
  const { event } = await rootEvent()
  assert.equal((await verifyRootEvent(event, { ...trust(), now: Number.NaN })).reason, 'input')
  assert.equal((await verifyTeeRoot(event, { ...trust(), sealSigner: 5 as unknown as string })).reason, 'input')
})

test('options of the wrong type (null, a number) give an input result from both entry points, never a throw', async () => {
  clearTeeRootMemo()
  const { event: root } = await rootEvent()
  const note = finalizeEvent(withTeeRoot({ kind: 1, created_at: Math.floor(Date.now() / 1000), content: 'x', tags: [] }, root), sk)
  const bad: Record<string, unknown>[] = [
    { publicKey: null },
    { nonce: 7 },
    { userData: {} },
    { expectedPcrs: null },
    { expectedPcrs: { 0: null } },
    { root: 123 },
    { anyPcrs: 'yes' },
  ]
  for (const extra of bad) {
    const options = { ...trust(), ...extra } as VerifyOptions
    const r1 = await verifyRootEvent(root, options)
    assert.equal(r1.reason, 'input', `root event ${JSON.stringify(extra)}`)
    const r2 = await verifyTeeRoot(note, options)
    assert.equal(r2.reason, 'input', `carrier ${JSON.stringify(extra)}`)
  }
  // a malformed option never reaches a verdict memoized under the well-formed options
  assert.equal((await verifyTeeRoot(note, trust())).valid, true)
  assert.equal((await verifyTeeRoot(note, { ...trust(), root: 123 } as unknown as VerifyOptions)).reason, 'input')
  // null options mean the defaults, as for verifyAttestation: expect prod, the AWS root
  for (const result of [await verifyRootEvent(root, null), await verifyTeeRoot(note, null)]) {
    assert.equal(result.reason, 't')
    assert.equal(result.checks.find((c) => c.id === 'root')?.ok, false)
  }
})

test('a carrier whose created_at is no date, or a root whose content is oversized, is a verdict, not a throw', async () => {
  const { event: root } = await rootEvent()
  for (const created_at of [1e20, -1e20, Number.MAX_VALUE]) {
    const note = finalizeEvent(withTeeRoot({ kind: 1, created_at, content: 'x', tags: [] }, root), sk)
    const result = await verifyTeeRoot(note, trust())
    assert.equal(result.reason, 'carrier', String(created_at))
    assert.match(result.checks.find((c) => !c.ok)?.detail ?? '', /not a date/)
  }
  const huge = finalizeEvent({ ...buildRootEvent({ attestation: new Uint8Array(1), t: 'dev', expiration: 2 }), content: 'A'.repeat(4_000_000) }, sk)
  const r = await verifyRootEvent(huge, trust())
  assert.equal(r.reason, 'input')
  assert.match(r.checks.find((c) => !c.ok)?.detail ?? '', /content is 4000000 characters/)
})

test('a simulator document checked against the AWS root: the root names what it is, and what depends on it is not checked', async () => {
  const { event: root } = await rootEvent()
  const note = finalizeEvent(withTeeRoot({ kind: 1, created_at: Math.floor(Date.now() / 1000), content: 'x', tags: [] }, root), sk)
  const result = await verifyTeeRoot(note, { anyPcrs: true, expect: 'dev' })
  assert.equal(result.valid, false)
  assert.equal(result.reason, 'root')
  const failedRoot = result.checks.find((c) => c.id === 'root')
  assert.match(failedRoot?.detail ?? '', /^cabundle\[0\] \(CN=nec01 simulated NSM root — NOT AWS\) is not byte-identical to the pinned AWS Nitro root G1/)
  const skipped = result.checks.filter((c) => isNotChecked(c))
  assert.deepEqual(skipped.map((c) => c.id), ['debug', 'pcrs', 'pubkey', 'expiration', 'carrier'])
  for (const c of skipped) {
    assert.equal(c.ok, false)
    assert.match(c.detail, /^not checked: the attestation did not verify/)
  }
  // an expired root is still reported as expired: that check ran without the attestation
  const { event: old } = await rootEvent({ expirationDelta: -1e6 })
  const expired = await verifyRootEvent(old, { anyPcrs: true, expect: 'dev', now: Math.floor(Date.now() / 1000) + 1 })
  assert.match(expired.checks.find((c) => c.id === 'expiration')?.detail ?? '', /^expired at/)
})
