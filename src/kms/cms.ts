// CMS EnvelopedData (RFC 5652 §6) in the one shape AWS KMS answers an attested request
// with (`CiphertextForRecipient`): a single KeyTransRecipientInfo, version 2, naming the key by
// subjectKeyIdentifier; the content key wrapped with RSAES-OAEP (SHA-256, MGF1-SHA-256, no
// label); the content AES-256-CBC encrypted under it. KMS writes it in BER: indefinite lengths
// on the ContentInfo, its [0], the EnvelopedData and the EncryptedContentInfo, and the
// encrypted content as a constructed [0] of OCTET STRING chunks (the Nitro Enclaves SDK's
// parser and its recorded KMS answers show this). The stand-in builds exactly that; the
// enclave opens it and refuses every other algorithm rather than guess.
import {
  CMSVersion,
  ContentEncryptionAlgorithmIdentifier,
  ContentInfo,
  EncryptedContent,
  EncryptedContentInfo,
  EnvelopedData,
  id_data,
  id_envelopedData,
  KeyEncryptionAlgorithmIdentifier,
  KeyTransRecipientInfo,
  RecipientIdentifier,
  RecipientInfo,
  RecipientInfos,
} from '@peculiar/asn1-cms'
import { id_mgf1, id_pSpecified, id_RSAES_OAEP, id_sha256, pSpecifiedEmpty, RsaEsOaepParams, sha256 } from '@peculiar/asn1-rsa'
import { AsnParser, AsnSerializer, OctetString } from '@peculiar/asn1-schema'
import { AlgorithmIdentifier, SubjectKeyIdentifier } from '@peculiar/asn1-x509'
import { webcrypto } from 'node:crypto'
import { CodedError } from '../../nec01/errors.js'

export const AES_256_CBC_OID = '2.16.840.1.101.3.4.1.42'

/** Far above any KMS answer (at most 4096 bytes of content), far below trouble. */
export const MAX_CMS_BYTES = 65536

/** KMS chunks its encrypted content; this size keeps small contents in one chunk, as KMS does. */
const CONTENT_CHUNK_BYTES = 1024

const AES_KEY_BYTES = 32
const AES_BLOCK_BYTES = 16
const RSA_OAEP_SHA256 = { name: 'RSA-OAEP', hash: 'SHA-256' } as const

export type CmsErrorCode = 'CMS_MALFORMED' | 'CMS_UNSUPPORTED' | 'CMS_DECRYPT_FAILED'

export class CmsError extends CodedError<CmsErrorCode> {}

export type RsaPrivateKey = webcrypto.CryptoKey

const subtle = webcrypto.subtle

/** The parts of an asn1js node this module touches; asn1-schema's toASN hands out such nodes. */
interface BerNode {
  lenBlock: { isIndefiniteForm: boolean }
  valueBlock: { value: BerNode[] }
  toBER(sizeOnly?: boolean): ArrayBuffer
}

function berNode(value: object): BerNode {
  return AsnSerializer.toASN(value) as unknown as BerNode
}

function child(node: BerNode, index: number): BerNode {
  const found = node.valueBlock.value[index]
  if (found === undefined) throw new CmsError('CMS_MALFORMED', `internal: no ASN.1 element at ${index}`)
  return found
}

function oaepSha256(): KeyEncryptionAlgorithmIdentifier {
  const params = new RsaEsOaepParams({
    hashAlgorithm: sha256,
    maskGenAlgorithm: new AlgorithmIdentifier({ algorithm: id_mgf1, parameters: AsnSerializer.serialize(sha256) }),
  })
  return new KeyEncryptionAlgorithmIdentifier({ algorithm: id_RSAES_OAEP, parameters: AsnSerializer.serialize(params) })
}

function chunks(bytes: Uint8Array): OctetString[] {
  const out: OctetString[] = []
  for (let at = 0; at < bytes.length; at += CONTENT_CHUNK_BYTES) out.push(new OctetString(bytes.subarray(at, at + CONTENT_CHUNK_BYTES)))
  return out
}

/** EnvelopedData → ContentInfo, in KMS's BER framing (see the header). */
function kmsBer(enveloped: EnvelopedData): Uint8Array {
  const inner = berNode(enveloped)
  const contentInfo = child(inner, 2)
  inner.lenBlock.isIndefiniteForm = true
  contentInfo.lenBlock.isIndefiniteForm = true
  child(contentInfo, 2).lenBlock.isIndefiniteForm = true
  const outer = berNode(new ContentInfo({ contentType: id_envelopedData, content: inner.toBER(false) }))
  outer.lenBlock.isIndefiniteForm = true
  child(outer, 1).lenBlock.isIndefiniteForm = true
  return new Uint8Array(outer.toBER(false))
}

