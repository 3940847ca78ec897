// The embedded relay's event store: @nostr-relay/event-repository-sqlite (its schema, its
// queries, its migrations) on a better-sqlite3 database, with the two calls core makes for
// every stored event answered by prepared statements instead of kysely.
//
// Measured on this machine (kind 4 with a 7 KB tee_root tag, in-memory database): the
// repository's upsert took 0.58-0.83 ms per event, the same SQL run directly 0.16 ms; core
// also asks findOne({ ids: [id] }) before each upsert, another query built by kysely. With a
// DM and its reply stored for every NIP-04 request, these were most of the relay's CPU. Only
// the plain case takes the direct path: a regular event (no d tag value: not replaceable) that
// is not indexed for search. Replaceable, addressable and searchable events, deletions and
// REQ queries stay the repository's own code.
//
// DMs do not stay forever (see docs/relays.md, "How long the embedded relay keeps events"):
// kind 4 and 1059 and anything in the ephemeral range are dropped a window after they
// arrived, and beyond a count, oldest first. Everything else is kept.
import { createRequire } from 'node:module'
import type { Event, EventRepositoryUpsertResult, Filter } from '@nostr-relay/common'
import type { EventRepositorySqlite } from '@nostr-relay/event-repository-sqlite'
import { createLru } from '../../nec01/lru.js'

/** Distinct SQL texts kept prepared: the repository's few statements, plus filter shapes. */
const STATEMENT_CACHE_LIMIT = 256
/**
 * Events with a tee_root tag are about 7 KB and overflow SQLite's default 4 KB pages. Measured
 * in memory, inserting such events: 0.18 ms each at 5,000 stored, 1.4 ms at 40,000 with 4 KB
 * pages; 0.21 ms and 0.35 ms with 16 KB. It takes effect only when the database is created.
 */
const PAGE_SIZE = 16_384

/** How long DMs are kept: whichever bound is reached first. */
export interface Retention {
  /** seconds after a DM arrived */
  windowSec: number
  /** DMs kept at most, the oldest (by arrival) dropped first */
  maxEvents: number
}

/**
 * A day of DMs, at most 10,000 (about 40 MB in memory with the service's 7 KB replies): a
 * developer can read yesterday's replies, and `npm start` left running for a week stays at
 * the size it reached on its first busy hour.
 */
export const DEFAULT_RETENTION: Retention = { windowSec: 24 * 3600, maxEvents: 10_000 }
/** Events stored on the direct path between two prunes; a timer prunes an idle store. */
const PRUNE_EVERY_EVENTS = 500
const PRUNE_INTERVAL_MS = 60_000

/** NIP-04 DMs, NIP-59 gift wraps and the ephemeral range (NIP-01), should core ever store one. */
const EXPIRING = '(kind IN (4, 1059) OR kind BETWEEN 20000 AND 29999)'
const LAST_ROWID = 'SELECT max(rowid) AS n FROM events'
/** rowid grows with each insert: the rowid of the newest DM beyond the count limit. */
const OVER_LIMIT = `SELECT rowid AS n FROM events WHERE ${EXPIRING} ORDER BY rowid DESC LIMIT 1 OFFSET ?`
const EXPIRE_TAGS = `DELETE FROM generic_tags WHERE event_id IN (SELECT id FROM events WHERE rowid <= ? AND ${EXPIRING})`
const EXPIRE_EVENTS = `DELETE FROM events WHERE rowid <= ? AND ${EXPIRING}`

export interface EventStoreOptions {
  retention?: Retention
  /** ms since the epoch; tests move it */
  now?: () => number
}

interface SqliteStatement {
  run(...params: unknown[]): { changes: number }
  get(...params: unknown[]): unknown
}
interface SqliteDatabase {
  readonly inTransaction: boolean
  prepare(sql: string): SqliteStatement
  pragma(source: string): unknown
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R
}
type SqliteDatabaseClass = new (filename: string) => SqliteDatabase

interface RepositoryModules {
  EventRepositorySqlite: typeof EventRepositorySqlite
  /** the EventUtils the repository itself uses (author, d tag) */
  EventUtils: {
    getAuthor(event: Event): string
    extractDTagValue(event: Event): string | null
  }
  /** the repository's rule for what goes into its full-text index ('' = nothing) */
  extractSearchableContent(event: Event): string
  Database: SqliteDatabaseClass
}

/** SQLite's primary-key conflict: the event is already stored. */
const SQLITE_CONSTRAINT_PRIMARYKEY = 'SQLITE_CONSTRAINT_PRIMARYKEY'

const SELECT_BY_ID = 'SELECT id, pubkey, kind, tags, content, sig, created_at FROM events WHERE id = ?'
const INSERT_EVENT = 'INSERT INTO events (id, pubkey, author, kind, created_at, tags, content, sig, d_tag_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)'
const DELETE_TAGS = 'DELETE FROM generic_tags WHERE event_id = ?'
const INSERT_TAG = 'INSERT INTO generic_tags (tag, event_id, kind, author, created_at) VALUES (?, ?, ?, ?, ?)'

interface EventRow {
  id: string
  pubkey: string
  kind: number
  tags: string
  content: string
  sig: string
  created_at: number
}

async function loadModules(): Promise<RepositoryModules> {
  const { EventRepositorySqlite } = await import('@nostr-relay/event-repository-sqlite')
  const fromRepository = createRequire(createRequire(import.meta.url).resolve('@nostr-relay/event-repository-sqlite'))
  const { EventUtils } = fromRepository('@nostr-relay/common') as Pick<RepositoryModules, 'EventUtils'>
  const { extractSearchableContent } = fromRepository('./search') as Pick<RepositoryModules, 'extractSearchableContent'>
  const Database = fromRepository('better-sqlite3') as SqliteDatabaseClass
  return { EventRepositorySqlite, EventUtils, extractSearchableContent, Database }
}

