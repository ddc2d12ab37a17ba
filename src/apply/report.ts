/** The apply report: one line an action, then a summary; or one JSON document. */
import type { ActionResult, Outcome } from './execute';

const words: Record<Outcome, [now: string, dry: string]> = {
  changed: ['changed', 'would change'],
  unchanged: ['unchanged', 'unchanged'],
  failed: ['failed', 'failed'],
  skipped: ['skipped', 'skipped'],
};

export function formatResults(results: ActionResult[], dryRun: boolean): string {
  const width = dryRun ? 12 : 9;
  const lines = results.map((r) => {
    const word = words[r.outcome][dryRun ? 1 : 0].padEnd(width);
    return `${word} ${r.subject} [${r.origin}]${r.detail ? `: ${r.detail}` : ''}`;
  });
  const t = outcomeTotals(results);
  const summary =
    `${t.changed} ${dryRun ? 'would change' : 'changed'}, ${t.unchanged} unchanged, ${t.failed} failed, ${t.skipped} skipped` +
    (t.changed === 0 && t.failed === 0 ? ': nothing to change' : '');
  return `${[...lines, summary].join('\n')}\n`;
}

export function outcomeTotals(results: ActionResult[]): Record<Outcome, number> {
  const count = (o: Outcome) => results.filter((r) => r.outcome === o).length;
  return { changed: count('changed'), unchanged: count('unchanged'), failed: count('failed'), skipped: count('skipped') };
}

/** What the JSON apply report says beside the actions. */
export interface ApplyDocument {
  /** Where the user data came from: a path or a URL. */
  source: string;
  dryRun: boolean;
  /** False when the user data had errors, so nothing was applied (no actions). */
  applied: boolean;
  /** The validation of the user data: one entry of `--validate --format json`'s `files`. */
  validation: unknown;
  results: ActionResult[];
  /** With --timings: milliseconds spent fetching (or reading), validating and applying. */
  timings?: { fetchMs: number; validateMs: number; applyMs: number };
}

/**
 * The apply report as one JSON document (version 1), stable for tools:
 * `{ version: 1, source, dryRun, applied, ok, validation, actions: [{ action, target, status,
 *    cause, origin }], summary: { changed, unchanged, failed, skipped }, timings? }`.
 * `status` is the outcome (in a dry run, `changed` means it would change); `cause` says why an
 * action failed or was skipped, or what a script printed, or is null; `ok` is false when the
 * user data was not applied or an action failed (the exit status is then 1).
 */
export function formatResultsJson(doc: ApplyDocument): string {
  const t = outcomeTotals(doc.results);
  const out = {
    version: 1,
    source: doc.source,
    dryRun: doc.dryRun,
    applied: doc.applied,
    ok: doc.applied && t.failed === 0,
    validation: doc.validation,
    actions: doc.results.map((r) => ({ action: r.action, target: r.target, status: r.outcome, cause: r.detail ?? null, origin: r.origin })),
    summary: t,
    ...(doc.timings ? { timings: roundTimings(doc.timings) } : {}),
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}

function roundTimings(t: NonNullable<ApplyDocument['timings']>) {
  const r = (ms: number) => Math.round(ms * 10) / 10;
  return { fetchMs: r(t.fetchMs), validateMs: r(t.validateMs), applyMs: r(t.applyMs) };
}
