// Delegation as enclaved's containers use it: the attested root key hands signing on to
// other keys with kind:23797 certificates, carried in ["tee_cert", <JSON>] tags ordered from
// the root. Certificate i is signed by the key certificate i-1 named (the root key for the
// first), names the next key in its one `p` tag, and expires; the last names the event's key.
import { CERT_KIND } from './kinds.js'
import { expirationOf, iso, npub, parseEmbedded, tagValues, verifySignature } from './nostr.js'
import { check } from './result.js'
import type { Check, DelegationLink, NostrEvent } from './types.js'

export const TEE_CERT_TAG = 'tee_cert'
/** Longest chain followed: a container runtime needs one or two links. */
export const MAX_CHAIN = 8

/** One certificate checked on its own and against the key it must come from; a reason or its link. */
function linkOf(json: string, index: number, signer: string, nowSec: number, createdAt: number): DelegationLink | string {
  const cert = parseEmbedded(json, `tee_cert ${index}`)
  if (typeof cert === 'string') return cert
  const where = `tee_cert ${index}`
  if (cert.kind !== CERT_KIND) return `${where} is kind ${cert.kind}, expected ${CERT_KIND}`
  if (!verifySignature(cert)) return `${where}: event id or Schnorr signature invalid`
  if (cert.pubkey !== signer) return `${where} is signed by ${npub(cert.pubkey)}, not by ${npub(signer)} ${index === 0 ? '(the root key)' : `(named by tee_cert ${index - 1})`}`
  const p = tagValues(cert, 'p')
  const delegate = p[0]
  if (p.length !== 1 || delegate === undefined || !/^[0-9a-f]{64}$/.test(delegate)) return `${where}: expected exactly one p tag with a hex pubkey, found ${p.length}`
  const expiration = expirationOf(cert)
  if (expiration === null || Number.isNaN(expiration)) return `${where}: expected exactly one numeric expiration tag`
  if (expiration <= nowSec) return `${where} expired at ${iso(expiration)}`
  if (createdAt > expiration) return `the event was created at ${iso(createdAt)}, after ${where} expired at ${iso(expiration)}`
  return { id: cert.id, signer, delegate, expiration }
}

/**
 * Follows the chain from `rootPubkey` to the event's pubkey and records one `cert` check.
 * Returns the chain, root key first, or null when it does not hold.
 */
export function checkDelegation(checks: Check[], certs: string[], rootPubkey: string, event: Pick<NostrEvent, 'pubkey' | 'created_at'>, nowSec: number): DelegationLink[] | null {
  if (certs.length > MAX_CHAIN) {
    check(checks, 'cert', false, `${certs.length} tee_cert tags, at most ${MAX_CHAIN} followed`)
    return null
  }
  const chain: DelegationLink[] = []
  let signer = rootPubkey
  for (const [i, json] of certs.entries()) {
    const link = linkOf(json, i, signer, nowSec, event.created_at)
    if (typeof link === 'string') {
      check(checks, 'cert', false, link)
      return null
    }
    chain.push(link)
    signer = link.delegate
  }
  if (signer !== event.pubkey) {
    check(checks, 'cert', false, `the chain ends at ${npub(signer)}, not at the event's pubkey ${npub(event.pubkey)}`)
    return null
  }
  const path = [rootPubkey, ...chain.map((l) => l.delegate)].map((p) => npub(p).slice(0, 16) + '…').join(' → ')
  check(checks, 'cert', true, `delegated by the root key through ${chain.length} certificate${chain.length === 1 ? '' : 's'}: ${path}`)
  return chain
}
