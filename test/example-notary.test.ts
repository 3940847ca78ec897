// examples/notary as docs/apps.md runs it: the compiled file as a program (simulator and
// embedded relay on loopback), asked over the wire by a throwaway key, its replies checked
// with nec01's verifier against the simulator root in the state directory the test chose.
import * as kinds from 'nostr-tools/kinds'
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { decode as nip19Decode } from 'nostr-tools/nip19'
import { verifyTeeRoot } from '../nec01/event.js'
import { RPC_KIND } from '../nec01/rpc.js'

import { spawnNode, tempDir, type SpawnedService } from './service-harness.js'
import { assertCarrier, assertRumor, Peer, replyTo, unwrapWithSeal, until } from './talk.js'

const SCRIPT = 'examples/notary/notary.js'

interface Banner {
  pubkey: string
  relay: string
  rootPem: string
}

function readBanner(out: string): Banner {
  const field = (name: string): string => {
    const m = new RegExp(`^${name}:\\s+(\\S+)`, 'm').exec(out)
    assert.ok(m?.[1] !== undefined, `the banner has ${name}: ${out}`)
    return m[1]
  }
  const decoded = nip19Decode(field('npub'))
  assert.equal(decoded.type, 'npub')
  return { pubkey: decoded.data as string, relay: field('relays'), rootPem: field('root') }
}

const hex = (text: string): string => bytesToHex(sha256(utf8ToBytes(text)))

let state: { path: string; remove(): void }
let notary: SpawnedService
let banner: Banner
let peer: Peer

before(async () => {
  state = tempDir('nec01-notary-')
  notary = spawnNode(SCRIPT, [], { NEC01_STATE_DIR: state.path, NOTARY_RELAY_PORT: '0', NOTARY_HEALTH_PORT: '0', NEC01_LOG_LEVEL: 'warn' })
  await notary.ready
  await until(() => /^try:/m.test(notary.stdout()), 'the whole banner')
  banner = readBanner(notary.stdout())
  peer = new Peer([banner.relay])
})

after(async () => {
  await peer?.close()
  const code = await notary?.stop()
  state?.remove()
  assert.equal(code, 0, `the notary exits cleanly on SIGTERM (stderr: ${notary?.stderr()})`)
})

test('the banner: a loopback relay and the simulator root in the state directory given', () => {
  assert.match(banner.relay, /^ws:\/\/127\.0\.0\.1:\d+$/)
  assert.equal(banner.rootPem, join(state.path, 'nsm-simulator', 'root.pem'))
  assert.match(notary.stdout(), /DEV MODE: simulated NSM, not an enclave \(t=dev\)/)
})

test('JSON-RPC notarize: the digest is SHA-256 of the statement, in a reply the simulated enclave vouches for', async () => {
  // A fresh statement each run, with non-ASCII text: the digest is over its UTF-8 bytes.
  const statement = `Alice owes Bob 5000 sats — ${randomBytes(8).toString('hex')} ✓`
  const replies = await peer.replies(banner.pubkey, RPC_KIND)
  const request = peer.rpc(banner.pubkey, { id: 'n1', method: 'notarize', params: { statement } })
  await peer.publish(request)
  const { event } = await replyTo(replies, request.id)
  replies.close()
  const response = peer.decryptRpc(banner.pubkey, event)
  assert.ok('result' in response, `a result: ${JSON.stringify(response)}`)
  assert.deepEqual(response.result, { sha256: hex(statement), bytes: utf8ToBytes(statement).length })

  const root = readFileSync(banner.rootPem)
  const verified = await assertCarrier(event, banner.pubkey, root)
  assert.equal(verified.attestation?.public_key, banner.pubkey, "the document's public_key is the notary's key")
  // Both verdicts can go the other way: the same reply against AWS's root, or with its
  // signed content changed, is refused.
  assert.equal((await verifyTeeRoot(event, { anyPcrs: true, expect: 'dev' })).valid, false, 'not an AWS-rooted attestation')
  const forged = { ...event, content: peer.identity.nip44Encrypt(banner.pubkey, JSON.stringify({ id: 'n1', result: { sha256: hex('other'), bytes: 5 } })) }
  assert.equal((await verifyTeeRoot(forged, { root, anyPcrs: true, expect: 'dev' })).valid, false, 'a changed reply no longer verifies')
})

test('NIP-17 DM "notarize <statement>": the same digest, in a rumor sealed by the notary', async () => {
  const statement = `the text after the command word ${randomBytes(4).toString('hex')}`
  const replies = await peer.replies(banner.pubkey, kinds.GiftWrap)
  const { wrap, rumor } = peer.nip17(banner.pubkey, `notarize ${statement}`)
  await peer.publish(wrap)
  const found = await replyTo(replies, rumor.id, (e) => {
    const u = unwrapWithSeal(e, peer.sk)
    return u.rumor.tags.find((t) => t[0] === 'e')?.[1]
  })
  replies.close()
  const u = unwrapWithSeal(found.event, peer.sk)
  assert.equal(u.rumor.content, `sha256: ${hex(statement)}\nbytes: ${utf8ToBytes(statement).length}`)
  await assertRumor(u, banner.pubkey, readFileSync(banner.rootPem))
})

/** The exit code and output of a finished child. */
function finished(child: SpawnedService): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => child.child.once('close', (code) => resolve({ code, out: child.stdout(), err: child.stderr() })))
}

test('examples/notary/ask.js, the program client of apps.md: exit 0 on the notary, 1 under the wrong trust', async () => {
  const statement = `ask ${randomBytes(4).toString('hex')}`
  const asked = await finished(spawnNode('examples/notary/ask.js', [banner.pubkey, statement, '--relay', banner.relay, '--root', banner.rootPem]))
  assert.equal(asked.code, 0, `stderr: ${asked.err}`)
  assert.equal(asked.out, `sha256:   ${hex(statement)}  (matches ours)\ntee_root: VALID\n`)
  // The same reply checked against PCRs of a published build (and so AWS's root) must fail.
  const pcrs = join(state.path, 'pcrs.json')
  writeFileSync(pcrs, JSON.stringify({ Measurements: { PCR0: 'ab'.repeat(48), PCR1: 'ab'.repeat(48), PCR2: 'ab'.repeat(48) } }))
  const refused = await finished(spawnNode('examples/notary/ask.js', [banner.pubkey, statement, '--relay', banner.relay, '--pcrs', pcrs]))
  assert.equal(refused.code, 1, `stderr: ${refused.err}`)
  assert.match(refused.out, /^tee_root: INVALID: /m)
})

test('an empty statement is refused with INVALID_REQUEST', async () => {
  const replies = await peer.replies(banner.pubkey, RPC_KIND)
  const request = peer.rpc(banner.pubkey, { id: 'n2', method: 'notarize', params: {} })
  await peer.publish(request)
  const { event } = await replyTo(replies, request.id)
  replies.close()
  const response = peer.decryptRpc(banner.pubkey, event)
  assert.ok('error' in response, `an error: ${JSON.stringify(response)}`)
  assert.equal(response.error.code, 'INVALID_REQUEST')
})

test('--enclave outside an enclave: one line, exit 1, never the simulator', async () => {
  const refused = await finished(spawnNode(SCRIPT, ['--enclave'], { NEC01_STATE_DIR: state.path, NOTARY_HEALTH_PORT: '0' }))
  assert.equal(refused.code, 1)
  assert.equal(refused.err.trim(), 'notary: not inside a Nitro Enclave: /dev/nsm is missing; run with --dev to use the simulator')
  assert.equal(refused.out, '')
})
