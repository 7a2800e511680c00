#!/usr/bin/env node
// The airlift command: runs the TypeScript CLI through tsx so a fresh clone needs no build step.
require('tsx/cjs');
require('../cli/main.ts');
