// Operator controls end to end: the real service on the NSM simulator, a real relay on
// loopback, and the operator and a stranger as Nostr clients over NIP-17, NIP-04 and RPC.
// Checks the transition table on both transports, the public record of every change, who
// may write, replays and stale requests, and that a hidden value shows up nowhere.
import * as kinds from 'nostr-tools/kinds'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { npubEncode } from 'nostr-tools/nip19'
import { verifyTeeRoot } from '../nec01/event.js'
import type { RpcErrorCode, RpcResponse } from '../nec01/rpc.js'
import type { NostrEvent } from '../nec01/types.js'
import { bootPcrs } from '../src/nsm/pcrs.js'
import type { EmbeddedRelay } from '../src/embedded/relay.js'
import { createRelayPool } from '../src/relays/pool.js'
import { CommandError, commandSet, type CommandRequest, type CommandSpec } from '../src/service/commands.js'
import { identityFromSecret } from '../src/service/identity.js'
import { changeNote, createOperatorControls, MAX_REQUEST_SKEW_SEC, parseSetText } from '../src/service/operator.js'
import { OperatorConfigError, parseOperatorFile, parseOperatorKey } from '../src/service/operator-config.js'
import { createPublisher } from '../src/service/publish.js'
import { MAX_VALUE_BYTES } from '../src/service/vars.js'
import { commitmentOf, committedInText, createTestClient, type TestClient } from './operator-client.js'
import { quietLogger, spawnService, startTestRelay, startTestService, tempDir, type TestService } from './service-harness.js'

const nowSec = (): number => Math.floor(Date.now() / 1000)
/** the embedded relay's largest answer to one filter */
const STORED_LIMIT = 1000
const secretValue = (label: string): string => `${label}-${randomBytes(12).toString('hex')}`

type Op = 'set' | 'reveal' | 'freeze' | 'unset'
const PAST: Record<Op, string> = { set: 'set', reveal: 'revealed', freeze: 'froze', unset: 'unset' }

interface Step {
  op: Op
  name: string
  value?: string
  hidden?: boolean
  immutable?: boolean
  /** 'ok', or the status and the rule that refuses it */
  expect: 'ok' | readonly [RpcErrorCode, string]
}

interface VarRow {
  name: string
  hidden: boolean
  immutable: boolean
  commitment: string
  salt?: string
  value?: string
}

/** A variable as it should end: its flags and value; the commitment follows from the salt. */
interface FinalVar {
  name: string
  hidden: boolean
  immutable: boolean
  value: string
}

/** What anyone should see of `v`, whose value was committed with `salt`. */
function expectedRow(v: FinalVar, salt: string): VarRow {
  return { name: v.name, hidden: v.hidden, immutable: v.immutable, commitment: commitmentOf(v.value, salt), ...(v.hidden ? {} : { salt, value: v.value }) }
}

/** The transition table as a request sequence, names prefixed per transport. */
function tableSteps(p: string, secrets: { k: string; f: string; s1: string }): { steps: Step[]; final: FinalVar[] } {
  const R = (rule: string): readonly [RpcErrorCode, string] => ['RESTRICTED', rule]
  const I = (rule: string): readonly [RpcErrorCode, string] => ['INVALID_REQUEST', rule]
  const a = `${p}a`
  const h = `${p}h`
  const k = `${p}k`
  const f = `${p}f`
  const g = `${p}g`
  const steps: Step[] = [
    // public, mutable → immutable
    { op: 'set', name: a, value: 'a one', expect: 'ok' },
    { op: 'set', name: a, value: 'a two', expect: 'ok' },
    { op: 'set', name: a, value: 'a three', hidden: true, expect: R('PUBLIC_TO_HIDDEN') },
    { op: 'reveal', name: a, expect: R('ALREADY_PUBLIC') },
    { op: 'freeze', name: a, expect: 'ok' },
    { op: 'set', name: a, value: 'a four', expect: R('IMMUTABLE') },
    { op: 'set', name: a, value: 'a five', immutable: true, expect: R('IMMUTABLE') },
    { op: 'reveal', name: a, expect: R('IMMUTABLE') },
    { op: 'unset', name: a, expect: R('IMMUTABLE') },
    { op: 'freeze', name: a, expect: R('ALREADY_IMMUTABLE') },
    // hidden, mutable → revealed → unset
    { op: 'set', name: h, value: secrets.s1, hidden: true, expect: 'ok' },
    { op: 'set', name: h, value: 'h two', hidden: true, expect: 'ok' },
    { op: 'set', name: h, value: 'h three', expect: R('HIDDEN_NEEDS_REVEAL') },
    { op: 'reveal', name: h, expect: 'ok' },
    { op: 'reveal', name: h, expect: R('ALREADY_PUBLIC') },
    { op: 'set', name: h, value: 'h four', hidden: true, expect: R('PUBLIC_TO_HIDDEN') },
    { op: 'unset', name: h, expect: 'ok' },
    { op: 'unset', name: h, expect: I('NOT_FOUND') },
    { op: 'reveal', name: h, expect: I('NOT_FOUND') },
    { op: 'freeze', name: h, expect: I('NOT_FOUND') },
    // hidden and immutable from the start: never revealed, never changed
    { op: 'set', name: k, value: secrets.k, hidden: true, immutable: true, expect: 'ok' },
    { op: 'reveal', name: k, expect: R('IMMUTABLE') },
    { op: 'set', name: k, value: 'k two', hidden: true, expect: R('IMMUTABLE') },
    { op: 'unset', name: k, expect: R('IMMUTABLE') },
    { op: 'freeze', name: k, expect: R('ALREADY_IMMUTABLE') },
    // hidden, then frozen: it can no longer be revealed
    { op: 'set', name: f, value: secrets.f, hidden: true, expect: 'ok' },
    { op: 'freeze', name: f, expect: 'ok' },
    { op: 'reveal', name: f, expect: R('IMMUTABLE') },
    // set with immutable freezes a mutable variable
    { op: 'set', name: g, value: 'g one', expect: 'ok' },
    { op: 'set', name: g, value: 'g two', immutable: true, expect: 'ok' },
    { op: 'set', name: g, value: 'g three', expect: R('IMMUTABLE') },
    // input checks
    { op: 'set', name: `${p}BAD`, value: 'v', expect: I('NAME_INVALID') },
    { op: 'set', name: `${p}big`, value: 'x'.repeat(MAX_VALUE_BYTES + 1), expect: I('VALUE_TOO_LARGE') },
  ]
  const final: FinalVar[] = [
    { name: a, hidden: false, immutable: true, value: 'a two' },
    { name: f, hidden: true, immutable: true, value: secrets.f },
    { name: g, hidden: false, immutable: true, value: 'g two' },
    { name: k, hidden: true, immutable: true, value: secrets.k },
  ]
  return { steps, final }
}

