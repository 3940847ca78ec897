// The service's secp256k1 and NIP-04/NIP-44 key material, on the fastest libraries Node
// offers: Schnorr through nostr-wasm (libsecp256k1 compiled to WASM, 5–6× noble), ECDH
// through node:crypto (OpenSSL, ~3× noble with the key loaded once). nec01/ stays on noble:
// it must run in browsers without a WASM init step. No secret is kept here: callers pass
// theirs in, and the ECDH objects live in the caller's closure.
import { createCipheriv, createDecipheriv, createECDH, createHash, createHmac, randomBytes, type ECDH } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { schnorr } from '@noble/curves/secp256k1.js'
import { initNostrWasm, NostrWasm, type Nostr } from 'nostr-wasm'
import { serializeEvent, validateEvent, type EventTemplate } from 'nostr-tools/pure'
import type { NostrEvent } from '../nec01/types.js'

/**
 * The package ships the binary twice: as a file for its "headless" use, and base64 inside
 * its main module, whose decoding (atob, a 200k-element array) leaves ~7 MB more RSS
 * behind. The file is preferred; the embedded copy covers a package laid out otherwise.
 */
async function loadNostrWasm(): Promise<Nostr> {
  let binary: Buffer | null = null
  try {
    binary = readFileSync(new URL('../public/out/secp256k1.wasm', pathToFileURL(createRequire(import.meta.url).resolve('nostr-wasm'))))
  } catch {
    binary = null
  }
  return binary === null ? initNostrWasm() : NostrWasm(binary)
}

// Top-level await: the module is usable the moment it is imported, so no caller (service,
// client commands, tests, the relay pool) can sign or verify before the WASM is loaded.
const nw = await loadNostrWasm()

/** NIP-44 v2: conversation key = HKDF-extract(salt "nip44-v2", shared x) = HMAC-SHA256(salt, x). */
const NIP44_SALT = 'nip44-v2'
/** x-only keys are lifted to the point with even y (BIP-340), in SEC1 compressed form */
const EVEN_Y_PREFIX = '02'
const NIP04_IV_BYTES = 16
const AES_BLOCK_BYTES = 16
/** Verified (id, sig) pairs, so the pool, the inbox and unwrap pay for one Schnorr check (all within one delivery, so a short memory). */
const VERIFIED_LIMIT = 1024
/**
 * nostr-wasm's heap is fixed (~1 MB): it cannot hash an event much larger than ~900 KB and
 * throws "Out of memory". Events past this size that it refused get a second look by noble.
 */
const WASM_SAFE_EVENT_BYTES = 512 * 1024

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

const verified = new Set<string>()

/**
 * NIP-01 verification (id and BIP-340 signature), false on anything malformed. nostr-wasm
 * parses hex leniently (a truncated or non-hex id or sig reuses bytes of the previous call),
 * so the shape is checked strictly here first. A pair already verified costs one hash: the
 * hash binds everything else to the id, so the cache cannot be fooled by a tampered copy.
 */
export function verifyEvent(event: unknown): event is NostrEvent {
  if (!hasSignedShape(event)) return false
  const key = event.id + event.sig
  if (verified.has(key)) return eventHash(event) === event.id
  try {
    nw.verifyEvent(event)
  } catch {
    if (!verifyLarge(event)) return false
  }
  if (verified.size >= VERIFIED_LIMIT) {
    const oldest = verified.values().next()
    if (!oldest.done) verified.delete(oldest.value)
  }
  verified.add(key)
  return true
}

/** NIP-01 fields and types, with id and sig as lowercase hex of the right length */
function hasSignedShape(event: unknown): event is NostrEvent {
  if (!validateEvent(event)) return false
  const { id, sig } = event as { id?: unknown; sig?: unknown }
  return typeof id === 'string' && typeof sig === 'string' && HEX32.test(id) && HEX64.test(sig)
}

function verifyLarge(event: NostrEvent): boolean {
  const serialized = serializeEvent(event)
  if (Buffer.byteLength(serialized) <= WASM_SAFE_EVENT_BYTES) return false
  const id = createHash('sha256').update(serialized).digest('hex')
  try {
    return id === event.id && schnorr.verify(Buffer.from(event.sig, 'hex'), Buffer.from(id, 'hex'), Buffer.from(event.pubkey, 'hex'))
  } catch {
    return false
  }
}

/** A fresh signed event (the template is not modified): pubkey, id and BIP-340 signature. */
export function signEvent(template: EventTemplate, secret: Uint8Array): NostrEvent {
  const event = { kind: template.kind, created_at: template.created_at, tags: template.tags, content: template.content, pubkey: '', id: '', sig: '' }
  // nostr-wasm draws the BIP-340 auxiliary randomness itself (crypto.getRandomValues).
  nw.finalizeEvent(event, secret)
  return event
}

/** x-only public key, hex */
export function publicKeyHex(secret: Uint8Array): string {
  return Buffer.from(nw.getPublicKey(secret)).toString('hex')
}

/** ECDH with a fixed own key: the scalar is loaded into OpenSSL once, not per peer. */
export interface KeyAgreement {
  /** the shared point's x coordinate (NIP-04's AES key, NIP-44's HKDF input) */
  sharedX(peer: string): Buffer
}

export function keyAgreement(secret: Uint8Array): KeyAgreement {
  const ecdh: ECDH = createECDH('secp256k1')
  ecdh.setPrivateKey(secret)
  return {
    sharedX(peer) {
      // Buffer.from(hex) silently stops at the first bad digit: check before decoding.
      if (!isPubkeyHex(peer)) throw new Error('invalid public key')
      return ecdh.computeSecret(Buffer.from(EVEN_Y_PREFIX + peer, 'hex'))
    },
  }
}

/** A one-time key (NIP-59 wraps) and its key agreement, from the OS CSPRNG. */
export function oneTimeKey(): { secret: Uint8Array; agreement: KeyAgreement } {
  for (;;) {
    const secret = new Uint8Array(randomBytes(32))
    try {
      return { secret, agreement: keyAgreement(secret) }
    } catch {
      // zero or ≥ n (p ≈ 2^-128): OpenSSL refused the scalar, draw again
    }
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
