#!/usr/bin/env node
import { nodeTooOld } from './cli/node-version.js';
import { keepYoungGenerationSmall } from './memory.js';

// The CLI's entry point (package.json `bin`, so also what npx and the bin link run). Only the
// version check (and the heap setting, from memory.ts) are imported statically: the rest is loaded
// once Node is known to be new enough.
const tooOld = nodeTooOld(process.versions.node);
if (tooOld) {
  process.stderr.write(tooOld);
  process.exitCode = 2;
} else {
  // Before the CLI's modules load: their start-up is where the young generation first grows.
  keepYoungGenerationSmall();
  await import('./cli/entry.js');
}
