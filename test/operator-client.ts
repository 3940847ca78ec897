// A Nostr client for tests of the service's commands, speaking each transport the way the
// CLI does (src/commands/dm.ts, attest.ts): NIP-17 gift wraps, NIP-04 DMs and NIP-44
// JSON-RPC, with control over created_at and the raw request events (to replay them).
import * as kinds from 'nostr-tools/kinds'
import { createHmac, randomBytes } from 'node:crypto'
import { finalizeEvent, generateSecretKey, getEventHash } from 'nostr-tools/pure'
import * as nip44 from 'nostr-tools/nip44'
import { parseRpcResponse, RPC_KIND, type RpcResponse } from '../nec01/rpc.js'
import type { NostrEvent } from '../nec01/types.js'
import { GIFT_WRAP_WINDOW_SEC } from '../nec01/windows.js'
import { openSession, type ClientSession } from '../src/cli/client.js'
import { identityFromSecret, type Identity, type Rumor } from '../src/service/identity.js'

/** Far longer than any reply takes on loopback: a missing reply fails the test, not a clock. */
const REPLY_TIMEOUT_MS = 20_000

export interface Nip17Exchange {
  reply: string
  replyRumor: Rumor
  wrap: NostrEvent
  rumor: Rumor
}

export interface RpcExchange {
  response: RpcResponse
  request: NostrEvent
}

export interface TestClient {
  identity: Identity
  session: ClientSession
  /** gift-wraps `text` (rumor created_at = createdAt, default now) and waits for the reply */
  nip17(text: string, opts?: { createdAt?: number }): Promise<Nip17Exchange>
  /** a new gift wrap around an earlier rumor: the same request id, a different event */
  rewrap(rumor: Rumor): NostrEvent
  /**
   * NIP-59 by hand, impersonating `author`: the rumor claims to be from `author`; the seal is
   * signed with this client's key and carries either this client's pubkey ('own') or
   * `author`'s ('claimed', so its signature cannot check out). The wrap itself is valid, so
   * relays take it. Not sent.
   */
  forgedNip17(text: string, author: string, seal: 'own' | 'claimed'): NostrEvent
  nip04(text: string): Promise<string>
  /** an RPC request event, signed with `createdAt` (default now), not sent */
  rpcRequest(method: string, params: unknown, opts?: { createdAt?: number }): { event: NostrEvent; id: string }
  rpc(method: string, params: unknown, opts?: { createdAt?: number }): Promise<RpcExchange>
  /** sends a request made by rpcRequest and waits for its reply */
  exchange(request: { event: NostrEvent; id: string }): Promise<RpcExchange>
  /** publishes an event and waits for the relays' OK, no reply expected */
  send(event: NostrEvent): Promise<void>
  close(): Promise<void>
}

const nowSec = (): number => Math.floor(Date.now() / 1000)

/**
 * The operator's own check of a published commitment: HMAC-SHA256 keyed with the salt the
 * service told them, over the value they sent. Computed here with node:crypto, apart from
 * the service's code, so a wrong scheme there cannot agree with itself.
 */
export function commitmentOf(value: string, saltHex: string): string {
  return createHmac('sha256', Buffer.from(saltHex, 'hex')).update(value, 'utf8').digest('hex')
}

/** The commitment and salt of a change reply sent as DM text. */
export function committedInText(reply: string): { commitment: string; salt: string } | null {
  const commitment = /commitment ([0-9a-f]{64})/.exec(reply)?.[1]
  const salt = /\nsalt ([0-9a-f]{64})/.exec(reply)?.[1]
  return commitment === undefined || salt === undefined ? null : { commitment, salt }
}

