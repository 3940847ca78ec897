// enclave/kms-key.sh: the operator's key setup. Its policy is policy.ts's own document (so
// what the stand-in enforces in every test is what goes to AWS), and the irreversible lock
// happens only when asked for twice, with the bypass flag KMS demands. A recording `aws` on
// PATH stands in for the CLI.
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ADMIN_EXCLUDED_ACTIONS, enclaveKeyPolicy, evaluateKeyPolicy, attestationContext } from '../src/kms/policy.js'
import { tempDir } from './service-harness.js'

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'enclave', 'kms-key.sh')
const KEY = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'
const ROLE = 'arn:aws:iam::111122223333:role/nec01-parent'
const ADMIN = 'arn:aws:iam::111122223333:role/nec01-admin'
const pcr = (c: string): string => c.repeat(96)

const dir = tempDir('nec01-kms-key-')
after(() => dir.remove())
const pcrsFile = join(dir.path, 'pcrs.json')
writeFileSync(pcrsFile, JSON.stringify({ Measurements: { HashAlgorithm: 'Sha384 { ... }', PCR0: pcr('A'), PCR1: pcr('b'), PCR2: pcr('c') } }))
const bin = join(dir.path, 'bin')
const argsLog = join(dir.path, 'aws-args')
mkdirSync(bin)
// its arguments, NUL-separated (the policy spans lines), then a fake answer
writeFileSync(join(bin, 'aws'), `#!/bin/sh\nfor a in "$@"; do printf '%s\\0' "$a"; done > "${argsLog}"\necho ${KEY}\n`)
chmodSync(join(bin, 'aws'), 0o755)

function awsArgs(): string[] {
  return readFileSync(argsLog, 'utf8').split('\0').slice(0, -1)
}

function script(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(SCRIPT, args, { encoding: 'utf8', env: { ...process.env, PATH: `${bin}${delimiter}${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` } })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('enclave/kms-key.sh', () => {
  it('policy --print is policy.ts’s document for the build’s PCR0 (lowercased) and the --pcr asked for', () => {
    const r = script(['policy', '--key', KEY, '--role', ROLE, '--admin', ADMIN, '--pcrs', pcrsFile, '--pcr', '2', '--print'])
    assert.equal(r.status, 0, r.stderr)
    const printed: unknown = JSON.parse(r.stdout)
    assert.deepEqual(printed, enclaveKeyPolicy({ enclaveRoleArn: ROLE, adminArn: ADMIN, pcrs: { 0: pcr('a'), 2: pcr('c') } }))
    const policy = enclaveKeyPolicy({ enclaveRoleArn: ROLE, adminArn: ADMIN, pcrs: { 0: pcr('a'), 2: pcr('c') } })
    const request = (principalArn: string, pcrs: Record<string, string>) => ({ action: 'kms:Decrypt', principalArn, resourceArn: KEY, context: attestationContext(pcrs) })
    assert.equal(evaluateKeyPolicy(policy, request(ROLE, { 0: pcr('a'), 2: pcr('c') })).allowed, true)
    assert.equal(evaluateKeyPolicy(policy, request(ROLE, { 0: pcr('d'), 2: pcr('c') })).allowed, false, 'another PCR0')
    assert.equal(evaluateKeyPolicy(policy, request(ADMIN, { 0: pcr('a'), 2: pcr('c') })).allowed, false, 'the admin cannot decrypt')
  })

  it('create makes a key whose policy holds the admin statement only: nobody can seal or unseal before policy', () => {
    const r = script(['create', '--admin', ADMIN, '--region', 'eu-west-1'])
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout.trim(), KEY)
    const args = awsArgs()
    assert.deepEqual(args.slice(0, 4), ['kms', 'create-key', '--region', 'eu-west-1'])
    const policy = JSON.parse(args[args.indexOf('--policy') + 1]!) as { Statement: Array<{ Sid: string; NotAction?: string[] }> }
    assert.deepEqual(policy.Statement.map((s) => s.Sid), ['AdminWithoutDecrypt'])
    assert.deepEqual(policy.Statement[0]!.NotAction, [...ADMIN_EXCLUDED_ACTIONS])
    assert.match(r.stderr, /operator\.json/)
  })

  it('puts the policy with the admin, and without the lockout bypass', () => {
    const r = script(['policy', '--key', KEY, '--role', ROLE, '--admin', ADMIN, '--pcrs', pcrsFile])
    assert.equal(r.status, 0, r.stderr)
    const args = awsArgs()
    assert.deepEqual(args.slice(0, 2), ['kms', 'put-key-policy'])
    assert.ok(!args.includes('--bypass-policy-lockout-safety-check'))
    assert.equal(args[args.indexOf('--key-id') + 1], KEY)
  })

  it('locks only with --lock and --i-understand-this-is-irreversible, warning loudly and bypassing the lockout check', () => {
    const refused = script(['policy', '--key', KEY, '--role', ROLE, '--lock', '--pcrs', pcrsFile])
    assert.equal(refused.status, 2)
    assert.match(refused.stderr, /irreversible/)
    assert.equal(script(['policy', '--key', KEY, '--role', ROLE, '--lock', '--admin', ADMIN, '--i-understand-this-is-irreversible', '--pcrs', pcrsFile]).status, 2)
    const r = script(['policy', '--key', KEY, '--role', ROLE, '--lock', '--i-understand-this-is-irreversible', '--pcrs', pcrsFile])
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stderr, /WARNING: LOCKING THE KEY POLICY FOREVER/)
    const args = awsArgs()
    assert.ok(args.includes('--bypass-policy-lockout-safety-check'))
    const policy = JSON.parse(args[args.indexOf('--policy') + 1]!) as { Statement: Array<{ Sid: string }> }
    assert.deepEqual(policy.Statement.map((s) => s.Sid), ['EnclaveSealAndUnseal'])
  })

  it('refuses a PCR the build did not measure, and bad ARNs', () => {
    const missing = script(['policy', '--key', KEY, '--role', ROLE, '--admin', ADMIN, '--pcrs', pcrsFile, '--pcr', '8', '--print'])
    assert.equal(missing.status, 1)
    assert.match(missing.stderr, /no PCR8/)
    assert.equal(script(['policy', '--key', 'alias/x', '--role', ROLE, '--admin', ADMIN, '--print']).status, 2)
    assert.equal(script(['create', '--admin', 'root']).status, 2)
    assert.equal(script(['policy', '--key', KEY, '--role', ROLE, '--admin', ADMIN, '--pcr', '3']).status, 2)
  })
})
