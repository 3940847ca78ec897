// The trust options every client command shares (verify, dm, attest, fetch): which PCRs,
// which root, which time, which t. Parsed once here so the commands agree on them.
import { parseRoot } from '../../nec01/cert.js'
import type { Expect, VerifyOptions } from '../../nec01/types.js'
import { CliError } from './exit.js'
import { FileReadError, readBoundedFile } from '../files.js'
import { errorText } from '../../nec01/errors.js'

/** node:util parseArgs option specs for the trust options. */
export const TRUST_ARG_OPTIONS = {
  pcr: { type: 'string', multiple: true },
  pcrs: { type: 'string' },
  'any-pcrs': { type: 'boolean' },
  expect: { type: 'string' },
  at: { type: 'string' },
  root: { type: 'string' },
  pubkey: { type: 'string' },
  nonce: { type: 'string' },
} as const

export const TRUST_USAGE = `trust options:
  --pcr N=HEX        expect PCR N to equal HEX (96 hex chars); repeatable
  --pcrs FILE        expected PCRs from nitro-cli build-enclave output ({"Measurements":{"PCR0":…}})
                     or a plain {"PCR0": …} / {"0": …} map
  --any-pcrs         accept any PCRs (proves only that some enclave ran; debug mode stays rejected)
  --expect T         expected t tag: prod (default), dev or any
  --at TIME          validation time: ISO 8601 (T or a space; no zone is UTC) or unix seconds (default: now)
  --root FILE        trust this root certificate (PEM or DER) instead of the AWS Nitro root G1
  --pubkey HEX       expect this public_key (32-byte x-only Nostr pubkey)
  --nonce HEX        expect this nonce`

export interface TrustValues {
  pcr?: string[]
  pcrs?: string
  'any-pcrs'?: boolean
  expect?: string
  at?: string
  root?: string
  pubkey?: string
  nonce?: string
}

const PCR_HEX = /^[0-9a-fA-F]{96}$/
const HEX = /^(?:[0-9a-fA-F]{2})+$/
/** Largest file the CLI reads for --pcrs / --root: both are a few KiB at most. */
const MAX_SIDE_FILE = 64 * 1024

function readSmallFile(path: string, what: string): Buffer {
  try {
    return readBoundedFile(path, MAX_SIDE_FILE)
  } catch (err) {
    if (err instanceof FileReadError) throw new CliError(`${what}: ${err.message}`)
    throw err
  }
}

function pcrIndex(key: string, source: string): number {
  const m = /^(?:PCR)?([0-9]{1,2})$/i.exec(key)
  const index = m?.[1] === undefined ? NaN : Number(m[1])
  if (!(index >= 0 && index <= 31)) throw new CliError(`${source}: '${key}' is not a PCR index 0..31`)
  return index
}

/** Parses nitro-cli build-enclave output or a plain PCR map. */
function parsePcrFile(text: string, source: string): Record<number, string> {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new CliError(`${source}: not JSON`)
  }
  const obj = json as { Measurements?: unknown }
  const map = typeof obj === 'object' && obj !== null && typeof obj.Measurements === 'object' && obj.Measurements !== null ? obj.Measurements : json
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new CliError(`${source}: expected a JSON object of PCRs`)
  const out: Record<number, string> = {}
  for (const [key, value] of Object.entries(map)) {
    if (key === 'HashAlgorithm') continue // nitro-cli prints "Sha384 { ... }" beside the values
    const index = pcrIndex(key, source)
    if (typeof value !== 'string' || !PCR_HEX.test(value)) throw new CliError(`${source}: ${key} is not 96 hex characters`)
    out[index] = value.toLowerCase()
  }
  if (Object.keys(out).length === 0) throw new CliError(`${source}: no PCRs in it`)
  return out
}

/** A PCR file (nitro-cli build-enclave output or a plain map) → index → lowercase hex. Throws CliError. */
export function readPcrFile(path: string, flag: string): Record<number, string> {
  return parsePcrFile(readSmallFile(path, flag).toString('utf8'), path)
}

