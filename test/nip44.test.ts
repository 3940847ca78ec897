// The service's NIP-44 v2 (src/crypto.ts, on OpenSSL) against the NIP's own test vectors
// (test/vectors/nip44.json, as nostr-tools ships them) and against nostr-tools itself; and
// both ECDH backends (libsecp256k1's native secp256k1_ecdh and OpenSSL's fallback) against
// the vectors and nostr-tools; the one-time wrap key's ECDH against the service key's.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as nip44 from 'nostr-tools/nip44'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { ecdhBackend, keyAgreement, nip44ConversationKey, nip44Decrypt, nip44Encrypt, nip44PaddedLength, oneTimeKey } from '../src/crypto.js'

interface Vectors {
  valid: {
    get_conversation_key: { sec1: string; pub2: string; conversation_key: string }[]
    calc_padded_len: [number, number][]
    encrypt_decrypt: { sec1: string; sec2: string; conversation_key: string; nonce: string; plaintext: string; payload: string }[]
  }
  invalid: {
    encrypt_msg_lengths: number[]
    decrypt_msg_lengths: number[]
    get_conversation_key: { sec1: string; pub2: string; note: string }[]
    decrypt: { conversation_key: string; nonce: string; plaintext: string; payload: string; note: string }[]
  }
}

const vectors = (JSON.parse(readFileSync(join(process.cwd(), 'test', 'vectors', 'nip44.json'), 'utf8')) as { v2: Vectors }).v2
const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const conversation = (sec: string, pub: string): Uint8Array => nip44ConversationKey(keyAgreement(hex(sec)).sharedX(pub))

describe('NIP-44 v2 on OpenSSL: the NIP test vectors', () => {
  it('conversation keys', () => {
    for (const v of vectors.valid.get_conversation_key) assert.equal(toHex(conversation(v.sec1, v.pub2)), v.conversation_key, v.sec1)
  })

  it('padded lengths', () => {
    for (const [length, padded] of vectors.valid.calc_padded_len) assert.equal(nip44PaddedLength(length), padded, String(length))
  })

  it('encrypts byte for byte, decrypts, and nostr-tools opens what it makes', () => {
    for (const v of vectors.valid.encrypt_decrypt) {
      const key = conversation(v.sec1, getPublicKey(hex(v.sec2)))
      assert.equal(toHex(key), v.conversation_key)
      assert.equal(nip44Encrypt(key, v.plaintext, hex(v.nonce)), v.payload, v.plaintext)
      assert.equal(nip44Decrypt(key, v.payload), v.plaintext)
      assert.equal(nip44.v2.decrypt(nip44Encrypt(key, v.plaintext), key), v.plaintext)
    }
  })

  it('refuses every invalid payload, key and length', () => {
    for (const v of vectors.invalid.decrypt) assert.throws(() => nip44Decrypt(hex(v.conversation_key), v.payload), Error, v.note)
    for (const v of vectors.invalid.get_conversation_key) assert.throws(() => conversation(v.sec1, v.pub2), Error, v.note)
    const key = hex(vectors.valid.encrypt_decrypt[0]!.conversation_key)
    for (const n of vectors.invalid.encrypt_msg_lengths) assert.throws(() => nip44Encrypt(key, 'a'.repeat(n)), Error, String(n))
    for (const n of vectors.invalid.decrypt_msg_lengths) assert.throws(() => nip44Decrypt(key, 'a'.repeat(n)), Error, String(n))
  })
})

