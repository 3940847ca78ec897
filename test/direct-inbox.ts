// A real inbox, with a real identity, fed events directly: for what no relay delivers, and
// for the inbox's own limits, where a relay would only add time. Replies are recorded, not sent.
import assert from 'node:assert/strict'
import { generateSecretKey } from 'nostr-tools/pure'
import type { NostrEvent } from '../nec01/types.js'
import { CommandError, type CommandReply, type CommandRequest } from '../src/service/commands.js'
import { identityFromSecret, type Identity } from '../src/service/identity.js'
import { startInbox, type InboxOptions, type InboxSource } from '../src/service/inbox.js'
import type { Replier, ReplyTarget } from '../src/service/reply.js'
import { quietLogger } from './service-harness.js'
import { now } from './talk.js'

export interface Recorded {
  kind: 'text' | 'rpc'
  target: ReplyTarget
  body: unknown
}

export interface DirectInbox {
  identity: Identity
  replies: Recorded[]
  counters: Record<string, number>
  /** kind 10050 lookups the inbox made */
  lookups: number
  /** as off the wire: a fresh object, no signature verdict cached on it */
  deliver(event: NostrEvent, relay?: string): void
  close(): void
}

/** `ping` answers pong, `attest` answers "attested"; anything else is NOT_IMPLEMENTED. */
async function pingOnly(req: CommandRequest): Promise<CommandReply> {
  if (req.method === 'ping') return { result: 'pong', text: 'pong' }
  if (req.method === 'attest') return { result: 'attested', text: 'attested' }
  throw new CommandError('NOT_IMPLEMENTED', 'unknown method')
}

export function directInbox(extra: Partial<Omit<InboxOptions, 'identity' | 'source' | 'replier' | 'log' | 'counters'>> = {}): DirectInbox {
  const identity = identityFromSecret(generateSecretKey())
  let onevent: ((event: NostrEvent, relay: string) => void) | null = null
  const state = { lookups: 0 }
  const source: InboxSource = {
    subscribe: (_filters, cb) => {
      onevent = cb
      return { close: () => (onevent = null) }
    },
    fetchLatest: async () => {
      state.lookups++
      return null
    },
  }
  const replies: Recorded[] = []
  const sent = identity.sign({ kind: 1, created_at: now(), content: '', tags: [] })
  const replier: Replier = {
    text: async (target, body) => {
      replies.push({ kind: 'text', target, body })
      return { event: sent, results: [] }
    },
    rpc: async (target, body) => {
      replies.push({ kind: 'rpc', target, body })
      return { event: sent, results: [] }
    },
  }
  const counters: Record<string, number> = {}
  const inbox = startInbox({ identity, source, replier, run: pingOnly, log: quietLogger, counters, ...extra })
  return {
    identity,
    replies,
    counters,
    get lookups() {
      return state.lookups
    },
    deliver(event, relay = 'ws://127.0.0.1:1') {
      assert.ok(onevent !== null)
      onevent(JSON.parse(JSON.stringify(event)) as NostrEvent, relay)
    },
    close: () => inbox.close(),
  }
}
