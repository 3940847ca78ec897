// ES384 (ECDSA P-384 with SHA-384) through WebCrypto: the verifier's signature primitive in
// browsers and wherever no "node" condition applies. Under Node, package.json `imports`
// maps #es384 to es384-node.ts instead (synchronous OpenSSL, no trip to libuv's thread
// pool); both take raw points and raw r‖s signatures and give the same verdicts.
import { onArrayBuffer } from './encoding.js'

/** An imported P-384 public key, opaque to the callers. */
/** (spelt this way so the DOM and the Node typings agree) */
export type VerifyKey = Awaited<ReturnType<typeof globalThis.crypto.subtle.importKey>>

const P384_IMPORT = { name: 'ECDSA', namedCurve: 'P-384' } as const
const ES384_VERIFY = { name: 'ECDSA', hash: 'SHA-384' } as const

/** The uncompressed point 0x04‖X‖Y; rejects (never resolves) a point off the curve. */
export function importP384(point: Uint8Array): Promise<VerifyKey> {
  return globalThis.crypto.subtle.importKey('raw', onArrayBuffer(point), P384_IMPORT, false, ['verify'])
}

/** r‖s, 96 bytes; false for a bad signature or a malformed one, never a rejection. */
export function verifyEs384(key: VerifyKey, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  return globalThis.crypto.subtle.verify(ES384_VERIFY, key, onArrayBuffer(signature), onArrayBuffer(data)).catch(() => false)
}

/** One of several checks issued together: WebCrypto runs every check off the main thread anyway. */
export const verifyEs384Concurrent = verifyEs384
