// secp256k1 implementations side by side, same run: nostr-tools/pure (on the @noble/curves
// copy bundled with nostr-tools, what nec01/ uses in browsers), the project's own
// @noble/curves, nostr-tools/wasm (nostr-wasm: libsecp256k1 in WASM, event-level API,
// Schnorr only), tiny-secp256k1 (libsecp256k1 in WASM, hash-level API; the service's
// Schnorr), the `secp256k1` package's native addon (libsecp256k1's secp256k1_ecdh; the
// service's ECDH) and node:crypto (OpenSSL: ECDH and point multiplication, no BIP-340
// Schnorr; the service's ECDH when the addon is missing). Every implementation's output is
// checked against the others' before anything is timed.
import { createECDH, createHash, createHmac, randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js'
import { extract as hkdfExtract } from '@noble/hashes/hkdf.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import * as nip44 from 'nostr-tools/nip44'
import * as pure from 'nostr-tools/pure'
import * as wasm from 'nostr-tools/wasm'
import * as tiny from 'tiny-secp256k1'
import type { NostrEvent } from '../nec01/types.js'
import { RPC_KIND } from '../nec01/kinds.js'
import { initNostrWasm } from 'nostr-wasm'
import { conversationKey } from './client-crypto.js'
import { keyAgreement, nip44ConversationKey, nip44Decrypt, nip44Encrypt, type EcdhBackend } from '../src/crypto.js'
import { fmt, ratio, row, type Row } from './report.js'
import { compareInRounds, median, medianRatio, type Contender } from './stats.js'

const SECTION = 'secp256k1 libraries (µs per operation)'
const NIP44_SALT = new TextEncoder().encode('nip44-v2')
const PEERS = 64

type Impl = 'current' | 'noble' | 'wasm' | 'tiny' | 'native' | 'node' | 'nodeKeyed'
const IMPL_LABEL: Record<Impl, string> = {
  current: 'nostr-tools/pure',
  noble: '@noble/curves',
  wasm: 'nostr-wasm',
  tiny: 'tiny-secp256k1',
  native: 'libsecp256k1 native (secp256k1_ecdh)',
  node: 'node:crypto',
  nodeKeyed: 'node:crypto, own key loaded once',
}

/** The operations, by id: the NIP-17 floor (bench/service.ts) counts them. */
export const OP = {
  verify: 'Schnorr verify (event id + signature)',
  sign: 'Schnorr sign (finalizeEvent: pubkey, id, signature)',
  ecdh: 'ECDH → NIP-44 conversation key',
  pubkey: 'public key from secret (one-time wrap keys)',
  encrypt: 'NIP-44 v2 encrypt, a 7 KB rumor',
  decrypt: 'NIP-44 v2 decrypt, a 1 KB request layer',
} as const
/**
 * ECDH implementations whose time does not depend on the scalar: the only ones fit for the
 * service's long-term key. tiny-secp256k1's (libsecp256k1's public-key tweak, in the release
 * it bundles) is not, and serves one-time keys only, when the native addon is missing
 * (src/crypto.ts); libsecp256k1's secp256k1_ecdh runs on secp256k1_ecmult_const.
 */
export const CONSTANT_TIME_ECDH: readonly Impl[] = ['current', 'noble', 'native', 'node', 'nodeKeyed']
/** A reply rumor with its tee_root, and a request's seal, as the NIP-17 path handles them. */
const RUMOR_BYTES = 7 * 1024
const REQUEST_LAYER_BYTES = 1024

export interface LibFigures {
  versions: Record<string, string>
  /** operation → implementation → µs per op (median over rounds) */
  us: Record<string, Partial<Record<Impl, number>>>
  /** operation → implementation → speed-up over the current implementation */
  speedup: Record<string, Partial<Record<Impl, number>>>
}

function packageVersion(fromDir: string, name: string): string {
  for (let dir = fromDir; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'node_modules', ...name.split('/'), 'package.json')
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? '?'
  }
  return '?'
}

