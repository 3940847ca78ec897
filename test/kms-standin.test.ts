// The KMS stand-in, driven by the real @aws-sdk/client-kms over loopback: the JSON 1.1
// protocol and SigV4 framing, AWS's error shapes, attested answers as KMS's CMS, the key
// policy (attestation conditions, explicit deny, the lockout check), and its key file.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, generateKeyPairSync } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateRandomCommand,
  GetKeyPolicyCommand,
  PutKeyPolicyCommand,
  KMSClient,
} from '@aws-sdk/client-kms'
import { ContentInfo, EnvelopedData } from '@peculiar/asn1-cms'
import { AsnParser, AsnSerializer } from '@peculiar/asn1-schema'
import { webcrypto } from 'node:crypto'
import { attestedRecipient } from '../src/kms/seal.js'
import { buildEnvelopedData, CmsError, openEnvelopedData } from '../src/kms/cms.js'
import { enclaveKeyPolicy, evaluateKeyPolicy, parseKeyPolicy, PolicyError, type KeyPolicy } from '../src/kms/policy.js'
import { STANDIN_CALLER_ARN, startKmsStandin } from '../src/kms/standin.js'
import { StandinStateError } from '../src/kms/store.js'
import { hexOf, kmsWorld, randomPcr, TEST_ACCESS_KEY, type KmsWorld } from './kms-helpers.js'

/** The SDK error's name and HTTP status, which is all a caller can branch on. */
async function kmsError(promise: Promise<unknown>): Promise<{ name: string; status: number | undefined; message: string }> {
  try {
    await promise
  } catch (error) {
    const e = error as { name: string; message: string; $metadata?: { httpStatusCode?: number } }
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message }
  }
  assert.fail('expected the call to fail')
}

async function rsaPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['encrypt', 'decrypt'])
}

