// The load generator's side of the three transports: the same wire format as `nec01 dm`,
// `nec01 dm --nip04` and `nec01 attest` (NIP-17 gift wrap, NIP-04, NIP-44 RPC), built on the
// service's own primitives (src/crypto.ts: Schnorr through tiny-secp256k1, ECDH through native libsecp256k1, ids and
// NIP-44 through node:crypto), the fastest measured (bench/libs.ts), with each sender's public key
// and shared secrets computed once, so the client steals as little of the two cores from the
// service as possible. selfCheck() proves each builder against nostr-tools' own
// implementation before any figure is taken.
import * as kinds from 'nostr-tools/kinds'
import * as nip04 from 'nostr-tools/nip04'
import * as nip44 from 'nostr-tools/nip44'
import { generateSecretKey, getPublicKey, getEventHash, verifyEvent as pureVerifyEvent } from 'nostr-tools/pure'
import type { NostrEvent } from '../nec01/types.js'
import { RPC_KIND } from '../nec01/rpc.js'
import { GIFT_WRAP_BACKDATE_SEC } from '../nec01/windows.js'
import type { Rumor } from '../nec01/types.js'
import { keyAgreement, nip04Decrypt, nip04Encrypt, nip44ConversationKey, nip44Decrypt, nip44Encrypt, oneTimeKey, publicKeyHex, signEvent, verifyEvent, type SigningKey } from '../src/crypto.js'

export { RPC_KIND }


function sharedX(secret: Uint8Array, peerHex: string): Buffer {
  return keyAgreement(secret).sharedX(peerHex)
}

export function conversationKey(secret: Uint8Array, peerHex: string): Uint8Array {
  return nip44ConversationKey(sharedX(secret, peerHex))
}

const nowSec = (): number => Math.floor(Date.now() / 1000)
const randomPast = (): number => Math.round(nowSec() - Math.random() * GIFT_WRAP_BACKDATE_SEC)

/** One sender: its keys, and its shared secrets with the service computed once. */
export interface ClientKey extends SigningKey {
  /** NIP-44 conversation key with the service */
  nip44: Uint8Array
  /** NIP-04 AES key with the service (the shared x) */
  nip04: Buffer
}

export function clientKey(service: string): ClientKey {
  const secret = generateSecretKey()
  const x = sharedX(secret, service)
  return { secret, pubkey: publicKeyHex(secret), nip44: nip44ConversationKey(x), nip04: x }
}

export function rpcRequest(key: ClientKey, service: string, id: string, method = 'ping'): NostrEvent {
  const body = JSON.stringify({ id, method, params: {} })
  return signEvent({ kind: RPC_KIND, created_at: nowSec(), content: nip44Encrypt(key.nip44, body), tags: [['p', service]] }, key)
}

export function nip04Request(key: ClientKey, service: string, text = 'ping'): NostrEvent {
  return signEvent({ kind: kinds.EncryptedDirectMessage, created_at: nowSec(), content: nip04Encrypt(key.nip04, text), tags: [['p', service]] }, key)
}

/** Tag that makes each bench rumor distinct (see nip17Request). */
const BENCH_TAG = 'nec01-bench'
let rumorCounter = 0

export type { Rumor }

/** NIP-17: rumor (kind 14) → seal (kind 13, signed by the sender) → wrap (kind 1059, one-time key). */
export function nip17Request(key: ClientKey, service: string, text = 'ping'): { wrap: NostrEvent; rumorId: string } {
  // A rumor is identified by its content hash: the same text from the same sender in the
  // same second is one message, and the service rightly drops the repeat. A bench sender
  // sends many pings a second, so each rumor carries a tag the service ignores.
  const tags = [['p', service], [BENCH_TAG, String(rumorCounter++)]]
  const rumor: Omit<Rumor, 'id'> & { id?: string } = { pubkey: key.pubkey, created_at: nowSec(), kind: kinds.PrivateDirectMessage, tags, content: text }
  rumor.id = getEventHash(rumor as NostrEvent)
  const seal = signEvent({ kind: kinds.Seal, created_at: randomPast(), tags: [], content: nip44Encrypt(key.nip44, JSON.stringify(rumor)) }, key)
  const oneTime = oneTimeKey()
  const wrapKey = nip44ConversationKey(oneTime.agreement.sharedX(service))
  const wrap = signEvent({ kind: kinds.GiftWrap, created_at: randomPast(), tags: [['p', service]], content: nip44Encrypt(wrapKey, JSON.stringify(seal)) }, oneTime)
  return { wrap, rumorId: rumor.id }
}

/** Opens a reply wrap addressed to `key`: checks the seal's signature and that it came from `service`. */
export function unwrapReply(key: ClientKey, wrap: NostrEvent, service: string): Rumor {
  const seal = JSON.parse(nip44Decrypt(conversationKey(key.secret, wrap.pubkey), wrap.content)) as NostrEvent
  if (seal.kind !== kinds.Seal || seal.pubkey !== service || !verifyEvent(seal)) throw new Error('seal is not from the service or its signature is invalid')
  const rumor = JSON.parse(nip44Decrypt(key.nip44, seal.content)) as Rumor
  if (rumor.pubkey !== seal.pubkey) throw new Error('rumor pubkey is not the seal signer')
  return rumor
}

export function replyText(key: ClientKey, event: NostrEvent): string {
  return event.kind === kinds.EncryptedDirectMessage ? nip04Decrypt(key.nip04, event.content) : nip44Decrypt(key.nip44, event.content)
}

/**
 * Each builder against nostr-tools' reference functions, with a second key playing the
 * service: the wire format must be exactly what real clients send.
 */
export function selfCheck(): void {
  const serviceSecret = generateSecretKey()
  const service = getPublicKey(serviceSecret)
  const key = clientKey(service)
  const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))
  if (!same(key.nip44, nip44.v2.utils.getConversationKey(serviceSecret, key.pubkey))) throw new Error('client crypto: NIP-44 conversation key differs from nostr-tools')
  const rpc = rpcRequest(key, service, 'x')
  if (!pureVerifyEvent(rpc) || JSON.parse(nip44.v2.decrypt(rpc.content, nip44.v2.utils.getConversationKey(serviceSecret, key.pubkey))).id !== 'x') {
    throw new Error('client crypto: RPC request does not open with nostr-tools')
  }
  const dm = nip04Request(key, service, 'hello')
  if (!pureVerifyEvent(dm) || nip04.decrypt(serviceSecret, key.pubkey, dm.content) !== 'hello') throw new Error('client crypto: NIP-04 request does not open with nostr-tools')
  const { wrap, rumorId } = nip17Request(key, service, 'hi')
  const seal = JSON.parse(nip44.v2.decrypt(wrap.content, nip44.v2.utils.getConversationKey(serviceSecret, wrap.pubkey))) as NostrEvent
  const rumor = JSON.parse(nip44.v2.decrypt(seal.content, nip44.v2.utils.getConversationKey(serviceSecret, seal.pubkey))) as Rumor
  if (!pureVerifyEvent(wrap) || !pureVerifyEvent(seal) || rumor.id !== rumorId || rumor.content !== 'hi' || rumor.pubkey !== key.pubkey) {
    throw new Error('client crypto: NIP-17 wrap does not open with nostr-tools')
  }
}
