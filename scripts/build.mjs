// Builds what runs: the cloud-config schema and the Ignition schemas compiled to standalone ajv
// validators, each program bundled into one file under dist/, and a V8 code cache for each bundle.
// The Ignition validators are a bundle of their own (dist/ignition-validators.js), loaded only when
// the user data is an Ignition config, so cloud-config validation starts no slower for them.
import { mkdirSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { build } from 'esbuild';
import { ignitionVersions, schemaFile } from './ignition-schemas.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const generated = join(root, 'src/cloudconfig/generated');

/** Every error, strict schema checking; union types because string fields also take YAML numbers and booleans. */
export const ajvOptions = { allErrors: true, strict: true, allowUnionTypes: true, code: { source: true } };

function compileSchema() {
  const schema = JSON.parse(readFileSync(join(root, 'schemas/cloud-config.schema.json'), 'utf8'));
  const ajv = new Ajv.default(ajvOptions);
  // Annotations, not checks: the editors' deprecation text, and the environment variable a service
  // setting becomes (read by src/apply from the schema).
  ajv.addKeyword({ keyword: 'deprecationMessage', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'env', schemaType: 'string' });
  const validate = ajv.compile(schema);
  mkdirSync(generated, { recursive: true });
  writeFileSync(join(generated, 'schema-validator.js'), standaloneCode.default(ajv, validate));
  writeFileSync(
    join(generated, 'schema-validator.d.ts'),
    "import type { ErrorObject } from 'ajv';\n" +
      'declare const validate: ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };\n' +
      'export = validate;\n',
  );
}

/**
 * One module with a validator per Ignition spec version (`validators['3.4.0']`) and the schemas
 * themselves (`schemas['3.4.0']`), which the validator reads to place findings and suggest keys.
 */
function compileIgnitionSchemas() {
  const ajv = new Ajv.default(ajvOptions);
  ajv.addKeyword({ keyword: 'deprecationMessage', schemaType: 'string' });
  const schemas = Object.fromEntries(ignitionVersions.map((v) => [v, JSON.parse(readFileSync(schemaFile(v), 'utf8'))]));
  for (const schema of Object.values(schemas)) ajv.addSchema(schema);
  const code = standaloneCode.default(ajv, Object.fromEntries(ignitionVersions.map((v) => [v, schemas[v].$id])));
  // standaloneCode exports each validator under its version; `validators` gathers them in one record.
  const gather = `exports.validators = Object.fromEntries(${JSON.stringify(ignitionVersions)}.map((v) => [v, exports[v]]));`;
  writeFileSync(join(generated, 'ignition-validators.js'), `${code}\n${gather}\nexports.schemas = ${JSON.stringify(schemas)};\n`);
  writeFileSync(
    join(generated, 'ignition-validators.d.ts'),
    "import type { ErrorObject } from 'ajv';\n" +
      'type Validate = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };\n' +
      'export declare const validators: Record<string, Validate>;\n' +
      'export declare const schemas: Record<string, unknown>;\n',
  );
}

/** The Ignition validators stay out of the program bundles: they load dist/ignition-validators.js when needed. */
const separateIgnitionValidators = {
  name: 'separate-ignition-validators',
  setup(b) {
    b.onResolve({ filter: /generated\/ignition-validators$/ }, (args) =>
      args.kind === 'entry-point' ? undefined : { path: './ignition-validators.js', external: true },
    );
  },
};

const programs = ['coreos-cloudinit', 'locksmithctl', 'locksmithd', 'fleetlockd', 'update_engine', 'update_engine_client', 'update-server'];

/**
 * commander requires node:child_process when it loads (for executable subcommands, which bootsmith
 * does not use), and that pulls in net and streams: about 5 ms of every start. This hands commander
 * a stand-in that loads the real module on first use.
 */
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      args.importer.includes(`${'node_modules'}/commander/`) ? { path: 'lazy-child-process', namespace: 'lazy' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, () => ({
      contents: "let real; module.exports = new Proxy({}, { get: (_, key) => (real ??= require('node:child_process'))[key] });",
      loader: 'js',
    }));
  },
};

async function bundle() {
  await build({
    plugins: [lazyChildProcess, separateIgnitionValidators],
    // dbus-next looks up X11 session buses through an optional package we do not use; etcd3 loads
    // its .proto files from beside its own code, so it stays in node_modules.
    external: ['x11', 'etcd3'],
    entryPoints: { ...Object.fromEntries(programs.map((p) => [p, join(root, 'src/cli', `${p}.ts`)])), 'make-images': join(root, 'images/make.ts'), 'ignition-validators': join(generated, 'ignition-validators.js') },
    outdir: join(root, 'dist'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    legalComments: 'none',
    // Smaller bundles read and deserialize faster at start-up; names are kept for stack traces.
    minify: true,
    keepNames: true,
    // A map beside each bundle, so a crash trace names src/*.ts lines (bin/load-bundle.js reads it
    // only when a stack is printed). Positions only: the sources themselves are not shipped.
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'warning',
  });
}

function writeCodeCaches() {
  const examples = readdirSync(join(root, 'examples'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(root, 'examples', f));
  // A real run over the examples, so the cache holds the functions validation compiles.
  const run = spawnSync(process.execPath, [join(root, 'bin/coreos-cloudinit.js'), '--validate', '--from-file', ...examples], {
    env: { ...process.env, BOOTSMITH_WRITE_CODE_CACHE: '1' },
    encoding: 'utf8',
  });
  // Exit 1 means findings in the examples, which still warms the cache; anything else is a broken build.
  if (run.status !== 0 && run.status !== 1) throw new Error(`writing the code cache failed: ${run.stderr}`);
}

compileSchema();
compileIgnitionSchemas();
await bundle();
writeCodeCaches();
