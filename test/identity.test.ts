// The service identity on tiny-secp256k1 and node:crypto must be indistinguishable from
// nostr-tools (noble) on the wire: every ciphertext, signature and gift wrap checked with
// nostr-tools in both directions, and the key never visible from outside the closure.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { inspect } from 'node:util'
import { schnorr } from '@noble/curves/secp256k1.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import * as nip04 from 'nostr-tools/nip04'
import * as nip44 from 'nostr-tools/nip44'
import * as nip59 from 'nostr-tools/nip59'
import { nsecEncode } from 'nostr-tools/nip19'
import { finalizeEvent, generateSecretKey, getEventHash, getPublicKey, verifyEvent as pureVerifyEvent } from 'nostr-tools/pure'
import type { NostrEvent } from '../nec01/types.js'
import { GIFT_WRAP_BACKDATE_SEC } from '../nec01/windows.js'
import { eventHash, keyAgreement, nip04Decrypt, nip44ConversationKey, verifyEvent } from '../src/crypto.js'
import { createIdentity, identityFromSecret } from '../src/service/identity.js'

const nowSec = (): number => Math.floor(Date.now() / 1000)
/** a copy as off the wire: no object identity or symbol shared with the original */
const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

function keypair(): { sk: Uint8Array; pk: string } {
  const sk = generateSecretKey()
  return { sk, pk: getPublicKey(sk) }
}

function assertBackdated(createdAt: number, what: string): void {
  const now = nowSec()
  assert.ok(createdAt <= now && createdAt >= now - GIFT_WRAP_BACKDATE_SEC - 1, `${what} created_at ${createdAt} is not within two days back of ${now}`)
}

describe('identity: keys and signatures', () => {
  it('derives the same public key as nostr-tools, once', () => {
    const { sk, pk } = keypair()
    const id = identityFromSecret(sk)
    assert.equal(id.pubkey, pk)
    assert.match(id.npub, /^npub1/)
  })

  it('signs events that noble and nostr-tools verify, without touching the template', () => {
    const { sk, pk } = keypair()
    const id = identityFromSecret(sk)
    const template = { kind: 1, created_at: nowSec(), tags: [['t', 'x']], content: 'hello "world" \u00e9 \n' }
    const before = JSON.stringify(template)
    const event = id.sign(template)
    assert.equal(JSON.stringify(template), before)
    assert.equal(event.pubkey, pk)
    assert.equal(event.id, getEventHash(event))
    assert.ok(schnorr.verify(hexToBytes(event.sig), hexToBytes(event.id), hexToBytes(pk)))
    assert.ok(pureVerifyEvent(copy(event)))
  })

  it('draws fresh BIP-340 auxiliary randomness: the same event signed twice gets two valid signatures', () => {
    const id = identityFromSecret(generateSecretKey())
    const template = { kind: 1, created_at: nowSec(), tags: [], content: 'same' }
    const a = id.sign(template)
    const b = id.sign(template)
    assert.equal(a.id, b.id)
    assert.notEqual(a.sig, b.sig)
    assert.ok(pureVerifyEvent(copy(a)) && pureVerifyEvent(copy(b)))
  })

  it('createIdentity redraws an out-of-range scalar and never accepts a short draw', async () => {
    const good = generateSecretKey()
    const draws = [new Uint8Array(32), new Uint8Array(32).fill(0xff), new Uint8Array(31), good]
    const id = await createIdentity(async () => draws.shift() ?? new Uint8Array(0))
    assert.equal(id.pubkey, getPublicKey(good))
    await assert.rejects(createIdentity(async () => new Uint8Array(32)), /could not draw/)
  })

  it('never shows the secret key through JSON or util.inspect', () => {
    const { sk } = keypair()
    const id = identityFromSecret(sk)
    const hex = bytesToHex(sk)
    const nsec = nsecEncode(sk)
    const views = [JSON.stringify(id), inspect(id), inspect(id, { showHidden: true, depth: Infinity, getters: true }), String(Object.keys(id))]
    for (const view of views) {
      assert.ok(!view.includes(hex), 'hex secret visible')
      assert.ok(!view.includes(nsec), 'nsec visible')
      assert.ok(!view.includes(Buffer.from(sk).toString('base64')), 'base64 secret visible')
    }
    assert.deepEqual(JSON.parse(JSON.stringify(id)), { pubkey: id.pubkey })
    for (const value of Object.values(id)) assert.ok(!(value instanceof Uint8Array), 'a byte array is exposed as a property')
  })
})

