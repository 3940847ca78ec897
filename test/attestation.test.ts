// verifyAttestation and decodeAttestation on real Nitro documents (fixtures), plus the
// policy checks (expected PCRs, public_key, nonce, user_data) and option validation.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { decodeAttestation, verifyAttestation } from '../nec01/attestation.js'
import { AWS_NITRO_ROOT_G1_DER, AWS_NITRO_ROOT_G1_SHA256 } from '../nec01/aws-root.js'
import { parseRoot } from '../nec01/cert.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { base64ToBytes } from '../nec01/encoding.js'
import { VerifyError } from '../nec01/result.js'
import { CHECK_IDS, type CheckId, type VerifyOptions, type VerifyResult } from '../nec01/types.js'
import { awsRootDer, NITRO_DIR, nitroFixtures, readNec01, type NitroFixture } from './fixtures.js'
import { alterHex, concat, filled, makePki, productionPcrs, simulatedDoc } from './forge.js'

const fixtures = nitroFixtures()

function expectedOutcome(f: NitroFixture): 'valid' | 'debug' | 'signature' {
  if (!f.es384Verifies) return 'signature'
  return f.debugAllZeroPCR012 ? 'debug' : 'valid'
}

function assertOutcome(result: VerifyResult, outcome: 'valid' | CheckId, label: string): void {
  if (outcome === 'valid') {
    assert.equal(result.valid, true, `${label}: ${JSON.stringify(result.checks.filter((c) => !c.ok))}`)
    assert.equal(result.reason, null, label)
  } else {
    assert.equal(result.valid, false, label)
    assert.equal(result.reason, outcome, `${label}: ${JSON.stringify(result.checks.filter((c) => !c.ok))}`)
  }
}

