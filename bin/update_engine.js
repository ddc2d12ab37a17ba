#!/usr/bin/env node
require('./load-bundle.js').run('update_engine');
