#!/usr/bin/env node
// `npm run images`: builds the development disk, USR images, signed payloads and channel tree.
require('../bin/load-bundle.js').run('make-images');
