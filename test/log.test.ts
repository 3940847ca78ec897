import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createLogger, holdLogLines, parseLogLevel } from '../src/log.js'

function capture(level?: 'debug' | 'info' | 'warn' | 'error') {
  const lines: string[] = []
  const log = createLogger({ service: 'test' }, { ...(level ? { level } : {}), sink: (l) => lines.push(l) })
  return { log, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

test('one JSON object per line with ts, level, msg, bindings and fields', () => {
  const { log, lines, records } = capture('debug')
  log.info('hello', { n: 1 })
  log.child({ relay: 'wss://x' }).warn('child line', { n: 2 })
  assert.equal(lines.length, 2)
  for (const l of lines) assert.doesNotMatch(l, /\n/)
  const [a, b] = records()
  assert.equal(a!.level, 'info')
  assert.equal(a!.msg, 'hello')
  assert.equal(a!.service, 'test')
  assert.equal(a!.n, 1)
  assert.ok(!Number.isNaN(Date.parse(String(a!.ts))))
  assert.equal(b!.relay, 'wss://x')
  assert.equal(b!.service, 'test')
  assert.equal(b!.level, 'warn')
})

test('the threshold drops lower levels', () => {
  const { log, records } = capture('warn')
  log.debug('d')
  log.info('i')
  log.warn('w')
  log.error('e')
  assert.deepEqual(
    records().map((r) => r.level),
    ['warn', 'error'],
  )
})

test('level from NEC01_LOG_LEVEL, default info', () => {
  const saved = process.env.NEC01_LOG_LEVEL
  try {
    process.env.NEC01_LOG_LEVEL = 'ERROR'
    assert.equal(createLogger({}, { sink: () => undefined }).level, 'error')
    process.env.NEC01_LOG_LEVEL = 'nonsense'
    assert.equal(createLogger({}, { sink: () => undefined }).level, 'info')
    delete process.env.NEC01_LOG_LEVEL
    assert.equal(createLogger({}, { sink: () => undefined }).level, 'info')
  } finally {
    if (saved === undefined) delete process.env.NEC01_LOG_LEVEL
    else process.env.NEC01_LOG_LEVEL = saved
  }
  assert.equal(parseLogLevel(' Debug '), 'debug')
  assert.equal(parseLogLevel(undefined), undefined)
})

test('secrets, bytes, errors, bigints and cycles are rendered safely', () => {
  const { log, records } = capture()
  const cyclic: Record<string, unknown> = { a: 1 }
  cyclic.self = cyclic
  log.info('x', {
    secretKey: 'deadbeef',
    nsec: 'nsec1...',
    key: new Uint8Array(32),
    error: Object.assign(new Error('boom'), { code: 'E_X' }),
    big: 10n,
    cyclic,
  })
  const [r] = records()
  assert.equal(r!.secretKey, '[redacted]')
  assert.equal(r!.nsec, '[redacted]')
  assert.equal(r!.key, '[32 bytes]')
  assert.deepEqual(r!.error, { name: 'Error', message: 'boom', code: 'E_X' })
  assert.equal(r!.big, '10')
  assert.deepEqual(r!.cyclic, { a: 1, self: '[circular]' })
})

test('a throwing sink never throws into the caller', () => {
  const log = createLogger({}, { sink: () => {
    throw new Error('closed')
  } })
  assert.doesNotThrow(() => log.error('still fine'))
})

test('holdLogLines: info and debug wait for release, in order; warnings and errors pass at once', () => {
  const out: string[] = []
  const held = holdLogLines((line) => out.push(line))
  const log = createLogger({}, { level: 'debug', sink: held.sink })
  log.info('one')
  log.debug('two')
  log.warn('now')
  assert.deepEqual(out.map((l) => (JSON.parse(l) as { msg: string }).msg), ['now'])
  held.release()
  log.info('three')
  held.release() // a second release writes nothing twice
  assert.deepEqual(out.map((l) => (JSON.parse(l) as { msg: string }).msg), ['now', 'one', 'two', 'three'])
})

test('holdLogLines: a start that never releases still shows its lines past the bound', () => {
  const out: string[] = []
  const held = holdLogLines((line) => out.push(line))
  const log = createLogger({}, { level: 'info', sink: held.sink })
  for (let i = 0; i < 1000; i++) log.info('waiting')
  assert.equal(out.length, 0)
  log.info('one more')
  assert.equal(out.length, 1001)
})
