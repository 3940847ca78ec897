// The KMS operations the stand-in answers, on parsed JSON input. Each one resolves the key,
// verifies a Recipient when there is one, asks the key policy, and only then touches key
// material, in that order, as KMS does: a caller the policy refuses learns nothing about the
// ciphertext. With a Recipient the secret output goes out only as CMS EnvelopedData to the
// attested RSA key (CiphertextForRecipient); Plaintext is then absent.
import { randomBytes, randomUUID } from 'node:crypto'
import { base64ToBytes, bytesToBase64 } from '../../nec01/encoding.js'
import { ciphertextKeyId, MAX_CIPHERTEXT_BLOB_BYTES, openCiphertextBlob, sealCiphertextBlob, type EncryptionContext } from './ciphertext.js'
import { buildEnvelopedData } from './cms.js'
import { KmsFault, validation } from './faults.js'
import { defaultKeyPolicy, evaluateKeyPolicy, parseKeyPolicy, PolicyError, type KeyPolicy } from './policy.js'
import { verifyRecipient, type RecipientTrust } from './recipient.js'
import type { KeyStore, StoredKey } from './store.js'

export const MAX_PLAINTEXT_BYTES = 4096
export const MAX_DATA_KEY_BYTES = 1024
const SYMMETRIC_DEFAULT = 'SYMMETRIC_DEFAULT'
const DATA_KEY_SPECS: Record<string, number> = { AES_256: 32, AES_128: 16 }

export interface OperationContext {
  store: KeyStore
  trust: RecipientTrust
  accountId: string
  /** the caller's ARN, from its access key */
  callerArn: string
}

export type Input = Record<string, unknown>
export type Output = Record<string, unknown>

function optionalString(input: Input, name: string): string | undefined {
  const v = input[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') throw new KmsFault('SerializationException', `${name} must be a string`)
  return v
}

function requiredString(input: Input, name: string): string {
  const v = optionalString(input, name)
  if (v === undefined || v === '') throw validation(name, 'Member must not be null')
  return v
}

function blob(input: Input, name: string, max: number): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = base64ToBytes(requiredString(input, name))
  } catch (error) {
    if (error instanceof KmsFault) throw error
    throw new KmsFault('SerializationException', `${name} is not base64`)
  }
  if (bytes.length < 1 || bytes.length > max) throw validation(name, `Member must have length between 1 and ${max}`)
  return bytes
}

function encryptionContext(input: Input): EncryptionContext {
  const v = input.EncryptionContext
  if (v === undefined || v === null) return {}
  if (typeof v !== 'object' || Array.isArray(v) || !Object.values(v).every((s) => typeof s === 'string')) {
    throw new KmsFault('SerializationException', 'EncryptionContext must map strings to strings')
  }
  return v as EncryptionContext
}

