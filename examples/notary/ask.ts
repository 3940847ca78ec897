// A program's side of the notary: one JSON-RPC `notarize` call (NEC-01's RPC kind, NIP-44) from a
// throwaway key, then two checks of the reply: the digest against our own SHA-256 of the
// statement, and the reply's tee_root with nec01's verifier. Only nostr-tools and nec01.
//
//   node dist/examples/notary/ask.js <npub|hex> <statement> --relay URL --root root.pem   (dev)
//   node dist/examples/notary/ask.js <npub|hex> <statement> --relay URL --pcrs pcrs.json  (enclave)
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import * as nip19 from 'nostr-tools/nip19'
import * as nip44 from 'nostr-tools/nip44'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import { RPC_KIND, verifyTeeRoot, type NostrEvent, type TeeRootOptions } from 'nec01'

const TIMEOUT_MS = 15_000

/** dev: the simulator's root, any PCRs, t=dev; enclave: the published build's PCR0..2. */
function trust(root: string | undefined, pcrsFile: string | undefined): TeeRootOptions {
  if (root !== undefined) return { root: readFileSync(root, 'utf8'), anyPcrs: true, expect: 'dev' }
  if (pcrsFile === undefined) throw new Error('give --root FILE (dev) or --pcrs FILE (an enclave)')
  const m = (JSON.parse(readFileSync(pcrsFile, 'utf8')) as { Measurements: Record<string, string> }).Measurements
  return { expectedPcrs: { 0: m.PCR0 ?? '', 1: m.PCR1 ?? '', 2: m.PCR2 ?? '' } }
}

function waitForReply(relay: Relay, filter: { kinds: number[]; authors: string[]; '#p': string[] }, requestId: string): Promise<NostrEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply within ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS)
    const sub = relay.subscribe([filter], {
      onevent: (event) => {
        if (!event.tags.some((t) => t[0] === 'e' && t[1] === requestId)) return
        clearTimeout(timer)
        sub.close()
        resolve(event)
      },
    })
  })
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { relay: { type: 'string' }, root: { type: 'string' }, pcrs: { type: 'string' } } })
  const [who, statement] = positionals
  if (who === undefined || statement === undefined || values.relay === undefined) throw new Error('usage: ask.js <npub|hex> <statement> --relay URL (--root FILE | --pcrs FILE)')
  const options = trust(values.root, values.pcrs)
  const service = who.startsWith('npub1') ? (nip19.decode(who).data as string) : who
  useWebSocketImplementation(WebSocket)
  const relay = await Relay.connect(values.relay)
  try {
    const sk = generateSecretKey()
    const me = getPublicKey(sk)
    const key = nip44.v2.utils.getConversationKey(sk, service)
    const call = JSON.stringify({ id: '1', method: 'notarize', params: { statement } })
    const request = finalizeEvent({ kind: RPC_KIND, created_at: Math.floor(Date.now() / 1000), tags: [['p', service]], content: nip44.v2.encrypt(call, key) }, sk)
    const replied = waitForReply(relay, { kinds: [RPC_KIND], authors: [service], '#p': [me] }, request.id)
    await relay.publish(request)
    const reply = await replied
    const response = JSON.parse(nip44.v2.decrypt(reply.content, key)) as { result?: { sha256?: string }; error?: { code: string; message: string } }
    if (response.error !== undefined) throw new Error(`${response.error.code}: ${response.error.message}`)
    const digest = response.result?.sha256
    const ours = createHash('sha256').update(statement, 'utf8').digest('hex')
    const verdict = await verifyTeeRoot(reply, options)
    console.log(`sha256:   ${digest ?? '(none)'}${digest === ours ? '  (matches ours)' : `  (ours: ${ours})`}`)
    const ownKey = verdict.event?.pubkey === service
    console.log(`tee_root: ${!verdict.valid ? `INVALID: ${verdict.reason ?? ''}` : ownKey ? 'VALID' : 'VALID, but not the service key'}`)
    return digest === ours && verdict.valid && ownKey ? 0 : 1
  } finally {
    relay.close()
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`ask: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(2)
  },
)
