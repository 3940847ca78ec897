// npm run build:web: the nec01/ verifier as one ES module for browsers (dist/web/nec01.js),
// the example page's script, and — only to compare sizes — the reference implementation
// (nostr-enclaves) bundled the same way. A browser bundle must never pull in a Node
// builtin: the build fails on the first one instead of shipping a stub that breaks at run time.
import { build, type Metafile, type Plugin } from 'esbuild'
import { mkdirSync, readFileSync, statSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { gzipSync } from 'node:zlib'
import { errorText } from '../nec01/errors.js'

/** The project root: this file runs from dist/scripts/ (or another tsc outDir). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const DEFAULT_OUT_DIR = join(PROJECT_ROOT, 'dist', 'web')

/** The size budget: our gzipped bundle at most this fraction of the reference's. */
export const MAX_GZIP_RATIO = 0.5

/** The reference's one Node import: `await import("node:crypto")`, reached only when `window` is undefined. */
const REFERENCE_NODE_IMPORTS = ['node:crypto']

export interface BundleSize {
  file: string
  raw: number
  /** node:zlib gzip, level 9 */
  gzip: number
}

export interface WebBuildOptions {
  /** default dist/web */
  outDir?: string
  /** also bundle nostr-enclaves into reference.js to compare sizes (default true) */
  reference?: boolean
}

export interface WebBuildReport {
  bundle: BundleSize
  example: BundleSize
  reference: BundleSize | null
  /** bundle.gzip / reference.gzip, null without a reference */
  ratio: number | null
  /** packages bundled from more than one place (each copy costs its full size) */
  duplicates: string[]
}

const NODE_BUILTINS = new Set(builtinModules)

/** Fails the build on any import of a Node builtin, except the listed ones, which stay external. */
export function noNodeBuiltins(allowExternal: string[] = []): Plugin {
  return {
    name: 'no-node-builtins',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        // 'fs/promises' is the builtin 'fs' too; an npm polyfill of the same name is refused
        // as well: nec01 needs none, so its appearance means something pulled in Node code
        const builtin = args.path.startsWith('node:') || NODE_BUILTINS.has(args.path.split('/')[0] ?? '')
        if (!builtin) return undefined
        if (allowExternal.includes(args.path)) return { path: args.path, external: true }
        return { errors: [{ text: `${args.path} is a Node builtin: a browser bundle cannot use it (imported by ${relative(PROJECT_ROOT, args.importer)})` }] }
      })
    },
  }
}

function sizeOf(file: string): BundleSize {
  const bytes = readFileSync(file)
  return { file, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length }
}

/** Imports the bundle leaves to the page: for the library there must be none. */
function externalImports(meta: Metafile): string[] {
  return Object.values(meta.outputs).flatMap((o) => o.imports.filter((i) => i.external === true).map((i) => i.path))
}

/** node_modules/a/node_modules/@s/p/x.js → @s/p, for every package contributing bytes. */
function duplicatePackages(meta: Metafile): string[] {
  const copies = new Map<string, Set<string>>()
  for (const output of Object.values(meta.outputs)) {
    for (const input of Object.keys(output.inputs)) {
      const m = /^(.*node_modules\/)((?:@[^/]+\/)?[^/]+)\//.exec(input)
      if (m?.[1] === undefined || m[2] === undefined) continue
      const set = copies.get(m[2]) ?? new Set<string>()
      set.add(m[1] + m[2])
      copies.set(m[2], set)
    }
  }
  return [...copies].filter(([, dirs]) => dirs.size > 1).map(([name, dirs]) => `${name} (${[...dirs].join(', ')})`)
}

const BROWSER = { bundle: true, format: 'esm', platform: 'browser', target: 'es2022', logLevel: 'silent', metafile: true } as const

async function buildLibrary(outDir: string): Promise<{ size: BundleSize; duplicates: string[] }> {
  const outfile = join(outDir, 'nec01.js')
  const result = await build({
    ...BROWSER,
    absWorkingDir: PROJECT_ROOT,
    entryPoints: ['nec01/index.ts'],
    outfile,
    minify: true,
    sourcemap: true,
    plugins: [noNodeBuiltins()],
  })
  const external = externalImports(result.metafile)
  if (external.length > 0) throw new Error(`nec01.js must be self-contained, but imports ${external.join(', ')}`)
  return { size: sizeOf(outfile), duplicates: duplicatePackages(result.metafile) }
}