function dmText(s: Step): string {
  if (s.op !== 'set') return `${s.op} ${s.name}`
  return `set ${s.name} ${s.value ?? ''}${s.hidden === true ? ' hidden' : ''}${s.immutable === true ? ' immutable' : ''}`
}

function rpcParams(s: Step): Record<string, unknown> {
  if (s.op !== 'set') return { name: s.name }
  return { name: s.name, value: s.value, ...(s.hidden === true ? { hidden: true } : {}), ...(s.immutable === true ? { immutable: true } : {}) }
}

function rows(vars: unknown, prefix: string): VarRow[] {
  assert.ok(Array.isArray(vars))
  return (vars as Array<VarRow & { updated_at?: number }>)
    .filter((v) => v.name.startsWith(prefix))
    .map(({ name, hidden, immutable, commitment, salt, value }) => ({ name, hidden, immutable, commitment, ...(salt === undefined ? {} : { salt }), ...(value === undefined ? {} : { value }) }))
}

function resultOf(response: RpcResponse): Record<string, unknown> {
  assert.ok('result' in response, `expected a result, got ${JSON.stringify(response)}`)
  return response.result as Record<string, unknown>
}

function errorOf(response: RpcResponse): { code: RpcErrorCode; message: string } {
  assert.ok('error' in response, `expected an error, got ${JSON.stringify(response)}`)
  return response.error
}

const tag = (e: NostrEvent, name: string): string[] | undefined => e.tags.find((t) => t[0] === name)