function byteCount(input: Input, name: string, max: number): number | undefined {
  const v = input[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw validation(name, `Member must have value between 1 and ${max}`)
  return v
}

function keyNamed(ctx: OperationContext, keyId: string): StoredKey {
  // aliases are not modelled: the operator names the key by id or ARN
  const key = ctx.store.find(keyId)
  if (key === undefined) throw new KmsFault('NotFoundException', `Key '${keyId}' does not exist`)
  return key
}

function authorize(ctx: OperationContext, key: StoredKey, operation: string, context: Record<string, string>): void {
  const action = `kms:${operation}`
  const decision = evaluateKeyPolicy(parseKeyPolicy(key.policy), { action, principalArn: ctx.callerArn, resourceArn: key.arn, context })
  if (decision.allowed) return
  const why = decision.explicitDeny ? 'with an explicit deny in a resource-based policy' : `because no resource-based policy allows the ${action} action`
  throw new KmsFault('AccessDeniedException', `User: ${ctx.callerArn} is not authorized to perform: ${action} on resource: ${key.arn} ${why}`)
}

/** The attestation's condition keys, or none without a Recipient; the RSA key to answer to. */
async function recipientOf(ctx: OperationContext, input: Input): Promise<{ publicKey: Uint8Array | null; context: Record<string, string> }> {
  if (input.Recipient === undefined || input.Recipient === null) return { publicKey: null, context: {} }
  return verifyRecipient(input.Recipient, ctx.trust)
}

/** The secret output field: Plaintext, or CiphertextForRecipient when attested. */
async function secretOut(publicKey: Uint8Array | null, secret: Uint8Array): Promise<Output> {
  if (publicKey === null) return { Plaintext: bytesToBase64(secret) }
  return { CiphertextForRecipient: bytesToBase64(await buildEnvelopedData(publicKey, secret)) }
}

function masterSecret(key: StoredKey): Buffer {
  return Buffer.from(key.secret, 'base64')
}

function checkAlgorithm(input: Input): void {
  const algorithm = optionalString(input, 'EncryptionAlgorithm')
  if (algorithm !== undefined && algorithm !== SYMMETRIC_DEFAULT) {
    throw new KmsFault('InvalidKeyUsageException', `EncryptionAlgorithm ${algorithm} is not valid for a symmetric key`)
  }
}

async function encrypt(ctx: OperationContext, input: Input): Promise<Output> {
  const key = keyNamed(ctx, requiredString(input, 'KeyId'))
  const plaintext = blob(input, 'Plaintext', MAX_PLAINTEXT_BYTES)
  checkAlgorithm(input)
  authorize(ctx, key, 'Encrypt', {})
  const ciphertext = sealCiphertextBlob(key.keyId, masterSecret(key), plaintext, encryptionContext(input))
  return { CiphertextBlob: bytesToBase64(ciphertext), KeyId: key.arn, EncryptionAlgorithm: SYMMETRIC_DEFAULT }
}

async function decrypt(ctx: OperationContext, input: Input): Promise<Output> {
  const ciphertext = blob(input, 'CiphertextBlob', MAX_CIPHERTEXT_BLOB_BYTES)
  checkAlgorithm(input)
  const invalid = new KmsFault('InvalidCiphertextException', 'The ciphertext is invalid, damaged, or was not made under this key and encryption context')
  const blobKeyId = ciphertextKeyId(ciphertext)
  const key = blobKeyId === null ? undefined : ctx.store.find(blobKeyId)
  if (key === undefined) throw invalid
  const named = optionalString(input, 'KeyId')
  if (named !== undefined && keyNamed(ctx, named).keyId !== key.keyId) {
    throw new KmsFault('IncorrectKeyException', 'The key ID in the request does not identify the key that encrypted the ciphertext')
  }
  const recipient = await recipientOf(ctx, input)
  authorize(ctx, key, 'Decrypt', recipient.context)
  const plaintext = openCiphertextBlob(ciphertext, masterSecret(key), encryptionContext(input))
  if (plaintext === null) throw invalid
  try {
    return { KeyId: key.arn, EncryptionAlgorithm: SYMMETRIC_DEFAULT, ...(await secretOut(recipient.publicKey, plaintext)) }
  } finally {
    plaintext.fill(0)
  }
}

async function generateDataKey(ctx: OperationContext, input: Input): Promise<Output> {
  const key = keyNamed(ctx, requiredString(input, 'KeyId'))
  const spec = optionalString(input, 'KeySpec')
  const count = byteCount(input, 'NumberOfBytes', MAX_DATA_KEY_BYTES)
  if ((spec === undefined) === (count === undefined)) throw new KmsFault('ValidationException', 'Please specify either number of bytes or key spec.')
  const length = spec === undefined ? count! : DATA_KEY_SPECS[spec]
  if (length === undefined) throw validation('keySpec', `Member must satisfy enum value set: [${Object.keys(DATA_KEY_SPECS).join(', ')}]`)
  const recipient = await recipientOf(ctx, input)
  authorize(ctx, key, 'GenerateDataKey', recipient.context)
  const dataKey = new Uint8Array(randomBytes(length))
  try {
    const ciphertext = sealCiphertextBlob(key.keyId, masterSecret(key), dataKey, encryptionContext(input))
    return { KeyId: key.arn, CiphertextBlob: bytesToBase64(ciphertext), ...(await secretOut(recipient.publicKey, dataKey)) }
  } finally {
    dataKey.fill(0)
  }
}

async function generateRandom(ctx: OperationContext, input: Input): Promise<Output> {
  const count = byteCount(input, 'NumberOfBytes', MAX_DATA_KEY_BYTES)
  if (count === undefined) throw validation('numberOfBytes', 'Member must not be null')
  const recipient = await recipientOf(ctx, input)
  return secretOut(recipient.publicKey, new Uint8Array(randomBytes(count)))
}

function keyMetadata(ctx: OperationContext, key: StoredKey): Output {
  return {
    AWSAccountId: ctx.accountId,
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: key.createdAt,
    Enabled: true,
    Description: key.description,
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: 'Enabled',
    Origin: 'AWS_KMS',
    KeyManager: 'CUSTOMER',
    KeySpec: SYMMETRIC_DEFAULT,
    CustomerMasterKeySpec: SYMMETRIC_DEFAULT,
    EncryptionAlgorithms: [SYMMETRIC_DEFAULT],
    MultiRegion: false,
  }
}

function policyFrom(text: string): KeyPolicy {
  try {
    return parseKeyPolicy(text)
  } catch (error) {
    throw new KmsFault('MalformedPolicyDocumentException', error instanceof PolicyError ? error.message : 'The policy is malformed')
  }
}

/**
 * KMS refuses a policy that would stop the caller from changing it again, unless told to
 * bypass the check: that is the irreversible lock, and it has to be asked for by name.
 */
function checkLockout(ctx: OperationContext, policy: KeyPolicy, keyArn: string, input: Input): void {
  if (input.BypassPolicyLockoutSafetyCheck === true) return
  const decision = evaluateKeyPolicy(policy, { action: 'kms:PutKeyPolicy', principalArn: ctx.callerArn, resourceArn: keyArn, context: {} })
  if (!decision.allowed) {
    throw new KmsFault('MalformedPolicyDocumentException', 'The new key policy will not allow you to update the key policy in the future.')
  }
}

async function createKey(ctx: OperationContext, input: Input): Promise<Output> {
  const spec = optionalString(input, 'KeySpec') ?? optionalString(input, 'CustomerMasterKeySpec') ?? SYMMETRIC_DEFAULT
  const usage = optionalString(input, 'KeyUsage') ?? 'ENCRYPT_DECRYPT'
  if (spec !== SYMMETRIC_DEFAULT || usage !== 'ENCRYPT_DECRYPT') {
    throw new KmsFault('UnsupportedOperationException', 'the stand-in makes SYMMETRIC_DEFAULT ENCRYPT_DECRYPT keys only')
  }
  const text = optionalString(input, 'Policy')
  const keyId = randomUUID()
  const policy = text === undefined ? defaultKeyPolicy(ctx.accountId) : policyFrom(text)
  checkLockout(ctx, policy, ctx.store.arnOf(keyId), input)
  const key = ctx.store.create({ keyId, policy, description: optionalString(input, 'Description') ?? '' })
  return { KeyMetadata: keyMetadata(ctx, key) }
}

async function describeKey(ctx: OperationContext, input: Input): Promise<Output> {
  const key = keyNamed(ctx, requiredString(input, 'KeyId'))
  authorize(ctx, key, 'DescribeKey', {})
  return { KeyMetadata: keyMetadata(ctx, key) }
}

function checkPolicyName(input: Input): void {
  const name = optionalString(input, 'PolicyName') ?? 'default'
  if (name !== 'default') throw new KmsFault('NotFoundException', `Policy '${name}' does not exist; a key has only "default"`)
}

async function getKeyPolicy(ctx: OperationContext, input: Input): Promise<Output> {
  const key = keyNamed(ctx, requiredString(input, 'KeyId'))
  checkPolicyName(input)
  authorize(ctx, key, 'GetKeyPolicy', {})
  return { Policy: key.policy, PolicyName: 'default' }
}

async function putKeyPolicy(ctx: OperationContext, input: Input): Promise<Output> {
  const key = keyNamed(ctx, requiredString(input, 'KeyId'))
  checkPolicyName(input)
  const policy = policyFrom(requiredString(input, 'Policy'))
  authorize(ctx, key, 'PutKeyPolicy', {})
  checkLockout(ctx, policy, key.arn, input)
  ctx.store.putPolicy(key.keyId, policy)
  return {}
}

export type Operation = (ctx: OperationContext, input: Input) => Promise<Output>

/** X-Amz-Target is TrentService.<name>. */
export const OPERATIONS: Record<string, Operation> = {
  CreateKey: createKey,
  Decrypt: decrypt,
  DescribeKey: describeKey,
  Encrypt: encrypt,
  GenerateDataKey: generateDataKey,
  GenerateRandom: generateRandom,
  GetKeyPolicy: getKeyPolicy,
  PutKeyPolicy: putKeyPolicy,
}
