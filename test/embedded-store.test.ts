// The embedded relay's store: its direct path for plain events must leave exactly the rows the
// repository's own upsert leaves, and every other event must still take the repository's path.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import type { Event } from '@nostr-relay/common'
import { EventRepositorySqlite } from '@nostr-relay/event-repository-sqlite'
import { openEventStore } from '../src/embedded/store.js'

interface Rows {
  all(): unknown[]
}
interface Db {
  prepare(sql: string): Rows
}

const fromRepository = createRequire(createRequire(import.meta.url).resolve('@nostr-relay/event-repository-sqlite'))
const Database = fromRepository('better-sqlite3') as new (filename: string) => Db

function signed(kind: number, tags: string[][], content: string, createdAt = 1_700_000_000): Event {
  return finalizeEvent({ kind, created_at: createdAt, tags, content }, generateSecretKey()) as Event
}

function dump(db: Db): { events: unknown[]; tags: unknown[]; fts: unknown[] } {
  return {
    events: db.prepare('SELECT * FROM events ORDER BY id').all(),
    tags: db.prepare('SELECT * FROM generic_tags ORDER BY event_id, tag').all(),
    fts: db.prepare('SELECT id, content FROM events_fts ORDER BY id').all(),
  }
}

const peer = getPublicKey(generateSecretKey())
const plain = [
  // a NIP-04 DM and its reply: p and e tags, a long multi-letter tag that is not indexed
  signed(4, [['p', peer]], 'ciphertext?iv=aaaaaaaaaaaaaaaaaaaaaa=='),
  signed(4, [['p', peer], ['e', 'a'.repeat(64)], ['tee_root', 'x'.repeat(7000)]], 'reply?iv=bbbbbbbbbbbbbbbbbbbbbb=='),
  // the same tag twice is indexed once; an empty tag and a tag without a value do not break it
  signed(1059, [['p', peer], ['p', peer], [], ['t']], 'wrap'),
]
// each of these must stay on the repository's path: replaceable, addressable, searchable
const special = [signed(0, [], '{"name":"x"}'), signed(30078, [['d', 'k']], 'value'), signed(1, [['t', 'nostr']], 'a searchable note')]

test('plain events stored directly leave the same rows as the repository; the others take its path', async () => {
  const direct = await openEventStore(':memory:')
  const referenceDb = new Database(':memory:')
  const reference = new EventRepositorySqlite(referenceDb as unknown as ConstructorParameters<typeof EventRepositorySqlite>[0])
  await reference.init()
  try {
    for (const event of [...plain, ...special]) {
      assert.deepEqual(await direct.upsert(event), { isDuplicate: false }, `kind ${event.kind}`)
      assert.deepEqual(await reference.upsert(event), { isDuplicate: false })
    }
    const got = dump(direct.getDatabase() as unknown as Db)
    assert.deepEqual(got, dump(referenceDb))
    assert.equal(got.events.length, plain.length + special.length)
    assert.equal(got.fts.length, 2, 'the profile and the note are indexed for search, nothing else')

    for (const event of [...plain, ...special]) {
      assert.deepEqual(await direct.upsert(event), { isDuplicate: true }, `kind ${event.kind} again`)
      assert.deepEqual(await direct.findOne({ ids: [event.id] }), await reference.findOne({ ids: [event.id] }))
    }
    assert.equal(await direct.findOne({ ids: ['f'.repeat(64)] }), null)
    // tag queries (the repository's own) find what the direct path stored
    assert.equal((await direct.find({ kinds: [4], '#p': [peer] })).length, 2)
    assert.equal((await direct.find({ '#e': ['a'.repeat(64)] }))[0]?.id, plain[1]!.id)
  } finally {
    await direct.destroy()
    await reference.destroy()
  }
})

test('a replaceable event is replaced by a newer one, not by an older one', async () => {
  const store = await openEventStore(':memory:')
  try {
    const sk = generateSecretKey()
    const at = (t: number, content: string): Event => finalizeEvent({ kind: 0, created_at: t, tags: [], content }, sk) as Event
    await store.upsert(at(100, 'old'))
    await store.upsert(at(200, 'new'))
    await store.upsert(at(150, 'late but older'))
    const found = await store.find({ kinds: [0], authors: [getPublicKey(sk)] })
    assert.deepEqual(
      found.map((e) => e.content),
      ['new'],
    )
  } finally {
    await store.destroy()
  }
})

test('a plain event stored while a repository transaction is open waits for it: the transaction\'s rollback does not take it along', async () => {
  const store = await openEventStore(':memory:')
  const db = store.getDatabase() as unknown as { inTransaction: boolean }
  try {
    await store.upsert(plain[1]!)
    // An addressable event whose id is taken (the relay checks ids before the store; the store
    // does not): its upsert is a kysely transaction across awaits that ends in a primary-key
    // conflict and a rollback. The plain event arrives while it is open.
    const clash: Event = { ...special[1]!, id: plain[1]!.id, tags: [['d', 'other']] }
    const again = store.upsert(clash)
    let turns = 0
    while (!db.inTransaction && turns++ < 10_000) await Promise.resolve()
    assert.equal(db.inTransaction, true, 'the repository transaction is open')
    const stored = store.upsert(plain[0]!)
    assert.deepEqual(await again, { isDuplicate: true })
    assert.deepEqual(await stored, { isDuplicate: false })
    assert.equal((await store.findOne({ ids: [plain[0]!.id] }))?.id, plain[0]!.id, 'the plain event is kept')
  } finally {
    await store.destroy()
  }
})

test('DMs expire a window after they arrived and beyond the count limit, oldest first; other events stay', async () => {
  let now = 1_000_000
  const store = await openEventStore(':memory:', { retention: { windowSec: 3600, maxEvents: 4 }, now: () => now })
  const db = store.getDatabase() as unknown as Db
  const ids = (): string[] => (db.prepare('SELECT id FROM events ORDER BY rowid').all() as { id: string }[]).map((r) => r.id)
  const tagged = (): number => db.prepare('SELECT event_id FROM generic_tags').all().length
  try {
    // backdated as NIP-59 wraps are: arrival counts, not created_at
    const first = [signed(4, [['p', peer]], 'a'), signed(1059, [['p', peer]], 'b', 1_600_000_000), signed(4, [['p', peer]], 'c')]
    const note = signed(1, [['p', peer]], 'a note stays')
    for (const e of [...first, note]) await store.upsert(e)
    assert.equal(store.prune(), 0, 'nothing is old or over the limit yet')
    now += 1800 * 1000
    const later = [signed(4, [['p', peer]], 'd'), signed(1059, [['p', peer]], 'e')]
    for (const e of later) await store.upsert(e)
    assert.equal(store.prune(), 1, 'five DMs, four kept: the oldest goes')
    assert.deepEqual(ids(), [...first.slice(1), note, ...later].map((e) => e.id))
    now += 1801 * 1000
    assert.equal(store.prune(), 2, 'an hour after the first prune, what had arrived by then is gone')
    assert.deepEqual(ids(), [note, ...later].map((e) => e.id))
    assert.equal(tagged(), 3, 'their tag rows went with them')
    assert.equal(await store.findOne({ ids: [first[2]!.id] }), null)
    assert.equal((await store.find({ kinds: [4, 1059], '#p': [peer] })).length, 2)
  } finally {
    await store.destroy()
  }
})
