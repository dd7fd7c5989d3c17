// The restore this project replaced, for comparison: @actions/cache's restoreCache (a plain GET
// of the archive, then `tar -P` extracting it into place), followed by the separate sha256 pass
// the engine then made over every restored file before trusting it (engine.ts checkExisting).
//
// argv: one JSON object {serviceUrl, key, target, hex, workspace, temp}. Prints one JSON line:
// {engineMs}.
import { rm } from 'node:fs/promises';
import * as cache from '@actions/cache';
import { hashFile } from '../src/digest.js';

interface BaselineArgs {
  readonly serviceUrl: string;
  readonly key: string;
  readonly target: string;
  readonly hex: string;
  readonly workspace: string;
  readonly temp: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as BaselineArgs;
await rm(args.target, { force: true });
Object.assign(process.env, {
  ACTIONS_CACHE_SERVICE_V2: 'true',
  ACTIONS_RESULTS_URL: `${args.serviceUrl}/`,
  ACTIONS_RUNTIME_TOKEN: 'bench',
  GITHUB_WORKSPACE: args.workspace,
  RUNNER_TEMP: args.temp,
});
const started = performance.now();
// The library logs through @actions/core on stdout; our report is the last line.
const hit = await cache.restoreCache([args.target], args.key);
if (hit !== args.key) throw new Error(`restoreCache answered ${String(hit)}`);
const hex = await hashFile(args.target, 'sha256');
if (hex !== args.hex) throw new Error(`restored file hashes to ${hex}, expected ${args.hex}`);
process.stdout.write(`\n${JSON.stringify({ engineMs: performance.now() - started })}\n`);
