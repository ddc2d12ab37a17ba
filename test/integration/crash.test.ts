/**
 * Killing coreos-cloudinit at any point of an apply and running it again ends in the same tree as
 * one uninterrupted run, with no half-written or temporary file left.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asRoot, makeRoot, snapshot } from '../support/roots';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { generateApplyConfig } = require('../../bench/generate-apply.cjs') as { generateApplyConfig(o: object): string };

const bin = join(__dirname, '../../bin/coreos-cloudinit.js');
const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-crash-')), 'user-data.yaml');
writeFileSync(file, generateApplyConfig({ files: 400, users: 6, units: 30 }));

function applyTo(root: string) {
  return spawnSync(process.execPath, [bin, '--from-file', file, '--root', root], { encoding: 'utf8' });
}

/**
 * Starts an apply and kills it after `ms` milliseconds with everything it started (a useradd in
 * flight too), as systemd kills a unit's control group or as a power cut would.
 */
function killedAfter(root: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, '--from-file', file, '--root', root], { stdio: 'ignore', detached: true });
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(killGroup, ms);
    child.on('exit', () => {
      clearTimeout(timer);
      killGroup(); // children that outlived it
      resolve();
    });
  });
}

(asRoot ? describe : describe.skip)('killed and run again', () => {
  const clean = makeRoot();
  let expected: string[];
  let duration: number;

  beforeAll(() => {
    const started = Date.now();
    expect(applyTo(clean).status).toBe(0);
    duration = Date.now() - started;
    expected = snapshot(clean).map((line) => line.replace(clean, 'ROOT'));
  });

  test.each([0.15, 0.3, 0.45, 0.6, 0.75, 0.9])('killed at %f of a run', async (fraction) => {
    const root = makeRoot();
    await killedAfter(root, Math.round(duration * fraction));
    // Every file the run wrote is whole: the old one or the new one, never a part. (A temporary
    // file may be left; the next run replaces it.)
    const complete = new Set(expected);
    const written = snapshot(root)
      .map((line) => line.replace(root, 'ROOT'))
      .filter((line) => line.startsWith('/etc/bench/') && !line.includes('.bootsmith-tmp') && !line.endsWith('/'));
    for (const line of written) expect([line, complete.has(line)]).toEqual([line, true]);
    const rerun = applyTo(root);
    expect(rerun.stderr).toBe('');
    expect(rerun.stdout.split('\n').filter((l) => l.startsWith('failed'))).toEqual([]);
    expect(rerun.status).toBe(0);
    expect(snapshot(root).map((line) => line.replace(root, 'ROOT'))).toEqual(expected);
  });
});
