// The stand-in's keys: <stateDir>/kms-standin/keys.json, mode 0600 in a 0700 directory, each
// key with its 32-byte master secret and its policy document. Written whole and renamed into
// place. A damaged file stops the stand-in with a one-line message and is left alone: minting
// fresh keys would orphan every blob sealed under the old ones, the very thing this is for.
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { writeTempFile } from '../files.js'
import { parseKeyPolicy, PolicyError, type KeyPolicy } from './policy.js'
import { CodedError } from '../../nec01/errors.js'

export const STANDIN_STATE_SUBDIR = 'kms-standin'
const KEYS_FILE = 'keys.json'
const KEYS_FORMAT = 'nec01/kms-standin/keys/v1'
const SECRET_BYTES = 32

export interface StoredKey {
  keyId: string
  arn: string
  /** unix seconds */
  createdAt: number
  description: string
  /** base64 of the 32-byte master secret */
  secret: string
  /** the key policy document as set (JSON text) */
  policy: string
}

interface KeysFile {
  format: typeof KEYS_FORMAT
  keys: StoredKey[]
}

/** The stand-in's state cannot be read or written; the message names the file. */
export type StandinStateErrorCode = 'STATE_DAMAGED' | 'STATE_UNREADABLE' | 'STATE_UNWRITABLE' | 'NO_SUCH_KEY'

export class StandinStateError extends CodedError<StandinStateErrorCode> {}

export function standinDir(stateDir: string): string {
  return join(stateDir, STANDIN_STATE_SUBDIR)
}

function damaged(path: string, problem: string): StandinStateError {
  return new StandinStateError('STATE_DAMAGED', `${path}: ${problem}; remove the file to start with no keys (every blob sealed under them is then lost)`)
}

function checkKey(value: unknown, path: string): StoredKey {
  const k = value as Partial<StoredKey> | null
  const ok =
    typeof k === 'object' &&
    k !== null &&
    typeof k.keyId === 'string' &&
    typeof k.arn === 'string' &&
    typeof k.createdAt === 'number' &&
    typeof k.description === 'string' &&
    typeof k.secret === 'string' &&
    Buffer.from(k.secret, 'base64').length === SECRET_BYTES &&
    typeof k.policy === 'string'
  if (!ok) throw damaged(path, 'a key entry is incomplete')
  try {
    parseKeyPolicy(k.policy!)
  } catch (error) {
    throw damaged(path, `key ${k.keyId!}: ${error instanceof PolicyError ? error.message : 'bad policy'}`)
  }
  return k as StoredKey
}

function readKeys(path: string): StoredKey[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new StandinStateError('STATE_UNREADABLE', `${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  let doc: Partial<KeysFile>
  try {
    doc = JSON.parse(text) as Partial<KeysFile>
  } catch {
    throw damaged(path, 'not JSON')
  }
  if (doc.format !== KEYS_FORMAT || !Array.isArray(doc.keys)) throw damaged(path, `not a ${KEYS_FORMAT} file`)
  return doc.keys.map((k) => checkKey(k, path))
}

/** The policy as stored, checked first: a policy the stand-in cannot evaluate is never stored. */
function policyText(policy: KeyPolicy): string {
  const text = JSON.stringify(policy)
  parseKeyPolicy(text)
  return text
}

export interface KeyStoreOptions {
  stateDir: string
  region: string
  accountId: string
}

export interface NewKey {
  /** a lowercase UUID; a fresh one when absent */
  keyId?: string
  policy: KeyPolicy
  description?: string
}

export interface KeyStore {
  readonly path: string
  /** by key id or key ARN */
  find(keyIdOrArn: string): StoredKey | undefined
  arnOf(keyId: string): string
  create(key: NewKey): StoredKey
  putPolicy(keyId: string, policy: KeyPolicy): void
}

/** Opens (or starts) the key file. Throws StandinStateError. */
export function openKeyStore(options: KeyStoreOptions): KeyStore {
  const dir = standinDir(options.stateDir)
  const path = join(dir, KEYS_FILE)
  const keys = readKeys(path)
  const arnOf = (keyId: string): string => `arn:aws:kms:${options.region}:${options.accountId}:key/${keyId}`
  const save = (): void => {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
      const record: KeysFile = { format: KEYS_FORMAT, keys }
      renameSync(writeTempFile(path, `${JSON.stringify(record, null, 2)}\n`, 0o600), path)
    } catch (error) {
      throw new StandinStateError('STATE_UNWRITABLE', `${path}: cannot write (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  return {
    path,
    find: (id) => keys.find((k) => k.keyId === id || k.arn === id),
    arnOf,
    create: ({ keyId = randomUUID(), policy, description = '' }) => {
      const text = policyText(policy)
      const key: StoredKey = {
        keyId,
        arn: arnOf(keyId),
        createdAt: Math.floor(Date.now() / 1000),
        description,
        secret: randomBytes(SECRET_BYTES).toString('base64'),
        policy: text,
      }
      keys.push(key)
      save()
      return key
    },
    putPolicy: (keyId, policy) => {
      const key = keys.find((k) => k.keyId === keyId)
      if (key === undefined) throw new StandinStateError('NO_SUCH_KEY', `no key ${keyId}`)
      key.policy = policyText(policy)
      save()
    },
  }
}
