// Builds what runs: the cloud-config schema and the Ignition schemas compiled to standalone ajv
// validators, each program bundled into one file under dist/, and a V8 code cache for each bundle.
// The Ignition validators are bundles of their own (dist/ignition-vX_Y.js, one per spec version),
// loaded only when the user data is an Ignition config of that version, so cloud-config validation
// starts no slower for them.
import { mkdirSync, mkdtempSync, writeFileSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { dirname, join, relative, sep } from 'node:path';
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
  // The same object as src/cloudconfig/schema.ts imports: the bundle holds the schema once.
  const code = shareSchemaLiterals(standaloneCode.default(ajv, validate), schema, 'rootSchema', 'require("../../../schemas/cloud-config.schema.json")');
  writeFileSync(join(generated, 'schema-validator.js'), code);
  writeFileSync(
    join(generated, 'schema-validator.d.ts'),
    "import type { ErrorObject } from 'ajv';\n" +
      'declare const validate: ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };\n' +
      'export = validate;\n',
  );
}

/**
 * ajv's standalone code declares each schema it reads at run time (`schema.properties` for
 * additionalProperties, types for error messages) as an object literal of its own, `const schemaN =
 * {...}`: 137 of them, 85 KB, for cloud-config, each a copy of a part of the root schema, all built
 * at start-up. Here the root is declared once, `const NAME = EXPRESSION`, and each literal becomes
 * a path into it; a literal that is not part of the root stays as it is.
 */
function shareSchemaLiterals(code, schema, name, expression) {
  const places = new Map();
  const walk = (value, access) => {
    if (value === null || typeof value !== 'object') return;
    const key = JSON.stringify(value);
    if (!places.has(key)) places.set(key, access);
    for (const [k, v] of Object.entries(value)) walk(v, `${access}[${JSON.stringify(Array.isArray(value) ? Number(k) : k)}]`);
  };
  walk(schema, name);
  const prologue = '"use strict";';
  if (!code.startsWith(prologue)) throw new Error('ajv standalone code no longer starts with "use strict"');
  let out = `${prologue}const ${name} = ${expression};`;
  let at = prologue.length;
  for (const m of code.matchAll(/const schema\d+ = /g)) {
    if (m.index < at) continue;
    const start = m.index + m[0].length;
    const end = jsonEnd(code, start);
    const access = places.get(JSON.stringify(JSON.parse(code.slice(start, end))));
    out += code.slice(at, start) + (access ?? code.slice(start, end));
    at = end;
  }
  return out + code.slice(at);
}

/** The end of the JSON object or array that starts at `start` in `text`. */
function jsonEnd(text, start) {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
    } else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return i + 1;
  }
  throw new Error(`unterminated JSON at ${start}`);
}

/** A large JSON value as JavaScript that V8 builds fastest: JSON.parse of a string, not an object literal. */
function jsonExpression(value) {
  return `JSON.parse(${JSON.stringify(JSON.stringify(value))})`;
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
    const code = shareSchemaLiterals(standaloneCode.default(ajv, ajv.compile(schema)), schema, 'rootSchema', jsonExpression(schema));
    const name = `ignition-v${version.split('.').slice(0, 2).join('_')}`;
    writeFileSync(join(generated, `${name}.js`), `${code}\nmodule.exports.validate = module.exports;\nmodule.exports.schema = rootSchema;\n`);
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
 * dbus-next (which brings net, child_process, crypto and an XML parser), the `yaml` package,
 * which only YAML that the fast reader declines needs (about 2 ms), and commander, which
 * coreos-cloudinit needs only for a command line its quick reader declines (src/cli/fast-args.ts;
 * the other programs build theirs at once). A bundle runs every
 * module's top level when it starts, so `import { spawnSync } from 'node:child_process'` anywhere
 * would cost every run, validation included, about 5 ms (and dbus-next twice that). Our own code
 * (src/) uses them only inside functions, and commander only for executable subcommands, which
 * bootsmith does not use: there each import gets a stand-in with the module's export names
 * (taken here, at build time), each a getter that loads the real module the first time it is read.
 */
const lazyModules = /^(node:)?(child_process|http|https|net|os|zlib|crypto|tty|fs\/promises|stream)$|^dbus-next$|^yaml$|^commander$/;
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

/**
 * A large JSON file (the schema) becomes `JSON.parse` of a string, which V8 builds faster than
 * esbuild's object literal. A small one (package.json, for its version) stays with esbuild, which
 * then keeps only the fields imported.
 */
const jsonParse = {
  name: 'json-parse',
  setup(b) {
    b.onLoad({ filter: /\.json$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      return text.length < 10_000 ? undefined : { contents: `module.exports = ${jsonExpression(JSON.parse(text))};\n`, loader: 'js' };
    });
  },
};

/**
 * etcd3 parses its .proto files with protobufjs each time it is loaded: with loading grpc-js and
 * the rest from node_modules, 0.5-0.8 s of locksmithd's start here, and half a minute in a TCG
 * guest. The build parses them once: the bundle holds the result as protobufjs JSON, given to
 * proto-loader's `fromJSON` (what its `loadSync` makes of a file, without the parsing), so etcd3
 * is bundled with the rest.
 */
const etcdProtos = {
  name: 'etcd3-protos',
  setup(b) {
    b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const call = '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`, {';
      if (!text.includes(call)) throw new Error(`${args.path}: etcd3 no longer loads its .proto files as scripts/build.mjs expects`);
      // protobufjs as proto-loader has it, so the JSON is in the form its fromJSON reads.
      const protobuf = createRequire(createRequire(args.path).resolve('@grpc/proto-loader'))('protobufjs');
      const parsed = new protobuf.Root().loadSync(join(dirname(args.path), '../proto/rpc.proto'), { keepCase: true });
      return { contents: text.replace(call, `(0, proto_loader_1.fromJSON)(${jsonExpression(parsed.toJSON())}, {`), loader: 'js' };
    });
  },
};

