/**
 * Structure checks against the schema. The tree becomes the JSON instance that the precompiled ajv
 * validator checks, read the way coreos-cloudinit reads it: a string field takes the scalar's
 * source text (`0644`, `off` stay as written), other fields take YAML 1.1 values. Ajv's errors
 * become findings placed on the offending key or value. Deprecated keys are reported on the way.
 */
import type { ErrorObject } from 'ajv';
import validateSchema from './generated/schema-validator';
import type { Finding, PathSegment } from '../report/diagnostic';
import { decodePointer, formatPath } from '../report/diagnostic';
import { resolve, rootSchema, typesOf } from './schema';
import type { Schema } from './schema';
import { suggestKey } from './suggest';
import { pairOf, scalarText } from './tree';
import type { Range, YNode } from './tree';

interface Located {
  node: YNode;
  /** The key's range when the node is a mapping value. */
  keyRange?: Range;
  /** The node's schema; undefined under a key the schema does not know. */
  schema?: Schema;
}

export function checkSchema(root: YNode): Finding[] {
  const findings: Finding[] = [];
  const instance = toInstance(root, rootSchema, [], findings);
  if (!validateSchema(instance)) {
    for (const err of validateSchema.errors ?? []) {
      const finding = translate(err, root);
      if (finding) for (const f of finding) findings.push(f);
    }
  }
  return findings;
}

/**
 * Builds the instance for `node` under `schema` (undefined: a key the schema does not know, whose
 * children are not inspected). `path` is a stack shared by the whole walk, copied only for findings.
 */
function toInstance(node: YNode, schema: Schema | undefined, path: PathSegment[], findings: Finding[]): unknown {
  const s = schema && resolve(schema);
  if (node.kind === 'map') {
    const obj: Record<string, unknown> = {};
    for (const pair of node.pairs) {
      const childSchema = s?.properties?.[pair.key];
      path.push(pair.key);
      if (childSchema?.deprecated) {
        const reason = resolve(childSchema).deprecationMessage ?? childSchema.deprecationMessage;
        findings.push({
          severity: 'warning',
          code: 'deprecated-key',
          message: `deprecated key "${pair.key}"${reason ? ` (${reason})` : ''}`,
          path: [...path],
          range: pair.keyRange,
        });
      }
      const value = toInstance(pair.value, childSchema, path, findings);
      // A plain object is much faster than a prototype-less one; only "__proto__" needs care.
      if (pair.key === '__proto__') Object.defineProperty(obj, pair.key, { value, enumerable: true, writable: true });
      else obj[pair.key] = value;
      path.pop();
    }
    return obj;
  }
  if (node.kind === 'seq') {
    const items = s?.items;
    return node.items.map((item, i) => {
      path.push(i);
      const out = toInstance(item, items, path, findings);
      path.pop();
      return out;
    });
  }
  return scalarInstance(node, s);
}

/** The node and schema at a JSON path, found by walking the tree (only for the nodes with errors). */
function locate(root: YNode, path: PathSegment[]): Located | undefined {
  let at: Located = { node: root, schema: resolve(rootSchema) };
  for (const seg of path) {
    const { node, schema } = at;
    if (node.kind === 'map' && typeof seg === 'string') {
      const pair = pairOf(node, seg);
      if (!pair) return undefined;
      const child = schema?.properties?.[seg];
      at = { node: pair.value, keyRange: pair.keyRange };
      if (child) at.schema = resolve(child);
    } else if (node.kind === 'seq' && typeof seg === 'number' && seg < node.items.length) {
      at = { node: node.items[seg]! };
      if (schema?.items) at.schema = resolve(schema.items);
    } else return undefined;
  }
  return at;
}

function scalarInstance(node: YNode & { kind: 'scalar' }, schema: Schema | undefined): unknown {
  const { value } = node;
  if (value === null) return null;
  const types = schema ? typesOf(schema) : [];
  if (types.includes('string')) return scalarText(node);
  if (value instanceof Uint8Array) return scalarText(node);
  // JavaScript has one number type; `2.0` must still fail an integer field, as it does in the reference.
  if (types.includes('integer') && typeof value === 'number' && node.plain && /[.eE]|inf|nan/i.test(node.source)) {
    return node.source;
  }
  return value;
}

