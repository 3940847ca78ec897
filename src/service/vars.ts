// The operator's configuration variables and the only transitions they may make. Pure:
// no I/O, no clock, no logging. A change is planned first and applied later, so the
// caller can announce it publicly before it takes effect (operator.ts) and a change that
// could not be announced never happens.
//
// The rules, each refusal with its own stable code:
//   set     a new variable, or a mutable one; the hidden flag may not change by set
//           (public → hidden never; hidden → public only by reveal); `immutable` freezes
//   reveal  hidden → public, once; never on an immutable variable
//   freeze  mutable → immutable; never back
//   unset   a mutable variable only
//
// What is published of a value is a salted commitment, HMAC-SHA256(salt, value): a plain
// hash of a short secret (a PIN) is recovered offline by trying every value. The salt is
// drawn for every value set, kept in the enclave, told to the operator (so they can check
// the commitment against what they sent) and published only when the value is: `reveal`.
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import { CodedError } from '../../nec01/errors.js'

export const VAR_NAME_PATTERN = /^[a-z0-9_]{1,64}$/
/** UTF-8 bytes */
export const MAX_VALUE_BYTES = 16 * 1024
/** one guess costs an HMAC per salt: 256 bits leave nothing to guess */
export const SALT_BYTES = 32
/** bounds memory, and keeps the `vars` list inside one relay message */
export const MAX_VARS = 64

export type VarsErrorCode =
  | 'NAME_INVALID'
  | 'VALUE_INVALID'
  | 'VALUE_TOO_LARGE'
  | 'TOO_MANY_VARS'
  | 'NOT_FOUND'
  | 'IMMUTABLE'
  | 'ALREADY_IMMUTABLE'
  | 'ALREADY_PUBLIC'
  | 'PUBLIC_TO_HIDDEN'
  | 'HIDDEN_NEEDS_REVEAL'

export class VarsError extends CodedError<VarsErrorCode> {}

export type VarOp = 'set' | 'reveal' | 'freeze' | 'unset'

export interface VarFlags {
  hidden: boolean
  immutable: boolean
}

/** What anyone may see of a variable: the value and its salt only when it is public. */
export interface VarView extends VarFlags {
  name: string
  /** HMAC-SHA256(salt, UTF-8 value), hex */
  commitment: string
  /** the salt (hex), when the value is public */
  salt?: string
  value?: string
  /** unix seconds of the last change */
  updated_at: number
}

/** A checked change, not applied yet. Holds no hidden value or salt, so it can be logged or announced. */
export interface VarChange {
  op: VarOp
  name: string
  /** the flags after the change; null for unset */
  flags: VarFlags | null
  /** the commitment to the value after the change; null for unset */
  commitment: string | null
  /** its salt when the value is public after the change (a public set, a reveal), else null */
  salt: string | null
}

/** The one interface handlers use to read the operator's variables, hidden ones included. */
export interface VarsReader {
  get(name: string): string | undefined
  has(name: string): boolean
}

export interface SetRequest {
  name: string
  value: string
  hidden: boolean
  immutable: boolean
}

export interface VarsStore extends VarsReader {
  plan(op: 'set', request: SetRequest): Planned
  plan(op: Exclude<VarOp, 'set'>, request: { name: string }): Planned
  /** every variable, sorted by name, hidden values left out */
  list(): VarView[]
}

export interface Planned {
  change: VarChange
  /** the salt of the value after the change, public or not: for the operator's reply only */
  operatorSalt: string | null
  /** applies the change; throws if the store changed since the plan */
  apply(at: number): void
}

interface Entry extends VarFlags {
  value: string
  salt: string
  commitment: string
  updatedAt: number
}

/** HMAC-SHA256 keyed with the salt (hex) over the UTF-8 value, hex. */
export function valueCommitment(value: string, salt: string): string {
  return bytesToHex(hmac(sha256, hexToBytes(salt), utf8ToBytes(value)))
}

export function checkName(name: unknown): string {
  if (typeof name !== 'string' || !VAR_NAME_PATTERN.test(name)) {
    throw new VarsError('NAME_INVALID', 'a variable name is 1 to 64 characters of a-z, 0-9 and _')
  }
  return name
}

function checkValue(value: unknown): string {
  if (typeof value !== 'string') throw new VarsError('VALUE_INVALID', 'the value must be a string')
  const bytes = utf8ToBytes(value).length
  // the size only: the refused value may be a secret
  if (bytes > MAX_VALUE_BYTES) throw new VarsError('VALUE_TOO_LARGE', `the value is ${bytes} bytes of UTF-8, at most ${MAX_VALUE_BYTES}`)
  return value
}

