// The service's Nostr identity. The secret key is generated inside the enclave, lives
// only in this closure and never leaves it: every operation that needs it (signing,
// NIP-04/NIP-44 encryption, NIP-59 wrapping) is a method here, so nothing else in the
// process can log, return or publish it.
import * as kinds from 'nostr-tools/kinds'
import { randomInt } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { npubEncode } from 'nostr-tools/nip19'
import { validateEvent, type EventTemplate } from 'nostr-tools/pure'
import { bytesToHex } from '@noble/hashes/utils.js'
import { createLru } from '../../nec01/lru.js'
import type { NostrEvent, Rumor } from '../../nec01/types.js'
import { GIFT_WRAP_BACKDATE_SEC } from '../../nec01/windows.js'
import { eventHash, keyAgreement, nip04Decrypt, nip04Encrypt, nip44ConversationKey, nip44Decrypt, nip44Encrypt, oneTimeKey, publicKeyHex, signEvent, verifyEvent } from '../crypto.js'

export type { Rumor }

/** Gives `template` (to be signed by `pubkey`) its proof of work: the same event with a nonce tag, maybe another created_at. */
export type MineWrap = (template: EventTemplate, pubkey: string) => Promise<EventTemplate>

export interface Identity {
  readonly pubkey: string
  readonly npub: string
  sign(template: EventTemplate): NostrEvent
  nip04Encrypt(peer: string, text: string): string
  nip04Decrypt(peer: string, ciphertext: string): string
  nip44Encrypt(peer: string, text: string): string
  nip44Decrypt(peer: string, payload: string): string
  /** NIP-59: gift wrap (signature verified) → seal (signature verified) → rumor; throws on any mismatch. */
  unwrap(wrap: NostrEvent): Rumor
  /** NIP-59: a rumor from this identity, sealed with its key and wrapped to `recipient`. */
  giftWrap(rumor: Omit<Rumor, 'id' | 'pubkey'>, recipient: string): { wrap: NostrEvent; rumor: Rumor }
  /** giftWrap, the wrap's template passed through `mine` (NIP-13 proof of work) before its one-time key signs it. */
  giftWrapMined(rumor: Omit<Rumor, 'id' | 'pubkey'>, recipient: string, mine: MineWrap): Promise<{ wrap: NostrEvent; rumor: Rumor }>
  /**
   * The hand-over to an attested successor (docs/upgrades.md): the secret key as hex,
   * NIP-44-encrypted to `peer`. The only way the key ever leaves this closure.
   */
  encryptSecretTo(peer: string): string
}


/** Shared secrets cost an ECDH each; a busy sender reuses one. Bounded, least recently used out. */
const PEER_CACHE_LIMIT = 4096

interface PeerKeys {
  /** NIP-04's AES key: the shared x */
  nip04: Uint8Array
  /** NIP-44 v2 conversation key, also the seal layer of NIP-59 */
  nip44: Uint8Array
}

const randomPast = (): number => Math.floor(Date.now() / 1000) - randomInt(GIFT_WRAP_BACKDATE_SEC + 1)

