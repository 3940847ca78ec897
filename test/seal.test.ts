// The enclave's seal and unseal, driven with the real @aws-sdk/client-kms against the KMS
// stand-in on loopback and the NSM simulator: the identity survives, only the right enclave
// opens it, every failure is a typed SealError, and the secret never crosses the wire.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { decodeAttestation } from '../nec01/attestation.js'
import { checkSealedBlob, isSealError, sealKey, unsealKey, type SealErrorCode } from '../src/kms/seal.js'
import { hexOf, kmsWorld, randomPcr, type KmsWorld } from './kms-helpers.js'
import { freePort } from './service-harness.js'

async function rejectsWith(promise: Promise<unknown>, code: SealErrorCode, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isSealError(error), `expected a SealError, got ${String(error)}`)
    assert.equal(error.code, code, error.message)
    assert.ok(!error.message.includes('\n'), 'one-line message')
    if (pattern !== undefined) assert.match(error.message, pattern)
    return true
  })
}

/** The blob with one byte changed and the trailing checksum made right again, so only KMS or GCM can notice. */
function tamperInside(blob: Uint8Array, at: number): Uint8Array {
  const out = new Uint8Array(blob)
  out[at] = out[at]! ^ 0x01
  const body = out.subarray(0, out.length - 32)
  out.set(createHash('sha256').update(body).digest(), out.length - 32)
  return out
}

/** Offsets inside a v1 blob: after magic(7)+version(1), u16 arn, arn, u16 kms, kms, iv(12), u16 sealed, sealed. */
function layout(blob: Uint8Array): { kmsStart: number; sealedStart: number } {
  const b = Buffer.from(blob)
  const arnLen = b.readUInt16BE(8)
  const kmsLenAt = 10 + arnLen
  const kmsLen = b.readUInt16BE(kmsLenAt)
  const kmsStart = kmsLenAt + 2
  const sealedStart = kmsStart + kmsLen + 12 + 2
  return { kmsStart, sealedStart }
}