/**
 * The example page's script. It imports the library from nec01/ (so it is type-checked
 * against the real API) and loads it at run time from ./nec01.js beside it: the page runs
 * exactly the bundle a web client would ship, not a second copy.
 */
async function buildExample(outDir: string): Promise<BundleSize> {
  const outfile = join(outDir, 'example.js')
  const library = join(PROJECT_ROOT, 'nec01', 'index.ts')
  const useBundle: Plugin = {
    name: 'nec01-from-bundle',
    setup(b) {
      b.onResolve({ filter: /nec01\/index\.js$/ }, (args) =>
        resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts')) === library ? { path: './nec01.js', external: true } : undefined,
      )
    },
  }
  const result = await build({
    ...BROWSER,
    absWorkingDir: PROJECT_ROOT,
    entryPoints: ['docs/example/example.ts'],
    outfile,
    plugins: [useBundle, noNodeBuiltins()],
  })
  const external = externalImports(result.metafile).filter((p) => p !== './nec01.js')
  if (external.length > 0) throw new Error(`example.js may import only ./nec01.js, but imports ${external.join(', ')}`)
  return sizeOf(outfile)
}

/** nostr-enclaves from its ESM entry, minified for the browser, only to weigh it. */
async function buildReference(outDir: string): Promise<BundleSize> {
  const outfile = join(outDir, 'reference.js')
  await build({
    ...BROWSER,
    absWorkingDir: PROJECT_ROOT,
    entryPoints: ['nostr-enclaves'],
    outfile,
    minify: true,
    plugins: [noNodeBuiltins(REFERENCE_NODE_IMPORTS)],
  })
  return sizeOf(outfile)
}

export async function buildWeb(options: WebBuildOptions = {}): Promise<WebBuildReport> {
  const outDir = resolve(options.outDir ?? DEFAULT_OUT_DIR)
  mkdirSync(outDir, { recursive: true })
  const library = await buildLibrary(outDir)
  const example = await buildExample(outDir)
  const reference = options.reference === false ? null : await buildReference(outDir)
  return {
    bundle: library.size,
    example,
    reference,
    ratio: reference === null ? null : library.size.gzip / reference.gzip,
    duplicates: library.duplicates,
  }
}

const kib = (n: number): string => `${(n / 1024).toFixed(1)} KiB`

function referenceVersion(): string {
  const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'node_modules', 'nostr-enclaves', 'package.json'), 'utf8')) as { version?: unknown }
  return typeof pkg.version === 'string' ? pkg.version : '?'
}

export function formatReport(report: WebBuildReport): string {
  const line = (s: BundleSize, note = ''): string =>
    `${relative(PROJECT_ROOT, s.file).padEnd(24)} ${kib(s.raw).padStart(10)} raw ${kib(s.gzip).padStart(10)} gzip${note}`
  const lines = [line(report.bundle, `  (+ ${relative(PROJECT_ROOT, report.bundle.file)}.map, ${kib(statSync(`${report.bundle.file}.map`).size)})`)]
  lines.push(line(report.example, '  (example page script)'))
  if (report.reference !== null && report.ratio !== null) {
    lines.push(line(report.reference, `  (nostr-enclaves ${referenceVersion()}; ${REFERENCE_NODE_IMPORTS.join(', ')} left external)`))
    const met = report.ratio <= MAX_GZIP_RATIO
    lines.push(`gzip ratio nec01/reference: ${report.ratio.toFixed(3)} (target ≤ ${MAX_GZIP_RATIO}: ${met ? 'met' : 'NOT met'})`)
  }
  for (const d of report.duplicates) lines.push(`warning: ${d} is bundled more than once`)
  return lines.join('\n')
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  buildWeb().then(
    (report) => console.log(formatReport(report)),
    (err: unknown) => {
      // esbuild's errors already carry file:line; print them without a stack
      console.error(`build:web failed: ${errorText(err)}`)
      process.exitCode = 1
    },
  )
}
