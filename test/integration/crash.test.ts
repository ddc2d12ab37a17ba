/**
 * Killing coreos-cloudinit at any point of an apply and running it again ends in the same tree as
 * one uninterrupted run, with no half-written or temporary file left.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asRoot, makeRoot, snapshot } from '../support/roots';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { generateApplyConfig } = require('../../bench/generate-apply.cjs') as { generateApplyConfig(o: object): string };

const bin = join(__dirname, '../../bin/coreos-cloudinit.js');
const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-crash-')), 'user-data.yaml');
writeFileSync(file, generateApplyConfig({ files: 400, users: 6, units: 30 }));

/** Applies `yaml` to `root`, under strace with `strace`'s arguments when there are any. */
function applyTraced(root: string, yaml: string, strace: string[] = []) {
  const command = [...strace, ...(strace.length > 0 ? [process.execPath] : []), bin, '--from-file', yaml, '--root', root];
  return spawnSync(strace.length > 0 ? 'strace' : process.execPath, command, { encoding: 'utf8' });
}

function applyTo(root: string) {
  return applyTraced(root, file);
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

/**
 * The files of an apply are written as one batch: all temporary files, one syncfs, all renames,
 * each directory synced. strace kills the run at a chosen system call (the first, middle and last
 * of each step), so every step is interrupted exactly, whatever the machine's speed.
 */
const haveStrace = spawnSync('strace', ['-V']).status === 0;

/**
 * How often one process made each of `calls` (the most of any process) in an `strace -f` log:
 * strace counts each process apart when it injects a fault.
 */
function callsPerProcess(log: string, calls: string[]): Map<string, number> {
  // call -> process -> count
  const byCall = new Map<string, Map<string, number>>();
  for (const m of readFileSync(log, 'utf8').split('\n').map((l) => /^(\d+) +(\w+)\(/.exec(l))) {
    if (!m || !calls.includes(m[2]!)) continue;
    const byProcess = byCall.get(m[2]!) ?? new Map<string, number>();
    byProcess.set(m[1]!, (byProcess.get(m[1]!) ?? 0) + 1);
    byCall.set(m[2]!, byProcess);
  }
  return new Map(calls.map((call) => [call, Math.max(0, ...(byCall.get(call)?.values() ?? []))]));
}

const batchFiles = 40;
const version = (v: 'old' | 'new') => {
  const out = ['#cloud-config', 'write_files:'];
  for (let i = 0; i < batchFiles; i++) {
    // The new version changes the mode of every other file: a file's mode goes with its content.
    const mode = v === 'new' && i % 2 === 0 ? '0600' : '0644';
    out.push(`  - path: /etc/batch/d${i % 4}/file${i}`, `    permissions: '${mode}'`, `    content: "${v} ${i} ${v === 'new' ? 'x'.repeat(4000) : ''}"`);
  }
  const yaml = join(mkdtempSync(join(tmpdir(), 'bootsmith-batch-')), `${v}.yaml`);
  writeFileSync(yaml, `${out.join('\n')}\n`);
  return yaml;
};

(asRoot && haveStrace ? describe : describe.skip)('a batch of writes interrupted at any point', () => {
  const [oldYaml, newYaml] = [version('old'), version('new')];
  // The old files, applied once and copied for each run.
  let seeded: string;
  const oldRoot = () => {
    const root = join(mkdtempSync(join(tmpdir(), 'bootsmith-batch-root-')), 'root');
    execFileSync('cp', ['-a', seeded, root]);
    return root;
  };
  /** Each batch file as `old`, `new` or what else it is, with its mode when its content is whole. */
  const states = (root: string) =>
    Array.from({ length: batchFiles }, (_, i) => {
      const file = join(root, `etc/batch/d${i % 4}/file${i}`);
      const content = readFileSync(file, 'utf8');
      const mode = (lstatSync(file).mode & 0o777).toString(8);
      if (content === `old ${i} `) return mode === '644' ? 'old' : `old with mode ${mode}`;
      if (content === `new ${i} ${'x'.repeat(4000)}`) return mode === (i % 2 === 0 ? '600' : '644') ? 'new' : `new with mode ${mode}`;
      return `partial (${content.length} bytes)`;
    });

  // How often each step's system call happens in a whole run over the old files.
  const calls = ['fchown', 'write', 'syncfs', 'rename', 'fsync'];
  let counts: Map<string, number>;
  beforeAll(() => {
    seeded = makeRoot();
    expect(applyTraced(seeded, oldYaml).status).toBe(0);
    const log = join(mkdtempSync(join(tmpdir(), 'bootsmith-strace-')), 'calls');
    expect(applyTraced(oldRoot(), newYaml, ['-f', '-qq', '-o', log, '-e', `trace=${calls.join(',')}`]).status).toBe(0);
    // strace counts each process apart: a step is cut in the process that makes its calls (the
    // program, or `sync -f` for syncfs).
    counts = callsPerProcess(log, calls);
    // The writes of the temporary files' content come first; the report's come after the renames
    // and vary in number, so the write step is cut at its own first, middle and last write.
    counts.set('write', batchFiles);
    // Every file is written in the batch, and made durable by one syncfs.
    expect(counts.get('rename')).toBeGreaterThanOrEqual(batchFiles);
    expect(counts.get('syncfs')).toBe(1);
  });

  test.each(calls)('killed at the first, middle and last %s: each file is old or new, and a new run completes them', (call) => {
    const n = counts.get(call)!;
    for (const at of new Set([1, Math.ceil(n / 2), n])) {
      const root = oldRoot();
      const killed = applyTraced(root, newYaml, ['-f', '-qq', '-o', '/dev/null', '-e', `trace=${call}`, '-e', `inject=${call}:signal=KILL:when=${at}`]);
      // syncfs runs in `sync -f`, a child: the apply sees it fail, reports it and goes on.
      expect([at, killed.status === 0]).toEqual([at, false]);
      const seen = states(root);
      expect(seen.filter((s) => s !== 'old' && s !== 'new')).toEqual([]);
      // Until the first rename, every target is old.
      if (call !== 'fsync' && (call !== 'rename' || at === 1)) expect(seen.every((s) => s === 'old')).toBe(true);
      const rerun = applyTraced(root, newYaml);
      expect([rerun.status, rerun.stderr]).toEqual([0, '']);
      expect(states(root).every((s) => s === 'new')).toBe(true);
      const dirs = Array.from({ length: 4 }, (_, d) => readdirSync(join(root, `etc/batch/d${d}`))).flat();
      expect(dirs.filter((name) => name.includes('.bootsmith-tmp'))).toEqual([]);
    }
  }, 120_000);
});

/**
 * A new user is committed by useradd one file at a time (passwd, shadow, group, gshadow, each
 * renamed into place). strace kills useradd at each of those renames in turn; the next run ends in
 * the tree of one uninterrupted run. (The home made after it is renamed into place whole: a run
 * killed before that leaves no home, which the next makes; see apply.test.ts and rooted-fs.test.ts.)
 */
(asRoot && haveStrace ? describe : describe.skip)('a new user interrupted at any of its commits', () => {
  const yaml = join(mkdtempSync(join(tmpdir(), 'bootsmith-user-')), 'user.yaml');
  writeFileSync(yaml, '#cloud-config\nusers:\n  - name: alice\n    groups: [sudo]\n');
  const apply = (root: string, strace: string[] = []) => applyTraced(root, yaml, strace);
  const root = () => {
    const r = makeRoot();
    // As Debian has it: each user gets a group of its own; a skeleton to copy.
    writeFileSync(join(r, 'etc/login.defs'), 'USERGROUPS_ENAB yes\nUMASK 022\n');
    mkdirSync(join(r, 'etc/skel'));
    writeFileSync(join(r, 'etc/skel/.profile'), 'PATH=/usr/bin\n');
    return r;
  };
  const tree = (r: string) => snapshot(r).map((line) => line.replace(r, 'ROOT'));
  let expected: string[];
  let renames: number;

  beforeAll(() => {
    const clean = root();
    expect(apply(clean).status).toBe(0);
    expected = tree(clean);
    const log = join(mkdtempSync(join(tmpdir(), 'bootsmith-strace-')), 'calls');
    const calls = ['rename', 'renameat', 'renameat2'];
    expect(apply(root(), ['-f', '-qq', '-o', log, '-e', `trace=${calls.join(',')}`]).status).toBe(0);
    renames = Math.max(...callsPerProcess(log, calls).values());
    // passwd, shadow, group and gshadow at least.
    expect(renames).toBeGreaterThanOrEqual(4);
  });

  test('killed at each rename of each process, then run again: as one whole run', () => {
    for (let at = 1; at <= renames; at++) {
      const r = root();
      const killed = apply(r, ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=rename,renameat,renameat2', '-e', `inject=rename,renameat,renameat2:signal=KILL:when=${at}`]);
      expect([at, killed.status === 0]).toEqual([at, false]);
      const rerun = apply(r);
      expect([at, rerun.status, rerun.stderr, rerun.stdout.split('\n').filter((l) => l.startsWith('failed'))]).toEqual([at, 0, '', []]);
      expect([at, tree(r)]).toEqual([at, expected]);
    }
  }, 120_000);
});
