// A NIP-46 remote signer for tests, on a real relay: it holds the user's key, answers
// connect (checking the secret), get_public_key, sign_event and ping over kind 24133 with
// NIP-44, and records each method asked, so a test sees what the client really sent.
import { finalizeEvent, generateSecretKey, getPublicKey, type EventTemplate } from 'nostr-tools/pure'
import * as nip44 from 'nostr-tools/nip44'
import { toBunkerURL } from 'nostr-tools/nip46'
import { createRelayPool } from '../src/relays/pool.js'
import { quietLogger } from './service-harness.js'

const NOSTR_CONNECT_KIND = 24133

export interface TestBunker {
  /** bunker://<signer pubkey>?relay=…&secret=… */
  url: string
  /** the user's pubkey, whose key signs */
  userPubkey: string
  /** methods asked, in order */
  methods: string[]
  /** refuse every sign_event from now on */
  refuseSigning: { on: boolean }
  close(): Promise<void>
}

interface Request {
  id: string
  method: string
  params: string[]
}

function answer(req: Request, userSk: Uint8Array, secret: string, refuse: boolean): { result?: string; error?: string } {
  switch (req.method) {
    case 'connect':
      return req.params[1] === secret ? { result: 'ack' } : { error: 'wrong secret' }
    case 'get_public_key':
      return { result: getPublicKey(userSk) }
    case 'ping':
      return { result: 'pong' }
    case 'sign_event':
      if (refuse) return { error: 'the user declined' }
      return { result: JSON.stringify(finalizeEvent(JSON.parse(req.params[0] ?? '{}') as EventTemplate, userSk)) }
    default:
      return { error: `unsupported method ${req.method}` }
  }
}

export async function startTestBunker(relayUrl: string, userSk: Uint8Array): Promise<TestBunker> {
  const signerSk = generateSecretKey()
  const signerPubkey = getPublicKey(signerSk)
  const secret = Buffer.from(generateSecretKey()).toString('hex').slice(0, 16)
  const methods: string[] = []
  const refuseSigning = { on: false }
  const pool = createRelayPool({ relays: [{ url: relayUrl, read: true, write: true }], logger: quietLogger, signAuth: async (t) => finalizeEvent(t, signerSk) })
  let live: () => void = () => undefined
  const subscribed = new Promise<void>((resolve) => (live = resolve))
  const sub = pool.subscribe([{ kinds: [NOSTR_CONNECT_KIND], '#p': [signerPubkey], since: Math.floor(Date.now() / 1000) - 5 }], {
    onevent: (event) => {
      const key = nip44.v2.utils.getConversationKey(signerSk, event.pubkey)
      const req = JSON.parse(nip44.v2.decrypt(event.content, key)) as Request
      methods.push(req.method)
      const content = nip44.v2.encrypt(JSON.stringify({ id: req.id, ...answer(req, userSk, secret, refuseSigning.on) }), key)
      const reply = finalizeEvent({ kind: NOSTR_CONNECT_KIND, created_at: Math.floor(Date.now() / 1000), tags: [['p', event.pubkey]], content }, signerSk)
      void pool.publish(reply)
    },
    // requests are ephemeral: the relay forwards only to subscriptions already open
    oneose: () => live(),
  })
  await subscribed
  return {
    url: toBunkerURL({ pubkey: signerPubkey, relays: [relayUrl], secret }),
    userPubkey: getPublicKey(userSk),
    methods,
    refuseSigning,
    async close() {
      sub.close()
      await pool.close()
    },
  }
}
