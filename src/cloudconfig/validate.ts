/**
 * Validates user data as `coreos-cloudinit --validate` does, and more: a report of diagnostics in
 * a fixed order. Cloud-config is checked here; Ignition configs by ignition/validate.ts. Never
 * throws on any input.
 */
import type { Diagnostic, Finding } from '../report/diagnostic';
import { compareDiagnostics } from '../report/diagnostic';
import { Positions } from '../report/positions';
import { defaultParseLimits, parseYaml } from './parse-yaml';
import type { ParseLimits } from './parse-yaml';
import { checkEtcd } from './rules/etcd';
import { checkSettings } from './rules/settings';
import { checkFiles } from './rules/files';
import { checkHostname } from './rules/hostname';
import { checkUnits } from './rules/units';
import { checkUsers } from './rules/users';
import { checkVariables } from './rules/variables';
import { checkSchema } from './schema-check';
import { classifyUserData, decodeUserData, headerFindings } from './userdata';
import type { UserDataKind } from './userdata';
import type { YNode } from './tree';

export interface ValidateOptions extends ParseLimits {
  /** The values metadata gives the variables, when known: empty ones are warned about. */
  variables?: Partial<Record<string, string>>;
  /**
   * Largest user data accepted, before and after gunzip, in bytes. Default 2 MiB: clouds cap user
   * data far lower (EC2 at 16 KB), and YAML that the fast reader declines costs up to about 5 s per
   * MiB in the full reader, so this bounds the time a hostile file can take.
   */
  maxSize: number;
}

export const defaultValidateOptions: ValidateOptions = { ...defaultParseLimits, maxSize: 2 * 1024 * 1024 };

export interface ValidationReport {
  /** What the user data is; undefined when it could not be decoded at all. */
  kind: UserDataKind | undefined;
  gzipped: boolean;
  /** The decoded text the positions refer to (empty when it could not be decoded). */
  text: string;
  diagnostics: Diagnostic[];
  /** The parsed tree of cloud-config user data or of an Ignition config, for callers that go on to apply it. */
  root: YNode | undefined;
  /** An Ignition config's spec version, when it is one of those validated. */
  ignitionVersion?: string;
}

export function validateUserData(bytes: Uint8Array, options: Partial<ValidateOptions> = {}): ValidationReport {
  const opts = { ...defaultValidateOptions, ...options };
  const decoded = decodeUserData(bytes, opts.maxSize);
  // Findings are gathered with concat, not push(...): a hostile file can have a million of them.
  let findings: Finding[] = decoded.findings;
  const text = decoded.text ?? '';
  let kind: UserDataKind | undefined;
  let root: YNode | undefined;
  let ignitionVersion: string | undefined;
  if (decoded.text !== undefined) {
    kind = classifyUserData(text);
    findings = findings.concat(headerFindings(text, kind));
    if (kind === 'cloud-config') {
      const parsed = parseYaml(text, opts);
      root = parsed.root;
      findings = findings.concat(parsed.findings);
      if (root && !parsed.syntaxErrors) findings = findings.concat(checkCloudConfig(root, text));
      findings = findings.concat(checkVariables(text, opts.variables));
    } else if (kind === 'ignition') {
      const ignition = ignitionModule().validateIgnition(text);
      findings = findings.concat(ignition.findings);
      root = ignition.root;
      ignitionVersion = ignition.version;
    }
  }
  return { kind, gzipped: decoded.gzipped, text, diagnostics: placeFindings(findings, text), root, ...(ignitionVersion ? { ignitionVersion } : {}) };
}

/** The Ignition validator, loaded only for Ignition configs: cloud-config validation starts without it. */
function ignitionModule(): typeof import('./ignition/validate') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('./ignition/validate') as typeof import('./ignition/validate');
}

/** The rules that need a well-formed tree, in a fixed order. */
function checkCloudConfig(root: YNode, text: string): Finding[] {
  if (root.kind !== 'map') {
    return [
      {
        severity: 'error',
        code: 'wrong-type',
        message: `cloud-config must be a mapping of keys (such as hostname:, users:), found a ${root.kind === 'seq' ? 'list' : 'scalar'}`,
        path: [],
        range: root.range,
      },
    ];
  }
  return checkSchema(root).concat(checkHostname(root), checkFiles(root), checkUsers(root), checkUnits(root, text), checkEtcd(root), checkSettings(root));
}

/** Findings placed in `text` (offsets made lines and columns), in the report's order. */
export function placeFindings(findings: Finding[], text: string): Diagnostic[] {
  if (findings.length === 0) return [];
  const positions = new Positions(text);
  return findings
    .map((f) => {
      const start = positions.at(f.range[0]);
      const end = positions.at(Math.max(f.range[0], f.range[1]));
      return {
        severity: f.severity,
        code: f.code,
        message: f.message,
        path: f.path,
        line: start.line,
        column: start.column,
        endLine: end.line,
        endColumn: end.column,
      };
    })
    .sort(compareDiagnostics);
}
