// Certificate parsing, path validation, validity windows and the verified-path cache.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeAttestation, verifyAttestation } from '../nec01/attestation.js'
import { parseCertificate, parseRoot, KEY_USAGE } from '../nec01/cert.js'
import { checkValidity, clearVerifierCaches, verifierCacheStats, verifyChain } from '../nec01/chain.js'
import { DerError } from '../nec01/der.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { VerifyError } from '../nec01/result.js'
import { awsRootDer, nitroFixtures } from './fixtures.js'
import { concat, envelope, encodePayload, makeCert, makePki, p384, simulatedDoc, tlv, KU, type Pki } from './forge.js'

const fixtures = nitroFixtures()
const valid = fixtures.filter((f) => f.es384Verifies && !f.debugAllZeroPCR012)
const T0 = Date.UTC(2032, 5, 1)
const HOUR = 3600_000

/** A new leaf under the PKI's instance CA, valid for the first hour after T0. */
function freshLeaf(pki: Pki): { leaf: Uint8Array; leafKeys: ReturnType<typeof p384> } {
  const leafKeys = p384()
  const leaf = makeCert({
    subject: pki.names[4]!,
    issuer: pki.names[3]!,
    notBefore: T0,
    notAfter: T0 + HOUR,
    publicKey: leafKeys.publicKey,
    signer: pki.keys[3]!,
    ca: false,
    keyUsage: KU.digitalSignature,
  })
  return { leaf, leafKeys }
}


describe('parseCertificate on the real AWS PKI', () => {
  it('reads the pinned root as openssl does', () => {
    const root = parseCertificate(awsRootDer())
    assert.equal(root.serialHex, '00f93175681b90afe11d46ccb4e4e7f856')
    assert.equal(root.commonName, 'aws.nitro-enclaves')
    assert.equal(new Date(root.notBefore).toISOString(), '2019-10-28T13:28:05.000Z')
    assert.equal(new Date(root.notAfter).toISOString(), '2049-10-28T14:28:05.000Z')
    assert.equal(root.ca, true)
    assert.equal(root.pathLen, null)
    assert.ok(root.keyUsage !== null && (root.keyUsage & KEY_USAGE.keyCertSign) !== 0)
    assert.deepEqual(root.issuer, root.subject)
    assert.equal(root.publicKey.length, 97)
    assert.equal(root.signature.length, 96)
  })

  it('reads every certificate of every fixture: CA flags, pathLen 2/1/0, leaf not a CA', () => {
    for (const f of fixtures) {
      const d = decodeAttestation(f.bytes)
      const certs = [...d.cabundle, d.certificate].map((der) => parseCertificate(der))
      assert.deepEqual(
        certs.map((c) => c.pathLen),
        [null, 2, 1, 0, null],
        f.name,
      )
      assert.deepEqual(
        certs.map((c) => c.ca),
        [true, true, true, true, false],
        f.name,
      )
      const leaf = certs[4]!
      assert.ok(leaf.keyUsage !== null && (leaf.keyUsage & KEY_USAGE.digitalSignature) !== 0)
      assert.equal((leaf.notAfter - leaf.notBefore) / 1000, f.validUntil - parseCertificate(d.certificate).notBefore / 1000)
      for (let i = 1; i < certs.length; i++) assert.deepEqual(certs[i]!.issuer, certs[i - 1]!.subject, `${f.name} link ${i}`)
    }
  })

  it('rejects trailing bytes, truncation and a BER indefinite length', () => {
    const der = awsRootDer()
    assert.throws(() => parseCertificate(concat(der, Uint8Array.of(0))), DerError)
    for (let cut = 0; cut < der.length; cut += 13) assert.throws(() => parseCertificate(der.subarray(0, cut)), DerError)
    const indefinite = concat(Uint8Array.of(0x30, 0x80), der.subarray(4), Uint8Array.of(0, 0))
    assert.throws(() => parseCertificate(indefinite), DerError)
  })
})

