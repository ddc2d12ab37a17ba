/** Shared test helpers. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
 * A path in the project's shared/ folder (beside the checkout): the nearest `shared/<sub>` above
 * the tests, so a git worktree or a clone deeper in the tree finds it too.
 */
export function sharedPath(sub: string): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'shared', sub);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return join(__dirname, '../../shared', sub);
  }
}

/** The shared corpus of real user data, with the reference's findings. */
export function corpusDir(): string {
  return sharedPath('corpus/validate');
}
