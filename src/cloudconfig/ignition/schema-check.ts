/**
 * Structure checks of an Ignition config against its spec version's schema
 * (schemas/ignition-vX_Y.schema.json, compiled at build time). Each version's validator is a module
 * of its own, loaded on first use, so validating cloud-config never pays for them. Ajv's errors become
 * findings on the key or value itself; unknown keys are warnings, as in ignition-validate.
 */
import type { ErrorObject } from 'ajv';
import type { Finding, PathSegment } from '../../report/diagnostic';
import { decodePointer, formatPath } from '../../report/diagnostic';
import { editDistance } from '../suggest';
import { pairOf } from '../tree';
import type { Range, YNode } from '../tree';

/** The part of JSON Schema that the Ignition schemas use. */
export interface IgnitionSchema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, IgnitionSchema>;
  required?: string[];
  items?: IgnitionSchema;
  enum?: unknown[];
  description?: string;
  deprecated?: boolean;
  deprecationMessage?: string;
  definitions?: Record<string, IgnitionSchema>;
}

type Validate = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

interface Generated {
  validate: Validate;
  schema: IgnitionSchema;
}

/*
 * One module per spec version, each required by name so that the build can keep them out of the
 * program bundle (scripts/build.mjs); a config loads only its own version's.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const modules: Record<string, () => Generated> = {
  '3.0.0': () => require('../generated/ignition-v3_0') as Generated,
  '3.1.0': () => require('../generated/ignition-v3_1') as Generated,
  '3.2.0': () => require('../generated/ignition-v3_2') as Generated,
  '3.3.0': () => require('../generated/ignition-v3_3') as Generated,
  '3.4.0': () => require('../generated/ignition-v3_4') as Generated,
  '3.5.0': () => require('../generated/ignition-v3_5') as Generated,
  '2.0.0': () => require('../generated/ignition-v2_0') as Generated,
  '2.1.0': () => require('../generated/ignition-v2_1') as Generated,
  '2.2.0': () => require('../generated/ignition-v2_2') as Generated,
  '2.3.0': () => require('../generated/ignition-v2_3') as Generated,
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** The compiled validator and the schema of a supported spec version. */
export function generatedFor(version: string): Generated {
  return modules[version]!();
}

/** The schema of a supported spec version. */
export function schemaOf(version: string): IgnitionSchema {
  return generatedFor(version).schema;
}

/** Follows a `$ref` (`#/definitions/name`) within `root`. */
export function resolveIn(root: IgnitionSchema, schema: IgnitionSchema): IgnitionSchema {
  if (schema.$ref === undefined) return schema;
  const name = schema.$ref.replace('#/definitions/', '');
  const { $ref: _ref, ...beside } = schema;
  return { ...root.definitions![name]!, ...beside };
}

/** The plain JSON value of a tree, as the validator checks it. */
export function toValue(node: YNode): unknown {
  if (node.kind === 'scalar') return node.value;
  if (node.kind === 'seq') return node.items.map(toValue);
  const obj: Record<string, unknown> = {};
  for (const pair of node.pairs) {
    const value = toValue(pair.value);
    if (pair.key === '__proto__') Object.defineProperty(obj, pair.key, { value, enumerable: true, writable: true });
    else obj[pair.key] = value;
  }
  return obj;
}

interface Located {
  node: YNode;
  keyRange?: Range;
  schema?: IgnitionSchema;
}

function locate(root: YNode, schemaRoot: IgnitionSchema, path: PathSegment[]): Located | undefined {
  let at: Located = { node: root, schema: schemaRoot };
  for (const seg of path) {
    const { node, schema } = at;
    if (node.kind === 'map' && typeof seg === 'string') {
      const pair = pairOf(node, seg);
      if (!pair) return undefined;
      const child = schema?.properties?.[seg];
      at = { node: pair.value, keyRange: pair.keyRange };
      if (child) at.schema = resolveIn(schemaRoot, child);
    } else if (node.kind === 'seq' && typeof seg === 'number' && seg < node.items.length) {
      at = { node: node.items[seg]! };
      if (schema?.items) at.schema = resolveIn(schemaRoot, schema.items);
    } else return undefined;
  }
  return at;
}