describe('NIP-44 v2 on OpenSSL: against nostr-tools', () => {
  it('opens nostr-tools payloads of every size class up to the 65,535-byte limit, and back', () => {
    const key = nip44.v2.utils.getConversationKey(generateSecretKey(), getPublicKey(generateSecretKey()))
    for (const length of [1, 31, 32, 33, 255, 256, 257, 7000, 10_000, 65_535]) {
      const text = 'ü'.repeat(length >> 1) + 'a'.repeat(length & 1)
      assert.equal(nip44Decrypt(key, nip44.v2.encrypt(text, key)), text)
      assert.equal(nip44.v2.decrypt(nip44Encrypt(key, text), key), text)
    }
  })

  it('refuses a payload with a flipped bit anywhere, or a junk character that Node would skip', () => {
    const key = nip44.v2.utils.getConversationKey(generateSecretKey(), getPublicKey(generateSecretKey()))
    const good = nip44Encrypt(key, 'ping')
    const bytes = Buffer.from(good, 'base64')
    for (const at of [0, 1, 40, bytes.length - 1]) {
      const bad = Buffer.from(bytes)
      bad[at]! ^= 1
      assert.throws(() => nip44Decrypt(key, bad.toString('base64')), Error, `bit flipped at ${at}`)
    }
    assert.throws(() => nip44Decrypt(key, `${good.slice(0, 50)}*${good.slice(51)}`))
    assert.throws(() => nip44Decrypt(key, `${good.slice(0, 50)}\n${good.slice(50, -1)}`))
  })
})

describe('one-time wrap keys', () => {
  it('agree with the service key ECDH and with nostr-tools, and refuse bad peers', () => {
    for (let i = 0; i < 16; i++) {
      const once = oneTimeKey()
      const peerSecret = generateSecretKey()
      const peer = getPublicKey(peerSecret)
      assert.equal(once.pubkey, getPublicKey(once.secret))
      const x = once.agreement.sharedX(peer)
      assert.equal(toHex(x), toHex(keyAgreement(once.secret).sharedX(peer)))
      assert.equal(toHex(nip44ConversationKey(x)), toHex(nip44.v2.utils.getConversationKey(peerSecret, once.pubkey)))
    }
    const once = oneTimeKey()
    const pk = getPublicKey(generateSecretKey())
    const offCurve = vectors.invalid.get_conversation_key.filter((v) => v.note.startsWith('pub2 is invalid')).map((v) => v.pub2)
    for (const bad of [pk.slice(2), pk.toUpperCase(), `${pk.slice(0, 62)}zz`, ...offCurve]) {
      assert.throws(() => once.agreement.sharedX(bad), Error, bad)
    }
  })
})

describe('ECDH backends: native libsecp256k1 and the OpenSSL fallback', () => {
  it('the native addon loads here (the secp256k1 package ships a linux-x64 prebuild)', { skip: process.platform !== 'linux' || process.arch !== 'x64' }, () => {
    assert.deepEqual(ecdhBackend(), { name: 'libsecp256k1', reason: null })
  })

  for (const backend of ['libsecp256k1', 'openssl'] as const) {
    it(`${backend}: the NIP-44 conversation-key vectors, random keys against nostr-tools, and every invalid vector refused`, () => {
      for (const v of vectors.valid.get_conversation_key) {
        assert.equal(toHex(nip44ConversationKey(keyAgreement(hex(v.sec1), backend).sharedX(v.pub2))), v.conversation_key, v.sec1)
      }
      for (let i = 0; i < 32; i++) {
        const a = generateSecretKey()
        const b = generateSecretKey()
        const x = keyAgreement(a, backend).sharedX(getPublicKey(b))
        assert.equal(toHex(nip44ConversationKey(x)), toHex(nip44.v2.utils.getConversationKey(b, getPublicKey(a))))
      }
      for (const v of vectors.invalid.get_conversation_key) {
        assert.throws(() => keyAgreement(hex(v.sec1), backend).sharedX(v.pub2), Error, v.note)
      }
      const agreement = keyAgreement(generateSecretKey(), backend)
      const pk = getPublicKey(generateSecretKey())
      for (const bad of [pk.slice(2), pk.toUpperCase(), `${pk.slice(0, 62)}zz`, `${pk}00`]) {
        assert.throws(() => agreement.sharedX(bad), /invalid public key/, bad)
      }
    })
  }
})
