// Builds what runs: the cloud-config schema compiled to a standalone ajv validator, each program
// bundled into one file under dist/, and a V8 code cache for each bundle.
import { mkdirSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import Ajv from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { build } from 'esbuild';

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

const programs = ['coreos-cloudinit', 'locksmithctl', 'locksmithd', 'fleetlockd', 'update_engine', 'update_engine_client', 'update-server'];

/**
 * Modules that are loaded on first use instead of at start-up: node's heavier built-ins and
 * dbus-next (which brings net, child_process, crypto and an XML parser). A bundle runs every
 * module's top level when it starts, so `import { spawnSync } from 'node:child_process'` anywhere
 * would cost every run, validation included, about 5 ms (and dbus-next twice that). Our own code
 * (src/) uses them only inside functions, and commander only for executable subcommands, which
 * bootsmith does not use: there each import gets a stand-in with the module's export names
 * (taken here, at build time), each a getter that loads the real module the first time it is read.
 */
const lazyModules = /^(node:)?(child_process|http|https|net|os|zlib|crypto)$|^dbus-next$/;
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
    plugins: [lazyLoad],
    // dbus-next looks up X11 session buses through an optional package we do not use; etcd3 loads
    // its .proto files from beside its own code, so it stays in node_modules.
    external: ['x11', 'etcd3'],
    entryPoints: { ...Object.fromEntries(programs.map((p) => [p, join(root, 'src/cli', `${p}.ts`)])), 'make-images': join(root, 'images/make.ts') },
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
await bundle();
writeCodeCaches();
