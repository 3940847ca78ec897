// Forged and malformed documents, built here from scratch (simulated PKIs, re-encoded
// payloads) or cut from real ones: each must fail with the right check, and nothing may
// throw, hang or allocate by a declared length.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeAttestation, verifyAttestation } from '../nec01/attestation.js'
import { parseCertificate } from '../nec01/cert.js'
import { generateKeyPairSync } from 'node:crypto'
import type { Check, CheckId, VerifyOptions, VerifyResult } from '../nec01/types.js'
import { awsRootDer, nitroFixtures } from './fixtures.js'
import {
  cbor,
  concat,
  encodePayload,
  envelope,
  extension,
  filled,
  makePki,
  nameDer,
  p384,
  payloadEntries,
  prng,
  rawMap,
  simulatedDoc,
  KU,
  type CertSpec,
  type PayloadFields,
  type PkiOptions,
} from './forge.js'

const T0 = Date.UTC(2030, 0, 1)
const HOUR = 3600_000
const NOW = T0 / 1000 + 1800
const fixtures = nitroFixtures()
const real = fixtures.find((f) => f.name === 'turnkey-2025-09-16a-nondebug')!
const realDefinite = fixtures.find((f) => f.name === 'evervault-2022-10-13-nondebug')!

function failsWith(result: VerifyResult, id: CheckId, label = ''): void {
  assert.equal(result.valid, false, `${label} unexpectedly valid`)
  assert.equal(result.reason, id, `${label}: ${JSON.stringify(result.checks.filter((c) => !c.ok))}`)
}

/** The check that stopped the run (the not-checked ones after it did not run). */
function stopper(result: VerifyResult): Check {
  const c = result.checks.find((x) => !x.ok)
  assert.ok(c !== undefined, 'no failed check')
  return c
}

function pkiWith(override?: (index: number, spec: CertSpec) => CertSpec, extra: Partial<PkiOptions> = {}): ReturnType<typeof makePki> {
  return makePki({ notBefore: T0, notAfter: T0 + 3 * HOUR, ...extra, ...(override !== undefined ? { override } : {}) })
}

async function verifySimulated(override: (index: number, spec: CertSpec) => CertSpec): Promise<VerifyResult> {
  const pki = pkiWith(override)
  const { doc } = simulatedDoc(pki)
  return verifyAttestation(doc, { now: NOW, anyPcrs: true, root: pki.root })
}

/** The fields of a real document, ready to re-encode. */
function fieldsOf(bytes: Uint8Array): PayloadFields {
  const d = decodeAttestation(bytes)
  return {
    module_id: d.module_id,
    digest: d.digest,
    timestamp: BigInt(d.timestamp),
    pcrs: d.pcrs,
    certificate: d.certificate,
    cabundle: d.cabundle,
    public_key: d.public_key,
    user_data: d.user_data,
    nonce: d.nonce,
  }
}

/** A real document's envelope and signature around another payload. */
function withPayload(bytes: Uint8Array, payload: Uint8Array): Uint8Array {
  const d = decodeAttestation(bytes)
  return envelope({ payload, signature: d.signature })
}

const realOptions = (f = real): VerifyOptions => ({ now: f.validFrom, anyPcrs: true })

