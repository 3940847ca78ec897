// The parent instance's role credentials, from the instance metadata service (IMDSv2: a
// session token first, then the role's temporary credentials). The parent passes them to
// the enclave for its KMS calls; they grant nothing there without the attestation the key
// policy demands. Cached until five minutes before they expire.

import { CodedError, errorText } from '../../nec01/errors.js'

export const IMDS_ENDPOINT = 'http://169.254.169.254'
const TOKEN_TTL_SEC = 21_600
const TIMEOUT_MS = 3_000
const REFRESH_BEFORE_MS = 5 * 60_000
const MAX_ANSWER_BYTES = 16 * 1024

/** What the enclave gets: the SDK's credential identity, as JSON (expiration in ISO 8601). */
export interface RoleCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken: string
  expiration: string
}

export class ImdsError extends CodedError<'IMDS_FAILED'> {
  constructor(message: string) {
    super('IMDS_FAILED', message)
  }
}

async function call(url: string, init: RequestInit): Promise<string> {
  let res: Response
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'error' })
  } catch (error) {
    throw new ImdsError(`instance metadata: no answer from ${new URL(url).host} (${errorText(error)})`)
  }
  const text = await res.text()
  if (!res.ok) throw new ImdsError(`instance metadata: ${new URL(url).pathname} answered ${res.status}`)
  if (text.length > MAX_ANSWER_BYTES) throw new ImdsError(`instance metadata: ${new URL(url).pathname} answered more than ${MAX_ANSWER_BYTES} bytes`)
  return text
}

function parseCredentials(text: string): RoleCredentials {
  let doc: Record<string, unknown>
  try {
    doc = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new ImdsError('instance metadata: the role credentials are not JSON')
  }
  const { Code, AccessKeyId, SecretAccessKey, Token, Expiration } = doc
  if (Code !== 'Success') throw new ImdsError(`instance metadata: the role credentials are not available (${String(Code)})`)
  if (typeof AccessKeyId !== 'string' || typeof SecretAccessKey !== 'string' || typeof Token !== 'string' || typeof Expiration !== 'string' || Number.isNaN(Date.parse(Expiration))) {
    throw new ImdsError('instance metadata: the role credentials are incomplete')
  }
  return { accessKeyId: AccessKeyId, secretAccessKey: SecretAccessKey, sessionToken: Token, expiration: Expiration }
}

/** Fetches the instance role's credentials once. Throws ImdsError (one line, never a secret). */
export async function fetchRoleCredentials(endpoint = IMDS_ENDPOINT): Promise<RoleCredentials> {
  const base = endpoint.replace(/\/+$/, '')
  const token = await call(`${base}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SEC) } })
  const headers = { 'x-aws-ec2-metadata-token': token }
  const roles = await call(`${base}/latest/meta-data/iam/security-credentials/`, { headers })
  const role = roles.split('\n')[0]?.trim() ?? ''
  if (!/^[\w+=,.@-]{1,128}$/.test(role)) throw new ImdsError('instance metadata: the instance has no IAM role (attach one: docs/identity.md)')
  return parseCredentials(await call(`${base}/latest/meta-data/iam/security-credentials/${role}`, { headers }))
}

/** Credentials cached until shortly before they expire. */
export function roleCredentialsSource(endpoint = IMDS_ENDPOINT, now: () => number = Date.now): () => Promise<RoleCredentials> {
  let cached: RoleCredentials | null = null
  return async () => {
    if (cached === null || Date.parse(cached.expiration) - REFRESH_BEFORE_MS <= now()) cached = await fetchRoleCredentials(endpoint)
    return cached
  }
}