describe('identity: NIP-44 and NIP-04 against nostr-tools', () => {
  it('computes conversation keys byte-equal to nostr-tools getConversationKey', () => {
    const { sk } = keypair()
    const agreement = keyAgreement(sk)
    for (let i = 0; i < 16; i++) {
      const peer = keypair().pk
      assert.deepEqual(nip44ConversationKey(agreement.sharedX(peer)), nip44.v2.utils.getConversationKey(sk, peer))
    }
  })

  it('NIP-44 payloads open both ways, and again from the cache', () => {
    const service = keypair()
    const peer = keypair()
    const id = identityFromSecret(service.sk)
    const peerKey = nip44.v2.utils.getConversationKey(peer.sk, service.pk)
    for (let round = 0; round < 2; round++) {
      assert.equal(nip44.v2.decrypt(id.nip44Encrypt(peer.pk, `to peer ${round}`), peerKey), `to peer ${round}`)
      assert.equal(id.nip44Decrypt(peer.pk, nip44.v2.encrypt(`to service ${round}`, peerKey)), `to service ${round}`)
    }
    assert.throws(() => id.nip44Decrypt(keypair().pk, nip44.v2.encrypt('x', peerKey)))
  })

  it('NIP-04 ciphertexts open both ways, and again from the cache', () => {
    const service = keypair()
    const peer = keypair()
    const id = identityFromSecret(service.sk)
    for (const text of ['ping', '', 'ünïcødé ✓ '.repeat(20)]) {
      assert.equal(nip04.decrypt(peer.sk, service.pk, id.nip04Encrypt(peer.pk, text)), text)
      assert.equal(id.nip04Decrypt(peer.pk, nip04.encrypt(peer.sk, service.pk, text)), text)
    }
  })

  it('NIP-04 refuses malformed payloads instead of decrypting junk', () => {
    const { sk, pk } = keypair()
    const id = identityFromSecret(sk)
    const peer = keypair()
    const good = nip04.encrypt(peer.sk, pk, 'ping')
    const [ct, iv] = good.split('?iv=') as [string, string]
    for (const bad of ['', ct, `${ct}?iv=`, `!!not*base64~~?iv=@@@`, `${ct}?iv=${iv}?iv=${iv}`, `${ct}?iv=${Buffer.alloc(8).toString('base64')}`, `${ct.slice(4)}?iv=${iv}`, `${ct}x?iv=${iv}`]) {
      assert.throws(() => id.nip04Decrypt(peer.pk, bad), Error, JSON.stringify(bad))
    }
    // wrong key: a padding error, or (rarely) bytes that are not UTF-8, never the plaintext
    const stranger = keypair()
    let plain: string | null = null
    try {
      plain = nip04Decrypt(keyAgreement(stranger.sk).sharedX(peer.pk), good)
    } catch {
      plain = null
    }
    assert.notEqual(plain, 'ping')
  })

  it('refuses a peer key that is not 64 lowercase hex digits or not on the curve', () => {
    const id = identityFromSecret(generateSecretKey())
    const pk = keypair().pk
    for (const bad of [pk.slice(2), pk.toUpperCase(), `${pk.slice(0, 62)}zz`, 'ff'.repeat(32)]) {
      assert.throws(() => id.nip44Encrypt(bad, 'x'), Error, bad)
      assert.throws(() => id.nip04Encrypt(bad, 'x'), Error, bad)
    }
  })
})

