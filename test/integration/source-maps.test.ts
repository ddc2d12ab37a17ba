/**
 * A crash trace of a built program names the TypeScript source line, not a column of the minified
 * bundle: through the programs' crash path (bin/load-bundle.js, exit 70) and through Node's own
 * report of an unhandled rejection.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '../..');
const loader = join(root, 'bin/load-bundle.js');

beforeAll(() => {
  if (!existsSync(join(root, 'dist/coreos-cloudinit.js.map'))) throw new Error('dist/ is missing or has no source maps: run "npm run build" (npm test does)');
});

function node(script: string) {
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: root });
}

/** The first frame of a trace: its function, file, line and column. */
function firstFrame(stack: string) {
  const m = /\n {4}at (\S+) \((.+):(\d+):(\d+)\)/.exec(stack);
  if (!m) throw new Error(`no frame in:\n${stack}`);
  return { fn: m[1]!, file: m[2]!, line: Number(m[3]), column: Number(m[4]) };
}

/** The source line a frame names. */
function sourceLine(frame: { file: string; line: number }): string {
  return readFileSync(frame.file, 'utf8').split('\n')[frame.line - 1]!;
}

// main(null) fails in the first thing it does with argv: a defect on purpose, in src/cli/*.ts.
test('a program whose main throws: the trace names src/cli/*.ts lines, exit 70', () => {
  const r = node(`require(${JSON.stringify(loader)}).run('coreos-cloudinit', null)`);
  expect(r.status).toBe(70);
  expect(r.stderr).toMatch(/^coreos-cloudinit: TypeError: /);
  const frame = firstFrame(r.stderr);
  expect(frame.file).toMatch(new RegExp(`^${root}/src/cli/[\\w-]+\\.ts$`));
  expect(sourceLine(frame)).toContain('argv');
  expect(r.stderr).toMatch(/\(.*\/src\/cli\/coreos-cloudinit\.ts:\d+:\d+\)/);
  expect(r.stderr).not.toContain('dist/coreos-cloudinit.js');
});

test('an unhandled rejection: the same report, source positions, no line of minified code', () => {
  const r = node(`require(${JSON.stringify(loader)}).loadBundle('fleetlockd').main(null)`);
  expect(r.status).toBe(70);
  expect(r.stderr).toMatch(/^fleetlockd: \w*Error: /);
  const frame = firstFrame(r.stderr.slice(r.stderr.indexOf('\n    at parseArgs')));
  expect(frame.file).toBe(join(root, 'src/cli/options.ts'));
  expect(sourceLine(frame)).toContain('parse(argv');
  expect(Math.max(...r.stderr.split('\n').map((l) => l.length))).toBeLessThan(300);
});