function parseObject(json: string, what: string): Record<string, unknown> {
  const value: unknown = JSON.parse(json)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} is not a JSON object`)
  return value as Record<string, unknown>
}

function isRumor(value: Record<string, unknown>): value is Rumor {
  return validateEvent(value) && typeof value.id === 'string'
}

/**
 * Builds the identity from 32 random bytes from `random` (the NSM's CSPRNG in an
 * enclave, the OS's otherwise). Out-of-range scalars (probability ~2^-128) are redrawn.
 */
export async function createIdentity(random: (n: number) => Promise<Uint8Array>): Promise<Identity> {
  return identityFromSecret(await drawSecretKey(random))
}

/** 32 random bytes that are a valid secp256k1 secret key (the draw itself, not a copy). */
export async function drawSecretKey(random: (n: number) => Promise<Uint8Array>): Promise<Uint8Array> {
  for (let i = 0; i < 8; i++) {
    const candidate = await random(32)
    if (isSecretKey(candidate)) return candidate
  }
  throw new Error('could not draw a valid secret key from the random source')
}

export function isSecretKey(bytes: Uint8Array): boolean {
  return bytes.length === 32 && secp256k1.utils.isValidSecretKey(bytes)
}

/**
 * The identity of a given key: for a key unsealed inside the enclave
 * (src/service/sealed-identity.ts), and for tests and tools. It keeps its own copy.
 */
export function identityFromSecret(secretKey: Uint8Array): Identity {
  const sk = Uint8Array.from(secretKey)
  const pubkey = publicKeyHex(sk)
  // ECDH per peer is cached below; a gift wrap's one-time key is the only uncached one.
  const ecdh = keyAgreement(sk)
  const peers = createLru<string, PeerKeys>(PEER_CACHE_LIMIT)

  function peerKeys(peer: string): PeerKeys {
    const known = peers.get(peer)
    if (known !== undefined) return known
    const x = ecdh.sharedX(peer)
    const keys = { nip04: x, nip44: nip44ConversationKey(x) }
    peers.set(peer, keys)
    return keys
  }

  function sign(template: EventTemplate): NostrEvent {
    const event = signEvent(template, { secret: sk, pubkey })
    // BIP-340's signing algorithm ends with this check: a fault during signing could
    // otherwise publish a signature that leaks the key. libsecp256k1 leaves it to us.
    if (!verifyEvent(event)) throw new Error('own signature failed verification')
    return event
  }

  function unwrap(wrap: NostrEvent): Rumor {
    if (wrap.kind !== kinds.GiftWrap) throw new Error(`unexpected wrap kind ${wrap.kind}, expected ${kinds.GiftWrap}`)
    if (!verifyEvent(wrap)) throw new Error('gift wrap signature is invalid')
    // The wrap's key is used once, so this ECDH is never worth caching.
    const seal = parseObject(nip44Decrypt(nip44ConversationKey(ecdh.sharedX(wrap.pubkey)), wrap.content), 'seal')
    if (seal.kind !== kinds.Seal) throw new Error(`unexpected seal kind ${String(seal.kind)}, expected ${kinds.Seal}`)
    if (!verifyEvent(seal)) throw new Error('seal signature is invalid')
    const rumor = parseObject(nip44Decrypt(peerKeys(seal.pubkey).nip44, seal.content), 'rumor')
    if (rumor.pubkey !== seal.pubkey) throw new Error('rumor pubkey does not match seal pubkey')
    if (!isRumor(rumor)) throw new Error('rumor is not an unsigned event with an id')
    return rumor
  }

  /** The rumor, sealed, and the wrap's template with the one-time key that is to sign it. */
  function wrapParts(input: Omit<Rumor, 'id' | 'pubkey'>, recipient: string): { rumor: Rumor; template: EventTemplate; oneTime: ReturnType<typeof oneTimeKey> } {
    const unsigned = { pubkey, created_at: input.created_at, kind: input.kind, tags: input.tags, content: input.content }
    const rumor: Rumor = { ...unsigned, id: eventHash(unsigned) }
    const seal = sign({ kind: kinds.Seal, created_at: randomPast(), tags: [], content: nip44Encrypt(peerKeys(recipient).nip44, JSON.stringify(rumor)) })
    const oneTime = oneTimeKey()
    const template = {
      kind: kinds.GiftWrap,
      created_at: randomPast(),
      tags: [['p', recipient]],
      content: nip44Encrypt(nip44ConversationKey(oneTime.agreement.sharedX(recipient)), JSON.stringify(seal)),
    }
    return { rumor, template, oneTime }
  }

  function giftWrap(input: Omit<Rumor, 'id' | 'pubkey'>, recipient: string): { wrap: NostrEvent; rumor: Rumor } {
    const { rumor, template, oneTime } = wrapParts(input, recipient)
    const wrap = signEvent(template, oneTime)
    oneTime.secret.fill(0)
    return { wrap, rumor }
  }

  async function giftWrapMined(input: Omit<Rumor, 'id' | 'pubkey'>, recipient: string, mine: MineWrap): Promise<{ wrap: NostrEvent; rumor: Rumor }> {
    const { rumor, template, oneTime } = wrapParts(input, recipient)
    try {
      return { wrap: signEvent(await mine(template, oneTime.pubkey), oneTime), rumor }
    } finally {
      oneTime.secret.fill(0)
    }
  }

  return {
    pubkey,
    npub: npubEncode(pubkey),
    sign,
    nip04Encrypt: (peer, text) => nip04Encrypt(peerKeys(peer).nip04, text),
    nip04Decrypt: (peer, ciphertext) => nip04Decrypt(peerKeys(peer).nip04, ciphertext),
    nip44Encrypt: (peer, text) => nip44Encrypt(peerKeys(peer).nip44, text),
    nip44Decrypt: (peer, payload) => nip44Decrypt(peerKeys(peer).nip44, payload),
    unwrap,
    giftWrap,
    giftWrapMined,
    encryptSecretTo: (peer) => nip44Encrypt(peerKeys(peer).nip44, bytesToHex(sk)),
    // Keep the key out of any accidental serialisation or inspection of this object.
    toJSON: () => ({ pubkey }),
    [Symbol.for('nodejs.util.inspect.custom')]: () => `Identity(${pubkey})`,
  } as Identity
}
