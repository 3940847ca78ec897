// The enclave's side of the persistent identity: seal the service key under the operator's
// KMS key, and open it again on a later boot, only inside an enclave the key policy accepts.
//
// Both directions are attested. Sealing asks KMS for a data key with GenerateDataKey and a
// Recipient, so the data key comes back only as CMS to a fresh RSA key held in memory, and the
// secret is encrypted here with AES-256-GCM under it: the secret never crosses the wire in any
// form, not even inside TLS (Encrypt would have sent it), and the key policy can demand the
// attestation for sealing too, so nobody outside an accepted enclave can make a blob holding a
// key they know. Unsealing sends the blob's KMS ciphertext to Decrypt with a new attested RSA
// key and opens the CMS answer. Every RSA key is new, never exported, dropped after one call.
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient, type RecipientInfo } from '@aws-sdk/client-kms'
import { webcrypto } from 'node:crypto'
import type { Nsm } from '../nsm/types.js'
import { CodedError } from '../../nec01/errors.js'
import { CmsError, openEnvelopedData, type RsaPrivateKey } from './cms.js'
import { BlobFormatError, decodeSealedBlob, encodeSealedBlob, GCM_IV_BYTES, sealedBlobHeader, type SealedBlob } from './sealed-blob.js'
import { errorText } from '../../nec01/errors.js'

/** Bound into every KMS ciphertext of a sealed identity: a blob made for something else does not open as one. */
export const SEAL_ENCRYPTION_CONTEXT = { 'nec01:purpose': 'service-identity/v1' } as const
export const MAX_SECRET_BYTES = 1024
const DATA_KEY_BYTES = 32

/**
 * KMS_UNREACHABLE: no answer, a 5xx, throttling: try again later.
 * CREDENTIALS_REFUSED: KMS did not accept the caller's credentials (missing, expired, wrong): try again when the parent has fresh ones.
 * POLICY_REFUSED: the key policy refused this enclave (another image, a debug enclave): an operator must act.
 * KEY_UNAVAILABLE: the key is missing, disabled or pending deletion: an operator must act.
 * BLOB_DAMAGED: the blob is truncated, garbled, or not from this key and purpose: it will never open.
 * KMS_REJECTED: KMS refused the request itself (a bug or an incompatible KMS).
 * KMS_ANSWER_INVALID: the answer is not what KMS sends an attested caller; never trusted, never retried.
 * NSM_FAILED: the attestation could not be made.
 * INVALID_ARGUMENT: the caller passed something unusable.
 */
export const SEAL_ERROR_CODES = [
  'KMS_UNREACHABLE',
  'CREDENTIALS_REFUSED',
  'POLICY_REFUSED',
  'KEY_UNAVAILABLE',
  'BLOB_DAMAGED',
  'KMS_REJECTED',
  'KMS_ANSWER_INVALID',
  'NSM_FAILED',
  'INVALID_ARGUMENT',
] as const
export type SealErrorCode = (typeof SEAL_ERROR_CODES)[number]

/** Conditions that can clear without anyone acting: worth retrying with backoff. */
const TRANSIENT: ReadonlySet<SealErrorCode> = new Set(['KMS_UNREACHABLE', 'CREDENTIALS_REFUSED'])

export class SealError extends CodedError<SealErrorCode> {
  /** true when a retry with backoff may succeed without anyone acting */
  readonly retryable: boolean
  constructor(code: SealErrorCode, message: string) {
    super(code, message)
    this.retryable = TRANSIENT.has(code)
  }
}

export function isSealError(value: unknown): value is SealError {
  return value instanceof SealError
}

