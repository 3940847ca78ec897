// X.509 (RFC 5280) certificates of the Nitro attestation PKI, parsed for exactly what path
// validation needs. Own DER walk instead of @peculiar/x509: measured, @peculiar/x509 takes
// ~2 ms to parse the five certificates of one document (~4 ms with extensions), more than
// the five ES384 verifications it would serve, and it needs a reflect-metadata polyfill.
// The profile is strict: v3, ecdsa-with-SHA384, P-384 keys, and any critical extension
// we do not understand rejects the certificate (RFC 5280 §4.2).
import { bytesToHex } from '@noble/hashes/utils.js'
import { base64ToBytes, bytesEqual, bytesToBase64, copyBytes } from './encoding.js'
import {
  DerError,
  TAG,
  booleanValue,
  children,
  contentOf,
  elementOf,
  expectTlv,
  smallInteger,
  unsignedInteger,
  type Tlv,
} from './der.js'
import { VerifyError } from './result.js'

/** AlgorithmIdentifier { ecdsa-with-SHA384 (1.2.840.10045.4.3.3) }, parameters absent (RFC 5758 §3.2). */
const ECDSA_WITH_SHA384 = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03)
/** AlgorithmIdentifier { id-ecPublicKey (1.2.840.10045.2.1), secp384r1 (1.3.132.0.34) } (RFC 5480 §2.1.1). */
const EC_P384_KEY = Uint8Array.of(
  0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22,
)
/** P-384 field and order size in bytes (SEC 2 §2.5.1). */
const P384_BYTES = 48
/** Uncompressed point prefix (SEC 1 §2.3.3). */
const POINT_UNCOMPRESSED = 0x04
/** id-ce-basicConstraints 2.5.29.19, id-ce-keyUsage 2.5.29.15 (RFC 5280 §4.2.1.9, §4.2.1.3): OID contents. */
const OID_BASIC_CONSTRAINTS = Uint8Array.of(0x55, 0x1d, 0x13)
const OID_KEY_USAGE = Uint8Array.of(0x55, 0x1d, 0x0f)
/** id-at-commonName 2.5.4.3: only for readable messages. */
const OID_COMMON_NAME = Uint8Array.of(0x55, 0x04, 0x03)
/** Version ::= INTEGER { v1(0), v2(1), v3(2) } (RFC 5280 §4.1). */
const VERSION_V3 = 2

/** KeyUsage bits (RFC 5280 §4.2.1.3), as masks of `Certificate.keyUsage`. */
export const KEY_USAGE = { digitalSignature: 1 << 0, keyCertSign: 1 << 5 } as const

export interface Certificate {
  der: Uint8Array
  /** the tbsCertificate element: the bytes the issuer signed */
  tbs: Uint8Array
  serialHex: string
  /** DER of the issuer and subject Names, compared byte for byte when chaining */
  issuer: Uint8Array
  subject: Uint8Array
  /** subject CN for messages, when it has one */
  commonName: string | null
  /** validity, milliseconds since the epoch, both inclusive (RFC 5280 §4.1.2.5) */
  notBefore: number
  notAfter: number
  /**
   * The uncompressed P-384 point 0x04‖X‖Y, for WebCrypto importKey('raw'): the same key
   * as the SPKI, imported ~4× faster (measured in Node 20: 54 µs vs 220 µs).
   */
  publicKey: Uint8Array<ArrayBuffer>
  /** the issuer's signature as raw r‖s, 96 bytes */
  signature: Uint8Array<ArrayBuffer>
  /** basicConstraints: null when the extension is absent */
  ca: boolean | null
  pathLen: number | null
  /** KeyUsage bit mask (see KEY_USAGE); null when the extension is absent */
  keyUsage: number | null
}

/** ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 5480 §2.2 / RFC 3279 §2.2.3) → r‖s. */
function ecdsaSignatureToRaw(bytes: Uint8Array, bitString: Tlv): Uint8Array<ArrayBuffer> {
  const content = contentOf(bytes, bitString)
  if (content.length < 1 || content[0] !== 0) throw new DerError('signatureValue: BIT STRING with unused bits')
  const seq = expectTlv(content, 1, content.length, TAG.sequence, 'ECDSA-Sig-Value')
  if (seq.end !== content.length) throw new DerError('ECDSA-Sig-Value: trailing bytes')
  const parts = children(content, seq)
  if (parts.length !== 2) throw new DerError('ECDSA-Sig-Value: expected r and s')
  const raw = new Uint8Array(2 * P384_BYTES)
  parts.forEach((part, i) => {
    const magnitude = unsignedInteger(content, part, i === 0 ? 'r' : 's')
    if (magnitude.length > P384_BYTES) throw new DerError(`${i === 0 ? 'r' : 's'}: longer than ${P384_BYTES} bytes`)
    raw.set(magnitude, (i + 1) * P384_BYTES - magnitude.length)
  })
  return raw
}

function parseTime(bytes: Uint8Array, tlv: Tlv, what: string): number {
  const text = contentOf(bytes, tlv)
  // RFC 5280 §4.1.2.5.1/.2: UTCTime YYMMDDHHMMSSZ, GeneralizedTime YYYYMMDDHHMMSSZ, no fractions
  const long = tlv.tag === TAG.generalizedTime
  if (!long && tlv.tag !== TAG.utcTime) throw new DerError(`${what}: not a UTCTime or GeneralizedTime`)
  if (text.length !== (long ? 15 : 13) || text[text.length - 1] !== 0x5a /* Z */) throw new DerError(`${what}: not in the RFC 5280 form`)
  const digits: number[] = []
  for (let i = 0; i < text.length - 1; i++) {
    const d = text[i]! - 48
    if (d < 0 || d > 9) throw new DerError(`${what}: non-digit`)
    digits.push(d)
  }
  const two = (i: number): number => digits[i]! * 10 + digits[i + 1]!
  let year: number
  let i = 0
  if (long) {
    year = two(0) * 100 + two(2)
    i = 4
  } else {
    // RFC 5280 §4.1.2.5.1: YY >= 50 is 19YY, else 20YY
    const yy = two(0)
    year = yy >= 50 ? 1900 + yy : 2000 + yy
    i = 2
  }
  const month = two(i)
  const day = two(i + 2)
  const hour = two(i + 4)
  const minute = two(i + 6)
  const second = two(i + 8)
  const ms = Date.UTC(year, month - 1, day, hour, minute, second)
  const check = new Date(ms)
  if (
    month < 1 ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day
  ) {
    throw new DerError(`${what}: not a valid date`)
  }
  return ms
}

/** One decoder for every Name: a non-streaming decode() keeps no state between calls. */
const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** The string values of one attribute type in a Name, in order (a Name may repeat a type). */
function nameValues(bytes: Uint8Array, name: Tlv, oid: Uint8Array): string[] {
  const out: string[] = []
  for (const rdn of children(bytes, name)) {
    for (const atv of children(bytes, rdn)) {
      const [type, value, extra] = children(bytes, atv)
      if (type === undefined || value === undefined || extra !== undefined || type.tag !== TAG.oid) throw new DerError('Name: malformed attribute')
      if (!bytesEqual(contentOf(bytes, type), oid)) continue
      if (value.tag !== TAG.utf8String && value.tag !== TAG.printableString && value.tag !== TAG.ia5String) throw new DerError('Name: attribute is not a string')
      out.push(UTF8.decode(contentOf(bytes, value)))
    }
  }
  return out
}

function commonNameOf(bytes: Uint8Array, name: Tlv): string | null {
  try {
    const cn = nameValues(bytes, name, OID_COMMON_NAME)[0]
    return cn === undefined ? null : cn.slice(0, 128)
  } catch {
    // the Name is compared as bytes; an unusual inner shape only costs the readable label
  }
  return null
}

/** Name attribute types NEC-03 reads (RFC 4519): id-at-commonName, organizationName, organizationalUnitName. */
export const NAME_ATTRIBUTE = {
  CN: OID_COMMON_NAME,
  O: Uint8Array.of(0x55, 0x04, 0x0a),
  OU: Uint8Array.of(0x55, 0x04, 0x0b),
} as const

