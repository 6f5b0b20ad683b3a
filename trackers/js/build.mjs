// Builds every variant of src/strana.js into dist/ (or the folder given as the first argument) and prints sizes.
// Usage: npm run build            (writes dist/)
//        node build.mjs /tmp/out  (the test that checks dist/ is up to date builds here)
import { mkdirSync, writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { join } from 'node:path'
import { buildSync } from 'esbuild'

const EXTENSIONS = ['OUTBOUND', 'DOWNLOADS', '404', 'ENGAGEMENT']

// file name → extensions compiled in. strana.js is the core; strana.full.js has everything.
const VARIANTS = {
  'strana.js': [],
  'strana.full.js': EXTENSIONS,
  'strana.outbound.js': ['OUTBOUND'],
  'strana.downloads.js': ['DOWNLOADS'],
  'strana.engagement.js': ['ENGAGEMENT'],
  'strana.outbound.downloads.js': ['OUTBOUND', 'DOWNLOADS'],
}
const BUDGETS = { 'strana.js': 800, other: 1600 } // gzipped bytes; tests/test_tracker_build.py checks them

const outdir = process.argv[2] || join(import.meta.dirname, 'dist')
mkdirSync(outdir, { recursive: true })
let over = false
for (const [file, on] of Object.entries(VARIANTS)) {
  const define = Object.fromEntries(EXTENSIONS.map((ext) => ['EXT_' + ext, String(on.includes(ext))]))
  const result = buildSync({
    entryPoints: [join(import.meta.dirname, 'src', 'strana.js')],
    bundle: false,
    minify: true,
    target: 'es2020',
    legalComments: 'none',
    define,
    write: false,
  })
  const code = result.outputFiles[0].contents
  writeFileSync(join(outdir, file), code)
  const gzipped = gzipSync(code, { level: 9 }).length
  const budget = BUDGETS[file] || BUDGETS.other
  over ||= gzipped > budget
  console.log(`${file.padEnd(30)} ${String(code.length).padStart(5)} B  ${String(gzipped).padStart(5)} B gzipped` +
    `  (budget ${budget})${gzipped > budget ? '  OVER BUDGET' : ''}`)
}
if (over) process.exitCode = 1
