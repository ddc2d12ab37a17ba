/**
 * The cloud-config schema (schemas/cloud-config.schema.json) as the validator uses it: subschema
 * lookup with `$ref`, the canonical keys of each mapping, and where each key name belongs.
 */
import schemaJson from '../../schemas/cloud-config.schema.json';

/** The part of JSON Schema that our schema uses. */
export interface Schema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  enum?: unknown[];
  pattern?: string;
  description?: string;
  deprecated?: boolean;
  deprecationMessage?: string;
  /** The environment variable a service setting is written as (etcd, fleet, locksmith, flannel, update). */
  env?: string;
  additionalProperties?: boolean;
}

export const rootSchema = schemaJson as unknown as Schema;

const resolved = new WeakMap<Schema, Schema>();

/** Follows `$ref`s (all local: `#/definitions/x`, `#/properties/y`) to the schema they name. Memoized. */
export function resolve(schema: Schema): Schema {
  if (schema.$ref === undefined) return schema;
  let out = resolved.get(schema);
  if (!out) {
    out = follow(schema);
    resolved.set(schema, out);
  }
  return out;
}

const definitions = new Map<string, Schema>();

/** The schema `#/definitions/NAME`, its `$ref`s followed. Memoized (resolve's memo is keyed by the object asked about). */
export function definition(name: string): Schema {
  let out = definitions.get(name);
  if (!out) definitions.set(name, (out = resolve({ $ref: `#/definitions/${name}` })));
  return out;
}

function follow(schema: Schema): Schema {
  let s = schema;
  for (let hops = 0; s.$ref !== undefined && hops < 16; hops++) {
    let target: unknown = rootSchema;
    for (const seg of (s.$ref.startsWith('#/') ? s.$ref.slice(2) : s.$ref).split('/')) target = (target as Record<string, unknown>)[seg];
    // Deprecation and description written beside a $ref belong to the property, so keep them.
    const { $ref: _ref, ...beside } = s;
    s = { ...(target as Schema), ...beside };
  }
  return s;
}

/** The canonical keys of a mapping schema: the `_` spellings; `-` aliases are left out. */
export function canonicalKeys(schema: Schema): string[] {
  return Object.keys(schema.properties ?? {}).filter((k) => !k.includes('-'));
}

export function typesOf(schema: Schema): string[] {
  const t = schema.type;
  return t === undefined ? [] : Array.isArray(t) ? t : [t];
}

let keyHomes: Map<string, string[][]> | undefined;

/** Every place in the schema where a key name is valid, as paths of keys (`coreos`, `units[]`, `name`). */
export function placesOfKey(key: string): string[][] {
  if (!keyHomes) {
    keyHomes = new Map();
    const stack: Array<[Schema, string[]]> = [[rootSchema, []]];
    while (stack.length > 0) {
      let [schema, path] = stack.pop()!;
      let s = resolve(schema);
      if (s.items) {
        s = resolve(s.items);
        path = [...path.slice(0, -1), `${path[path.length - 1]}[]`];
      }
      for (const k of canonicalKeys(s)) {
        const here = [...path, k];
        const homes = keyHomes.get(k) ?? [];
        homes.push(here);
        keyHomes.set(k, homes);
        if (here.length < 6) stack.push([s.properties![k]!, here]);
      }
    }
  }
  return keyHomes.get(key) ?? [];
}
