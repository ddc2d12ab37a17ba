/** Running a program's bin as a user would, for the CLI tests. */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * `node BIN ARGS...` without blocking this process (for tests that serve HTTP to the program): its
 * exit status and output. `env`: the whole environment it gets (default: this process's).
 */
export function runAsync(bin: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A root for applying into: an /etc with passwd and group (the owner lookups read them). */
export function applyRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'bootsmith-cli-root-'));
  mkdirSync(join(r, 'etc'));
  writeFileSync(join(r, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(r, 'etc/group'), 'root:x:0:\n');
  return r;
}

/** An environment of this PATH and `more`, nothing else: a program run in it sees no variable a test did not set. */
export function pathOnly(more: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '', ...more };
}
