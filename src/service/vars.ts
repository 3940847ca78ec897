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
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { CodedError } from '../../nec01/errors.js'

export const VAR_NAME_PATTERN = /^[a-z0-9_]{1,64}$/
/** UTF-8 bytes */
export const MAX_VALUE_BYTES = 16 * 1024
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

/** What anyone may see of a variable: the value only when it is public. */
export interface VarView extends VarFlags {
  name: string
  /** SHA-256 (hex) of the UTF-8 value */
  sha256: string
  value?: string
  /** unix seconds of the last change */
  updated_at: number
}

/** A checked change, not applied yet. Holds no value, so it can be logged or announced. */
export interface VarChange {
  op: VarOp
  name: string
  /** the flags after the change; null for unset */
  flags: VarFlags | null
  /** SHA-256 of the value after the change; null for unset */
  sha256: string | null
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
  /** applies the change; throws if the store changed since the plan */
  apply(at: number): void
}

interface Entry extends VarFlags {
  value: string
  sha256: string
  updatedAt: number
}

export function valueDigest(value: string): string {
  return bytesToHex(sha256(utf8ToBytes(value)))
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

export function createVarsStore(): VarsStore {
  const vars = new Map<string, Entry>()
  // Bumped by every applied change: a plan made before another change is stale.
  let version = 0

  function planned(change: VarChange, effect: (at: number) => void): Planned {
    const planVersion = version
    return {
      change,
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
    const digest = valueDigest(value)
    return planned({ op: 'set', name, flags, sha256: digest }, (at) => {
      vars.set(name, { ...flags, value, sha256: digest, updatedAt: at })
    })
  }

  function planReveal(name: string): Planned {
    const entry = existing(name)
    if (entry.immutable) throw immutableError(name, 'reveal')
    if (!entry.hidden) throw new VarsError('ALREADY_PUBLIC', `'${name}' is already public`)
    return planned({ op: 'reveal', name, flags: { hidden: false, immutable: entry.immutable }, sha256: entry.sha256 }, (at) => {
      vars.set(name, { ...entry, hidden: false, updatedAt: at })
    })
  }

  function planFreeze(name: string): Planned {
    const entry = existing(name)
    if (entry.immutable) throw new VarsError('ALREADY_IMMUTABLE', `'${name}' is already immutable: immutable is for ever`)
    return planned({ op: 'freeze', name, flags: { hidden: entry.hidden, immutable: true }, sha256: entry.sha256 }, (at) => {
      vars.set(name, { ...entry, immutable: true, updatedAt: at })
    })
  }

  function planUnset(name: string): Planned {
    const entry = existing(name)
    if (entry.immutable) throw immutableError(name, 'unset')
    return planned({ op: 'unset', name, flags: null, sha256: null }, () => {
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
          sha256: e.sha256,
          ...(e.hidden ? {} : { value: e.value }),
          updated_at: e.updatedAt,
        })),
    // Keep hidden values out of any accidental serialisation or inspection of the store.
    toJSON: () => ({ vars: vars.size }),
    [Symbol.for('nodejs.util.inspect.custom')]: () => `VarsStore(${vars.size} variables)`,
  } as VarsStore
}
