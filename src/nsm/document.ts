// Encoding of an attestation document byte for byte as the real NSM emits it: an untagged
// COSE_Sign1 [protected, {}, payload, signature] whose payload is the nine-key map in the
// NSM's field order, signed ES384 by the leaf key. Real modules switched the payload map from
// definite (0xa9) to indefinite length (0xbf … 0xff) in 2025-09; both forms are available.
import { concatBytes } from '@noble/hashes/utils.js'
import { Encoder } from 'cbor-x'
import { sign, type KeyObject } from 'node:crypto'

/** The protected header of every real document: the CBOR map {1: -35} (alg: ES384). */
export const PROTECTED_HEADER_ES384 = Uint8Array.of(0xa1, 0x01, 0x38, 0x22)
/** COSE Sig_structure context for COSE_Sign1 (RFC 9052 §4.4). */
const SIGNATURE1_CONTEXT = 'Signature1'
/** Initial byte of an indefinite-length map and the break that ends it (RFC 8949 §3.2.2). */
const CBOR_INDEFINITE_MAP = 0xbf
const CBOR_BREAK = 0xff
/** Largest unsigned integer cbor-x writes as an integer from a JS number; above it, a float. */
const CBOR_UINT32_MAX = 0xffffffff

// Plain RFC 8949 output only: no record extension, no tags on typed arrays, no
// structured-clone tags; Maps keep insertion order and are written definite-length.
const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  tagUint8Array: false,
  structuredClone: false,
  pack: false,
})

/**
 * How the payload map is framed: 'indefinite' as the NSM has written it since 2025-09,
 * 'definite' as it did before. Everything inside the map (the PCR map, the cabundle array)
 * is definite-length in both.
 */
export type PayloadMapForm = 'indefinite' | 'definite'
export const PAYLOAD_MAP_FORMS: readonly PayloadMapForm[] = ['indefinite', 'definite']
/** What the current NSM firmware emits. */
export const DEFAULT_PAYLOAD_MAP_FORM: PayloadMapForm = 'indefinite'

export interface AttestationFields {
  moduleId: string
  /** ms since the epoch */
  timestamp: number
  /** index → 48-byte value, written in ascending index order */
  pcrs: Map<number, Uint8Array>
  certificate: Uint8Array
  /** root first, then each intermediate down to the leaf's issuer */
  cabundle: Uint8Array[]
  publicKey: Uint8Array | null
  userData: Uint8Array | null
  nonce: Uint8Array | null
}

function encode(value: unknown): Uint8Array {
  // a copy: cbor-x hands out views into a buffer it keeps writing into
  return new Uint8Array(encoder.encode(value))
}

/** ciborium writes u64 minimally; cbor-x needs a bigint to write one above 2^32 as an integer. */
function cborUint(n: number): number | bigint {
  return n <= CBOR_UINT32_MAX ? n : BigInt(n)
}

export function encodePayload(fields: AttestationFields, mapForm: PayloadMapForm = DEFAULT_PAYLOAD_MAP_FORM): Uint8Array {
  const pcrs = new Map<number, Uint8Array>()
  for (const index of [...fields.pcrs.keys()].sort((a, b) => a - b)) {
    const value = fields.pcrs.get(index)
    if (value !== undefined) pcrs.set(index, value)
  }
  // field order of the NSM's AttestationDoc struct (nsm-api src/api/mod.rs)
  const payload = new Map<string, unknown>([
    ['module_id', fields.moduleId],
    ['digest', 'SHA384'],
    ['timestamp', cborUint(fields.timestamp)],
    ['pcrs', pcrs],
    ['certificate', fields.certificate],
    ['cabundle', fields.cabundle],
    ['public_key', fields.publicKey],
    ['user_data', fields.userData],
    ['nonce', fields.nonce],
  ])
  if (mapForm === 'definite') return encode(payload)
  // cbor-x writes Maps definite-length only: frame the entries by hand
  const parts: Uint8Array[] = [Uint8Array.of(CBOR_INDEFINITE_MAP)]
  for (const [key, value] of payload) parts.push(encode(key), encode(value))
  parts.push(Uint8Array.of(CBOR_BREAK))
  return concatBytes(...parts)
}

export function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return encode([SIGNATURE1_CONTEXT, protectedHeader, new Uint8Array(0), payload])
}

/** Sign and wrap: the raw COSE_Sign1 bytes the NSM would return. */
export function encodeAttestationDocument(
  fields: AttestationFields,
  leafKey: KeyObject,
  mapForm: PayloadMapForm = DEFAULT_PAYLOAD_MAP_FORM,
): Uint8Array {
  const payload = encodePayload(fields, mapForm)
  // ES384 signatures in COSE are r ‖ s, 48 bytes each (RFC 9053 §2.1)
  const signature = new Uint8Array(
    sign('sha384', sigStructure(PROTECTED_HEADER_ES384, payload), { key: leafKey, dsaEncoding: 'ieee-p1363' }),
  )
  return encode([PROTECTED_HEADER_ES384, new Map(), payload, signature])
}