/** Every value of one attribute in the certificate's subject. Throws DerError on a malformed Name. */
export function subjectValues(cert: Certificate, attribute: keyof typeof NAME_ATTRIBUTE): string[] {
  const name = expectTlv(cert.subject, 0, cert.subject.length, TAG.sequence, 'subject')
  return nameValues(cert.subject, name, NAME_ATTRIBUTE[attribute])
}

interface Extensions {
  ca: boolean | null
  pathLen: number | null
  keyUsage: number | null
}

function parseBasicConstraints(value: Uint8Array): { ca: boolean; pathLen: number | null } {
  const seq = expectTlv(value, 0, value.length, TAG.sequence, 'basicConstraints')
  if (seq.end !== value.length) throw new DerError('basicConstraints: trailing bytes')
  const fields = children(value, seq)
  let ca = false
  let pathLen: number | null = null
  let k = 0
  if (fields[k]?.tag === TAG.boolean) ca = booleanValue(value, fields[k++]!, 'basicConstraints.cA')
  if (fields[k]?.tag === TAG.integer) pathLen = smallInteger(value, fields[k++]!, 'pathLenConstraint')
  if (k !== fields.length) throw new DerError('basicConstraints: unexpected field')
  return { ca, pathLen }
}

function parseKeyUsage(value: Uint8Array): number {
  const bits = expectTlv(value, 0, value.length, TAG.bitString, 'keyUsage')
  if (bits.end !== value.length) throw new DerError('keyUsage: trailing bytes')
  const content = contentOf(value, bits)
  if (content.length < 2 || content[0]! > 7) throw new DerError('keyUsage: malformed BIT STRING')
  // bit 0 is the most significant bit of the first byte (X.690 §8.6.2.1); the mask keeps bits 0..15
  return reverseBits(content[1]!) | (content.length > 2 ? reverseBits(content[2]!) << 8 : 0)
}

/** A byte's bits in reverse order, without a loop (this runs uncompiled on a first verification). */
function reverseBits(byte: number): number {
  let b = ((byte & 0xf0) >> 4) | ((byte & 0x0f) << 4)
  b = ((b & 0xcc) >> 2) | ((b & 0x33) << 2)
  return ((b & 0xaa) >> 1) | ((b & 0x55) << 1)
}

/** Dotted form of an OID's content octets (X.690 §8.19), for messages only. */
function oidText(content: Uint8Array): string {
  const arcs: number[] = []
  let value = 0
  for (const b of content) {
    value = value * 128 + (b & 0x7f)
    if ((b & 0x80) === 0) {
      arcs.push(value)
      value = 0
    }
  }
  const first = arcs.shift() ?? 0
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80]
  return [...head, ...arcs].join('.')
}

function parseExtensions(bytes: Uint8Array, wrapper: Tlv): Extensions {
  const seq = expectTlv(bytes, wrapper.contentStart, wrapper.end, TAG.sequence, 'extensions')
  if (seq.end !== wrapper.end) throw new DerError('extensions: trailing bytes')
  const out: Extensions = { ca: null, pathLen: null, keyUsage: null }
  const seen = new Set<string>()
  for (const ext of children(bytes, seq)) {
    if (ext.tag !== TAG.sequence) throw new DerError('extension: not a SEQUENCE')
    const fields = children(bytes, ext)
    const oid = fields[0]
    if (oid === undefined || oid.tag !== TAG.oid) throw new DerError('extension: no extnID')
    let k = 1
    let critical = false
    if (fields[k]?.tag === TAG.boolean) critical = booleanValue(bytes, fields[k++]!, 'extension.critical')
    const value = fields[k++]
    if (value === undefined || value.tag !== TAG.octetString || k !== fields.length) throw new DerError('extension: malformed')
    const oidBytes = contentOf(bytes, oid)
    // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension
    const id = oidText(oidBytes)
    if (seen.has(id)) throw new DerError(`duplicate extension ${id}`)
    seen.add(id)
    const inner = contentOf(bytes, value)
    if (bytesEqual(oidBytes, OID_BASIC_CONSTRAINTS)) {
      const bc = parseBasicConstraints(inner)
      out.ca = bc.ca
      out.pathLen = bc.pathLen
    } else if (bytesEqual(oidBytes, OID_KEY_USAGE)) {
      out.keyUsage = parseKeyUsage(inner)
    } else if (critical) {
      // RFC 5280 §4.2: MUST reject a certificate with an unrecognized critical extension
      throw new DerError(`unrecognized critical extension ${id}`)
    }
  }
  return out
}

