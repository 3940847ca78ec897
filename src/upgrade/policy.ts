// Who may move the key to a new build: upgrade.json at the image's top level, beside
// operator.json, so PCR2 measures it with the code and the rules cannot change without
// changing the build. { "upgrade": null } (or no file) means the identity never moves.
// A file that is there but wrong stops the service, as operator.json does.
import { CodedError } from '../../nec01/errors.js'
import { FileReadError, readBoundedFile } from '../files.js'
import { parseOperatorKey, OperatorConfigError } from '../service/operator-config.js'
import { UPGRADE_FILE } from '../measured-files.js'

export { UPGRADE_FILE }
/** The cooldown when the file names none: a day to notice and cancel. */
export const DEFAULT_COOLDOWN_SEC = 24 * 3600
/** In prod the cooldown is never shorter than the default; seconds are for development. */
export const MIN_PROD_COOLDOWN_SEC = DEFAULT_COOLDOWN_SEC
const MAX_COOLDOWN_SEC = 365 * 24 * 3600
const MAX_MAINTAINERS = 32
const MAX_REPO_LENGTH = 2048
const MAX_UPGRADE_FILE_BYTES = 64 * 1024

export type UpgradePolicyErrorCode = 'UPGRADE_FILE_INVALID' | 'UPGRADE_FILE_UNREADABLE' | 'UPGRADE_KEY_INVALID' | 'UPGRADE_COOLDOWN_REFUSED'

export class UpgradePolicyError extends CodedError<UpgradePolicyErrorCode> {}

export interface UpgradePolicy {
  /** hex pubkeys of the NEC-05 release signers, distinct */
  maintainers: string[]
  threshold: number
  /** the r every release signature must name */
  repo: string
  cooldownSec: number
  /** whether a t=dev build may receive a key this t=prod build holds */
  devMayReceiveProd: boolean
}

const KEYS = ['maintainers', 'threshold', 'repo', 'cooldown_sec', 'dev_may_receive_prod']

function invalid(message: string): UpgradePolicyError {
  return new UpgradePolicyError('UPGRADE_FILE_INVALID', `${UPGRADE_FILE}: ${message}`)
}

function maintainersOf(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_MAINTAINERS) throw invalid(`"maintainers" must list 1..${MAX_MAINTAINERS} npubs`)
  const keys = value.map((v) => {
    if (typeof v !== 'string') throw invalid('"maintainers" must hold npubs or 64-hex pubkeys')
    try {
      return parseOperatorKey(v)
    } catch (err) {
      if (err instanceof OperatorConfigError) throw new UpgradePolicyError('UPGRADE_KEY_INVALID', `${UPGRADE_FILE}: maintainer '${v.slice(0, 80)}' is neither an npub nor a 64-hex pubkey on secp256k1`)
      throw err
    }
  })
  if (new Set(keys).size !== keys.length) throw invalid('"maintainers" names a key twice')
  return keys
}

function integer(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) throw invalid(`"${name}" must be a whole number from ${min} to ${max}`)
  return value
}

function policyOf(o: Record<string, unknown>): UpgradePolicy {
  const unknown = Object.keys(o).find((k) => !KEYS.includes(k))
  if (unknown !== undefined) throw invalid(`unknown key "${unknown.slice(0, 40)}" (expected ${KEYS.join(', ')})`)
  const maintainers = maintainersOf(o.maintainers)
  const threshold = integer(o.threshold ?? 1, 'threshold', 1, maintainers.length)
  if (typeof o.repo !== 'string' || o.repo.length === 0 || o.repo.length > MAX_REPO_LENGTH) throw invalid(`"repo" must be the repository URL every release names (r), 1..${MAX_REPO_LENGTH} characters`)
  const cooldownSec = integer(o.cooldown_sec ?? DEFAULT_COOLDOWN_SEC, 'cooldown_sec', 1, MAX_COOLDOWN_SEC)
  const dev = o.dev_may_receive_prod ?? false
  if (typeof dev !== 'boolean') throw invalid('"dev_may_receive_prod" must be true or false')
  return { maintainers, threshold, repo: o.repo, cooldownSec, devMayReceiveProd: dev }
}

/** The file's text → the policy, or null for { "upgrade": null }. Throws UpgradePolicyError. */
export function parseUpgradeFile(text: string): UpgradePolicy | null {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw invalid('not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, 'upgrade') || Object.keys(value).length !== 1) {
    throw invalid('must be an object { "upgrade": { maintainers, threshold, repo, cooldown_sec, dev_may_receive_prod } | null }')
  }
  const inner = (value as { upgrade: unknown }).upgrade
  if (inner === null) return null
  if (typeof inner !== 'object' || Array.isArray(inner)) throw invalid('"upgrade" must be an object or null')
  return policyOf(inner as Record<string, unknown>)
}

/** Reads the file; a missing file means no policy (the identity never moves). */
export function loadUpgradeFile(path: string): UpgradePolicy | null {
  let text: string
  try {
    text = readBoundedFile(path, MAX_UPGRADE_FILE_BYTES).toString('utf8')
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err
    if (err.errno === 'ENOENT') return null
    throw new UpgradePolicyError('UPGRADE_FILE_UNREADABLE', err.message)
  }
  return parseUpgradeFile(text)
}

/** A cooldown shorter than a day is for development: a prod holder refuses to run with one. */
export function checkPolicyFor(policy: UpgradePolicy, t: 'prod' | 'dev'): void {
  if (t === 'prod' && policy.cooldownSec < MIN_PROD_COOLDOWN_SEC) {
    throw new UpgradePolicyError('UPGRADE_COOLDOWN_REFUSED', `${UPGRADE_FILE}: a cooldown of ${policy.cooldownSec} s is for development; t=prod needs at least ${MIN_PROD_COOLDOWN_SEC} s`)
  }
}
