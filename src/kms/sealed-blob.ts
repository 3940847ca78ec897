// The sealed identity as the parent stores it. Binary, versioned, and checked whole before
// anything is sent to KMS, so a truncated or garbled file is BLOB_DAMAGED at once instead of
// a confusing KMS answer:
//   magic "NEC01SK" ‖ version 0x01
//   ‖ u16 len ‖ KMS key ARN (UTF-8)              which key sealed it; Decrypt names it
//   ‖ u16 len ‖ KMS CiphertextBlob               the data key, sealed by KMS
//   ‖ IV (12) ‖ u16 len ‖ AES-256-GCM(secret) ‖ tag (16)
//   ‖ SHA-256 of everything above                catches accidents, not attacks
// Everything before the GCM ciphertext is its associated data. Attacks are caught by KMS
// (its ciphertext is authenticated) and by GCM under the data key only the enclave gets.

import { createHash } from 'node:crypto'
import { CodedError } from '../../nec01/errors.js'

const MAGIC = Buffer.from('NEC01SK', 'latin1')
export const SEALED_BLOB_VERSION = 1
export const GCM_IV_BYTES = 12
export const GCM_TAG_BYTES = 16
const CHECKSUM_BYTES = 32
const MAX_FIELD_BYTES = 0xffff
/** Far above any real blob (a KMS ciphertext is at most 6 KiB), far below trouble. */
export const MAX_SEALED_BLOB_BYTES = 16384

export interface SealedBlob {
  version: number
  keyArn: string
  kmsCiphertext: Uint8Array
  iv: Uint8Array
  /** AES-256-GCM ciphertext with its tag appended */
  sealed: Uint8Array
  /** the bytes GCM authenticates alongside: everything before the ciphertext */
  associatedData: Uint8Array
}

/** Why a blob does not parse; the caller wraps it in its own error. */
export class BlobFormatError extends CodedError<'BLOB_MALFORMED'> {
  constructor(message: string) {
    super('BLOB_MALFORMED', message)
  }
}

function u16(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > MAX_FIELD_BYTES) throw new BlobFormatError(`a field of ${n} bytes does not fit the blob`)
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

/** The bytes up to the GCM ciphertext: also its associated data. */
export function sealedBlobHeader(keyArn: string, kmsCiphertext: Uint8Array, iv: Uint8Array): Uint8Array {
  const arn = Buffer.from(keyArn, 'utf8')
  return new Uint8Array(Buffer.concat([MAGIC, Buffer.of(SEALED_BLOB_VERSION), u16(arn.length), arn, u16(kmsCiphertext.length), kmsCiphertext, iv]))
}

export function encodeSealedBlob(header: Uint8Array, sealed: Uint8Array): Uint8Array {
  const body = Buffer.concat([header, u16(sealed.length), sealed])
  return new Uint8Array(Buffer.concat([body, createHash('sha256').update(body).digest()]))
}

class Reader {
  private at = 0
  constructor(private readonly bytes: Uint8Array) {}
  take(n: number, what: string): Uint8Array {
    if (this.at + n > this.bytes.length) throw new BlobFormatError(`truncated in ${what}`)
    const out = this.bytes.subarray(this.at, this.at + n)
    this.at += n
    return out
  }
  field(what: string): Uint8Array {
    const len = Buffer.from(this.take(2, `${what} length`)).readUInt16BE()
    if (len === 0) throw new BlobFormatError(`${what} is empty`)
    return this.take(len, what)
  }
  get offset(): number {
    return this.at
  }
}

/** Parses and checks a sealed blob. Throws BlobFormatError with a one-line reason. */
export function decodeSealedBlob(blob: Uint8Array): SealedBlob {
  if (!(blob instanceof Uint8Array)) throw new BlobFormatError('not bytes')
  if (blob.length > MAX_SEALED_BLOB_BYTES) throw new BlobFormatError(`${blob.length} bytes; at most ${MAX_SEALED_BLOB_BYTES}`)
  const r = new Reader(blob)
  if (!MAGIC.equals(r.take(MAGIC.length, 'the magic'))) throw new BlobFormatError('not a nec01 sealed key (bad magic)')
  const version = r.take(1, 'the version')[0]!
  if (version !== SEALED_BLOB_VERSION) throw new BlobFormatError(`version ${version} is not supported (this build reads ${SEALED_BLOB_VERSION})`)
  const arnBytes = r.field('the key ARN')
  const keyArn = Buffer.from(arnBytes).toString('utf8')
  if (!Buffer.from(keyArn, 'utf8').equals(arnBytes) || !keyArn.startsWith('arn:')) throw new BlobFormatError('the key ARN is garbled')
  const kmsCiphertext = r.field('the KMS ciphertext')
  const iv = r.take(GCM_IV_BYTES, 'the IV')
  const headerEnd = r.offset
  const sealed = r.field('the sealed key')
  if (sealed.length <= GCM_TAG_BYTES) throw new BlobFormatError('the sealed key is shorter than its tag')
  const bodyEnd = r.offset
  const checksum = r.take(CHECKSUM_BYTES, 'the checksum')
  if (r.offset !== blob.length) throw new BlobFormatError(`${blob.length - r.offset} bytes after the end`)
  if (!createHash('sha256').update(blob.subarray(0, bodyEnd)).digest().equals(checksum)) throw new BlobFormatError('the checksum does not match (damaged)')
  return { version, keyArn, kmsCiphertext, iv, sealed, associatedData: blob.subarray(0, headerEnd) }
}