export interface ParseProfile {
  /**
   * Accept a v1 certificate (no version field, no extensions). Never for the Nitro PKI;
   * early NEC-03 build certificates were made with `openssl x509 -req` without extensions.
   */
  allowV1?: boolean
}

/**
 * Parses one DER certificate in the profile above. Throws DerError with a short reason;
 * callers prefix which certificate it was.
 */
export function parseCertificate(der: Uint8Array, profile: ParseProfile = {}): Certificate {
  const cert = expectTlv(der, 0, der.length, TAG.sequence, 'Certificate')
  if (cert.end !== der.length) throw new DerError('trailing bytes after the certificate')
  const [tbs, sigAlg, sigValue, extra] = children(der, cert)
  if (tbs === undefined || sigAlg === undefined || sigValue === undefined || extra !== undefined) {
    throw new DerError('Certificate: expected tbsCertificate, signatureAlgorithm, signatureValue')
  }
  if (tbs.tag !== TAG.sequence) throw new DerError('tbsCertificate: not a SEQUENCE')
  if (sigValue.tag !== TAG.bitString) throw new DerError('signatureValue: not a BIT STRING')
  if (!bytesEqual(elementOf(der, sigAlg), ECDSA_WITH_SHA384)) throw new DerError('signature algorithm is not ecdsa-with-SHA384')

  const fields = children(der, tbs)
  let k = 0
  const version = fields[k]?.tag === TAG.context0 ? fields[k++]! : undefined
  if (version === undefined && profile.allowV1 !== true) throw new DerError('not a v3 certificate')
  if (version !== undefined) {
    const versionInt = expectTlv(der, version.contentStart, version.end, TAG.integer, 'version')
    // DER omits the DEFAULT v1, so an explicit version is v3 (v2 certificates do not occur)
    if (versionInt.end !== version.end || smallInteger(der, versionInt, 'version') !== VERSION_V3) throw new DerError('not a v3 certificate')
  }
  const serial = fields[k++]
  const innerAlg = fields[k++]
  const issuer = fields[k++]
  const validity = fields[k++]
  const subject = fields[k++]
  const spki = fields[k++]
  if (serial === undefined || innerAlg === undefined || issuer === undefined || validity === undefined || subject === undefined || spki === undefined) {
    throw new DerError('tbsCertificate: missing fields')
  }
  if (serial.tag !== TAG.integer || serial.end === serial.contentStart) throw new DerError('serialNumber: not an INTEGER')
  // RFC 5280 §4.1.2.3: MUST be the same algorithm as signatureAlgorithm
  if (!bytesEqual(elementOf(der, innerAlg), ECDSA_WITH_SHA384)) throw new DerError('tbsCertificate.signature is not ecdsa-with-SHA384')
  if (issuer.tag !== TAG.sequence || subject.tag !== TAG.sequence) throw new DerError('issuer/subject: not a Name')
  if (validity.tag !== TAG.sequence) throw new DerError('validity: not a SEQUENCE')
  const times = children(der, validity)
  if (times.length !== 2) throw new DerError('validity: expected notBefore and notAfter')
  const notBefore = parseTime(der, times[0]!, 'notBefore')
  const notAfter = parseTime(der, times[1]!, 'notAfter')

  if (spki.tag !== TAG.sequence) throw new DerError('subjectPublicKeyInfo: not a SEQUENCE')
  const [keyAlg, keyBits, keyExtra] = children(der, spki)
  if (keyAlg === undefined || keyBits === undefined || keyExtra !== undefined) throw new DerError('subjectPublicKeyInfo: malformed')
  if (!bytesEqual(elementOf(der, keyAlg), EC_P384_KEY)) throw new DerError('public key is not EC P-384')
  const point = contentOf(der, keyBits)
  if (keyBits.tag !== TAG.bitString || point.length !== 2 + 2 * P384_BYTES || point[0] !== 0 || point[1] !== POINT_UNCOMPRESSED) {
    throw new DerError('public key is not an uncompressed P-384 point')
  }

  // issuerUniqueID [1], subjectUniqueID [2] (RFC 5280 §4.1.2.8) are allowed and ignored
  if (fields[k]?.tag === TAG.context1) k++
  if (fields[k]?.tag === TAG.context2) k++
  let ext: Extensions = { ca: null, pathLen: null, keyUsage: null }
  if (fields[k]?.tag === TAG.context3 && version !== undefined) ext = parseExtensions(der, fields[k++]!)
  if (k !== fields.length) throw new DerError('tbsCertificate: unexpected field')

  return {
    der,
    tbs: elementOf(der, tbs),
    serialHex: bytesToHex(contentOf(der, serial)),
    issuer: elementOf(der, issuer),
    subject: elementOf(der, subject),
    commonName: commonNameOf(der, subject),
    notBefore,
    notAfter,
    publicKey: new Uint8Array(point.subarray(1)),
    signature: ecdsaSignatureToRaw(der, sigValue),
    ca: ext.ca,
    pathLen: ext.pathLen,
    keyUsage: ext.keyUsage,
  }
}

