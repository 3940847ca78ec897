// NEC-01 events: the kind:23793 root event that wraps an attestation, and the carriers
// that hold it in a ["tee_root", <JSON>] tag. A feed of notes from one service repeats
// the same tee_root string, so a verified root is memoized and a carrier then costs one
// Schnorr verification plus a lookup.
import { getEventHash, validateEvent, type EventTemplate } from 'nostr-tools/pure'
import { schnorr } from '@noble/curves/secp256k1.js'
import { bytesToHex, hexToBytes } from './encoding.js'
import { base64ToBytes, bytesToBase64 } from './encoding.js'
import { MAX_DOCUMENT_BYTES, verifyAttestation } from './attestation.js'
import { normalizeOptions } from './options.js'
import { VerifyError, check, failure, finish as finishChecks } from './result.js'
import { isoSeconds, toUnixSeconds } from './time.js'
import type { AttestationInfo, Check, Expect, NostrEvent, TeeRootOptions, UnsignedEvent, VerifyOptions, VerifyResult } from './types.js'

/** NEC-01 root event kind. */
export const ROOT_KIND = 23793
/** The tag that carries a JSON-stringified root event. */
export const TEE_ROOT_TAG = 'tee_root'
/** NIP-17 rumor kind: unsigned by design, authenticated by the seal around it. */
const RUMOR_KIND = 14
/** Upper bound for a tee_root value: a real attestation is ~4.5 KiB, base64 ~6 KiB. */
const MAX_TEE_ROOT_LENGTH = 64 * 1024
/** Memo bound: distinct (tee_root, options) pairs remembered. */
const MEMO_LIMIT = 1024
/** Longest base64 content that can hold a document the verifier accepts; longer is not decoded. */
const MAX_CONTENT_LENGTH = Math.ceil(MAX_DOCUMENT_BYTES / 3) * 4
/** ECMAScript dates end at ±8.64e15 ms (ECMA-262 §21.4.1.1). */
const MAX_DATE_SECONDS = 8.64e12

/**
 * ISO time of a unix-seconds value from an event. created_at is whatever the sender wrote,
 * and toISOString throws beyond the Date range: such a value is shown as a number.
 */
function iso(seconds: number): string {
  return Number.isFinite(seconds) && Math.abs(seconds) <= MAX_DATE_SECONDS ? isoSeconds(seconds) : `${seconds} (not a date)`
}

export interface RootEventParams {
  /** raw COSE_Sign1 attestation document */
  attestation: Uint8Array
  t: 'prod' | 'dev'
  /** unix seconds; must be the leaf certificate's notAfter or earlier */
  expiration: number
  created_at?: number
}

/** The unsigned kind:23793 template; the enclave signs it with the key the document binds. */
export function buildRootEvent(params: RootEventParams): EventTemplate {
  if (params.t !== 'prod' && params.t !== 'dev') throw new TypeError(`t must be prod or dev, got ${String(params.t)}`)
  if (!Number.isSafeInteger(params.expiration) || params.expiration <= 0) throw new TypeError('expiration must be unix seconds')
  return {
    kind: ROOT_KIND,
    created_at: params.created_at ?? Math.floor(Date.now() / 1000),
    content: bytesToBase64(params.attestation),
    tags: [['-'], ['t', params.t], ['expiration', String(params.expiration)]],
  }
}

/**
 * Adds ["tee_root", JSON(root)] to a template (the root event, or its JSON), replacing any earlier one. A carrier is
 * meant to be republished and quoted, so the NIP-70 ["-"] tag of the root never rides on it.
 */
export function withTeeRoot<T extends { tags: string[][] }>(template: T, rootEvent: NostrEvent | string): T {
  const tags = template.tags.filter((t) => t[0] !== TEE_ROOT_TAG && !(t[0] === '-' && t.length === 1))
  // A service passes the JSON it made once per root, not a re-serialisation per reply.
  tags.push([TEE_ROOT_TAG, typeof rootEvent === 'string' ? rootEvent : JSON.stringify(rootEvent)])
  return { ...template, tags }
}

function finish(checks: Check[], base: { attestation: AttestationInfo | null; event?: NostrEvent }): VerifyResult {
  const result = finishChecks(checks, base.attestation)
  return base.event === undefined ? result : { ...result, event: base.event }
}

/**
 * id and Schnorr signature, computed every time. nostr-tools' verifyEvent remembers its
 * verdict on the object, and a spread copy carries that memory to an edited event; a
 * verifier must judge the bytes in front of it.
 */
