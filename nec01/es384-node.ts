// ES384 under Node: the signature checks go to node:crypto (OpenSSL) synchronously, selected
// by package.json `imports` (#es384, "node" condition). WebCrypto in Node sends every check
// to libuv's thread pool and back, which was most of what a verification on a known chain
// cost. Same contract as es384.ts, whose twin this is; excluded from tsconfig.web.json.
import { KeyObject, verify } from 'node:crypto'

export type VerifyKey = KeyObject

const P384_IMPORT = { name: 'ECDSA', namedCurve: 'P-384' } as const

/**
 * The raw point goes in through WebCrypto's importKey, which decodes it directly (and
 * rejects a point off the curve) in ~60 µs and without the thread pool; node:crypto's own
 * SPKI or JWK import runs OpenSSL's generic decoders, 2–8× slower.
 */
export async function importP384(point: Uint8Array): Promise<VerifyKey> {
  return KeyObject.from(await globalThis.crypto.subtle.importKey('raw', point, P384_IMPORT, true, ['verify']))
}

/** r‖s, 96 bytes; false for a bad or malformed signature. Checked before it returns. */
export function verifyEs384(key: VerifyKey, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  let ok = false
  try {
    ok = verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, signature)
  } catch {
    ok = false
  }
  return Promise.resolve(ok)
}

/**
 * One of several checks issued together (a certificate path's links): on libuv's thread
 * pool, so they run side by side on the other cores while the caller works on.
 */
export function verifyEs384Concurrent(key: VerifyKey, signature: Uint8Array, data: Uint8Array): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, signature, (err, ok) => resolve(err === null && ok))
    } catch {
      resolve(false)
    }
  })
}
