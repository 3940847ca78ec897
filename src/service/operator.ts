// Operator controls: the operator (the key in operator.json, measured into the image)
// sets configuration variables and secrets over end-to-end encrypted requests, and every
// change is announced in a public, attested note before it takes effect. Anyone can list
// the variables; nobody, the operator included, can read a hidden value back.
//
// A write passes, in order: transport (not NIP-04) → an operator exists → the sender is
// the operator → the request is recent (±5 minutes) → its id is new → the transition is
// allowed (vars.ts) → the announcement is accepted by a relay → the change is applied.
import * as kinds from 'nostr-tools/kinds'
import type { EventTemplate } from 'nostr-tools/pure'
import type { RpcErrorCode } from '../../nec01/rpc.js'
import type { Logger } from '../log.js'
import { CommandError, type CommandReply, type CommandRequest, type CommandSpec } from './commands.js'
import { createSeenStore, type SeenStore } from './dedup.js'
import { operatorNpub } from './operator-config.js'
import type { Publisher } from './publish.js'
import { checkName, createVarsStore, VarsError, type Planned, type VarChange, type VarFlags, type VarOp, type VarsErrorCode, type VarsReader, type VarsStore, type VarView } from './vars.js'
import { errorText } from '../../nec01/errors.js'

/** A write older (or further ahead) than this is refused: a captured request goes stale. */
export const MAX_REQUEST_SKEW_SEC = 5 * 60
/** Ids are kept for longer than any request stays acceptable, so none can come back. */
const REPLAY_TTL_SEC = 3 * MAX_REQUEST_SKEW_SEC
/** Public values longer than this are cut in the `vars` list; `vars NAME` shows one whole. */
export const LIST_VALUE_CHARS = 128
export const OPERATOR_TOPIC = 'nec01-operator'

export type OperatorRefusal =
  | 'NIP04_REFUSED'
  | 'NO_OPERATOR'
  | 'NOT_OPERATOR'
  | 'STALE'
  | 'FUTURE'
  | 'REPLAYED'
  | 'ANNOUNCE_FAILED'
  | 'UNKNOWN_PARAM'
  | 'FLAG_AMBIGUOUS'

export interface OperatorOptions {
  /** hex pubkey of the operator, or null: then every write is refused */
  operator: string | null
  publisher: Pick<Publisher, 'publish'>
  log: Logger
  store?: VarsStore
  now?: () => number
}

export interface OperatorControls {
  /** set, reveal, freeze, unset and vars, for ServiceConfig.extraCommands / runCommand */
  commands: Record<string, CommandSpec>
  /** what handlers read the variables through */
  vars: VarsReader
  operator: string | null
  /** runs one of `commands` (they need no CommandDeps); NOT_IMPLEMENTED for any other method */
  run(req: CommandRequest): Promise<CommandReply>
}

/** Operator commands read nothing of CommandDeps, so they run without them too. */
type OperatorHandler = (req: CommandRequest) => Promise<CommandReply>

const RULE_STATUS: Record<VarsErrorCode, RpcErrorCode> = {
  NAME_INVALID: 'INVALID_REQUEST',
  VALUE_INVALID: 'INVALID_REQUEST',
  VALUE_TOO_LARGE: 'INVALID_REQUEST',
  NOT_FOUND: 'INVALID_REQUEST',
  TOO_MANY_VARS: 'RESTRICTED',
  IMMUTABLE: 'RESTRICTED',
  ALREADY_IMMUTABLE: 'RESTRICTED',
  ALREADY_PUBLIC: 'RESTRICTED',
  PUBLIC_TO_HIDDEN: 'RESTRICTED',
  HIDDEN_NEEDS_REVEAL: 'RESTRICTED',
}

/** The stable rule code leads the message, so DM users and programs both see it. */
function refusal(status: RpcErrorCode, rule: OperatorRefusal | VarsErrorCode, message: string): CommandError {
  return new CommandError(status, `${rule}: ${message}`)
}

