// nec01 verify: check any event of the NEC family (a kind:23793 root event, an
// announcement, a builder, launcher or release signature), any event carrying a tee_root
// tag, or a bare attestation document (base64, hex or raw CBOR).
import { verifyAttestation } from '../../nec01/attestation.js'
import { TEE_ROOT_TAG } from '../../nec01/event.js'
import { ANNOUNCEMENT_KIND, ROOT_KIND, successorKind } from '../../nec01/kinds.js'
import { isSignatureKind, verifyNecEvent } from '../../nec01/necs.js'
import type { TeeRootOptions, VerifyResult } from '../../nec01/types.js'
import { CliError, EXIT_INVALID, EXIT_OK, parseCommandArgs } from '../cli/exit.js'
import { formatResult } from '../cli/format.js'
import { hintsFor } from '../cli/hints.js'
import { readInput } from '../cli/input.js'
import { TRUST_ARG_OPTIONS, TRUST_USAGE, trustOptions } from '../cli/trust.js'
import { NEC_TRUST_ARG_OPTIONS, NEC_TRUST_USAGE, necTrustOptions } from '../cli/nec-trust.js'
import { errorText } from '../../nec01/errors.js'

export const USAGE = `usage: nec01 verify [INPUT|-] [trust options] [--json]

Verifies a kind:23793 event, a service announcement (13793, legacy 63793), a builder,
launcher or release signature (23794, 23795, 63794 and their legacy kinds), any event
with a tee_root tag, or a bare attestation document (base64, hex or raw CBOR), read from
INPUT or standard input.

${TRUST_USAGE}

${NEC_TRUST_USAGE}
  --json             print the result object as JSON

exit: 0 valid, 1 invalid, 2 usage error or unreadable input`

type InputKind = 'root-event' | 'announcement' | 'signature' | 'carrier' | 'attestation'

export interface DetectedInput {
  kind: InputKind
  event?: unknown
  document?: Uint8Array
}

/** CBOR heads that can open a COSE_Sign1: array(4), or tag 18 then array(4). */
function looksLikeCbor(bytes: Uint8Array): boolean {
  return bytes[0] === 0x84 || (bytes[0] === 0xd2 && bytes[1] === 0x84)
}

const HEX_TEXT = /^(?:[0-9a-fA-F]{2})+$/
const BASE64_TEXT = /^[A-Za-z0-9+/_-]+={0,2}$/

/** Decides what the input is. Throws CliError(exit 1) for well-read input of no known type. */
export function detectInput(bytes: Uint8Array): DetectedInput {
  if (bytes.length === 0) throw new CliError('input is empty', EXIT_INVALID)
  if (looksLikeCbor(bytes)) return { kind: 'attestation', document: bytes }
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes).trim()
  } catch {
    throw new CliError('input is neither JSON, base64, hex nor a CBOR attestation document', EXIT_INVALID)
  }
  if (text.startsWith('{')) {
    let event: unknown
    try {
      event = JSON.parse(text)
    } catch (err) {
      throw new CliError(`input is not valid JSON: ${errorText(err)}`, EXIT_INVALID)
    }
    const e = event as { kind?: unknown; tags?: unknown }
    const kind = typeof e.kind === 'number' ? e.kind : NaN
    if (kind === ROOT_KIND) return { kind: 'root-event', event }
    if (successorKind(kind) === ANNOUNCEMENT_KIND) return { kind: 'announcement', event }
    if (isSignatureKind(kind)) return { kind: 'signature', event }
    if (Array.isArray(e.tags) && e.tags.some((t) => Array.isArray(t) && t[0] === TEE_ROOT_TAG)) return { kind: 'carrier', event }
    throw new CliError(`input is a JSON object but neither a NEC event (kind ${ROOT_KIND}, ${ANNOUNCEMENT_KIND}, 23794, 23795, 63794 or a legacy kind) nor an event with a tee_root tag`, EXIT_INVALID)
  }
  const compact = text.replace(/\s+/g, '')
  if (HEX_TEXT.test(compact)) return { kind: 'attestation', document: Uint8Array.from(Buffer.from(compact, 'hex')) }
  if (BASE64_TEXT.test(compact)) {
    const decoded = Uint8Array.from(Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64'))
    if (looksLikeCbor(decoded)) return { kind: 'attestation', document: decoded }
  }
  throw new CliError('input is neither JSON, base64, hex nor a CBOR attestation document', EXIT_INVALID)
}

export function verifyDetected(input: DetectedInput, options: TeeRootOptions): Promise<VerifyResult> {
  if (input.kind === 'attestation') return verifyAttestation(input.document ?? new Uint8Array(), options)
  return verifyNecEvent(input.event, options)
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs('verify', USAGE, args, { ...TRUST_ARG_OPTIONS, ...NEC_TRUST_ARG_OPTIONS, json: { type: 'boolean' } })
  if (parsed === null) return EXIT_OK
  const { values, positionals } = parsed
  if (positionals.length > 1) throw new CliError(`expected one INPUT, got ${positionals.length} (see nec01 verify --help)`)
  const { options: base, warnings } = trustOptions(values)
  const options: TeeRootOptions = { ...base, ...necTrustOptions(values) }
  const bytes = await readInput(positionals[0])
  let result: VerifyResult
  try {
    const input = detectInput(bytes)
    if (input.kind === 'attestation' && Object.keys(necTrustOptions(values)).length > 0) {
      throw new CliError('the NEC trust flags (--release-signers, --builder, --launcher, --repo, --releases) apply to events, not to a bare document')
    }
    // only now that nothing can be a usage error: a warning above an error is noise
    for (const w of warnings) console.error(w)
    result = await verifyDetected(input, options)
  } catch (err) {
    // Input we could read but not recognise is an invalid verdict, reported like any other.
    if (!(err instanceof CliError) || err.exitCode !== EXIT_INVALID) throw err
    result = { valid: false, reason: 'input', checks: [{ id: 'input', ok: false, detail: err.message }], attestation: null }
  }
  console.log(values.json === true ? JSON.stringify(result, null, 2) : formatResult(result, hintsFor(result, values)))
  return result.valid ? EXIT_OK : EXIT_INVALID
}