/**
 * proto-loader describes every message of a package for gRPC reflection as it loads it: each
 * message's DescriptorProto and every file's FileDescriptorProto, encoded. Clients never read
 * them (grpc-js makes a client from the paths and serializers alone), and for etcd's protos they
 * are most of the loading: 21-37 ms of every locksmithctl, locksmithd or update server with etcd,
 * against 7 ms for the types themselves. Bundled, each is made when first read, and protobufjs'
 * descriptor extension loaded then (locksmithctl status against a local etcd: 177 -> 133 ms).
 */
const protoLoaderLazyReflection = {
  name: 'proto-loader-lazy-reflection',
  setup(b) {
    // The proto-loader etcd3 loads with (grpc-js has its own copy, for a server's load reports).
    const etcdLoader = createRequire(createRequire(join(root, 'package.json')).resolve('etcd3')).resolve('@grpc/proto-loader');
    b.onLoad({ filter: /[\\/]@grpc[\\/]proto-loader[\\/]build[\\/]src[\\/]index\.js$/ }, (args) => {
      if (args.path !== etcdLoader) return undefined;
      let text = readFileSync(args.path, 'utf8');
      const edits = [
        // protobufjs' descriptor extension (descriptor.proto as types, and toDescriptor() on each
        // reflection object) is loaded when first needed: building it is a third of the rest.
        ['const descriptor = require("protobufjs/ext/descriptor");', 'let descriptorExtension;\nconst descriptor = () => (descriptorExtension ??= require("protobufjs/ext/descriptor"));'],
        ['descriptor.FileDescriptorSet.decode(', 'descriptor().FileDescriptorSet.decode('],
        ['descriptor.FileDescriptorSet.fromObject(', 'descriptor().FileDescriptorSet.fromObject('],
        // The encoded files, made on first use: `fileDescriptors` becomes a function giving them.
        [
          "    const descriptorList = root.toDescriptor('proto3').file;\n    const bufferList = descriptorList.map(value => Buffer.from(descriptor.FileDescriptorProto.encode(value).finish()));\n",
          '    let buffers;\n    const bufferList = () => (buffers ??= encodeFiles(root));\n',
        ],
        // A message's and an enum's definition: its format now, the rest when first read (after
        // the files, so with the extension loaded).
        ['function createMessageDefinition(message, fileDescriptors) {', "function createMessageDefinition(message, fileDescriptors) {\n    return lazyDefinition('Protocol Buffer 3 DescriptorProto', () => createMessageDefinitionNow(message, fileDescriptors()));\n}\nfunction createMessageDefinitionNow(message, fileDescriptors) {"],
        ['function createEnumDefinition(enumType, fileDescriptors) {', "function createEnumDefinition(enumType, fileDescriptors) {\n    return lazyDefinition('Protocol Buffer 3 EnumDescriptorProto', () => createEnumDefinitionNow(enumType, fileDescriptors()));\n}\nfunction createEnumDefinitionNow(enumType, fileDescriptors) {"],
      ];
      for (const [from, to] of edits) {
        if (!text.includes(from)) throw new Error(`${args.path}: proto-loader no longer makes its definitions as scripts/build.mjs expects`);
        text = text.replace(from, to);
      }
      text +=
        '\nfunction encodeFiles(root) {\n    const extension = descriptor();\n    return root.toDescriptor(\'proto3\').file.map(value => Buffer.from(extension.FileDescriptorProto.encode(value).finish()));\n}\n' +
        'function lazyDefinition(format, make) {\n    let made;\n    return { format, get type() { return (made ??= make()).type; }, get fileDescriptorProtos() { return (made ??= make()).fileDescriptorProtos; } };\n}\n';
      return { contents: text, loader: 'js' };
    });
  },
};

