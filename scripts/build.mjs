// Builds what runs: the cloud-config schema and the Ignition schemas compiled to standalone ajv
// validators, each program bundled into one file under dist/, and a V8 code cache for each bundle.
// The Ignition validators are bundles of their own (dist/ignition-vX_Y.js, one per spec version),
// loaded only when the user data is an Ignition config of that version, so cloud-config validation
// starts no slower for them.
import { mkdirSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
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
 * One module per Ignition spec version, `generated/ignition-vX_Y.js`, holding its validator
 * (`validate`) and its schema (`schema`, which the validator reads to place findings and suggest
 * keys). A config loads only its own version's module.
 */
function compileIgnitionSchemas() {
  for (const version of ignitionVersions) {
    const schema = JSON.parse(readFileSync(schemaFile(version), 'utf8'));
    const ajv = new Ajv.default(ajvOptions);
    ajv.addKeyword({ keyword: 'deprecationMessage', schemaType: 'string' });
    const code = standaloneCode.default(ajv, ajv.compile(schema));
    const name = `ignition-v${version.split('.').slice(0, 2).join('_')}`;
    writeFileSync(join(generated, `${name}.js`), `${code}\nmodule.exports.validate = module.exports;\nmodule.exports.schema = ${JSON.stringify(schema)};\n`);
    writeFileSync(
      join(generated, `${name}.d.ts`),
      "import type { ErrorObject } from 'ajv';\n" +
        'export declare const validate: ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };\n' +
        'export declare const schema: unknown;\n',
    );
  }
}

/** The Ignition validators stay out of the program bundles: each program loads dist/ignition-vX_Y.js when needed. */
const separateIgnitionValidators = {
  name: 'separate-ignition-validators',
  setup(b) {
    b.onResolve({ filter: /generated\/ignition-v\d_\d$/ }, (args) =>
      args.kind === 'entry-point' ? undefined : { path: `./${args.path.split('/').pop()}.js`, external: true },
    );
  },
};

const ignitionEntries = Object.fromEntries(
  ignitionVersions.map((v) => {
    const name = `ignition-v${v.split('.').slice(0, 2).join('_')}`;
    return [name, join(generated, `${name}.js`)];
  }),
);

const programs = ['coreos-cloudinit', 'locksmithctl', 'locksmithd', 'fleetlockd', 'update_engine', 'update_engine_client', 'update-server'];

/**
 * Modules that are loaded on first use instead of at start-up: node's heavier built-ins,
 * dbus-next (which brings net, child_process, crypto and an XML parser), and the `yaml` package,
 * which only YAML that the fast reader declines needs (about 2 ms). A bundle runs every
 * module's top level when it starts, so `import { spawnSync } from 'node:child_process'` anywhere
 * would cost every run, validation included, about 5 ms (and dbus-next twice that). Our own code
 * (src/) uses them only inside functions, and commander only for executable subcommands, which
 * bootsmith does not use: there each import gets a stand-in with the module's export names
 * (taken here, at build time), each a getter that loads the real module the first time it is read.
 */
const lazyModules = /^(node:)?(child_process|http|https|net|os|zlib|crypto)$|^dbus-next$|^yaml$/;
const lazyImporters = [`${root}/src/`, `${root}/node_modules/commander/`];
const lazyRequire = createRequire(join(root, 'package.json'));

const lazyLoad = {
  name: 'lazy-load',
  setup(b) {
    b.onResolve({ filter: lazyModules }, (args) =>
      args.namespace === 'file' && lazyImporters.some((dir) => args.importer.startsWith(dir)) ? { path: args.path, namespace: 'lazy' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => ({
      contents:
        `let real;\nconst load = () => (real ??= require(${JSON.stringify(args.path)}));\n` +
        `for (const key of ${JSON.stringify(Object.keys(lazyRequire(args.path)))}) Object.defineProperty(exports, key, { enumerable: true, get: () => load()[key] });\n`,
      loader: 'js',
      resolveDir: root,
    }));
  },
};

async function bundle() {
  await build({
    plugins: [lazyLoad, separateIgnitionValidators],
    // dbus-next looks up X11 session buses through an optional package we do not use; etcd3 loads
    // its .proto files from beside its own code, so it stays in node_modules.
    external: ['x11', 'etcd3'],
    entryPoints: { ...Object.fromEntries(programs.map((p) => [p, join(root, 'src/cli', `${p}.ts`)])), 'make-images': join(root, 'images/make.ts'), ...ignitionEntries },
    outdir: join(root, 'dist'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    legalComments: 'none',
    // Smaller bundles read and deserialize faster at start-up; names are kept for stack traces.
    minify: true,
    keepNames: true,
    // ASCII only (esbuild escapes anything else): bin/load-bundle.js reads a bundle as latin1,
    // which makes V8's one-byte string without decoding UTF-8.
    charset: 'ascii',
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