function immutableError(name: string, op: VarOp): VarsError {
  return new VarsError('IMMUTABLE', `'${name}' is immutable: an immutable variable can never be set, revealed or unset (refused: ${op})`)
}

/** `random`: the source of salts (default: the platform's CSPRNG). */
export function createVarsStore(opts: { random?: (n: number) => Uint8Array } = {}): VarsStore {
  const random = opts.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)))
  const vars = new Map<string, Entry>()
  // Bumped by every applied change: a plan made before another change is stale.
  let version = 0

  function planned(change: VarChange, operatorSalt: string | null, effect: (at: number) => void): Planned {
    const planVersion = version
    return {
      change,
      operatorSalt,
      apply(at) {
        if (version !== planVersion) throw new Error('the variables changed since this change was planned')
        effect(at)
        version++
      },
    }
  }

  function existing(name: string): Entry {
    const entry = vars.get(name)
    if (entry === undefined) throw new VarsError('NOT_FOUND', `no variable '${name}'`)
    return entry
  }

  function planSet(request: SetRequest): Planned {
    const name = checkName(request.name)
    const value = checkValue(request.value)
    const old = vars.get(name)
    if (old === undefined && vars.size >= MAX_VARS) throw new VarsError('TOO_MANY_VARS', `at most ${MAX_VARS} variables`)
    if (old !== undefined) {
      if (old.immutable) throw immutableError(name, 'set')
      if (!old.hidden && request.hidden) {
        throw new VarsError('PUBLIC_TO_HIDDEN', `'${name}' is public: a public variable can never become hidden (its value has been visible); unset it first`)
      }
      if (old.hidden && !request.hidden) {
        throw new VarsError('HIDDEN_NEEDS_REVEAL', `'${name}' is hidden: a hidden variable becomes public only through reveal; set it with 'hidden', reveal it, or unset it first`)
      }
    }
    const flags: VarFlags = { hidden: request.hidden, immutable: request.immutable }
    // A new salt for every value: one value set twice is two unlinkable commitments.
    const salt = bytesToHex(random(SALT_BYTES))
    const commitment = valueCommitment(value, salt)
    return planned({ op: 'set', name, flags, commitment, salt: flags.hidden ? null : salt }, salt, (at) => {
      vars.set(name, { ...flags, value, salt, commitment, updatedAt: at })
    })
  }

  function planReveal(name: string): Planned {
    const entry = existing(name)
    if (entry.immutable) throw immutableError(name, 'reveal')
    if (!entry.hidden) throw new VarsError('ALREADY_PUBLIC', `'${name}' is already public`)
    return planned({ op: 'reveal', name, flags: { hidden: false, immutable: entry.immutable }, commitment: entry.commitment, salt: entry.salt }, entry.salt, (at) => {
      vars.set(name, { ...entry, hidden: false, updatedAt: at })
    })
  }

  function planFreeze(name: string): Planned {
    const entry = existing(name)
    if (entry.immutable) throw new VarsError('ALREADY_IMMUTABLE', `'${name}' is already immutable: immutable is for ever`)
    const change = { op: 'freeze' as const, name, flags: { hidden: entry.hidden, immutable: true }, commitment: entry.commitment, salt: entry.hidden ? null : entry.salt }
    return planned(change, entry.salt, (at) => {
      vars.set(name, { ...entry, immutable: true, updatedAt: at })
    })
  }

  function planUnset(name: string): Planned {
    const entry = existing(name)
    if (entry.immutable) throw immutableError(name, 'unset')
    return planned({ op: 'unset', name, flags: null, commitment: null, salt: null }, null, () => {
      vars.delete(name)
    })
  }

  function plan(op: VarOp, request: SetRequest | { name: string }): Planned {
    if (op === 'set') return planSet(request as SetRequest)
    const name = checkName(request.name)
    if (op === 'reveal') return planReveal(name)
    if (op === 'freeze') return planFreeze(name)
    return planUnset(name)
  }

  return {
    plan: plan as VarsStore['plan'],
    get: (name) => vars.get(name)?.value,
    has: (name) => vars.has(name),
    list: () =>
      [...vars.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([name, e]) => ({
          name,
          hidden: e.hidden,
          immutable: e.immutable,
          commitment: e.commitment,
          ...(e.hidden ? {} : { salt: e.salt, value: e.value }),
          updated_at: e.updatedAt,
        })),
    // Keep hidden values out of any accidental serialisation or inspection of the store.
    toJSON: () => ({ vars: vars.size }),
    [Symbol.for('nodejs.util.inspect.custom')]: () => `VarsStore(${vars.size} variables)`,
  } as VarsStore
}
