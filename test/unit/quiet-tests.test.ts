/**
 * `npm test` prints nothing outside jest's report: no test writes to the terminal itself (a figure
 * worth keeping goes into an assertion). Writes inside the text of a program a test builds and
 * runs (a template literal), and output a variable asks for (JOURNEY_LOG=1), do not count.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(__dirname, '../..');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Whether `offset` is inside a template literal: an odd number of backticks before it (no nesting in these files). */
function inTemplate(text: string, offset: number): boolean {
  return (text.slice(0, offset).match(/(?<!\\)`/g) ?? []).length % 2 === 1;
}

test('no test prints to the terminal', () => {
  const writes: string[] = [];
  for (const file of testFiles(join(root, 'test'))) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\b(process\.(stdout|stderr)\.write|console\.(log|info|warn|error|debug))\(/g)) {
      const line = text.slice(text.lastIndexOf('\n', m.index) + 1, text.indexOf('\n', m.index));
      if (inTemplate(text, m.index) || /process\.env\.\w+\)/.test(line) || /^\s*(\/\/|\*)/.test(line)) continue;
      writes.push(`${relative(root, file)}: ${line.trim()}`);
    }
  }
  expect(writes).toEqual([]);
});
