// `nec01 serve` that fails halfway through its start closes what it had started: the process
// ends at once with its one-line error and exit code, and leaves no port taken. (A relay or a
// KMS stand-in left open keeps node running: the process would never exit.)
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { EXIT_USAGE } from '../src/cli/exit.js'
import { listenProblem } from '../src/ports.js'
import { freePort, spawnService, tempDir, type SpawnedService } from './service-harness.js'

/** Well over a failed start's ~1.5 s; a process still running then has leaked something. */
const PROMPT_MS = 15_000

const dir = tempDir('nec01-serve-start-')
after(() => dir.remove())

/** The exit code, or a failure (and SIGKILL) if the process is still running after PROMPT_MS. */
function exitWithin(svc: SpawnedService): Promise<number | null> {
  if (svc.child.exitCode !== null || svc.child.signalCode !== null) return Promise.resolve(svc.child.exitCode)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      svc.child.kill('SIGKILL')
      reject(new Error(`serve still running ${PROMPT_MS} ms after a failed start; stderr: ${svc.stderr()}`))
    }, PROMPT_MS)
    svc.child.once('exit', (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })
}

/** The last line of stderr: the one-line error, after any log lines. */
function lastLine(svc: SpawnedService): string {
  return svc.stderr().trimEnd().split('\n').at(-1) ?? ''
}

describe('serve: a failed start closes what it had started', () => {
  it('release signatures that fail after the embedded relay and the KMS stand-in started: both closed, exit 2', async () => {
    const signatures = join(dir.path, 'no-releases.json')
    writeFileSync(signatures, '[]')
    const port = await freePort()
    const holder = getPublicKey(generateSecretKey())
    const svc = spawnService(['--dev', '--embedded-relay', '--embedded-port', String(port), '--embedded-kms', '--upgrade-from', holder, '--signatures', signatures, '--health-port', '0', '--state-dir', join(dir.path, 'a')])
    assert.equal(await exitWithin(svc), EXIT_USAGE)
    assert.equal(lastLine(svc), 'nec01: --upgrade-from: no release signature (kind 63794) among the signatures given: the holder would refuse')
    assert.match(svc.stderr(), /"msg":"embedded relay closed"/, 'the relay was started, then closed')
    assert.doesNotMatch(svc.stderr(), /^\s+at /m, 'no stack trace')
    assert.equal(await listenProblem('127.0.0.1', port), null, 'the embedded relay port is free again')
  })

  it('a bad --relay beside --embedded-relay: refused before the relay starts, exit 2, the port free', async () => {
    const port = await freePort()
    const svc = spawnService(['--dev', '--embedded-relay', '--embedded-port', String(port), '--relay', 'http://relay.invalid', '--health-port', '0', '--state-dir', join(dir.path, 'b')])
    assert.equal(await exitWithin(svc), EXIT_USAGE)
    assert.equal(lastLine(svc), 'nec01: --relay: not a ws:// or wss:// URL: "http://relay.invalid"')
    assert.equal(await listenProblem('127.0.0.1', port), null, 'the embedded relay port is free again')
  })
})
