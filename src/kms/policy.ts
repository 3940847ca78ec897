// KMS key policies as JSON documents, and their evaluation for the stand-in: a faithful subset
// of the IAM policy language. What it keeps: Allow/Deny with explicit Deny winning and deny by
// default; Action and NotAction with `*`/`?` wildcards, case-insensitive; Principal `*`, an
// account (its `:root` ARN or bare id) or an exact ARN; the operators StringEquals,
// StringEqualsIgnoreCase and StringLike, every key and operator of a Condition ANDed, the
// values of one key ORed, a key missing from the request failing its condition (so a Decrypt
// without an attestation never meets a PCR condition). Anything else in a policy (IfExists,
// ForAnyValue, Bool, NotPrincipal, …) is refused when the policy is set, never skipped when
// it is evaluated: an ignored condition would grant what the author meant to restrict.
// The stand-in has no IAM, so an account principal stands for every caller of that account.
import { CodedError } from '../../nec01/errors.js'

export const POLICY_VERSION = '2012-10-17'
/** AWS's limit on a key policy document. */
export const MAX_POLICY_BYTES = 32768

export const CONDITION_OPERATORS = ['StringEquals', 'StringEqualsIgnoreCase', 'StringLike'] as const
export type ConditionOperator = (typeof CONDITION_OPERATORS)[number]

/** Condition keys KMS sets from a verified Nitro Enclaves attestation document. */
export const IMAGE_SHA384_KEY = 'kms:RecipientAttestation:ImageSha384'
export const PCR_KEY_PREFIX = 'kms:RecipientAttestation:PCR'

export type Principal = '*' | { AWS: string | string[] }
export type Conditions = Partial<Record<ConditionOperator, Record<string, string | string[]>>>

export interface PolicyStatement {
  Sid?: string
  Effect: 'Allow' | 'Deny'
  Principal: Principal
  Action?: string | string[]
  NotAction?: string | string[]
  Resource: string | string[]
  Condition?: Conditions
}

export interface KeyPolicy {
  Version: typeof POLICY_VERSION
  Id?: string
  Statement: PolicyStatement[]
}

/** A policy document the stand-in will not accept; AWS answers MalformedPolicyDocumentException. */
/** A key policy the stand-in does not take: malformed, or outside the subset it evaluates. */
export class PolicyError extends CodedError<'POLICY_MALFORMED'> {
  constructor(message: string) {
    super('POLICY_MALFORMED', message)
  }
}

export interface PolicyRequest {
  /** e.g. kms:Decrypt */
  action: string
  /** the caller's ARN */
  principalArn: string
  /** the key's ARN */
  resourceArn: string
  /** condition keys present in the request, any case */
  context: Record<string, string>
}

export type PolicyDecision = { allowed: true; sid: string | null } | { allowed: false; explicitDeny: boolean; sid: string | null }

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function stringList(value: unknown, what: string): string[] {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string')) {
    throw new PolicyError(`${what} must be a string or a non-empty list of strings`)
  }
  return list
}

function checkPrincipal(value: unknown, where: string): void {
  if (value === '*') return
  if (!isObject(value) || Object.keys(value).join() !== 'AWS') throw new PolicyError(`${where}: Principal must be "*" or {"AWS": …}`)
  stringList(value.AWS, `${where}: Principal.AWS`)
}

function checkConditions(value: unknown, where: string): void {
  if (!isObject(value)) throw new PolicyError(`${where}: Condition must be an object`)
  for (const [operator, block] of Object.entries(value)) {
    if (!(CONDITION_OPERATORS as readonly string[]).includes(operator)) {
      throw new PolicyError(`${where}: condition operator ${operator} is not supported (${CONDITION_OPERATORS.join(', ')})`)
    }
    if (!isObject(block) || Object.keys(block).length === 0) throw new PolicyError(`${where}: ${operator} must map condition keys to values`)
    for (const [key, values] of Object.entries(block)) stringList(values, `${where}: ${operator} ${key}`)
  }
}

const STATEMENT_FIELDS = new Set(['Sid', 'Effect', 'Principal', 'Action', 'NotAction', 'Resource', 'Condition'])