function flagWords(flags: VarFlags): string {
  return `${flags.hidden ? 'hidden' : 'public'}, ${flags.immutable ? 'immutable' : 'mutable'}`
}

const PAST: Record<VarOp, string> = { set: 'set', reveal: 'revealed', freeze: 'froze', unset: 'unset' }

/**
 * The public record of one change: name, flags and the salted commitment to the value,
 * never the value, and the salt only once the value is public (a public set, a reveal),
 * so anyone can then check the commitment. Public values are left out too: `vars` shows
 * them, the commitment pins them, and a note signed with tee_root should not carry
 * arbitrary operator text that reads as the enclave's.
 */
export function changeNote(change: VarChange, operator: string): EventTemplate {
  const tags: string[][] = [
    ['t', OPERATOR_TOPIC],
    ['p', operator],
    ['var', change.name],
    ['op', change.op],
  ]
  let content = `operator ${PAST[change.op]} ${change.name}`
  if (change.flags !== null && change.commitment !== null) {
    tags.push(['flags', change.flags.hidden ? 'hidden' : 'public', change.flags.immutable ? 'immutable' : 'mutable'], ['commitment', change.commitment])
    if (change.salt !== null) tags.push(['salt', change.salt])
    content += ` (${flagWords(change.flags)}), value commitment ${change.commitment}`
  }
  return { kind: kinds.ShortTextNote, created_at: 0, content, tags }
}

function paramsObject(params: unknown): Record<string, unknown> {
  return typeof params === 'object' && params !== null && !Array.isArray(params) ? (params as Record<string, unknown>) : {}
}

function optionalFlag(params: Record<string, unknown>, key: 'hidden' | 'immutable'): boolean {
  const v = params[key]
  if (v === undefined) return false
  if (typeof v !== 'boolean') throw refusal('INVALID_REQUEST', 'VALUE_INVALID', `${key} must be true or false`)
  return v
}

const SET_USAGE = 'usage: set NAME VALUE [hidden] [immutable]'

/** What each write takes over JSON-RPC. */
const RPC_PARAMS: Record<VarOp, readonly string[]> = {
  set: ['name', 'value', 'hidden', 'immutable'],
  reveal: ['name'],
  freeze: ['name'],
  unset: ['name'],
}

/**
 * A misspelt key would be ignored, and `{ hiden: true }` would publish a secret: an unknown
 * parameter of a write is refused (fail closed). Keys are names, never values, so one is shown.
 */
function checkRpcParams(op: VarOp, params: unknown): void {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw refusal('INVALID_REQUEST', 'UNKNOWN_PARAM', `${op} takes an object { ${RPC_PARAMS[op].join(', ')} }`)
  }
  const unknown = Object.keys(params).find((k) => !RPC_PARAMS[op].includes(k))
  if (unknown !== undefined) {
    throw refusal('INVALID_REQUEST', 'UNKNOWN_PARAM', `unknown parameter '${unknown.slice(0, 32)}': ${op} takes ${RPC_PARAMS[op].join(', ')}`)
  }
}

const FLAG_WORDS = ['hidden', 'immutable'] as const

/** Levenshtein distance, stopping early: only "at most 2" matters. */
function withinTwoEdits(a: string, b: string): boolean {
  if (Math.abs(a.length - b.length) > 2) return false
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    if (Math.min(...row) > 2) return false
    prev = row
  }
  return (prev[b.length] ?? 3) <= 2
}

const isFlagWord = (word: string): boolean => (FLAG_WORDS as readonly string[]).includes(word.toLowerCase())
const looksLikeFlag = (word: string): boolean => FLAG_WORDS.some((f) => withinTwoEdits(word.toLowerCase(), f))