describe('ECDSA-Sig-Value → r‖s', () => {
  it('accepts r or s shorter than 48 bytes: left-padded, the path still verifies', async () => {
    const pki = makePki({ notBefore: T0, notAfter: T0 + HOUR })
    // about 1 in 128 signatures has an r or s below 2^376 (a DER INTEGER under 48 bytes)
    for (let attempt = 0; attempt < 3000; attempt++) {
      const { leaf, leafKeys } = freshLeaf(pki)
      const sig = parseCertificate(leaf).signature
      if (sig[0] !== 0 && sig[48] !== 0) continue
      const { doc } = simulatedDoc({ ...pki, leaf, leafKey: leafKeys.privateKey })
      clearVerifierCaches()
      const result = await verifyAttestation(doc, { now: T0 / 1000, anyPcrs: true, root: pki.root })
      assert.equal(result.valid, true, JSON.stringify(result.checks))
      return
    }
    assert.fail('no short r or s in 3000 signatures')
  })

  it('rejects a non-minimal INTEGER (an extra leading zero) in the signature', () => {
    const k = p384()
    const mangle = (der: Uint8Array): Uint8Array => {
      // SEQUENCE { INTEGER r, INTEGER s }: re-encode r with one more leading 0x00
      const rLen = der[3]!
      const r = der.subarray(4, 4 + rLen)
      const rest = der.subarray(4 + rLen)
      const r2 = tlv(0x02, Uint8Array.of(0), r)
      return tlv(0x30, r2, rest)
    }
    const der = makeCert({
      subject: tlv(0x30),
      issuer: tlv(0x30),
      notBefore: T0,
      notAfter: T0 + HOUR,
      publicKey: k.publicKey,
      signer: k.privateKey,
      mangleSignature: mangle,
    })
    assert.throws(() => parseCertificate(der), /non-minimal INTEGER/)
  })

  it('rejects a certificate signed with another algorithm label', () => {
    const k = p384()
    const der = makeCert({ subject: tlv(0x30), issuer: tlv(0x30), notBefore: T0, notAfter: T0 + HOUR, publicKey: k.publicKey, signer: k.privateKey, algorithm: 'es256-label' })
    assert.throws(() => parseCertificate(der), /ecdsa-with-SHA384/)
  })
})