function verifySignature(event: NostrEvent): boolean {
  try {
    const id = getEventHash(event)
    return id === event.id && /^[0-9a-f]{128}$/.test(event.sig) && schnorr.verify(hexToBytes(event.sig), hexToBytes(id), hexToBytes(event.pubkey))
  } catch {
    return false
  }
}

function safeNow(options: VerifyOptions): number | null {
  try {
    return toUnixSeconds(options.now)
  } catch {
    return null
  }
}

function tagValues(event: { tags: string[][] }, name: string): string[] {
  const out: string[] = []
  for (const tag of event.tags) if (tag[0] === name && typeof tag[1] === 'string') out.push(tag[1])
  return out
}

function isEventShape(value: unknown): value is NostrEvent {
  return (
    validateEvent(value) &&
    typeof (value as { id?: unknown }).id === 'string' &&
    typeof (value as { sig?: unknown }).sig === 'string'
  )
}

function checkT(checks: Check[], event: NostrEvent, expect: Expect): void {
  const values = tagValues(event, 't')
  const t = values[0]
  if (values.length !== 1 || (t !== 'prod' && t !== 'dev')) {
    check(checks, 't', false, `expected exactly one t tag of prod or dev, found ${values.length === 0 ? 'none' : JSON.stringify(values)}`)
  } else if (expect !== 'any' && t !== expect) {
    check(checks, 't', false, `t is ${t}, expected ${expect}`)
  } else {
    check(checks, 't', true, expect === 'any' ? `t is ${t} (any accepted)` : `t is ${t}`)
  }
}

/** Full verification of a kind:23793 root event. Never throws. */
export async function verifyRootEvent(event: unknown, options?: VerifyOptions | null): Promise<VerifyResult> {
  const checks: Check[] = []
  if (!check(checks, 'input', isEventShape(event), isEventShape(event) ? 'a Nostr event object' : 'not a Nostr event object (id, pubkey, created_at, kind, tags, content, sig)')) {
    return finish(checks, { attestation: null })
  }
  const ev = event as NostrEvent
  // Checked up front as verifyAttestation does: a malformed option (a null publicKey, a
  // root that is not a certificate) is an `input` verdict, never an exception.
  try {
    normalizeOptions(options)
  } catch (err) {
    return failure('input', err instanceof VerifyError ? err.message : 'options: malformed')
  }
  if (options === undefined || options === null) options = {}
  const now = toUnixSeconds(options.now)
  const signed = verifySignature(ev)
  check(checks, 'event', signed, signed ? 'event id and Schnorr signature valid' : 'event id or Schnorr signature invalid')
  check(checks, 'kind', ev.kind === ROOT_KIND, `kind ${ev.kind}${ev.kind === ROOT_KIND ? '' : `, expected ${ROOT_KIND}`}`)
  const isProtected = ev.tags.some((t) => t[0] === '-')
  check(checks, 'protected', isProtected, isProtected ? 'NIP-70 ["-"] tag present' : 'NIP-70 ["-"] tag missing')
  checkT(checks, ev, options.expect ?? 'prod')

  if (ev.content.length > MAX_CONTENT_LENGTH) {
    // not decoded: it could only yield a document verifyAttestation rejects for its size
    check(checks, 'input', false, `content is ${ev.content.length} characters; a document of at most ${MAX_DOCUMENT_BYTES} bytes is at most ${MAX_CONTENT_LENGTH} in base64`)
    return finish(checks, { attestation: null, event: ev })
  }
  let doc: Uint8Array
  try {
    doc = base64ToBytes(ev.content)
  } catch {
    check(checks, 'cose', false, 'content is not base64')
    return finish(checks, { attestation: null, event: ev })
  }
  if (options.publicKey !== undefined) {
    const expected = hexOf(options.publicKey)
    if (expected !== ev.pubkey) check(checks, 'pubkey', false, `event pubkey ${ev.pubkey} is not the expected ${expected}`)
  }
  // NEC-01: the document's public_key is the event's own pubkey (32-byte x-only).
  const att = await verifyAttestation(doc, { ...options, publicKey: ev.pubkey })
  for (const c of att.checks) if (c.id !== 'input' || !c.ok) checks.push(c)

  const expirations = tagValues(ev, 'expiration')
  const expiration = expirations.length === 1 && /^[0-9]{1,12}$/.test(expirations[0] ?? '') ? Number(expirations[0]) : null
  if (expiration === null) {
    check(checks, 'expiration', false, `expected exactly one numeric expiration tag, found ${JSON.stringify(expirations)}`)
  } else if (expiration <= now) {
    check(checks, 'expiration', false, `expired at ${iso(expiration)} (now ${iso(now)})`)
  } else if (att.attestation !== null && expiration > att.attestation.certificate.notAfter) {
    check(
      checks,
      'expiration',
      false,
      `expiration ${iso(expiration)} is after the leaf certificate's notAfter ${iso(att.attestation.certificate.notAfter)}`,
    )
  } else {
    check(checks, 'expiration', att.attestation !== null, `expires ${iso(expiration)}, not after the leaf certificate`)
  }
  return finish(checks, { attestation: att.attestation, event: ev })
}

