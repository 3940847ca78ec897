// The KMS key an enclave seals its identity under, from the "kms" member of operator.json:
//   { "operator": "npub1…", "kms": { "key": "arn:aws:kms:REGION:ACCOUNT:key/ID" } }
// The file is copied into the image, so the key is measured into PCR2 with the code: the
// parent cannot point the enclave at a key of its own (one whose policy lets it decrypt)
// and so read a key sealed on a first boot. `serve --kms-key` overrides it (start.sh passes
// no such flag, so in an enclave it is always the measured one).
import { FileReadError, readBoundedFile } from '../files.js'
import { kmsKeyProblem, regionOfKeyArn } from '../kms/key-id.js'

export interface KmsSettings {
  key: string
  region: string | null
}

const MAX_FILE_BYTES = 64 * 1024

/** The "kms" member of the file's text; null when absent or null. Throws Error with one line. */
export function parseKmsSettings(text: string, name: string): KmsSettings | null {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new Error(`${name} is not valid JSON`)
  }
  const kms = typeof doc === 'object' && doc !== null ? (doc as { kms?: unknown }).kms : undefined
  if (kms === undefined || kms === null) return null
  const { key, region } = (typeof kms === 'object' ? kms : {}) as { key?: unknown; region?: unknown }
  if (typeof key !== 'string') throw new Error(`${name}: "kms" must be { "key": "arn:aws:kms:…" } or null`)
  const problem = kmsKeyProblem(key)
  if (problem !== null) throw new Error(`${name}: kms.key: ${problem}`)
  if (region !== undefined && (typeof region !== 'string' || !/^[a-z0-9-]{1,40}$/.test(region))) throw new Error(`${name}: kms.region must be a region name`)
  return { key, region: typeof region === 'string' ? region : regionOfKeyArn(key) }
}

/** Reads the file; a missing one means no KMS key. */
export function loadKmsSettings(path: string, name: string): KmsSettings | null {
  let text: string
  try {
    text = readBoundedFile(path, MAX_FILE_BYTES).toString('utf8')
  } catch (error) {
    if (error instanceof FileReadError && error.errno === 'ENOENT') return null
    throw error
  }
  return parseKmsSettings(text, name)
}