/** "NAME VALUE [hidden] [immutable]": trailing flag words, a JSON string value for exact text. */
export function parseSetText(text: string): { name: string; value: string; hidden: boolean; immutable: boolean } {
  const m = /^(\S+)\s+([\s\S]+)$/.exec(text.trim())
  if (m === null) throw refusal('INVALID_REQUEST', 'VALUE_INVALID', `a name and a value are needed (${SET_USAGE})`)
  const name = m[1] ?? ''
  // "set hidden api_key sk-…" would make a public variable 'hidden' holding the key.
  if (isFlagWord(name)) throw refusal('INVALID_REQUEST', 'FLAG_AMBIGUOUS', `flags go after the value (${SET_USAGE}); a variable named '${name.toLowerCase()}' can be set over JSON-RPC`)
  let tail = m[2] ?? ''
  const flags = { hidden: false, immutable: false }
  for (;;) {
    const f = /\s(hidden|immutable)$/i.exec(tail)
    const word = f?.[1]?.toLowerCase() as 'hidden' | 'immutable' | undefined
    if (f === null || word === undefined || flags[word]) break
    flags[word] = true
    tail = tail.slice(0, f.index).trimEnd()
  }
  if (/^(hidden|immutable)$/i.test(tail)) throw refusal('INVALID_REQUEST', 'VALUE_INVALID', `the value is missing (${SET_USAGE}; quote a value that is a flag word: "hidden")`)
  let value = tail
  if (tail.length >= 2 && tail.startsWith('"') && tail.endsWith('"')) {
    try {
      const parsed: unknown = JSON.parse(tail)
      if (typeof parsed === 'string') value = parsed
    } catch {
      throw refusal('INVALID_REQUEST', 'VALUE_INVALID', 'a quoted value must be a JSON string')
    }
    return { name, value, ...flags }
  }
  // A flag in the wrong place or misspelt would leave a secret public, for everyone to read
  // in `vars`. Such a value must be quoted. The messages never repeat the value's words.
  const words = tail.split(/\s+/)
  if (words.length > 1 && isFlagWord(words[0] ?? '')) {
    throw refusal('INVALID_REQUEST', 'FLAG_AMBIGUOUS', `the value starts with a flag word: flags go after the value (${SET_USAGE}); quote the value as a JSON string to keep it as it is`)
  }
  if (words.length > 1 && looksLikeFlag(words[words.length - 1] ?? '')) {
    throw refusal('INVALID_REQUEST', 'FLAG_AMBIGUOUS', `the value ends with what looks like a misspelt flag (hidden, immutable); nothing was set: fix the flag, or quote the value as a JSON string to keep it as it is`)
  }
  return { name, value, ...flags }
}

/** The NAME of "reveal NAME" (DM) or { name } (RPC). */
function nameParam(req: CommandRequest): string {
  const p = paramsObject(req.params)
  const raw = req.transport === 'rpc' ? p.name : typeof p.text === 'string' ? p.text.trim() : undefined
  if (raw === undefined || raw === '') throw refusal('INVALID_REQUEST', 'NAME_INVALID', `a variable name is needed (usage: ${req.method} NAME)`)
  return checkName(raw)
}

function viewText(v: VarView, full: boolean): string {
  const head = `${v.name} (${flagWords(v)}) commitment ${v.commitment}${v.salt === undefined ? '' : ` salt ${v.salt}`}`
  if (v.value === undefined) return head
  const shown = full || v.value.length <= LIST_VALUE_CHARS ? v.value : `${v.value.slice(0, LIST_VALUE_CHARS)}… (${v.value.length} characters; vars ${v.name} shows it all)`
  return `${head}\n  = ${JSON.stringify(shown)}`
}

/** What the handlers share: the options, the variables, the ids seen, the write queue. */
interface OperatorCore {
  opts: OperatorOptions
  store: VarsStore
  now: () => number
  operator: string | null
  npub: string | null
  seen: SeenStore
  /** the tail of the write queue */
  tail: Promise<unknown>
}

function nowSec(o: OperatorCore): number {
  return Math.floor(o.now() / 1000)
}

// Writes run one at a time, so a plan cannot go stale while its note is being published.
function serial<T>(o: OperatorCore, fn: () => Promise<T>): Promise<T> {
  const run = o.tail.then(fn)
  o.tail = run.catch(() => undefined)
  return run
}