const typeNames: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean (true or false)',
  object: 'a mapping',
  array: 'a list',
};

function describeType(schema: Schema | undefined, fallback: string): string {
  const types = schema ? typesOf(schema) : [fallback];
  const main = types.includes('string') ? 'string' : (types[0] ?? fallback);
  if (main === 'array' && schema?.items) {
    const item = resolve(schema.items);
    return typesOf(item).includes('object') ? 'a list of mappings' : 'a list of strings';
  }
  return typeNames[main] ?? main;
}

function translate(err: ErrorObject, root: YNode): Finding[] | undefined {
  const path = decodePointer(err.instancePath);
  const at = locate(root, path);
  if (!at) return undefined;
  const name = path.length === 0 ? 'the document' : `"${formatPath(path.slice(typeof path[path.length - 1] === 'number' ? -2 : -1))}"`;
  const where = formatPath(path);
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = (err.params as { additionalProperty: string }).additionalProperty;
      const child = locate(root, [...path, key]);
      const parentPath = path.filter((p): p is string => typeof p === 'string');
      const hint = at.schema ? suggestKey(key, at.schema, parentPath) : undefined;
      const range = child?.keyRange ?? at.node.range;
      const out: Finding[] = [
        {
          severity: 'warning',
          code: 'unknown-key',
          message: `unrecognized key "${key}"${where ? ` in ${where}` : ''}${hint ? `; ${hint}` : ''}`,
          path: [...path, key],
          range,
        },
      ];
      if (where === 'coreos' && key === 'write_files') {
        out.push({ severity: 'info', code: 'write-files-under-coreos', message: "write_files doesn't belong under coreos; move it to the top level", path: [...path, key], range });
      }
      return out;
    }
    case 'type': {
      const want = describeType(at.schema, (err.params as { type: string }).type);
      const empty = at.node.kind === 'scalar' && at.node.value === null;
      const range = empty || at.node.kind !== 'scalar' ? (at.keyRange ?? at.node.range) : at.node.range;
      return [
        {
          severity: empty ? 'warning' : 'error',
          code: empty ? 'empty-value' : 'wrong-type',
          message: empty ? `${name} has no value (want ${want})` : `incorrect type for ${name}: want ${want}, found ${describeNode(at.node)}`,
          path,
          range,
        },
      ];
    }
    case 'enum':
    case 'pattern': {
      // A value of the wrong type already has its finding; an empty string means "not set", as in the reference.
      const text = at.node.kind === 'scalar' ? scalarText(at.node) : undefined;
      if (text === undefined || text === '') return undefined;
      const allowed = at.schema?.enum ? `: must be one of ${at.schema.enum.join(', ')}` : patternHint(where);
      return [
        { severity: 'error', code: 'invalid-value', message: `invalid value ${JSON.stringify(text)} for ${name}${allowed}`, path, range: at.node.range },
      ];
    }
    default:
      return [{ severity: 'error', code: 'schema', message: `${name} ${err.message ?? 'is invalid'}`, path, range: at.keyRange ?? at.node.range }];
  }
}

function describeNode(node: YNode): string {
  if (node.kind === 'map') return 'a mapping';
  if (node.kind === 'seq') return 'a list';
  const v = node.value;
  if (typeof v === 'boolean') return `the boolean ${node.source}`;
  if (typeof v === 'number') return `the number ${node.source}`;
  return `the string ${JSON.stringify(node.source)}`;
}

/** What a patterned field wants, in words. */
function patternHint(where: string): string {
  if (where.endsWith('permissions')) return ': want an octal mode such as 0644 or 0755';
  if (where.endsWith('window_start')) return ': want [weekday ]HH:MM, such as "Thu 04:00" or "04:00"';
  if (where.endsWith('window_length')) return ': want a duration such as 1h or 1h30m';
  return '';
}
