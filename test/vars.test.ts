// The operator's variables as pure rules: every (state, operation) pair, allowed or refused
// with its rule, and what a refusal leaves behind (nothing).
import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'
import { inspect } from 'node:util'
import { describe, it } from 'node:test'
import { changeNote } from '../src/service/operator.js'
import { createVarsStore, MAX_VALUE_BYTES, MAX_VARS, VarsError, type SetRequest, type VarOp, type VarsErrorCode, type VarsStore } from '../src/service/vars.js'

type State = 'absent' | 'public' | 'hidden' | 'public-immutable' | 'hidden-immutable'
type Op = 'set' | 'set hidden' | 'set immutable' | 'set hidden immutable' | 'reveal' | 'freeze' | 'unset'

const STATES: State[] = ['absent', 'public', 'hidden', 'public-immutable', 'hidden-immutable']
const OPS: Op[] = ['set', 'set hidden', 'set immutable', 'set hidden immutable', 'reveal', 'freeze', 'unset']

/** The whole table: the state after the operation, or the rule that refuses it. */
const TABLE: Record<State, Record<Op, State | VarsErrorCode>> = {
  absent: {
    set: 'public',
    'set hidden': 'hidden',
    'set immutable': 'public-immutable',
    'set hidden immutable': 'hidden-immutable',
    reveal: 'NOT_FOUND',
    freeze: 'NOT_FOUND',
    unset: 'NOT_FOUND',
  },
  public: {
    set: 'public',
    'set hidden': 'PUBLIC_TO_HIDDEN',
    'set immutable': 'public-immutable',
    'set hidden immutable': 'PUBLIC_TO_HIDDEN',
    reveal: 'ALREADY_PUBLIC',
    freeze: 'public-immutable',
    unset: 'absent',
  },
  hidden: {
    set: 'HIDDEN_NEEDS_REVEAL',
    'set hidden': 'hidden',
    'set immutable': 'HIDDEN_NEEDS_REVEAL',
    'set hidden immutable': 'hidden-immutable',
    reveal: 'public',
    freeze: 'hidden-immutable',
    unset: 'absent',
  },
  'public-immutable': {
    set: 'IMMUTABLE',
    'set hidden': 'IMMUTABLE',
    'set immutable': 'IMMUTABLE',
    'set hidden immutable': 'IMMUTABLE',
    reveal: 'IMMUTABLE',
    freeze: 'ALREADY_IMMUTABLE',
    unset: 'IMMUTABLE',
  },
  'hidden-immutable': {
    set: 'IMMUTABLE',
    'set hidden': 'IMMUTABLE',
    'set immutable': 'IMMUTABLE',
    'set hidden immutable': 'IMMUTABLE',
    reveal: 'IMMUTABLE',
    freeze: 'ALREADY_IMMUTABLE',
    unset: 'IMMUTABLE',
  },
}

const OLD = 'old value'
const NEW = 'new value'
const sha = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex')
const commit = (text: string, salt: string): string => createHmac('sha256', Buffer.from(salt, 'hex')).update(text, 'utf8').digest('hex')

function storeIn(state: State): VarsStore {
  const store = createVarsStore()
  if (state !== 'absent') {
    store.plan('set', { name: 'v', value: OLD, hidden: state.startsWith('hidden'), immutable: state.endsWith('immutable') }).apply(100)
  }
  return store
}

function stateOf(store: VarsStore): State {
  const v = store.list().find((x) => x.name === 'v')
  if (v === undefined) return 'absent'
  return `${v.hidden ? 'hidden' : 'public'}${v.immutable ? '-immutable' : ''}` as State
}

function planOp(store: VarsStore, op: Op): ReturnType<VarsStore['plan']> {
  if (op.startsWith('set')) {
    const req: SetRequest = { name: 'v', value: NEW, hidden: op.includes('hidden'), immutable: op.includes('immutable') }
    return store.plan('set', req)
  }
  return store.plan(op as Exclude<VarOp, 'set'>, { name: 'v' })
}

function refusedWith(fn: () => unknown): VarsErrorCode {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof VarsError, `expected a VarsError, got ${String(err)}`)
    assert.ok(err.message.length > 0)
    return err.code
  }
  assert.fail('expected a refusal')
}

