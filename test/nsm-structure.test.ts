// The simulator's documents against real AWS ones, field by field and certificate by
// certificate: a verifier that accepts one must meet the same shapes in the other.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, X509Certificate as NodeX509 } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { openSimulator, type NsmSimulator } from '../src/nsm/simulator.js'
import {
  DEFAULT_LEAF_LIFETIME_SEC,
  INSTANCE_LIFETIME_SEC,
  REGIONAL_LIFETIME_SEC,
  ZONAL_LIFETIME_SEC,
} from '../src/nsm/pki.js'
import { NITRO_DIR } from './fixtures.js'
import { cborShape, decodeDocument, field, pcrMap, tempStateDir, type DecodedDocument } from './nsm-helpers.js'

const REAL = ['turnkey-2025-09-16a-nondebug', 'marlin-2025-04-29-pcr16', 'fastcrypto-2025-11-10-pcr16'] as const
const PAYLOAD_KEYS = ['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce']
const ECDSA_WITH_SHA384 = '1.2.840.10045.4.3.3'
const LEVELS = ['root', 'regional', 'zonal', 'instance', 'leaf'] as const

function readReal(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(NITRO_DIR, `${name}.cose`)))
}

function certificates(doc: DecodedDocument): x509.X509Certificate[] {
  return [...field<Uint8Array[]>(doc, 'cabundle'), field<Uint8Array>(doc, 'certificate')].map((der) => new x509.X509Certificate(der))
}

interface ExtensionProfile {
  oids: string[]
  critical: boolean[]
  ca: boolean | null
  pathLength: number | null
  keyUsage: number | null
  hasSki: boolean
  akiMatchesIssuerSki: boolean | null
}

function profile(cert: x509.X509Certificate, issuer: x509.X509Certificate | null): ExtensionProfile {
  const bc = cert.getExtension(x509.BasicConstraintsExtension)
  const ku = cert.getExtension(x509.KeyUsagesExtension)
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)
  const issuerSki = issuer?.getExtension(x509.SubjectKeyIdentifierExtension) ?? null
  return {
    oids: cert.extensions.map((e) => e.type),
    critical: cert.extensions.map((e) => e.critical),
    ca: bc?.ca ?? null,
    pathLength: bc?.pathLength ?? null,
    keyUsage: ku?.usages ?? null,
    hasSki: cert.getExtension(x509.SubjectKeyIdentifierExtension) !== null,
    akiMatchesIssuerSki: aki === null ? null : aki.keyId === issuerSki?.keyId,
  }
}

function valueType(value: unknown): string {
  if (value === null) return 'null'
  if (value instanceof Uint8Array) return 'bytes'
  if (Array.isArray(value)) return `array<${[...new Set(value.map(valueType))].join('|')}>`
  if (value instanceof Map) {
    const keys = [...new Set([...value.keys()].map((k) => typeof k))].join('|')
    const values = [...new Set([...value.values()].map(valueType))].join('|')
    return `map<${keys},${values}>`
  }
  return typeof value
}