function checkStatement(value: unknown, index: number): PolicyStatement {
  const where = `Statement[${index}]`
  if (!isObject(value)) throw new PolicyError(`${where} must be an object`)
  const unknown = Object.keys(value).filter((k) => !STATEMENT_FIELDS.has(k))
  if (unknown.length > 0) throw new PolicyError(`${where}: ${unknown.join(', ')} not supported`)
  if (value.Sid !== undefined && typeof value.Sid !== 'string') throw new PolicyError(`${where}: Sid must be a string`)
  if (value.Effect !== 'Allow' && value.Effect !== 'Deny') throw new PolicyError(`${where}: Effect must be Allow or Deny`)
  checkPrincipal(value.Principal, where)
  if ((value.Action === undefined) === (value.NotAction === undefined)) throw new PolicyError(`${where}: exactly one of Action and NotAction`)
  stringList(value.Action ?? value.NotAction, `${where}: Action`)
  stringList(value.Resource, `${where}: Resource`)
  if (value.Condition !== undefined) checkConditions(value.Condition, where)
  return value as unknown as PolicyStatement
}

/** Parses and checks a key policy document (JSON text). Throws PolicyError. */
export function parseKeyPolicy(text: string): KeyPolicy {
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) throw new PolicyError(`the policy is over ${MAX_POLICY_BYTES} bytes`)
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new PolicyError('the policy is not JSON')
  }
  if (!isObject(doc)) throw new PolicyError('the policy must be a JSON object')
  if (doc.Version !== POLICY_VERSION) throw new PolicyError(`Version must be "${POLICY_VERSION}"`)
  const statements = isObject(doc.Statement) ? [doc.Statement] : doc.Statement
  if (!Array.isArray(statements) || statements.length === 0) throw new PolicyError('Statement must be a statement or a non-empty list of them')
  return { Version: POLICY_VERSION, ...(typeof doc.Id === 'string' ? { Id: doc.Id } : {}), Statement: statements.map(checkStatement) }
}

/** IAM wildcards: `*` any run, `?` one character. */
function globMatch(pattern: string, value: string, ignoreCase: boolean): boolean {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return new RegExp(`^${escaped}$`, ignoreCase ? 'is' : 's').test(value)
}

function accountOf(arn: string): string | null {
  const parts = arn.split(':')
  return parts.length >= 6 && parts[0] === 'arn' ? (parts[4] ?? null) : null
}

function principalMatches(principal: Principal, callerArn: string): boolean {
  if (principal === '*') return true
  return stringList(principal.AWS, 'Principal.AWS').some((p) => {
    if (p === '*' || p === callerArn) return true
    const account = /^\d{12}$/.test(p) ? p : /^arn:aws:iam::(\d{12}):root$/.exec(p)?.[1]
    return account !== undefined && account === accountOf(callerArn)
  })
}

function actionMatches(statement: PolicyStatement, action: string): boolean {
  if (statement.Action !== undefined) return stringList(statement.Action, 'Action').some((p) => globMatch(p, action, true))
  return !stringList(statement.NotAction, 'NotAction').some((p) => globMatch(p, action, true))
}

function conditionsHold(conditions: Conditions | undefined, context: Record<string, string>): boolean {
  if (conditions === undefined) return true
  // condition key names are case-insensitive in IAM
  const lookup = new Map(Object.entries(context).map(([k, v]) => [k.toLowerCase(), v]))
  return Object.entries(conditions).every(([operator, block]) =>
    Object.entries(block ?? {}).every(([key, expected]) => {
      const actual = lookup.get(key.toLowerCase())
      if (actual === undefined) return false
      return stringList(expected, key).some((want) => {
        switch (operator as ConditionOperator) {
          case 'StringEquals':
            return actual === want
          case 'StringEqualsIgnoreCase':
            return actual.toLowerCase() === want.toLowerCase()
          case 'StringLike':
            return globMatch(want, actual, false)
        }
      })
    }),
  )
}

