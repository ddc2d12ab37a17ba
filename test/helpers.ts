/** Shared test helpers. */
import { validateUserData } from '../src/cloudconfig/validate';
import type { Diagnostic } from '../src/report/diagnostic';

/** Validates text (header added unless `raw`) and returns the diagnostics. */
export function check(body: string, raw = false): Diagnostic[] {
  return validateUserData(Buffer.from(raw ? body : `#cloud-config\n${body}`)).diagnostics;
}

/** `code@line:column` for each diagnostic: compact, and it asserts on codes and places, not wording. */
export function codes(body: string, raw = false): string[] {
  return check(body, raw).map((d) => `${d.code}@${d.line}:${d.column}`);
}

/**
 * The shared corpus of real user data (`shared/corpus/validate` beside the checkout): the nearest
 * such directory above the tests, so a git worktree deeper in the tree finds it too.
 */
export function corpusDir(): string {
  const { existsSync } = require('node:fs') as typeof import('node:fs');
  const { dirname, join } = require('node:path') as typeof import('node:path');
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'shared/corpus/validate');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return join(__dirname, '../../shared/corpus/validate');
  }
}