async function importRecipientKey(spki: Uint8Array): Promise<webcrypto.CryptoKey> {
  try {
    return await subtle.importKey('spki', spki, RSA_OAEP_SHA256, false, ['encrypt'])
  } catch {
    throw new CmsError('CMS_UNSUPPORTED', 'the recipient key is not an RSA SubjectPublicKeyInfo')
  }
}

/**
 * Encrypts `content` to the RSA key in `recipientSpki` (DER SubjectPublicKeyInfo), as KMS
 * does for a Recipient. The subjectKeyIdentifier is SHA-256 of the SPKI; KMS's derivation is
 * not documented and no reader relies on it (there is one recipient).
 */
export async function buildEnvelopedData(recipientSpki: Uint8Array, content: Uint8Array): Promise<Uint8Array> {
  const recipientKey = await importRecipientKey(recipientSpki)
  const cek = webcrypto.getRandomValues(new Uint8Array(AES_KEY_BYTES))
  const iv = webcrypto.getRandomValues(new Uint8Array(AES_BLOCK_BYTES))
  const aes = await subtle.importKey('raw', cek, 'AES-CBC', false, ['encrypt'])
  const encryptedContent = new Uint8Array(await subtle.encrypt({ name: 'AES-CBC', iv }, aes, content))
  const encryptedKey = new Uint8Array(await subtle.encrypt(RSA_OAEP_SHA256, recipientKey, cek))
  cek.fill(0)
  const keyId = new Uint8Array(await subtle.digest('SHA-256', recipientSpki))
  const ktri = new KeyTransRecipientInfo({
    version: CMSVersion.v2,
    rid: new RecipientIdentifier({ subjectKeyIdentifier: new SubjectKeyIdentifier(keyId) }),
    keyEncryptionAlgorithm: oaepSha256(),
    encryptedKey: new OctetString(encryptedKey),
  })
  const enveloped = new EnvelopedData({
    version: CMSVersion.v2,
    recipientInfos: new RecipientInfos([new RecipientInfo({ ktri })]),
    encryptedContentInfo: new EncryptedContentInfo({
      contentType: id_data,
      contentEncryptionAlgorithm: new ContentEncryptionAlgorithmIdentifier({
        algorithm: AES_256_CBC_OID,
        parameters: AsnSerializer.serialize(new OctetString(iv)),
      }),
      encryptedContent: new EncryptedContent({ constructedValue: chunks(encryptedContent) }),
    }),
  })
  return kmsBer(enveloped)
}

function parse<T>(bytes: ArrayBuffer | ArrayBufferView, target: new () => T, what: string): T {
  try {
    return AsnParser.parse(bytes, target)
  } catch {
    throw new CmsError('CMS_MALFORMED', `${what} does not parse`)
  }
}

/**
 * KMS omits pSourceAlgorithm (the default: the empty label). asn1-rsa fills an absent one with
 * its own pSpecifiedEmpty constant, whose parameters are not an empty OCTET STRING, so that
 * constant is taken for "absent". Were a sender to write those bytes as a real label, the
 * RSA decryption (empty label) would fail: nothing is accepted that should not be.
 */
function isEmptyLabel(parameters: ArrayBuffer | null | undefined): boolean {
  if (parameters == null) return true
  const bytes = Buffer.from(parameters)
  const libraryDefault = pSpecifiedEmpty.parameters
  if (libraryDefault != null && bytes.equals(Buffer.from(libraryDefault))) return true
  return parse(parameters, OctetString, 'the OAEP label').byteLength === 0
}

/** RSAES-OAEP with SHA-256, MGF1-SHA-256 and the empty label, nothing else. */
function checkOaepSha256(algorithm: AlgorithmIdentifier): void {
  if (algorithm.algorithm !== id_RSAES_OAEP) throw new CmsError('CMS_UNSUPPORTED', `key transport ${algorithm.algorithm} is not RSAES-OAEP`)
  if (algorithm.parameters === undefined || algorithm.parameters === null) throw new CmsError('CMS_UNSUPPORTED', 'RSAES-OAEP without parameters means SHA-1')
  const params = parse(algorithm.parameters, RsaEsOaepParams, 'the RSAES-OAEP parameters')
  const mgfHash = params.maskGenAlgorithm.parameters
  const mgfHashOk =
    params.maskGenAlgorithm.algorithm === id_mgf1 && mgfHash != null && parse(mgfHash, AlgorithmIdentifier, 'the MGF1 hash').algorithm === id_sha256
  const labelOk = params.pSourceAlgorithm.algorithm === id_pSpecified && isEmptyLabel(params.pSourceAlgorithm.parameters)
  if (params.hashAlgorithm.algorithm !== id_sha256 || !mgfHashOk || !labelOk) {
    throw new CmsError('CMS_UNSUPPORTED', 'RSAES-OAEP parameters are not SHA-256 / MGF1-SHA-256 / empty label')
  }
}

