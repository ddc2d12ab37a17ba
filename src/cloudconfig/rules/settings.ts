/**
 * The CoreOS service settings (coreos.etcd, etcd2, fleet, flannel, locksmith, update): each value
 * is written as one NAME=value line, inside `Environment="NAME=value"` of the service's drop-in,
 * or in /etc/coreos/update.conf. A line break would start a line of its own: a directive in the
 * drop-in, another setting in update.conf.
 */
import type { Finding } from '../../report/diagnostic';
import { settingValueProblem } from '../../system/env-file';
import { definition } from '../schema';
import { getPair, scalarText } from '../tree';
import type { YNode } from '../tree';
import { finding } from './common';

const settingSections = ['etcd', 'etcd2', 'fleet', 'flannel', 'locksmith', 'update'] as const;

export function checkSettings(root: YNode): Finding[] {
  const out: Finding[] = [];
  const coreos = getPair(root, 'coreos')?.value;
  for (const section of settingSections) {
    const node = getPair(coreos, section)?.value;
    if (node?.kind !== 'map') continue;
    const properties = definition(section).properties ?? {};
    for (const pair of node.pairs) {
      const name = properties[pair.key]?.env;
      const value = pair.value.kind === 'scalar' ? scalarText(pair.value) : undefined;
      const problem = name && value !== undefined ? settingValueProblem(value) : undefined;
      if (problem) {
        out.push(finding('error', 'setting-value', `coreos.${section}.${pair.rawKey} ${problem}: it is written as the one line ${name}=value`, ['coreos', section, pair.key], pair.value.range));
      }
    }
  }
  return out;
}
