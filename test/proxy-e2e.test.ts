// The enclave's way out, end to end on loopback: service → parent CONNECT proxy → a real
// relay. The service publishes and answers a DM with every relay socket in a tunnel, and a
// proxy that does not allow the relay leaves the service with no way out at all.
import * as kinds from 'nostr-tools/kinds'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { allowlistFromRelays, startParentProxy, type ProxyEvent } from '../src/parent/proxy.js'

import { startTestRelay, startTestService } from './service-harness.js'
import { assertCarrier, Peer, replyTo, until } from './talk.js'

test('service → parent proxy → relay: announcements published and a DM answered through the tunnel', async () => {
  const relay = await startTestRelay({ requireAuth: true })
  const events: ProxyEvent[] = []
  const proxy = await startParentProxy({ host: '127.0.0.1', port: 0, allow: allowlistFromRelays([{ url: relay.url }]), log: (e) => events.push(e) })
  const svc = await startTestService({ relays: [relay.url], config: { proxy: `http://127.0.0.1:${proxy.port}` } })
  const peer = new Peer([relay.url])
  try {
    const service = svc.service.identity.pubkey
    await until(() => svc.service.health().relays.every((r) => r.connected && r.authed), 'the service connected and authenticated through the proxy')
    const target = relay.url.replace('ws://', '')
    const opened = events.filter((e) => e.event === 'open')
    assert.ok(opened.length >= 1, 'at least one tunnel opened')
    assert.ok(opened.every((e) => e.target === target), `every tunnel goes to the relay: ${JSON.stringify(opened)}`)
    assert.equal(events.filter((e) => e.event === 'refuse').length, 0)
    // the service's websocket is a tunnel: the relay sees it plus our peer, the proxy holds one
    await until(() => proxy.tunnels() === 1, 'one live tunnel (the websocket)')

    // its announcements went out through the tunnel
    await until(async () => (await peer.stored({ kinds: [13793], authors: [service] }, relay.url)).length === 1, 'the announcement on the relay')

    // and a DM is answered through it
    const replies = await peer.replies(service, kinds.EncryptedDirectMessage)
    const request = peer.nip04(service, 'ping')
    await peer.publish(request)
    const reply = await replyTo(replies, request.id)
    assert.equal(peer.identity.nip04Decrypt(service, reply.event.content), 'pong')
    await assertCarrier(reply.event, service, svc.rootDer)
    replies.close()
    const closed = events.filter((e) => e.event === 'close')
    assert.ok(closed.every((e) => e.event === 'close' && e.target === target))
  } finally {
    await peer.close()
    await svc.close()
    await proxy.close()
    await relay.close()
  }
})

test('a proxy that does not allow the relay leaves the service no way to it', async () => {
  const relay = await startTestRelay()
  const events: ProxyEvent[] = []
  const proxy = await startParentProxy({ host: '127.0.0.1', port: 0, allow: [{ host: 'relay.example', port: 443 }], log: (e) => events.push(e) })
  const svc = await startTestService({ relays: [relay.url], config: { proxy: `http://127.0.0.1:${proxy.port}` } })
  try {
    await until(() => events.some((e) => e.event === 'refuse' && e.status === 403), 'the proxy refused the tunnel')
    await until(() => (svc.service.health().relays[0]?.last_error ?? null) !== null, 'the refusal shows in health')
    assert.equal(svc.service.health().relays[0]?.connected, false)
    assert.equal(events.filter((e) => e.event === 'open').length, 0)
    assert.equal(relay.connections(), 0, 'nothing reached the relay')
  } finally {
    await svc.close()
    await proxy.close()
    await relay.close()
  }
})