describe('operator controls, end to end', () => {
  let relay: EmbeddedRelay
  let ts: TestService
  let svc: string
  let opSecret: Uint8Array
  let opPub: string
  let op: TestClient
  let stranger: TestClient
  /** every reply anyone received, for the leak search */
  const replies: string[] = []
  /** values that were hidden and never revealed: they must appear nowhere */
  const secrets: string[] = []
  /** values that were refused: they must appear nowhere either */
  const refusedValues: string[] = []
  /** note ids the replies reported, by variable name */
  const reportedNotes = new Map<string, string[]>()

  const rpc = async (c: TestClient, method: string, params: unknown, opts?: { createdAt?: number }): Promise<RpcResponse> => {
    const { response } = await c.rpc(method, params, opts)
    replies.push(JSON.stringify(response))
    return response
  }
  const dm = async (c: TestClient, text: string, opts?: { createdAt?: number }): Promise<string> => {
    const { reply } = await c.nip17(text, opts)
    replies.push(reply)
    return reply
  }
  const varsNow = async (prefix: string): Promise<VarRow[]> => rows(resultOf(await rpc(stranger, 'vars', {})).vars, prefix)
  /** public, mutable variables as anyone checks them: the value against its published salt and commitment */
  const publicRows = async (prefix: string): Promise<Array<{ name: string; value: string | undefined; committed: boolean }>> =>
    (await varsNow(prefix)).map((r) => {
      assert.deepEqual([r.hidden, r.immutable], [false, false], r.name)
      return { name: r.name, value: r.value, committed: r.value !== undefined && r.salt !== undefined && commitmentOf(r.value, r.salt) === r.commitment }
    })
  const notes = async (): Promise<NostrEvent[]> => {
    const found = await op.session.pool.fetchEvents([{ kinds: [kinds.ShortTextNote], authors: [svc], limit: STORED_LIMIT }], { timeoutMs: 10_000 })
    assert.ok(found.length < STORED_LIMIT, 'the relay returned everything')
    return found
  }
  const notesFor = async (name: string): Promise<NostrEvent[]> => (await notes()).filter((n) => tag(n, 'var')?.[1] === name)
  const report = (name: string, note: unknown): void => {
    assert.equal(typeof note, 'string')
    reportedNotes.set(name, [...(reportedNotes.get(name) ?? []), note as string])
  }

  before(async () => {
    relay = await startTestRelay()
    opSecret = generateSecretKey()
    opPub = getPublicKey(opSecret)
    ts = await startTestService({ relays: [relay.url], config: { operator: opPub, rateLimit: { ratePerSec: 1000, burst: 1000 } } })
    svc = ts.service.identity.pubkey
    op = createTestClient(svc, [relay.url], opSecret)
    stranger = createTestClient(svc, [relay.url])
    // A gift wrap is stored, so this one is answered even if it raced the service's
    // subscription; once answered, the subscription is live for ephemeral RPC too.
    assert.equal(await dm(op, 'ping'), 'pong')
  })

  after(async () => {
    await op?.close()
    await stranger?.close()
    await ts?.close()
    await relay?.close()
  })

  it('info shows the operator (RPC and NIP-17); anyone may list the variables', async () => {
    const npub = npubEncode(opPub)
    assert.equal(resultOf(await rpc(stranger, 'info', {})).operator, npub)
    assert.match(await dm(stranger, 'info'), new RegExp(`^operator: ${npub}$`, 'm'))
    const list = resultOf(await rpc(stranger, 'vars', {}))
    assert.equal(list.operator, npub)
    assert.deepEqual(list.vars, [])
    assert.match(await dm(stranger, 'vars'), /no variables/)
  })

  for (const transport of ['rpc', 'nip17'] as const) {
    it(`the whole transition table over ${transport === 'rpc' ? 'JSON-RPC' : 'NIP-17'}, each change announced`, async () => {
      const p = `${transport === 'rpc' ? 'r' : 'd'}_`
      const hidden = { k: secretValue('k'), f: secretValue('f'), s1: secretValue('s1') }
      secrets.push(hidden.k, hidden.f, hidden.s1)
      const { steps, final } = tableSteps(p, hidden)
      const current = new Map<string, string>()
      /** the salt of each variable's value, as the operator was told it */
      const salts = new Map<string, string>()
      for (const step of steps) {
        const label = `${dmText(step).slice(0, 60)} → ${step.expect === 'ok' ? 'ok' : step.expect.join(' ')}`
        const valueAfter = step.op === 'set' ? (step.value ?? '') : current.get(step.name)
        if (transport === 'rpc') {
          const response = await rpc(op, step.op, rpcParams(step))
          if (step.expect === 'ok') {
            const r = resultOf(response)
            assert.equal(r.op, step.op, label)
            assert.equal(r.name, step.name, label)
            if (step.op === 'unset') assert.deepEqual([r.commitment, 'salt' in r], [null, false], label)
            else {
              assert.equal(typeof r.salt, 'string', label)
              // the operator's check: the public commitment is to the value they sent
              assert.equal(r.commitment, commitmentOf(valueAfter ?? '', r.salt as string), label)
              if (step.op === 'set') salts.set(step.name, r.salt as string)
              else assert.equal(r.salt, salts.get(step.name), `${label}: the salt stays with the value`)
            }
            assert.equal('value' in r, false, 'a change never echoes the value')
            report(step.name, r.note)
          } else {
            const e = errorOf(response)
            assert.equal(e.code, step.expect[0], label)
            assert.ok(e.message.startsWith(`${step.expect[1]}: `), `${label}: ${e.message}`)
          }
        } else {
          const reply = await dm(op, dmText(step))
          if (step.expect === 'ok') {
            assert.ok(reply.startsWith(`${PAST[step.op]} ${step.name}`), `${label}: ${reply}`)
            if (step.op !== 'unset') {
              const c = committedInText(reply)
              assert.ok(c !== null, `${label}: ${reply}`)
              assert.equal(c.commitment, commitmentOf(valueAfter ?? '', c.salt), `${label}: the operator's check`)
              if (step.op === 'set') salts.set(step.name, c.salt)
              else assert.equal(c.salt, salts.get(step.name), label)
            }
            report(step.name, /announced in note ([0-9a-f]{64})/.exec(reply)?.[1])
          } else {
            assert.ok(reply.startsWith(`${step.expect[0]}: ${step.expect[1]}: `), `${label}: ${reply}`)
          }
        }
        if (step.expect === 'ok') {
          if (step.op === 'unset') current.delete(step.name)
          else if (valueAfter !== undefined) current.set(step.name, valueAfter)
        }
      }

      // The end state, as anyone sees it: public values shown, hidden ones not.
      assert.deepEqual(
        await varsNow(p),
        final.map((v) => expectedRow(v, salts.get(v.name) ?? '')),
      )
      for (const row of final) assert.equal(ts.service.vars.get(row.name), current.get(row.name), 'handlers read every value')
      assert.equal(ts.service.vars.has(`${p}h`), false)

      // The public record: one attested note per allowed change, none for a refusal.
      const all = (await notes()).filter((n) => (tag(n, 'var')?.[1] ?? '').startsWith(p))
      const expectedIds = [...reportedNotes.entries()].filter(([name]) => name.startsWith(p)).flatMap(([, ids]) => ids)
      assert.equal(expectedIds.length, steps.filter((s) => s.expect === 'ok').length)
      assert.deepEqual(all.map((n) => n.id).sort(), [...expectedIds].sort())
      for (const note of all) {
        const verification = await verifyTeeRoot(note, { root: ts.rootDer, anyPcrs: true, expect: 'dev' })
        assert.equal(verification.valid, true, `note ${note.id}: ${verification.reason ?? ''}`)
        assert.deepEqual(tag(note, 'p'), ['p', opPub])
        const opTag = tag(note, 'op')?.[1]
        if (opTag === 'unset') assert.equal(tag(note, 'commitment'), undefined)
        else assert.match(tag(note, 'commitment')?.[1] ?? '', /^[0-9a-f]{64}$/)
        // the salt is published exactly when the value is
        assert.equal(tag(note, 'salt') !== undefined, tag(note, 'flags')?.[1] === 'public', `note ${note.content}`)
        assert.equal(tag(note, 'sha256'), undefined, 'no unsalted hash')
      }
      // The frozen hidden variable's history: set (hidden, mutable), then froze (hidden, immutable), same commitment.
      const fHistory = all.filter((n) => tag(n, 'var')?.[1] === `${p}f`).map((n) => [tag(n, 'op')?.[1], ...(tag(n, 'flags') ?? []).slice(1), tag(n, 'commitment')?.[1]])
      const fCommitment = commitmentOf(hidden.f, salts.get(`${p}f`) ?? '')
      assert.deepEqual(fHistory.sort(), [
        ['freeze', 'hidden', 'immutable', fCommitment],
        ['set', 'hidden', 'mutable', fCommitment],
      ])
    })
  }

  it('refuses every write from a key that is not the operator, on both transports', async () => {
    const owned = 'owned'
    const mine = secretValue('owned')
    secrets.push(mine)
    report(owned, resultOf(await rpc(op, 'set', { name: owned, value: mine, hidden: true })).note)
    const before = await varsNow(owned)
    const intruder = secretValue('intruder')
    refusedValues.push(intruder)
    for (const [method, params] of [
      ['set', { name: owned, value: intruder, hidden: true }],
      ['set', { name: 'fresh', value: intruder }],
      ['reveal', { name: owned }],
      ['freeze', { name: owned }],
      ['unset', { name: owned }],
    ] as const) {
      const e = errorOf(await rpc(stranger, method, params))
      assert.equal(e.code, 'UNAUTHORIZED', method)
      assert.ok(e.message.startsWith('NOT_OPERATOR: '), e.message)
    }
    for (const text of [`set ${owned} ${intruder} hidden`, `set fresh ${intruder}`, `reveal ${owned}`, `freeze ${owned}`, `unset ${owned}`]) {
      const reply = await dm(stranger, text)
      assert.ok(reply.startsWith('UNAUTHORIZED: NOT_OPERATOR: '), reply)
    }
    assert.deepEqual(await varsNow(owned), before)
    assert.deepEqual(await varsNow('fresh'), [])
    assert.equal(ts.service.vars.get(owned), mine)
    assert.equal((await notesFor(owned)).length, 1)
    assert.equal((await notesFor('fresh')).length, 0)
  })

  it('a NIP-17 request that only claims to come from the operator changes nothing', async () => {
    const value = secretValue('forged')
    refusedValues.push(value)
    const dropped = ts.service.counters.dropped_undecryptable ?? 0
    // the rumor claims the operator; the seal is the stranger's, or claims the operator too
    // with the stranger's signature
    for (const seal of ['own', 'claimed'] as const) await stranger.send(stranger.forgedNip17(`set forged ${value} hidden`, opPub, seal))
    // Requests are handled in arrival order: once a later one is answered, the forgeries were handled.
    report('forged_probe', resultOf(await rpc(op, 'set', { name: 'forged_probe', value: 'x' })).note)
    assert.equal((ts.service.counters.dropped_undecryptable ?? 0) - dropped, 2)
    assert.equal(ts.service.vars.has('forged'), false)
    assert.deepEqual(await publicRows('forged_'), [{ name: 'forged_probe', value: 'x', committed: true }])
    assert.equal((await notesFor('forged')).length, 0)
  })

  it('a misspelt or misplaced flag sets nothing, rather than making a secret public', async () => {
    const values = Array.from({ length: 6 }, (_, i) => secretValue(`typo${i}`))
    refusedValues.push(...values)
    // JSON-RPC: an unknown key of a write is refused, never ignored
    for (const [method, params, key] of [
      ['set', { name: 'typo', value: values[0], hiden: true }, 'hiden'],
      ['set', { name: 'typo', value: values[1], hidden: true, Immutable: true }, 'Immutable'],
      ['unset', { name: 'typo', value: values[2] }, 'value'],
    ] as const) {
      const e = errorOf(await rpc(op, method, params))
      assert.equal(e.code, 'INVALID_REQUEST')
      assert.ok(e.message.startsWith(`UNKNOWN_PARAM: unknown parameter '${key}'`), e.message)
    }
    assert.ok(errorOf(await rpc(op, 'set', [values[0]])).message.startsWith('UNKNOWN_PARAM: '))
    // DM text: a flag before the value, as the name, or misspelt after it
    for (const text of [`set typo ${values[3]} hiden`, `set typo hidden ${values[4]}`, `set hidden typo ${values[5]}`, `set typo x ${values[3]} imutable hidden`, `set typo ${values[4]} HIDDEN.`]) {
      const reply = await dm(op, text)
      assert.ok(reply.startsWith('INVALID_REQUEST: FLAG_AMBIGUOUS: '), `${text.slice(0, 12)}: ${reply}`)
    }
    assert.equal(ts.service.vars.has('typo') || ts.service.vars.has('hidden'), false)
    assert.equal((await notesFor('typo')).length + (await notesFor('hidden')).length, 0)
    // quoted, the same words are a value like any other
    assert.ok((await dm(op, 'set typo_q "two hiden"')).startsWith('set typo_q (public, mutable)'))
    assert.equal(ts.service.vars.get('typo_q'), 'two hiden')
    report('typo_q', (await notesFor('typo_q'))[0]?.id)
  })

  it('answers none of the operator commands over NIP-04, pointing to NIP-17', async () => {
    const value = secretValue('nip04')
    refusedValues.push(value)
    for (const [client, text] of [
      [op, `set n04 ${value} hidden`],
      [op, 'vars'],
      [op, 'unset owned'],
      [stranger, `set n04 ${value}`],
    ] as const) {
      const reply = await client.nip04(text)
      replies.push(reply)
      assert.ok(reply.startsWith('RESTRICTED: NIP04_REFUSED: '), reply)
      assert.match(reply, /NIP-17/)
    }
    assert.deepEqual(await varsNow('n04'), [])
    assert.equal(ts.service.vars.has('owned'), true)
  })

  it('a replayed request changes nothing (RPC: the same event again)', async () => {
    const first = op.rpcRequest('set', { name: 'replay_r', value: 'one' })
    const firstReply = await op.exchange(first)
    report('replay_r', resultOf(firstReply.response).note)
    report('replay_r', resultOf(await rpc(op, 'set', { name: 'replay_r', value: 'two' })).note)
    await op.send(first.event)
    // Requests are handled in arrival order: once a later one is answered, the replay was handled.
    report('replay_probe', resultOf(await rpc(op, 'set', { name: 'replay_probe', value: 'x' })).note)
    assert.deepEqual(await publicRows('replay_r'), [{ name: 'replay_r', value: 'two', committed: true }])
    assert.equal((await notesFor('replay_r')).length, 2)
  })

  it('a replayed request changes nothing (NIP-17: the same wrap, and the same rumor in a new wrap)', async () => {
    const first = await op.nip17('set replay_d one')
    assert.ok(first.reply.startsWith('set replay_d'), first.reply)
    assert.ok((await dm(op, 'set replay_d two')).startsWith('set replay_d'))
    await op.send(first.wrap)
    const rewrapped = op.rewrap(first.rumor)
    assert.notEqual(rewrapped.id, first.wrap.id)
    await op.send(rewrapped)
    assert.ok((await dm(op, 'set replay_probe x')).startsWith('set replay_probe'))
    assert.deepEqual(await publicRows('replay_d'), [{ name: 'replay_d', value: 'two', committed: true }])
    assert.equal((await notesFor('replay_d')).length, 2)
  })

  it('refuses requests made more than 5 minutes ago or ahead (NIP-17 rumors carry the real time)', async () => {
    const stale = await dm(op, 'set stale_d v', { createdAt: nowSec() - 6 * 60 })
    assert.ok(stale.startsWith('UNAUTHORIZED: STALE: '), stale)
    const future = await dm(op, 'set stale_d v', { createdAt: nowSec() + 6 * 60 })
    assert.ok(future.startsWith('UNAUTHORIZED: FUTURE: '), future)
    // An RPC request that old is not even delivered (the subscription's `since`); if it
    // were, it would be refused the same way. Either way nothing changes.
    await op.send(op.rpcRequest('set', { name: 'stale_r', value: 'v' }, { createdAt: nowSec() - 6 * 60 }).event)
    report('probe_stale', resultOf(await rpc(op, 'set', { name: 'probe_stale', value: 'x' })).note)
    assert.deepEqual(await varsNow('stale_'), [])
    assert.equal((await notesFor('stale_d')).length + (await notesFor('stale_r')).length, 0)
  })

  it('a hidden value appears in no reply, log line, health output or published event', async () => {
    const viaDm = secretValue('dm')
    const viaRpc = secretValue('rpc')
    const overwritten = secretValue('overwritten')
    const replacement = secretValue('replacement')
    const refusedPublic = secretValue('refused-public')
    const tooBig = secretValue('too-big')
    secrets.push(viaDm, viaRpc, overwritten, replacement)
    refusedValues.push(refusedPublic, tooBig)

    assert.ok((await dm(op, `set leak_d ${viaDm} hidden`)).startsWith('set leak_d'))
    resultOf(await rpc(op, 'set', { name: 'leak_r', value: viaRpc, hidden: true }))
    resultOf(await rpc(op, 'set', { name: 'leak_o', value: overwritten, hidden: true }))
    resultOf(await rpc(op, 'set', { name: 'leak_o', value: replacement, hidden: true }))
    resultOf(await rpc(op, 'freeze', { name: 'leak_r' }))
    const refused = await dm(op, `set leak_d ${refusedPublic}`)
    assert.ok(refused.startsWith('RESTRICTED: HIDDEN_NEEDS_REVEAL: '), refused)
    assert.equal(errorOf(await rpc(op, 'set', { name: 'leak_big', value: tooBig.repeat(Math.ceil((MAX_VALUE_BYTES + 1) / tooBig.length)), hidden: true })).code, 'INVALID_REQUEST')
    // every way to ask about them, by everyone
    for (const c of [op, stranger]) {
      await rpc(c, 'vars', {})
      await rpc(c, 'vars', { name: 'leak_d' })
      await dm(c, 'vars')
      await dm(c, 'vars leak_r')
      await rpc(c, 'info', {})
    }
    assert.equal(ts.service.vars.get('leak_d'), viaDm)
    assert.equal(ts.service.vars.get('leak_o'), replacement)

    const healthHttp = await (await fetch(`http://127.0.0.1:${ts.service.healthPort}/health`)).text()
    // Everything the relay holds, kind by kind (it caps each filter at STORED_LIMIT).
    const stored: NostrEvent[] = []
    for (const kind of [0, 1, 4, 1059, 10002, 10050, 13793]) {
      const found = await op.session.pool.fetchEvents([{ kinds: [kind], limit: STORED_LIMIT }], { timeoutMs: 10_000 })
      assert.ok(found.length < STORED_LIMIT, `the relay returned every kind ${kind}`)
      stored.push(...found)
    }
    assert.ok(stored.some((e) => e.kind === 1059) && stored.some((e) => e.kind === 4), 'the DMs are there to search')
    assert.ok(stored.some((e) => e.kind === kinds.ShortTextNote), 'the notes are there to search')
    const haystacks: Array<[string, string]> = [
      ['replies', replies.join('\n')],
      ['logs', ts.logs.join('\n')],
      ['health()', JSON.stringify(ts.service.health())],
      ['/health', healthHttp],
      ['relay', JSON.stringify(stored)],
    ]
    assert.ok(replies.length > 50 && ts.logs.length > 50, 'there is something to search')
    for (const value of [...secrets, ...refusedValues]) {
      const bytes = Buffer.from(value, 'utf8')
      const forms = [value, bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url'), JSON.stringify(value).slice(1, -1)]
      for (const [where, text] of haystacks) {
        for (const form of forms) assert.ok(!text.includes(form), `a hidden or refused value (${value.slice(0, 8)}…) appears in ${where}`)
      }
    }
    // and the search can find what is there: a public value is in the replies
    assert.ok(replies.join('\n').includes('a two'))
  })
})

describe('operator controls: the layer itself', () => {
  let relay: EmbeddedRelay
  let ts: TestService
  const opSecret = generateSecretKey()
  const opPub = getPublicKey(opSecret)

  before(async () => {
    relay = await startTestRelay()
    ts = await startTestService({ relays: [relay.url] })
  })
  after(async () => {
    await ts?.close()
    await relay?.close()
  })

  const request = (over: Partial<CommandRequest>): CommandRequest => ({
    transport: 'rpc',
    sender: opPub,
    createdAt: nowSec(),
    requestId: randomBytes(16).toString('hex'),
    method: 'set',
    params: {},
    ...over,
  })
  const refusal = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p
    } catch (err) {
      assert.ok(err instanceof CommandError, String(err))
      return `${err.code} ${err.message.split(':')[0] ?? ''}`
    }
    assert.fail('expected a refusal')
  }

  it('refuses a request id it has seen, even if the transport let it through', async () => {
    const controls = createOperatorControls({ operator: opPub, publisher: ts.service.publisher, log: quietLogger })
    const first = request({ params: { name: 'direct', value: 'one' } })
    await controls.run(first)
    for (const transport of ['rpc', 'nip17'] as const) {
      assert.equal(await refusal(controls.run({ ...first, transport, params: { name: 'direct', value: 'two' } })), 'UNAUTHORIZED REPLAYED')
    }
    assert.equal(controls.vars.get('direct'), 'one')
  })

  it('refuses stale and future requests at the 5-minute line, on every transport', async () => {
    const controls = createOperatorControls({ operator: opPub, publisher: ts.service.publisher, log: quietLogger })
    // DM text for NIP-17, an object for RPC, as the inbox hands them over
    const params = (transport: 'rpc' | 'nip17', name: string): unknown => (transport === 'rpc' ? { name, value: 'v' } : { text: `${name} v` })
    for (const transport of ['rpc', 'nip17'] as const) {
      assert.equal(await refusal(controls.run(request({ transport, createdAt: nowSec() - 6 * 60, params: params(transport, 'old') }))), 'UNAUTHORIZED STALE')
      assert.equal(await refusal(controls.run(request({ transport, createdAt: nowSec() + 6 * 60, params: params(transport, 'old') }))), 'UNAUTHORIZED FUTURE')
      // inside the window by a margin that no test run takes to cross
      await controls.run(request({ transport, createdAt: nowSec() - MAX_REQUEST_SKEW_SEC + 60, params: params(transport, `ok_${transport}`) }))
    }
    assert.equal(controls.vars.has('old'), false)
    assert.equal(controls.vars.has('ok_rpc') && controls.vars.has('ok_nip17'), true)
  })

  it('without an operator every write is refused; vars still answers', async () => {
    const controls = createOperatorControls({ operator: null, publisher: ts.service.publisher, log: quietLogger })
    for (const method of ['set', 'reveal', 'freeze', 'unset']) {
      assert.equal(await refusal(controls.run(request({ method, params: { name: 'x', value: 'v' } }))), 'UNAUTHORIZED NO_OPERATOR')
    }
    assert.deepEqual((await controls.run(request({ method: 'vars', sender: getPublicKey(generateSecretKey()) }))).result, { operator: null, vars: [] })
  })

  it('a change no relay accepts is not made', async () => {
    // A real publisher and pool, pointed at a loopback port where no relay listens.
    const pool = createRelayPool({ relays: [{ url: 'ws://127.0.0.1:9', read: true, write: true }], logger: quietLogger, publishTimeoutMs: 3000, connectTimeoutMs: 2000 })
    try {
      const publisher = createPublisher({ identity: identityFromSecret(generateSecretKey()), roots: ts.service.roots, relays: pool, log: quietLogger })
      const controls = createOperatorControls({ operator: opPub, publisher, log: quietLogger })
      assert.equal(await refusal(controls.run(request({ params: { name: 'unannounced', value: 'v' } }))), 'INTERNAL ANNOUNCE_FAILED')
      assert.equal(controls.vars.has('unannounced'), false)
    } finally {
      await pool.close()
    }
  })

  it('the service without an operator: info says none, writes are refused over the wire', async () => {
    const client = createTestClient(ts.service.identity.pubkey, [relay.url], opSecret)
    try {
      assert.match((await client.nip17('info')).reply, /^operator: none/m)
      const set = await client.nip17('set x v')
      assert.ok(set.reply.startsWith('UNAUTHORIZED: NO_OPERATOR: '), set.reply)
      const info = await client.rpc('info', {})
      assert.equal(resultOf(info.response).operator, null)
    } finally {
      await client.close()
    }
  })
})