const KMS_ERROR_CODES: Record<string, SealErrorCode> = {
  AccessDeniedException: 'POLICY_REFUSED',
  InvalidCiphertextException: 'BLOB_DAMAGED',
  IncorrectKeyException: 'BLOB_DAMAGED',
  NotFoundException: 'KEY_UNAVAILABLE',
  DisabledException: 'KEY_UNAVAILABLE',
  KMSInvalidStateException: 'KEY_UNAVAILABLE',
  UnrecognizedClientException: 'CREDENTIALS_REFUSED',
  InvalidSignatureException: 'CREDENTIALS_REFUSED',
  IncompleteSignatureException: 'CREDENTIALS_REFUSED',
  MissingAuthenticationTokenException: 'CREDENTIALS_REFUSED',
  ExpiredTokenException: 'CREDENTIALS_REFUSED',
  CredentialsProviderError: 'CREDENTIALS_REFUSED',
  KMSInternalException: 'KMS_UNREACHABLE',
  KeyUnavailableException: 'KMS_UNREACHABLE',
  DependencyTimeoutException: 'KMS_UNREACHABLE',
  ThrottlingException: 'KMS_UNREACHABLE',
  TimeoutError: 'KMS_UNREACHABLE',
}

interface SdkErrorShape {
  name?: unknown
  message?: unknown
  $metadata?: { httpStatusCode?: unknown }
}

/** A KMS call's failure as a SealError: by exception name, else by HTTP status (none = no answer). */
function kmsFailure(operation: string, error: unknown): SealError {
  const e = (typeof error === 'object' && error !== null ? error : {}) as SdkErrorShape
  const name = typeof e.name === 'string' ? e.name : 'Error'
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined
  const detail = typeof e.message === 'string' ? e.message.split('\n')[0] : String(error)
  const code = KMS_ERROR_CODES[name] ?? (status === undefined || status >= 500 ? 'KMS_UNREACHABLE' : status < 300 ? 'KMS_ANSWER_INVALID' : 'KMS_REJECTED')
  return new SealError(code, `KMS ${operation}: ${name}: ${detail}`)
}

/** A fresh RSA-2048 key for one KMS answer: the private half non-extractable, the public half attested. */
export interface AttestedRecipient {
  recipient: RecipientInfo
  privateKey: RsaPrivateKey
  /** DER SubjectPublicKeyInfo, as it is in the document's public_key */
  publicKey: Uint8Array
}

/** Makes the RSA key and the second attestation document (public_key = its SPKI). */
export async function attestedRecipient(nsm: Nsm): Promise<AttestedRecipient> {
  const pair = await webcrypto.subtle.generateKey(
    { name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    false,
    ['encrypt', 'decrypt'],
  )
  const publicKey = new Uint8Array(await webcrypto.subtle.exportKey('spki', pair.publicKey))
  let document: Uint8Array
  try {
    document = await nsm.attest({ publicKey })
  } catch (error) {
    throw new SealError('NSM_FAILED', `attestation for the KMS recipient failed: ${errorText(error)}`)
  }
  return { recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: document }, privateKey: pair.privateKey, publicKey }
}

/** Opens CiphertextForRecipient; anything but exactly that (a Plaintext, no CMS, a wrong key) is refused. */
async function openForRecipient(operation: string, answer: { Plaintext?: Uint8Array; CiphertextForRecipient?: Uint8Array }, key: RsaPrivateKey): Promise<Uint8Array> {
  if (answer.Plaintext !== undefined && answer.Plaintext.length > 0) {
    throw new SealError('KMS_ANSWER_INVALID', `KMS ${operation} answered an attested request in plaintext`)
  }
  if (answer.CiphertextForRecipient === undefined) throw new SealError('KMS_ANSWER_INVALID', `KMS ${operation} sent no CiphertextForRecipient`)
  let content: Uint8Array
  try {
    content = await openEnvelopedData(answer.CiphertextForRecipient, key)
  } catch (error) {
    throw new SealError('KMS_ANSWER_INVALID', `KMS ${operation}: CiphertextForRecipient ${error instanceof CmsError ? error.message : 'does not open'}`)
  }
  if (content.length !== DATA_KEY_BYTES) {
    content.fill(0)
    throw new SealError('KMS_ANSWER_INVALID', `KMS ${operation} returned a ${content.length}-byte data key, not ${DATA_KEY_BYTES}`)
  }
  return content
}

async function gcmKey(dataKey: Uint8Array, usage: 'encrypt' | 'decrypt'): Promise<webcrypto.CryptoKey> {
  try {
    return await webcrypto.subtle.importKey('raw', dataKey, 'AES-GCM', false, [usage])
  } finally {
    dataKey.fill(0)
  }
}

