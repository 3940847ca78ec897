// Under Node the verifier checks ES384 with node:crypto (nec01/es384-node.ts, chosen by
// package.json `imports`); browsers get WebCrypto (nec01/es384.ts). Both must give the same
// verdict, check by check, on every real Nitro document — the BADSIG one included — and on
// tampered and out-of-window inputs. The WebCrypto side is the browser bundle itself, built
// here with esbuild's browser conditions and run on Node's WebCrypto.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { build } from 'esbuild'
import * as nodeEs384 from '../nec01/es384-node.js'
import * as webEs384 from '../nec01/es384.js'
import { parseCertificate } from '../nec01/cert.js'
import { parseCoseSign1, sigStructure } from '../nec01/cose.js'
import { parsePayload } from '../nec01/payload.js'
import { clearVerifierCaches, verifyAttestation, type VerifyResult } from '../nec01/index.js'
import { PROJECT_ROOT, noNodeBuiltins } from '../scripts/build-web.js'
import { nitroFixtures, type NitroFixture } from './fixtures.js'
import { tempDir } from './service-harness.js'

type Nec01 = typeof import('../nec01/index.js')
const DAY_MS = 24 * 3600 * 1000

/** What must agree: the verdict, the failing check, and every check's outcome. */
const verdict = (r: VerifyResult): unknown => ({ valid: r.valid, reason: r.reason, checks: r.checks.map((c) => [c.id, c.ok]) })

function tampered(bytes: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(bytes)
  copy[copy.length - 10]! ^= 1 // inside the signature
  return copy
}

function cases(f: NitroFixture): { name: string; bytes: Uint8Array; now: Date }[] {
  const mid = new Date(((f.validFrom + f.validUntil) / 2) * 1000)
  return [
    { name: `${f.name} in its window`, bytes: f.bytes, now: mid },
    { name: `${f.name} a day after`, bytes: f.bytes, now: new Date(f.validUntil * 1000 + DAY_MS) },
    { name: `${f.name} signature bit flipped`, bytes: tampered(f.bytes), now: mid },
  ]
}

describe('ES384: node:crypto under Node, WebCrypto in the browser bundle', () => {
  const out = tempDir('nec01-es384-')
  let web: Nec01
  const fixtures = nitroFixtures()

  before(async () => {
    const outfile = join(out.path, 'nec01.mjs')
    await build({ absWorkingDir: PROJECT_ROOT, entryPoints: ['nec01/index.ts'], outfile, bundle: true, format: 'esm', platform: 'browser', target: 'es2022', logLevel: 'silent', plugins: [noNodeBuiltins()] })
    web = (await import(pathToFileURL(outfile).href)) as Nec01
  })
  after(() => out.remove())

  it('the fixtures include a document whose signature does not verify', () => {
    assert.ok(fixtures.some((f) => !f.es384Verifies && f.name.includes('BADSIG')))
  })

  it('every document gives the same verdict, check by check, on both paths', async () => {
    for (const f of fixtures) {
      for (const c of cases(f)) {
        clearVerifierCaches()
        web.clearVerifierCaches()
        const options = { now: c.now, anyPcrs: true }
        const ours = await verifyAttestation(c.bytes, options)
        const theirs = await web.verifyAttestation(c.bytes, options)
        assert.deepEqual(verdict(ours), verdict(theirs), c.name)
        // and again with the path cached on both sides
        assert.deepEqual(verdict(await verifyAttestation(c.bytes, options)), verdict(await web.verifyAttestation(c.bytes, options)), `${c.name}, cached`)
        if (c.name.endsWith('in its window')) assert.equal(ours.reason === 'signature', !f.es384Verifies, `${c.name}: fixtures.json says es384Verifies ${f.es384Verifies}`)
      }
    }
  })

  it('every signature, link and document, gets the same answer from both primitives', async () => {
    for (const f of fixtures) {
      const cose = parseCoseSign1(f.bytes)
      const payload = parsePayload(cose.payload)
      const certs = [...payload.cabundle, payload.certificate].map((der) => parseCertificate(der))
      const checks: { point: Uint8Array; signature: Uint8Array; data: Uint8Array }[] = certs.slice(1).map((c, i) => ({ point: certs[i]!.publicKey, signature: c.signature, data: c.tbs }))
      checks.push({ point: certs[certs.length - 1]!.publicKey, signature: cose.signature, data: sigStructure(cose.protected, cose.payload) })
      for (const [i, c] of checks.entries()) {
        const nodeKey = await nodeEs384.importP384(c.point)
        const webKey = await webEs384.importP384(c.point)
        for (const signature of [c.signature, tampered(c.signature), c.signature.subarray(1)]) {
          const a = await nodeEs384.verifyEs384(nodeKey, signature, c.data)
          assert.equal(a, await webEs384.verifyEs384(webKey, signature, c.data), `${f.name} check ${i}`)
          assert.equal(a, await nodeEs384.verifyEs384Concurrent(nodeKey, signature, c.data), `${f.name} check ${i}, thread pool`)
        }
      }
    }
  })

  it('both refuse a point that is not on P-384', async () => {
    const point = parseCertificate(parsePayload(parseCoseSign1(fixtures[0]!.bytes).payload).certificate).publicKey
    const off = Uint8Array.from(point)
    off[60]! ^= 1
    await assert.rejects(nodeEs384.importP384(off))
    await assert.rejects(webEs384.importP384(off))
    await assert.rejects(nodeEs384.importP384(point.subarray(0, 96)))
  })
})
