// Real-world test data from ../shared/fixtures (see its README). Tests run with the
// project root as working directory (npm test), so the path is resolved from there.
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const FIXTURES_DIR = resolve(process.env.NEC01_FIXTURES ?? join(process.cwd(), '..', 'shared', 'fixtures'))
export const NITRO_DIR = join(FIXTURES_DIR, 'nitro')
export const NEC01_DIR = join(FIXTURES_DIR, 'nec01')

/** One entry of nitro/fixtures.json (the fields the tests use). */
export interface NitroFixtureMeta {
  name: string
  module_id: string
  timestampMs: string
  pcrCount: number
  pcr0: string
  pcr1: string
  pcr2: string
  pcr8: string
  debugAllZeroPCR012: boolean
  public_key: number | null
  user_data: number | null
  nonce: number | null
  chainValidWindowUTC: [string, string]
  cabundleLen: number
  es384Verifies: boolean
  highS: boolean
  payloadMapHeader: string
}

export interface NitroFixture extends NitroFixtureMeta {
  bytes: Uint8Array
  /** first second of the chain's validity window, unix seconds */
  validFrom: number
  /** last second of the chain's validity window, unix seconds */
  validUntil: number
}

export function nitroFixtures(): NitroFixture[] {
  const metas = JSON.parse(readFileSync(join(NITRO_DIR, 'fixtures.json'), 'utf8')) as NitroFixtureMeta[]
  return metas.map((m) => ({
    ...m,
    bytes: new Uint8Array(readFileSync(join(NITRO_DIR, `${m.name}.cose`))),
    validFrom: Date.parse(m.chainValidWindowUTC[0]) / 1000,
    validUntil: Date.parse(m.chainValidWindowUTC[1]) / 1000,
  }))
}

export function awsRootDer(): Uint8Array {
  return new Uint8Array(readFileSync(join(NITRO_DIR, 'AWS_NitroEnclaves_Root-G1.der')))
}

export function readNec01(name: string): string {
  return readFileSync(join(NEC01_DIR, name), 'utf8')
}
