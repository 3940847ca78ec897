// Shared by the NSM tests: temp state dirs, a plain CBOR decode of documents, and a CBOR
// "shape" reader that records every item's major type and head size, so two documents can be
// compared at the byte-format level without comparing their values.
import { Decoder } from 'cbor-x'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const decoder = new Decoder({ mapsAsObjects: false, useRecords: false })

export function tempStateDir(label: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `nec01-nsm-${label}-`))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

export interface DecodedDocument {
  top: unknown[]
  protectedHeader: Uint8Array
  unprotected: unknown
  payloadBytes: Uint8Array
  signature: Uint8Array
  payload: Map<unknown, unknown>
}

export function decodeDocument(bytes: Uint8Array): DecodedDocument {
  const top: unknown = decoder.decode(bytes)
  if (!Array.isArray(top)) throw new Error('document is not a CBOR array')
  const [protectedHeader, unprotected, payloadBytes, signature] = top as [unknown, unknown, unknown, unknown]
  if (!(protectedHeader instanceof Uint8Array) || !(payloadBytes instanceof Uint8Array) || !(signature instanceof Uint8Array)) {
    throw new Error('document fields are not byte strings')
  }
  const payload: unknown = decoder.decode(payloadBytes)
  if (!(payload instanceof Map)) throw new Error('payload is not a map')
  return { top, protectedHeader, unprotected, payloadBytes, signature, payload }
}

export function field<T>(doc: DecodedDocument, key: string): T {
  return doc.payload.get(key) as T
}

export function pcrMap(doc: DecodedDocument): Map<number, Uint8Array> {
  return field<Map<number, Uint8Array>>(doc, 'pcrs')
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

/**
 * The CBOR structure of `bytes` as text: each item is "<major>.<head>" where head is the
 * additional-information class (i = inline value, 24/25/26/27 = 1/2/4/8-byte argument,
 * 31 = indefinite); containers list their children. Byte and text string contents are skipped.
 */
export function cborShape(bytes: Uint8Array, normalizeIndefinite = false): string {
  let pos = 0
  const byte = (): number => {
    const b = bytes[pos]
    if (b === undefined) throw new Error('truncated CBOR')
    pos++
    return b
  }
  const argument = (ai: number): number => {
    if (ai < 24) return ai
    const size = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : -1
    if (size < 0) throw new Error(`unsupported additional info ${ai}`)
    let n = 0
    for (let i = 0; i < size; i++) n = n * 256 + byte()
    return n
  }
  const item = (): string => {
    const initial = byte()
    const major = initial >> 5
    const ai = initial & 0x1f
    const head = ai < 24 ? 'i' : String(ai)
    if (ai === 31) {
      if (major !== 4 && major !== 5) throw new Error('indefinite item other than array/map')
      const children: string[] = []
      while (bytes[pos] !== 0xff) {
        children.push(major === 5 ? `${item()}:${item()}` : item())
      }
      pos++
      const label = normalizeIndefinite ? `${major}.len${children.length}` : `${major}.31`
      return `${label}[${children.join(',')}]`
    }
    const n = argument(ai)
    switch (major) {
      case 0:
      case 1:
      case 7:
        return `${major}.${head}`
      case 2:
      case 3:
        pos += n
        return `${major}.${head}`
      case 4: {
        const children: string[] = []
        for (let i = 0; i < n; i++) children.push(item())
        return `${normalizeIndefinite ? `${major}.len${n}` : `${major}.${head}`}[${children.join(',')}]`
      }
      case 5: {
        const children: string[] = []
        for (let i = 0; i < n; i++) children.push(`${item()}:${item()}`)
        return `${normalizeIndefinite ? `${major}.len${n}` : `${major}.${head}`}[${children.join(',')}]`
      }
      default:
        return `tag${n}(${item()})`
    }
  }
  const out = item()
  if (pos !== bytes.length) throw new Error(`${bytes.length - pos} trailing bytes`)
  return out
}