const typeNames: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean (true or false)',
  object: 'an object',
  array: 'a list',
};

function wanted(schema: IgnitionSchema | undefined, fallback: string): string {
  const types = schema?.type === undefined ? [fallback] : Array.isArray(schema.type) ? schema.type : [schema.type];
  const main = types.find((t) => t !== 'null') ?? fallback;
  return typeNames[main] ?? main;
}

function describeNode(node: YNode): string {
  if (node.kind === 'map') return 'an object';
  if (node.kind === 'seq') return 'a list';
  const v = node.value;
  if (v === null) return 'null';
  if (typeof v === 'boolean') return `the boolean ${node.source}`;
  if (typeof v === 'number') return `the number ${node.source}`;
  return `the string ${JSON.stringify(node.source.length > 40 ? `${node.source.slice(0, 37)}...` : node.source)}`;
}

/** Checks the tree against the schema of `version`; findings in document order of the validator. */
export function checkIgnitionSchema(root: YNode, version: string): Finding[] {
  const { validate, schema: schemaRoot } = generatedFor(version);
  const findings = deprecatedKeys(root, schemaRoot);
  if (validate(toValue(root))) return findings;
  for (const err of validate.errors ?? []) {
    const f = translate(err, root, schemaRoot, version);
    if (f) findings.push(f);
  }
  return findings;
}

function deprecatedKeys(root: YNode, schemaRoot: IgnitionSchema): Finding[] {
  const out: Finding[] = [];
  const walk = (node: YNode, schema: IgnitionSchema | undefined, path: PathSegment[]): void => {
    if (!schema) return;
    const s = resolveIn(schemaRoot, schema);
    if (node.kind === 'map') {
      for (const pair of node.pairs) {
        const child = s.properties?.[pair.key];
        if (child?.deprecated) {
          out.push({
            severity: 'warning',
            code: 'deprecated-key',
            message: `deprecated key "${pair.key}"${child.deprecationMessage ? `: ${child.deprecationMessage}` : ''}`,
            path: [...path, pair.key],
            range: pair.keyRange,
          });
        }
        walk(pair.value, child, [...path, pair.key]);
      }
    } else if (node.kind === 'seq') node.items.forEach((item, i) => walk(item, s.items, [...path, i]));
  };
  walk(root, schemaRoot, []);
  return out;
}

function translate(err: ErrorObject, root: YNode, schemaRoot: IgnitionSchema, version: string): Finding | undefined {
  const path = decodePointer(err.instancePath);
  const at = locate(root, schemaRoot, path);
  if (!at) return undefined;
  const where = formatPath(path);
  const name = path.length === 0 ? 'the config' : `"${formatPath(path.slice(typeof path[path.length - 1] === 'number' ? -2 : -1))}"`;
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = (err.params as { additionalProperty: string }).additionalProperty;
      const pair = at.node.kind === 'map' ? pairOf(at.node, key) : undefined;
      const later = laterVersionWith(version, path, key);
      const hint = later
        ? `"${key}" comes with spec ${later}: set ignition.version to ${later} or later`
        : at.schema
          ? suggest(key, at.schema, path, schemaRoot)
          : undefined;
      return {
        severity: 'warning',
        code: 'unknown-key',
        message: `unused key "${key}"${where ? ` in ${where}` : ''}${hint ? `; ${hint}` : ''}`,
        path: [...path, key],
        range: pair?.keyRange ?? at.node.range,
      };
    }
    case 'required': {
      const key = (err.params as { missingProperty: string }).missingProperty;
      return {
        severity: 'error',
        code: 'missing-key',
        message: `${where || 'the config'} has no "${key}", which is required`,
        path,
        range: at.keyRange ?? [at.node.range[0], at.node.range[0] + 1],
      };
    }
    case 'type': {
      const want = wanted(at.schema, (err.params as { type: string }).type);
      let hint = '';
      if (at.node.kind === 'scalar' && typeof at.node.value === 'string' && want === 'an integer' && /^0?[0-7]{3,4}$/.test(at.node.value)) {
        hint = `; JSON has no octal numbers: write ${parseInt(at.node.value, 8)} for ${at.node.value.padStart(4, '0')}`;
      }
      return {
        severity: 'error',
        code: 'wrong-type',
        message: `incorrect type for ${name}: want ${want}, found ${describeNode(at.node)}${hint}`,
        path,
        range: at.node.range,
      };
    }
    case 'enum': {
      const allowed = (at.schema?.enum ?? []).filter((v) => v !== '').map((v) => String(v));
      return {
        severity: 'error',
        code: 'invalid-value',
        message: `invalid value ${at.node.kind === 'scalar' ? JSON.stringify(at.node.value) : describeNode(at.node)} for ${name}: want one of ${allowed.join(', ')}`,
        path,
        range: at.node.range,
      };
    }
    default:
      return { severity: 'error', code: 'schema', message: `${name} ${err.message ?? 'is invalid'}`, path, range: at.keyRange ?? at.node.range };
  }
}

