import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, verify as cryptoVerify, X509Certificate } from 'node:crypto'
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { Encoder } from 'cbor-x'
import { openSimulator, type NsmSimulator } from '../src/nsm/simulator.js'
import {
  attestationRequestSize,
  extendPcrRequestSize,
  maxExtendDataLength,
  NSM_MAX_FIELD_BYTES,
  NSM_REQUEST_MAX_BYTES,
} from '../src/nsm/limits.js'
import { bootPcrs, PCR1_LABEL } from '../src/nsm/pcrs.js'
import { rootPemPath, SIM_INSTANCE_ID, simulatorDir } from '../src/nsm/pki.js'
import { defaultStateDir, openNsm, isSimulated, STATE_DIR_ENV } from '../src/nsm/open.js'
import { NsmError, type NsmErrorCode } from '../src/nsm/types.js'
import { decodeDocument, field, hex, pcrMap, tempStateDir, type DecodedDocument } from './nsm-helpers.js'

const ZERO48 = new Uint8Array(48)
const HOUR_MS = 3_600_000
const DAY_MS = 24 * HOUR_MS

function sha384(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha384')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

async function rejectsWith(promise: Promise<unknown>, code: NsmErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof NsmError, `expected NsmError, got ${String(error)}`)
    assert.equal(error.code, code, error.message)
    return true
  })
}

function cborHead(major: number, n: number): Uint8Array {
  if (n < 24) return Uint8Array.of((major << 5) | n)
  if (n < 256) return Uint8Array.of((major << 5) | 24, n)
  return Uint8Array.of((major << 5) | 25, n >> 8, n & 0xff)
}

/** Sig_structure ["Signature1", protected, h'', payload], written out by hand (RFC 9052 §4.4). */
function sigStructure(doc: DecodedDocument): Uint8Array {
  return Buffer.concat([
    Uint8Array.of(0x84),
    cborHead(3, 10),
    Buffer.from('Signature1'),
    cborHead(2, doc.protectedHeader.length),
    doc.protectedHeader,
    Uint8Array.of(0x40),
    cborHead(2, doc.payloadBytes.length),
    doc.payloadBytes,
  ])
}

