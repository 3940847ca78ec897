// The NEC trust flags (trust people instead of hashes: NEC-03/04/05), parsed once for every
// command that verifies a service. Kept beside trust.ts's flags, which they extend.
import { pubkeyHex } from '../../nec01/nostr.js'
import type { NecTrustOptions, NostrEvent } from '../../nec01/types.js'
import { CliError } from './exit.js'
import { FileReadError, readBoundedFile } from '../files.js'
import { MAX_INPUT_BYTES } from './input.js'

/** node:util parseArgs option specs for the NEC trust flags. */
export const NEC_TRUST_ARG_OPTIONS = {
  'release-signers': { type: 'string', multiple: true },
  'release-threshold': { type: 'string' },
  builder: { type: 'string' },
  launcher: { type: 'string' },
  r: { type: 'string' },
  repo: { type: 'string' },
  releases: { type: 'string' },
} as const

export const NEC_TRUST_USAGE = `trust in people (NEC-03..05, docs/necs.md):
  --release-signers NPUB,...  trust PCR0/1/2 released (kind 63794) by these maintainers; repeatable
  --release-threshold N       how many distinct signers must have released them (default 1)
  --releases FILE             release signature events found elsewhere: a JSON event, an array,
                              or one event per line
  --builder NPUB              PCR8 must come from this builder's certificate (kind 23794)
  --launcher NPUB             PCR4 must be signed by this launcher (kind 23795)
  --r URL, --repo URL         the repository the announcement and releases must name`

export interface NecTrustValues {
  'release-signers'?: string[]
  'release-threshold'?: string
  builder?: string
  launcher?: string
  r?: string
  repo?: string
  releases?: string
}

function pubkeyFlag(flag: string, text: string): string {
  const hex = pubkeyHex(text.trim())
  if (hex === null) throw new CliError(`--${flag}: '${text.slice(0, 70)}' is neither an npub nor 64 hex characters`)
  return hex
}

/** A JSON event, a JSON array of events, or one JSON event per line (as relay tools print them). */
export function parseEventList(text: string, source: string): NostrEvent[] {
  const trimmed = text.trim()
  if (trimmed === '') return []
  let values: unknown[]
  try {
    const whole: unknown = trimmed.startsWith('[') || !trimmed.includes('\n') ? JSON.parse(trimmed) : undefined
    values = whole === undefined ? trimmed.split(/\r?\n/).filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown) : Array.isArray(whole) ? whole : [whole]
  } catch {
    throw new CliError(`${source}: not JSON (expected an event, an array of events, or one event per line)`)
  }
  values.forEach((v, i) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CliError(`${source}: item ${i} is not an event object`)
  })
  return values as NostrEvent[]
}

function releasesFile(path: string): NostrEvent[] {
  try {
    return parseEventList(readBoundedFile(path, MAX_INPUT_BYTES).toString('utf8'), `--releases ${path}`)
  } catch (err) {
    if (err instanceof FileReadError) throw new CliError(`--releases: ${err.message}`)
    throw err
  }
}

/** Turns the NEC trust flags into verifier options. Throws CliError (exit 2) on bad values. */
export function necTrustOptions(values: NecTrustValues): NecTrustOptions {
  const options: NecTrustOptions = {}
  const signers = (values['release-signers'] ?? []).flatMap((list) => list.split(',')).filter((s) => s.trim() !== '')
  if (values['release-signers'] !== undefined) {
    if (signers.length === 0) throw new CliError('--release-signers: no npub given')
    options.releaseSigners = signers.map((s) => pubkeyFlag('release-signers', s))
  }
  if (values['release-threshold'] !== undefined) {
    const n = values['release-threshold']
    if (options.releaseSigners === undefined) throw new CliError('--release-threshold needs --release-signers')
    const distinct = new Set(options.releaseSigners).size
    if (!/^[1-9][0-9]*$/.test(n) || Number(n) > distinct) throw new CliError(`--release-threshold: expected 1..${distinct} (the distinct signers), got '${n}'`)
    options.releaseThreshold = Number(n)
  }
  if (values.builder !== undefined) options.builder = pubkeyFlag('builder', values.builder)
  if (values.launcher !== undefined) options.launcher = pubkeyFlag('launcher', values.launcher)
  if (values.r !== undefined && values.repo !== undefined && values.r !== values.repo) throw new CliError('--r and --repo name different repositories')
  const repo = values.r ?? values.repo
  if (repo !== undefined) {
    if (repo === '') throw new CliError('--repo: empty')
    options.repo = repo
  }
  if (values.releases !== undefined) options.releases = releasesFile(values.releases)
  return options
}
