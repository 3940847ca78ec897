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