export function createTestClient(service: string, relays: string[], secret: Uint8Array = generateSecretKey()): TestClient {
  const identity = identityFromSecret(secret)
  const session = openSession(
    identity,
    relays.map((url) => ({ url, read: true, write: true })),
  )

  const sentRumors = new Set<string>()

  async function send(event: NostrEvent): Promise<void> {
    const results = await session.pool.publish(event)
    if (!results.some((r) => r.ok || /duplicate/.test(r.message))) throw new Error(`no relay took ${event.id}: ${results.map((r) => r.message).join('; ')}`)
  }

  function rpcRequest(method: string, params: unknown, opts: { createdAt?: number } = {}): { event: NostrEvent; id: string } {
    const id = randomBytes(8).toString('hex')
    const body = JSON.stringify({ id, method, params })
    const event = identity.sign({ kind: RPC_KIND, created_at: opts.createdAt ?? nowSec(), content: identity.nip44Encrypt(service, body), tags: [['p', service]] })
    return { event, id }
  }

  async function exchange({ event, id }: { event: NostrEvent; id: string }): Promise<RpcExchange> {
    const waiting = session.waitFor(
      { kinds: [RPC_KIND], authors: [service], '#p': [identity.pubkey], since: nowSec() - 60 },
      (e) => e.tags.some((t) => t[0] === 'e' && t[1] === event.id),
      REPLY_TIMEOUT_MS,
    )
    await send(event)
    const reply = await waiting
    if (reply === null) throw new Error(`no RPC reply to ${event.id}`)
    const response = parseRpcResponse(identity.nip44Decrypt(service, reply.content))
    if (response === null || response.id !== id) throw new Error(`malformed RPC reply to ${event.id}`)
    return { response, request: event }
  }

  return {
    identity,
    session,
    send,
    rpcRequest,
    async nip17(text, opts = {}) {
      // A rumor's id is a hash of its fields: the same text in the same second is the same
      // request (and is answered once). A person types slower; step to the next second.
      let createdAt = opts.createdAt ?? nowSec()
      if (opts.createdAt === undefined) while (sentRumors.has(`${createdAt}:${text}`)) createdAt++
      sentRumors.add(`${createdAt}:${text}`)
      const { wrap, rumor } = identity.giftWrap({ kind: kinds.PrivateDirectMessage, created_at: createdAt, content: text, tags: [['p', service]] }, service)
      let replyRumor: Rumor | null = null
      const waiting = session.waitFor(
        { kinds: [kinds.GiftWrap], '#p': [identity.pubkey], since: nowSec() - GIFT_WRAP_WINDOW_SEC },
        (e) => {
          const r = identity.unwrap(e)
          if (r.pubkey !== service || !r.tags.some((t) => t[0] === 'e' && t[1] === rumor.id)) return false
          replyRumor = r
          return true
        },
        REPLY_TIMEOUT_MS,
      )
      await send(wrap)
      await waiting
      if (replyRumor === null) throw new Error(`no NIP-17 reply to '${text.slice(0, 40)}'`)
      const got: Rumor = replyRumor
      return { reply: got.content, replyRumor: got, wrap, rumor }
    },
    rewrap(rumor) {
      const { wrap, rumor: again } = identity.giftWrap({ kind: rumor.kind, created_at: rumor.created_at, content: rumor.content, tags: rumor.tags }, service)
      if (again.id !== rumor.id) throw new Error('rewrapping changed the rumor id')
      return wrap
    },
    forgedNip17(text, author, sealKind) {
      const unsigned = { pubkey: author, created_at: nowSec(), kind: kinds.PrivateDirectMessage, tags: [['p', service]], content: text }
      const rumor = { ...unsigned, id: getEventHash(unsigned) }
      const conversation = nip44.v2.utils.getConversationKey(secret, service)
      let seal = finalizeEvent({ kind: 13, created_at: nowSec(), tags: [], content: nip44.v2.encrypt(JSON.stringify(rumor), conversation) }, secret)
      if (sealKind === 'claimed') {
        const claimed = { kind: seal.kind, created_at: seal.created_at, tags: seal.tags, content: seal.content, pubkey: author }
        seal = { ...claimed, id: getEventHash(claimed), sig: seal.sig } as typeof seal
      }
      const oneTime = generateSecretKey()
      return finalizeEvent(
        { kind: kinds.GiftWrap, created_at: nowSec(), tags: [['p', service]], content: nip44.v2.encrypt(JSON.stringify(seal), nip44.v2.utils.getConversationKey(oneTime, service)) },
        oneTime,
      )
    },
    async nip04(text) {
      const request = identity.sign({ kind: kinds.EncryptedDirectMessage, created_at: nowSec(), content: identity.nip04Encrypt(service, text), tags: [['p', service]] })
      const waiting = session.waitFor(
        { kinds: [kinds.EncryptedDirectMessage], authors: [service], '#p': [identity.pubkey], since: nowSec() - 60 },
        (e) => e.tags.some((t) => t[0] === 'e' && t[1] === request.id),
        REPLY_TIMEOUT_MS,
      )
      await send(request)
      const event = await waiting
      if (event === null) throw new Error(`no NIP-04 reply to '${text.slice(0, 40)}'`)
      return identity.nip04Decrypt(service, event.content)
    },
    rpc(method, params, opts = {}) {
      return exchange(rpcRequest(method, params, opts))
    },
    exchange,
    close: () => session.close(),
  }
}
