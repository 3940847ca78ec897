// The dev relay and a lazy client (issue 17.6): nostr-tools' SimplePool subscribes to its
// DMs without authenticating first. The relay closes that REQ `auth-required:` (NIP-42), the
// pool authenticates with its `onauth` signer and subscribes again, and the replies of the
// real service to its NIP-17 and NIP-04 requests reach it.
import assert from 'node:assert/strict'
import * as kinds from 'nostr-tools/kinds'
import { after, before, describe, it } from 'node:test'
import { WebSocket } from 'ws'
import { SimplePool, useWebSocketImplementation } from 'nostr-tools/pool'
import { finalizeEvent, generateSecretKey, type Event } from 'nostr-tools/pure'
import type { NostrEvent } from '../nec01/types.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { identityFromSecret } from '../src/service/identity.js'
import { startTestRelay, startTestService, type TestService } from './service-harness.js'
import { now, until } from './talk.js'

useWebSocketImplementation(WebSocket)

describe('a lazy client on the dev relay', () => {
  let relay: EmbeddedRelay
  let svc: TestService

  before(async () => {
    relay = await startTestRelay()
    svc = await startTestService({ relays: [relay.url] })
  })
  after(async () => {
    await svc.close()
    await relay.close()
  })

  it('a DM REQ before AUTH is closed auth-required:, SimplePool authenticates with onauth, subscribes again and gets its NIP-17 and NIP-04 replies', async () => {
    const sk = generateSecretKey()
    const me = identityFromSecret(sk)
    const service = svc.service.identity.pubkey
    const pool = new SimplePool()
    const received: NostrEvent[] = []
    const closes: string[] = []
    let authed = 0
    let eosed = false
    const sub = pool.subscribe([relay.url], { kinds: [kinds.GiftWrap, kinds.EncryptedDirectMessage], '#p': [me.pubkey], since: now() - 3 * 24 * 3600 }, {
      onevent: (e: Event) => void received.push(e as NostrEvent),
      oneose: () => (eosed = true),
      onclose: (reasons) => void closes.push(...reasons.map((r) => r.reason)),
      onauth: async (template) => {
        authed++
        return finalizeEvent(template, sk)
      },
    })
    try {
      await until(() => eosed, 'EOSE after authenticating')
      assert.equal(authed, 1, 'the pool authenticated once, when the REQ was closed auth-required:')
      assert.deepEqual(closes, [], 'the resubscription stays open')

      const nip04 = me.sign({ kind: kinds.EncryptedDirectMessage, created_at: now(), content: me.nip04Encrypt(service, 'ping'), tags: [['p', service]] })
      const { wrap, rumor } = me.giftWrap({ kind: kinds.PrivateDirectMessage, created_at: now(), content: 'ping', tags: [['p', service]] }, service)
      await Promise.all([...pool.publish([relay.url], nip04 as Event), ...pool.publish([relay.url], wrap as Event)])

      const dm04 = (): NostrEvent | undefined => received.find((e) => e.kind === kinds.EncryptedDirectMessage && e.pubkey === service && e.tags.some((t) => t[0] === 'e' && t[1] === nip04.id))
      const dm17 = (): string | undefined =>
        received
          .filter((e) => e.kind === kinds.GiftWrap)
          .map((e) => me.unwrap(e))
          .find((r) => r.pubkey === service && r.tags.some((t) => t[0] === 'e' && t[1] === rumor.id))?.content
      await until(() => dm04() !== undefined && dm17() !== undefined, 'both replies on the live subscription')
      assert.equal(me.nip04Decrypt(service, (dm04() as NostrEvent).content), 'pong')
      assert.equal(dm17(), 'pong')
    } finally {
      sub.close()
      pool.destroy()
    }
  })
})
