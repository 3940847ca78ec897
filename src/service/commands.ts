// The command set, one for every transport: DMs send text ("attest abc {...}"), programs
// send JSON-RPC methods. A command returns a result object and its text rendering; the
// reply layer picks the one its transport speaks.
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import { verifyAttestation } from '../../nec01/attestation.js'
import { canonicalJson } from '../../nec01/canonical.js'
import { base64ToBytes } from '../../nec01/encoding.js'
import { buildRootEvent } from '../../nec01/event.js'
import type { RpcErrorCode } from '../../nec01/rpc.js'
import type { AttestationInfo, NostrEvent } from '../../nec01/types.js'
import type { Nsm } from '../nsm/types.js'
import type { Identity } from './identity.js'
import type { VarsReader } from './vars.js'
import { CodedError, errorText } from '../../nec01/errors.js'


export class CommandError extends CodedError<RpcErrorCode> {}

export type Transport = 'nip17' | 'nip04' | 'rpc'

export interface CommandRequest {
  transport: Transport
  /** the authenticated sender: the seal signer (NIP-17) or the event author */
  sender: string
  /** the request event's created_at */
  createdAt: number
  /** id of the request (the rumor for NIP-17), for replay protection */
  requestId: string
  method: string
  params: unknown
}

export interface CommandReply {
  result: unknown
  text: string
}

export interface ServiceFacts {
  version: string
  tee: 'nsm' | 'simulated'
  t: 'prod' | 'dev'
  startedAt: number
  /** npub of the operator measured into the image (operator.json), null for none */
  operator?: string | null
  relays: () => string[]
  pcrs: () => Record<string, string>
}

export interface CommandDeps {
  nsm: Nsm
  identity: Identity
  facts: ServiceFacts
  trustRoot?: Uint8Array
  /** a fresh document showed a leaf: lets the root keeper rotate early */
  leafSeen: (attestation: AttestationInfo) => void
  /** the operator's variables: the one way a handler reads configuration and secrets */
  vars: VarsReader
  now?: () => number
}

export type CommandHandler = (req: CommandRequest, deps: CommandDeps) => Promise<CommandReply>

interface CommandSpec {
  summary: string
  example: string
  handler: CommandHandler
  /** costs an NSM attestation or the like: draws on the service's expensive budget (limits.ts) */
  expensive?: boolean
}

/** The largest nonce the NSM accepts (bytes), as in the NSM API. */
const MAX_NONCE = 1024

/** base64 bytes, or null when the text is not valid padded base64 */
function strictBase64(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) return null
  try {
    return base64ToBytes(text)
  } catch {
    // e.g. "ab==": the right alphabet and length, but non-zero padding bits
    return null
  }
}

/** nonce text: hex, else base64, else its UTF-8 bytes. */
export function parseNonce(text: string): Uint8Array {
  let bytes: Uint8Array
  if (/^(?:[0-9a-fA-F]{2})+$/.test(text)) bytes = hexToBytes(text.toLowerCase())
  else bytes = strictBase64(text) ?? utf8ToBytes(text)
  if (bytes.length === 0) throw new CommandError('INVALID_REQUEST', 'nonce is empty')
  if (bytes.length > MAX_NONCE) throw new CommandError('INVALID_REQUEST', `nonce is ${bytes.length} bytes, at most ${MAX_NONCE}`)
  return bytes
}

/** Splits DM text "attest [nonce] [custom JSON]" into nonce and custom data. */
function parseAttestText(rest: string): { nonce?: string; data?: unknown } {
  const text = rest.trim()
  if (text === '') return {}
  let nonce: string | undefined
  let json = text
  if (!text.startsWith('{') && !text.startsWith('[')) {
    const space = text.search(/\s/)
    nonce = space < 0 ? text : text.slice(0, space)
    json = space < 0 ? '' : text.slice(space).trim()
  }
  if (json === '') return nonce === undefined ? {} : { nonce }
  try {
    return { ...(nonce === undefined ? {} : { nonce }), data: JSON.parse(json) as unknown }
  } catch {
    throw new CommandError('INVALID_REQUEST', 'custom data is not valid JSON (usage: attest [nonce] [custom JSON])')
  }
}

const attest: CommandHandler = async (req, deps) => {
  // A caller who sent params in another shape meant something we would silently ignore.
  if (typeof req.params !== 'object' || req.params === null || Array.isArray(req.params)) {
    throw new CommandError('INVALID_REQUEST', 'params must be an object { nonce?, data? }')
  }
  const params = req.params as { nonce?: unknown; data?: unknown }
  if (params.nonce !== undefined && typeof params.nonce !== 'string') throw new CommandError('INVALID_REQUEST', 'nonce must be a string')
  const nonce = params.nonce === undefined ? undefined : parseNonce(params.nonce)
  let customDigest: string | undefined
  let userData: Uint8Array | undefined
  if (params.data !== undefined) {
    let canonical: string
    try {
      canonical = canonicalJson(params.data)
    } catch (err) {
      throw new CommandError('INVALID_REQUEST', `custom data: ${errorText(err)}`)
    }
    userData = sha256(utf8ToBytes(canonical))
    customDigest = bytesToHex(userData)
  }
  const doc = await deps.nsm.attest({
    publicKey: hexToBytes(deps.identity.pubkey),
    ...(nonce === undefined ? {} : { nonce }),
    ...(userData === undefined ? {} : { userData }),
  })
  // Read the leaf's notAfter for the expiration tag (and let the root keeper notice a new leaf).
  const checked = await verifyAttestation(doc, {
    anyPcrs: true,
    publicKey: deps.identity.pubkey,
    ...(deps.trustRoot === undefined ? {} : { root: deps.trustRoot }),
  })
  if (checked.attestation === null) throw new CommandError('INTERNAL', 'the NSM returned a document that does not decode')
  deps.leafSeen(checked.attestation)
  const now = Math.floor((deps.now ?? Date.now)() / 1000)
  const event: NostrEvent = deps.identity.sign(
    buildRootEvent({ attestation: doc, t: deps.facts.t, expiration: checked.attestation.certificate.notAfter, created_at: now }),
  )
  // nonce and custom_digest are what the document binds, so what the reply vouches for. The
  // custom JSON itself is the caller's text: repeated only under `requester`, which says so.
  const result: Record<string, unknown> = { event }
  if (nonce !== undefined) result.nonce = bytesToHex(nonce)
  if (customDigest !== undefined) {
    result.custom_digest = customDigest
    result.requester = { custom: params.data }
  }
  return { result, text: JSON.stringify(result) }
}