function versions(): Record<string, string> {
  const require = createRequire(import.meta.url)
  const nostrTools = dirname(dirname(dirname(require.resolve('nostr-tools/pure'))))
  return {
    'nostr-tools': packageVersion(dirname(nostrTools), 'nostr-tools'),
    'noble bundled with nostr-tools': packageVersion(nostrTools, '@noble/curves'),
    '@noble/curves': packageVersion(process.cwd(), '@noble/curves'),
    'nostr-wasm': packageVersion(process.cwd(), 'nostr-wasm'),
    'tiny-secp256k1': packageVersion(process.cwd(), 'tiny-secp256k1'),
    secp256k1: packageVersion(process.cwd(), 'secp256k1'),
    openssl: process.versions.openssl ?? '?',
  }
}

function nobleVerify(e: NostrEvent): boolean {
  const id = pure.getEventHash(e)
  return id === e.id && schnorr.verify(hexToBytes(e.sig), hexToBytes(id), hexToBytes(e.pubkey))
}

function nobleFinalize(t: pure.EventTemplate, sk: Uint8Array): NostrEvent {
  const event = { ...t, pubkey: bytesToHex(schnorr.getPublicKey(sk)) }
  const id = pure.getEventHash(event)
  return { ...event, id, sig: bytesToHex(schnorr.sign(hexToBytes(id), sk)) }
}

function nobleConversationKey(sk: Uint8Array, peer: string): Uint8Array {
  return hkdfExtract(sha256, secp256k1.getSharedSecret(sk, hexToBytes(`02${peer}`)).subarray(1, 33), NIP44_SALT)
}

// tiny-secp256k1 takes the 32-byte hash: the id is computed with OpenSSL, as src/crypto.ts
// does (no verified-pair cache here, so every copy pays for its signature check)
const openSslHash = (e: Omit<NostrEvent, 'id' | 'sig'>): string => createHash('sha256').update(pure.serializeEvent(e)).digest('hex')

function tinyVerify(e: NostrEvent): boolean {
  return openSslHash(e) === e.id && tiny.verifySchnorr(Buffer.from(e.id, 'hex'), Buffer.from(e.pubkey, 'hex'), Buffer.from(e.sig, 'hex'))
}

function tinyFinalize(t: pure.EventTemplate, sk: Uint8Array): NostrEvent {
  const event = { ...t, pubkey: Buffer.from(tiny.xOnlyPointFromScalar(sk)).toString('hex') }
  const id = openSslHash(event)
  return { ...event, id, sig: Buffer.from(tiny.signSchnorr(Buffer.from(id, 'hex'), sk, randomBytes(32))).toString('hex') }
}

/** libsecp256k1's public-key tweak: variable time in the bundled release (see CONSTANT_TIME_ECDH) */
function tinyConversationKey(sk: Uint8Array, peer: string): Uint8Array {
  const shared = tiny.pointMultiply(Buffer.from(`02${peer}`, 'hex'), sk, true)
  if (shared === null) throw new Error('libs: point at infinity')
  return new Uint8Array(createHmac('sha256', NIP44_SALT).update(shared.subarray(1)).digest())
}

/** The service's ECDH on one backend, the key loaded per call as for a one-time key. */
function backendConversationKey(sk: Uint8Array, peer: string, backend: EcdhBackend): Uint8Array {
  return nip44ConversationKey(keyAgreement(sk, backend).sharedX(peer))
}

function nodePublicKey(sk: Uint8Array): string {
  const ecdh = createECDH('secp256k1')
  ecdh.setPrivateKey(sk)
  return ecdh.getPublicKey('hex', 'compressed').slice(2)
}

