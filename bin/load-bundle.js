'use strict';
// Starts a bundled program from dist/ with V8's code cache, so start-up skips parsing and compiling
// the bundle (about a fifth of a cold start). The cache is written by `npm run build` (see
// scripts/build.mjs); when it is missing or V8 rejects it, the bundle simply compiles as usual.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

function loadBundle(name) {
  const file = path.join(__dirname, '..', 'dist', `${name}.js`);
  const cacheFile = `${file}.cache`;
  let source;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${file} is missing: run "npm run build" first`, { cause: err });
  }
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  const mod = { exports: {} };
  const req = Module.createRequire(file);
  script.runInThisContext().call(mod.exports, mod.exports, req, mod, file, path.dirname(file));
  if (process.env.BOOTSMITH_WRITE_CODE_CACHE === '1') {
    // Taken at exit, after a real run, so the functions that run compiled are in the cache too.
    process.on('exit', () => fs.writeFileSync(cacheFile, script.createCachedData()));
  }
  return mod.exports;
}

/** Runs `main(argv)` of dist/NAME.js and sets the exit code it returns. */
function run(name) {
  const { main } = loadBundle(name);
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`${name}: ${err && err.stack ? err.stack : err}\n`);
      process.exitCode = 70;
    },
  );
}

module.exports = { run };
