/**
 * systemd (and spec 2.x networkd) units: names with a unit type, unique units and drop-ins,
 * drop-ins ending in .conf, unit file syntax in contents and drop-ins (the cloud-config rules), and
 * enabled units without an [Install] section.
 */
import type { Finding, PathSegment } from '../../report/diagnostic';
import { finding } from '../rules/common';
import { checkUnitText } from '../rules/unit-file';
import { dropInNameProblem } from '../rules/units';
import { getPair } from '../tree';
import type { MapNode, YNode } from '../tree';
import { entries, isSet, isTrue, objectAt, str } from './fields';
import type { Spec } from './fields';
import { rangeInJsonString } from './json';

/** The unit types Ignition accepts in systemd.units. */
const systemdTypes = ['service', 'socket', 'device', 'mount', 'automount', 'swap', 'target', 'path', 'timer', 'snapshot', 'slice', 'scope'];
const networkdTypes = ['link', 'netdev', 'network'];

export function checkUnits(root: YNode, text: string, spec: Spec): Finding[] {
  const out = checkSection(objectAt(root, ['systemd']), ['systemd'], systemdTypes, text, spec);
  if (spec.major === 2) return out.concat(checkSection(objectAt(root, ['networkd']), ['networkd'], networkdTypes, text, spec));
  return out.concat(checkPathConflicts(root));
}

/** Where Ignition writes units and drop-ins. */
const unitDir = '/etc/systemd/system';

/** Files, directories and links (3.x) at the path of a unit or drop-in the config also writes. */
function checkPathConflicts(root: YNode): Finding[] {
  const unitPaths = new Set<string>();
  for (const { entry, path } of entries(objectAt(root, ['systemd']), 'units', ['systemd'])) {
    const name = str(entry, 'name');
    if (!name) continue;
    if (isSet(entry, 'contents') || isTrue(entry, 'mask')) unitPaths.add(`${unitDir}/${name.text}`);
    for (const dropin of entries(entry, 'dropins', path)) {
      const dropName = str(dropin.entry, 'name');
      if (dropName) unitPaths.add(`${unitDir}/${name.text}.d/${dropName.text}`);
    }
  }
  const out: Finding[] = [];
  if (unitPaths.size === 0) return out;
  for (const kind of ['files', 'directories', 'links']) {
    for (const { entry, path } of entries(objectAt(root, ['storage']), kind, ['storage'])) {
      const p = str(entry, 'path');
      if (p && unitPaths.has(p.text)) {
        out.push(finding('error', 'path-conflicts-unit', `${p.text} is also written by systemd.units: give the unit there, or the file here`, [...path, 'path'], p.node.range));
      }
    }
  }
  return out;
}

function checkSection(section: MapNode | undefined, sectionPath: PathSegment[], types: string[], text: string, spec: Spec): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const { entry, path } of entries(section, 'units', sectionPath)) {
    const name = str(entry, 'name');
    let type: string | undefined;
    if (name) {
      const m = /\.([^.]+)$/.exec(name.text);
      const base = name.text.slice(0, m ? m.index : undefined);
      if (!m || !types.includes(m[1]!)) {
        out.push(finding('error', 'unit-name', `invalid unit extension: ${JSON.stringify(name.text)} must end in one of ${types.map((t) => `.${t}`).join(', ')}`, [...path, 'name'], name.node.range));
      } else if (base === '' || name.text.includes('/') || name.text.length > 255) {
        out.push(finding('error', 'unit-name', `${JSON.stringify(name.text)} is not a valid unit name`, [...path, 'name'], name.node.range));
      } else type = m[1];
      if (seen.has(name.text)) {
        out.push(
          spec.major === 3
            ? finding('error', 'duplicate-entry', `duplicate entry defined: unit ${name.text} is given twice`, [...path, 'name'], name.node.range)
            : finding('warning', 'duplicate-entry', `unit ${name.text} is given twice; the later entry wins`, [...path, 'name'], name.node.range),
        );
      }
      seen.add(name.text);
    }
    out.push(...checkContents(entry, 'contents', type, path, text));
    const dropinNames = new Set<string>();
    for (const dropin of entries(entry, 'dropins', path)) {
      const dropName = str(dropin.entry, 'name');
      if (dropName) {
        const problem = dropInNameProblem(dropName.text);
        if (problem) out.push(finding('error', 'drop-in-name', `drop-in ${JSON.stringify(dropName.text)} ${problem}`, [...dropin.path, 'name'], dropName.node.range));
        else if (!dropName.text.endsWith('.conf')) out.push(finding('error', 'drop-in-name', `invalid drop-in extension: ${JSON.stringify(dropName.text)} must end in .conf`, [...dropin.path, 'name'], dropName.node.range));
        if (dropinNames.has(dropName.text)) out.push(finding('error', 'duplicate-entry', `duplicate entry defined: drop-in ${dropName.text} is given twice`, [...dropin.path, 'name'], dropName.node.range));
        dropinNames.add(dropName.text);
      }
      out.push(...checkContents(dropin.entry, 'contents', type, dropin.path, text));
    }
    const enabledKey = isTrue(entry, 'enabled') ? 'enabled' : isTrue(entry, 'enable') ? 'enable' : undefined;
    const contents = str(entry, 'contents');
    if (enabledKey && contents && !(type && networkdTypes.includes(type)) && !/^\s*\[Install\]\s*$/m.test(contents.text)) {
      out.push(
        finding(
          'warning',
          'enable-without-install',
          `unit ${JSON.stringify(name?.text ?? '')} is enabled, but has no install section so enable does nothing`,
          [...path, 'contents'],
          contents.node.range,
        ),
      );
    }
  }
  return out;
}

/** Unit file syntax of a contents string, placed on the offending line inside the JSON string. */
function checkContents(entry: MapNode, key: string, type: string | undefined, path: PathSegment[], text: string): Finding[] {
  const contents = str(entry, key);
  if (!contents) return [];
  const node = getPair(entry, key)!.value;
  return checkUnitText(contents.text, type).map((p) => finding(p.severity, p.code, p.message, [...path, key], rangeInJsonString(text, node.range, p.start, p.end)));
}
