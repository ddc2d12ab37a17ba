/** The apply report: one line an action, then a summary. */
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
  const count = (o: Outcome) => results.filter((r) => r.outcome === o).length;
  const changed = count('changed');
  const summary =
    `${changed} ${dryRun ? 'would change' : 'changed'}, ${count('unchanged')} unchanged, ${count('failed')} failed, ${count('skipped')} skipped` +
    (changed === 0 && count('failed') === 0 ? ': nothing to change' : '');
  return `${[...lines, summary].join('\n')}\n`;
}
