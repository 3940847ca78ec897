// serve's NEC flags: the repository the announcement names, where the builder, launcher and
// release signatures come from, and (dev) the simulated PCR4 and PCR8 they must match.
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { FileReadError, packageFile, readBoundedFile } from '../files.js'
import { MAX_SIGNATURES_BYTES, parseSignatureList, SignatureListError } from '../parent/signatures.js'
import { fileSignatures, parentSignatures, type SignatureSource } from '../service/signatures.js'
import { CliError } from './exit.js'

/** A repository URL is short; longer is a mistake. */
const MAX_REPO_LENGTH = 2048
/** A builder certificate is well under 2 KiB. */
const MAX_CERT_BYTES = 64 * 1024

export interface ServeNecValues {
  repo?: string
  'parent-signatures'?: boolean
  signatures?: string
  'sim-instance-id'?: string
  'sim-builder-cert'?: string
}

export interface ServeNecOptions {
  repo: string | null
  source?: SignatureSource
  /** openNsm options for the simulator's PCR4 and PCR8 */
  simulator: { instanceId?: string; signingCertificate?: Uint8Array }
}

/** package.json's `repository` (a string or { url }), without npm's "git+" prefix; null when absent. */
export function packageRepository(path = packageFile('package.json')): string | null {
  try {
    const pkg = JSON.parse(readFileSync(path, 'utf8')) as { repository?: unknown }
    const r = pkg.repository
    const url = typeof r === 'string' ? r : typeof r === 'object' && r !== null ? (r as { url?: unknown }).url : undefined
    return typeof url === 'string' && url !== '' ? url.replace(/^git\+/, '') : null
  } catch {
    return null
  }
}

function repoOption(value: string | undefined): string | null {
  if (value === undefined) return packageRepository()
  let ok = value.length <= MAX_REPO_LENGTH
  try {
    new URL(value)
  } catch {
    ok = false
  }
  if (!ok) throw new CliError(`--repo: expected a repository URL like https://github.com/owner/name, got '${value.slice(0, 80)}'`)
  return value
}

/** The certificate's DER, from PEM or DER: what nitro-cli hashes into PCR8. */
function certificateDer(path: string): Uint8Array {
  let bytes: Buffer
  try {
    bytes = readBoundedFile(path, MAX_CERT_BYTES)
  } catch (err) {
    if (err instanceof FileReadError) throw new CliError(`--sim-builder-cert: ${err.message}`)
    throw err
  }
  try {
    return new Uint8Array(new X509Certificate(bytes).raw)
  } catch {
    throw new CliError(`--sim-builder-cert: ${path} is not an X.509 certificate (PEM or DER)`)
  }
}

/** A wrong path or a malformed file is a usage error at start, not a warning in the log later. */
function checkSignatureFile(path: string): void {
  try {
    parseSignatureList(readBoundedFile(path, MAX_SIGNATURES_BYTES).toString('utf8'), path)
  } catch (err) {
    if (err instanceof FileReadError || err instanceof SignatureListError) throw new CliError(`--signatures: ${err.message}`)
    throw err
  }
}

/** Checks serve's NEC flags (dev-only ones are checked by serve); throws CliError. */
export function serveNecOptions(values: ServeNecValues, proxy: string | undefined): ServeNecOptions {
  if (values['parent-signatures'] === true && values.signatures !== undefined) throw new CliError('give --parent-signatures or --signatures FILE, not both')
  if (values['parent-signatures'] === true && proxy === undefined) throw new CliError('--parent-signatures needs --proxy (the parent instance serves them on its proxy port)')
  if (values.signatures !== undefined) checkSignatureFile(values.signatures)
  const source = values.signatures !== undefined ? fileSignatures(values.signatures) : values['parent-signatures'] === true ? parentSignatures(proxy ?? '') : undefined
  const simulator: ServeNecOptions['simulator'] = {}
  const instanceId = values['sim-instance-id']
  if (instanceId !== undefined) {
    if (!/^i-[0-9a-f]{8,17}$/.test(instanceId)) throw new CliError(`--sim-instance-id: expected an EC2 instance id like i-0123456789abcdef0, got '${instanceId.slice(0, 40)}'`)
    simulator.instanceId = instanceId
  }
  if (values['sim-builder-cert'] !== undefined) simulator.signingCertificate = certificateDer(values['sim-builder-cert'])
  return { repo: repoOption(values.repo), ...(source === undefined ? {} : { source }), simulator }
}