/**
 * The first later spec version of the same line whose schema has `key` at `path`, if any. Loads
 * the later versions' modules, but only for a key the config's own version does not know.
 */
function laterVersionWith(version: string, path: PathSegment[], key: string): string | undefined {
  const [major, minor] = version.split('.').map(Number);
  for (const candidate of Object.keys(modules)) {
    const [m, n] = candidate.split('.').map(Number);
    if (m !== major || n! <= minor!) continue;
    const schemaRoot = schemaOf(candidate);
    let s: IgnitionSchema | undefined = schemaRoot;
    for (const seg of path) {
      s = s && resolveIn(schemaRoot, s);
      s = typeof seg === 'number' ? s?.items : s?.properties?.[seg];
    }
    if (s && resolveIn(schemaRoot, s).properties?.[key]) return candidate;
  }
  return undefined;
}

/** "did you mean" for an unknown key: a near sibling (case ignored), or where the key belongs instead. */
function suggest(key: string, parent: IgnitionSchema, parentPath: PathSegment[], schemaRoot: IgnitionSchema): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of Object.keys(parent.properties ?? {})) {
    const limit = Math.min(3, Math.max(1, Math.floor(candidate.length / 2)));
    const d = editDistance(lower, candidate.toLowerCase(), limit);
    if (d <= limit && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== undefined) return `did you mean "${best}"?`;
  const here = parentPath.filter((p) => typeof p === 'string').join('.');
  const homes = placesOf(key, schemaRoot).filter((h) => h !== here);
  if (homes.length >= 1 && homes.length <= 2) return `"${key}" belongs under ${homes.map((h) => h || 'the top level').join(' or ')}`;
  return undefined;
}

const keyHomes = new WeakMap<IgnitionSchema, Map<string, string[]>>();

/** The objects (as dotted key paths, list levels left out) where `key` is a property. Indexed once a schema. */
function placesOf(key: string, schemaRoot: IgnitionSchema): string[] {
  let homes = keyHomes.get(schemaRoot);
  if (!homes) {
    const index = new Map<string, string[]>();
    const walk = (schema: IgnitionSchema, path: string[]): void => {
      let s = resolveIn(schemaRoot, schema);
      if (s.items) s = resolveIn(schemaRoot, s.items);
      if (path.length > 6) return;
      for (const [k, child] of Object.entries(s.properties ?? {})) {
        const places = index.get(k) ?? [];
        if (!places.includes(path.join('.'))) places.push(path.join('.'));
        index.set(k, places);
        walk(child, [...path, k]);
      }
    };
    walk(schemaRoot, []);
    homes = index;
    keyHomes.set(schemaRoot, homes);
  }
  return homes.get(key) ?? [];
}