export interface SealInput {
  kms: KMSClient
  /** the operator's KMS key: id, ARN or alias, as KMS accepts it */
  keyId: string
  secret: Uint8Array
  nsm: Nsm
}

/** Seals `secret` under `keyId`. Returns the blob for the parent to keep. Throws SealError. */
export async function sealKey({ kms, keyId, secret, nsm }: SealInput): Promise<Uint8Array> {
  if (!(secret instanceof Uint8Array) || secret.length === 0 || secret.length > MAX_SECRET_BYTES) {
    throw new SealError('INVALID_ARGUMENT', `the secret must be 1..${MAX_SECRET_BYTES} bytes`)
  }
  if (typeof keyId !== 'string' || keyId === '') throw new SealError('INVALID_ARGUMENT', 'a KMS key id is required')
  const attested = await attestedRecipient(nsm)
  let answer
  try {
    answer = await kms.send(
      new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: { ...SEAL_ENCRYPTION_CONTEXT }, Recipient: attested.recipient }),
    )
  } catch (error) {
    throw kmsFailure('GenerateDataKey', error)
  }
  if (answer.CiphertextBlob === undefined || answer.KeyId === undefined || !answer.KeyId.startsWith('arn:')) {
    throw new SealError('KMS_ANSWER_INVALID', 'KMS GenerateDataKey sent no CiphertextBlob or no key ARN')
  }
  const dataKey = await openForRecipient('GenerateDataKey', answer, attested.privateKey)
  const aes = await gcmKey(dataKey, 'encrypt')
  const iv = webcrypto.getRandomValues(new Uint8Array(GCM_IV_BYTES))
  let header: Uint8Array
  try {
    header = sealedBlobHeader(answer.KeyId, answer.CiphertextBlob, iv)
  } catch (error) {
    throw new SealError('KMS_ANSWER_INVALID', `KMS GenerateDataKey: ${error instanceof BlobFormatError ? error.message : 'unusable answer'}`)
  }
  const sealed = new Uint8Array(await webcrypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: header }, aes, secret))
  return encodeSealedBlob(header, sealed)
}

export interface UnsealInput {
  kms: KMSClient
  blob: Uint8Array
  nsm: Nsm
}

function readBlob(blob: Uint8Array): SealedBlob {
  try {
    return decodeSealedBlob(blob)
  } catch (error) {
    throw new SealError('BLOB_DAMAGED', `sealed key: ${error instanceof BlobFormatError ? error.message : 'unreadable'}`)
  }
}

/** Checks a blob's format without KMS: for a file the parent hands in. Throws SealError BLOB_DAMAGED. */
export function checkSealedBlob(blob: Uint8Array): { keyArn: string } {
  return { keyArn: readBlob(blob).keyArn }
}

/** Opens a sealed blob inside an enclave the key policy accepts. Returns the secret. Throws SealError. */
export async function unsealKey({ kms, blob, nsm }: UnsealInput): Promise<Uint8Array> {
  const parts = readBlob(blob)
  const attested = await attestedRecipient(nsm)
  let answer
  try {
    answer = await kms.send(
      new DecryptCommand({
        CiphertextBlob: parts.kmsCiphertext,
        KeyId: parts.keyArn,
        EncryptionContext: { ...SEAL_ENCRYPTION_CONTEXT },
        Recipient: attested.recipient,
      }),
    )
  } catch (error) {
    throw kmsFailure('Decrypt', error)
  }
  if (answer.KeyId !== parts.keyArn) throw new SealError('KMS_ANSWER_INVALID', 'KMS Decrypt answered for another key')
  const dataKey = await openForRecipient('Decrypt', answer, attested.privateKey)
  const aes = await gcmKey(dataKey, 'decrypt')
  try {
    return new Uint8Array(await webcrypto.subtle.decrypt({ name: 'AES-GCM', iv: parts.iv, additionalData: parts.associatedData }, aes, parts.sealed))
  } catch {
    throw new SealError('BLOB_DAMAGED', 'sealed key: the key does not authenticate under its data key')
  }
}