/** What every program bundle is built with. */
const bundleOptions = {
  // dbus-next looks up X11 session buses through an optional package we do not use.
  external: ['x11'],
  absWorkingDir: root,
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
};
const plugins = [lazyLoad, separateIgnitionValidators, jsonParse, etcdProtos, protoLoaderLazyReflection];

async function bundle() {
  const others = programs.filter((p) => p !== 'coreos-cloudinit');
  await build({
    ...bundleOptions,
    plugins,
    entryPoints: { ...Object.fromEntries(others.map((p) => [p, join(root, 'src/cli', `${p}.ts`)])), 'make-images': join(root, 'images/make.ts'), ...ignitionEntries },
    outdir: join(root, 'dist'),
  });
  await bundleSplit('coreos-cloudinit');
  for (const name of [...programs, 'coreos-cloudinit-more', 'make-images']) wrapForLoader(name);
}

/**
 * Writes the CommonJS wrapper into dist/NAME.js, as bin/load-bundle.js compiles it: the bundle
 * becomes `(function (exports, require, module, __filename, __dirname) {` on a line of its own,
 * the code, and `})`. Its source map gains that first line.
 */
function wrapForLoader(name) {
  const file = join(root, 'dist', `${name}.js`);
  writeFileSync(file, `(function (exports, require, module, __filename, __dirname) {\n${readFileSync(file, 'latin1')}\n})`, 'latin1');
  const map = JSON.parse(readFileSync(`${file}.map`, 'utf8'));
  map.mappings = `;${map.mappings}`;
  writeFileSync(`${file}.map`, JSON.stringify(map));
}

/**
 * coreos-cloudinit in two bundles: dist/NAME.js holds what validating needs, and
 * dist/NAME-more.js what only applying, fetching and converting need (D-Bus, the datasources, the
 * `yaml` package, commander ...). Validation starts about 3 ms sooner: a quarter of the bytes to
 * read and deserialize. The split falls at the `require()` calls that already load those modules on first
 * use: each becomes a lookup in NAME-more.js, which bin/load-bundle.js loads then. NAME-more.js
 * takes every module the two share from NAME.js (one copy, one state; `instanceof` holds across),
 * as the namespace object of `import * as` (so a shared module has no default export:
 * test/integration/bundles.test.ts checks). Keys are paths from the package root.
 */
async function bundleSplit(name) {
  const entry = join(root, 'src/cli', `${name}.ts`);
  // 1. What the program loads at start-up (`host`), and the modules it loads on first use that
  //    are not among them (`parts`).
  const required = new Set();
  const probe = await build({
    ...bundleOptions,
    plugins: [onFirstUse((path) => (required.add(path), { path, external: true })), ...plugins],
    entryPoints: [entry],
    outdir: join(root, 'dist'),
    write: false,
    metafile: true,
  });
  const host = new Set(Object.keys(probe.metafile.inputs));
  const parts = [...required].filter((path) => !host.has(keyOf(path)));
  // 2. NAME-more.js: the parts, with each module of the host taken from the host.
  const shared = new Set();
  await build({
    ...bundleOptions,
    plugins: [fromHost(host, shared), ...plugins],
    stdin: {
      // Each part is a getter: a part runs its top level when first used (an apply needs neither
      // the yaml package nor commander; together about 2 ms).
      contents: `module.exports = {\n${parts.map((p) => `  get ${JSON.stringify(keyOf(p))}() { return require(${JSON.stringify(p)}); },\n`).join('')}};\n`,
      resolveDir: root,
      sourcefile: `${name}-more.js`,
    },
    outfile: join(root, 'dist', `${name}-more.js`),
  });
  // 3. NAME.js: the program, a lookup in NAME-more.js at each part, and the shared modules by key.
  const names = [...shared].sort().map((k, i) => [k, `m${i}`]); // sorted: found in no fixed order
  await build({
    ...bundleOptions,
    plugins: [onFirstUse((path) => (parts.includes(path) ? { path: keyOf(path), namespace: 'part' } : undefined)), partLookup, ...plugins],
    stdin: {
      contents:
        `export * from ${JSON.stringify(entry)};\n` +
        names.map(([k, m]) => `import * as ${m} from ${JSON.stringify(join(root, k))};\n`).join('') +
        `export const sharedModules = { ${names.map(([k, m]) => `${JSON.stringify(k)}: ${m}`).join(', ')} };\n`,
      resolveDir: root,
      sourcefile: `${name}.js`,
    },
    outfile: join(root, 'dist', `${name}.js`),
  });
}