function applies(statement: PolicyStatement, request: PolicyRequest): boolean {
  return (
    principalMatches(statement.Principal, request.principalArn) &&
    actionMatches(statement, request.action) &&
    stringList(statement.Resource, 'Resource').some((r) => globMatch(r, request.resourceArn, false)) &&
    conditionsHold(statement.Condition, request.context)
  )
}

/** Explicit Deny wins, then any Allow; nothing applicable means deny. */
export function evaluateKeyPolicy(policy: KeyPolicy, request: PolicyRequest): PolicyDecision {
  const matching = policy.Statement.filter((s) => applies(s, request))
  const deny = matching.find((s) => s.Effect === 'Deny')
  if (deny !== undefined) return { allowed: false, explicitDeny: true, sid: deny.Sid ?? null }
  const allow = matching.find((s) => s.Effect === 'Allow')
  if (allow !== undefined) return { allowed: true, sid: allow.Sid ?? null }
  return { allowed: false, explicitDeny: false, sid: null }
}

/** The condition keys a verified document puts in the request: PCR0 as ImageSha384, every PCR by index. */
export function attestationContext(pcrs: Record<string, string>): Record<string, string> {
  const context: Record<string, string> = {}
  for (const [index, hex] of Object.entries(pcrs)) context[`${PCR_KEY_PREFIX}${index}`] = hex
  if (pcrs['0'] !== undefined) context[IMAGE_SHA384_KEY] = pcrs['0']
  return context
}

/** The key policy AWS gives a key created without one: the account's IAM decides. */
export function defaultKeyPolicy(accountId: string): KeyPolicy {
  return {
    Version: POLICY_VERSION,
    Statement: [{ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: 'kms:*', Resource: '*' }],
  }
}

/**
 * Everything that puts a value under the key, or takes one out, or lets someone else do so.
 * Excluded from the admin: Decrypt and CreateGrant (so nobody outside the enclave reads a
 * sealed key) and Encrypt, GenerateDataKey* and ReEncrypt* (so nobody outside forges a blob
 * holding a key they know and feeds it to the enclave).
 */
export const ADMIN_EXCLUDED_ACTIONS = ['kms:Decrypt', 'kms:CreateGrant', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'] as const

/** Enclave operations: seal (GenerateDataKey) and unseal (Decrypt), both only with a matching attestation. */
export const ENCLAVE_ACTIONS = ['kms:Decrypt', 'kms:GenerateDataKey'] as const

export interface EnclavePolicyOptions {
  /** the role the parent instance's credentials carry */
  enclaveRoleArn: string
  /** PCR index → lowercase hex the enclave must attest; PCR0 is required */
  pcrs: Record<number, string>
  /** the key administrator; absent: no admin statement at all (the irreversible lock) */
  adminArn?: string
}

/** The operator's key policy: the enclave statement, and the admin statement unless locked. */
export function enclaveKeyPolicy(options: EnclavePolicyOptions): KeyPolicy {
  const values: Record<string, string> = {}
  for (const [index, hex] of Object.entries(options.pcrs)) {
    if (!/^[0-9a-f]{96}$/.test(hex)) throw new PolicyError(`PCR${index} must be 96 lowercase hex digits`)
    values[index === '0' ? IMAGE_SHA384_KEY : `${PCR_KEY_PREFIX}${index}`] = hex
  }
  if (values[IMAGE_SHA384_KEY] === undefined) throw new PolicyError('the enclave statement needs PCR0')
  const enclave: PolicyStatement = {
    Sid: 'EnclaveSealAndUnseal',
    Effect: 'Allow',
    Principal: { AWS: options.enclaveRoleArn },
    Action: [...ENCLAVE_ACTIONS],
    Resource: '*',
    Condition: { StringEqualsIgnoreCase: values },
  }
  if (options.adminArn === undefined) return { Version: POLICY_VERSION, Statement: [enclave] }
  const admin: PolicyStatement = {
    Sid: 'AdminWithoutDecrypt',
    Effect: 'Allow',
    Principal: { AWS: options.adminArn },
    NotAction: [...ADMIN_EXCLUDED_ACTIONS],
    Resource: '*',
  }
  return { Version: POLICY_VERSION, Statement: [admin, enclave] }
}
