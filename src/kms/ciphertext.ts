// The stand-in's ciphertext blobs. Like KMS's, a blob names its key, so Decrypt needs no KeyId,
// and it is authenticated, so a flipped bit, a cut or a wrong encryption context is an
// InvalidCiphertextException rather than wrong plaintext. Layout:
//   "NKS" ‖ version 1 ‖ key id (16-byte UUID) ‖ IV (12) ‖ AES-256-GCM ciphertext ‖ tag (16)
// The first 20 bytes and the encryption context (sorted pairs, as JSON) are the associated data.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

const MAGIC = Buffer.from('NKS\x01', 'latin1')
const KEY_ID_BYTES = 16
const IV_BYTES = 12
const TAG_BYTES = 16
const HEADER_BYTES = MAGIC.length + KEY_ID_BYTES
/** KMS accepts ciphertext blobs up to this size. */
export const MAX_CIPHERTEXT_BLOB_BYTES = 6144

export type EncryptionContext = Record<string, string>

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

function uuidToBytes(keyId: string): Buffer {
  if (!UUID.test(keyId)) throw new TypeError('key id is not a lowercase UUID')
  return Buffer.from(keyId.replace(/-/g, ''), 'hex')
}

function bytesToUuid(bytes: Uint8Array): string {
  const h = Buffer.from(bytes).toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

function associatedData(header: Uint8Array, context: EncryptionContext): Buffer {
  const pairs = Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return Buffer.concat([header, Buffer.from(JSON.stringify(pairs))])
}

export function sealCiphertextBlob(keyId: string, secret: Uint8Array, plaintext: Uint8Array, context: EncryptionContext): Uint8Array {
  const header = Buffer.concat([MAGIC, uuidToBytes(keyId)])
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', secret, iv)
  cipher.setAAD(associatedData(header, context))
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return new Uint8Array(Buffer.concat([header, iv, body, cipher.getAuthTag()]))
}

/** The key id a blob names, or null when it is not one of ours at all. */
export function ciphertextKeyId(blob: Uint8Array): string | null {
  if (blob.length < HEADER_BYTES + IV_BYTES + TAG_BYTES || !MAGIC.equals(blob.subarray(0, MAGIC.length))) return null
  return bytesToUuid(blob.subarray(MAGIC.length, HEADER_BYTES))
}

/** The plaintext, or null when the blob, the key or the context does not authenticate. */
export function openCiphertextBlob(blob: Uint8Array, secret: Uint8Array, context: EncryptionContext): Uint8Array | null {
  if (ciphertextKeyId(blob) === null) return null
  const iv = blob.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES)
  const body = blob.subarray(HEADER_BYTES + IV_BYTES, blob.length - TAG_BYTES)
  try {
    const decipher = createDecipheriv('aes-256-gcm', secret, iv)
    decipher.setAAD(associatedData(blob.subarray(0, HEADER_BYTES), context))
    decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES))
    return new Uint8Array(Buffer.concat([decipher.update(body), decipher.final()]))
  } catch {
    return null
  }
}
