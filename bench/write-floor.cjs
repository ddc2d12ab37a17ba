// The floor for applying files, as a script that knows them already: node write-floor.cjs ROOT LIST.json
// writes each file of LIST (path, mode, content) under ROOT to a temporary name, renames them all,
// and runs one `sync -f`. No checks, no owners, no per-file durability: what any apply must at least do.
const { spawnSync } = require('node:child_process');
const { mkdirSync, readFileSync, renameSync, writeFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

const [root, list] = process.argv.slice(2);
const files = JSON.parse(readFileSync(list, 'utf8')).map((f) => ({ ...f, host: join(root, f.path) }));
for (const f of files) {
  mkdirSync(dirname(f.host), { recursive: true });
  writeFileSync(join(dirname(f.host), `.${f.path.split('/').pop()}.tmp`), f.content, { mode: f.mode });
}
for (const f of files) renameSync(join(dirname(f.host), `.${f.path.split('/').pop()}.tmp`), f.host);
const sync = spawnSync('sync', ['-f', root]);
if (sync.status !== 0) throw new Error(`sync -f failed: ${sync.stderr}`);
