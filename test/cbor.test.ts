// The strict CBOR decoder: what it accepts, what it rejects and how early.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Decoder } from 'cbor-x'
import { CborError, decodeCbor, type CborErrorCode, type CborLimits, type CborValue } from '../nec01/cbor.js'
import { nitroFixtures } from './fixtures.js'
import { cbor, concat, prng } from './forge.js'

const LOOSE: CborLimits = { maxDepth: 8, maxItems: 64, maxStringBytes: 1 << 16, indefiniteContainers: true }
const STRICT: CborLimits = { ...LOOSE, indefiniteContainers: false }

function hex(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'))
}

function rejects(bytes: Uint8Array, code: CborErrorCode, limits: CborLimits = LOOSE): CborError {
  try {
    decodeCbor(bytes, limits)
  } catch (err) {
    assert.ok(err instanceof CborError, `expected CborError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return err
  }
  assert.fail(`expected ${code}, decoded fine`)
}

describe('decodeCbor: values', () => {
  it('decodes integers at every argument size, as numbers when safe and bigints when not', () => {
    assert.equal(decodeCbor(hex('17'), LOOSE), 23)
    assert.equal(decodeCbor(hex('1818'), LOOSE), 24)
    assert.equal(decodeCbor(hex('190100'), LOOSE), 256)
    assert.equal(decodeCbor(hex('1a00010000'), LOOSE), 65536)
    assert.equal(decodeCbor(hex('1b0000010000000000'), LOOSE), 2 ** 40)
    assert.equal(decodeCbor(hex('1b001fffffffffffff'), LOOSE), Number.MAX_SAFE_INTEGER)
    assert.equal(decodeCbor(hex('1b0020000000000000'), LOOSE), 2n ** 53n)
    assert.equal(decodeCbor(hex('1bffffffffffffffff'), LOOSE), 2n ** 64n - 1n)
    assert.equal(decodeCbor(hex('3822'), LOOSE), -35)
    assert.equal(decodeCbor(hex('3b001ffffffffffffe'), LOOSE), -Number.MAX_SAFE_INTEGER)
    assert.equal(decodeCbor(hex('3b001fffffffffffff'), LOOSE), -(2n ** 53n))
  })

  it('decodes strings, arrays, maps, booleans and null', () => {
    const value = decodeCbor(cbor(new Map<unknown, unknown>([['a', [1, true, false, null]], [1, new Uint8Array([9, 8])], [-1, 'ü']])), LOOSE)
    assert.ok(value instanceof Map)
    assert.deepEqual(value.get('a'), [1, true, false, null])
    assert.deepEqual(value.get(1), new Uint8Array([9, 8]))
    assert.equal(value.get(-1), 'ü')
  })

  it('returns byte strings as views of the input, not copies', () => {
    const bytes = hex('43010203')
    const view = decodeCbor(bytes, LOOSE) as Uint8Array
    assert.equal(view.buffer, bytes.buffer)
    assert.deepEqual([...view], [1, 2, 3])
  })

  it('accepts indefinite-length maps and arrays only when allowed', () => {
    const map = hex('bf 6161 01 6162 9f 01 02 ff ff')
    const value = decodeCbor(map, LOOSE)
    assert.ok(value instanceof Map)
    assert.deepEqual(value.get('b'), [1, 2])
    rejects(map, 'indefinite', STRICT)
    rejects(hex('9f01ff'), 'indefinite', STRICT)
  })

  it('decodes every real attestation payload to the same values as cbor-x', () => {
    const reference = new Decoder({ mapsAsObjects: false, useRecords: false })
    for (const f of nitroFixtures()) {
      const envelope = decodeCbor(f.bytes, { ...STRICT, maxDepth: 2 }) as CborValue[]
      const payload = envelope[2] as Uint8Array
      const ours = decodeCbor(payload, { ...LOOSE, maxDepth: 2 }) as Map<string, CborValue>
      const theirs = reference.decode(payload) as Map<string, unknown>
      assert.deepEqual([...ours.keys()], [...theirs.keys()], f.name)
      assert.equal(ours.get('module_id'), theirs.get('module_id'), f.name)
      assert.equal(ours.get('timestamp'), Number(theirs.get('timestamp')), f.name)
      const pcrsOurs = ours.get('pcrs') as Map<number, Uint8Array>
      const pcrsTheirs = theirs.get('pcrs') as Map<number, Uint8Array>
      assert.equal(pcrsOurs.size, pcrsTheirs.size, f.name)
      for (const [i, v] of pcrsTheirs) assert.deepEqual(pcrsOurs.get(i), new Uint8Array(v), `${f.name} PCR${i}`)
      assert.deepEqual(ours.get('certificate'), new Uint8Array(theirs.get('certificate') as Uint8Array), f.name)
    }
  })
})

describe('decodeCbor: rejections', () => {
  it('rejects integer arguments that are not in their shortest form', () => {
    rejects(hex('1817'), 'non-minimal')
    rejects(hex('1900ff'), 'non-minimal')
    rejects(hex('1a0000ffff'), 'non-minimal')
    rejects(hex('1b00000000ffffffff'), 'non-minimal')
    rejects(hex('5801ff'), 'non-minimal') // a 1-byte bstr with a 1-byte length argument
    rejects(hex('b800'), 'non-minimal') // an empty map with a 1-byte count
  })

  it('rejects a declared length larger than the input before reading it', () => {
    const e1 = rejects(hex('5b0000000100000000'), 'truncated') // bstr of 2^32 bytes
    assert.equal(e1.offset, 0)
    const e2 = rejects(hex('ba80000000'), 'truncated') // map of 2^31 entries
    assert.equal(e2.offset, 0)
    rejects(hex('9a80000000'), 'truncated') // array of 2^31 elements
    rejects(hex('7bffffffffffffffff'), 'truncated') // text of 2^64-1 bytes
    rejects(hex('4401'), 'truncated')
  })

  it('rejects strings and containers over the configured limits', () => {
    rejects(concat(hex('590400'), new Uint8Array(1024)), 'too-long', { ...LOOSE, maxStringBytes: 1023 })
    rejects(cbor([1, 2, 3]), 'too-many', { ...LOOSE, maxItems: 2 })
    rejects(hex('9f 01 02 03 ff'), 'too-many', { ...LOOSE, maxItems: 2 })
    rejects(hex('8181818100'), 'too-deep', { ...LOOSE, maxDepth: 3 })
    assert.deepEqual(decodeCbor(hex('81818100'), { ...LOOSE, maxDepth: 3 }), [[[0]]])
  })

  it('rejects 10000 levels of nesting without deep recursion', () => {
    const deep = concat(new Uint8Array(10000).fill(0x81), Uint8Array.of(0))
    rejects(deep, 'too-deep')
    const deepIndefinite = concat(new Uint8Array(10000).fill(0x9f), new Uint8Array(10000).fill(0xff))
    rejects(deepIndefinite, 'too-deep')
  })

  it('rejects duplicate keys, also across key encodings of the same value', () => {
    rejects(hex('a2 6161 01 6161 02'), 'duplicate-key')
    rejects(hex('a2 01 00 01 00'), 'duplicate-key')
    rejects(hex('bf 20 00 20 01 ff'), 'duplicate-key')
  })

  it('rejects map keys that are not integers or text', () => {
    rejects(hex('a1 4101 00'), 'bad-key')
    rejects(hex('a1 f6 00'), 'bad-key')
    rejects(hex('a1 1bffffffffffffffff 00'), 'bad-key')
  })

  it('rejects tags, floats, undefined and other simple values', () => {
    rejects(hex('d24100'), 'unsupported')
    rejects(hex('c249010000000000000000'), 'unsupported')
    rejects(hex('f93c00'), 'unsupported') // half float 1.0
    rejects(hex('fb3ff0000000000000'), 'unsupported')
    rejects(hex('f7'), 'unsupported') // undefined
    rejects(hex('f820'), 'unsupported') // simple(32)
    rejects(hex('ff'), 'unsupported') // a stray break
    rejects(hex('1c'), 'unsupported') // reserved additional information 28
  })

  it('rejects indefinite-length strings even where containers may be indefinite', () => {
    rejects(hex('5f 4101 ff'), 'indefinite')
    rejects(hex('7f 6161 ff'), 'indefinite')
  })

  it('rejects invalid UTF-8 in text strings', () => {
    rejects(hex('62c328'), 'bad-utf8')
    rejects(hex('63eda080'), 'bad-utf8') // a UTF-16 surrogate encoded as UTF-8
  })

  it('rejects trailing bytes and an unterminated indefinite container', () => {
    rejects(hex('0000'), 'trailing')
    rejects(hex('a0ff'), 'trailing')
    rejects(hex('bf 01 02'), 'truncated')
    rejects(hex('bf 01 ff'), 'unsupported') // a break where a value belongs
  })

  it('never fails with anything but CborError on truncated or random input', () => {
    const real = nitroFixtures()[0]!.bytes
    for (let cut = 0; cut < real.length; cut += 7) {
      assert.throws(() => decodeCbor(real.subarray(0, cut), LOOSE), CborError)
    }
    const next = prng(0xc0ffee)
    for (let round = 0; round < 500; round++) {
      const bytes = Uint8Array.from({ length: 1 + (next() % 64) }, () => next() & 0xff)
      try {
        decodeCbor(bytes, LOOSE)
      } catch (err) {
        assert.ok(err instanceof CborError, `round ${round}: ${String(err)}`)
      }
    }
  })
})
