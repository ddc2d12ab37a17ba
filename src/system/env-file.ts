/** KEY=value files (/etc/coreos/update.conf, /etc/environment): read them, and merge settings in keeping other lines. */

/** Why `value` cannot be the value of one NAME=value line, or undefined: a line break or a NUL. */
export function settingValueProblem(value: string): string | undefined {
  return value.includes('\n') || value.includes('\r') || value.includes('\0') ? 'holds a line break or a NUL' : undefined;
}

/** `NAME=value`, refusing a value settingValueProblem refuses (the validator reports those first). */
export function settingLine(name: string, value: string): string {
  const problem = settingValueProblem(value);
  if (problem) throw new Error(`the value of ${name} ${problem}: it cannot be written as one ${name}=value line`);
  return `${name}=${value}`;
}

/** Merges KEY=value settings into update.conf or environment-file text: matching lines replaced in place, new keys appended sorted. */
export function mergeSettings(current: string, settings: Array<[string, string]>): string {
  const wanted = new Map(settings);
  const lines = current === '' ? [] : current.replace(/\n$/, '').split('\n');
  const out = lines.map((line) => {
    const key = line.split('=', 1)[0]!.trim();
    if (!wanted.has(key)) return line;
    const value = wanted.get(key)!;
    wanted.delete(key);
    return settingLine(key, value);
  });
  for (const key of [...wanted.keys()].sort()) out.push(settingLine(key, wanted.get(key)!));
  return `${out.join('\n')}\n`;
}

/** KEY=value lines of a shell-style environment file, quotes removed. */
export function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!.trim().replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1'));
  }
  return out;
}
