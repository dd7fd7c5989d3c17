import { join } from 'node:path';
import { Checker, type VerifyReport } from '../../verify/files.js';
import { readUrlRecords } from './record.js';

/**
 * Re-hashes the files URL lines put in files-dir against the sha256 of their line, from the
 * records model-pull keeps beside them. A file without a record (placed by hand, or by a
 * version that kept none) has nothing to be compared with and is left alone.
 */
export async function verifyFilesDir(root: string): Promise<VerifyReport> {
  const checker = new Checker();
  for (const record of await readUrlRecords(root)) {
    const path = join(root, record.file);
    const problem = await checker.problem(path, { algorithm: 'sha256', hex: record.sha256 }, undefined);
    if (problem) checker.damaged.push({ model: record.line, path, problem, line: record.line });
  }
  return checker.report();
}
