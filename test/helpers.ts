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