describe('KMS stand-in: protocol and errors with the real SDK', () => {
  let world: KmsWorld
  let kms: KMSClient
  before(async () => {
    world = await kmsWorld('proto')
    kms = world.client()
  })
  after(async () => world.close())

  it('CreateKey, DescribeKey, Encrypt and Decrypt round-trip under the default policy', async () => {
    const created = await kms.send(new CreateKeyCommand({ Description: 'test' }))
    const meta = created.KeyMetadata!
    assert.match(meta.KeyId!, /^[0-9a-f-]{36}$/)
    assert.equal(meta.Arn, `arn:aws:kms:${world.standin.region}:000000000000:key/${meta.KeyId}`)
    assert.equal(meta.KeyState, 'Enabled')
    assert.ok(meta.CreationDate instanceof Date)
    const described = await kms.send(new DescribeKeyCommand({ KeyId: meta.KeyId }))
    assert.equal(described.KeyMetadata!.Arn, meta.Arn)
    const plaintext = new Uint8Array(randomBytes(100))
    const enc = await kms.send(new EncryptCommand({ KeyId: meta.KeyId, Plaintext: plaintext, EncryptionContext: { a: 'b' } }))
    assert.equal(enc.KeyId, meta.Arn)
    const dec = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { a: 'b' } }))
    assert.deepEqual(dec.Plaintext, plaintext)
    assert.equal(dec.KeyId, meta.Arn)
    assert.equal(dec.CiphertextForRecipient, undefined)

    const tampered = new Uint8Array(enc.CiphertextBlob!)
    tampered[tampered.length - 5] = tampered[tampered.length - 5]! ^ 1
    for (const input of [
      { CiphertextBlob: tampered, EncryptionContext: { a: 'b' } },
      { CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { a: 'c' } },
      { CiphertextBlob: enc.CiphertextBlob!.subarray(0, 30) },
    ]) {
      const e = await kmsError(kms.send(new DecryptCommand(input)))
      assert.deepEqual([e.name, e.status], ['InvalidCiphertextException', 400])
    }
    const other = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId
    const wrong = await kmsError(kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, KeyId: other, EncryptionContext: { a: 'b' } })))
    assert.equal(wrong.name, 'IncorrectKeyException')
  })

  it('answers AWS error shapes: NotFound, Validation, UnknownOperation; JSON body with __type', async () => {
    const missing = await kmsError(kms.send(new DescribeKeyCommand({ KeyId: '11111111-2222-4333-8444-555555555555' })))
    assert.deepEqual([missing.name, missing.status], ['NotFoundException', 400])
    const key = world.standin.createKey(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: world.pcr0 } })).keyId
    const both = await kmsError(kms.send(new GenerateDataKeyCommand({ KeyId: key, KeySpec: 'AES_256', NumberOfBytes: 32 })))
    assert.deepEqual([both.name, both.status], ['ValidationException', 400])
    const big = await kmsError(kms.send(new GenerateRandomCommand({ NumberOfBytes: 1025 })))
    assert.equal(big.name, 'ValidationException')
    const random = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 64 }))
    assert.equal(random.Plaintext!.length, 64)
  })

  it('refuses unsigned and badly signed requests as AWS does', async () => {
    const post = (headers: Record<string, string>): Promise<Response> =>
      fetch(`${world.standin.endpoint}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.GenerateRandom', ...headers },
        body: '{"NumberOfBytes":8}',
      })
    const unsigned = await post({})
    assert.equal(unsigned.status, 403)
    assert.equal(unsigned.headers.get('content-type'), 'application/x-amz-json-1.1')
    assert.deepEqual(await unsigned.json(), { __type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' })
    const garbled = await post({ authorization: 'AWS4-HMAC-SHA256 Credential=nope' })
    assert.equal(garbled.status, 400)
    assert.equal(((await garbled.json()) as { __type: string }).__type, 'IncompleteSignatureException')
    const otherRegion = new KMSClient({ region: 'eu-west-1', endpoint: world.standin.endpoint, credentials: { accessKeyId: TEST_ACCESS_KEY, secretAccessKey: 'x' }, maxAttempts: 1 })
    const scoped = await kmsError(otherRegion.send(new GenerateRandomCommand({ NumberOfBytes: 8 })))
    otherRegion.destroy()
    assert.equal(scoped.name, 'InvalidSignatureException')
    const unknown = await post({
      authorization: `AWS4-HMAC-SHA256 Credential=${TEST_ACCESS_KEY}/20250101/${world.standin.region}/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`,
      'x-amz-date': '20250101T000000Z',
      'x-amz-target': 'TrentService.DeleteEverything',
    })
    assert.equal(((await unknown.json()) as { __type: string }).__type, 'UnknownOperationException')
  })
})

describe('KMS stand-in: attested requests (Recipient)', () => {
  let world: KmsWorld
  let kms: KMSClient
  let keyArn: string
  before(async () => {
    world = await kmsWorld('recipient')
    kms = world.client()
    keyArn = world.enclaveKey()
  })
  after(async () => world.close())

  it('GenerateDataKey and Decrypt answer with CMS EnvelopedData to the attested key, never Plaintext', async () => {
    const a = await attestedRecipient(world.simulator)
    const generated = await kms.send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256', Recipient: a.recipient }))
    assert.equal(generated.Plaintext, undefined)
    const cms = generated.CiphertextForRecipient!
    // KMS's framing: BER, indefinite-length ContentInfo, [0] and EnvelopedData
    assert.deepEqual([...cms.subarray(0, 2)], [0x30, 0x80])
    const enveloped = AsnParser.parse(AsnParser.parse(cms, ContentInfo).content, EnvelopedData)
    assert.equal(enveloped.version, 2)
    const ktri = enveloped.recipientInfos[0]!.ktri!
    assert.equal(ktri.version, 2)
    assert.ok(ktri.rid.subjectKeyIdentifier !== undefined)
    assert.equal(
      hexOf(new Uint8Array(AsnSerializer.serialize(ktri.keyEncryptionAlgorithm))),
      // RSAES-OAEP, hash sha256 (NULL params), MGF1 with sha256 (NULL params), default label
      '303c06092a864886f70d010107302fa00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500',
    )
    assert.equal(enveloped.encryptedContentInfo.contentEncryptionAlgorithm.algorithm, '2.16.840.1.101.3.4.1.42')
    const dataKey = await openEnvelopedData(cms, a.privateKey)
    assert.equal(dataKey.length, 32)

    const b = await attestedRecipient(world.simulator)
    const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob: generated.CiphertextBlob, Recipient: b.recipient }))
    assert.equal(decrypted.Plaintext, undefined)
    assert.deepEqual(await openEnvelopedData(decrypted.CiphertextForRecipient!, b.privateKey), dataKey)
    await assert.rejects(openEnvelopedData(decrypted.CiphertextForRecipient!, a.privateKey), (e: unknown) => e instanceof CmsError && e.code === 'CMS_DECRYPT_FAILED')
  })

  it('without a Recipient the attestation condition is not met: AccessDenied, as for the parent', async () => {
    const denied = await kmsError(kms.send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256' })))
    assert.deepEqual([denied.name, denied.status], ['AccessDeniedException', 400])
    assert.match(denied.message, /not authorized to perform: kms:GenerateDataKey/)
  })

  it('refuses another PCR0, a debug enclave and another root; PCR conditions compare hex case-insensitively', async () => {
    const other = await world.otherEnclave({ bootPcrs: { 0: randomPcr() } })
    const debug = await world.otherEnclave({ debug: true })
    for (const nsm of [other, debug]) {
      const r = await attestedRecipient(nsm)
      const e = await kmsError(kms.send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256', Recipient: r.recipient })))
      assert.equal(e.name, 'AccessDeniedException')
    }
    const debugDenied = await kmsError(kms.send(new GenerateRandomCommand({ NumberOfBytes: 8, Recipient: (await attestedRecipient(debug)).recipient })))
    assert.match(debugDenied.message, /debug/)
    const foreign = await kmsWorld('foreign-root')
    try {
      const r = await attestedRecipient(foreign.simulator)
      const e = await kmsError(kms.send(new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: 'AES_256', Recipient: r.recipient })))
      assert.equal(e.name, 'AccessDeniedException')
      assert.match(e.message, /root/)
    } finally {
      await foreign.close()
    }
    const upper = world.standin.createKey(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: world.pcr0 } }))
    world.standin.putKeyPolicy(upper.keyId, JSON.parse(JSON.stringify(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: world.pcr0 } })).replace(world.pcr0, world.pcr0.toUpperCase())) as KeyPolicy)
    const ok = await kms.send(new GenerateDataKeyCommand({ KeyId: upper.arn, KeySpec: 'AES_256', Recipient: (await attestedRecipient(world.simulator)).recipient }))
    assert.ok(ok.CiphertextForRecipient !== undefined)
  })

  it('validates the Recipient: algorithm, document bytes, an RSA-2048 public key', async () => {
    const good = await attestedRecipient(world.simulator)
    const badAlgorithm = await kmsError(
      kms.send(new GenerateRandomCommand({ NumberOfBytes: 8, Recipient: { ...good.recipient, KeyEncryptionAlgorithm: 'RSA_OAEP' as 'RSAES_OAEP_SHA_256' } })),
    )
    assert.equal(badAlgorithm.name, 'ValidationException')
    const junk = await kmsError(kms.send(new GenerateRandomCommand({ NumberOfBytes: 8, Recipient: { ...good.recipient, AttestationDocument: new Uint8Array(randomBytes(200)) } })))
    assert.equal(junk.name, 'ValidationException')
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' })
    const ecDoc = await world.simulator.attest({ publicKey: new Uint8Array(ec) })
    const notRsa = await kmsError(kms.send(new GenerateRandomCommand({ NumberOfBytes: 8, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: ecDoc } })))
    assert.equal(notRsa.name, 'ValidationException')
    assert.match(notRsa.message, /RSA 2048/)
    const noKey = await kmsError(
      kms.send(new GenerateRandomCommand({ NumberOfBytes: 8, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: await world.simulator.attest() } })),
    )
    assert.equal(noKey.name, 'ValidationException')
  })
})

describe('KMS stand-in: key policy, lockout and admin', () => {
  let world: KmsWorld
  before(async () => {
    world = await kmsWorld('policy', { principals: { AKIAADMIN: 'arn:aws:iam::000000000000:role/admin', [TEST_ACCESS_KEY]: STANDIN_CALLER_ARN } })
  })
  after(async () => world.close())

  it('the admin statement manages the key but cannot Decrypt, Encrypt or GenerateDataKey; the enclave role can only attested', async () => {
    const admin = world.client('AKIAADMIN')
    const policy = enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, adminArn: 'arn:aws:iam::000000000000:role/admin', pcrs: { 0: world.pcr0 } })
    const key = (await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(policy) }))).KeyMetadata!.Arn!
    assert.equal((await admin.send(new DescribeKeyCommand({ KeyId: key }))).KeyMetadata!.Arn, key)
    assert.deepEqual(JSON.parse((await admin.send(new GetKeyPolicyCommand({ KeyId: key }))).Policy!), policy)
    const recipient = (await attestedRecipient(world.simulator)).recipient
    assert.equal((await kmsError(admin.send(new EncryptCommand({ KeyId: key, Plaintext: Uint8Array.of(1) })))).name, 'AccessDeniedException')
    assert.equal((await kmsError(admin.send(new GenerateDataKeyCommand({ KeyId: key, KeySpec: 'AES_256', Recipient: recipient })))).name, 'AccessDeniedException')
    const enclave = world.client()
    const generated = await enclave.send(new GenerateDataKeyCommand({ KeyId: key, KeySpec: 'AES_256', Recipient: (await attestedRecipient(world.simulator)).recipient }))
    const adminDecrypt = await kmsError(admin.send(new DecryptCommand({ CiphertextBlob: generated.CiphertextBlob, Recipient: (await attestedRecipient(world.simulator)).recipient })))
    assert.equal(adminDecrypt.name, 'AccessDeniedException', 'the admin is refused even with a good attestation')
    assert.equal((await kmsError(enclave.send(new DescribeKeyCommand({ KeyId: key })))).name, 'AccessDeniedException')
    const stranger = world.client('AKIASTRANGER')
    assert.equal((await kmsError(stranger.send(new DescribeKeyCommand({ KeyId: key })))).name, 'UnrecognizedClientException')
  })

  it('a policy that locks the caller out needs BypassPolicyLockoutSafetyCheck, and then nobody can change it', async () => {
    const admin = world.client('AKIAADMIN')
    const managed = enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, adminArn: 'arn:aws:iam::000000000000:role/admin', pcrs: { 0: world.pcr0 } })
    const key = (await admin.send(new CreateKeyCommand({ Policy: JSON.stringify(managed) }))).KeyMetadata!.KeyId!
    const locked = JSON.stringify(enclaveKeyPolicy({ enclaveRoleArn: STANDIN_CALLER_ARN, pcrs: { 0: world.pcr0 } }))
    const refused = await kmsError(admin.send(new PutKeyPolicyCommand({ KeyId: key, PolicyName: 'default', Policy: locked })))
    assert.equal(refused.name, 'MalformedPolicyDocumentException')
    await admin.send(new PutKeyPolicyCommand({ KeyId: key, PolicyName: 'default', Policy: locked, BypassPolicyLockoutSafetyCheck: true }))
    const after = await kmsError(admin.send(new PutKeyPolicyCommand({ KeyId: key, PolicyName: 'default', Policy: JSON.stringify(managed) })))
    assert.equal(after.name, 'AccessDeniedException')
    const bad = await kmsError(admin.send(new CreateKeyCommand({ Policy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}' })))
    assert.equal(bad.name, 'MalformedPolicyDocumentException')
  })
})

describe('key policy evaluation', () => {
  const caller = 'arn:aws:iam::111122223333:role/app'
  const request = (action: string, context: Record<string, string> = {}) => ({ action, principalArn: caller, resourceArn: 'arn:aws:kms:r:111122223333:key/k', context })
  const policy = (statements: unknown[]): KeyPolicy => parseKeyPolicy(JSON.stringify({ Version: '2012-10-17', Statement: statements }))

  it('explicit Deny wins over Allow; nothing applicable denies', () => {
    const p = policy([
      { Effect: 'Allow', Principal: { AWS: '111122223333' }, Action: 'kms:*', Resource: '*' },
      { Sid: 'NoDecrypt', Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*' },
    ])
    assert.deepEqual(evaluateKeyPolicy(p, request('kms:Decrypt')), { allowed: false, explicitDeny: true, sid: 'NoDecrypt' })
    assert.equal(evaluateKeyPolicy(p, request('kms:encrypt')).allowed, true, 'action names are case-insensitive')
    assert.deepEqual(evaluateKeyPolicy(policy([{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::999999999999:root' }, Action: 'kms:*', Resource: '*' }]), request('kms:Encrypt')), {
      allowed: false,
      explicitDeny: false,
      sid: null,
    })
  })

  it('NotAction, wildcards, and conditions: every key ANDed, values ORed, a missing key fails', () => {
    const p = policy([
      { Effect: 'Allow', Principal: { AWS: caller }, NotAction: ['kms:Decrypt', 'kms:GenerateDataKey*'], Resource: '*' },
      {
        Effect: 'Allow',
        Principal: { AWS: caller },
        Action: 'kms:Decrypt',
        Resource: '*',
        Condition: { StringEqualsIgnoreCase: { 'kms:RecipientAttestation:ImageSha384': ['aa', 'bb'], 'kms:RecipientAttestation:PCR1': 'cc' } },
      },
    ])
    assert.equal(evaluateKeyPolicy(p, request('kms:DescribeKey')).allowed, true)
    assert.equal(evaluateKeyPolicy(p, request('kms:GenerateDataKeyWithoutPlaintext')).allowed, false)
    assert.equal(evaluateKeyPolicy(p, request('kms:Decrypt')).allowed, false)
    assert.equal(evaluateKeyPolicy(p, request('kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': 'BB' })).allowed, false, 'PCR1 missing')
    assert.equal(evaluateKeyPolicy(p, request('kms:Decrypt', { 'kms:recipientattestation:imagesha384': 'BB', 'kms:RecipientAttestation:PCR1': 'CC' })).allowed, true)
    assert.equal(evaluateKeyPolicy(p, request('kms:Decrypt', { 'kms:RecipientAttestation:ImageSha384': 'dd', 'kms:RecipientAttestation:PCR1': 'cc' })).allowed, false)
  })

  it('refuses what it cannot evaluate instead of ignoring it', () => {
    for (const statement of [
      { Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { StringEqualsIfExists: { a: 'b' } } },
      { Effect: 'Allow', NotPrincipal: { AWS: '*' }, Principal: '*', Action: 'kms:*', Resource: '*' },
      { Effect: 'Allow', Principal: '*', Action: 'kms:*', NotAction: 'kms:Decrypt', Resource: '*' },
      { Effect: 'Maybe', Principal: '*', Action: 'kms:*', Resource: '*' },
    ]) {
      assert.throws(() => policy([statement]), PolicyError)
    }
    assert.throws(() => parseKeyPolicy('{"Version":"2008-10-17","Statement":[]}'), PolicyError)
    assert.throws(() => enclaveKeyPolicy({ enclaveRoleArn: caller, pcrs: { 1: 'ab'.repeat(48) } }), PolicyError)
  })
})

describe('CMS EnvelopedData', () => {
  it('opens what it builds, across several content chunks, and refuses damage or the wrong key', async () => {
    const pair = await rsaPair()
    const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', pair.publicKey))
    const content = new Uint8Array(randomBytes(3000))
    const cms = await buildEnvelopedData(spki, content)
    assert.deepEqual(await openEnvelopedData(cms, pair.privateKey), content)
    const other = await rsaPair()
    await assert.rejects(openEnvelopedData(cms, other.privateKey), (e: unknown) => e instanceof CmsError && e.code === 'CMS_DECRYPT_FAILED')
    await assert.rejects(openEnvelopedData(cms.subarray(0, 100), pair.privateKey), (e: unknown) => e instanceof CmsError && e.code === 'CMS_MALFORMED')
    await assert.rejects(openEnvelopedData(new Uint8Array(0), pair.privateKey), (e: unknown) => e instanceof CmsError && e.code === 'CMS_MALFORMED')
    const flipped = new Uint8Array(cms)
    flipped[flipped.length - 30] = flipped[flipped.length - 30]! ^ 0x40
    await assert.rejects(openEnvelopedData(flipped, pair.privateKey), CmsError)
  })
})

describe('KMS stand-in: its key file', () => {
  it('keeps keys across restarts in a 0600 file, and stops on a damaged one without touching it', async () => {
    const world = await kmsWorld('store')
    try {
      const kms = world.client()
      const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!
      const enc = await kms.send(new EncryptCommand({ KeyId: key, Plaintext: Uint8Array.of(1, 2, 3) }))
      await world.restart()
      const again = world.client()
      assert.deepEqual((await again.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }))).Plaintext, Uint8Array.of(1, 2, 3))
      const path = `${world.stateDir}/kms-standin/keys.json`
      assert.equal(statSync(path).mode & 0o777, 0o600)
      assert.equal(statSync(`${world.stateDir}/kms-standin`).mode & 0o777, 0o700)
      writeFileSync(path, '{"format":"nec01/kms-standin/keys/v1","keys":[{"keyId":"x"}]}')
      await assert.rejects(startKmsStandin({ stateDir: world.stateDir, root: world.simulator.rootPem() }), (e: unknown) => {
        assert.ok(e instanceof StandinStateError)
        assert.match(e.message, /keys\.json: a key entry is incomplete; remove the file/)
        return true
      })
      assert.equal(readFileSync(path, 'utf8'), '{"format":"nec01/kms-standin/keys/v1","keys":[{"keyId":"x"}]}')
    } finally {
      await world.close()
    }
  })
})
