// JSON-RPC for programs end to end: NIP-44 encrypted { id, method, params } in RPC_KIND,
// answered in RPC_KIND with { id, result } or { id, error }, over a real relay. The kind
// is ephemeral, so every test listens before it asks.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { canonicalJson } from '../nec01/canonical.js'
import { verifyRootEvent } from '../nec01/event.js'
import { RPC_KIND, type RpcResponse } from '../nec01/rpc.js'
import type { NostrEvent } from '../nec01/types.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { startTestRelay, startTestService, type TestService } from './service-harness.js'
import { assertCarrier, devTrust, Peer, replyTo, stable, tagValue, until, type Collector } from './talk.js'

type Item = { event: NostrEvent; relay: string }

let seq = 0

/** Calls a method and returns the verified reply event and its decrypted response. */
async function call(peer: Peer, service: string, inbox: Collector<Item>, method: string, params?: unknown): Promise<{ event: NostrEvent; response: RpcResponse; id: string }> {
  const id = `call-${++seq}`
  const request = peer.rpc(service, { id, method, ...(params === undefined ? {} : { params }) })
  await peer.publish(request)
  const { event } = await replyTo(inbox, request.id)
  const response = peer.decryptRpc(service, event)
  assert.equal(response.id, id, 'the response carries the request id')
  return { event, response, id }
}

function resultOf(response: RpcResponse): unknown {
  assert.ok('result' in response, `a result, got ${JSON.stringify(response)}`)
  return response.result
}

function errorOf(response: RpcResponse): { code: string; message: string } {
  assert.ok('error' in response, `an error, got ${JSON.stringify(response)}`)
  return response.error
}