describe('operator controls: parsing and the public record', () => {
  it('parses "set NAME VALUE [hidden] [immutable]" from DM text', () => {
    assert.deepEqual(parseSetText('k v'), { name: 'k', value: 'v', hidden: false, immutable: false })
    assert.deepEqual(parseSetText('k two words hidden'), { name: 'k', value: 'two words', hidden: true, immutable: false })
    assert.deepEqual(parseSetText('k v immutable hidden'), { name: 'k', value: 'v', hidden: true, immutable: true })
    assert.deepEqual(parseSetText('k line one\nline two HIDDEN'), { name: 'k', value: 'line one\nline two', hidden: true, immutable: false })
    assert.deepEqual(parseSetText('k "hidden" hidden'), { name: 'k', value: 'hidden', hidden: true, immutable: false })
    assert.deepEqual(parseSetText('k "a\\"b"'), { name: 'k', value: 'a"b', hidden: false, immutable: false })
    assert.throws(() => parseSetText('k'), /VALUE_INVALID/)
    assert.throws(() => parseSetText('k hidden'), /VALUE_INVALID/)
    assert.throws(() => parseSetText('k "unterminated\\"'), /VALUE_INVALID/)
    // a flag out of place or misspelt would publish the value: refused unless it is quoted
    for (const text of ['k v hiden', 'k v Hiddden', 'k v imutable', 'k v mutable hidden', 'k v hidden hidden', 'k hidden v', 'k immutable v w', 'hidden k v', 'IMMUTABLE k v']) {
      assert.throws(() => parseSetText(text), /FLAG_AMBIGUOUS: /, text)
    }
    for (const text of ['k s3cr3t hiden', 'k hidden s3cr3t', 'hidden k s3cr3t']) {
      assert.throws(
        () => parseSetText(text),
        (err) => err instanceof CommandError && !err.message.includes('s3cr3t'),
        'the refusal does not repeat the value',
      )
    }
    assert.deepEqual(parseSetText('k "v hiden" hidden'), { name: 'k', value: 'v hiden', hidden: true, immutable: false })
    assert.deepEqual(parseSetText('k "hidden v"'), { name: 'k', value: 'hidden v', hidden: false, immutable: false })
    // ordinary words near the end stay ordinary
    assert.deepEqual(parseSetText('k the sudden garden'), { name: 'k', value: 'the sudden garden', hidden: false, immutable: false })
    assert.deepEqual(parseSetText('k hiden'), { name: 'k', value: 'hiden', hidden: false, immutable: false })
  })

  it('a note names the variable, flags and the commitment, and carries no value; the salt only once public', () => {
    const salt = 'cd'.repeat(32)
    const commitment = commitmentOf('s3cr3t', salt)
    const note = changeNote({ op: 'set', name: 'api_key', flags: { hidden: true, immutable: false }, commitment, salt: null }, 'ab'.repeat(32))
    assert.equal(note.kind, 1)
    assert.match(note.content, /^operator set api_key \(hidden, mutable\), value commitment [0-9a-f]{64}$/)
    assert.deepEqual(note.tags.find((t) => t[0] === 'commitment'), ['commitment', commitment])
    assert.deepEqual(note.tags.find((t) => t[0] === 'flags'), ['flags', 'hidden', 'mutable'])
    assert.equal(note.tags.find((t) => t[0] === 'salt'), undefined)
    assert.ok(!JSON.stringify(note).includes('s3cr3t'))
    const revealed = changeNote({ op: 'reveal', name: 'api_key', flags: { hidden: false, immutable: false }, commitment, salt }, 'ab'.repeat(32))
    assert.deepEqual(revealed.tags.find((t) => t[0] === 'salt'), ['salt', salt])
    const unset = changeNote({ op: 'unset', name: 'api_key', flags: null, commitment: null, salt: null }, 'ab'.repeat(32))
    assert.equal(unset.content, 'operator unset api_key')
  })

  it('operator.json: an npub, a hex key or null; anything else stops the service', () => {
    const pub = getPublicKey(generateSecretKey())
    assert.equal(parseOperatorFile(JSON.stringify({ operator: npubEncode(pub) })), pub)
    assert.equal(parseOperatorFile(JSON.stringify({ operator: pub.toUpperCase() })), pub)
    assert.equal(parseOperatorFile('{ "operator": null }'), null)
    for (const bad of ['', '[]', '{}', '{"operator": 1}', '{"operator": "npub1xyz"}', `{"operator": "${'0'.repeat(64)}"}`, 'not json']) {
      assert.throws(() => parseOperatorFile(bad), OperatorConfigError, bad)
    }
    assert.throws(() => parseOperatorKey('f'.repeat(64)), OperatorConfigError, 'not an x coordinate on the curve')
  })

  it('operator.json is measured with the code: PCR0 and PCR2 move when it is added or changed', () => {
    const dir = tempDir('nec01-opcr-')
    try {
      const dist = join(dir.path, 'dist')
      mkdirSync(join(dist, 'src'), { recursive: true })
      writeFileSync(join(dist, 'src', 'cli.js'), 'export {}\n')
      const runtime = { node: '20.0.0', platform: 'linux', arch: 'x64' }
      const measure = (): Uint8Array[] => bootPcrs({ distDir: dist, runtime, instanceId: 'i-00000000000000000' })
      const none = measure()
      writeFileSync(join(dir.path, 'operator.json'), '{ "operator": null }\n')
      const withNull = measure()
      writeFileSync(join(dir.path, 'operator.json'), JSON.stringify({ operator: npubEncode(getPublicKey(generateSecretKey())) }))
      const withKey = measure()
      assert.notDeepEqual(withNull[2], none[2])
      assert.notDeepEqual(withNull[0], none[0], 'a new file in the image')
      assert.notDeepEqual(withKey[2], withNull[2], 'another operator is another image')
      assert.deepEqual(withKey[0], withNull[0])
      assert.deepEqual(withKey[1], none[1])
    } finally {
      dir.remove()
    }
  })
})

