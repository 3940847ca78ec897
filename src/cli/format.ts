// Human rendering of a verifier result: one line per check, then what the document says,
// then the verdict. Shared by verify, dm, attest and fetch.
import { isoSeconds as iso, isoTime } from '../../nec01/time.js'
import { isNotChecked } from '../../nec01/result.js'
import type { Check, VerifyResult } from '../../nec01/types.js'

const OK = '✓'
const FAIL = '✗'
/** a check that did not run because one it depends on failed (still a failure) */
const NOT_RUN = '-'

function mark(c: Check): string {
  return c.ok ? OK : isNotChecked(c) ? NOT_RUN : FAIL
}

/** The result for people; `hints` (hints.ts) follow the verdict, one `hint:` line each. */
export function formatResult(result: VerifyResult, hints: string[] = []): string {
  const lines = result.checks.map((c) => `${mark(c)} ${c.id.padEnd(10)} ${c.detail}`)
  const att = result.attestation
  if (att !== null) {
    lines.push('')
    lines.push(`module      ${att.module_id}`)
    lines.push(`timestamp   ${isoTime(att.timestamp)}`)
    lines.push(`certificate ${iso(att.certificate.notBefore)} .. ${iso(att.certificate.notAfter)}`)
    for (const [index, value] of Object.entries(att.pcrs)) {
      if (/^0+$/.test(value) && Number(index) > 2) continue // unused PCRs add nothing to read
      lines.push(`PCR${index.padEnd(8)} ${value}`)
    }
    if (att.public_key !== null) lines.push(`public_key  ${att.public_key}`)
    if (att.user_data !== null) lines.push(`user_data   ${att.user_data}`)
    if (att.nonce !== null) lines.push(`nonce       ${att.nonce}`)
    if (att.pcr16_binds_public_key !== null) lines.push(`PCR16 ${att.pcr16_binds_public_key ? 'binds' : 'does not bind'} public_key`)
  }
  if (result.event !== undefined) lines.push(`pubkey      ${result.event.pubkey}`)
  if (result.signers !== undefined) {
    lines.push(`built by    ${result.signers.builder ?? '-'}`, `launched by ${result.signers.launcher ?? '-'}`)
    lines.push(`released by ${result.signers.releasers.length === 0 ? '-' : result.signers.releasers.join(', ')}`)
  }
  for (const link of result.delegation ?? []) lines.push(`tee_cert    ${link.signer} → ${link.delegate} until ${iso(link.expiration)}`)
  lines.push('')
  lines.push(result.valid ? 'VALID' : `INVALID (${result.reason ?? 'unknown'})`)
  for (const hint of hints) lines.push(`hint: ${hint}`)
  return lines.join('\n')
}