interface MemoEntry {
  result: VerifyResult
  /** the verdict holds while every certificate is valid (bounds inclusive, as RFC 5280
   * says) and the root event has not expired (expiration exclusive) */
  from: number
  until: number
  expiration: number
}

const memo = new Map<string, MemoEntry>()
let memoHits = 0

/** Clears the tee_root memo (benchmarks measure cold paths). */
export function clearTeeRootMemo(): void {
  memo.clear()
  memoHits = 0
}

export function teeRootMemoStats(): { size: number; hits: number } {
  return { size: memo.size, hits: memoHits }
}

function hexOf(value: Uint8Array | string): string {
  return typeof value === 'string' ? value.toLowerCase() : bytesToHex(value)
}

/** An expected value as it enters the memo key; a value of another type is an `input` error. */
function keyBytes(value: unknown, name: string): string {
  if (value === undefined) return ''
  if (typeof value === 'string' || value instanceof Uint8Array) return hexOf(value)
  throw new VerifyError('input', `options.${name}: expected bytes or a hex string`)
}

/**
 * Everything in the options that changes a verdict, except `now` (the memo keeps a window).
 * Only the types are checked here (the values are checked when a root is verified), so
 * that two different option values never share a key and nothing here throws a TypeError.
 * Throws VerifyError('input').
 */
function optionsKey(o: VerifyOptions): string {
  const { root, expectedPcrs, anyPcrs } = o
  if (root !== undefined && typeof root !== 'string' && !(root instanceof Uint8Array)) throw new VerifyError('input', 'root: expected DER bytes or PEM text')
  if (anyPcrs !== undefined && typeof anyPcrs !== 'boolean') throw new VerifyError('input', 'options.anyPcrs: expected a boolean')
  if (expectedPcrs !== undefined && (typeof expectedPcrs !== 'object' || expectedPcrs === null || Array.isArray(expectedPcrs))) {
    throw new VerifyError('input', 'options.expectedPcrs: expected an object of index → value')
  }
  const pcrs = expectedPcrs === undefined ? [] : Object.entries(expectedPcrs).map(([k, v]) => `${k}=${keyBytes(v, `expectedPcrs[${k}]`)}`).sort()
  return JSON.stringify([
    root === undefined ? '' : typeof root === 'string' ? root : bytesToHex(root),
    pcrs,
    anyPcrs === true,
    o.expect ?? 'prod',
    keyBytes(o.publicKey, 'publicKey'),
    keyBytes(o.nonce, 'nonce'),
    keyBytes(o.userData, 'userData'),
  ])
}

async function verifyRootMemo(teeRoot: string, root: unknown, options: VerifyOptions, now: number): Promise<VerifyResult> {
  let key: string
  try {
    key = `${optionsKey(options)}\n${teeRoot}`
  } catch (err) {
    return failure('input', err instanceof VerifyError ? err.message : 'options: malformed')
  }
  const hit = memo.get(key)
  if (hit !== undefined && now >= hit.from && now <= hit.until && now < hit.expiration) {
    memoHits++
    // refresh LRU position
    memo.delete(key)
    memo.set(key, hit)
    // every caller gets its own copy: one that edits its result must not change the next one's
    return structuredClone(hit.result)
  }
  const result = await verifyRootEvent(root, { ...options, now })
  // Only successes are memoized: a failure may be cheap to recompute and must never be
  // mistaken for a pass, and a success is bounded by its own validity window.
  if (result.valid && result.attestation !== null && result.event !== undefined) {
    const expiration = Number(tagValues(result.event, 'expiration')[0])
    const path = result.attestation.chain
    memo.set(key, { result: structuredClone(result), from: path.notBefore, until: path.notAfter, expiration })
    if (memo.size > MEMO_LIMIT) {
      const oldest = memo.keys().next().value
      if (oldest !== undefined) memo.delete(oldest)
    }
  }
  return result
}