describe(`JSON-RPC over kind ${RPC_KIND}`, () => {
  let relay: EmbeddedRelay
  let svc: TestService
  let peer: Peer
  let service: string
  let inbox: Collector<Item>

  before(async () => {
    relay = await startTestRelay()
    svc = await startTestService({ relays: [relay.url], config: { rateLimit: { ratePerSec: 100, burst: 1000 } } })
    service = svc.service.identity.pubkey
    peer = new Peer([relay.url])
    inbox = await peer.replies(service, RPC_KIND)
  })
  after(async () => {
    await peer.close()
    await svc.close()
    await relay.close()
  })

  it('ping → { id, result: "pong" } in an RPC_KIND event with tee_root, p and e', async () => {
    const { event, response } = await call(peer, service, inbox, 'ping')
    assert.equal(resultOf(response), 'pong')
    assert.equal(event.kind, RPC_KIND)
    assert.equal(tagValue(event, 'p'), peer.pubkey)
    await assertCarrier(event, service, svc.rootDer)
  })

  it('info returns the service facts as an object', async () => {
    const { event, response } = await call(peer, service, inbox, 'info')
    const info = resultOf(response) as Record<string, unknown>
    assert.equal(info.npub, svc.service.identity.npub)
    assert.equal(info.pubkey, service)
    assert.equal(info.tee, 'simulated')
    assert.equal(info.t, 'dev')
    assert.equal(info.version, '0.0.0-test')
    assert.equal(typeof info.uptime_sec, 'number')
    assert.deepEqual(info.relays, [relay.url])
    const pcrs = info.pcrs as Record<string, string>
    for (const i of ['0', '1', '2', '16']) assert.match(pcrs[i] ?? '', /^[0-9a-f]{96}$/, `PCR${i}`)
    assert.deepEqual(pcrs['0'], svc.service.roots.current()?.attestation.pcrs['0'])
    await assertCarrier(event, service, svc.rootDer)
  })

  it('help lists the commands with summaries and examples', async () => {
    const { event, response } = await call(peer, service, inbox, 'help')
    const list = resultOf(response) as Array<{ command: string; summary: string; example: string }>
    // the core commands, the operator controls, and help last
    assert.deepEqual(list.map((c) => c.command), ['ping', 'info', 'attest', 'set', 'reveal', 'freeze', 'unset', 'vars', 'help'])
    for (const c of list) assert.ok(c.summary.length > 0 && c.example.length > 0)
    await assertCarrier(event, service, svc.rootDer)
  })

  it('attest binds the nonce, the service key and SHA-256 of the canonical custom JSON', async () => {
    const nonce = bytesToHex(crypto.getRandomValues(new Uint8Array(32)))
    const data = { z: [1, 2.5, { b: null, a: true }], a: 'ünï', order: 42 }
    const { event, response } = await call(peer, service, inbox, 'attest', { nonce, data })
    await assertCarrier(event, service, svc.rootDer)
    const result = resultOf(response) as { event: NostrEvent; nonce: string; custom_digest: string; requester: { custom: unknown } }
    const digest = bytesToHex(sha256(utf8ToBytes(canonicalJson(data))))
    assert.equal(result.nonce, nonce)
    assert.equal(result.custom_digest, digest)
    assert.deepEqual(result.requester.custom, data)
    assert.equal(result.event.pubkey, service)
    const verified = await verifyRootEvent(result.event, { ...devTrust(svc.rootDer), publicKey: service, nonce, userData: digest })
    assert.equal(verified.valid, true, `${verified.reason} ${JSON.stringify(verified.checks.filter((c) => !c.ok))}`)
    assert.equal(verified.attestation?.nonce, nonce)
    assert.equal(verified.attestation?.public_key, service)
    assert.equal(verified.attestation?.user_data, digest)
    // it is a fresh document, not the root the service publishes
    assert.notEqual(result.event.id, svc.service.roots.current()?.event.id)

    // and the same check fails for a nonce that was not ours
    const other = await verifyRootEvent(result.event, { ...devTrust(svc.rootDer), nonce: '00'.repeat(32) })
    assert.equal(other.valid, false)
    assert.equal(other.reason, 'nonce')
  })

  it('attest without params: a fresh document with no nonce and no user_data', async () => {
    const { response } = await call(peer, service, inbox, 'attest')
    const result = resultOf(response) as { event: NostrEvent; nonce?: string; custom_digest?: string }
    assert.equal(result.nonce, undefined)
    assert.equal(result.custom_digest, undefined)
    const verified = await verifyRootEvent(result.event, { ...devTrust(svc.rootDer), publicKey: service })
    assert.equal(verified.valid, true, `${verified.reason}`)
    assert.equal(verified.attestation?.nonce, null)
    assert.equal(verified.attestation?.user_data, null)
  })

  it('an unknown method is NOT_IMPLEMENTED', async () => {
    const { event, response } = await call(peer, service, inbox, 'dance')
    assert.deepEqual(errorOf(response), { code: 'NOT_IMPLEMENTED', message: 'unknown method: `help` lists the methods' })
    await assertCarrier(event, service, svc.rootDer)
  })

  // hex first, then valid padded base64, then the text's UTF-8 bytes; `nonce` in the answer
  // is the bytes used, and the document carries exactly those
  for (const [nonce, bytes] of [
    ['ABCD', 'abcd'],
    ['test', bytesToHex(Uint8Array.from(atob('test'), (c) => c.charCodeAt(0)))],
    ['AQIDBA==', '01020304'],
    ['ab==', bytesToHex(utf8ToBytes('ab=='))],
    ['abc=', bytesToHex(Uint8Array.from(atob('abc='), (c) => c.charCodeAt(0)))],
    ['hey=', bytesToHex(utf8ToBytes('hey='))],
    ['abc', bytesToHex(utf8ToBytes('abc'))],
    ['0x3f9a', bytesToHex(utf8ToBytes('0x3f9a'))],
    ['héllo wörld', bytesToHex(utf8ToBytes('héllo wörld'))],
  ] as const) {
    it(`attest with the nonce '${nonce}' binds the bytes ${bytes}`, async () => {
      const { response } = await call(peer, service, inbox, 'attest', { nonce })
      const result = resultOf(response) as { event: NostrEvent; nonce: string }
      assert.equal(result.nonce, bytes)
      const verified = await verifyRootEvent(result.event, { ...devTrust(svc.rootDer), publicKey: service, nonce: bytes })
      assert.equal(verified.valid, true, `${verified.reason}`)
    })
  }

  for (const [name, params, message] of [
    ['custom data with a lone surrogate (no canonical form)', { data: { note: 'a\ud800b' } }, /lone surrogate/],
    ['custom data with a lone surrogate in a key', { data: { '\udc00': 1 } }, /lone surrogate/],
    ['a nonce that is not a string', { nonce: 42 }, /nonce must be a string/],
    ['an empty nonce', { nonce: '' }, /nonce is empty/],
    ['a nonce over 1024 bytes', { nonce: 'ab'.repeat(1025) }, /nonce is 1025 bytes, at most 1024/],
    ['params that are not an object', 'abc', /params must be an object/],
    ['params that are an array', ['00ff'], /params must be an object/],
  ] as const) {
    it(`attest with ${name} is INVALID_REQUEST`, async () => {
      const { event, response } = await call(peer, service, inbox, 'attest', params)
      const error = errorOf(response)
      assert.equal(error.code, 'INVALID_REQUEST')
      assert.match(error.message, message)
      await assertCarrier(event, service, svc.rootDer)
    })
  }
})

