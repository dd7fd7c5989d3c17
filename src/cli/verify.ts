import { stat } from 'node:fs/promises';
import { formatBytes } from '../report/format.js';
import { printable } from '../report/text.js';
import type { Settings } from '../settings/settings.js';
import type { SourceList } from '../sources/descriptor.js';
import type { VerifyReport } from '../verify/files.js';
import type { CliIo } from './main.js';

/** The folders verify checks (those the sources say they write), in source order. */
function foldersOf(sources: SourceList, settings: Settings) {
  return sources.flatMap((source) =>
    (source.stores?.(settings) ?? []).flatMap((folder) =>
      folder.verify
        ? [{ what: folder.verify.label, flag: folder.input, root: folder.path, check: folder.verify.check }]
        : [],
    ),
  );
}

interface Checked {
  readonly what: string;
  readonly flag: string;
  readonly root: string;
  /** Absent when the folder does not exist (and was not named on the command line). */
  readonly report?: VerifyReport;
}

/**
 * `model-pull verify`: re-hashes each folder against what model-pull recorded there, lists the
 * damage by model line and prints the pull that repairs each damaged model. Exit 1 when
 * anything is damaged, a folder named by a flag is absent, or there was nothing to check.
 */
export async function verifyCommand(
  settings: Settings,
  values: Readonly<Record<string, string | boolean | undefined>>,
  io: CliIo,
  sources: SourceList,
): Promise<number> {
  const folders: Checked[] = [];
  const missing: string[] = [];
  for (const folder of foldersOf(sources, settings)) {
    const root = folder.root;
    const present = await isFolder(root);
    // A folder named on the command line must be there; a default one may not be (a machine
    // that only uses Hugging Face has no Ollama store).
    if (!present && values[folder.flag] !== undefined) missing.push(`--${folder.flag} ${root}`);
    else folders.push({ ...folder, root, ...(present ? { report: await folder.check(root) } : {}) });
  }
  const checked = folders.filter((f) => f.report !== undefined);
  const damaged = checked.flatMap((f) => f.report!.damaged);
  if (values.json) io.stdout.write(`${JSON.stringify({ damaged, missing }, null, 2)}\n`);
  else printReports(folders, (line) => io.stdout.write(`${printable(line)}\n`));
  for (const folder of missing) io.stderr.write(`model-pull verify: ${folder}: no such folder\n`);
  if (checked.length === 0 && missing.length === 0) {
    io.stderr.write('model-pull verify: none of the folders exists, nothing was checked\n');
    return 1;
  }
  return damaged.length || missing.length ? 1 : 0;
}

function printReports(folders: readonly Checked[], out: (line: string) => void): void {
  const repairs = new Set<string>();
  for (const { what, flag, root, report } of folders) {
    if (!report) {
      out(`${what} ${root}: not there, nothing to check`);
      continue;
    }
    const { checkedFiles, checkedBytes, damaged } = report;
    out(
      `${what} ${root}: ${checkedFiles} files, ${formatBytes(checkedBytes)} checked, ${damaged.length} damaged`,
    );
    for (const d of damaged) {
      out(`  ${d.line}: ${d.path}: ${d.problem}`);
      repairs.add(`model-pull pull --${flag} ${shellWord(root)} ${shellWord(d.line)}`);
    }
  }
  if (repairs.size === 0) return;
  out(`to repair ${repairs.size === 1 ? 'it' : 'them'}, run:`);
  for (const command of repairs) out(`  ${command}`);
}

async function isFolder(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isDirectory(),
    () => false,
  );
}

/** A word as a POSIX shell reads it back: quoted unless it is plainly safe. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
