/**
 * Validates an Ignition config as ignition-validate does, and more: JSON syntax with line and
 * column, the spec version (3.0.0 to 3.5.0, and 2.0.0 to 2.3.0 that Flatcar still takes), the
 * structure against the version's schema, and the semantic rules, all in one pass. Findings are
 * placed on the key or value they are about. Never throws.
 */
import type { Finding } from '../../report/diagnostic';
import { finding } from '../rules/common';
import { getPair } from '../tree';
import type { YNode } from '../tree';
import { supportedVersions } from './fields';
import type { Spec } from './fields';
import { parseJson } from './json';
import { checkKernelArguments, checkPasswd } from './passwd';
import { checkResources } from './resources';
import { checkIgnitionSchema } from './schema-check';
import { checkStorage } from './storage';
import { checkUnits } from './units';

export interface IgnitionResult {
  findings: Finding[];
  /** The parsed config, when the JSON was well formed. */
  root: YNode | undefined;
  /** The spec version, when it is one of the supported ones. */
  version: string | undefined;
}

const supportedText = `supported: ${supportedVersions.join(', ')}`;

export function validateIgnition(text: string): IgnitionResult {
  const parsed = parseJson(text);
  const root = parsed.root;
  let findings = parsed.findings;
  if (!root) return { findings, root, version: undefined };
  const spec = specOf(root, findings);
  if (!spec) return { findings, root, version: undefined };
  findings = findings.concat(
    checkIgnitionSchema(root, spec.version),
    checkResources(root, spec),
    checkStorage(root, spec),
    checkUnits(root, text, spec),
    checkPasswd(root, spec),
    checkKernelArguments(root),
  );
  return { findings, root, version: spec.version };
}

/** The config's spec version, or undefined with a finding saying why there is none we validate. */
function specOf(root: YNode, findings: Finding[]): Spec | undefined {
  if (root.kind !== 'map') {
    findings.push(finding('error', 'wrong-type', 'an Ignition config is a JSON object, such as {"ignition": {"version": "3.4.0"}}', [], root.range));
    return undefined;
  }
  const v1 = getPair(root, 'ignitionVersion');
  if (v1) {
    findings.push(finding('error', 'ignition-version', `Ignition spec 1 (ignitionVersion) is no longer supported: translate it to spec 2 or 3 (${supportedText})`, ['ignitionVersion'], v1.keyRange));
    return undefined;
  }
  const ignition = getPair(root, 'ignition');
  const version = getPair(ignition?.value, 'version');
  if (!version) {
    const range = ignition?.keyRange ?? [root.range[0], root.range[0] + 1];
    findings.push(finding('error', 'ignition-version', `no ignition.version: an Ignition config says its spec version, as in {"ignition": {"version": "3.4.0"}} (${supportedText})`, ignition ? ['ignition'] : [], range));
    return undefined;
  }
  const value = version.value;
  const text = value.kind === 'scalar' && typeof value.value === 'string' ? value.value : undefined;
  if (text === undefined || !(supportedVersions as readonly string[]).includes(text)) {
    const shown = value.kind === 'scalar' ? JSON.stringify(value.value) : 'a non-string';
    const hint = text?.endsWith('-experimental') ? '; experimental specs change between releases: use a released one' : '';
    findings.push(finding('error', 'ignition-version', `unsupported config version ${shown}${hint} (${supportedText})`, ['ignition', 'version'], value.range));
    return undefined;
  }
  const [major, minor] = text.split('.').map(Number);
  return { version: text, major: major!, minor: minor! };
}
