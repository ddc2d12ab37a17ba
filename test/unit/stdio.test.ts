/**
 * src/cli/stdio.ts: output written with write(2) arrives whole and in order, also when the
 * descriptor is a non-blocking pipe that fills up (the rest then goes through process.stdout).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';

const dir = mkdtempSync(join(tmpdir(), 'bootsmith-stdio-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` in a node child with directOutput loaded; its stdout, stderr and exit code. */
async function child(body: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const module = join(dir, 'stdio.js');
  writeFileSync(module, buildSync({ entryPoints: [join(__dirname, '../../src/cli/stdio.ts')], bundle: true, platform: 'node', format: 'cjs', write: false }).outputFiles[0]!.text);
  const proc = spawn(process.execPath, ['-e', `const { directOutput } = require(${JSON.stringify(module)});\n${body}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout.on('data', (d: Buffer) => chunks.push(d));
  const code = await new Promise<number | null>((r) => proc.on('close', r));
  return { stdout: Buffer.concat(chunks).toString(), stderr, code };
}

const expected = [...Array(8).keys()].map((i) => String(i).repeat(512 * 1024)).join('') + 'end\n';
const writes = `for (let i = 0; i < 8; i++) out.write(String(i).repeat(512 * 1024));\nout.write('end\\n');`;

test('a blocking pipe: every write goes out whole and in order', async () => {
  const r = await child(`const out = directOutput(1);\n${writes}`);
  expect(r).toEqual({ stdout: expected, stderr: '', code: 0 });
});

test('a non-blocking pipe that fills (EAGAIN): the rest of the write and the later ones are queued, in order', async () => {
  // Touching process.stdout makes libuv set the pipe non-blocking, as a parent sharing a
  // non-blocking pipe would; 4 MiB fills it many times over while nobody reads.
  const r = await child(`process.stdout;\nconst out = directOutput(1);\n${writes}\nprocess.stderr.write(String(process.stdout.writableLength > 0));`);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe(expected);
  // The fallback was taken: data was still queued on process.stdout after the last write.
  expect(r.stderr).toBe('true');
});

test('isTTY: a pipe is not a terminal', async () => {
  const r = await child('directOutput(1).write(String(directOutput(1).isTTY));');
  expect(r).toEqual({ stdout: 'false', stderr: '', code: 0 });
});
