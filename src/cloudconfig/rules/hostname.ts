/**
 * hostname: a name that is not a host name. It is written to /etc/hostname and /etc/hosts as a
 * line of its own, so a newline would add lines, and a space or other character gives a name
 * resolvers and hostnamed refuse.
 */
import type { Finding } from '../../report/diagnostic';
import { getPair, scalarText } from '../tree';
import type { YNode } from '../tree';
import { usedVariables } from '../substitute';
import { hostnameProblem } from '../values';
import { finding } from './common';

export function checkHostname(root: YNode): Finding[] {
  const pair = getPair(root, 'hostname');
  const text = scalarText(pair?.value);
  // An empty value is the schema's (empty-value); no hostname is then set.
  if (!pair || text === undefined || text === '') return [];
  // `hostname: $private_ipv4` is checked once the address is in: the substituted text is validated again.
  if (usedVariables(text).length > 0) return [];
  const problem = hostnameProblem(text);
  if (problem === undefined) return [];
  return [finding('error', 'hostname-syntax', `hostname ${JSON.stringify(text)} is not a host name: ${problem}`, ['hostname'], pair.value.range)];
}
