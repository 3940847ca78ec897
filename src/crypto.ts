// The service's secp256k1, NIP-04 and NIP-44 primitives, on the fastest libraries measured
// (bench/libs.ts): BIP-340 Schnorr signing, verification and public keys through
// tiny-secp256k1 (libsecp256k1 compiled to WASM, with a raw hash-in API); ECDH through
// libsecp256k1's native secp256k1_ecdh (src/ecdh-native.ts), constant time in the scalar;
// event ids, AES, ChaCha20 and HMAC through node:crypto (OpenSSL). Where the native addon did
// not load, ECDH with the service's key falls back to OpenSSL (constant time too, ~13×
// slower), never to tiny-secp256k1: that offers ECDH only as libsecp256k1's public-key
// tweak, which the release it bundles computes in time that depends on the scalar, and that
// scalar would be the service's long-term key. A one-time NIP-59 wrap key is used for one
// multiplication and dropped, so there the fallback may take the tweak.
// nec01/ stays on noble: it must run in browsers without a WASM init step. No secret is kept
// here: callers pass theirs in, and the ECDH objects live in the caller's closure.
import { createCipheriv, createDecipheriv, createECDH, createHash, createHmac, randomBytes, timingSafeEqual, type ECDH } from 'node:crypto'
import { serializeEvent, validateEvent, type EventTemplate } from 'nostr-tools/pure'
import * as secp from 'tiny-secp256k1'
import { createLru } from '../nec01/lru.js'
import { nativeEcdh, nativeEcdhError } from './ecdh-native.js'
import type { NostrEvent } from '../nec01/types.js'

/** NIP-44 v2: conversation key = HKDF-extract(salt "nip44-v2", shared x) = HMAC-SHA256(salt, x). */
const NIP44_SALT = 'nip44-v2'
/** x-only keys are lifted to the point with even y (BIP-340), in SEC1 compressed form */
const EVEN_Y_PREFIX = '02'
const NIP04_IV_BYTES = 16
const AES_BLOCK_BYTES = 16
/** BIP-340 auxiliary randomness, fresh for every signature */
const AUX_RAND_BYTES = 32
/** Verified (id, sig) pairs, so the pool, the inbox and unwrap pay for one Schnorr check (all within one delivery, so a short memory). */
const VERIFIED_LIMIT = 1024

const HEX32 = /^[0-9a-f]{64}$/
const HEX64 = /^[0-9a-f]{128}$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** A key as events carry it: 64 lowercase hex digits. */
function isPubkeyHex(value: unknown): value is string {
  return typeof value === 'string' && HEX32.test(value)
}

/** NIP-01 id: sha256 of the canonical serialisation, through OpenSSL (noble's JS sha256 is slower). */
export function eventHash(event: Omit<NostrEvent, 'id' | 'sig'>): string {
  return createHash('sha256').update(serializeEvent(event)).digest('hex')
}

const verified = createLru<string, true>(VERIFIED_LIMIT)

/**
 * NIP-01 verification (id and BIP-340 signature), false on anything malformed. Buffer.from
 * stops quietly at the first bad hex digit, so the shape is checked strictly first. The id
 * is always recomputed: it binds every other field, so a pair already verified (the cache)
 * cannot vouch for a tampered copy.
 */
export function verifyEvent(event: unknown): event is NostrEvent {
  if (!hasSignedShape(event)) return false
  if (eventHash(event) !== event.id) return false
  const key = event.id + event.sig
  if (verified.has(key)) return true
  let ok = false
  try {
    ok = secp.verifySchnorr(Buffer.from(event.id, 'hex'), Buffer.from(event.pubkey, 'hex'), Buffer.from(event.sig, 'hex'))
  } catch {
    // a pubkey that is not an x coordinate on the curve
    ok = false
  }
  if (!ok) return false
  verified.set(key, true)
  return true
}

/** NIP-01 fields and types, with id and sig as lowercase hex of the right length */
function hasSignedShape(event: unknown): event is NostrEvent {
  if (!validateEvent(event)) return false
  const { id, sig } = event as { id?: unknown; sig?: unknown }
  return typeof id === 'string' && typeof sig === 'string' && HEX32.test(id) && HEX64.test(sig)
}

/** A secret key with its x-only public key (hex), computed once by the caller. */
export interface SigningKey {
  secret: Uint8Array
  pubkey: string
}

/** A fresh signed event (the template is not modified): pubkey, id and BIP-340 signature. */
export function signEvent(template: EventTemplate, key: SigningKey): NostrEvent {
  const unsigned = { kind: template.kind, created_at: template.created_at, tags: template.tags, content: template.content, pubkey: key.pubkey }
  const id = eventHash(unsigned)
  const sig = secp.signSchnorr(Buffer.from(id, 'hex'), key.secret, randomBytes(AUX_RAND_BYTES))
  return { ...unsigned, id, sig: Buffer.from(sig).toString('hex') }
}

/** x-only public key, hex; throws on a scalar that is zero or not below the group order */
export function publicKeyHex(secret: Uint8Array): string {
  return Buffer.from(secp.xOnlyPointFromScalar(secret)).toString('hex')
}

