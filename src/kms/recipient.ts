// The stand-in's check of a Recipient: the attestation document must verify with nec01's
// verifier against the trusted root (the simulator's in development; real KMS trusts the AWS
// Nitro root), must not come from a debug-mode enclave, and must carry an RSA-2048 public key.
// Its PCRs become the request's kms:RecipientAttestation:* condition keys.
import { createPublicKey } from 'node:crypto'
import { verifyAttestation } from '../../nec01/attestation.js'
import { hexToBytes } from '@noble/hashes/utils.js'
import { base64ToBytes } from '../../nec01/encoding.js'
import { KmsFault, validation } from './faults.js'
import { attestationContext } from './policy.js'

export const KEY_ENCRYPTION_ALGORITHM = 'RSAES_OAEP_SHA_256'
const RSA_BITS = 2048
/** Malformed documents are a bad request; well-formed but untrusted ones are a refusal. */
const MALFORMED_REASONS = new Set(['input', 'cose', 'payload'])

export interface RecipientTrust {
  /** trusted root certificate, DER or PEM */
  root: Uint8Array | string
  /** validation time, ms since the epoch */
  now: () => number
}

export interface VerifiedRecipient {
  /** DER SubjectPublicKeyInfo of the enclave's RSA key */
  publicKey: Uint8Array
  /** kms:RecipientAttestation:ImageSha384 and kms:RecipientAttestation:PCR<n> */
  context: Record<string, string>
}

function checkRsa2048(spki: Uint8Array): void {
  let bits: number | undefined
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
    bits = key.asymmetricKeyType === 'rsa' ? key.asymmetricKeyDetails?.modulusLength : undefined
  } catch {
    bits = undefined
  }
  if (bits !== RSA_BITS) throw new KmsFault('ValidationException', 'The public key in the attestation document must be an RSA 2048 SubjectPublicKeyInfo')
}

/** Throws KmsFault: ValidationException for a malformed Recipient, AccessDeniedException for an untrusted one. */
export async function verifyRecipient(recipient: unknown, trust: RecipientTrust): Promise<VerifiedRecipient> {
  if (typeof recipient !== 'object' || recipient === null || Array.isArray(recipient)) throw validation('recipient', 'Member must be a structure')
  const { KeyEncryptionAlgorithm: algorithm, AttestationDocument: encoded } = recipient as Record<string, unknown>
  if (algorithm !== KEY_ENCRYPTION_ALGORITHM) {
    throw validation('recipient.keyEncryptionAlgorithm', `Member must satisfy enum value set: [${KEY_ENCRYPTION_ALGORITHM}]`)
  }
  if (typeof encoded !== 'string') throw validation('recipient.attestationDocument', 'Member must not be null')
  let document: Uint8Array
  try {
    document = base64ToBytes(encoded)
  } catch {
    throw new KmsFault('SerializationException', 'recipient.attestationDocument is not base64')
  }
  if (document.length === 0) throw validation('recipient.attestationDocument', 'Member must have length greater than or equal to 1')
  const result = await verifyAttestation(document, { root: trust.root, anyPcrs: true, now: new Date(trust.now()) })
  if (!result.valid || result.attestation === null) {
    const failed = result.checks.find((c) => !c.ok)
    const why = `${result.reason ?? 'input'}: ${failed?.detail ?? 'not verified'}`
    if (MALFORMED_REASONS.has(result.reason ?? 'input')) throw new KmsFault('ValidationException', `The attestation document is malformed (${why})`)
    throw new KmsFault('AccessDeniedException', `The attestation document is not trusted (${why})`)
  }
  const hex = result.attestation.public_key
  if (hex === null) throw new KmsFault('ValidationException', 'The attestation document carries no public key')
  const publicKey = hexToBytes(hex)
  checkRsa2048(publicKey)
  return { publicKey, context: attestationContext(result.attestation.pcrs) }
}
