#!/usr/bin/env node
import { nodeTooOld } from './cli/node-version.js';

// The CLI's entry point (package.json `bin`, so also what npx and the bin link run). Only the
// version check is imported statically: the rest is loaded once Node is known to be new enough.
const tooOld = nodeTooOld(process.versions.node);
if (tooOld) {
  process.stderr.write(tooOld);
  process.exitCode = 2;
} else {
  await import('./cli/entry.js');
}