describe('parseRoot', () => {
  it('accepts DER and PEM and rejects garbage with a clear input error', () => {
    const der = awsRootDer()
    assert.deepEqual(parseRoot(der), der)
    const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`
    assert.deepEqual(parseRoot(pem), der)
    const isInput = (err: unknown): boolean => err instanceof VerifyError && err.code === 'input'
    assert.throws(() => parseRoot('hello'), isInput)
    assert.throws(() => parseRoot(pem + pem), isInput)
    assert.throws(() => parseRoot('-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----'), isInput)
    assert.throws(() => parseRoot(new Uint8Array([1, 2, 3])), isInput)
    assert.throws(() => parseRoot(der.subarray(0, 200)), isInput)
    assert.throws(() => parseRoot(42 as unknown as string), isInput)
  })
})

describe('checkValidity', () => {
  const windows = [
    { label: 'root', notBefore: 1000, notAfter: 9000 },
    { label: 'leaf', notBefore: 2000, notAfter: 5000 },
  ]
  it('is inclusive at both ends of the intersection', () => {
    assert.equal(checkValidity(windows, 2000).ok, true)
    assert.equal(checkValidity(windows, 5000).ok, true)
    assert.equal(checkValidity(windows, 1999).ok, false)
    assert.equal(checkValidity(windows, 5001).ok, false)
    assert.match(checkValidity(windows, 5001).detail, /^leaf expired at/)
    assert.match(checkValidity(windows, 500).detail, /^root is not valid before/)
  })
})

describe('verified-path cache', () => {
  it('hits on a second document from a known chain, and says so', async () => {
    clearVerifierCaches()
    const f = valid[0]!
    const first = await verifyAttestation(f.bytes, { now: f.validFrom, anyPcrs: true })
    assert.equal(first.valid, true)
    assert.deepEqual(verifierCacheStats(), { hits: 0, misses: 1, size: 1 })
    const second = await verifyAttestation(f.bytes, { now: f.validFrom, anyPcrs: true })
    assert.equal(second.valid, true)
    assert.deepEqual(verifierCacheStats(), { hits: 1, misses: 1, size: 1 })
    assert.match(second.checks.find((c) => c.id === 'chain')!.detail, /\(cached path\)/)
    assert.doesNotMatch(first.checks.find((c) => c.id === 'chain')!.detail, /cached/)
  })

  it('reuses the path for two different documents that share a leaf (marlin 2024-08-07 a/b)', async () => {
    clearVerifierCaches()
    const [a, b] = ['marlin-2024-08-07a-nondebug', 'marlin-2024-08-07b-nondebug'].map((n) => fixtures.find((f) => f.name === n)!)
    assert.notDeepEqual(a!.bytes, b!.bytes)
    assert.equal((await verifyAttestation(a!.bytes, { now: a!.validFrom, anyPcrs: true })).valid, true)
    assert.equal((await verifyAttestation(b!.bytes, { now: b!.validFrom, anyPcrs: true })).valid, true)
    assert.equal(verifierCacheStats().hits, 1)
  })

  it('re-checks validity on every hit', async () => {
    clearVerifierCaches()
    const f = valid[1]!
    assert.equal((await verifyAttestation(f.bytes, { now: f.validFrom, anyPcrs: true })).valid, true)
    const late = await verifyAttestation(f.bytes, { now: f.validUntil + 1, anyPcrs: true })
    assert.equal(verifierCacheStats().hits, 1)
    assert.equal(late.reason, 'time')
    const early = await verifyAttestation(f.bytes, { now: f.validFrom - 1, anyPcrs: true })
    assert.equal(verifierCacheStats().hits, 2)
    assert.equal(early.reason, 'time')
  })

  it('never remembers a failed path', async () => {
    clearVerifierCaches()
    const pki = makePki({ notBefore: T0, notAfter: T0 + HOUR })
    // the leaf is signed by the zonal key instead of the instance key
    const badLeaf = makeCert({
      subject: pki.names[4]!,
      issuer: pki.names[3]!,
      notBefore: T0,
      notAfter: T0 + HOUR,
      publicKey: p384().publicKey,
      signer: pki.keys[2]!,
      ca: false,
      keyUsage: KU.digitalSignature,
    })
    const broken: Pki = { ...pki, leaf: badLeaf }
    const { doc } = simulatedDoc(broken)
    for (let i = 0; i < 2; i++) {
      const result = await verifyAttestation(doc, { now: T0 / 1000, anyPcrs: true, root: pki.root })
      assert.equal(result.reason, 'chain')
    }
    assert.deepEqual(verifierCacheStats(), { hits: 0, misses: 2, size: 0 })
  })

  it('does not hit for the same leaf under a different root', async () => {
    clearVerifierCaches()
    const pki = makePki({ notBefore: T0, notAfter: T0 + HOUR })
    const { doc, fields } = simulatedDoc(pki)
    assert.equal((await verifyAttestation(doc, { now: T0 / 1000, anyPcrs: true, root: pki.root })).valid, true)
    // same leaf and intermediates, but another root with the same name in cabundle[0]
    const other = makePki({ notBefore: T0, notAfter: T0 + HOUR })
    const swapped = envelope({ payload: encodePayload({ ...fields, cabundle: [other.root, ...pki.cabundle.slice(1)] }), signer: pki.leafKey })
    const result = await verifyAttestation(swapped, { now: T0 / 1000, anyPcrs: true, root: other.root })
    assert.equal(result.reason, 'chain')
    assert.deepEqual(verifierCacheStats(), { hits: 0, misses: 2, size: 1 })
    // and verifyChain itself, called with the cached leaf and a different root, validates anew
    await assert.rejects(verifyChain(other.root, [other.root, ...pki.cabundle.slice(1)], pki.leaf), VerifyError)
    assert.equal(verifierCacheStats().hits, 0)
  })

  it('stays bounded and evicts the least recently used path', async () => {
    clearVerifierCaches()
    const pki = makePki({ notBefore: T0, notAfter: T0 + HOUR })
    const now = T0 / 1000
    const docFor = (): Uint8Array => {
      const { leaf, leafKeys } = freshLeaf(pki)
      return simulatedDoc({ ...pki, leaf, leafKey: leafKeys.privateKey }).doc
    }
    const first = docFor()
    assert.equal((await verifyAttestation(first, { now, anyPcrs: true, root: pki.root })).valid, true)
    for (let i = 0; i < 256; i++) {
      const result = await verifyAttestation(docFor(), { now, anyPcrs: true, root: pki.root })
      assert.equal(result.valid, true)
    }
    assert.equal(verifierCacheStats().size, 256)
    const before = verifierCacheStats().misses
    await verifyAttestation(first, { now, anyPcrs: true, root: pki.root })
    assert.equal(verifierCacheStats().misses, before + 1, 'the oldest path was evicted')
  })

  it('clearVerifierCaches forgets everything', async () => {
    const f = valid[0]!
    await verifyAttestation(f.bytes, { now: f.validFrom, anyPcrs: true })
    clearVerifierCaches()
    assert.deepEqual(verifierCacheStats(), { hits: 0, misses: 0, size: 0 })
  })
})

describe('test PKI builder', () => {
  it('produces certificates our parser reads back', () => {
    const pki = makePki({ notBefore: T0, notAfter: T0 + HOUR })
    const certs = [...pki.cabundle, pki.leaf].map((d) => parseCertificate(d))
    assert.deepEqual(
      certs.map((c) => c.pathLen),
      [null, 2, 1, 0, null],
    )
    assert.equal(bytesToHex(certs[0]!.issuer), bytesToHex(certs[0]!.subject))
  })
})