describe('nec01 serve --operator', () => {
  it('is refused outside dev: an enclave takes its operator from the measured file', async () => {
    const svc = spawnService(['--operator', npubEncode(getPublicKey(generateSecretKey())), '--health-port', '0'])
    const code = await new Promise<number | null>((resolve) => svc.child.once('exit', resolve))
    assert.equal(code, 2)
    assert.match(svc.stderr(), /--operator only applies in dev/)
  })

  it('refuses a key that is not one', async () => {
    const svc = spawnService(['--dev', '--operator', 'npub1nope', '--health-port', '0', '--embedded-relay', '--embedded-port', '0'])
    const code = await new Promise<number | null>((resolve) => svc.child.once('exit', resolve))
    assert.equal(code, 2)
    assert.match(svc.stderr(), /OPERATOR|neither an npub/)
  })

  it('in dev, the given operator is the service operator, and may set variables', async () => {
    const state = tempDir('nec01-opserve-')
    const secret = generateSecretKey()
    const npub = npubEncode(getPublicKey(secret))
    const svc = spawnService(['--dev', '--embedded-relay', '--embedded-port', '0', '--health-port', '0', '--state-dir', state.path, '--operator', npub])
    try {
      const serviceNpub = await svc.ready
      assert.match(svc.stdout(), new RegExp(`^operator: ${npub}$`, 'm'))
      const url = /relays:\s+(ws:\/\/127\.0\.0\.1:[0-9]+)/.exec(svc.stdout())?.[1]
      assert.ok(url !== undefined, svc.stdout())
      const client = createTestClient(parseOperatorKey(serviceNpub), [url], secret)
      const value = secretValue('token')
      try {
        assert.match((await client.nip17('info')).reply, new RegExp(`^operator: ${npub}$`, 'm'))
        const set = await client.nip17(`set token ${value} hidden`)
        assert.ok(set.reply.startsWith('set token (hidden, mutable)'), set.reply)
        const c = committedInText(set.reply)
        assert.ok(c !== null && c.commitment === commitmentOf(value, c.salt), set.reply)
      } finally {
        await client.close()
      }
      assert.ok(svc.stderr().includes('operator change'), 'the change is logged')
      assert.ok(!svc.stderr().includes(value) && !svc.stdout().includes(value), 'but not its value')
    } finally {
      await svc.stop()
      state.remove()
    }
  })
})

