// Validation of client → relay messages for the embedded relay. @nostr-relay/core expects
// pre-validated input (its docs point to a separate validator package we do not ship), and
// malformed input reaching it can throw or reach SQLite, so everything is checked here first.

import type { NostrEvent } from '../../nec01/types.js'

/** An event as a client sends it: checked for shape here, for its signature by the relay. */
export type WireEvent = NostrEvent

export interface WireFilter {
  ids?: string[]
  authors?: string[]
  kinds?: number[]
  since?: number
  until?: number
  limit?: number
  [tag: `#${string}`]: string[] | undefined
}

export type ClientMessage =
  | { type: 'EVENT'; event: WireEvent }
  | { type: 'REQ'; subId: string; filters: WireFilter[] }
  | { type: 'CLOSE'; subId: string }
  | { type: 'AUTH'; event: WireEvent }

/** What to answer with when a message is refused: OK for an event, CLOSED for a REQ. */
export type ClientMessageError =
  | { reply: 'OK'; id: string; message: string }
  | { reply: 'CLOSED'; subId: string; message: string }
  | { reply: 'NOTICE'; message: string }

export const MAX_FILTERS = 10
export const MAX_SUBID_LENGTH = 64
const MAX_FILTER_VALUES = 1000
const HEX64 = /^[0-9a-f]{64}$/
const HEX128 = /^[0-9a-f]{128}$/
const TAG_FILTER = /^#[a-zA-Z]$/

export function parseClientMessage(text: string): ClientMessage | ClientMessageError {
  let msg: unknown
  try {
    msg = JSON.parse(text)
  } catch {
    return notice('invalid: not JSON')
  }
  if (!Array.isArray(msg) || typeof msg[0] !== 'string') return notice('invalid: expected a JSON array starting with the message type')
  const m: unknown[] = msg
  switch (m[0]) {
    case 'EVENT':
    case 'AUTH': {
      const problem = eventProblem(m[1])
      if (problem !== null) {
        const id = idOf(m[1])
        return id === null ? notice(`invalid: ${problem}`) : { reply: 'OK', id, message: `invalid: ${problem}` }
      }
      return { type: m[0], event: m[1] as WireEvent }
    }
    case 'REQ': {
      const subId = m[1]
      if (!validSubId(subId)) return notice(`invalid: subscription id must be a string of 1 to ${MAX_SUBID_LENGTH} characters`)
      const filters = m.slice(2)
      if (filters.length === 0) return { reply: 'CLOSED', subId, message: 'invalid: at least one filter is required' }
      if (filters.length > MAX_FILTERS) return { reply: 'CLOSED', subId, message: `invalid: more than ${MAX_FILTERS} filters` }
      for (const f of filters) {
        const problem = filterProblem(f)
        if (problem !== null) return { reply: 'CLOSED', subId, message: `invalid: ${problem}` }
      }
      return { type: 'REQ', subId, filters: filters as WireFilter[] }
    }
    case 'CLOSE':
      if (!validSubId(m[1])) return notice('invalid: CLOSE needs a subscription id')
      return { type: 'CLOSE', subId: m[1] }
    default:
      return notice(`invalid: unsupported message type ${JSON.stringify(String(m[0]).slice(0, 20))}`)
  }
}

function eventProblem(e: unknown): string | null {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return 'event must be an object'
  const ev = e as Record<string, unknown>
  if (typeof ev.id !== 'string' || !HEX64.test(ev.id)) return 'id must be 64 lowercase hex characters'
  if (typeof ev.pubkey !== 'string' || !HEX64.test(ev.pubkey)) return 'pubkey must be 64 lowercase hex characters'
  if (typeof ev.sig !== 'string' || !HEX128.test(ev.sig)) return 'sig must be 128 lowercase hex characters'
  if (!isUint(ev.kind) || ev.kind > 65535) return 'kind must be an integer from 0 to 65535'
  if (!isUint(ev.created_at)) return 'created_at must be a non-negative integer'
  if (typeof ev.content !== 'string') return 'content must be a string'
  if (!Array.isArray(ev.tags)) return 'tags must be an array'
  for (const tag of ev.tags as unknown[]) {
    if (!Array.isArray(tag) || !tag.every((v) => typeof v === 'string')) return 'each tag must be an array of strings'
  }
  return null
}

function filterProblem(f: unknown): string | null {
  if (typeof f !== 'object' || f === null || Array.isArray(f)) return 'filter must be an object'
  for (const [key, value] of Object.entries(f as Record<string, unknown>)) {
    switch (key) {
      case 'ids':
      case 'authors':
        if (!isList(value, (v) => typeof v === 'string' && HEX64.test(v))) return `${key} must be a list of 64-character lowercase hex strings`
        break
      case 'kinds':
        if (!isList(value, (v) => isUint(v) && v <= 65535)) return 'kinds must be a list of integers from 0 to 65535'
        break
      case 'since':
      case 'until':
      case 'limit':
        if (!isUint(value)) return `${key} must be a non-negative integer`
        break
      default:
        if (!TAG_FILTER.test(key)) return `unsupported filter field ${JSON.stringify(key.slice(0, 20))}`
        if (!isList(value, (v) => typeof v === 'string')) return `${key} must be a list of strings`
    }
  }
  return null
}

function isList(value: unknown, ok: (v: unknown) => boolean): boolean {
  return Array.isArray(value) && value.length <= MAX_FILTER_VALUES && value.every(ok)
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

function validSubId(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= MAX_SUBID_LENGTH
}

function idOf(e: unknown): string | null {
  if (typeof e !== 'object' || e === null) return null
  const id = (e as Record<string, unknown>).id
  return typeof id === 'string' && HEX64.test(id) ? id : null
}

function notice(message: string): ClientMessageError {
  return { reply: 'NOTICE', message }
}
