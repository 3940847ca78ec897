// A strict DER (ITU-T X.690 §10) TLV reader: just enough ASN.1 to walk an X.509
// certificate. Definite, shortest-form lengths only; low tag numbers only (X.509 needs
// nothing else); every length is checked against its enclosing element before use.
import { CodedError } from './errors.js'

export class DerError extends CodedError<'der/malformed'> {
  // set as a field: the browser bundle's minifier renames classes
  override readonly name = 'DerError'
  constructor(message: string) {
    super('der/malformed', message)
  }
}

/** Universal and context tags used by X.509 (X.690 §8, RFC 5280 §4.1). */
export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
  /** [0] EXPLICIT (version) */
  context0: 0xa0,
  /** [1] IMPLICIT (issuerUniqueID) */
  context1: 0x81,
  /** [2] IMPLICIT (subjectUniqueID) */
  context2: 0x82,
  /** [3] EXPLICIT (extensions) */
  context3: 0xa3,
} as const

/** One element: tag, and its header/content boundaries as offsets into the parent bytes. */
export interface Tlv {
  tag: number
  /** offset of the tag byte */
  start: number
  /** offset of the first content byte */
  contentStart: number
  /** offset just past the content */
  end: number
}

/** Reads the element at `pos`, which must end at or before `limit`. */
export function readTlv(bytes: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError('element truncated')
  const tag = bytes[pos]!
  // X.690 §8.1.2.4: tag number 31 means a multi-byte tag, which X.509 never uses
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tag')
  const first = bytes[pos + 1]!
  let length: number
  let contentStart: number
  if (first < 0x80) {
    length = first
    contentStart = pos + 2
  } else {
    const count = first & 0x7f
    // 0x80 is the BER indefinite form, forbidden in DER (X.690 §10.1); 3 bytes cover 16 MiB
    if (count === 0) throw new DerError('indefinite length')
    if (count > 3) throw new DerError('length too large')
    if (pos + 2 + count > limit) throw new DerError('length truncated')
    length = 0
    for (let i = 0; i < count; i++) length = length * 256 + bytes[pos + 2 + i]!
    // X.690 §10.1: the shortest length form
    if (length < 0x80 || bytes[pos + 2] === 0) throw new DerError('non-minimal length')
    contentStart = pos + 2 + count
  }
  const end = contentStart + length
  if (end > limit) throw new DerError('element runs past its container')
  return { tag, start: pos, contentStart, end }
}

/** Reads an element and checks its tag. */
export function expectTlv(bytes: Uint8Array, pos: number, limit: number, tag: number, what: string): Tlv {
  const tlv = readTlv(bytes, pos, limit)
  if (tlv.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found 0x${tlv.tag.toString(16)}`)
  return tlv
}

/** All children of a constructed element, which must exactly fill its content. */
export function children(bytes: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = []
  let pos = parent.contentStart
  while (pos < parent.end) {
    const child = readTlv(bytes, pos, parent.end)
    out.push(child)
    pos = child.end
  }
  return out
}

export function contentOf(bytes: Uint8Array, tlv: Tlv): Uint8Array {
  return bytes.subarray(tlv.contentStart, tlv.end)
}

export function elementOf(bytes: Uint8Array, tlv: Tlv): Uint8Array {
  return bytes.subarray(tlv.start, tlv.end)
}

/**
 * An INTEGER's content as unsigned magnitude bytes, rejecting negative and non-minimal
 * encodings (X.690 §8.3.2).
 */
export function unsignedInteger(bytes: Uint8Array, tlv: Tlv, what: string): Uint8Array {
  if (tlv.tag !== TAG.integer) throw new DerError(`${what}: not an INTEGER`)
  const content = contentOf(bytes, tlv)
  if (content.length === 0) throw new DerError(`${what}: empty INTEGER`)
  if (content[0]! & 0x80) throw new DerError(`${what}: negative INTEGER`)
  if (content.length > 1 && content[0] === 0 && !(content[1]! & 0x80)) throw new DerError(`${what}: non-minimal INTEGER`)
  return content[0] === 0 && content.length > 1 ? content.subarray(1) : content
}

/** A small non-negative INTEGER (e.g. a version or pathLenConstraint). */
export function smallInteger(bytes: Uint8Array, tlv: Tlv, what: string): number {
  const magnitude = unsignedInteger(bytes, tlv, what)
  if (magnitude.length > 4) throw new DerError(`${what}: INTEGER too large`)
  let n = 0
  for (const b of magnitude) n = n * 256 + b
  return n
}

/** BOOLEAN: DER allows only 0x00 and 0xff (X.690 §11.1). */
export function booleanValue(bytes: Uint8Array, tlv: Tlv, what: string): boolean {
  if (tlv.tag !== TAG.boolean || tlv.end - tlv.contentStart !== 1) throw new DerError(`${what}: not a BOOLEAN`)
  const v = bytes[tlv.contentStart]
  if (v === 0xff) return true
  if (v === 0x00) return false
  throw new DerError(`${what}: BOOLEAN is neither 0x00 nor 0xff`)
}