/** ECDH with a fixed own key. */
export interface KeyAgreement {
  /** the shared point's x coordinate (NIP-04's AES key, NIP-44's HKDF input) */
  sharedX(peer: string): Buffer
}

export type EcdhBackend = 'libsecp256k1' | 'openssl'

/** Which library computes the service's ECDH, and why when it is not the native one (for the log). */
export function ecdhBackend(): { name: EcdhBackend; reason: string | null } {
  return nativeEcdh !== null ? { name: 'libsecp256k1', reason: null } : { name: 'openssl', reason: nativeEcdhError }
}

/** The peer's x-only key as the SEC1 point with even y (BIP-340); throws on anything else. */
function evenYPoint(peer: string): Buffer {
  // Buffer.from(hex) silently stops at the first bad digit: check before decoding.
  if (!isPubkeyHex(peer)) throw new Error('invalid public key')
  return Buffer.from(EVEN_Y_PREFIX + peer, 'hex')
}

/** ECDH with `secret` on the native addon when it loaded, else OpenSSL; `backend` picks one (tests, bench). */
export function keyAgreement(secret: Uint8Array, backend: EcdhBackend = ecdhBackend().name): KeyAgreement {
  if (backend === 'libsecp256k1') {
    const native = nativeEcdh
    if (native === null) throw new Error(`libsecp256k1 ECDH is not available: ${nativeEcdhError ?? 'not loaded'}`)
    return { sharedX: (peer) => native.sharedX(evenYPoint(peer), secret) }
  }
  // OpenSSL: the scalar is loaded once, not per peer
  const ecdh: ECDH = createECDH('secp256k1')
  ecdh.setPrivateKey(secret)
  return {
    sharedX(peer) {
      try {
        return ecdh.computeSecret(evenYPoint(peer))
      } catch {
        throw new Error('invalid public key')
      }
    },
  }
}

/**
 * ECDH for a key used once (a NIP-59 wrap key). Without the native addon: libsecp256k1's
 * point multiplication in tiny-secp256k1, ~4× cheaper than OpenSSL's; its time depends on
 * the scalar, which a single multiplication with a fresh key, never repeated, gives an
 * observer no way to accumulate.
 */
function singleUseAgreement(secret: Uint8Array): KeyAgreement {
  if (nativeEcdh !== null) return keyAgreement(secret)
  return {
    sharedX(peer) {
      // throws on an x with no point on the curve
      const shared = secp.pointMultiply(evenYPoint(peer), secret, true)
      if (shared === null) throw new Error('invalid public key')
      return Buffer.from(shared.subarray(1))
    },
  }
}

/** A one-time key (NIP-59 wraps), its public key and its key agreement, from the OS CSPRNG. */
export function oneTimeKey(): SigningKey & { agreement: KeyAgreement } {
  for (;;) {
    const secret = new Uint8Array(randomBytes(32))
    // zero or ≥ n has probability ≈ 2^-128: draw again
    if (secp.isPrivate(secret)) return { secret, pubkey: publicKeyHex(secret), agreement: singleUseAgreement(secret) }
  }
}

/** NIP-44 v2 conversation key from the shared x; byte-equal to nostr-tools' getConversationKey. */
export function nip44ConversationKey(sharedX: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', NIP44_SALT).update(sharedX).digest())
}

/** NIP-04: AES-256-CBC under the shared x, "base64(ct)?iv=base64(iv)". */
export function nip04Encrypt(key: Uint8Array, text: string): string {
  const iv = randomBytes(NIP04_IV_BYTES)
  const cipher = createCipheriv('aes-256-cbc', key, iv)
  const ct = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()])
  return `${ct.toString('base64')}?iv=${iv.toString('base64')}`
}

const utf8 = new TextDecoder('utf-8')

/**
 * Throws on a malformed payload or bad padding. Node's base64 decoder skips junk, so the
 * encoding is checked first; invalid UTF-8 becomes U+FFFD (not fatal), as in nostr-tools.
 */
export function nip04Decrypt(key: Uint8Array, data: string): string {
  const parts = data.split('?iv=')
  const [ct64, iv64] = parts
  if (parts.length !== 2 || ct64 === undefined || iv64 === undefined || !BASE64.test(ct64) || !BASE64.test(iv64)) throw new Error('invalid NIP-04 payload')
  const iv = Buffer.from(iv64, 'base64')
  const ct = Buffer.from(ct64, 'base64')
  if (iv.length !== NIP04_IV_BYTES || ct.length === 0 || ct.length % AES_BLOCK_BYTES !== 0) throw new Error('invalid NIP-04 payload')
  const decipher = createDecipheriv('aes-256-cbc', key, iv)
  return utf8.decode(Buffer.concat([decipher.update(ct), decipher.final()]))
}