describe('operator variables: the transition table', () => {
  for (const state of STATES) {
    for (const op of OPS) {
      const expected = TABLE[state][op]
      const allowed = (STATES as string[]).includes(expected)
      it(`${state} + ${op} → ${expected}`, () => {
        const store = storeIn(state)
        const before = JSON.stringify(store.list())
        const beforeValue = store.get('v')
        if (!allowed) {
          assert.equal(refusedWith(() => planOp(store, op)), expected)
          // a refusal changes nothing
          assert.equal(JSON.stringify(store.list()), before)
          assert.equal(store.get('v'), beforeValue)
          return
        }
        const planned = planOp(store, op)
        // planned, not applied: still the old state
        assert.equal(stateOf(store), state)
        assert.equal(JSON.stringify(store.list()), before)
        planned.apply(200)
        assert.equal(stateOf(store), expected)
        const after = store.list().find((x) => x.name === 'v')
        if (expected === 'absent') {
          assert.equal(after, undefined)
          assert.equal(store.has('v'), false)
          assert.equal(store.get('v'), undefined)
          assert.equal(planned.change.flags, null)
          assert.equal(planned.change.commitment, null)
          assert.equal(planned.operatorSalt, null)
          return
        }
        assert.ok(after !== undefined)
        const value = op.startsWith('set') ? NEW : OLD
        assert.equal(store.get('v'), value, 'handlers read the value, hidden or not')
        // the operator's check: HMAC-SHA256(salt they were told, value they sent)
        const salt = planned.operatorSalt ?? ''
        assert.match(salt, /^[0-9a-f]{64}$/)
        assert.equal(after.commitment, commit(value, salt))
        assert.equal(planned.change.commitment, after.commitment)
        // the salt is public exactly when the value is
        assert.equal(planned.change.salt, after.hidden ? null : salt)
        assert.equal(after.salt, after.hidden ? undefined : salt)
        assert.deepEqual(planned.change.flags, { hidden: after.hidden, immutable: after.immutable })
        assert.equal(after.updated_at, 200)
        if (after.hidden) assert.equal('value' in after, false, 'the list never carries a hidden value')
        else assert.equal(after.value, value)
      })
    }
  }

  it('covers every state and operation', () => {
    assert.equal(Object.keys(TABLE).length * OPS.length, 35)
    for (const s of STATES) assert.deepEqual(Object.keys(TABLE[s]).sort(), [...OPS].sort())
  })

  it('never goes back: short of unset (a new variable), nothing leads immutable → mutable or public → hidden', () => {
    // Breadth-first over the table from every state: the reachable set only narrows. Unset
    // ends the variable (and is refused for an immutable one); what is set after it is new.
    for (const start of STATES) {
      const seen = new Set<State>([start])
      const queue: State[] = [start]
      while (queue.length > 0) {
        const s = queue.shift() as State
        for (const op of OPS.filter((o) => o !== 'unset')) {
          const next = TABLE[s][op]
          if ((STATES as string[]).includes(next) && !seen.has(next as State)) {
            seen.add(next as State)
            queue.push(next as State)
          }
        }
      }
      if (start.endsWith('immutable')) assert.deepEqual([...seen], [start])
      if (start === 'public') assert.ok(![...seen].includes('hidden') && ![...seen].includes('hidden-immutable'))
    }
  })
})

