// Bounded reads of the small files a command is pointed at: INPUT, --pcrs, --root, relays.json,
// operator.json. A wrong path (a device such as /dev/zero, a log file, a directory) gives an
// error after at most limit + 1 bytes, never a hang or an exhausted heap. Pipes and devices
// are read like files, so `nec01 verify <(…)` works.
import { randomBytes } from 'node:crypto'
import { chmodSync, closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { CodedError } from '../nec01/errors.js'

export type FileReadProblem = 'unreadable' | 'directory' | 'too-large'

/** `code`: what is wrong (FileReadProblem). */
export class FileReadError extends CodedError<FileReadProblem> {
  readonly path: string
  /** what is wrong, without the path: "cannot read (ENOENT)", "larger than 65536 bytes" */
  readonly reason: string
  /** the system error code when problem is 'unreadable' (ENOENT, EACCES, …) */
  readonly errno: string | undefined
  constructor(problem: FileReadProblem, path: string, reason: string, errno?: string) {
    super(problem, `${path}: ${reason}`)
    this.path = path
    this.reason = reason
    this.errno = errno
  }
}

function unreadable(path: string, err: unknown): FileReadError {
  const code = (err as NodeJS.ErrnoException).code
  return new FileReadError('unreadable', path, `cannot read (${code ?? 'error'})`, code)
}

/** The file's bytes, at most `limit` of them. Throws FileReadError. */
export function readBoundedFile(path: string, limit: number): Buffer {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    throw unreadable(path, err)
  }
  try {
    const stat = fstatSync(fd)
    if (stat.isDirectory()) throw new FileReadError('directory', path, 'is a directory')
    const tooLarge = new FileReadError('too-large', path, `larger than ${limit} bytes`)
    // a regular file says its size: no need to read a huge one to refuse it
    if (stat.isFile() && stat.size > limit) throw tooLarge
    const buf = Buffer.alloc(limit + 1)
    let total = 0
    for (;;) {
      const n = readSync(fd, buf, total, buf.length - total, null)
      if (n === 0) break
      total += n
      if (total > limit) throw tooLarge
    }
    return buf.subarray(0, total)
  } catch (err) {
    if (err instanceof FileReadError) throw err
    throw unreadable(path, err)
  } finally {
    closeSync(fd)
  }
}

/**
 * A file shipped at the package root (relays.json, operator.json, package.json), from
 * dist/src/ where this module runs. fileURLToPath, not URL.pathname: an install path with a
 * space would otherwise come out as %20 and the file would look missing.
 */
export function packageFile(name: string): string {
  return fileURLToPath(new URL(`../../${name}`, import.meta.url))
}

/**
 * Writes `content` to a fresh temporary file beside `path` with exactly `mode`, and returns its
 * name; the caller renames or links it into place, so readers never see half a file.
 */
export function writeTempFile(path: string, content: string | Uint8Array, mode: number): string {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  writeFileSync(temp, content, { mode, flag: 'wx' })
  // the umask may have narrowed the mode
  chmodSync(temp, mode)
  return temp
}