function restrictNip04(req: CommandRequest): void {
  if (req.transport === 'nip04') {
    throw refusal('RESTRICTED', 'NIP04_REFUSED', `'${req.method}' is not answered over NIP-04, which shows who talks to whom and when: send it as a NIP-17 DM (or JSON-RPC)`)
  }
}

function authorize(o: OperatorCore, req: CommandRequest): void {
  restrictNip04(req)
  if (o.operator === null) throw refusal('UNAUTHORIZED', 'NO_OPERATOR', 'this image has no operator: nobody can change its variables')
  if (req.sender !== o.operator) throw refusal('UNAUTHORIZED', 'NOT_OPERATOR', `only the operator ${o.npub ?? ''} can ${req.method} variables`)
  const age = nowSec(o) - req.createdAt
  if (age > MAX_REQUEST_SKEW_SEC) throw refusal('UNAUTHORIZED', 'STALE', `the request was made ${age} s ago, more than ${MAX_REQUEST_SKEW_SEC} s: send a new one`)
  if (age < -MAX_REQUEST_SKEW_SEC) throw refusal('UNAUTHORIZED', 'FUTURE', `the request is dated ${-age} s ahead, more than ${MAX_REQUEST_SKEW_SEC} s: check your clock`)
  // Recorded only for the operator's own recent requests: others cannot fill the store.
  if (o.seen.record(req.requestId) !== 'new') throw refusal('UNAUTHORIZED', 'REPLAYED', 'this request was already received: send a new one')
}

function plan(o: OperatorCore, req: CommandRequest, op: VarOp): Planned {
  if (req.transport === 'rpc') checkRpcParams(op, req.params)
  try {
    if (op !== 'set') return o.store.plan(op, { name: nameParam(req) })
    const p = paramsObject(req.params)
    const set =
      req.transport === 'rpc'
        ? { name: p.name, value: p.value, hidden: optionalFlag(p, 'hidden'), immutable: optionalFlag(p, 'immutable') }
        : parseSetText(typeof p.text === 'string' ? p.text : '')
    if (typeof set.name !== 'string') throw refusal('INVALID_REQUEST', 'NAME_INVALID', `a variable name is needed (${SET_USAGE})`)
    if (typeof set.value !== 'string') throw refusal('INVALID_REQUEST', 'VALUE_INVALID', 'the value must be a string')
    return o.store.plan('set', { name: set.name, value: set.value, hidden: set.hidden, immutable: set.immutable })
  } catch (err) {
    if (err instanceof VarsError) throw refusal(RULE_STATUS[err.code], err.code, err.message)
    throw err
  }
}

async function announceAndApply(o: OperatorCore, planned: Planned, op: VarOp): Promise<string> {
  // Announce first: a change the public record does not show must not happen.
  let id: string
  try {
    const { event, results } = await o.opts.publisher.publish(changeNote(planned.change, o.operator ?? ''))
    if (!results.some((r) => r.ok)) throw new Error(results.length === 0 ? 'no relay to publish to' : 'every relay refused the note')
    id = event.id
  } catch (err) {
    o.opts.log.warn('operator change not announced: not applied', { op, name: planned.change.name, error: errorText(err) })
    throw refusal('INTERNAL', 'ANNOUNCE_FAILED', 'the change could not be announced, so nothing changed: try again')
  }
  planned.apply(nowSec(o))
  o.opts.log.info('operator change', { op, name: planned.change.name, flags: planned.change.flags, commitment: planned.change.commitment, note: id })
  return id
}

