// Nostr event helpers every verifier module shares: the signature check, tag reading,
// the wire shape, npub <-> hex, and the embedded events NEC tags carry as JSON strings.
import { getEventHash, validateEvent } from 'nostr-tools/pure'
import { decode as nip19Decode, npubEncode } from 'nostr-tools/nip19'
import { schnorr } from '@noble/curves/secp256k1.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import { isoSeconds } from './time.js'
import type { NostrEvent } from './types.js'

/** ECMAScript dates end at ±8.64e15 ms (ECMA-262 §21.4.1.1). */
const MAX_DATE_SECONDS = 8.64e12
/** An embedded event (a signature, a certificate) is a few KiB; longer is not parsed. */
export const MAX_EMBEDDED_LENGTH = 64 * 1024

/**
 * ISO time of a unix-seconds value from an event. created_at is whatever the sender wrote,
 * and toISOString throws beyond the Date range: such a value is shown as a number.
 */
export function iso(seconds: number): string {
  return Number.isFinite(seconds) && Math.abs(seconds) <= MAX_DATE_SECONDS ? isoSeconds(seconds) : `${seconds} (not a date)`
}

/**
 * id and Schnorr signature, computed every time. nostr-tools' verifyEvent remembers its
 * verdict on the object, and a spread copy carries that memory to an edited event; a
 * verifier must judge the bytes in front of it.
 */
export function verifySignature(event: NostrEvent): boolean {
  try {
    const id = getEventHash(event)
    return id === event.id && /^[0-9a-f]{128}$/.test(event.sig) && schnorr.verify(hexToBytes(event.sig), hexToBytes(id), hexToBytes(event.pubkey))
  } catch {
    return false
  }
}

export function tagValues(event: { tags: string[][] }, name: string): string[] {
  const out: string[] = []
  for (const tag of event.tags) if (tag[0] === name && typeof tag[1] === 'string') out.push(tag[1])
  return out
}

export function isEventShape(value: unknown): value is NostrEvent {
  return (
    validateEvent(value) &&
    typeof (value as { id?: unknown }).id === 'string' &&
    typeof (value as { sig?: unknown }).sig === 'string'
  )
}

/** Parses an event carried as a JSON string in a tag; a reason string when it is not one. */
export function parseEmbedded(json: string, what: string): NostrEvent | string {
  if (json.length > MAX_EMBEDDED_LENGTH) return `${what} is ${json.length} characters, more than ${MAX_EMBEDDED_LENGTH}`
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    return `${what} is not JSON`
  }
  return isEventShape(value) ? value : `${what} is not a Nostr event`
}

/** The single numeric expiration tag (NIP-40); null when absent, NaN when malformed or repeated. */
export function expirationOf(event: { tags: string[][] }): number | null {
  const values = tagValues(event, 'expiration')
  if (values.length === 0) return null
  return values.length === 1 && /^[0-9]{1,12}$/.test(values[0]!) ? Number(values[0]) : NaN
}

export function npub(pubkey: string): string {
  try {
    return npubEncode(pubkey)
  } catch {
    return pubkey
  }
}

/** npub or 64 hex → lowercase hex; null when it is neither. */
export function pubkeyHex(text: unknown): string | null {
  if (typeof text !== 'string') return null
  if (/^[0-9a-fA-F]{64}$/.test(text)) return text.toLowerCase()
  if (!text.startsWith('npub1')) return null
  try {
    const decoded = nip19Decode(text)
    return decoded.type === 'npub' ? decoded.data : null
  } catch {
    return null
  }
}
