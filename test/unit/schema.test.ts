/** schemas/cloud-config.schema.json against the reference key set, and the editor aliases. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolve, rootSchema, typesOf } from '../../src/cloudconfig/schema';
import type { Schema } from '../../src/cloudconfig/schema';
import { validateUserData } from '../../src/cloudconfig/validate';
import { sharedPath } from '../helpers';

const keysTable = readFileSync(sharedPath('reference/coreos-cloudinit-keys.md'), 'utf8');

/** Where each section of the reference table lives in the schema. */
const sectionSchemas: Record<string, Schema> = {
  top: rootSchema,
  coreos: resolve({ $ref: '#/definitions/coreos' }),
  'users[]': resolve({ $ref: '#/definitions/user' }),
  'write_files[]': resolve({ $ref: '#/definitions/file' }),
  'coreos.units[]': resolve({ $ref: '#/definitions/unit' }),
  'coreos.units[].drop_ins[]': resolve({ $ref: '#/definitions/dropin' }),
  'coreos.update': resolve({ $ref: '#/definitions/update' }),
  'coreos.locksmith': resolve({ $ref: '#/definitions/locksmith' }),
  'coreos.flannel': resolve({ $ref: '#/definitions/flannel' }),
  'coreos.oem': resolve({ $ref: '#/definitions/oem' }),
  'coreos.fleet': resolve({ $ref: '#/definitions/fleet' }),
  'coreos.etcd2': resolve({ $ref: '#/definitions/etcd2' }),
  'coreos.etcd': resolve({ $ref: '#/definitions/etcd' }),
};

interface Row {
  section: string;
  key: string;
  type: string;
  env: string;
  deprecated: string;
}

const rows: Row[] = [];
let section = '';
for (const line of keysTable.split('\n')) {
  const h = /^#### (\S+)/.exec(line);
  if (h) section = h[1]!;
  const m = /^\| `([a-z0-9_]+)` \| ([^|]+) \| ([^|]*) \|.*\| ([^|]*) \|$/.exec(line);
  if (m) rows.push({ section, key: m[1]!, type: m[2]!.trim(), env: m[3]!.trim().replace(/`/g, ''), deprecated: m[4]!.trim() });
}

const schemaTypes: Record<string, string[]> = {
  string: ['string', 'number', 'boolean'],
  bool: ['boolean'],
  int: ['integer'],
  'float64 (int accepted)': ['number'],
  '[]string': ['array'],
  struct: ['object'],
  '[]struct': ['array'],
};

test('the reference table is read', () => {
  expect(rows.length).toBe(178);
  expect(Object.keys(sectionSchemas)).toEqual(expect.arrayContaining([...new Set(rows.map((r) => r.section))]));
});

test.each(rows.map((r) => [`${r.section}.${r.key}`, r] as const))('%s has the reference type, variable and deprecation', (_name, row) => {
  const parent = sectionSchemas[row.section]!;
  const prop = parent.properties?.[row.key];
  expect(prop).toBeDefined();
  expect(typesOf(resolve(prop!))).toEqual(schemaTypes[row.type]);
  expect(prop!.env).toBe(/^[A-Z]/.test(row.env) ? row.env : undefined);
  if (row.deprecated) {
    expect(prop!.deprecated).toBe(true);
    expect(prop!.deprecationMessage).toBe(row.deprecated);
  } else expect(prop!.deprecated).toBeUndefined();
});

test('every mapping is closed and every key with _ has a - alias pointing at it', () => {
  for (const [name, s] of Object.entries(sectionSchemas)) {
    expect([name, s.additionalProperties]).toEqual([name, false]);
    const props = s.properties!;
    for (const key of Object.keys(props)) {
      if (key.includes('_')) expect([key, resolve(props[key.replace(/_/g, '-')]!)]).toEqual([key, resolve(props[key]!)]);
      if (key.includes('-')) expect(props[key]).toEqual({ $ref: expect.stringMatching(new RegExp(`/properties/${key.replace(/-/g, '_')}$`)) });
    }
  }
});

describe('examples', () => {
  const dir = join(__dirname, '../../examples');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  test.each(files)('%s is valid and points editors at the schema on line 2', (f) => {
    const text = readFileSync(join(dir, f), 'utf8');
    expect(text.split('\n')[1]).toBe('# yaml-language-server: $schema=../schemas/cloud-config.schema.json');
    expect(validateUserData(Buffer.from(text)).diagnostics).toEqual([]);
  });
});