/** Checks appear in CHECK_IDS order, reason is the first failure, valid iff none failed. */
function assertShape(result: VerifyResult): void {
  const order = result.checks.map((c) => CHECK_IDS.indexOf(c.id))
  for (let i = 1; i < order.length; i++) assert.ok(order[i]! > order[i - 1]!, `check order: ${result.checks.map((c) => c.id).join(',')}`)
  const firstFail = result.checks.find((c) => !c.ok)
  assert.equal(result.reason, firstFail === undefined ? null : firstFail.id)
  assert.equal(result.valid, firstFail === undefined && result.checks.length > 0)
  for (const c of result.checks) assert.ok(c.detail.length > 0, `${c.id} has a detail`)
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

describe('pinned AWS root', () => {
  it('is the fixture certificate, and its SHA-256 is the pinned constant', () => {
    assert.deepEqual(AWS_NITRO_ROOT_G1_DER, awsRootDer())
    assert.equal(sha256Hex(AWS_NITRO_ROOT_G1_DER), AWS_NITRO_ROOT_G1_SHA256)
    assert.equal(sha256Hex(awsRootDer()), AWS_NITRO_ROOT_G1_SHA256)
  })

  it('parses from the PEM file to the same DER', () => {
    const pem = readFileSync(join(NITRO_DIR, 'AWS_NitroEnclaves_Root-G1.pem'), 'utf8')
    assert.deepEqual(parseRoot(pem), awsRootDer())
    assert.deepEqual(parseRoot(new TextEncoder().encode(pem)), awsRootDer())
  })

  it('is not affected by writes to the exported constant', async () => {
    const f = fixtures.find((x) => expectedOutcome(x) === 'valid')!
    const saved = AWS_NITRO_ROOT_G1_DER[100]!
    AWS_NITRO_ROOT_G1_DER[100] = saved ^ 0xff
    try {
      const result = await verifyAttestation(f.bytes, { now: f.validFrom, anyPcrs: true })
      assert.equal(result.valid, true)
    } finally {
      AWS_NITRO_ROOT_G1_DER[100] = saved
    }
  })
})

describe('real Nitro documents', () => {
  for (const f of fixtures) {
    const outcome = expectedOutcome(f)
    it(`${f.name}: ${outcome} inside its window (both bounds inclusive), time outside`, async () => {
      const mid = Math.floor((f.validFrom + f.validUntil) / 2)
      for (const now of [f.validFrom, mid, f.validUntil]) {
        const result = await verifyAttestation(f.bytes, { now, anyPcrs: true })
        assertShape(result)
        assertOutcome(result, outcome, `${f.name} at ${now}`)
      }
      for (const now of [f.validUntil + 1, f.validFrom - 1]) {
        const result = await verifyAttestation(f.bytes, { now, anyPcrs: true })
        assertShape(result)
        assertOutcome(result, 'time', `${f.name} at ${now}`)
      }
    })

    it(`${f.name}: decoded fields match fixtures.json`, async () => {
      const d = decodeAttestation(f.bytes)
      assert.equal(d.module_id, f.module_id)
      assert.equal(d.digest, 'SHA384')
      assert.equal(String(d.timestamp), f.timestampMs)
      assert.equal(d.pcrs.size, f.pcrCount)
      assert.equal(bytesToHex(d.pcrs.get(0)!), f.pcr0)
      assert.equal(bytesToHex(d.pcrs.get(1)!), f.pcr1)
      assert.equal(bytesToHex(d.pcrs.get(2)!), f.pcr2)
      assert.equal(bytesToHex(d.pcrs.get(8)!), f.pcr8)
      assert.equal(d.public_key === null ? null : d.public_key.length, f.public_key)
      assert.equal(d.user_data === null ? null : d.user_data.length, f.user_data)
      assert.equal(d.nonce === null ? null : d.nonce.length, f.nonce)
      assert.equal(d.cabundle.length, f.cabundleLen)
      assert.deepEqual(d.cabundle[0], awsRootDer())
      assert.equal(d.signature.length, 96)
      assert.equal(d.tagged, false)

      const result = await verifyAttestation(f.bytes, { now: f.validFrom, anyPcrs: true })
      const info = result.attestation
      assert.ok(info !== null)
      assert.equal(info.module_id, f.module_id)
      assert.equal(String(info.timestamp), f.timestampMs)
      assert.equal(Object.keys(info.pcrs).length, f.pcrCount)
      assert.equal(info.pcrs['0'], f.pcr0)
      assert.equal(info.pcrs['8'], f.pcr8)
      assert.equal(info.public_key, d.public_key === null ? null : bytesToHex(d.public_key))
      // the leaf's window is the chain window's upper bound for every AWS document
      assert.equal(info.certificate.notAfter, f.validUntil)
      assert.ok(info.certificate.notBefore <= f.validFrom)
    })
  }

  it('accepts the tagged form (CBOR tag 18) of a real document', async () => {
    const f = fixtures.find((x) => expectedOutcome(x) === 'valid')!
    const tagged = concat(Uint8Array.of(0xd2), f.bytes)
    const result = await verifyAttestation(tagged, { now: f.validFrom, anyPcrs: true })
    assertOutcome(result, 'valid', 'tagged')
    assert.equal(decodeAttestation(tagged).tagged, true)
  })

  it('takes now as a Date or unix seconds, and compares to the millisecond', async () => {
    const f = fixtures.find((x) => expectedOutcome(x) === 'valid')!
    assertOutcome(await verifyAttestation(f.bytes, { now: new Date(f.validUntil * 1000), anyPcrs: true }), 'valid', 'Date at notAfter')
    assertOutcome(await verifyAttestation(f.bytes, { now: new Date(f.validUntil * 1000 + 1), anyPcrs: true }), 'time', 'Date 1 ms after')
    assertOutcome(await verifyAttestation(f.bytes, { now: f.validFrom - 0.001, anyPcrs: true }), 'time', 'seconds 1 ms before')
  })

  it('defaults now to the current time: every fixture has expired', async () => {
    for (const f of fixtures.filter((x) => expectedOutcome(x) === 'valid')) {
      assertOutcome(await verifyAttestation(f.bytes, { anyPcrs: true }), 'time', f.name)
    }
  })
})

describe('noauth-enclaved attestations (NEC-02 instance events)', () => {
  const ca61 = base64ToBytes(readNec01('noauth-enclaved-README-ca61c6e-attestation.b64').trim())
  const ca61Key = 'ac116b22152178636e06d75188c260da10ecd54765d3999bcb579c8f530a9441'
  const at = new Date('2025-04-01T14:00:00Z')

  it('ca61c6e verifies at 2025-04-01T14:00:00Z and binds the event pubkey', async () => {
    const result = await verifyAttestation(ca61, { now: at, anyPcrs: true, publicKey: ca61Key })
    assertShape(result)
    assertOutcome(result, 'valid', 'ca61c6e')
    assert.equal(result.attestation?.public_key, ca61Key)
    const pubkey = result.checks.find((c) => c.id === 'pubkey')
    assert.ok(pubkey?.ok)
    const uppercase = await verifyAttestation(ca61, { now: at, anyPcrs: true, publicKey: ca61Key.toUpperCase() })
    assert.equal(uppercase.valid, true)
  })

  it('ca61c6e fails pubkey with another key', async () => {
    const other = '186aa45e63df8e4ff95cadd08f57b9b2f6715375c1ed30fc8eab15d75daf03f5'
    const result = await verifyAttestation(ca61, { now: at, anyPcrs: true, publicKey: other })
    assertShape(result)
    assertOutcome(result, 'pubkey', 'ca61c6e other key')
    assert.match(result.checks.find((c) => c.id === 'pubkey')!.detail, /expected 186aa45e63df… got ac116b221521…/)
  })

  it('ca61c6e has the PCR4 the fixture README states (SHA384(0^48 ‖ instance id))', async () => {
    const result = await verifyAttestation(ca61, { now: at, anyPcrs: true })
    const pcr4 = createHash('sha384').update(new Uint8Array(48)).update('i-0ffff615a409a72d7').digest('hex')
    assert.equal(result.attestation?.pcrs['4'], pcr4)
    const pinned = await verifyAttestation(ca61, { now: at, expectedPcrs: { 4: pcr4 } })
    assert.equal(pinned.valid, true)
  })

  it('9228dfb verifies inside its window, binding its event pubkey, and expires after it', async () => {
    const doc = base64ToBytes(readNec01('noauth-enclaved-README-9228dfb-attestation.b64').trim())
    const event = JSON.parse(readNec01('noauth-enclaved-README-9228dfb-instance-event.json')) as { pubkey: string }
    const inside = await verifyAttestation(doc, { now: new Date('2025-03-25T15:00:00Z'), anyPcrs: true, publicKey: event.pubkey })
    assertOutcome(inside, 'valid', '9228dfb')
    const after = await verifyAttestation(doc, { now: new Date('2025-03-25T17:05:20Z'), anyPcrs: true, publicKey: event.pubkey })
    assertOutcome(after, 'time', '9228dfb after')
  })
})

describe('policy checks', () => {
  const f = fixtures.find((x) => x.name === 'evervault-2022-10-13-nondebug')!
  const debugDoc = fixtures.find((x) => expectedOutcome(x) === 'debug')!
  const now = f.validFrom

  it('accepts a matching subset of expected PCRs, as hex or bytes', async () => {
    const result = await verifyAttestation(f.bytes, { now, expectedPcrs: { 0: f.pcr0, '8': Buffer.from(f.pcr8, 'hex') } })
    assertShape(result)
    assertOutcome(result, 'valid', 'pcr subset')
    assert.equal(result.checks.find((c) => c.id === 'pcrs')?.detail, 'PCR0, PCR8 match the expected values')
  })

  it('reports every mismatching or missing PCR, and still runs the later checks', async () => {
    const wrong = 'ab'.repeat(48)
    const result = await verifyAttestation(f.bytes, {
      now,
      expectedPcrs: { 0: f.pcr0, 1: wrong, 20: wrong },
      nonce: 'ff',
    })
    assertShape(result)
    assert.equal(result.reason, 'pcrs')
    const detail = result.checks.find((c) => c.id === 'pcrs')!.detail
    assert.match(detail, /PCR1 expected abababababab… got bcdf05fefcca…/)
    assert.match(detail, /PCR20 expected .* but the document has no PCR20/)
    assert.doesNotMatch(detail, /PCR0/)
    assert.equal(result.checks.find((c) => c.id === 'nonce')?.ok, false)
  })

  it('shows full values when the shortened forms would look the same', async () => {
    const almost = alterHex(f.pcr0)
    const result = await verifyAttestation(f.bytes, { now, expectedPcrs: { 0: almost } })
    assert.equal(result.reason, 'pcrs')
    assert.ok(result.checks.find((c) => c.id === 'pcrs')!.detail.includes(f.pcr0))
  })

  it('fails pcrs without expectations unless anyPcrs is set', async () => {
    for (const options of [{ now }, { now, expectedPcrs: {} }, { now, anyPcrs: false }] as VerifyOptions[]) {
      const result = await verifyAttestation(f.bytes, options)
      assertShape(result)
      assert.equal(result.reason, 'pcrs')
      assert.equal(result.checks.find((c) => c.id === 'pcrs')?.detail, 'no expected PCRs given')
    }
  })

  it('rejects debug mode whatever the options say', async () => {
    const matching = { 0: debugDoc.pcr0, 1: debugDoc.pcr1, 2: debugDoc.pcr2 }
    for (const options of [{ anyPcrs: true }, { expectedPcrs: matching }, { anyPcrs: true, expectedPcrs: matching }]) {
      const result = await verifyAttestation(debugDoc.bytes, { now: debugDoc.validFrom, ...options })
      assertShape(result)
      assert.equal(result.reason, 'debug')
      assert.equal(result.checks.find((c) => c.id === 'pcrs')?.ok, true)
    }
  })

  it('compares nonce and user_data when asked, and leaves the checks out otherwise', async () => {
    const d = decodeAttestation(f.bytes)
    const plain = await verifyAttestation(f.bytes, { now, anyPcrs: true })
    assert.deepEqual(
      plain.checks.map((c) => c.id),
      ['input', 'cose', 'payload', 'root', 'chain', 'time', 'signature', 'debug', 'pcrs'],
    )
    const good = await verifyAttestation(f.bytes, { now, anyPcrs: true, nonce: bytesToHex(d.nonce!) })
    assert.equal(good.valid, true)
    assert.equal(good.checks.at(-1)?.id, 'nonce')
    const bad = await verifyAttestation(f.bytes, { now, anyPcrs: true, nonce: d.nonce!.subarray(1) })
    assert.equal(bad.reason, 'nonce')
    // this document has no user_data: any expectation fails
    const missing = await verifyAttestation(f.bytes, { now, anyPcrs: true, userData: '00' })
    assert.equal(missing.reason, 'user_data')
    assert.match(missing.checks.at(-1)!.detail, /the document has none/)
    const noKey = await verifyAttestation(f.bytes, { now, anyPcrs: true, publicKey: 'aa'.repeat(32) })
    assert.equal(noKey.reason, 'pubkey')
  })

  it('reports user_data, nonce and public_key of another document', async () => {
    const withUserData = fixtures.find((x) => x.user_data !== null && x.user_data > 0 && expectedOutcome(x) === 'valid')!
    const d = decodeAttestation(withUserData.bytes)
    const result = await verifyAttestation(withUserData.bytes, { now: withUserData.validFrom, anyPcrs: true, userData: d.user_data! })
    assert.equal(result.valid, true)
    assert.equal(result.attestation?.user_data, bytesToHex(d.user_data!))
  })
})

describe('PCR16 binding', () => {
  function independentBinding(publicKey: Uint8Array, pcr16: Uint8Array): boolean {
    const inner = createHash('sha256').update(publicKey).digest()
    const expected = createHash('sha384').update(new Uint8Array(48)).update(inner).digest()
    return expected.equals(pcr16)
  }

  it('is computed on the real PCR16 documents', async () => {
    const withPcr16 = fixtures.filter((x) => x.pcrCount === 17)
    assert.ok(withPcr16.length >= 2)
    for (const f of withPcr16) {
      const d = decodeAttestation(f.bytes)
      const result = await verifyAttestation(f.bytes, { now: f.validFrom, anyPcrs: true })
      assert.equal(result.attestation?.pcr16_binds_public_key, independentBinding(d.public_key!, d.pcrs.get(16)!), f.name)
    }
  })

  it('is null without PCR16', async () => {
    const f = fixtures.find((x) => x.pcrCount === 16 && x.public_key !== null && expectedOutcome(x) === 'valid')!
    const result = await verifyAttestation(f.bytes, { now: f.validFrom, anyPcrs: true })
    assert.equal(result.attestation?.pcr16_binds_public_key, null)
  })

  it('is true for a simulated enclave that extended PCR16 with SHA-256(public_key)', async () => {
    const notBefore = Date.UTC(2031, 0, 1)
    const pki = makePki({ notBefore, notAfter: notBefore + 3 * 3600_000 })
    const publicKey = filled(32, 0x5a)
    const pcrs = productionPcrs()
    const inner = createHash('sha256').update(publicKey).digest()
    pcrs.set(16, new Uint8Array(createHash('sha384').update(new Uint8Array(48)).update(inner).digest()))
    const { doc } = simulatedDoc(pki, { pcrs, public_key: publicKey })
    const result = await verifyAttestation(doc, { now: notBefore / 1000 + 60, anyPcrs: true, root: pki.root })
    assert.equal(result.valid, true, JSON.stringify(result.checks))
    assert.equal(result.attestation?.pcr16_binds_public_key, true)
    pcrs.set(16, filled(48, 1))
    const unbound = simulatedDoc(pki, { pcrs, public_key: publicKey })
    const other = await verifyAttestation(unbound.doc, { now: notBefore / 1000 + 60, anyPcrs: true, root: pki.root })
    assert.equal(other.valid, true)
    assert.equal(other.attestation?.pcr16_binds_public_key, false)
  })
})

describe('input and options', () => {
  const f = fixtures.find((x) => expectedOutcome(x) === 'valid')!

  it('rejects non-bytes, empty and oversized documents as input', async () => {
    for (const bad of ['aGVsbG8=', null, undefined, 42, {}, [1, 2], new ArrayBuffer(8)]) {
      const result = await verifyAttestation(bad as unknown as Uint8Array, { anyPcrs: true })
      assertShape(result)
      assert.equal(result.reason, 'input', String(bad))
      assert.equal(result.attestation, null)
    }
    assert.equal((await verifyAttestation(new Uint8Array(0))).reason, 'input')
    assert.equal((await verifyAttestation(new Uint8Array(20000))).reason, 'input')
  })

  it('rejects malformed options as input instead of ignoring them', async () => {
    const now = f.validFrom
    const cases: unknown[] = [
      { now: 'yesterday' },
      { now: Number.NaN },
      { now: -1 },
      { now: new Date('nope') },
      { expectedPcrs: { 32: 'aa'.repeat(48) } },
      { expectedPcrs: { '-1': 'aa'.repeat(48) } },
      { expectedPcrs: { '01': 'aa'.repeat(48) } },
      { expectedPcrs: { 0: 'aa'.repeat(47) } },
      { expectedPcrs: { 0: 'zz'.repeat(48) } },
      { expectedPcrs: [Buffer.alloc(48)] },
      { now, anyPcrs: 'yes' },
      { now, anyPcrs: true, publicKey: 'abc' },
      { now, anyPcrs: true, nonce: 12 },
      { now, anyPcrs: true, root: 'not a certificate' },
      { now, anyPcrs: true, root: new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]) },
      'options',
    ]
    for (const options of cases) {
      const result = await verifyAttestation(f.bytes, options as VerifyOptions)
      assertShape(result)
      assert.equal(result.reason, 'input', JSON.stringify(options))
    }
  })

  it('decodeAttestation throws a typed VerifyError', () => {
    const expectCode = (input: unknown, code: string): void => {
      assert.throws(
        () => decodeAttestation(input as Uint8Array),
        (err: unknown) => err instanceof VerifyError && err.code === code,
      )
    }
    expectCode('text', 'input')
    expectCode(f.bytes.subarray(0, 100), 'cose')
    const bad = new Uint8Array(f.bytes)
    // byte 10 opens the payload (after 84 44 a1013822 a0 59 xxxx): a 1-char text, not a map
    bad[10] = 0x61
    expectCode(bad, 'payload')
  })
})