describe('identity: NIP-59 against nostr-tools', () => {
  it('nostr-tools unwrapEvent reads what giftWrap makes', () => {
    const service = keypair()
    const peer = keypair()
    const id = identityFromSecret(service.sk)
    const created_at = nowSec()
    const { wrap, rumor } = id.giftWrap({ kind: 14, created_at, tags: [['p', peer.pk]], content: 'pong' }, peer.pk)
    assert.equal(wrap.kind, 1059)
    assert.deepEqual(wrap.tags, [['p', peer.pk]])
    assert.notEqual(wrap.pubkey, service.pk)
    assert.ok(pureVerifyEvent(copy(wrap)))
    assertBackdated(wrap.created_at, 'wrap')

    const opened = nip59.unwrapEvent(copy(wrap), peer.sk)
    assert.deepEqual(opened, rumor)
    assert.equal(rumor.pubkey, service.pk)
    assert.equal(rumor.created_at, created_at)
    assert.equal(rumor.id, getEventHash(rumor))

    const seal = JSON.parse(nip44.v2.decrypt(wrap.content, nip44.v2.utils.getConversationKey(peer.sk, wrap.pubkey))) as NostrEvent
    assert.equal(seal.kind, 13)
    assert.equal(seal.pubkey, service.pk)
    assert.deepEqual(seal.tags, [])
    assert.ok(schnorr.verify(hexToBytes(seal.sig), hexToBytes(seal.id), hexToBytes(service.pk)))
    assertBackdated(seal.created_at, 'seal')
  })

  it('each wrap has its own one-time key', () => {
    const id = identityFromSecret(generateSecretKey())
    const peer = keypair().pk
    const keys = new Set(Array.from({ length: 4 }, () => id.giftWrap({ kind: 14, created_at: nowSec(), tags: [], content: 'x' }, peer).wrap.pubkey))
    assert.equal(keys.size, 4)
  })

  it('unwrap reads what nostr-tools wrapEvent makes, and twice from one sender', () => {
    const service = keypair()
    const peer = keypair()
    const id = identityFromSecret(service.sk)
    for (const content of ['ping', 'again']) {
      const wrap = nip59.wrapEvent({ kind: 14, created_at: nowSec(), tags: [['p', service.pk]], content }, peer.sk, service.pk)
      const rumor = id.unwrap(copy(wrap) as NostrEvent)
      assert.equal(rumor.content, content)
      assert.equal(rumor.pubkey, peer.pk)
      assert.equal(rumor.id, getEventHash(rumor))
    }
  })

  it('two identities talk NIP-17 both ways', () => {
    const a = identityFromSecret(generateSecretKey())
    const b = identityFromSecret(generateSecretKey())
    const { wrap, rumor } = a.giftWrap({ kind: 14, created_at: nowSec(), tags: [['p', b.pubkey]], content: 'hi b' }, b.pubkey)
    assert.deepEqual(b.unwrap(copy(wrap)), rumor)
    assert.throws(() => a.unwrap(copy(wrap)), 'a wrap to b is not readable by a')
  })

  describe('unwrap refuses', () => {
    const service = keypair()
    const peer = keypair()
    const id = identityFromSecret(service.sk)
    const ck = (sk: Uint8Array, pk: string): Uint8Array => nip44.v2.utils.getConversationKey(sk, pk)

    /** NIP-59 by hand, each layer open to mistakes */
    function wrapSeal(seal: unknown, to = service.pk): NostrEvent {
      const oneTime = generateSecretKey()
      return finalizeEvent({ kind: 1059, created_at: nowSec(), tags: [['p', to]], content: nip44.v2.encrypt(JSON.stringify(seal), ck(oneTime, to)) }, oneTime)
    }
    function seal(rumor: object, sk = peer.sk, kind = 13): NostrEvent {
      return finalizeEvent({ kind, created_at: nowSec(), tags: [], content: nip44.v2.encrypt(JSON.stringify(rumor), ck(sk, service.pk)) }, sk)
    }
    const rumor = (pubkey = peer.pk): object => {
      const r = { pubkey, created_at: nowSec(), kind: 14, tags: [['p', service.pk]], content: 'ping' }
      return { ...r, id: getEventHash(r) }
    }

    const cases: Array<[string, () => NostrEvent, RegExp]> = [
      ['a wrap of another kind', () => ({ ...wrapSeal(seal(rumor())), kind: 4 }), /wrap kind/],
      ['a wrap whose signature is broken', () => ({ ...wrapSeal(seal(rumor())), created_at: nowSec() - 5 }), /gift wrap signature/],
      ['a wrap for someone else', () => wrapSeal(seal(rumor()), keypair().pk), /./],
      ['a seal of another kind', () => wrapSeal(seal(rumor(), peer.sk, 1)), /seal kind/],
      ['a seal whose signature is broken', () => wrapSeal({ ...seal(rumor()), content: seal(rumor()).content }), /seal signature/],
      ['a seal that is not an object', () => wrapSeal('seal'), /not a JSON object/],
      ['a rumor from someone other than the seal signer', () => wrapSeal(seal(rumor(keypair().pk))), /rumor pubkey/],
      ['a rumor without an id', () => wrapSeal(seal({ pubkey: peer.pk, created_at: nowSec(), kind: 14, tags: [], content: 'x' })), /rumor is not/],
    ]
    for (const [name, make, error] of cases) {
      it(name, () => {
        assert.throws(() => id.unwrap(copy(make())), error)
      })
    }
  })
})