describe('operator controls: what handlers see', () => {
  let relay: EmbeddedRelay
  let ts: TestService
  let op: TestClient
  let user: TestClient
  const opSecret = generateSecretKey()
  const greeting: CommandSpec = {
    summary: 'a deployment command that reads two variables',
    example: 'greeting',
    handler: async (_req, deps) => {
      const result = { greeting: deps.vars.get('greeting') ?? null, has_api_key: deps.vars.has('api_key') }
      return { result, text: JSON.stringify(result) }
    },
  }

  before(async () => {
    relay = await startTestRelay()
    ts = await startTestService({ relays: [relay.url], config: { operator: getPublicKey(opSecret), extraCommands: { greeting } } })
    op = createTestClient(ts.service.identity.pubkey, [relay.url], opSecret)
    user = createTestClient(ts.service.identity.pubkey, [relay.url])
    // answered once, so the subscription is live for the ephemeral RPC kind
    assert.equal((await op.nip17('ping')).reply, 'pong')
  })
  after(async () => {
    await op?.close()
    await user?.close()
    await ts?.close()
    await relay?.close()
  })

  it('a deployment command reads the variables through deps.vars, hidden ones included, and shows up in help', async () => {
    assert.deepEqual(resultOf((await user.rpc('greeting', {})).response), { greeting: null, has_api_key: false })
    resultOf((await op.rpc('set', { name: 'greeting', value: 'hello' })).response)
    resultOf((await op.rpc('set', { name: 'api_key', value: secretValue('k'), hidden: true })).response)
    assert.deepEqual(resultOf((await user.rpc('greeting', {})).response), { greeting: 'hello', has_api_key: true })
    const help = (await user.rpc('help', {})).response
    assert.ok('result' in help && JSON.stringify(help.result).includes('"command":"greeting"'))
  })

  it('a deployment command may not take a name already in use: the service does not start', async () => {
    for (const name of ['ping', 'info', 'attest', 'help']) assert.throws(() => commandSet({ [name]: greeting }), new RegExp(`command '${name}' is defined twice`))
    for (const name of ['ping', 'attest', 'set', 'vars', 'help']) {
      await assert.rejects(startTestService({ relays: [relay.url], config: { extraCommands: { [name]: greeting } } }), new RegExp(`'${name}' is defined twice`))
    }
    assert.deepEqual(Object.keys(commandSet({ greeting })).slice(-1), ['greeting'])
  })
})
