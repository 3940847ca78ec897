// nec01 builder-cert: the P-384 key and self-signed certificate a builder signs the enclave
// image with (NEC-03), for enclave/build.sh --sign-key/--sign-cert.
import { closeSync, openSync, writeSync } from 'node:fs'
import { bytesToHex } from '@noble/hashes/utils.js'
import { npub } from '../../nec01/nostr.js'
import { pcr8OfCertificate } from '../../nec01/pcr.js'
import { DEFAULT_CERT_DAYS, makeBuilderCertificate } from '../cli/builder-cert.js'
import { parsePubkey } from '../cli/client.js'
import { CliError, EXIT_OK, parseCommandArgs } from '../cli/exit.js'

export const USAGE = `usage: nec01 builder-cert <npub|hex> [--cert FILE] [--key FILE] [--days N] [--json]

Makes a fresh P-384 key and a self-signed certificate for the builder's npub (subject
CN=<npub>, O=Nostr, NEC-03). Sign the enclave image with both:
  enclave/build.sh --sign-key builder-key.pem --sign-cert builder-cert.pem
then delete the key, and sign the certificate as a Nostr event:
  nec01 sign build --cert builder-cert.pem --t prod --repo URL

  --cert FILE   where to write the certificate (default builder-cert.pem)
  --key FILE    where to write the private key, mode 0600 (default builder-key.pem)
  --days N      validity in days (default ${DEFAULT_CERT_DAYS}); a builder signature is refused
                once its certificate expired
  --json        print { cert, key, npub, pcr8, notAfter } as JSON

Existing files are never overwritten. exit: 0 written, 2 usage or a file that exists`

/** Creates `path` with `content`; an existing file is an error, never replaced. */
function writeNew(path: string, content: string, mode: number): void {
  let fd: number
  try {
    fd = openSync(path, 'wx', mode)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new CliError(code === 'EEXIST' ? `${path} exists: remove it or pick another name` : `cannot write ${path} (${code ?? 'error'})`)
  }
  try {
    writeSync(fd, content)
  } finally {
    closeSync(fd)
  }
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs('builder-cert', USAGE, args, {
    cert: { type: 'string' },
    key: { type: 'string' },
    days: { type: 'string' },
    json: { type: 'boolean' },
  })
  if (parsed === null) return EXIT_OK
  const { values, positionals } = parsed
  if (positionals.length !== 1) throw new CliError('expected exactly one <npub|hex>: the builder (see nec01 builder-cert --help)')
  const pubkey = parsePubkey(positionals[0] ?? '')
  const days = values.days === undefined ? DEFAULT_CERT_DAYS : Number(values.days)
  if (!/^[1-9][0-9]{0,4}$/.test(values.days ?? '1') || days > 36500) throw new CliError(`--days: expected 1..36500, got '${values.days ?? ''}'`)
  const certPath = values.cert ?? 'builder-cert.pem'
  const keyPath = values.key ?? 'builder-key.pem'
  if (certPath === keyPath) throw new CliError('--cert and --key name the same file')

  const made = await makeBuilderCertificate(pubkey, days)
  writeNew(keyPath, made.keyPem, 0o600)
  writeNew(certPath, made.certPem, 0o644)
  const pcr8 = bytesToHex(pcr8OfCertificate(made.der))
  if (values.json === true) {
    console.log(JSON.stringify({ cert: certPath, key: keyPath, npub: npub(pubkey), pcr8, notAfter: made.notAfter.toISOString() }, null, 2))
    return EXIT_OK
  }
  console.log(
    [
      `certificate: ${certPath}  (CN=${npub(pubkey)}, O=Nostr; valid until ${made.notAfter.toISOString()})`,
      `private key: ${keyPath}  (mode 0600: keep it only for the build, then delete it)`,
      `PCR8:        ${pcr8}`,
      `next:        enclave/build.sh --sign-key ${keyPath} --sign-cert ${certPath}`,
      `             rm ${keyPath}`,
      `             nec01 sign build --cert ${certPath} --t prod --repo <URL>`,
    ].join('\n'),
  )
  return EXIT_OK
}