function encryptedBytes(content: EncryptedContent | undefined): Uint8Array {
  if (content?.value !== undefined) return new Uint8Array(content.value.buffer)
  if (content?.constructedValue !== undefined) return Buffer.concat(content.constructedValue.map((c) => new Uint8Array(c.buffer)))
  throw new CmsError('CMS_MALFORMED', 'the EnvelopedData has no encrypted content')
}

interface Envelope {
  encryptedKey: Uint8Array
  iv: Uint8Array
  ciphertext: Uint8Array
}

/** The three values an RSA key needs, after every structural and algorithm check. */
function readEnvelope(ber: Uint8Array): Envelope {
  if (!(ber instanceof Uint8Array) || ber.length === 0) throw new CmsError('CMS_MALFORMED', 'the CMS message is empty')
  if (ber.length > MAX_CMS_BYTES) throw new CmsError('CMS_MALFORMED', `the CMS message is ${ber.length} bytes; at most ${MAX_CMS_BYTES} accepted`)
  const info = parse(ber, ContentInfo, 'the CMS ContentInfo')
  if (info.contentType !== id_envelopedData) throw new CmsError('CMS_UNSUPPORTED', `content type ${info.contentType} is not EnvelopedData`)
  const enveloped = parse(info.content, EnvelopedData, 'the EnvelopedData')
  if (enveloped.version !== CMSVersion.v0 && enveloped.version !== CMSVersion.v2) {
    throw new CmsError('CMS_UNSUPPORTED', `EnvelopedData version ${enveloped.version} is not 0 or 2`)
  }
  const recipients = enveloped.recipientInfos
  const ktri = recipients.length === 1 ? recipients[0]?.ktri : undefined
  if (ktri === undefined) throw new CmsError('CMS_UNSUPPORTED', 'expected exactly one key-transport recipient')
  checkOaepSha256(ktri.keyEncryptionAlgorithm)
  const eci = enveloped.encryptedContentInfo
  if (eci.contentType !== id_data) throw new CmsError('CMS_UNSUPPORTED', `encrypted content type ${eci.contentType} is not id-data`)
  if (eci.contentEncryptionAlgorithm.algorithm !== AES_256_CBC_OID) {
    throw new CmsError('CMS_UNSUPPORTED', `content encryption ${eci.contentEncryptionAlgorithm.algorithm} is not AES-256-CBC`)
  }
  const ivParam = eci.contentEncryptionAlgorithm.parameters
  const iv = ivParam == null ? new Uint8Array(0) : new Uint8Array(parse(ivParam, OctetString, 'the AES-CBC IV').buffer)
  if (iv.length !== AES_BLOCK_BYTES) throw new CmsError('CMS_MALFORMED', `the AES-CBC IV is ${iv.length} bytes, not ${AES_BLOCK_BYTES}`)
  const ciphertext = encryptedBytes(eci.encryptedContent)
  if (ciphertext.length === 0 || ciphertext.length % AES_BLOCK_BYTES !== 0) {
    throw new CmsError('CMS_MALFORMED', `the encrypted content is ${ciphertext.length} bytes, not whole AES blocks`)
  }
  return { encryptedKey: new Uint8Array(ktri.encryptedKey.buffer), iv, ciphertext }
}

/**
 * Opens a CMS EnvelopedData (KMS's CiphertextForRecipient) with the RSA-OAEP private key whose
 * public half was in the attestation document. Throws CmsError; never returns partial data.
 */
export async function openEnvelopedData(ber: Uint8Array, privateKey: RsaPrivateKey): Promise<Uint8Array> {
  const envelope = readEnvelope(ber)
  let cek: Uint8Array
  try {
    cek = new Uint8Array(await subtle.decrypt(RSA_OAEP_SHA256, privateKey, envelope.encryptedKey))
  } catch {
    throw new CmsError('CMS_DECRYPT_FAILED', 'the content key does not decrypt with this RSA key')
  }
  if (cek.length !== AES_KEY_BYTES) throw new CmsError('CMS_DECRYPT_FAILED', `the content key is ${cek.length} bytes, not ${AES_KEY_BYTES}`)
  try {
    const aes = await subtle.importKey('raw', cek, 'AES-CBC', false, ['decrypt'])
    return new Uint8Array(await subtle.decrypt({ name: 'AES-CBC', iv: envelope.iv }, aes, envelope.ciphertext))
  } catch {
    throw new CmsError('CMS_DECRYPT_FAILED', 'the content does not decrypt (bad padding)')
  } finally {
    cek.fill(0)
  }
}