const PEM_BEGIN = '-----BEGIN CERTIFICATE-----'
const PEM_END = '-----END CERTIFICATE-----'

/** DER → RFC 7468 §2 CERTIFICATE text: base64 in lines of 64, ending with a newline. */
export function derToPem(der: Uint8Array): string {
  const body = bytesToBase64(der).replace(/(.{64})/g, '$1\n').replace(/\n$/, '')
  return `${PEM_BEGIN}\n${body}\n${PEM_END}\n`
}
/** A root certificate is small; anything far larger is not one (and is not read further). */
const MAX_ROOT_INPUT = 64 * 1024

/** RFC 7468 §2 textual encoding → DER; exactly one CERTIFICATE block. Linear scans only. */
function pemToDer(text: string): Uint8Array {
  const begin = text.indexOf(PEM_BEGIN)
  if (begin < 0) throw new VerifyError('input', 'root: no PEM CERTIFICATE block')
  const bodyStart = begin + PEM_BEGIN.length
  const end = text.indexOf(PEM_END, bodyStart)
  if (end < 0) throw new VerifyError('input', 'root: PEM CERTIFICATE block has no END line')
  if (text.indexOf(PEM_BEGIN, bodyStart) >= 0) throw new VerifyError('input', 'root: more than one PEM certificate; expected exactly one')
  try {
    return base64ToBytes(text.slice(bodyStart, end).replace(/[ \t\r\n]+/g, ''))
  } catch {
    throw new VerifyError('input', 'root: the PEM block is not valid base64')
  }
}

/**
 * A trusted root given as DER bytes, PEM text, or PEM bytes (a file read as-is) → DER.
 * The certificate must parse in the profile above (an RSA or P-256 root could never
 * anchor a Nitro chain). Throws VerifyError('input').
 */
export function parseRoot(root: Uint8Array | string): Uint8Array {
  let der: Uint8Array
  if (typeof root === 'string') {
    if (root.length > MAX_ROOT_INPUT) throw new VerifyError('input', 'root: input too large for a certificate')
    der = pemToDer(root)
  } else if (root instanceof Uint8Array) {
    if (root.length > MAX_ROOT_INPUT) throw new VerifyError('input', 'root: input too large for a certificate')
    // DER always starts with SEQUENCE (0x30); anything else may be a PEM file read as bytes
    der = root.length > 0 && root[0] === 0x30 ? copyBytes(root) : pemToDer(new TextDecoder().decode(root))
  } else {
    throw new VerifyError('input', 'root: expected DER bytes or PEM text')
  }
  try {
    parseCertificate(der)
  } catch (err) {
    throw new VerifyError('input', `root: not a usable certificate (${err instanceof Error ? err.message : 'unparseable'})`)
  }
  return der
}

/** Short label for messages: "CN=…" when there is one. */
export function certLabel(cert: Certificate): string {
  return cert.commonName === null ? `serial ${cert.serialHex}` : `CN=${cert.commonName}`
}

export { DerError } from './der.js'