/** Outputs must agree before timing: a fast wrong implementation is no candidate. */
function crossCheck(sk: Uint8Array, peer: string, template: pure.EventTemplate): void {
  const pub = pure.getPublicKey(sk)
  const tinyPub = Buffer.from(tiny.xOnlyPointFromScalar(sk)).toString('hex')
  if (bytesToHex(schnorr.getPublicKey(sk)) !== pub || wasm.getPublicKey(sk) !== pub || tinyPub !== pub || nodePublicKey(sk) !== pub) throw new Error('libs: public keys differ')
  const byPure = pure.finalizeEvent({ ...template }, sk)
  const byNoble = nobleFinalize(template, sk)
  const byWasm = wasm.finalizeEvent({ ...template }, sk) as NostrEvent
  const byTiny = tinyFinalize(template, sk)
  for (const e of [byPure, byNoble, byWasm, byTiny]) {
    const copy = (): NostrEvent => JSON.parse(JSON.stringify(e)) as NostrEvent
    if (!pure.verifyEvent(copy()) || !nobleVerify(copy()) || !wasm.verifyEvent(copy()) || !tinyVerify(copy())) throw new Error('libs: an implementation rejects another one\'s signature')
    if (tinyVerify({ ...copy(), content: `${e.content}!` })) throw new Error('libs: tiny-secp256k1 accepts a tampered event')
  }
  const reference = bytesToHex(nip44.v2.utils.getConversationKey(sk, peer))
  const others = [nobleConversationKey(sk, peer), conversationKey(sk, peer), tinyConversationKey(sk, peer), backendConversationKey(sk, peer, 'libsecp256k1'), backendConversationKey(sk, peer, 'openssl')]
  if (others.some((key) => bytesToHex(key) !== reference)) {
    throw new Error('libs: conversation keys differ')
  }
}