const COMMANDS: Record<string, CommandSpec> = {
  ping: {
    summary: 'check the service answers',
    example: 'ping',
    handler: async () => ({ result: 'pong', text: 'pong' }),
  },
  info: {
    summary: 'npub, TEE mode, t, PCRs, version, uptime, relays and operator',
    example: 'info',
    handler: async (_req, deps) => {
      const f = deps.facts
      const uptime = Math.floor(((deps.now ?? Date.now)() - f.startedAt) / 1000)
      const result = {
        npub: deps.identity.npub,
        pubkey: deps.identity.pubkey,
        tee: f.tee,
        t: f.t,
        pcrs: f.pcrs(),
        version: f.version,
        uptime_sec: uptime,
        relays: f.relays(),
        operator: f.operator ?? null,
      }
      const text = [
        `npub: ${result.npub}`,
        `tee: ${result.tee}   t: ${result.t}   version: ${result.version}   uptime: ${uptime}s`,
        ...Object.entries(result.pcrs).map(([i, v]) => `PCR${i}: ${v}`),
        `relays: ${result.relays.join(' ')}`,
        `operator: ${result.operator ?? 'none (operator commands are refused)'}`,
      ].join('\n')
      return { result, text }
    },
  },
  attest: {
    summary: 'a fresh attestation with your nonce (hex, base64 or text) and optional custom JSON in user_data',
    example: 'attest 3f9a0c1d {"order":42}',
    handler: attest,
    expensive: true,
  },
}

/**
 * The command set: the built-ins, `help`, and the extras (operator controls, a deployment's
 * own handlers). An extra may not take a name already in use: a handler that silently
 * replaced `attest` or `set` would change what the service's attestation vouches for.
 * Throws Error naming the clash.
 */
export function commandSet(...extras: Array<Record<string, CommandSpec>>): Record<string, CommandSpec> {
  const set: Record<string, CommandSpec> = {}
  for (const group of [COMMANDS, ...extras]) {
    for (const [name, spec] of Object.entries(group)) {
      if (name === 'help' || Object.hasOwn(set, name)) throw new Error(`command '${name}' is defined twice`)
      set[name] = spec
    }
  }
  return set
}

/** `help` lists every command the service runs, the extra ones (operator controls) included. */
function helpList(commands: Record<string, CommandSpec>): Array<{ command: string; summary: string; example: string }> {
  const entries = Object.entries(commands).map(([command, c]) => ({ command, summary: c.summary, example: c.example }))
  return [...entries, { command: 'help', summary: 'this list', example: 'help' }]
}

export function helpText(commands: Record<string, CommandSpec> = COMMANDS): string {
  return [
    'Commands (replies carry a tee_root attestation; verify with `nec01 verify`):',
    ...helpList(commands).map((c) => `• ${c.command} — ${c.summary}\n  e.g. ${c.example}`),
  ].join('\n')
}

/** The command word of DM text (lowercased) and the rest. */
function splitDmText(text: string): { word: string; rest: string } {
  const trimmed = text.trim()
  const space = trimmed.search(/\s/)
  return { word: (space < 0 ? trimmed : trimmed.slice(0, space)).toLowerCase(), rest: space < 0 ? '' : trimmed.slice(space + 1) }
}

/** The method DM text asks for, without parsing its arguments. */
export function dmMethod(text: string): string {
  return splitDmText(text).word
}

/** DM text → method and params. */
export function parseDmText(text: string): { method: string; params: unknown } {
  const { word, rest } = splitDmText(text)
  if (word === 'attest') return { method: 'attest', params: parseAttestText(rest) }
  return { method: word, params: rest === '' ? {} : { text: rest } }
}

/**
 * Runs one request against `commands` (commandSet(): the built-ins, plus the extras the
 * service was started with). Unknown methods: NOT_IMPLEMENTED (the DM layer answers with help).
 */
export async function runCommand(req: CommandRequest, deps: CommandDeps, commands: Record<string, CommandSpec> = COMMANDS): Promise<CommandReply> {
  if (req.method === 'help') return { result: helpList(commands), text: helpText(commands) }
  const spec = Object.hasOwn(commands, req.method) ? commands[req.method] : undefined
  // The method is the caller's word: a reply signed under tee_root does not repeat it.
  if (spec === undefined) throw new CommandError('NOT_IMPLEMENTED', 'unknown method: `help` lists the methods')
  return spec.handler(req, deps)
}

export type { CommandSpec }
