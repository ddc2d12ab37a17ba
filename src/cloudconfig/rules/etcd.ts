/** etcd discovery: a discovery URL that etcd cannot use. */
import type { Finding } from '../../report/diagnostic';
import { getPair } from '../tree';
import type { YNode } from '../tree';
import { finding, stringField } from './common';

/** Go's url.ParseRequestURI as the reference applies it: an absolute URI, or a path starting with /. */
export function validDiscoveryUrl(url: string): boolean {
  if (url.startsWith('/')) return !/\s/.test(url);
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(url)) return false;
  try {
    new URL(url);
    return true;
  } catch {
    return false;
  }
}

export function checkEtcd(root: YNode): Finding[] {
  const out: Finding[] = [];
  const coreos = getPair(root, 'coreos')?.value;
  for (const section of ['etcd', 'etcd2']) {
    const node = getPair(coreos, section)?.value;
    if (node?.kind !== 'map') continue;
    const discovery = stringField(node, 'discovery');
    if (discovery && !validDiscoveryUrl(discovery.text)) {
      out.push(
        finding('warning', 'discovery-url', `discovery URL ${JSON.stringify(discovery.text)} is not valid: want an absolute URL such as https://discovery.etcd.io/TOKEN`, ['coreos', section, 'discovery'], discovery.pair.value.range),
      );
    }
  }
  return out;
}
