'use strict';
// Starts a bundled program from dist/ with V8's code cache, so start-up skips parsing and compiling
// the bundle (about a fifth of a cold start). The cache is written by `npm run build` (see
// scripts/build.mjs); when it is missing or V8 rejects it, the bundle simply compiles as usual.
//
// Stack traces name the TypeScript sources: each bundle has a source map beside it (NAME.js.map).
// Node's own --enable-source-maps does not see code compiled with node:vm, and it would read and
// parse the map at every start; here the map is read only when a stack with a bundle frame is
// printed, which a working program never does.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

function loadBundle(name, host) {
  const file = path.join(__dirname, '..', 'dist', `${name}.js`);
  const cacheFile = `${file}.cache`;
  let source;
  try {
    // The bundles are ASCII (scripts/build.mjs: charset ascii): read as latin1, the text becomes a
    // one-byte string without UTF-8 decoding, about 2 ms of a start.
    source = readWhole(file).latin1Slice();
  } catch (err) {
    throw new Error(`${file} is missing: run "npm run build" first`, { cause: err });
  }
  let cachedData;
  try {
    cachedData = readWhole(cacheFile);
  } catch {
    cachedData = undefined;
  }
  mapStackTraces(file);
  reportCrashes(name);
  // The bundle is a function expression, `(function (exports, require, module, __filename,
  // __dirname) {...})`: scripts/build.mjs writes the CommonJS wrapper into the file, so the text is
  // compiled as read, without a copy joined to the wrapper (about 1.5 ms of a start).
  const script = new vm.Script(source, { filename: file, cachedData });
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, bundleRequire(name, file, mod, host), mod, file, path.dirname(file));
  // BOOTSMITH_WRITE_CODE_CACHE: the names of the bundles whose cache to write, comma-separated.
  if (process.env.BOOTSMITH_WRITE_CODE_CACHE?.split(',').includes(name)) {
    // Taken at exit, after a real run, so the functions that run compiled are in the cache too.
    process.on('exit', () => fs.writeFileSync(cacheFile, script.createCachedData()));
  }
  return mod.exports;
}

/**
 * A whole file: one open, and reads into a buffer that grows. fs.readFileSync first takes a Stats
 * object of the file and checks its arguments, about 0.4 ms for the two files of a start.
 */
function readWhole(file) {
  const fd = fs.openSync(file, 'r');
  try {
    let buffer = Buffer.allocUnsafeSlow(1 << 20); // only the pages written to are ever touched
    let size = 0;
    for (;;) {
      const read = fs.readSync(fd, buffer, size, buffer.length - size, null);
      if (read === 0) return buffer.subarray(0, size);
      size += read;
      if (size === buffer.length) {
        const bigger = Buffer.allocUnsafeSlow(2 * buffer.length);
        buffer.copy(bigger);
        buffer = bigger;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * `require` for bundle `name`, which also answers the names of a program split in two (see
 * scripts/build.mjs): `bootsmith:more`, the second bundle NAME-more.js, loaded on first use with
 * this one as its host; and, for NAME-more.js, `bootsmith:host/KEY`, the host's module KEY (its
 * path from the package root). Built-in
 * modules and packages resolve from here as from dist/ (both look in the package's node_modules);
 * a path relative to the bundle (an Ignition validator beside it) goes through a require made for
 * it, when first needed (node:module and createRequire cost about 0.3 ms of a start).
 */
function bundleRequire(name, file, mod, host) {
  let relative;
  let more;
  return (id) => {
    if (id === 'bootsmith:more') return (more ??= loadBundle(`${name}-more`, mod.exports));
    if (id.startsWith('bootsmith:host/')) return host.sharedModules[id.slice('bootsmith:host/'.length)];
    if (!id.startsWith('.')) return require(id);
    relative ??= require('node:module').createRequire(file);
    return relative(id);
  };
}

/**
 * The bundles whose frames are mapped, by file name: a frame of code that came from the code cache
 * names the bundle where the cache was made (the build tree), not where it runs.
 * NAME.js -> { file: where it runs, map: its source map, undefined until needed, null when none }.
 */
const bundles = new Map();

/** Makes stack traces show the source positions of `file`'s frames (Error.prepareStackTrace, as Node's own mapping does). */
function mapStackTraces(file) {
  if (bundles.size === 0) Error.prepareStackTrace = formatStack;
  if (!bundles.has(path.basename(file))) bundles.set(path.basename(file), { file, map: undefined });
}

/** V8's stack format, with each frame in a bundle at its source position. */
function formatStack(error, frames) {
  let head;
  try {
    head = Error.prototype.toString.call(error);
  } catch {
    head = '<error>';
  }
  return head + frames.map((frame) => `\n    at ${formatFrame(frame)}`).join('');
}

function formatFrame(frame) {
  const text = String(frame);
  try {
    const frameFile = frame.getFileName();
    const line = frame.getLineNumber();
    const column = frame.getColumnNumber();
    const bundle = frameFile && path.basename(path.dirname(frameFile)) === 'dist' ? bundles.get(path.basename(frameFile)) : undefined;
    if (!bundle || !line || !column) return text;
    const at = `${frameFile}:${line}:${column}`;
    const entry = sourceMapOf(bundle)?.findEntry(line - 1, column - 1);
    if (!entry?.originalSource) return text.replace(at, `${bundle.file}:${line}:${column}`);
    const source = entry.originalSource.startsWith('file:')
      ? require('node:url').fileURLToPath(entry.originalSource)
      : path.resolve(path.dirname(bundle.file), entry.originalSource);
    return text.replace(at, `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`);
  } catch {
    return text; // a trace as V8 gives it is better than none
  }
}

function sourceMapOf(bundle) {
  if (bundle.map === undefined) {
    const mapFile = `${bundle.file}.map`;
    bundle.map = fs.existsSync(mapFile) ? new (require('node:module').SourceMap)(JSON.parse(fs.readFileSync(mapFile, 'utf8'))) : null;
  }
  return bundle.map ?? undefined;
}

/**
 * An exception nothing caught (or a rejection nothing handled) is a defect: NAME: and the trace, exit
 * 70, as run() reports a failed main. Node's own report would first print the bundle's source line,
 * kilobytes of minified code. A program that installs its own handler (locksmithd) reports it itself.
 */
function reportCrashes(name) {
  if (process.listenerCount('uncaughtException') > 0) return;
  process.on('uncaughtException', (err) => {
    if (process.listenerCount('uncaughtException') > 1) return;
    process.stderr.write(`${name}: ${err && err.stack ? err.stack : err}\n`);
    process.exit(70);
  });
}

/** Runs `main(argv)` of dist/NAME.js (argv: the command line's arguments), sets the exit code it returns, and exits. */
function run(name, argv = process.argv.slice(2)) {
  const { main } = loadBundle(name);
  Promise.resolve()
    .then(() => main(argv))
    .then(
      (code) => {
        process.exitCode = code;
        // Once main's promise work has settled (a tick runs after the microtasks drain) and nothing
        // keeps the event loop alive, the loop would only run V8's housekeeping and tear the heap
        // down: about 2 ms of a 45 ms validation. Exit now instead ('exit' listeners still run).
        process.nextTick(() => {
          if (process.getActiveResourcesInfo().length === 0) process.exit();
        });
      },
      (err) => {
        process.stderr.write(`${name}: ${err && err.stack ? err.stack : err}\n`);
        process.exitCode = 70;
      },
    );
}

module.exports = { run, loadBundle };