describe('seal: sealKey and unsealKey against the KMS stand-in', () => {
  let world: KmsWorld
  let keyArn: string
  const secret = new Uint8Array(randomBytes(32))
  let blob: Uint8Array

  before(async () => {
    world = await kmsWorld('seal')
    keyArn = world.enclaveKey()
    blob = await sealKey({ kms: world.client(), keyId: keyArn, secret, nsm: world.simulator })
  })
  after(async () => world.close())

  it('seals then unseals the same secret, in this enclave and in a new one with the same measurements', async () => {
    assert.deepEqual(await unsealKey({ kms: world.client(), blob, nsm: world.simulator }), secret)
    const reboot = await world.otherEnclave({})
    assert.deepEqual(await unsealKey({ kms: world.client(), blob, nsm: reboot }), secret)
    assert.equal(checkSealedBlob(blob).keyArn, keyArn)
  })

  it('an enclave with another PCR0 is refused: POLICY_REFUSED, not retryable', async () => {
    const other = await world.otherEnclave({ bootPcrs: { 0: randomPcr() } })
    const before = world.exchanges.length
    await assert.rejects(unsealKey({ kms: world.client(), blob, nsm: other }), (error: unknown) => {
      assert.ok(isSealError(error) && error.code === 'POLICY_REFUSED' && !error.retryable, String(error))
      assert.match(error.message, /AccessDeniedException/)
      return true
    })
    const last = world.exchanges.slice(before)
    assert.deepEqual(
      last.map((e) => [e.operation, e.status]),
      [['Decrypt', 400]],
    )
    assert.equal(JSON.parse(last[0]!.responseBody.toString()).__type, 'AccessDeniedException')
  })

  it('a debug-mode enclave (PCR0/1/2 zero) is refused', async () => {
    const debug = await world.otherEnclave({ debug: true })
    await rejectsWith(unsealKey({ kms: world.client(), blob, nsm: debug }), 'POLICY_REFUSED', /debug/)
  })

  it('an enclave with the right PCR0 cannot seal under a key whose policy also pins a PCR1 it does not have', async () => {
    const strictKey = world.enclaveKey({ 1: hexOf(randomPcr()) })
    await rejectsWith(sealKey({ kms: world.client(), keyId: strictKey, secret, nsm: world.simulator }), 'POLICY_REFUSED')
  })

  it('a damaged blob is BLOB_DAMAGED: truncated, garbled, wrong magic or version, tampered KMS ciphertext, tampered sealed key', async () => {
    const before = world.exchanges.length
    for (const bad of [blob.subarray(0, blob.length - 1), blob.subarray(0, 20), new Uint8Array(0), Uint8Array.of(...blob, 0)]) {
      await rejectsWith(unsealKey({ kms: world.client(), blob: bad, nsm: world.simulator }), 'BLOB_DAMAGED')
    }
    const garbled = new Uint8Array(blob)
    const at = layout(blob).kmsStart + 10
    garbled[at] = garbled[at]! ^ 0xff
    await rejectsWith(unsealKey({ kms: world.client(), blob: garbled, nsm: world.simulator }), 'BLOB_DAMAGED', /checksum/)
    const magic = new Uint8Array(blob)
    magic[0] = 0x58
    await rejectsWith(unsealKey({ kms: world.client(), blob: magic, nsm: world.simulator }), 'BLOB_DAMAGED', /magic/)
    const version = tamperInside(blob, 7)
    await rejectsWith(unsealKey({ kms: world.client(), blob: version, nsm: world.simulator }), 'BLOB_DAMAGED', /version 0 is not supported/)
    assert.equal(world.exchanges.length, before, 'format damage is caught before any request')

    const { kmsStart, sealedStart } = layout(blob)
    await rejectsWith(unsealKey({ kms: world.client(), blob: tamperInside(blob, kmsStart + 30), nsm: world.simulator }), 'BLOB_DAMAGED', /InvalidCiphertextException/)
    await rejectsWith(unsealKey({ kms: world.client(), blob: tamperInside(blob, sealedStart + 3), nsm: world.simulator }), 'BLOB_DAMAGED', /does not authenticate/)
  })

  it('KMS down is KMS_UNREACHABLE (retryable); once it is back, the same blob unseals', async () => {
    const port = await freePort()
    await world.restart({ port })
    const client = world.client()
    await unsealKey({ kms: client, blob, nsm: world.simulator })
    await world.standin.close()
    await assert.rejects(unsealKey({ kms: client, blob, nsm: world.simulator }), (error: unknown) => {
      assert.ok(isSealError(error))
      assert.equal(error.code, 'KMS_UNREACHABLE', error.message)
      assert.equal(error.retryable, true)
      return true
    })
    await world.restart({ port })
    assert.deepEqual(await unsealKey({ kms: client, blob, nsm: world.simulator }), secret)
  })

  it('refused credentials are CREDENTIALS_REFUSED (retryable)', async () => {
    await world.restart({ principals: {} })
    await assert.rejects(unsealKey({ kms: world.client(), blob, nsm: world.simulator }), (error: unknown) => {
      assert.ok(isSealError(error))
      assert.equal(error.code, 'CREDENTIALS_REFUSED', error.message)
      assert.equal(error.retryable, true)
      return true
    })
    await world.restart({ principals: undefined })
  })

  it('a key that does not exist is KEY_UNAVAILABLE; a bad secret is INVALID_ARGUMENT', async () => {
    const missing = `arn:aws:kms:${world.standin.region}:000000000000:key/00000000-0000-4000-8000-000000000000`
    await rejectsWith(sealKey({ kms: world.client(), keyId: missing, secret, nsm: world.simulator }), 'KEY_UNAVAILABLE', /NotFoundException/)
    await rejectsWith(sealKey({ kms: world.client(), keyId: keyArn, secret: new Uint8Array(0), nsm: world.simulator }), 'INVALID_ARGUMENT')
    await rejectsWith(sealKey({ kms: world.client(), keyId: keyArn, secret: new Uint8Array(1025), nsm: world.simulator }), 'INVALID_ARGUMENT')
  })

  it('each seal and unseal attests a fresh RSA-2048 key, bound in public_key', async () => {
    const start = world.exchanges.length
    await unsealKey({ kms: world.client(), blob, nsm: world.simulator })
    await unsealKey({ kms: world.client(), blob, nsm: world.simulator })
    await sealKey({ kms: world.client(), keyId: keyArn, secret, nsm: world.simulator })
    const keys = world.exchanges.slice(start).map((e) => {
      const request = JSON.parse(e.requestBody.toString()) as { Recipient: { AttestationDocument: string; KeyEncryptionAlgorithm: string } }
      assert.equal(request.Recipient.KeyEncryptionAlgorithm, 'RSAES_OAEP_SHA_256')
      const doc = decodeAttestation(Buffer.from(request.Recipient.AttestationDocument, 'base64'))
      assert.ok(doc.public_key !== null)
      return hexOf(doc.public_key)
    })
    assert.equal(keys.length, 3)
    assert.equal(new Set(keys).size, 3, 'three calls, three RSA keys')
  })

  it('the secret is in no blob and in no byte that crossed the wire, in any encoding', async () => {
    const second = await sealKey({ kms: world.client(), keyId: keyArn, secret, nsm: world.simulator })
    assert.notDeepEqual(second, blob, 'a new data key and IV every time')
    await unsealKey({ kms: world.client(), blob: second, nsm: world.simulator })
    const forms = [Buffer.from(secret), Buffer.from(hexOf(secret)), Buffer.from(Buffer.from(secret).toString('base64')), Buffer.from(hexOf(secret).toUpperCase())]
    const haystacks = [Buffer.from(blob), Buffer.from(second), ...world.exchanges.flatMap((e) => [e.requestBody, e.responseBody])]
    assert.ok(world.exchanges.length > 10)
    for (const hay of haystacks) for (const form of forms) assert.equal(hay.indexOf(form), -1)
    for (const e of world.exchanges) {
      const body = JSON.parse(e.responseBody.toString()) as Record<string, unknown>
      assert.equal(body.Plaintext, undefined, `${e.operation} answered in plaintext`)
    }
  })
})