/** A module's key in the split: its path from the package root, with forward slashes. */
const keyOf = (path) => relative(root, path).split(sep).join('/');

/** What esbuild and the other plugins make of `args`; a plugin calling this skips itself (pluginData.resolving). */
function resolveAsUsual(b, args) {
  return b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: { resolving: true } });
}

/** Resolves what our code loads with `require()` (itself, or through a lazy stand-in) as `to` says. */
function onFirstUse(to) {
  return {
    name: 'on-first-use',
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.kind !== 'require-call' || args.pluginData?.resolving) return undefined;
        if (!(args.namespace === 'lazy' || (args.namespace === 'file' && args.importer.startsWith(join(root, 'src')) && args.importer.endsWith('.ts')))) return undefined;
        const found = await resolveAsUsual(b, args);
        return found.external || !found.path ? undefined : to(found.path);
      });
    },
  };
}

/** In NAME.js, a part is looked up in NAME-more.js (bin/load-bundle.js answers `bootsmith:more`). */
const partLookup = {
  name: 'part-lookup',
  setup(b) {
    b.onResolve({ filter: /^bootsmith:/ }, (args) => ({ path: args.path, external: true }));
    b.onLoad({ filter: /.*/, namespace: 'part' }, (args) => ({
      contents: `module.exports = require("bootsmith:more")[${JSON.stringify(args.path)}];\n`,
      loader: 'js',
    }));
  },
};

/**
 * In NAME-more.js, a module of ours that the host bundle holds is the host's: an external
 * `bootsmith:host/KEY`, which bin/load-bundle.js answers. External, so that a named import of it is
 * a plain require (a module bundled as CommonJS would be copied, export by export, into every
 * module that imports it: about 1 ms of an apply's start).
 */
function fromHost(host, shared) {
  return {
    name: 'from-host',
    setup(b) {
      b.onResolve({ filter: /^bootsmith:/ }, (args) => ({ path: args.path, external: true }));
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData?.resolving || args.kind === 'entry-point') return undefined;
        const found = await resolveAsUsual(b, args);
        if (found.external || !found.path || !found.path.endsWith('.ts')) return undefined;
        const k = keyOf(found.path);
        if (!host.has(k)) return undefined;
        shared.add(k);
        return { path: `bootsmith:host/${k}`, external: true };
      });
    },
  };
}

function writeCodeCaches() {
  const examples = readdirSync(join(root, 'examples'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => join(root, 'examples', f));
  // Old caches go first: V8 would accept one for a bundle of the same length, and the new cache
  // would keep every function of the old one.
  for (const f of readdirSync(join(root, 'dist'))) if (f.endsWith('.js.cache')) rmSync(join(root, 'dist', f));
  // A real run over the examples, so the cache holds the functions validation compiles (exit 1
  // means findings in the examples, which still warms it).
  writeCodeCache('coreos-cloudinit', 'coreos-cloudinit', ['--validate', '--from-file', ...examples], [0, 1]);
  // And an apply into an empty root (files, units, hostname), for the cache of coreos-cloudinit-more.js.
  const target = mkdtempSync(join(tmpdir(), 'bootsmith-build-'));
  try {
    writeCodeCache('coreos-cloudinit-more', 'coreos-cloudinit', ['--from-file', join(root, 'examples/static-network.yaml'), '--root', target], [0, 1]);
  } finally {
    rmSync(target, { recursive: true, force: true });
  }
  // The other programs, after `--help`: their caches hold every module's top level (grpc-js,
  // protobufjs, dbus-next ...) and the option parsing, which is most of a start (locksmithctl
  // --help 66 -> 35 ms, update_engine --help 92 -> 54 ms). What a real run goes on to call
  // compiles when first called, as without a cache.
  for (const name of programs.filter((p) => p !== 'coreos-cloudinit')) writeCodeCache(name, name, ['--help']);
}

/**
 * Runs `program` with `args` as bin/ does (bin/load-bundle.js), the bundle `bundle` writing its
 * code cache at exit; any exit code but `worked` is a broken build.
 */
function writeCodeCache(bundle, program, args, worked = [0]) {
  const loader = JSON.stringify(join(root, 'bin/load-bundle.js'));
  const r = spawnSync(process.execPath, ['-e', `require(${loader}).run(${JSON.stringify(program)}, ${JSON.stringify(args)})`], {
    env: { ...process.env, BOOTSMITH_WRITE_CODE_CACHE: bundle },
    encoding: 'utf8',
  });
  if (!worked.includes(r.status)) throw new Error(`writing the code cache of ${bundle} failed (exit ${r.status}): ${r.stderr}`);
}

compileSchema();
compileIgnitionSchemas();
await bundle();
writeCodeCaches();