/** ISO 8601: a date, then optionally a time (after T or a space), then optionally a zone */
const ISO_8601 = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?)?$/i

/**
 * ISO 8601 or unix seconds → unix seconds, keeping milliseconds: certificate bounds are
 * whole seconds, and 12:00:00.5 is already past a notAfter of 12:00:00. A time without a
 * zone is UTC, as every certificate time is: the verdict must not depend on the machine.
 * Only these forms are read: Date.parse would take many more, some as local time.
 */
export function parseTime(text: string): number {
  if (/^[0-9]{1,12}$/.test(text)) return Number(text)
  const m = ISO_8601.exec(text.trim())
  const [, date, time, zone] = m ?? []
  const ms = date === undefined || !realDate(date) ? NaN : Date.parse(`${date}T${time ?? '00:00'}${zoneOf(zone)}`)
  if (!Number.isFinite(ms)) throw new CliError(`--at: '${text}' is neither ISO 8601 (2025-04-01T14:00:00Z; no zone is UTC) nor unix seconds`)
  return ms / 1000
}

/** 2025-02-30 is no date, though Date.parse rolls it over to March */
function realDate(date: string): boolean {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number]
  return new Date(Date.UTC(y, m - 1, d)).toISOString().startsWith(date)
}

/** Z for no zone (UTC); +hhmm as +hh:mm, the form Date.parse reads */
function zoneOf(zone: string | undefined): string {
  if (zone === undefined || zone.toUpperCase() === 'Z') return 'Z'
  return zone.includes(':') ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`
}

function parseHexOption(name: string, value: string): string {
  if (!HEX.test(value)) throw new CliError(`--${name}: expected hex, got '${value.slice(0, 40)}'`)
  return value.toLowerCase()
}

export interface TrustOptions {
  options: VerifyOptions
  /** printed to stderr by the command before verifying */
  warnings: string[]
}

/** Turns parsed trust flags into verifier options. Throws CliError (exit 2) on bad values. */
export function trustOptions(values: TrustValues): TrustOptions {
  const options: VerifyOptions = {}
  const warnings: string[] = []
  const expected: Record<number, string> = {}
  if (values.pcrs !== undefined) Object.assign(expected, readPcrFile(values.pcrs, '--pcrs'))
  for (const spec of values.pcr ?? []) {
    const eq = spec.indexOf('=')
    if (eq < 0) throw new CliError(`--pcr: expected N=HEX, got '${spec}'`)
    const index = pcrIndex(spec.slice(0, eq), '--pcr')
    const hex = spec.slice(eq + 1)
    if (!PCR_HEX.test(hex)) throw new CliError(`--pcr ${index}: expected 96 hex characters`)
    expected[index] = hex.toLowerCase()
  }
  if (Object.keys(expected).length > 0) options.expectedPcrs = expected
  if (values['any-pcrs'] === true) {
    options.anyPcrs = true
    warnings.push('warning: --any-pcrs accepts any enclave image: this proves some Nitro Enclave ran, not which code')
  }
  if (values.expect !== undefined) {
    if (values.expect !== 'prod' && values.expect !== 'dev' && values.expect !== 'any') throw new CliError(`--expect: expected prod, dev or any, got '${values.expect}'`)
    options.expect = values.expect as Expect
  }
  if (values.at !== undefined) options.now = parseTime(values.at)
  if (values.root !== undefined) {
    const data = readSmallFile(values.root, '--root')
    try {
      options.root = parseRoot(new Uint8Array(data))
    } catch (err) {
      throw new CliError(`--root: ${values.root}: ${errorText(err)}`)
    }
  }
  if (values.pubkey !== undefined) {
    const pk = parseHexOption('pubkey', values.pubkey)
    if (pk.length !== 64) throw new CliError('--pubkey: expected 32 bytes (64 hex characters)')
    options.publicKey = pk
  }
  if (values.nonce !== undefined) options.nonce = parseHexOption('nonce', values.nonce)
  return { options, warnings }
}