/**
 * kysely's SQLite driver prepares each statement anew; better-sqlite3 statements are reusable
 * and the driver runs each to completion before the next (all() or run(), never an open
 * iterator), so one statement is kept per SQL text, oldest dropped first.
 */
function openDatabase(Database: SqliteDatabaseClass, filename: string): SqliteDatabase {
  class ReusedStatements extends Database {
    readonly #statements = createLru<string, SqliteStatement>(STATEMENT_CACHE_LIMIT)
    override prepare(sql: string): SqliteStatement {
      const kept = this.#statements.peek(sql)
      if (kept !== undefined) return kept
      const statement = super.prepare(sql)
      this.#statements.set(sql, statement)
      return statement
    }
  }
  const db = new ReusedStatements(filename)
  db.pragma(`page_size = ${PAGE_SIZE}`)
  // what the repository does itself when it opens a file
  db.pragma('journal_mode = WAL')
  return db
}

/** The repository's generic tags: single-letter names, `name:value`, each once. */
function genericTags(event: Event): string[] {
  const tags = new Set<string>()
  for (const [name, value] of event.tags) {
    if (name !== undefined && /^[a-zA-Z]$/.test(name)) tags.add(`${name}:${value}`)
  }
  return [...tags]
}

function isSingleIdLookup(filter: Filter): filter is Filter & { ids: [string] } {
  const keys = Object.keys(filter)
  return keys.length === 1 && keys[0] === 'ids' && Array.isArray(filter.ids) && filter.ids.length === 1 && typeof filter.ids[0] === 'string'
}

function hasCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
}

/**
 * Arrival time without a column per event: every prune notes the newest rowid and the time,
 * so every event up to a note older than the window arrived more than a window ago (a DM
 * goes at most one prune interval late). The notes start with the process.
 */
function createPruner(db: SqliteDatabase, retention: Retention, now: () => number): () => number {
  const notes: { at: number; rowid: number }[] = []
  const expire = db.transaction((upTo: number) => {
    db.prepare(EXPIRE_TAGS).run(upTo)
    return db.prepare(EXPIRE_EVENTS).run(upTo).changes
  })
  return () => {
    // a repository transaction is open on this connection: next time
    if (db.inTransaction) return 0
    const t = now()
    notes.push({ at: t, rowid: (db.prepare(LAST_ROWID).get() as { n: number | null }).n ?? 0 })
    let upTo = 0
    while (notes.length > 0 && notes[0]!.at <= t - retention.windowSec * 1000) upTo = notes.shift()!.rowid
    const over = db.prepare(OVER_LIMIT).get(retention.maxEvents) as { n: number } | undefined
    if (over !== undefined) upTo = Math.max(upTo, over.n)
    return upTo > 0 ? expire(upTo) : 0
  }
}

/** The repository, with DMs pruned (`prune()` runs one pass now; it also runs by itself). */
export type EventStore = EventRepositorySqlite & { prune(): number }

/** Opens (':memory:' or a file) and migrates the store. */
export async function openEventStore(filename: string, options: EventStoreOptions = {}): Promise<EventStore> {
  const m = await loadModules()
  const db = openDatabase(m.Database, filename)
  const prune = createPruner(db, options.retention ?? DEFAULT_RETENTION, options.now ?? Date.now)
  let storedSincePrune = 0
  const timer = setInterval(prune, PRUNE_INTERVAL_MS)
  timer.unref()

  const storePlain = db.transaction((event: Event, author: string, tags: string[]) => {
    db.prepare(INSERT_EVENT).run(event.id, event.pubkey, author, event.kind, event.created_at, JSON.stringify(event.tags), event.content, event.sig)
    if (tags.length === 0) return
    db.prepare(DELETE_TAGS).run(event.id)
    const insertTag = db.prepare(INSERT_TAG)
    for (const tag of tags) insertTag.run(tag, event.id, event.kind, author, event.created_at)
  })

  class PrunedStore extends m.EventRepositorySqlite {
    override async upsert(event: Event): Promise<EventRepositoryUpsertResult> {
      // A kysely transaction spans awaits on this same connection. While one is open (a
      // replaceable event, a deletion) the direct path would join it, so it queues behind
      // it through the repository's own code instead.
      if (db.inTransaction || m.EventUtils.extractDTagValue(event) !== null || m.extractSearchableContent(event) !== '') return super.upsert(event)
      try {
        storePlain(event, m.EventUtils.getAuthor(event), genericTags(event))
        if (++storedSincePrune >= PRUNE_EVERY_EVENTS) {
          storedSincePrune = 0
          prune()
        }
        return { isDuplicate: false }
      } catch (err) {
        if (hasCode(err, SQLITE_CONSTRAINT_PRIMARYKEY)) return { isDuplicate: true }
        throw err
      }
    }

    override async findOne(filter: Filter): Promise<Event | null> {
      if (db.inTransaction || !isSingleIdLookup(filter)) return super.findOne(filter)
      const row = db.prepare(SELECT_BY_ID).get(filter.ids[0]) as EventRow | undefined
      if (row === undefined) return null
      return { id: row.id, pubkey: row.pubkey, kind: row.kind, tags: JSON.parse(row.tags) as string[][], content: row.content, sig: row.sig, created_at: row.created_at }
    }

    prune(): number {
      return prune()
    }

    override async destroy(): Promise<void> {
      clearInterval(timer)
      await super.destroy()
    }
  }

  const store = new PrunedStore(db as unknown as ConstructorParameters<typeof EventRepositorySqlite>[0])
  await store.init()
  return store
}