describe('simulated PKI through options.root', () => {
  it('a complete simulated chain verifies with its root injected (PEM or DER), and not against AWS', async () => {
    const pki = pkiWith()
    const { doc } = simulatedDoc(pki)
    const result = await verifyAttestation(doc, { now: NOW, anyPcrs: true, root: pki.root })
    assert.equal(result.valid, true, JSON.stringify(result.checks))
    assert.equal(result.checks.find((c) => c.id === 'root')?.detail, 'cabundle[0] is the given trusted root')
    const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(pki.root).toString('base64')}\n-----END CERTIFICATE-----\n`
    assert.equal((await verifyAttestation(doc, { now: NOW, anyPcrs: true, root: pem })).valid, true)
    failsWith(await verifyAttestation(doc, { now: NOW, anyPcrs: true }), 'root')
  })

  it('accepts what real NSMs emit: indefinite map, empty user_data, nulls, absent optionals', async () => {
    const pki = pkiWith()
    const now = { now: NOW, anyPcrs: true, root: pki.root }
    assert.equal((await verifyAttestation(simulatedDoc(pki, {}, true).doc, now)).valid, true)
    assert.equal((await verifyAttestation(simulatedDoc(pki, { user_data: new Uint8Array(0) }).doc, now)).valid, true)
    assert.equal((await verifyAttestation(simulatedDoc(pki, { public_key: null, user_data: null, nonce: null }).doc, now)).valid, true)
    const { fields } = simulatedDoc(pki)
    const required = payloadEntries(fields).filter(([k]) => !['public_key', 'user_data', 'nonce'].includes(k))
    const doc = envelope({ payload: rawMap(required), signer: pki.leafKey })
    const result = await verifyAttestation(doc, now)
    assert.equal(result.valid, true, JSON.stringify(result.checks))
    assert.equal(result.attestation?.public_key, null)
  })
})

describe('forged roots and chains', () => {
  const aws = parseCertificate(awsRootDer())

  it('a root with the AWS subject and serial but another key fails root', async () => {
    const pki = pkiWith(undefined, { rootSubject: new Uint8Array(aws.subject), rootSerial: Buffer.from(aws.serialHex, 'hex') })
    const forged = parseCertificate(pki.root)
    assert.deepEqual(forged.subject, aws.subject)
    assert.deepEqual(forged.issuer, aws.subject)
    assert.equal(forged.serialHex, aws.serialHex)
    assert.notDeepEqual(forged.publicKey, aws.publicKey)
    const { doc } = simulatedDoc(pki)
    failsWith(await verifyAttestation(doc, { now: NOW, anyPcrs: true }), 'root', 'forged AWS root')
    // injected on purpose, the same root is trusted: the chain under it is sound
    assert.equal((await verifyAttestation(doc, { now: NOW, anyPcrs: true, root: pki.root })).valid, true)
  })

  it('a real document whose cabundle[0] is swapped for the forged root fails root', async () => {
    const pki = pkiWith(undefined, { rootSubject: new Uint8Array(aws.subject), rootSerial: Buffer.from(aws.serialHex, 'hex') })
    const fields = fieldsOf(real.bytes)
    const doc = withPayload(real.bytes, encodePayload({ ...fields, cabundle: [pki.root, ...(fields.cabundle as Uint8Array[]).slice(1)] }, true))
    failsWith(await verifyAttestation(doc, realOptions()), 'root')
    // trusting the forged root does not help: AWS's regional CA was not signed by it
    failsWith(await verifyAttestation(doc, { ...realOptions(), root: pki.root }), 'chain')
  })

  it('an intermediate signed by a key that is not its issuer\'s fails chain', async () => {
    const result = await verifySimulated((i, s) => (i === 2 ? { ...s, signer: p384().privateKey } : s))
    failsWith(result, 'chain')
    assert.match(stopper(result).detail, /signature on cabundle\[2\]/)
  })

  it('a leaf signed by a key that is not its issuer\'s fails chain', async () => {
    failsWith(await verifySimulated((i, s) => (i === 4 ? { ...s, signer: p384().privateKey } : s)), 'chain')
  })

  it('a leaf that is a CA fails chain', async () => {
    const result = await verifySimulated((i, s) => (i === 4 ? { ...s, ca: true, keyUsage: KU.digitalSignature | KU.keyCertSign } : s))
    failsWith(result, 'chain')
    assert.match(stopper(result).detail, /leaf certificate .* is a CA/)
  })

  it('a CA without keyCertSign fails chain', async () => {
    const result = await verifySimulated((i, s) => (i === 2 ? { ...s, keyUsage: KU.digitalSignature | KU.cRLSign } : s))
    failsWith(result, 'chain')
    assert.match(stopper(result).detail, /keyCertSign/)
  })

  it('a CA without keyUsage or basicConstraints, or with cA false, fails chain', async () => {
    const without = (spec: CertSpec, ...keys: (keyof CertSpec)[]): CertSpec => {
      const copy = { ...spec }
      for (const k of keys) delete copy[k]
      return copy
    }
    failsWith(await verifySimulated((i, s) => (i === 3 ? without(s, 'keyUsage') : s)), 'chain', 'no keyUsage')
    failsWith(await verifySimulated((i, s) => (i === 1 ? without(s, 'ca', 'pathLen') : s)), 'chain', 'no basicConstraints')
    failsWith(await verifySimulated((i, s) => (i === 1 ? { ...without(s, 'pathLen'), ca: false } : s)), 'chain', 'cA false')
  })

  it('a pathLenConstraint violation fails chain', async () => {
    const tight = await verifySimulated((i, s) => (i === 1 ? { ...s, pathLen: 1 } : s))
    failsWith(tight, 'chain')
    assert.match(stopper(tight).detail, /allows 1 CA certificate\(s\) below it .* the path has 2/)
    failsWith(await verifySimulated((i, s) => (i === 0 ? { ...s, pathLen: 2 } : s)), 'chain', 'root pathLen 2 with 3 CAs below')
    // exactly at the limit is fine
    const exact = await verifySimulated((i, s) => (i === 0 ? { ...s, pathLen: 3 } : s))
    assert.equal(exact.valid, true)
  })

  it('an issuer name that is not the parent\'s subject fails chain', async () => {
    const result = await verifySimulated((i, s) => (i === 3 ? { ...s, issuer: nameDer('zonal.forged', 'Other Org') } : s))
    failsWith(result, 'chain')
    assert.match(stopper(result).detail, /issuer ≠ subject/)
  })

  it('a leaf with a pathLen, or without digitalSignature, fails chain', async () => {
    failsWith(await verifySimulated((i, s) => (i === 4 ? { ...s, pathLen: 0 } : s)), 'chain', 'leaf pathLen')
    failsWith(await verifySimulated((i, s) => (i === 4 ? { ...s, keyUsage: KU.nonRepudiation } : s)), 'chain', 'no digitalSignature')
  })

  it('an unknown critical extension fails chain; an unknown non-critical one is ignored', async () => {
    const custom = (critical: boolean): Uint8Array => extension('2a0304', critical, Uint8Array.of(0x05, 0x00))
    failsWith(await verifySimulated((i, s) => (i === 4 ? { ...s, extraExtensions: [custom(true)] } : s)), 'chain')
    const ok = await verifySimulated((i, s) => (i === 4 ? { ...s, extraExtensions: [custom(false)] } : s))
    assert.equal(ok.valid, true, JSON.stringify(ok.checks))
  })

  it('a duplicated extension fails chain', async () => {
    const bc = extension('551d13', true, Uint8Array.of(0x30, 0x00))
    failsWith(await verifySimulated((i, s) => (i === 4 ? { ...s, extraExtensions: [bc] } : s)), 'chain')
  })

  it('a P-256 key anywhere in the path fails chain', async () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const result = await verifySimulated((i, s) => (i === 4 ? { ...s, publicKey: p256.publicKey } : s))
    failsWith(result, 'chain')
    assert.match(stopper(result).detail, /not EC P-384/)
  })

  it('an intermediate outside its validity fails time, naming it', async () => {
    const result = await verifySimulated((i, s) => (i === 2 ? { ...s, notAfter: T0 + 10 * 60_000 } : s))
    failsWith(result, 'time')
    assert.match(stopper(result).detail, /^cabundle\[2\] .* expired at 2030-01-01T00:10:00Z/)
  })
})

describe('forged payloads and envelopes', () => {
  it('re-encoding a real payload unchanged reproduces its bytes (so the mutations below are the only change)', () => {
    for (const f of [real, realDefinite]) {
      const d = decodeAttestation(f.bytes)
      assert.deepEqual(encodePayload(fieldsOf(f.bytes), f.payloadMapHeader.startsWith('0xbf')), d.payload, f.name)
    }
  })

  it('a mutated payload under the original signature fails signature', async () => {
    for (const f of [real, realDefinite]) {
      const indefinite = f.payloadMapHeader.startsWith('0xbf')
      const fields = fieldsOf(f.bytes)
      const pcrs = new Map(fields.pcrs as Map<number, Uint8Array>)
      pcrs.set(4, filled(48, 0x44))
      for (const mutated of [{ ...fields, pcrs }, { ...fields, user_data: filled(8, 1) }, { ...fields, timestamp: (fields.timestamp as bigint) + 1n }]) {
        const doc = withPayload(f.bytes, encodePayload(mutated, indefinite))
        failsWith(await verifyAttestation(doc, realOptions(f)), 'signature', f.name)
      }
      // a definite map where the signed one was indefinite (or the reverse): same values, other bytes
      failsWith(await verifyAttestation(withPayload(f.bytes, encodePayload(fields, !indefinite)), realOptions(f)), 'signature', `${f.name} map form`)
    }
  })

  it('a flipped bit in the signature fails signature; high-S is not required to be low', async () => {
    const d = decodeAttestation(real.bytes)
    const sig = new Uint8Array(d.signature)
    sig[95]! ^= 1
    failsWith(await verifyAttestation(envelope({ payload: d.payload, signature: sig }), realOptions()), 'signature')
    const highS = fixtures.filter((f) => f.highS && f.es384Verifies && !f.debugAllZeroPCR012)
    assert.ok(highS.length > 0)
    for (const f of highS) assert.equal((await verifyAttestation(f.bytes, realOptions(f))).valid, true, f.name)
  })

  it('rejects other protected headers, unprotected entries and signature sizes as cose', async () => {
    const d = decodeAttestation(real.bytes)
    const cases: [string, Uint8Array][] = [
      ['{1: -7}', envelope({ protectedHeader: cbor(new Map([[1, -7]])), payload: d.payload, signature: d.signature })],
      ['{1: -35, 4: kid}', envelope({ protectedHeader: cbor(new Map<number, unknown>([[1, -35], [4, Uint8Array.of(1)]])), payload: d.payload, signature: d.signature })],
      ['{} protected', envelope({ protectedHeader: new Uint8Array(0), payload: d.payload, signature: d.signature })],
      // -35 with a 2-byte argument: the same value, not the bytes that were signed
      ['non-minimal -35', envelope({ protectedHeader: Uint8Array.of(0xa1, 0x01, 0x39, 0x00, 0x22), payload: d.payload, signature: d.signature })],
      ['unprotected {4: h\'01\'}', envelope({ unprotected: new Map([[4, Uint8Array.of(1)]]), payload: d.payload, signature: d.signature })],
      ['signature 95', envelope({ payload: d.payload, signature: d.signature.subarray(0, 95) })],
      ['signature 97', envelope({ payload: d.payload, signature: concat(d.signature, Uint8Array.of(0)) })],
      ['nil payload', cbor([d.protected, new Map(), null, d.signature])],
      ['3 elements', cbor([d.protected, new Map(), d.payload])],
      ['5 elements', cbor([d.protected, new Map(), d.payload, d.signature, null])],
      ['a map', cbor(new Map([[1, d.payload]]))],
      ['tag 17', concat(Uint8Array.of(0xd1), real.bytes)],
      ['tag 18 twice', concat(Uint8Array.of(0xd2, 0xd2), real.bytes)],
      ['trailing byte', concat(real.bytes, Uint8Array.of(0))],
      ['payload over 16 KiB', cbor([d.protected, new Map(), new Uint8Array(16385), d.signature])],
      ['empty payload', cbor([d.protected, new Map(), new Uint8Array(0), d.signature])],
    ]
    for (const [label, doc] of cases) failsWith(await verifyAttestation(doc, realOptions()), 'cose', label)
  })

  it('fails every truncation of a real document without throwing', async () => {
    for (let cut = 0; cut < real.bytes.length; cut++) {
      const result = await verifyAttestation(real.bytes.subarray(0, cut), realOptions())
      assert.equal(result.valid, false)
      assert.equal(result.reason, cut === 0 ? 'input' : 'cose', `cut at ${cut}`)
    }
  })

  it('rejects huge declared lengths and counts at the header', async () => {
    const prot = Uint8Array.of(0x44, 0xa1, 0x01, 0x38, 0x22)
    const bstr4G = concat(Uint8Array.of(0x84), prot, Uint8Array.of(0xa0, 0x5b, 0, 0, 0, 1, 0, 0, 0, 0), new Uint8Array(64))
    failsWith(await verifyAttestation(bstr4G, realOptions()), 'cose', 'bstr of 2^32')
    failsWith(await verifyAttestation(concat(Uint8Array.of(0x9a, 0x80, 0, 0, 0), new Uint8Array(64)), realOptions()), 'cose', 'array of 2^31')
    failsWith(await verifyAttestation(concat(Uint8Array.of(0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)), realOptions()), 'cose', 'array of 2^64-1')
    const map2G = withPayload(real.bytes, concat(Uint8Array.of(0xba, 0x80, 0, 0, 0), new Uint8Array(64)))
    failsWith(await verifyAttestation(map2G, realOptions()), 'payload', 'map of 2^31')
    const pcrs2G = withPayload(real.bytes, concat(Uint8Array.of(0xa1, 0x64), new TextEncoder().encode('pcrs'), Uint8Array.of(0xba, 0x7f, 0xff, 0xff, 0xff)))
    failsWith(await verifyAttestation(pcrs2G, realOptions()), 'payload', 'pcrs of 2^31')
  })

  it('rejects nesting 10000 deep in the envelope and in the payload', async () => {
    const deep = concat(new Uint8Array(10000).fill(0x81), Uint8Array.of(0))
    failsWith(await verifyAttestation(deep, realOptions()), 'cose')
    failsWith(await verifyAttestation(withPayload(real.bytes, deep), realOptions()), 'payload')
  })

  it('rejects payload field forgeries as payload', async () => {
    const pki = pkiWith()
    const { fields } = simulatedDoc(pki)
    const pcrs = (n: number, size = 48): Map<number, Uint8Array> => new Map(Array.from({ length: n }, (_, i) => [i, filled(size, i + 1)] as [number, Uint8Array]))
    const entries = payloadEntries(fields)
    const cases: [string, Uint8Array][] = [
      ['duplicate module_id', rawMap([...entries.slice(0, 1), ...entries])],
      ['duplicate nonce (indefinite)', rawMap([...entries, ['nonce', null]], true)],
      ['33 PCRs', encodePayload({ ...fields, pcrs: pcrs(32).set(32, filled(48, 1)) })],
      ['33 PCRs by count', encodePayload({ ...fields, pcrs: new Map([...pcrs(32), [40, filled(48, 1)]]) })],
      ['0 PCRs', encodePayload({ ...fields, pcrs: new Map() })],
      ['47-byte PCR', encodePayload({ ...fields, pcrs: pcrs(16).set(3, filled(47, 3)) })],
      ['32-byte PCR', encodePayload({ ...fields, pcrs: pcrs(16, 32) })],
      ['PCR index 32', encodePayload({ ...fields, pcrs: pcrs(16).set(32, filled(48, 1)) })],
      ['PCR index "0"', encodePayload({ ...fields, pcrs: new Map([['0', filled(48, 1)]]) })],
      ['digest SHA256', encodePayload({ ...fields, digest: 'SHA256' })],
      ['digest bytes', encodePayload({ ...fields, digest: new TextEncoder().encode('SHA384') })],
      ['empty module_id', encodePayload({ ...fields, module_id: '' })],
      ['timestamp 0', encodePayload({ ...fields, timestamp: 0 })],
      ['timestamp -1', encodePayload({ ...fields, timestamp: -1 })],
      ['timestamp text', encodePayload({ ...fields, timestamp: '1700000000000' })],
      ['timestamp 2^64-1', encodePayload({ ...fields, timestamp: 2n ** 64n - 1n })],
      // a safe integer, but past the last ECMAScript date (8.64e15 ms)
      ['timestamp 2^53-1', encodePayload({ ...fields, timestamp: 2n ** 53n - 1n })],
      ['public_key 1025', encodePayload({ ...fields, public_key: filled(1025, 1) })],
      ['user_data 1025', encodePayload({ ...fields, user_data: filled(1025, 1) })],
      ['nonce 1025', encodePayload({ ...fields, nonce: filled(1025, 1) })],
      ['public_key text', encodePayload({ ...fields, public_key: 'ab' })],
      ['certificate 1025', encodePayload({ ...fields, certificate: filled(1025, 0x30) })],
      ['certificate empty', encodePayload({ ...fields, certificate: new Uint8Array(0) })],
      ['cabundle empty', encodePayload({ ...fields, cabundle: [] })],
      ['cabundle entry text', encodePayload({ ...fields, cabundle: ['x'] })],
      ['cabundle of 17', encodePayload({ ...fields, cabundle: Array.from({ length: 17 }, () => filled(10, 1)) })],
      ['missing certificate', rawMap(entries.filter(([k]) => k !== 'certificate'))],
      ['unknown key', rawMap([...entries, ['extra', 1]])],
      ['integer key', rawMap([...entries, [1, 1]])],
      ['not a map', cbor([1, 2, 3])],
      ['trailing byte', concat(encodePayload(fields), Uint8Array.of(0))],
      ['float timestamp', rawMap(entries.map(([k, v]) => (k === 'timestamp' ? [k, 1.5] : [k, v])))],
    ]
    for (const [label, payload] of cases) {
      const doc = envelope({ payload, signer: pki.leafKey })
      const result = await verifyAttestation(doc, { now: NOW, anyPcrs: true, root: pki.root })
      failsWith(result, 'payload', label)
      assert.doesNotMatch(stopper(result).detail, /unexpected error/, label)
    }
  })

  it('survives seeded random garbage and random byte flips of a real document', async () => {
    const next = prng(20251121)
    for (let round = 0; round < 300; round++) {
      const garbage = Uint8Array.from({ length: 1 + (next() % 300) }, () => next() & 0xff)
      if (round % 3 === 0) garbage[0] = 0x84 // look like an envelope now and then
      const result = await verifyAttestation(garbage, realOptions())
      assert.equal(result.valid, false)
      assert.ok(result.reason === 'input' || result.reason === 'cose', `garbage round ${round}: ${result.reason}`)
    }
    for (let round = 0; round < 300; round++) {
      const doc = new Uint8Array(real.bytes)
      const at = next() % doc.length
      doc[at]! ^= 1 << (next() % 8)
      const result = await verifyAttestation(doc, realOptions())
      assert.equal(result.valid, false, `flip at ${at}`)
      assert.ok(result.reason !== null)
    }
  })
})
