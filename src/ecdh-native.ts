// libsecp256k1's own ECDH (secp256k1_ecdh, built on secp256k1_ecmult_const: constant time
// in the scalar), through the native addon of the `secp256k1` package, which ships it
// prebuilt for linux-x64 (glibc and musl), darwin-arm64 and win32-x64 and compiles it
// elsewhere at install. ~60 µs a multiplication where OpenSSL's generic prime-curve code
// takes ~800 µs (bench/libs.ts). The package's own entry falls back to elliptic (pure JS,
// not constant time) when the addon is missing: we load `secp256k1/bindings`, which is the
// addon or nothing, and src/crypto.ts falls back to OpenSSL instead.
import { createRequire } from 'node:module'

/** SEC1 compressed point: prefix byte and x */
const COMPRESSED_BYTES = 33
const X_BYTES = 32

/** The part of the `secp256k1` package's API used here (lib/index.js, `ecdh`). */
interface NativeSecp256k1 {
  ecdh(
    publicKey: Uint8Array,
    privateKey: Uint8Array,
    options: { hashfn: (x: Uint8Array, y: Uint8Array) => Uint8Array; xbuf: Uint8Array; ybuf: Uint8Array },
    output: Uint8Array,
  ): Uint8Array
}

export interface NativeEcdh {
  /** the shared point's x coordinate; throws when `peer` (SEC1 compressed) is not on the curve */
  sharedX(peer: Uint8Array, secret: Uint8Array): Buffer
}

function load(): NativeSecp256k1 | string {
  try {
    return createRequire(import.meta.url)('secp256k1/bindings') as NativeSecp256k1
  } catch (err) {
    return err instanceof Error ? (err.message.split('\n')[0] ?? err.name) : String(err)
  }
}

function wrap(lib: NativeSecp256k1): NativeEcdh {
  const xbuf = new Uint8Array(X_BYTES)
  const ybuf = new Uint8Array(X_BYTES)
  // libsecp256k1 hashes the shared point by default; NIP-04 and NIP-44 want its bare x
  const options = { hashfn: (x: Uint8Array) => x, xbuf, ybuf }
  return {
    sharedX(peer, secret) {
      if (peer.length !== COMPRESSED_BYTES) throw new Error('invalid public key')
      const out = Buffer.alloc(X_BYTES)
      try {
        lib.ecdh(peer, secret, options, out)
      } catch {
        throw new Error('invalid public key')
      } finally {
        xbuf.fill(0)
        ybuf.fill(0)
      }
      return out
    },
  }
}

const loaded = load()

/** The addon, or null with the reason it did not load (src/crypto.ts then uses OpenSSL). */
export const nativeEcdh: NativeEcdh | null = typeof loaded === 'string' ? null : wrap(loaded)
export const nativeEcdhError: string | null = typeof loaded === 'string' ? loaded : null