/** set, reveal, freeze or unset: authorized, then planned, announced and applied in turn. */
function writer(o: OperatorCore, op: VarOp): OperatorHandler {
  return async (req) => {
    authorize(o, req)
    return serial(o, async (): Promise<CommandReply> => {
      const planned = plan(o, req, op)
      const note = await announceAndApply(o, planned, op)
      const c = planned.change
      // The salt goes to the operator alone (this reply is encrypted to them): with it they
      // check HMAC-SHA256(salt, the value they sent) against the public commitment.
      const salt = planned.operatorSalt
      const result = { op, name: c.name, ...(c.flags ?? {}), commitment: c.commitment, ...(salt === null ? {} : { salt }), note }
      const committed = c.flags === null ? '' : ` (${flagWords(c.flags)}), value commitment ${c.commitment ?? ''}\nsalt ${salt ?? ''} (HMAC-SHA256(salt, value) = commitment; keep it as you keep the value)`
      return { result, text: `${PAST[op]} ${c.name}${committed}\nannounced in note ${note}` }
    })
  }
}

/** `vars NAME`'s name, checked. */
function varsName(raw: unknown): string {
  try {
    return checkName(raw)
  } catch (err) {
    if (err instanceof VarsError) throw refusal('INVALID_REQUEST', err.code, err.message)
    throw err
  }
}

/** `vars`: the operator and every variable (long public values cut); `vars NAME`: that one, whole. */
async function listVars(o: OperatorCore, req: CommandRequest): Promise<CommandReply> {
  restrictNip04(req)
  const p = paramsObject(req.params)
  const raw = req.transport === 'rpc' ? p.name : typeof p.text === 'string' ? p.text.trim() : undefined
  if (raw !== undefined && raw !== '') {
    const name = varsName(raw)
    const one = o.store.list().find((v) => v.name === name)
    // anyone may ask: the name is theirs, and a reply under tee_root does not repeat it
    if (one === undefined) throw refusal('INVALID_REQUEST', 'NOT_FOUND', 'no variable by that name')
    return { result: { operator: o.npub, vars: [one] }, text: viewText(one, true) }
  }
  const list = o.store.list()
  const shown = list.map((v) =>
    v.value !== undefined && v.value.length > LIST_VALUE_CHARS ? { ...v, value: v.value.slice(0, LIST_VALUE_CHARS), value_truncated: true } : v,
  )
  const text = [`operator: ${o.npub ?? 'none (no one can change variables)'}`, list.length === 0 ? 'no variables' : `${list.length} variables:`, ...list.map((v) => viewText(v, false))].join('\n')
  return { result: { operator: o.npub, vars: shown }, text }
}

export function createOperatorControls(opts: OperatorOptions): OperatorControls {
  const now = opts.now ?? Date.now
  const o: OperatorCore = {
    opts,
    store: opts.store ?? createVarsStore(),
    now,
    operator: opts.operator,
    npub: operatorNpub(opts.operator),
    seen: createSeenStore({ ttlSec: REPLAY_TTL_SEC, now }),
    tail: Promise.resolve(),
  }
  const commands: Record<string, CommandSpec & { handler: OperatorHandler }> = {
    set: { summary: 'operator: set a variable (hidden: never shown; immutable: never changes)', example: 'set api_key sk-… hidden', handler: writer(o, 'set') },
    reveal: { summary: 'operator: make a hidden variable public, for ever', example: 'reveal api_key', handler: writer(o, 'reveal') },
    freeze: { summary: 'operator: make a variable immutable, for ever', example: 'freeze api_key', handler: writer(o, 'freeze') },
    unset: { summary: 'operator: delete a mutable variable', example: 'unset api_key', handler: writer(o, 'unset') },
    vars: { summary: 'the operator and the variables: names, flags, commitments, public values', example: 'vars', handler: (req) => listVars(o, req) },
  }
  return {
    operator: o.operator,
    vars: { get: (name) => o.store.get(name), has: (name) => o.store.has(name) },
    commands,
    run(req) {
      const spec = Object.hasOwn(commands, req.method) ? commands[req.method] : undefined
      if (spec === undefined) return Promise.reject(new CommandError('NOT_IMPLEMENTED', 'unknown method: `help` lists the methods'))
      return spec.handler(req)
    },
  }
}