/**
 * Verifies a carrier: any event with a ["tee_root", <JSON of a kind:23793 event>] tag.
 * For a NIP-17 rumor pass `sealSigner` (the verified seal's pubkey) instead of a signature.
 * Never throws.
 */
export async function verifyTeeRoot(carrier: unknown, options?: TeeRootOptions | null): Promise<VerifyResult> {
  const checks: Check[] = []
  if (options === undefined || options === null) options = {}
  if (typeof options !== 'object') return failure('input', 'options: expected an object')
  const now = safeNow(options)
  if (now === null) return failure('input', 'options.now must be a Date or unix seconds')
  const { sealSigner, ...rootOptions } = options
  if (!validateEvent(carrier)) {
    check(checks, 'input', false, 'not a Nostr event object')
    return finish(checks, { attestation: null })
  }
  const ev = carrier as UnsignedEvent & { id?: unknown; sig?: unknown; pubkey: string }
  if (sealSigner !== undefined && typeof sealSigner !== 'string') return failure('input', 'sealSigner must be a hex pubkey')
  if (sealSigner !== undefined) {
    const idOk = ev.id === undefined || ev.id === getEventHash(ev as NostrEvent)
    check(checks, 'carrier', ev.kind === RUMOR_KIND, `rumor kind ${ev.kind}${ev.kind === RUMOR_KIND ? '' : `, expected ${RUMOR_KIND}`}`)
    check(checks, 'carrier', idOk, idOk ? 'rumor id matches its content' : 'rumor id does not match its content')
    check(
      checks,
      'carrier',
      ev.pubkey === sealSigner.toLowerCase(),
      ev.pubkey === sealSigner.toLowerCase() ? 'rumor pubkey equals the seal signer' : `rumor pubkey ${ev.pubkey} is not the seal signer ${sealSigner}`,
    )
  } else {
    const signed = typeof ev.id === 'string' && typeof ev.sig === 'string' && verifySignature(ev as NostrEvent)
    check(checks, 'carrier', signed, signed ? 'carrier id and Schnorr signature valid' : 'carrier id or Schnorr signature invalid')
  }

  const teeRoots = tagValues(ev, TEE_ROOT_TAG)
  const teeRoot = teeRoots[0]
  if (teeRoots.length !== 1 || teeRoot === undefined) {
    check(checks, 'carrier', false, `expected exactly one tee_root tag, found ${teeRoots.length}`)
    return finish(checks, { attestation: null })
  }
  if (teeRoot.length > MAX_TEE_ROOT_LENGTH) {
    check(checks, 'carrier', false, `tee_root is ${teeRoot.length} characters, more than ${MAX_TEE_ROOT_LENGTH}`)
    return finish(checks, { attestation: null })
  }
  let root: unknown
  try {
    root = JSON.parse(teeRoot)
  } catch {
    check(checks, 'carrier', false, 'tee_root is not JSON')
    return finish(checks, { attestation: null })
  }
  const rootResult = await verifyRootMemo(teeRoot, root, rootOptions, now)
  checks.push(...rootResult.checks)
  const rootEvent = rootResult.event
  if (rootEvent !== undefined) {
    const same = ev.pubkey === rootEvent.pubkey
    check(checks, 'carrier', same, same ? 'carrier pubkey equals the root pubkey' : `carrier pubkey ${ev.pubkey} is not the root pubkey ${rootEvent.pubkey}`)
    const expiration = Number(tagValues(rootEvent, 'expiration')[0])
    const notBefore = rootResult.attestation?.certificate.notBefore
    if (notBefore !== undefined && Number.isFinite(expiration)) {
      const inside = ev.created_at >= notBefore && ev.created_at <= expiration
      check(
        checks,
        'carrier',
        inside,
        `created_at ${iso(ev.created_at)} ${inside ? 'inside' : 'outside'} the attestation's validity ${iso(notBefore)} .. ${iso(expiration)}`,
      )
    }
  }
  return finish(checks, { attestation: rootResult.attestation, ...(rootEvent === undefined ? {} : { event: rootEvent }) })
}