describe('operator variables: checks and bounds', () => {
  it('names are [a-z0-9_]{1,64}', () => {
    const store = createVarsStore()
    for (const bad of ['', 'A', 'api-key', 'a b', 'é', 'x'.repeat(65), '../x']) {
      assert.equal(refusedWith(() => store.plan('set', { name: bad, value: 'v', hidden: false, immutable: false })), 'NAME_INVALID', bad)
      assert.equal(refusedWith(() => store.plan('unset', { name: bad })), 'NAME_INVALID', bad)
    }
    store.plan('set', { name: `a_0${'z'.repeat(61)}`, value: 'v', hidden: false, immutable: false }).apply(1)
    assert.equal(store.list().length, 1)
  })

  it('values are at most 16 KiB of UTF-8, counted in bytes; the refusal does not echo the value', () => {
    const store = createVarsStore()
    store.plan('set', { name: 'a', value: 'x'.repeat(MAX_VALUE_BYTES), hidden: true, immutable: false }).apply(1)
    const tooBig = 'secret'.repeat(3000)
    try {
      store.plan('set', { name: 'b', value: tooBig, hidden: true, immutable: false })
      assert.fail('accepted')
    } catch (err) {
      assert.ok(err instanceof VarsError)
      assert.equal(err.code, 'VALUE_TOO_LARGE')
      assert.doesNotMatch(err.message, /secret/)
    }
    // 'é' is two bytes: half as many characters fit
    assert.equal(refusedWith(() => store.plan('set', { name: 'c', value: 'é'.repeat(MAX_VALUE_BYTES / 2 + 1), hidden: false, immutable: false })), 'VALUE_TOO_LARGE')
    store.plan('set', { name: 'c', value: 'é'.repeat(MAX_VALUE_BYTES / 2), hidden: false, immutable: false }).apply(1)
    assert.equal(refusedWith(() => store.plan('set', { name: 'd', value: 42 as unknown as string, hidden: false, immutable: false })), 'VALUE_INVALID')
  })

  it(`holds at most ${MAX_VARS} variables, and replacing one does not count`, () => {
    const store = createVarsStore()
    for (let i = 0; i < MAX_VARS; i++) store.plan('set', { name: `v${i}`, value: 'x', hidden: false, immutable: false }).apply(1)
    assert.equal(refusedWith(() => store.plan('set', { name: 'one_more', value: 'x', hidden: false, immutable: false })), 'TOO_MANY_VARS')
    store.plan('set', { name: 'v0', value: 'y', hidden: false, immutable: false }).apply(2)
    store.plan('unset', { name: 'v1' }).apply(3)
    store.plan('set', { name: 'one_more', value: 'x', hidden: false, immutable: false }).apply(4)
    assert.equal(store.list().length, MAX_VARS)
  })

  it('a plan made before another change cannot be applied', () => {
    const store = createVarsStore()
    const first = store.plan('set', { name: 'a', value: '1', hidden: false, immutable: false })
    const second = store.plan('set', { name: 'a', value: '2', hidden: true, immutable: false })
    first.apply(1)
    assert.throws(() => second.apply(2), /changed since/)
    assert.equal(store.get('a'), '1')
    assert.equal(store.list()[0]?.hidden, false)
  })

  it('a hidden value is in no listing, serialisation or inspection of the store', () => {
    const store = createVarsStore()
    const secret = 'sk_live_hidden_9f8e7d6c'
    store.plan('set', { name: 'key', value: secret, hidden: true, immutable: false }).apply(1)
    store.plan('set', { name: 'motd', value: 'hello', hidden: false, immutable: false }).apply(1)
    assert.deepEqual(
      store.list().map((v) => v.name),
      ['key', 'motd'],
    )
    for (const text of [JSON.stringify(store.list()), JSON.stringify(store), inspect(store, { depth: 10, showHidden: true }), JSON.stringify(store.plan('freeze', { name: 'key' }).change)]) {
      assert.ok(!text.includes(secret), text)
    }
    assert.equal(store.get('key'), secret)
    assert.equal(store.has('key'), true)
    assert.equal(store.has('nope'), false)
  })
})

describe('operator variables: what is published cannot be checked against a guess', () => {
  it('a hidden 4-digit PIN: no PIN hashes to anything in the list or the change notes; the commitment opens only with the salt, disclosed by reveal', () => {
    const store = createVarsStore()
    const pin = '4821'
    const set = store.plan('set', { name: 'pin', value: pin, hidden: true, immutable: false })
    set.apply(1)
    // everything a stranger sees: the listing and the public note of the change
    const published = JSON.stringify([store.list(), changeNote(set.change, 'ab'.repeat(32))])
    const hexes = new Set(published.match(/[0-9a-f]{64}/g) ?? [])
    for (let n = 0; n < 10_000; n++) {
      const guess = String(n).padStart(4, '0')
      assert.ok(!hexes.has(sha(guess)), `SHA-256 of ${guess} is published: the PIN falls to 10,000 guesses`)
    }
    const hidden = store.list()[0]
    assert.ok(hidden !== undefined && hidden.salt === undefined, 'no salt while hidden')
    // the same value set again, or elsewhere, commits differently
    const other = createVarsStore()
    other.plan('set', { name: 'pin', value: pin, hidden: true, immutable: false }).apply(1)
    assert.notEqual(other.list()[0]?.commitment, hidden.commitment)
    // reveal discloses the salt, with which anyone checks the earlier commitment
    const reveal = store.plan('reveal', { name: 'pin' })
    assert.equal(reveal.change.salt, set.operatorSalt)
    assert.equal(changeNote(reveal.change, 'ab'.repeat(32)).tags.find((t) => t[0] === 'salt')?.[1], set.operatorSalt)
    reveal.apply(2)
    const shown = store.list()[0]
    assert.ok(shown?.salt !== undefined)
    assert.equal(commit(shown.value ?? '', shown.salt), hidden.commitment)
  })

  it('salts come from the given random source, 32 bytes each', () => {
    const calls: number[] = []
    const store = createVarsStore({
      random: (n) => {
        calls.push(n)
        return new Uint8Array(n).fill(7)
      },
    })
    const planned = store.plan('set', { name: 'v', value: 'x', hidden: true, immutable: false })
    assert.deepEqual(calls, [32])
    assert.equal(planned.operatorSalt, '07'.repeat(32))
  })
})
