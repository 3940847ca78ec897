// Base64 and byte helpers for the browser-safe library (hex is @noble/hashes/utils'): no
// Buffer, strict on input so that two different strings never decode to the same bytes unnoticed.

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const B64_VALUE = new Int16Array(128).fill(-1)
for (let i = 0; i < B64_ALPHABET.length; i++) B64_VALUE[B64_ALPHABET.charCodeAt(i)] = i

/** Standard base64 (RFC 4648 §4) with padding. */
export function bytesToBase64(bytes: Uint8Array): string {
  let out = ''
  let i = 0
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out += B64_ALPHABET[n >> 18]! + B64_ALPHABET[(n >> 12) & 63]! + B64_ALPHABET[(n >> 6) & 63]! + B64_ALPHABET[n & 63]!
  }
  const rest = bytes.length - i
  if (rest === 1) {
    const n = bytes[i]! << 16
    out += B64_ALPHABET[n >> 18]! + B64_ALPHABET[(n >> 12) & 63]! + '=='
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8)
    out += B64_ALPHABET[n >> 18]! + B64_ALPHABET[(n >> 12) & 63]! + B64_ALPHABET[(n >> 6) & 63]! + '='
  }
  return out
}

/**
 * Standard base64 (RFC 4648 §4). Padding is optional (some producers drop it), but no
 * whitespace, no URL-safe alphabet and no non-zero bits left over in the last character
 * (RFC 4648 §3.5). Throws TypeError.
 */
export function base64ToBytes(text: string): Uint8Array<ArrayBuffer> {
  if (typeof text !== 'string') throw new TypeError('base64: expected a string')
  let end = text.length
  if (end % 4 === 0 && end > 0) {
    if (text.charCodeAt(end - 1) === 61) end--
    if (text.charCodeAt(end - 1) === 61) end--
  }
  if (end % 4 === 1) throw new TypeError('base64: invalid length')
  const out = new Uint8Array(Math.floor((end * 3) / 4))
  let acc = 0
  let bits = 0
  let o = 0
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i)
    const v = code < 128 ? B64_VALUE[code]! : -1
    if (v < 0) throw new TypeError(`base64: invalid character at ${i}`)
    acc = ((acc << 6) | v) & 0xffffff
    bits += 6
    if (bits >= 8) {
      bits -= 8
      out[o++] = (acc >> bits) & 0xff
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) throw new TypeError('base64: non-zero padding bits')
  return out
}

/**
 * Byte equality. Not constant-time: everything compared here is public data. A plain loop:
 * once compiled it compares a certificate in well under a microsecond, where building two
 * strings to compare natively costs several (the known-chain path compares five).
 */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Copies into a fresh ArrayBuffer-backed array (WebCrypto wants BufferSource on ArrayBuffer). */
export function copyBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(bytes.length)
  out.set(bytes)
  return out
}

/**
 * Bytes as a JS string, one char per byte: an exact-bytes Map key (V8 hashes and compares
 * strings natively), used by the caches.
 */
export function bytesToKey(bytes: Uint8Array): string {
  let out = ''
  const CHUNK = 4096
  for (let i = 0; i < bytes.length; i += CHUNK) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK) as unknown as number[])
  }
  return out
}

/** The same bytes on a plain ArrayBuffer, copying only when they are not (WebCrypto's BufferSource). */
export function onArrayBuffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : copyBytes(bytes)
}