/** NIP-44 v2 limits: plaintext bytes, payload characters, decoded payload bytes. */
const NIP44_VERSION = 2
const NIP44_NONCE_BYTES = 32
const NIP44_MAC_BYTES = 32
const NIP44_MAX_PLAINTEXT = 65535
const NIP44_PAYLOAD_CHARS = { min: 132, max: 87472 } as const
const NIP44_DECODED_BYTES = { min: 99, max: 65603 } as const
/** HKDF-expand output: ChaCha20 key 32, ChaCha20 nonce 12, HMAC key 32. */
const NIP44_KEYS_BYTES = 76
/** OpenSSL's chacha20 IV is the 32-bit little-endian block counter (0 here) followed by the 96-bit nonce. */
const CHACHA_COUNTER_ZERO = Buffer.alloc(4)

/** NIP-44 v2 padding: 32 bytes up to 32, then steps of a power of two over 8 (at least 32). */
export function nip44PaddedLength(length: number): number {
  if (length <= 32) return 32
  const nextPower = 1 << (Math.floor(Math.log2(length - 1)) + 1)
  const chunk = nextPower <= 256 ? 32 : nextPower / 8
  return chunk * (Math.floor((length - 1) / chunk) + 1)
}

/** HKDF-expand (RFC 5869 §2.3) with SHA-256, the conversation key as PRK and the nonce as info. */
function nip44MessageKeys(conversationKey: Uint8Array, nonce: Uint8Array): { key: Buffer; iv: Buffer; hmacKey: Buffer } {
  const blocks: Buffer[] = []
  let previous = Buffer.alloc(0)
  for (let i = 1; blocks.length * 32 < NIP44_KEYS_BYTES; i++) {
    previous = createHmac('sha256', conversationKey).update(previous).update(nonce).update(Buffer.of(i)).digest()
    blocks.push(previous)
  }
  const okm = Buffer.concat(blocks)
  return { key: okm.subarray(0, 32), iv: Buffer.concat([CHACHA_COUNTER_ZERO, okm.subarray(32, 44)]), hmacKey: okm.subarray(44, NIP44_KEYS_BYTES) }
}

/**
 * NIP-44 v2 encryption on OpenSSL (ChaCha20, HMAC-SHA256, HKDF), byte-equal to nostr-tools'
 * nip44.v2.encrypt for the same nonce (test/nip44.test.ts runs the NIP's vectors). The
 * nonce parameter exists for those vectors; the service always draws a fresh one.
 */
export function nip44Encrypt(conversationKey: Uint8Array, text: string, nonce: Uint8Array = randomBytes(NIP44_NONCE_BYTES)): string {
  const plain = Buffer.from(text, 'utf8')
  if (plain.length < 1 || plain.length > NIP44_MAX_PLAINTEXT) throw new Error('invalid NIP-44 plaintext length')
  const padded = Buffer.alloc(2 + nip44PaddedLength(plain.length))
  padded.writeUInt16BE(plain.length, 0)
  plain.copy(padded, 2)
  const { key, iv, hmacKey } = nip44MessageKeys(conversationKey, nonce)
  const cipher = createCipheriv('chacha20', key, iv)
  const ciphertext = Buffer.concat([cipher.update(padded), cipher.final()])
  const mac = createHmac('sha256', hmacKey).update(nonce).update(ciphertext).digest()
  return Buffer.concat([Buffer.of(NIP44_VERSION), nonce, ciphertext, mac]).toString('base64')
}

/** Throws on a payload of the wrong size, version or encoding, a wrong MAC or bad padding. */
export function nip44Decrypt(conversationKey: Uint8Array, payload: string): string {
  if (payload.length < NIP44_PAYLOAD_CHARS.min || payload.length > NIP44_PAYLOAD_CHARS.max) throw new Error('invalid NIP-44 payload length')
  if (payload[0] === '#') throw new Error('unknown NIP-44 encryption version')
  // Node's decoder skips junk characters: the encoding is checked first
  if (!BASE64.test(payload)) throw new Error('invalid NIP-44 base64')
  const data = Buffer.from(payload, 'base64')
  if (data.length < NIP44_DECODED_BYTES.min || data.length > NIP44_DECODED_BYTES.max) throw new Error('invalid NIP-44 payload length')
  if (data[0] !== NIP44_VERSION) throw new Error(`unknown NIP-44 encryption version ${String(data[0])}`)
  const nonce = data.subarray(1, 1 + NIP44_NONCE_BYTES)
  const ciphertext = data.subarray(1 + NIP44_NONCE_BYTES, data.length - NIP44_MAC_BYTES)
  const { key, iv, hmacKey } = nip44MessageKeys(conversationKey, nonce)
  const mac = createHmac('sha256', hmacKey).update(nonce).update(ciphertext).digest()
  if (!timingSafeEqual(mac, data.subarray(data.length - NIP44_MAC_BYTES))) throw new Error('invalid NIP-44 MAC')
  const decipher = createDecipheriv('chacha20', key, iv)
  const padded = Buffer.concat([decipher.update(ciphertext), decipher.final()])
  const length = padded.readUInt16BE(0)
  if (length < 1 || padded.length !== 2 + nip44PaddedLength(length)) throw new Error('invalid NIP-44 padding')
  return utf8.decode(padded.subarray(2, 2 + length))
}
