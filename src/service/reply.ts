// Replies, in the scheme of the request: a kind 4 for NIP-04, a gift-wrapped kind 14
// rumor for NIP-17, an encrypted RPC event for programs. Each carries tee_root (for
// NIP-17 the rumor does, and the seal is signed by the service key).
import * as kinds from 'nostr-tools/kinds'
import { RPC_KIND, type RpcResponse } from '../../nec01/rpc.js'
import type { NostrEvent } from '../../nec01/types.js'
import type { Identity } from './identity.js'
import type { Publisher, RelayResult } from './publish.js'
import type { Transport } from './commands.js'

export interface ReplyTarget {
  transport: Transport
  sender: string
  /** the request's id: the event for NIP-04 and RPC, the rumor for NIP-17 */
  requestId: string
  /** the relays the request arrived from */
  sourceRelays: string[]
  /** the sender's NIP-17 inbox relays (kind 10050), when known */
  inboxRelays?: string[]
}

export interface SentReply {
  /** the signed event handed to relays (for NIP-17: the gift wrap) */
  event: NostrEvent
  results: RelayResult[]
}

export function createReplier(deps: {
  identity: Identity
  publisher: Publisher
  writeRelays: () => string[]
  /** relays the service can publish to (its pool; in an enclave the parent allows no others) */
  reachable: (url: string) => boolean
}) {
  const { identity, publisher } = deps

  function union(a: string[], b: string[]): string[] {
    return [...new Set([...a, ...b])]
  }

  /** A DM reply (NIP-04 or NIP-17) with plain text. */
  async function text(target: ReplyTarget, body: string): Promise<SentReply> {
    const tags = [
      ['p', target.sender],
      ['e', target.requestId],
    ]
    if (target.transport === 'nip04') {
      const { event, results } = await publisher.publish(
        { kind: kinds.EncryptedDirectMessage, created_at: 0, content: identity.nip04Encrypt(target.sender, body), tags },
        { relays: union(deps.writeRelays(), target.sourceRelays) },
      )
      return { event, results }
    }
    // NIP-17: the rumor carries tee_root; the wrap goes to the sender's inbox relays that
    // the service can reach, or back where the request came from when there are none.
    const { template } = publisher.carrier({ kind: kinds.PrivateDirectMessage, created_at: 0, content: body, tags })
    const { wrap } = identity.giftWrap(template, target.sender)
    const inbox = (target.inboxRelays ?? []).filter((url) => deps.reachable(url))
    const relays = inbox.length > 0 ? inbox : target.sourceRelays
    return { event: wrap, results: await publisher.send(wrap, { relays }) }
  }

  /** A JSON-RPC response, NIP-44 encrypted to the caller. */
  async function rpc(target: ReplyTarget, response: RpcResponse): Promise<SentReply> {
    const { event, results } = await publisher.publish(
      {
        kind: RPC_KIND,
        created_at: 0,
        content: identity.nip44Encrypt(target.sender, JSON.stringify(response)),
        tags: [
          ['p', target.sender],
          ['e', target.requestId],
        ],
      },
      { relays: union(deps.writeRelays(), target.sourceRelays) },
    )
    return { event, results }
  }

  return { text, rpc }
}

export type Replier = ReturnType<typeof createReplier>
