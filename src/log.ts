// Structured logger: one JSON object per line on stderr, so the parent instance (or any
// log shipper) can parse enclave output without guessing at formats.

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
export type LogFields = Record<string, unknown>
/** Receives each finished line, without the trailing newline, and its level. */
export type LogSink = (line: string, level: LogLevel) => void

export interface Logger {
  readonly level: LogLevel
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  /** A logger that adds `fields` to every line (the child's own fields win on conflict). */
  child(fields: LogFields): Logger
}

export interface LoggerOptions {
  /** Threshold; default NEC01_LOG_LEVEL, else 'info'. */
  level?: LogLevel
  /** Where lines go; default stderr. */
  sink?: LogSink
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 }

// Field names that must never carry their value into a log line, whatever a caller passes.
const SECRET_FIELD = /secret|private|nsec|seckey|password|passphrase|token/i

export function parseLogLevel(value: string | undefined): LogLevel | undefined {
  const v = value?.trim().toLowerCase()
  return LOG_LEVELS.find((l) => l === v)
}

export function createLogger(bindings: LogFields = {}, options: LoggerOptions = {}): Logger {
  const level = options.level ?? parseLogLevel(process.env.NEC01_LOG_LEVEL) ?? 'info'
  const sink = options.sink ?? stderrSink
  return makeLogger(bindings, level, sink)
}

function makeLogger(bindings: LogFields, level: LogLevel, sink: LogSink): Logger {
  const threshold = RANK[level]
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[lvl] < threshold) return
    const record: LogFields = { ts: new Date().toISOString(), level: lvl, msg, ...bindings, ...fields }
    try {
      sink(serialize(record), lvl)
    } catch {
      // A broken sink (closed stderr, throwing test sink) must never take the service down.
    }
  }
  return {
    level,
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => makeLogger({ ...bindings, ...fields }, level, sink),
  }
}

function stderrSink(line: string): void {
  process.stderr.write(line + '\n')
}

/** A sink that holds lines back until release(); see holdLogLines. */
export interface HeldLog {
  sink: LogSink
  /** writes what was held, in order, then lets every line through; idempotent */
  release(): void
}

/** More held lines than this and they are let through: a start that hangs must still be seen. */
const MAX_HELD_LINES = 1000

/**
 * Holds info and debug lines back until release(), for `nec01 serve --dev`: the banner a
 * person reads first is not lost between JSON lines on one terminal. Warnings and errors
 * pass at once: they may be why the banner never comes.
 */
export function holdLogLines(target: LogSink = stderrSink): HeldLog {
  let held: Array<[string, LogLevel]> | null = []
  const release = (): void => {
    const lines = held
    held = null
    for (const [line, level] of lines ?? []) target(line, level)
  }
  return {
    sink: (line, level) => {
      if (held === null || RANK[level] >= RANK.warn) target(line, level)
      else if (held.push([line, level]) > MAX_HELD_LINES) release()
    },
    release,
  }
}

function serialize(record: LogFields): string {
  const seen = new WeakSet<object>()
  try {
    return JSON.stringify(record, (key, value: unknown) => {
      if (key !== '' && SECRET_FIELD.test(key)) return '[redacted]'
      if (typeof value === 'bigint') return value.toString()
      if (value instanceof Error) return errorFields(value)
      if (value instanceof Uint8Array) return `[${value.length} bytes]`
      if (typeof value === 'object' && value !== null) {
        if (seen.has(value)) return '[circular]'
        seen.add(value)
      }
      return value
    })
  } catch {
    return JSON.stringify({ ts: record.ts, level: record.level, msg: String(record.msg), log_error: 'unserializable fields' })
  }
}

function errorFields(err: Error): LogFields {
  const code = (err as { code?: unknown }).code
  return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) }
}