/** Checks signature and chain with node:crypto only, independent of the code under test. */
function checkIndependently(bytes: Uint8Array, rootDer: Uint8Array): { leaf: X509Certificate; chain: X509Certificate[] } {
  const doc = decodeDocument(bytes)
  const leaf = new X509Certificate(field<Uint8Array>(doc, 'certificate'))
  const chain = field<Uint8Array[]>(doc, 'cabundle').map((der) => new X509Certificate(der))
  assert.equal(chain.length, 4)
  assert.deepEqual(new Uint8Array(chain[0]!.raw), new Uint8Array(rootDer), 'cabundle[0] is the simulator root')
  assert.ok(chain[0]!.verify(chain[0]!.publicKey), 'root is self-signed')
  for (let i = 1; i < chain.length; i++) {
    assert.ok(chain[i]!.verify(chain[i - 1]!.publicKey), `cabundle[${i}] signed by cabundle[${i - 1}]`)
    assert.ok(chain[i]!.checkIssued(chain[i - 1]!), `cabundle[${i}] issuer name`)
  }
  assert.ok(leaf.verify(chain[3]!.publicKey), 'leaf signed by the instance certificate')
  assert.equal(doc.signature.length, 96)
  const ok = cryptoVerify('sha384', sigStructure(doc), { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, doc.signature)
  assert.ok(ok, 'ES384 signature by the leaf verifies')
  return { leaf, chain }
}

describe('NSM simulator', () => {
  const state = tempStateDir('sim')
  let sim: NsmSimulator

  before(async () => {
    sim = await openSimulator({ stateDir: state.dir })
  })
  after(async () => {
    await sim.close()
    state.cleanup()
  })

  it('describes itself as a simulated SHA-384 module with 32 PCRs, 0..15 locked', async () => {
    const d = await sim.describe()
    assert.equal(d.tee, 'simulated')
    assert.equal(d.digest, 'SHA384')
    assert.equal(d.maxPcrs, 32)
    assert.deepEqual(d.lockedPcrs, Array.from({ length: 16 }, (_, i) => i))
    assert.equal(d.debug, false)
    assert.match(d.moduleId, /^i-0{17}-enc[0-9a-f]{16}$/)
  })

  it('signs documents that verify with node:crypto alone, chained to the exported root', async () => {
    const publicKey = new Uint8Array(32).fill(0xab)
    const bytes = await sim.attest({ publicKey })
    const { leaf } = checkIndependently(bytes, sim.rootDer())
    const doc = decodeDocument(bytes)
    assert.deepEqual(new Uint8Array(field<Uint8Array>(doc, 'public_key')), publicKey)
    assert.equal(field(doc, 'user_data'), null)
    assert.equal(field(doc, 'nonce'), null)
    assert.equal(field(doc, 'module_id'), (await sim.describe()).moduleId)
    assert.match(leaf.subject, /NOT AWS/)
    const pem = readFileSync(rootPemPath(state.dir), 'utf8')
    assert.equal(pem, sim.rootPem())
    assert.deepEqual(new Uint8Array(new X509Certificate(pem).raw), sim.rootDer())
  })

  it('keeps the CA key file private (0600) in a private directory (0700)', () => {
    const caMode = statSync(join(simulatorDir(state.dir), 'ca.json')).mode & 0o777
    const dirMode = statSync(simulatorDir(state.dir)).mode & 0o777
    assert.equal(caMode, 0o600)
    assert.equal(dirMode, 0o700)
  })

  it('extends PCRs as SHA384(old ‖ data) and reports them unlocked until locked', async () => {
    const d1 = Buffer.from('first measurement')
    const d2 = Buffer.from('second measurement')
    const before17 = await sim.describePcr(17)
    assert.deepEqual(before17, { locked: false, value: ZERO48 })
    const v1 = await sim.extendPcr(17, d1)
    assert.deepEqual(v1, sha384(ZERO48, d1))
    const v2 = await sim.extendPcr(17, d2)
    assert.deepEqual(v2, sha384(sha384(ZERO48, d1), d2))
    assert.deepEqual(await sim.describePcr(17), { locked: false, value: v2 })
    const empty = await sim.extendPcr(18, new Uint8Array(0))
    assert.deepEqual(empty, sha384(ZERO48))
  })

  it('refuses to extend or re-lock a locked PCR (ReadOnlyIndex)', async () => {
    await sim.extendPcr(19, Buffer.from('x'))
    await sim.lockPcr(19)
    assert.equal((await sim.describePcr(19)).locked, true)
    await rejectsWith(sim.extendPcr(19, Buffer.from('y')), 'ReadOnlyIndex')
    await rejectsWith(sim.lockPcr(19), 'ReadOnlyIndex')
    await rejectsWith(sim.extendPcr(0, Buffer.from('y')), 'ReadOnlyIndex')
    await rejectsWith(sim.lockPcr(3), 'ReadOnlyIndex')
    assert.ok((await sim.describe()).lockedPcrs.includes(19))
  })

  it('rejects PCR indices outside 0..31 (InvalidIndex) and non-integers (InvalidArgument)', async () => {
    await rejectsWith(sim.extendPcr(32, Buffer.from('x')), 'InvalidIndex')
    await rejectsWith(sim.extendPcr(-1, Buffer.from('x')), 'InvalidIndex')
    await rejectsWith(sim.describePcr(32), 'InvalidIndex')
    await rejectsWith(sim.lockPcr(1000), 'InvalidIndex')
    await rejectsWith(sim.describePcr(1.5), 'InvalidArgument')
    await rejectsWith(sim.extendPcr(Number.NaN, Buffer.from('x')), 'InvalidArgument')
    await rejectsWith(sim.extendPcr(16, 'text' as unknown as Uint8Array), 'InvalidArgument')
  })

  it('puts PCR0..15 and every locked PCR above 15 in documents, and no unlocked one', async () => {
    const s = tempStateDir('pcr16')
    const local = await openSimulator({ stateDir: s.dir })
    try {
      const pub = new Uint8Array(32).fill(1)
      await local.extendPcr(16, sha384(pub).subarray(0, 32))
      await local.extendPcr(20, Buffer.from('not locked'))
      let doc = decodeDocument(await local.attest({ publicKey: pub }))
      assert.deepEqual([...pcrMap(doc).keys()], Array.from({ length: 16 }, (_, i) => i))
      await local.lockPcr(16)
      doc = decodeDocument(await local.attest({ publicKey: pub }))
      assert.deepEqual([...pcrMap(doc).keys()], [...Array.from({ length: 16 }, (_, i) => i), 16])
      assert.deepEqual(new Uint8Array(pcrMap(doc).get(16)!), (await local.describePcr(16)).value)
      for (const [, value] of pcrMap(doc)) assert.equal(value.length, 48)
    } finally {
      await local.close()
      s.cleanup()
    }
  })

  for (const [name, key] of [
    ['public_key', 'publicKey'],
    ['user_data', 'userData'],
    ['nonce', 'nonce'],
  ] as const) {
    it(`accepts a ${NSM_MAX_FIELD_BYTES}-byte ${name} and rejects ${NSM_MAX_FIELD_BYTES + 1} bytes (InputTooLarge)`, async () => {
      const max = new Uint8Array(NSM_MAX_FIELD_BYTES).fill(7)
      const doc = decodeDocument(await sim.attest({ [key]: max }))
      assert.deepEqual(new Uint8Array(field<Uint8Array>(doc, name)), max)
      await rejectsWith(sim.attest({ [key]: new Uint8Array(NSM_MAX_FIELD_BYTES + 1) }), 'InputTooLarge')
      await rejectsWith(sim.attest({ [key]: 'not bytes' as unknown as Uint8Array }), 'InvalidArgument')
    })
  }

  it('accepts all three fields at 1024 bytes: the request stays within 4096 bytes', async () => {
    const max = new Uint8Array(NSM_MAX_FIELD_BYTES).fill(9)
    const request = { publicKey: max, userData: max, nonce: max }
    assert.ok(attestationRequestSize(request) <= NSM_REQUEST_MAX_BYTES)
    const doc = decodeDocument(await sim.attest(request))
    checkIndependently(await sim.attest(request), sim.rootDer())
    assert.equal(field<Uint8Array>(doc, 'nonce').length, NSM_MAX_FIELD_BYTES)
  })

  it('computes request sizes exactly as the NSM library encodes them', () => {
    // serde_cbor writes the enum as {"Variant": {field: value, …}}, None as null
    const enc = new Encoder({ useRecords: false, mapsAsObjects: false, tagUint8Array: false })
    const cases: Array<{ userData?: Uint8Array; nonce?: Uint8Array; publicKey?: Uint8Array }> = [
      {},
      { publicKey: new Uint8Array(32) },
      { userData: new Uint8Array(0), nonce: new Uint8Array(23) },
      { userData: new Uint8Array(24), nonce: new Uint8Array(255), publicKey: new Uint8Array(256) },
      { userData: new Uint8Array(1024), nonce: new Uint8Array(1024), publicKey: new Uint8Array(1024) },
    ]
    for (const c of cases) {
      const inner = new Map<string, Uint8Array | null>([
        ['user_data', c.userData ?? null],
        ['nonce', c.nonce ?? null],
        ['public_key', c.publicKey ?? null],
      ])
      const encoded = enc.encode(new Map([['Attestation', inner]]))
      assert.equal(attestationRequestSize(c), encoded.length)
    }
    for (const [index, len] of [
      [16, 0],
      [23, 100],
      [24, 300],
      [31, 4000],
    ] as const) {
      const inner = new Map<string, number | Uint8Array>([
        ['index', index],
        ['data', new Uint8Array(len)],
      ])
      assert.equal(extendPcrRequestSize(index, len), enc.encode(new Map([['ExtendPCR', inner]])).length)
    }
  })

  it('accepts ExtendPCR data up to a 4096-byte request and rejects one byte more (InputTooLarge)', async () => {
    for (const index of [21, 30]) {
      const max = maxExtendDataLength(index)
      assert.equal(extendPcrRequestSize(index, max), NSM_REQUEST_MAX_BYTES)
      const data = new Uint8Array(max).fill(3)
      assert.deepEqual(await sim.extendPcr(index, data), sha384(ZERO48, data))
      await rejectsWith(sim.extendPcr(index, new Uint8Array(max + 1)), 'InputTooLarge')
      // the rejected extend left the PCR alone
      assert.deepEqual((await sim.describePcr(index)).value, sha384(ZERO48, data))
    }
  })

  it('returns n random bytes and rejects bad lengths', async () => {
    assert.equal((await sim.random(0)).length, 0)
    const a = await sim.random(300)
    const b = await sim.random(300)
    assert.equal(a.length, 300)
    assert.notDeepEqual(a, b)
    await rejectsWith(sim.random(-1), 'InvalidArgument')
    await rejectsWith(sim.random(1.5), 'InvalidArgument')
  })

  it('reuses the leaf certificate across attestations', async () => {
    const a = decodeDocument(await sim.attest({ nonce: Buffer.from('a') }))
    const b = decodeDocument(await sim.attest({ nonce: Buffer.from('b') }))
    assert.deepEqual(field(a, 'certificate'), field(b, 'certificate'))
    assert.notDeepEqual(a.signature, b.signature)
  })

  it('fails every call after close() with Closed', async () => {
    const s = tempStateDir('closed')
    const local = await openSimulator({ stateDir: s.dir })
    await local.close()
    await rejectsWith(local.attest(), 'Closed')
    await rejectsWith(local.describe(), 'Closed')
    await rejectsWith(local.extendPcr(16, Buffer.from('x')), 'Closed')
    await rejectsWith(local.random(1), 'Closed')
    s.cleanup()
  })
})

describe('NSM simulator leaf rotation and PKI persistence', () => {
  it('renews the leaf when less than the margin is left, and the CA levels as they expire', async () => {
    const s = tempStateDir('rotate')
    let t = Date.parse('2030-01-01T00:00:00Z')
    const sim = await openSimulator({ stateDir: s.dir, now: () => t, leafLifetimeSec: 3600, leafRenewMarginSec: 600 })
    try {
      const first = decodeDocument(await sim.attest())
      const firstLeaf = new X509Certificate(field<Uint8Array>(first, 'certificate'))
      assert.equal(Date.parse(firstLeaf.validTo) - Date.parse(firstLeaf.validFrom), HOUR_MS)
      assert.equal(field<bigint>(first, 'timestamp'), BigInt(t))

      t += 3600_000 - 601_000 // 10 min 1 s left: still in use
      const second = decodeDocument(await sim.attest())
      assert.deepEqual(field(second, 'certificate'), field(first, 'certificate'))

      t += 2_000 // 9 min 59 s left: renewed
      const third = decodeDocument(await sim.attest())
      assert.notDeepEqual(field(third, 'certificate'), field(first, 'certificate'))
      const thirdLeaf = new X509Certificate(field<Uint8Array>(third, 'certificate'))
      assert.equal(Date.parse(thirdLeaf.validFrom), Math.floor(t / 1000) * 1000)
      assert.deepEqual(field(third, 'cabundle'), field(first, 'cabundle'), 'CA levels unchanged')
      checkIndependently(await sim.attest(), sim.rootDer())

      // a day later the instance certificate has less than a leaf lifetime left: renewed
      t += DAY_MS - HOUR_MS
      const fourth = decodeDocument(await sim.attest())
      const [root1, regional1, zonal1, instance1] = field<Uint8Array[]>(first, 'cabundle')
      const [root4, regional4, zonal4, instance4] = field<Uint8Array[]>(fourth, 'cabundle')
      assert.deepEqual(root4, root1)
      assert.deepEqual(regional4, regional1)
      assert.deepEqual(zonal4, zonal1)
      assert.notDeepEqual(instance4, instance1)

      // a week later the zonal certificate (6 days) is gone too
      t += 7 * DAY_MS
      const fifth = decodeDocument(await sim.attest())
      const [root5, regional5, zonal5] = field<Uint8Array[]>(fifth, 'cabundle')
      assert.deepEqual(root5, root1)
      assert.deepEqual(regional5, regional1)
      assert.notDeepEqual(zonal5, zonal1)
      checkIndependently(await sim.attest(), root1!)
    } finally {
      await sim.close()
      s.cleanup()
    }
  })

  it('shares its CA through the state directory: a second simulator chains to the same root', async () => {
    const s = tempStateDir('persist')
    try {
      const one = await openSimulator({ stateDir: s.dir })
      const docOne = await one.attest({ nonce: Buffer.from('one') })
      const two = await openSimulator({ stateDir: s.dir })
      const docTwo = await two.attest({ nonce: Buffer.from('two') })
      assert.deepEqual(two.rootDer(), one.rootDer())
      assert.notEqual((await two.describe()).moduleId, (await one.describe()).moduleId)
      checkIndependently(docOne, one.rootDer())
      checkIndependently(docTwo, one.rootDer())
      assert.deepEqual(field(decodeDocument(docTwo), 'cabundle'), field(decodeDocument(docOne), 'cabundle'))
      await one.close()
      await two.close()
    } finally {
      s.cleanup()
    }
  })

  it('fails with a clear StateError on a damaged CA file, and leaves the file alone', async () => {
    const s = tempStateDir('corrupt')
    try {
      const one = await openSimulator({ stateDir: s.dir })
      await one.close()
      const path = join(simulatorDir(s.dir), 'ca.json')
      const good = readFileSync(path, 'utf8')
      type Stored = { format: string; levels: Record<string, { certificate: string; privateKey: string } | undefined> }
      const stored = (): Stored => JSON.parse(good) as Stored
      const damaged: Array<[string, string, RegExp]> = [
        ['empty', '', /\(empty\)/],
        ['truncated JSON', good.slice(0, good.length / 2), /not JSON/],
        ['wrong shape', '{"format": "nec01-nsm-simulator-ca/1", "levels": 42}', /no levels/],
        ['unknown format', JSON.stringify({ ...stored(), format: 'other/9' }), /format/],
        ['missing level', JSON.stringify({ ...stored(), levels: { ...stored().levels, zonal: undefined } }), /no zonal level/],
      ]
      const keySwap = stored()
      // the zonal key no longer matches the zonal certificate
      keySwap.levels.zonal!.privateKey = keySwap.levels.instance!.privateKey
      damaged.push(['swapped key', JSON.stringify(keySwap), /zonal: the private key does not match/])
      const badCert = stored()
      badCert.levels.regional!.certificate = Buffer.from('not a certificate').toString('base64')
      damaged.push(['bad certificate', JSON.stringify(badCert), /regional: the certificate does not parse/])
      const foreign = stored()
      // another level's certificate and key in the instance slot: the link to its parent breaks
      foreign.levels.instance = foreign.levels.regional
      damaged.push(['broken chain', JSON.stringify(foreign), /instance: the issuer name/])
      for (const [name, content, reason] of damaged) {
        writeFileSync(path, content)
        await assert.rejects(openSimulator({ stateDir: s.dir }), (error: unknown) => {
          assert.ok(error instanceof NsmError, `${name}: ${String(error)}`)
          assert.equal(error.code, 'StateError', name)
          assert.match(error.message, reason, name)
          assert.ok(error.message.includes(path), `${name}: names the file`)
          assert.match(error.message, /remove it/, `${name}: says what to do`)
          assert.doesNotMatch(error.message, /\n/, `${name}: one line`)
          return true
        })
        assert.equal(readFileSync(path, 'utf8'), content, `${name}: the file is left as it was`)
      }
      // once removed, a new CA with a new root is created
      rmSync(path)
      const two = await openSimulator({ stateDir: s.dir })
      checkIndependently(await two.attest(), two.rootDer())
      assert.equal(readFileSync(rootPemPath(s.dir), 'utf8'), two.rootPem())
      await two.close()
    } finally {
      s.cleanup()
    }
  })

  it('keeps a CA another process created a moment "later" by its own clock reading', async () => {
    // Two processes starting together read the clock a few ms apart; the one whose reading
    // lies before a second boundary must still accept the root the other wrote just after it.
    const s = tempStateDir('skew')
    try {
      const boundary = Date.parse('2030-01-01T00:00:00Z')
      const first = await openSimulator({ stateDir: s.dir, now: () => boundary + 1 })
      const path = join(simulatorDir(s.dir), 'ca.json')
      const written = readFileSync(path, 'utf8')
      const second = await openSimulator({ stateDir: s.dir, now: () => boundary - 1 })
      assert.deepEqual(second.rootDer(), first.rootDer())
      assert.equal(readFileSync(path, 'utf8'), written, 'the CA file was not replaced')
      const doc = decodeDocument(await second.attest())
      assert.deepEqual(field(doc, 'cabundle'), field(decodeDocument(await first.attest()), 'cabundle'))
      await first.close()
      await second.close()
    } finally {
      s.cleanup()
    }
  })

  it('agrees on one CA when several processes create it at the same moment', async () => {
    const s = tempStateDir('race')
    try {
      const simulatorUrl = new URL('../src/nsm/simulator.js', import.meta.url).href
      // The children start a few milliseconds apart around a whole second, so their clock
      // readings straddle the notBefore of the first root written (the race that once left
      // them on different roots: one found the other's root "not yet valid").
      const boundary = Math.ceil((Date.now() + 1500) / 1000) * 1000
      const script = `
        const { openSimulator } = await import(${JSON.stringify(simulatorUrl)})
        const startAt = Number(process.env.NEC01_TEST_START_AT)
        while (Date.now() < startAt) {}
        const sim = await openSimulator({ stateDir: ${JSON.stringify(s.dir)} })
        process.stdout.write(Buffer.from(sim.rootDer()).toString('hex'))
        await sim.close()
      `
      const run = (offsetMs: number): Promise<string> =>
        new Promise((resolveRun, rejectRun) => {
          const env = { ...process.env, NEC01_TEST_START_AT: String(boundary + offsetMs) }
          execFile(process.execPath, ['--input-type=module', '-e', script], { env }, (error, stdout, stderr) => {
            if (error !== null) rejectRun(new Error(`${error.message}\n${stderr}`))
            else resolveRun(stdout)
          })
        })
      const roots = await Promise.all([run(-4), run(-1), run(1)])
      for (const root of roots) assert.match(root, /^30[0-9a-f]+$/)
      assert.equal(new Set(roots).size, 1, 'every process ended on one root')
      const onDisk = new X509Certificate(readFileSync(rootPemPath(s.dir), 'utf8'))
      assert.equal(hex(new Uint8Array(onDisk.raw)), roots[0])
      const later = await openSimulator({ stateDir: s.dir })
      assert.equal(hex(later.rootDer()), roots[0])
      await later.close()
    } finally {
      s.cleanup()
    }
  })

  it('refuses a leaf lifetime longer than the instance certificate or a margin not shorter than it', async () => {
    const s = tempStateDir('badopts')
    try {
      await rejectsWith(openSimulator({ stateDir: s.dir, leafLifetimeSec: 2 * 86400 }), 'InvalidArgument')
      await rejectsWith(openSimulator({ stateDir: s.dir, leafLifetimeSec: 600, leafRenewMarginSec: 600 }), 'InvalidArgument')
      await rejectsWith(openSimulator({ stateDir: s.dir, leafLifetimeSec: 0 }), 'InvalidArgument')
    } finally {
      s.cleanup()
    }
  })

  it('reports a state directory it cannot create as StateError', async () => {
    const s = tempStateDir('blocked')
    try {
      const blocker = join(s.dir, 'file')
      writeFileSync(blocker, 'not a directory')
      await rejectsWith(openSimulator({ stateDir: join(blocker, 'state') }), 'StateError')
    } finally {
      s.cleanup()
    }
  })
})

describe('NSM simulator boot PCRs', () => {
  it('measures PCR0/PCR2 from the compiled code and lock file, PCR1 from the runtime, PCR4 from the instance id', () => {
    const s = tempStateDir('measure')
    try {
      const dist = join(s.dir, 'dist')
      mkdirSync(join(dist, 'src', 'nsm'), { recursive: true })
      mkdirSync(join(dist, 'nec01'), { recursive: true })
      mkdirSync(join(dist, 'test'), { recursive: true })
      writeFileSync(join(dist, 'src', 'cli.js'), 'console.log(1)\n')
      writeFileSync(join(dist, 'src', 'nsm', 'x.js'), 'export const x = 1\n')
      writeFileSync(join(dist, 'nec01', 'index.js'), 'export {}\n')
      writeFileSync(join(dist, 'test', 'a.test.js'), 'ignored\n')
      writeFileSync(join(dist, 'src', 'cli.js.map'), 'ignored\n')
      writeFileSync(join(s.dir, 'package-lock.json'), '{"lockfileVersion":3}\n')
      const runtime = { node: '20.0.0', platform: 'linux', arch: 'x64' }
      const base = bootPcrs({ distDir: dist, runtime, instanceId: SIM_INSTANCE_ID })
      assert.equal(base.length, 16)

      // PCR1 by the documented recipe: extend(0^48, SHA384(label ‖ u64be(len) ‖ "node/… …/…"))
      const text = Buffer.from('node/20.0.0 linux/x64')
      const len = Buffer.alloc(8)
      len.writeBigUInt64BE(BigInt(text.length))
      assert.deepEqual(base[1], sha384(ZERO48, sha384(Buffer.from(PCR1_LABEL), len, text)))
      assert.deepEqual(base[4], sha384(ZERO48, Buffer.from(SIM_INSTANCE_ID)))
      for (const i of [3, 5, 8, 15]) assert.deepEqual(base[i], ZERO48)

      // ignored files change nothing
      writeFileSync(join(dist, 'test', 'a.test.js'), 'changed\n')
      writeFileSync(join(dist, 'src', 'cli.js.map'), 'changed\n')
      assert.deepEqual(bootPcrs({ distDir: dist, runtime, instanceId: SIM_INSTANCE_ID }), base)

      // a code change moves PCR2 only
      writeFileSync(join(dist, 'src', 'nsm', 'x.js'), 'export const x = 2\n')
      const edited = bootPcrs({ distDir: dist, runtime, instanceId: SIM_INSTANCE_ID })
      assert.deepEqual(edited[0], base[0])
      assert.deepEqual(edited[1], base[1])
      assert.notDeepEqual(edited[2], base[2])

      // a new file moves PCR0 (file list) and PCR2
      writeFileSync(join(dist, 'nec01', 'new.js'), 'export {}\n')
      const added = bootPcrs({ distDir: dist, runtime, instanceId: SIM_INSTANCE_ID })
      assert.notDeepEqual(added[0], edited[0])
      assert.notDeepEqual(added[2], edited[2])

      // a dependency change moves PCR0 only
      writeFileSync(join(s.dir, 'package-lock.json'), '{"lockfileVersion":3,"x":1}\n')
      const relocked = bootPcrs({ distDir: dist, runtime, instanceId: SIM_INSTANCE_ID })
      assert.notDeepEqual(relocked[0], added[0])
      assert.deepEqual(relocked[2], added[2])

      // another runtime moves PCR1 only
      const other = bootPcrs({ distDir: dist, runtime: { ...runtime, node: '22.0.0' }, instanceId: SIM_INSTANCE_ID })
      assert.notDeepEqual(other[1], relocked[1])
      assert.deepEqual(other[0], relocked[0])

      // debug mode zeroes PCR0..2; overrides replace values
      const pcr3 = new Uint8Array(48).fill(0x33)
      const debug = bootPcrs({ distDir: dist, runtime, instanceId: SIM_INSTANCE_ID, debug: true, overrides: { 3: pcr3 } })
      for (const i of [0, 1, 2]) assert.deepEqual(debug[i], ZERO48)
      assert.deepEqual(debug[3], pcr3)
      assert.throws(() => bootPcrs({ distDir: dist, runtime, instanceId: SIM_INSTANCE_ID, overrides: { 16: pcr3 } }), NsmError)
      assert.throws(
        () => bootPcrs({ distDir: dist, runtime, instanceId: SIM_INSTANCE_ID, overrides: { 3: new Uint8Array(32) } }),
        NsmError,
      )
    } finally {
      s.cleanup()
    }
  })

  it('debug mode: PCR0..2 are zeros in documents and describe() says so', async () => {
    const s = tempStateDir('debug')
    const sim = await openSimulator({ stateDir: s.dir, debug: true, bootPcrs: { 3: new Uint8Array(48).fill(3) } })
    try {
      assert.equal((await sim.describe()).debug, true)
      const pcrs = pcrMap(decodeDocument(await sim.attest()))
      for (const i of [0, 1, 2]) assert.equal(hex(pcrs.get(i)!), hex(ZERO48))
      assert.equal(hex(pcrs.get(3)!), '03'.repeat(48))
    } finally {
      await sim.close()
      s.cleanup()
    }
  })
})

describe('openNsm', () => {
  it('keeps simulator state in ~/.nec01 unless $NEC01_STATE_DIR says otherwise', () => {
    const saved = process.env[STATE_DIR_ENV]
    try {
      delete process.env[STATE_DIR_ENV]
      assert.equal(defaultStateDir(), join(homedir(), '.nec01'))
      process.env[STATE_DIR_ENV] = ''
      assert.equal(defaultStateDir(), join(homedir(), '.nec01'))
      process.env[STATE_DIR_ENV] = 'relative/state'
      assert.equal(defaultStateDir(), resolve('relative/state'))
    } finally {
      if (saved === undefined) delete process.env[STATE_DIR_ENV]
      else process.env[STATE_DIR_ENV] = saved
    }
  })

  it('opens the simulator only when asked for', async () => {
    const s = tempStateDir('open')
    try {
      const nsm = await openNsm({ dev: true, stateDir: s.dir })
      assert.ok(isSimulated(nsm))
      assert.equal((await nsm.describe()).tee, 'simulated')
      await nsm.close()
      await rejectsWith(openNsm({ stateDir: s.dir, devicePath: join(s.dir, 'no-such-nsm') }), 'NoDevice')
    } finally {
      s.cleanup()
    }
  })
})

describe('simulated documents under the nec01 verifier', () => {
  const state = tempStateDir('verify')
  let sim: NsmSimulator
  let debugSim: NsmSimulator

  before(async () => {
    sim = await openSimulator({ stateDir: state.dir })
    debugSim = await openSimulator({ stateDir: state.dir, debug: true })
  })
  after(async () => {
    await sim.close()
    await debugSim.close()
    state.cleanup()
  })

  it('are valid with the simulator root injected and any PCRs', async () => {
    const { verifyAttestation } = await import('../nec01/attestation.js')
    const publicKey = new Uint8Array(32).fill(0x42)
    const doc = await sim.attest({ publicKey, nonce: Buffer.from('n') })
    const result = await verifyAttestation(doc, { root: sim.rootDer(), anyPcrs: true })
    assert.equal(result.reason, null, JSON.stringify(result.checks.filter((c) => !c.ok)))
    assert.equal(result.valid, true)
    assert.equal(result.attestation?.public_key, hex(publicKey))
    const withPem = await verifyAttestation(doc, { root: sim.rootPem(), anyPcrs: true, publicKey })
    assert.equal(withPem.valid, true)
  })

  it('are valid in both payload map forms (indefinite by default, definite on request)', async () => {
    const { verifyAttestation } = await import('../nec01/attestation.js')
    assert.equal(decodeDocument(await sim.attest()).payloadBytes[0], 0xbf)
    const older = await openSimulator({ stateDir: state.dir, payloadMapForm: 'definite' })
    try {
      const doc = await older.attest({ nonce: Buffer.from('n') })
      assert.equal(decodeDocument(doc).payloadBytes[0], 0xa9)
      const result = await verifyAttestation(doc, { root: older.rootDer(), anyPcrs: true })
      assert.equal(result.valid, true, JSON.stringify(result.checks.filter((c) => !c.ok)))
    } finally {
      await older.close()
    }
    await rejectsWith(openSimulator({ stateDir: state.dir, payloadMapForm: 'compact' as unknown as 'definite' }), 'InvalidArgument')
  })

  it('verify under the root read back from the state directory (what --root gets)', async () => {
    const { verifyAttestation } = await import('../nec01/attestation.js')
    const doc = await sim.attest()
    const result = await verifyAttestation(doc, { root: readFileSync(sim.rootPemPath(), 'utf8'), anyPcrs: true })
    assert.equal(result.valid, true)
  })

  it('are rejected under the pinned AWS root with reason root', async () => {
    const { verifyAttestation } = await import('../nec01/attestation.js')
    const result = await verifyAttestation(await sim.attest(), { anyPcrs: true })
    assert.equal(result.valid, false)
    assert.equal(result.reason, 'root')
  })

  it('are rejected in debug mode with reason debug', async () => {
    const { verifyAttestation } = await import('../nec01/attestation.js')
    const result = await verifyAttestation(await debugSim.attest(), { root: debugSim.rootDer(), anyPcrs: true })
    assert.equal(result.valid, false)
    assert.equal(result.reason, 'debug')
  })

  it('expire with their leaf: valid inside the leaf window, rejected after it', async () => {
    const { verifyAttestation } = await import('../nec01/attestation.js')
    const doc = await sim.attest()
    const leaf = new X509Certificate(field<Uint8Array>(decodeDocument(doc), 'certificate'))
    const end = Date.parse(leaf.validTo) / 1000
    const inside = await verifyAttestation(doc, { root: sim.rootDer(), anyPcrs: true, now: end - 60 })
    assert.equal(inside.valid, true)
    const outside = await verifyAttestation(doc, { root: sim.rootDer(), anyPcrs: true, now: end + 1 })
    assert.equal(outside.valid, false)
    assert.equal(outside.reason, 'time')
  })

  it('from a second simulator on the same state dir verify under the first one’s root', async () => {
    const { verifyAttestation } = await import('../nec01/attestation.js')
    const other = await openSimulator({ stateDir: state.dir })
    try {
      const result = await verifyAttestation(await other.attest(), { root: sim.rootDer(), anyPcrs: true })
      assert.equal(result.valid, true)
    } finally {
      await other.close()
    }
  })
})