describe('JSON-RPC rate limit', () => {
  let relay: EmbeddedRelay
  let svc: TestService
  let service: string

  before(async () => {
    relay = await startTestRelay()
    // three at once, then (practically) nothing for the length of the test
    svc = await startTestService({ relays: [relay.url], config: { rateLimit: { ratePerSec: 0.001, burst: 3 } } })
    service = svc.service.identity.pubkey
  })
  after(async () => {
    await svc.close()
    await relay.close()
  })

  it('a flooding key gets its burst, one RATE_LIMITED, then silence; another key is still answered', async () => {
    const flooder = new Peer([relay.url])
    const other = new Peer([relay.url])
    try {
      const floodInbox = await flooder.replies(service, RPC_KIND)
      const otherInbox = await other.replies(service, RPC_KIND)
      const FLOOD = 20
      let otherAsked: NostrEvent | null = null
      for (let i = 0; i < FLOOD; i++) {
        await flooder.publish(flooder.rpc(service, { id: `flood-${i}`, method: 'ping' }))
        if (i === FLOOD / 2) {
          otherAsked = other.rpc(service, { id: 'other', method: 'ping' })
          await other.publish(otherAsked)
        }
      }
      assert.ok(otherAsked !== null)
      const { event } = await replyTo(otherInbox, otherAsked.id)
      assert.deepEqual(other.decryptRpc(service, event), { id: 'other', result: 'pong' })

      // every flood request decided: 3 allowed, the rest refused (one of them out loud)
      await until(() => (svc.service.counters.rate_limited ?? 0) === FLOOD - 3, 'the flood to be processed')
      const count = await stable(() => floodInbox.items.length, 'replies to the flooder', { min: 4 })
      assert.equal(count, 4)
      const responses = floodInbox.items.map((i) => flooder.decryptRpc(service, i.event))
      assert.equal(responses.filter((r) => 'result' in r && r.result === 'pong').length, 3)
      const refusals = responses.filter((r) => 'error' in r)
      assert.equal(refusals.length, 1)
      assert.equal(refusals[0] !== undefined && 'error' in refusals[0] ? refusals[0].error.code : null, 'RATE_LIMITED')
      for (const item of floodInbox.items) await assertCarrier(item.event, service, svc.rootDer)
      assert.equal(await stable(() => svc.service.counters.refused_rate_limited ?? 0, 'the refusal counter', { min: 1 }), 1)
    } finally {
      await flooder.close()
      await other.close()
    }
  })
})

describe('canonical JSON for custom data (RFC 8785)', () => {
  it('the RFC 8785 example: numbers, escapes and literals come out as the RFC prints them', () => {
    const input = String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`
    const expected = String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
    assert.equal(canonicalJson(JSON.parse(input)), expected)
  })

  it('keys sort by UTF-16 code units (the RFC 8785 sorting example), not by code points', () => {
    const input = String.raw`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`
    const values = JSON.parse(input) as Record<string, string>
    // compared as text: parsing the output back would put the integer-like key "1" first
    const order = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']
    assert.equal(canonicalJson(values), `{${order.map((k) => `${JSON.stringify(k)}:${JSON.stringify(values[k])}`).join(',')}}`)
  })

  it('a lone surrogate, in a value or a key, has no canonical form; a valid pair does', () => {
    assert.throws(() => canonicalJson({ a: 'x\ud800' }), /lone surrogate/)
    assert.throws(() => canonicalJson({ '\udc00': 1 }), /lone surrogate/)
    assert.throws(() => canonicalJson(['\ude00\ud83d']), /lone surrogate/)
    assert.equal(canonicalJson({ a: '\ud83d\ude00' }), '{"a":"😀"}')
    assert.throws(() => canonicalJson({ n: Number.NaN }), /NaN/)
  })
})
