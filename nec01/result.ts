// The typed error and the few helpers that turn a list of checks into a VerifyResult.
// Every verifier entry point (documents, root events, carriers) builds its result here so
// `valid` and `reason` are always derived the same way from the checks.
import type { AttestationInfo, Check, CheckId, VerifyResult } from './types.js'
import { CodedError } from './errors.js'

/** A verification failure attributed to one check id; `message` is the check's detail. */
export class VerifyError extends CodedError<CheckId> {
  override readonly name = 'VerifyError'
}

export function pass(checks: Check[], id: CheckId, detail: string): void {
  checks.push({ id, ok: true, detail })
}

export function fail(checks: Check[], id: CheckId, detail: string): void {
  checks.push({ id, ok: false, detail })
}

/**
 * A check that could not run because one it depends on failed (the attestation did not
 * verify, so there are no attested PCRs to compare). It stays `ok: false`, so a result is
 * never valid on checks that did not run; `reason` still names the failure that stopped
 * them, which comes first. Its detail starts with NOT_CHECKED.
 */
export const NOT_CHECKED = 'not checked: '

export function notChecked(checks: Check[], id: CheckId, why: string): void {
  checks.push({ id, ok: false, detail: `${NOT_CHECKED}${why}` })
}

/** True for a check recorded by notChecked: it did not fail, it did not run. */
export function isNotChecked(c: Check): boolean {
  return !c.ok && c.detail.startsWith(NOT_CHECKED)
}

/** The usual reason a check did not run. */
export const ATTESTATION_FAILED = 'the attestation did not verify'

/** Records a passing or failing check and returns `ok`, for `if (!check(...)) return`. */
export function check(checks: Check[], id: CheckId, ok: boolean, detail: string): boolean {
  checks.push({ id, ok, detail })
  return ok
}

/**
 * valid = at least one check ran and every check passed; reason = id of the first failure.
 * An empty list fails closed: a result nobody checked is never valid.
 */
export function finish(checks: Check[], attestation: AttestationInfo | null): VerifyResult {
  if (checks.length === 0) fail(checks, 'input', 'no checks ran')
  const failed = checks.find((c) => !c.ok)
  return { valid: failed === undefined, reason: failed === undefined ? null : failed.id, checks, attestation }
}

/** A result holding one failed check, for inputs rejected before anything else ran. */
export function failure(id: CheckId, detail: string): VerifyResult {
  const checks: Check[] = []
  fail(checks, id, detail)
  return finish(checks, null)
}