describe('simulated documents have the structure of real ones', () => {
  const state = tempStateDir('structure')
  let sim: NsmSimulator
  let simBytes: Uint8Array
  let sim16Bytes: Uint8Array
  let sim16DefiniteBytes: Uint8Array
  const real = new Map<string, Uint8Array>()

  before(async () => {
    sim = await openSimulator({ stateDir: state.dir })
    simBytes = await sim.attest({ publicKey: new Uint8Array(130).fill(4), userData: new Uint8Array(32).fill(5) })
    // the marlin fixture's shape: PCR16 locked, 32-byte public key, empty user_data, no nonce
    const pub = new Uint8Array(32).fill(6)
    await sim.extendPcr(16, new Uint8Array(createHash('sha256').update(pub).digest()))
    await sim.lockPcr(16)
    sim16Bytes = await sim.attest({ publicKey: pub, userData: new Uint8Array(0) })
    // the same enclave state as a pre-2025-09 module would have written it
    const older = await openSimulator({ stateDir: state.dir, payloadMapForm: 'definite' })
    await older.extendPcr(16, new Uint8Array(createHash('sha256').update(pub).digest()))
    await older.lockPcr(16)
    sim16DefiniteBytes = await older.attest({ publicKey: pub, userData: new Uint8Array(0) })
    await older.close()
    for (const name of REAL) real.set(name, readReal(name))
  })
  after(async () => {
    await sim.close()
    state.cleanup()
  })

  it('is an untagged COSE_Sign1 array of 4 with the real protected header and an empty unprotected map', () => {
    for (const bytes of [simBytes, ...real.values()]) {
      assert.equal(bytes[0], 0x84, 'untagged array of 4')
      const doc = decodeDocument(bytes)
      assert.equal(doc.top.length, 4)
      assert.deepEqual([...doc.protectedHeader], [0xa1, 0x01, 0x38, 0x22])
      assert.ok(doc.unprotected instanceof Map && doc.unprotected.size === 0)
      assert.equal(doc.signature.length, 96)
    }
    assert.deepEqual(decodeDocument(simBytes).protectedHeader, decodeDocument(real.get(REAL[0])!).protectedHeader)
  })

  it('writes the payload as an indefinite nine-entry map with the real key order, like the NSM since 2025-09', () => {
    const sim = decodeDocument(simBytes)
    assert.equal(sim.payloadBytes[0], 0xbf)
    assert.equal(sim.payloadBytes.at(-1), 0xff)
    assert.equal(decodeDocument(sim16DefiniteBytes).payloadBytes[0], 0xa9, 'the definite form on request')
    for (const bytes of real.values()) {
      assert.deepEqual([...decodeDocument(bytes).payload.keys()], PAYLOAD_KEYS)
    }
    assert.deepEqual([...sim.payload.keys()], PAYLOAD_KEYS)
    assert.deepEqual([...decodeDocument(sim16DefiniteBytes).payload.keys()], PAYLOAD_KEYS)
  })

  it('gives every payload field the type the real documents use', () => {
    const simDoc = decodeDocument(simBytes)
    for (const [name, bytes] of real) {
      const realDoc = decodeDocument(bytes)
      for (const key of PAYLOAD_KEYS) {
        // the real documents and this one all have public_key and user_data set, nonce null
        assert.equal(valueType(simDoc.payload.get(key)), valueType(realDoc.payload.get(key)), `${name} ${key}`)
      }
      assert.equal(field(realDoc, 'digest'), field(simDoc, 'digest'))
      assert.equal(typeof field(simDoc, 'timestamp'), typeof field(realDoc, 'timestamp'))
    }
    for (const [index, value] of pcrMap(simDoc)) {
      assert.ok(Number.isInteger(index) && index >= 0)
      assert.equal(value.length, 48)
    }
  })

  it('matches the real CBOR encoding item for item (major types and head sizes)', () => {
    // same field shapes as each real document: byte for byte the same kind of CBOR
    const payload = (bytes: Uint8Array): Uint8Array => decodeDocument(bytes).payloadBytes
    // turnkey (2025-09, indefinite): 130-byte public key, 32-byte user_data, no nonce
    assert.equal(cborShape(payload(simBytes)), cborShape(payload(real.get('turnkey-2025-09-16a-nondebug')!)))
    assert.equal(cborShape(simBytes), cborShape(real.get('turnkey-2025-09-16a-nondebug')!))
    // fastcrypto (2025-11, indefinite) and marlin (2025-04, definite): PCR16 locked,
    // 32-byte public key, empty user_data, no nonce
    assert.equal(cborShape(payload(sim16Bytes)), cborShape(payload(real.get('fastcrypto-2025-11-10-pcr16')!)))
    assert.equal(cborShape(sim16Bytes), cborShape(real.get('fastcrypto-2025-11-10-pcr16')!))
    assert.equal(cborShape(payload(sim16DefiniteBytes)), cborShape(payload(real.get('marlin-2025-04-29-pcr16')!)))
    assert.equal(cborShape(sim16DefiniteBytes), cborShape(real.get('marlin-2025-04-29-pcr16')!))
  })

  it('carries a four-certificate bundle and a leaf, all P-384 / ecdsa-with-SHA384, like the real chain', () => {
    for (const bytes of [simBytes, ...real.values()]) {
      const certs = certificates(decodeDocument(bytes))
      assert.equal(certs.length, 5)
      for (const cert of certs) {
        // x509 types the algorithm with DOM types this project does not load
        const algorithm = cert.signatureAlgorithm as unknown as { name: string; hash?: { name?: string } }
        assert.equal(algorithm.name, 'ECDSA')
        assert.equal(algorithm.hash?.name, 'SHA-384')
        const node = new NodeX509(Buffer.from(cert.rawData))
        assert.equal(node.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1')
        assert.ok(cert.rawData.byteLength <= 1024, 'cabundle entries and the certificate are at most 1024 bytes')
      }
    }
    // and the DER names the signature algorithm by OID
    const der = Buffer.from(field<Uint8Array>(decodeDocument(simBytes), 'certificate'))
    assert.ok(der.includes(Buffer.from('06082a8648ce3d040303', 'hex')), ECDSA_WITH_SHA384)
  })

  it('uses the same extensions, criticality, basic constraints and key usage at every level', () => {
    const simCerts = certificates(decodeDocument(simBytes))
    for (const [name, bytes] of real) {
      const realCerts = certificates(decodeDocument(bytes))
      for (let i = 0; i < LEVELS.length; i++) {
        const issuerSim = i === 0 ? null : simCerts[i - 1]!
        const issuerReal = i === 0 ? null : realCerts[i - 1]!
        const realProfile = profile(realCerts[i]!, issuerReal)
        const simProfile = profile(simCerts[i]!, issuerSim)
        // AWS adds a CRL distribution point to regional and zonal; the simulator does too
        assert.deepEqual(simProfile, realProfile, `${name} ${LEVELS[i]}`)
      }
    }
  })

  it('pins the expected per-level profile (pathLen 2/1/0, CA key usage, leaf CA:false)', () => {
    const certs = certificates(decodeDocument(simBytes))
    const profiles = certs.map((c, i) => profile(c, i === 0 ? null : certs[i - 1]!))
    assert.deepEqual(
      profiles.map((p) => [p.ca, p.pathLength]),
      [
        [true, null],
        [true, 2],
        [true, 1],
        [true, 0],
        [false, null],
      ],
    )
    const caUsage = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
    assert.deepEqual(
      profiles.map((p) => p.keyUsage),
      [
        caUsage,
        caUsage,
        caUsage,
        x509.KeyUsageFlags.keyCertSign,
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation,
      ],
    )
    for (const p of profiles.slice(0, 4)) assert.equal(p.critical[0], true, 'basicConstraints is critical')
  })

  it('gives each level a lifetime like the real one and marks every name as not AWS', () => {
    const certs = certificates(decodeDocument(simBytes))
    const lifetimes = certs.map((c) => (c.notAfter.getTime() - c.notBefore.getTime()) / 1000)
    const rootYears = certs[0]!.notAfter.getUTCFullYear() - certs[0]!.notBefore.getUTCFullYear()
    assert.equal(rootYears, 30)
    assert.deepEqual(lifetimes.slice(1), [REGIONAL_LIFETIME_SEC, ZONAL_LIFETIME_SEC, INSTANCE_LIFETIME_SEC, DEFAULT_LEAF_LIFETIME_SEC])
    for (const cert of certs) {
      assert.match(cert.subject, /NOT AWS/)
      assert.doesNotMatch(cert.subject, /Amazon/)
    }
    // the real leaf serial is enclave id ‖ 0^4 ‖ notBefore seconds; so is the simulated one
    const leaf = certs[4]!
    const moduleId = field<string>(decodeDocument(simBytes), 'module_id')
    const enclaveHex = moduleId.slice(moduleId.indexOf('-enc') + 4)
    const notBeforeHex = (leaf.notBefore.getTime() / 1000).toString(16).padStart(8, '0')
    assert.equal(leaf.serialNumber, `${enclaveHex}00000000${notBeforeHex}`)
  })
})
