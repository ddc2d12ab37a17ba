/**
 * coreos.units: unit names systemd would refuse, repeated units, unit and drop-in text that is not
 * a unit file, and enable without an [Install] section.
 */
import type { Finding } from '../../report/diagnostic';
import { getPair } from '../tree';
import type { MapNode, YNode } from '../tree';
import { append, finding, mapEntries, stringField } from './common';
import { rangeInScalar } from './embedded';
import { checkUnitText, unitTypes } from './unit-file';

const unitNamePattern = /^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.([a-z]+)$/;

/**
 * Why a drop-in name cannot be a file in the unit's NAME.d directory, or undefined: it is joined to
 * that directory's path, so `/` or `..` would put it elsewhere. Planning refuses the same names.
 */
export function dropInNameProblem(name: string): string | undefined {
  if (name.includes('/')) return 'holds "/": a drop-in is a file name in the unit\'s .d directory, not a path';
  if (name === '.' || name === '..') return 'is not a file name';
  if (name.includes('\0') || name.includes('\n')) return 'holds a NUL or newline character';
  return undefined;
}

export function checkUnits(root: YNode, source: string): Finding[] {
  const out: Finding[] = [];
  const seen = new Map<string, number>();
  const units = getPair(getPair(root, 'coreos')?.value, 'units')?.value;
  for (const { entry, path } of mapEntries(units, ['coreos', 'units'])) {
    const name = stringField(entry, 'name');
    let type: string | undefined;
    if (!name) {
      const at = getPair(entry, 'name');
      out.push(finding('warning', 'unit-name', 'unit has no name; it is skipped', path, at?.keyRange ?? entry.range));
    } else {
      const m = unitNamePattern.exec(name.text);
      const at = [...path, 'name'];
      if (!m || name.text.length > 255) {
        out.push(finding('error', 'unit-name', `${JSON.stringify(name.text)} is not a valid unit name: want NAME.TYPE, such as etcd.service`, at, name.pair.value.range));
      } else if (!unitTypes.includes(m[2]!)) {
        out.push(finding('error', 'unit-name', `${JSON.stringify(name.text)} has an unknown unit type ".${m[2]}"; known: ${unitTypes.map((t) => `.${t}`).join(', ')}`, at, name.pair.value.range));
      } else type = m[2];
      const first = seen.get(name.text);
      if (first !== undefined) {
        out.push(finding('warning', 'duplicate-unit', `unit ${name.text} is also defined by coreos.units[${first}]; the later entry wins`, at, name.pair.value.range));
      } else seen.set(name.text, path[2] as number);
    }
    append(out, checkText(entry, 'content', type, path, source));
    for (const dropIn of mapEntries(getPair(entry, 'drop_ins')?.value, [...path, 'drop_ins'])) {
      const dropName = stringField(dropIn.entry, 'name');
      const pathProblem = dropName && dropInNameProblem(dropName.text);
      if (dropName && pathProblem) {
        out.push(finding('error', 'drop-in-name', `drop-in ${JSON.stringify(dropName.text)} ${pathProblem}`, [...dropIn.path, 'name'], dropName.pair.value.range));
      } else if (dropName && !dropName.text.endsWith('.conf')) {
        out.push(finding('warning', 'drop-in-name', `drop-in ${JSON.stringify(dropName.text)} does not end in .conf; systemd ignores it`, [...dropIn.path, 'name'], dropName.pair.value.range));
      }
      append(out, checkText(dropIn.entry, 'content', type, dropIn.path, source));
    }
    const enable = getPair(entry, 'enable');
    const content = stringField(entry, 'content');
    if (enable?.value.kind === 'scalar' && enable.value.value === true && content && type && !['network', 'netdev', 'link'].includes(type)) {
      if (!/^\s*\[Install\]\s*$/m.test(content.text)) {
        out.push(finding('warning', 'enable-without-install', `${name?.text ?? 'unit'} is enabled but its content has no [Install] section, so enabling does nothing`, [...path, 'enable'], enable.value.range));
      }
    }
  }
  return out;
}

function checkText(entry: MapNode, key: string, type: string | undefined, path: (string | number)[], source: string): Finding[] {
  const field = stringField(entry, key);
  const node = field?.pair.value;
  if (!field || node?.kind !== 'scalar') return [];
  return checkUnitText(field.text, type).map((p) =>
    finding(p.severity, p.code, p.message, [...path, key], rangeInScalar(source, node, p.start, p.end)),
  );
}
