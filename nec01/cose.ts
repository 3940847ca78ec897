// COSE_Sign1 (RFC 9052 §4.2) as the Nitro NSM emits it: protected header {1: -35}
// (alg ES384, RFC 9053 §2.1), empty unprotected header, an attached payload and a raw
// r‖s signature. Anything else is rejected as `cose`.
import { CBOR_MAJOR, CborError, decodeCbor, encodeHeader, type CborLimits } from './cbor.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { verifyEs384, type VerifyKey } from './chain.js'
import { bytesEqual } from './encoding.js'
import { VerifyError } from './result.js'

/** RFC 9052 §4.2: the CBOR tag of a tagged COSE_Sign1; 0xd2 is its one-byte encoding. */
export const COSE_SIGN1_TAG = 18
const COSE_SIGN1_TAG_BYTE = 0xc0 | COSE_SIGN1_TAG
/** {1: -35}: map(1), key 1 (alg, RFC 9052 §3.1), value -35 (ES384, RFC 9053 §2.1). */
export const ES384_PROTECTED_HEADER: Uint8Array = Uint8Array.of(0xa1, 0x01, 0x38, 0x22)
/** COSE algorithm id of ES384 (RFC 9053 §2.1). */
export const COSE_ALG_ES384 = -35
/** AWS NSM attestation_process.md §3.1: payload is bstr .size (1..16384). */
export const MAX_PAYLOAD_BYTES = 16384
/** RFC 9053 §2.1: ES384 signature is r‖s, each left-padded to 48 bytes (the P-384 order size). */
export const ES384_SIGNATURE_BYTES = 96

/** Enough to see every field of the envelope and describe a wrong header; no deeper. */
const ENVELOPE_LIMITS: CborLimits = { maxDepth: 2, maxItems: 16, maxStringBytes: MAX_PAYLOAD_BYTES, indefiniteContainers: false }
const HEADER_LIMITS: CborLimits = { maxDepth: 2, maxItems: 16, maxStringBytes: 256, indefiniteContainers: false }

export interface CoseSign1 {
  /** the protected header bstr exactly as sent (it is part of the signed data) */
  protected: Uint8Array
  payload: Uint8Array
  signature: Uint8Array
  tagged: boolean
}

function describeProtected(bytes: Uint8Array): string {
  let header: unknown
  try {
    header = decodeCbor(bytes, HEADER_LIMITS)
  } catch (err) {
    return `protected header is not a valid CBOR map (${err instanceof Error ? err.message : 'undecodable'}); expected {1: -35} (ES384)`
  }
  if (!(header instanceof Map)) return 'protected header is not a map; expected {1: -35} (ES384)'
  const alg = header.get(1)
  if (alg !== COSE_ALG_ES384) return `protected header alg is ${String(alg)}; only -35 (ES384) is accepted`
  return `protected header has ${header.size} entries or a non-canonical encoding (h'${bytesToHex(bytes.subarray(0, 32))}'); expected exactly {1: -35}`
}

/** Parses and checks the envelope. Throws VerifyError('cose'). */
export function parseCoseSign1(doc: Uint8Array): CoseSign1 {
  const tagged = doc.length > 0 && doc[0] === COSE_SIGN1_TAG_BYTE
  let top: unknown
  try {
    top = decodeCbor(tagged ? doc.subarray(1) : doc, ENVELOPE_LIMITS)
  } catch (err) {
    if (err instanceof CborError) throw new VerifyError('cose', `not a COSE_Sign1: ${err.message}`)
    throw err
  }
  if (!Array.isArray(top) || top.length !== 4) {
    throw new VerifyError('cose', 'not a COSE_Sign1: expected an array of 4 (protected, unprotected, payload, signature)')
  }
  const [prot, unprotected, payload, signature] = top as unknown[]
  if (!(prot instanceof Uint8Array)) throw new VerifyError('cose', 'protected header is not a byte string')
  if (!bytesEqual(prot, ES384_PROTECTED_HEADER)) throw new VerifyError('cose', describeProtected(prot))
  if (!(unprotected instanceof Map)) throw new VerifyError('cose', 'unprotected header is not a map')
  if (unprotected.size !== 0) throw new VerifyError('cose', `unprotected header has ${unprotected.size} entries; expected an empty map`)
  if (payload === null) throw new VerifyError('cose', 'payload is detached (nil); expected the attestation document')
  if (!(payload instanceof Uint8Array)) throw new VerifyError('cose', 'payload is not a byte string')
  if (payload.length < 1 || payload.length > MAX_PAYLOAD_BYTES) {
    throw new VerifyError('cose', `payload is ${payload.length} bytes; expected 1..${MAX_PAYLOAD_BYTES}`)
  }
  if (!(signature instanceof Uint8Array)) throw new VerifyError('cose', 'signature is not a byte string')
  if (signature.length !== ES384_SIGNATURE_BYTES) {
    throw new VerifyError('cose', `signature is ${signature.length} bytes; ES384 needs exactly ${ES384_SIGNATURE_BYTES} (r‖s)`)
  }
  return { protected: prot, payload, signature, tagged }
}

/** RFC 9052 §4.4 Sig_structure ["Signature1", body_protected, external_aad = h'', payload]. */
export function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const context = new TextEncoder().encode('Signature1')
  const parts = [
    encodeHeader(CBOR_MAJOR.array, 4),
    encodeHeader(CBOR_MAJOR.text, context.length),
    context,
    encodeHeader(CBOR_MAJOR.bytes, protectedHeader.length),
    protectedHeader,
    encodeHeader(CBOR_MAJOR.bytes, 0),
    encodeHeader(CBOR_MAJOR.bytes, payload.length),
    payload,
  ]
  let total = 0
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

/**
 * ES384 over the Sig_structure with the leaf key, in the raw r‖s form. Neither WebCrypto
 * nor OpenSSL imposes low-S (real NSM signatures are high-S about half the time).
 */
export function verifyCoseSignature(key: VerifyKey, cose: CoseSign1): Promise<boolean> {
  return verifyEs384(key, cose.signature, sigStructure(cose.protected, cose.payload))
}
