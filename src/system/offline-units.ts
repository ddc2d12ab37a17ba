/**
 * Enabling units without a running systemd (`--root` on an image): the symlinks `systemctl --root
 * DIR enable` creates, from the unit's [Install] section (WantedBy=, RequiredBy=, UpheldBy=,
 * Alias=, Also=, DefaultInstance=).
 */

export interface InstallSection {
  wantedBy: string[];
  requiredBy: string[];
  upheldBy: string[];
  alias: string[];
  also: string[];
  defaultInstance: string | undefined;
}

/** The [Install] section of unit text (later assignments add to earlier ones; an empty one resets). */
export function parseInstall(text: string): InstallSection {
  const out: InstallSection = { wantedBy: [], requiredBy: [], upheldBy: [], alias: [], also: [], defaultInstance: undefined };
  const lists: Record<string, string[]> = { WantedBy: out.wantedBy, RequiredBy: out.requiredBy, UpheldBy: out.upheldBy, Alias: out.alias, Also: out.also };
  let inInstall = false;
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      inInstall = line === '[Install]';
      continue;
    }
    if (!inInstall || line.startsWith('#') || line.startsWith(';')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === 'DefaultInstance') out.defaultInstance = value || undefined;
    const list = lists[key];
    if (!list) continue;
    if (value === '') list.length = 0;
    else list.push(...value.split(/\s+/));
  }
  return out;
}

/** The links enabling `unit` (whose file is at `unitPath`) would create in `dir`: [link path, target]. */
export function installLinks(unit: string, install: InstallSection, unitPath: string, dir: string): Array<[link: string, target: string]> {
  let name = unit;
  if (unit.includes('@.')) {
    // A template is enabled through its default instance, if it names one.
    if (!install.defaultInstance) return install.alias.map((a) => [`${dir}/${a}`, unitPath]);
    name = unit.replace('@.', `@${install.defaultInstance}.`);
  }
  const links: Array<[string, string]> = [];
  for (const [deps, suffix] of [
    [install.wantedBy, 'wants'],
    [install.requiredBy, 'requires'],
    [install.upheldBy, 'upholds'],
  ] as const) {
    for (const target of deps) links.push([`${dir}/${target}.${suffix}/${name}`, unitPath]);
  }
  for (const alias of install.alias) links.push([`${dir}/${alias}`, unitPath]);
  return links;
}
