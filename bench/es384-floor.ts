// The floor for a verifier: what no implementation on Node can skip. One CBOR decode of
// the envelope and payload (cbor-x), the Sig_structure, and ES384 verifications with
// node:crypto (OpenSSL, synchronous), keys and certificates parsed beforehand:
//   one  — the document signature alone: a known chain, nothing else to check;
//   full — the document plus every certificate link (root → cabundle… → leaf): five
//          verifications for the usual cabundle of four.
import { X509Certificate, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { decode as cborDecode } from 'cbor-x'

/** RFC 9052 §4.4: array(4), tstr "Signature1", the protected bstr, empty external_aad. */
const SIG_CONTEXT = Buffer.from('Signature1')
const SIG_STRUCTURE_ARRAY4 = 0x84
const TSTR_SHORT = 0x60
const BSTR_SHORT = 0x40
const BSTR_UINT16 = 0x59
const BSTR_UINT8 = 0x58
const SHORT_LIMIT = 24
const UINT8_LIMIT = 256

export interface Es384Floor {
  /** decode + Sig_structure + the document's ES384 verification */
  one(): boolean
  /** one() plus every certificate link's ES384 verification */
  full(): boolean
  /** verifications full() makes */
  verifications: number
}

function bstrHeader(length: number): Buffer {
  if (length < SHORT_LIMIT) return Buffer.of(BSTR_SHORT | length)
  if (length < UINT8_LIMIT) return Buffer.of(BSTR_UINT8, length)
  return Buffer.of(BSTR_UINT16, length >> 8, length & 0xff)
}

function sigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Buffer {
  return Buffer.concat([
    Buffer.of(SIG_STRUCTURE_ARRAY4, TSTR_SHORT | SIG_CONTEXT.length),
    SIG_CONTEXT,
    bstrHeader(protectedHeader.length),
    protectedHeader,
    bstrHeader(0),
    bstrHeader(payload.length),
    payload,
  ])
}

interface Decoded {
  protectedHeader: Uint8Array
  payload: Uint8Array
  signature: Uint8Array
  certificate: Uint8Array
  cabundle: Uint8Array[]
}

function decodeDocument(doc: Uint8Array): Decoded {
  const top: unknown = cborDecode(doc)
  if (!Array.isArray(top) || top.length !== 4) throw new Error('not a COSE_Sign1')
  const [protectedHeader, , payload, signature] = top as [Uint8Array, unknown, Uint8Array, Uint8Array]
  const fields = cborDecode(payload) as { certificate?: Uint8Array; cabundle?: Uint8Array[] }
  if (fields.certificate === undefined || fields.cabundle === undefined) throw new Error('payload lacks certificate or cabundle')
  return { protectedHeader, payload, signature, certificate: fields.certificate, cabundle: fields.cabundle }
}

/** `check: false` leaves full() uncalled, so a fresh process's first call is its first (bench/fresh.ts). */
export function es384Floor(doc: Uint8Array, opts: { check: boolean } = { check: true }): Es384Floor {
  const parsed = decodeDocument(doc)
  const certs = [...parsed.cabundle, parsed.certificate].map((der) => new X509Certificate(der))
  const leafKey: KeyObject = certs[certs.length - 1]!.publicKey
  const issuerKeys = certs.map((c) => c.publicKey)

  const one = (): boolean => {
    const d = decodeDocument(doc)
    return nodeVerify('sha384', sigStructure(d.protectedHeader, d.payload), { key: leafKey, dsaEncoding: 'ieee-p1363' }, d.signature)
  }
  const full = (): boolean => {
    let ok = one()
    for (let i = 1; i < certs.length; i++) ok = certs[i]!.verify(issuerKeys[i - 1]!) && ok
    return ok
  }
  if (opts.check && !full()) throw new Error('floor: the document or a certificate link does not verify with node:crypto')
  return { one, full, verifications: certs.length }
}
