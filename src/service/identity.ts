// The service's Nostr identity. The secret key is generated inside the enclave, lives
// only in this closure and never leaves it: every operation that needs it (signing,
// NIP-04/NIP-44 encryption, NIP-59 wrapping) is a method here, so nothing else in the
// process can log, return or publish it.
import { finalizeEvent, getPublicKey, verifyEvent, type EventTemplate } from 'nostr-tools/pure'
import * as nip04 from 'nostr-tools/nip04'
import * as nip44 from 'nostr-tools/nip44'
import * as nip59 from 'nostr-tools/nip59'
import { npubEncode } from 'nostr-tools/nip19'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import type { NostrEvent, Rumor } from '../../nec01/types.js'

export type { Rumor }

export interface Identity {
  readonly pubkey: string
  readonly npub: string
  sign(template: EventTemplate): NostrEvent
  nip04Encrypt(peer: string, text: string): string
  nip04Decrypt(peer: string, ciphertext: string): string
  nip44Encrypt(peer: string, text: string): string
  nip44Decrypt(peer: string, payload: string): string
  /** NIP-59: gift wrap → seal (signature verified) → rumor; throws on any mismatch. */
  unwrap(wrap: NostrEvent): Rumor
  /** NIP-59: a rumor from this identity, sealed with its key and wrapped to `recipient`. */
  giftWrap(rumor: Omit<Rumor, 'id' | 'pubkey'>, recipient: string): { wrap: NostrEvent; rumor: Rumor }
}

/** Conversation keys cost an ECDH each; a busy sender reuses one. Bounded. */
const CONVERSATION_CACHE_LIMIT = 4096

/**
 * Builds the identity from 32 random bytes from `random` (the NSM's CSPRNG in an
 * enclave, the OS's otherwise). Out-of-range scalars (probability ~2^-128) are redrawn.
 */
export async function createIdentity(random: (n: number) => Promise<Uint8Array>): Promise<Identity> {
  let secret: Uint8Array | null = null
  for (let i = 0; i < 8 && secret === null; i++) {
    const candidate = await random(32)
    if (candidate.length === 32 && secp256k1.utils.isValidSecretKey(candidate)) secret = candidate
  }
  if (secret === null) throw new Error('could not draw a valid secret key from the random source')
  return identityFromSecret(secret)
}

/** For tests and tools only: the service never takes its key from outside. */
export function identityFromSecret(secretKey: Uint8Array): Identity {
  const sk = Uint8Array.from(secretKey)
  const pubkey = getPublicKey(sk)
  const conversations = new Map<string, Uint8Array>()

  function conversationKey(peer: string): Uint8Array {
    let key = conversations.get(peer)
    if (key === undefined) {
      key = nip44.v2.utils.getConversationKey(sk, peer)
      if (conversations.size >= CONVERSATION_CACHE_LIMIT) {
        const oldest = conversations.keys().next().value
        if (oldest !== undefined) conversations.delete(oldest)
      }
      conversations.set(peer, key)
    }
    return key
  }

  return {
    pubkey,
    npub: npubEncode(pubkey),
    sign: (template) => finalizeEvent(template, sk),
    nip04Encrypt: (peer, text) => nip04.encrypt(sk, peer, text),
    nip04Decrypt: (peer, ciphertext) => nip04.decrypt(sk, peer, ciphertext),
    nip44Encrypt: (peer, text) => nip44.v2.encrypt(text, conversationKey(peer)),
    nip44Decrypt: (peer, payload) => nip44.v2.decrypt(payload, conversationKey(peer)),
    unwrap(wrap) {
      if (!verifyEvent(wrap)) throw new Error('gift wrap signature is invalid')
      return nip59.unwrapEvent(wrap, sk) as Rumor
    },
    giftWrap(rumor, recipient) {
      const full = nip59.createRumor(rumor, sk) as Rumor
      const seal = nip59.createSeal(full, sk, recipient)
      return { wrap: nip59.createWrap(seal, recipient), rumor: full }
    },
    // Keep the key out of any accidental serialisation or inspection of this object.
    toJSON: () => ({ pubkey }),
    [Symbol.for('nodejs.util.inspect.custom')]: () => `Identity(${pubkey})`,
  } as Identity
}