export async function measureLibs(opts: { quick: boolean }): Promise<{ rows: Row[]; figures: LibFigures }> {
  wasm.setNostrWasm(await initNostrWasm())
  const sk = pure.generateSecretKey()
  const peers = Array.from({ length: PEERS }, () => pure.getPublicKey(pure.generateSecretKey()))
  // a request-sized event: what the service verifies on every request
  const template: pure.EventTemplate = { kind: RPC_KIND, created_at: Math.floor(Date.now() / 1000), tags: [['p', peers[0]!]], content: 'A'.repeat(200) }
  crossCheck(sk, peers[0]!, template)
  const signed = JSON.stringify(pure.finalizeEvent({ ...template }, sk))
  const ownKey = createECDH('secp256k1')
  ownKey.setPrivateKey(sk)
  const keyedConversationKey = (peer: string): Uint8Array =>
    new Uint8Array(createHmac('sha256', NIP44_SALT).update(ownKey.computeSecret(Buffer.from(`02${peer}`, 'hex'))).digest())
  if (bytesToHex(keyedConversationKey(peers[1]!)) !== bytesToHex(nip44.v2.utils.getConversationKey(sk, peers[1]!))) throw new Error('libs: conversation keys differ')

  const batch = opts.quick ? 10 : 40
  const rounds = opts.quick ? { rounds: 3, minRounds: 3, warmupBatches: 1, maxMs: 2000 } : { rounds: 9, minRounds: 5, warmupBatches: 2, maxMs: 8000 }
  const freshEvents = (): { prepare: (n: number) => void; get: (i: number) => NostrEvent } => {
    let copies: NostrEvent[] = []
    return { prepare: (n) => (copies = Array.from({ length: n }, () => JSON.parse(signed) as NostrEvent)), get: (i) => copies[i]! }
  }
  const verifier = (check: (e: NostrEvent) => boolean): Contender => {
    const f = freshEvents()
    return {
      batch,
      prepare: f.prepare,
      op: (i) => {
        if (!check(f.get(i))) throw new Error('libs: verification failed')
      },
    }
  }
  const each = (op: (i: number) => unknown): Contender => ({ batch, op })

  const nip44Key = nip44.v2.utils.getConversationKey(sk, peers[0]!)
  const rumor = 'r'.repeat(RUMOR_BYTES)
  const layer = nip44.v2.encrypt('q'.repeat(REQUEST_LAYER_BYTES), nip44Key)
  if (nip44Decrypt(nip44Key, nip44.v2.encrypt(rumor, nip44Key)) !== rumor || nip44.v2.decrypt(nip44Encrypt(nip44Key, rumor), nip44Key) !== rumor) throw new Error('libs: NIP-44 implementations disagree')
  const groups: Record<string, Partial<Record<Impl, Contender>>> = {
    [OP.verify]: {
      current: verifier((e) => pure.verifyEvent(e)),
      noble: verifier(nobleVerify),
      wasm: verifier((e) => wasm.verifyEvent(e)),
      tiny: verifier(tinyVerify),
    },
    [OP.sign]: {
      current: each(() => pure.finalizeEvent({ ...template }, sk)),
      noble: each(() => nobleFinalize(template, sk)),
      wasm: each(() => wasm.finalizeEvent({ ...template }, sk)),
      tiny: each(() => tinyFinalize(template, sk)),
    },
    [OP.ecdh]: {
      current: each((i) => nip44.v2.utils.getConversationKey(sk, peers[i % PEERS]!)),
      tiny: each((i) => tinyConversationKey(sk, peers[i % PEERS]!)),
      noble: each((i) => nobleConversationKey(sk, peers[i % PEERS]!)),
      native: each((i) => backendConversationKey(sk, peers[i % PEERS]!, 'libsecp256k1')),
      node: each((i) => backendConversationKey(sk, peers[i % PEERS]!, 'openssl')),
      // the service's key never changes: setPrivateKey (itself a point multiplication) once
      nodeKeyed: each((i) => keyedConversationKey(peers[i % PEERS]!)),
    },
    [OP.pubkey]: {
      current: each(() => pure.getPublicKey(sk)),
      noble: each(() => schnorr.getPublicKey(sk)),
      wasm: each(() => wasm.getPublicKey(sk)),
      tiny: each(() => tiny.xOnlyPointFromScalar(sk)),
      node: each(() => nodePublicKey(sk)),
    },
    [OP.encrypt]: {
      current: each(() => nip44.v2.encrypt(rumor, nip44Key)),
      node: each(() => nip44Encrypt(nip44Key, rumor)),
    },
    [OP.decrypt]: {
      current: each(() => nip44.v2.decrypt(layer, nip44Key)),
      node: each(() => nip44Decrypt(nip44Key, layer)),
    },
  }

  const figures: LibFigures = { versions: versions(), us: {}, speedup: {} }
  const rows: Row[] = []
  for (const [op, contenders] of Object.entries(groups)) {
    const t = (await compareInRounds(contenders as Record<Impl, Contender>, rounds)) as Partial<Record<Impl, number[]>>
    const us: Partial<Record<Impl, number>> = {}
    const speedup: Partial<Record<Impl, number>> = {}
    for (const impl of Object.keys(contenders) as Impl[]) {
      us[impl] = median(t[impl]!) * 1000
      speedup[impl] = medianRatio(t.current!, t[impl]!)
    }
    figures.us[op] = us
    figures.speedup[op] = speedup
    const others = (Object.keys(contenders) as Impl[]).filter((i) => i !== 'current')
    rows.push(
      row({
        id: `libs.${op}`,
        section: SECTION,
        figure: op,
        value: `${fmt(us.current!, 1)} µs`,
        raw: us.current!,
        unit: 'µs',
        comparison: `value: ${IMPL_LABEL.current} (noble; nostr-tools' nip44 for NIP-44); ${others.map((i) => `${IMPL_LABEL[i]} ${fmt(us[i]!, 1)} µs (${ratio(speedup[i]!)})`).join(', ')}`,
      }),
    )
  }
  return { rows, figures }
}