describe('verifyEvent (strict checks before the library)', () => {
  const { sk } = keypair()
  const event = (): NostrEvent => finalizeEvent({ kind: 1, created_at: nowSec(), tags: [], content: `note ${Math.random()}` }, sk)

  it('accepts a valid event, fresh and again from its cache', () => {
    const e = event()
    assert.ok(verifyEvent(copy(e)))
    assert.ok(verifyEvent(copy(e)))
  })

  it('refuses a truncated, upper-case or non-hex id and a short signature', () => {
    // Buffer.from(hex) stops quietly at the first bad digit, and WASM libraries have parsed
    // hex leniently too; each is a fresh event, so no cache helps.
    const mangled: Array<(e: NostrEvent) => NostrEvent> = [
      (e) => ({ ...e, id: e.id.slice(0, 62) }),
      (e) => ({ ...e, id: e.id.toUpperCase() }),
      (e) => ({ ...e, id: `${e.id.slice(0, 62)}${e.id.slice(63)}g` }),
      (e) => ({ ...e, sig: e.sig.slice(0, 126) }),
    ]
    for (const mangle of mangled) {
      const bad = mangle(event())
      assert.equal(verifyEvent(bad), false, JSON.stringify(bad).slice(0, 120))
    }
  })

  it('is not fooled by a tampered copy of an event it has verified', () => {
    const e = event()
    assert.ok(verifyEvent(copy(e)))
    assert.equal(verifyEvent({ ...copy(e), content: 'changed' }), false)
    assert.equal(verifyEvent({ ...copy(e), pubkey: keypair().pk }), false)
    assert.equal(verifyEvent({ ...copy(e), created_at: e.created_at + 1 }), false)
  })

  it('refuses anything that is not an event', () => {
    for (const bad of [null, 'event', 42, [], {}, { ...event(), tags: [[1]] }, { ...event(), kind: '1' }]) assert.equal(verifyEvent(bad), false)
  })

  it('verifies a 1.2 MB event (hashed outside the WASM heap) and still refuses a forged one', () => {
    const big = finalizeEvent({ kind: 1, created_at: nowSec(), tags: [], content: 'x'.repeat(1_200_000) }, sk)
    assert.ok(verifyEvent(copy(big)))
    const forged = { ...copy(big), content: `${big.content}y` }
    assert.equal(verifyEvent(forged), false)
    assert.ok(verifyEvent(copy(event())), 'still verifies after refusing the large one')
  })

  it('eventHash matches nostr-tools getEventHash', () => {
    const e = event()
    assert.equal(eventHash(e), getEventHash(e))
  })
})
