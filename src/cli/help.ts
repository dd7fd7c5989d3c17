import { isModelPullError } from '../errors.js';
import { type SourceList, sourceOptions } from '../sources/descriptor.js';
import { helpRow } from '../sources/reference.js';
import { COMMAND_FLAGS } from './args.js';

const LINES_PLACEHOLDER = '<lines>';

/** `Lines: a | b` wrapped under 100 columns, one alternative per source, in list order. */
function linesHelp(sources: SourceList): string {
  const rows = [`Lines: ${sources[0]?.usage ?? ''}`];
  for (const source of sources.slice(1)) {
    const last = rows.length - 1;
    if (`${rows[last]} | ${source.usage}`.length <= 100) rows[last] += ` | ${source.usage}`;
    else rows.push(`       | ${source.usage}`);
  }
  return rows.join('\n');
}

const COMMON_OPTIONS = `Options (environment defaults as in the action):
  --ollama-models DIR     Ollama store root ($OLLAMA_MODELS or ~/.ollama/models)
  --hf-cache DIR          Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)
  --files-dir DIR         where https:// files land (~/.cache/model-pull/files)
  --hf-endpoint URL       Hub or mirror ($HF_ENDPOINT or https://huggingface.co)
  --hf-token TOKEN        Hub token ($HF_TOKEN); sent only to the hub's own origin
  --concurrency N         files at once (4); small files share the idle connections
  --connections N         parallel ranges per large file (16)
  --verify full|size      how files already on disk are trusted (full)
  --insecure              allow plain http to non-loopback hosts
  --ca-cert FILE          extra PEM certificates to trust
  --stall-timeout SEC     seconds without a byte before a retry (30)
  --retries N             retries without progress before giving up (6)
  --registry-host HOST    the private OCI registry (host[:port]) the credentials are for
  --registry-username U   basic credentials for --registry-host,
  --registry-password P   sent only to its token service
  --allowed-realm-hosts H hosts besides the registry that may issue its tokens
  --registry-mirror H=URL ollama:/oci: lines for registry H from URL first (comma-separated list)
  --hf-oci-mirror PREFIX  hf: lines from <PREFIX>/<owner>/<repo>:<commit> when it is there
  -f, --file FILE         read model lines from FILE too (one per line, # comments)
`;

const PULL_OPTIONS = `${COMMON_OPTIONS}  --lockfile FILE         obey this lock file; with no LINE, pull every line it pins
  --lock-mode MODE        frozen: FILE must exist and pin every line (default);
                          update: write FILE when absent, add the lines it lacks
  --json                  print the models JSON on stdout (progress goes to stderr)
  -h, --help              this help
`;

const LOCK_OPTIONS = `${onlyAcceptedBy('lock', COMMON_OPTIONS)}  --lockfile FILE         the lock file to write or update (./model-pull.lock);
                          with no LINE, every line it holds is looked up again
  -h, --help              this help
`;

export const HELP = {
  main: `model-pull: fast, verified, resumable model downloads into the layouts Ollama and Hugging Face read

Usage:
  model-pull pull [options] LINE...     pull into the same layouts as the action
  model-pull verify [options]           re-hash what is on disk against manifests / snapshots
  model-pull lock [options] LINE...     write or update the lock file
  model-pull mirror --to PREFIX [options] LINE...
                                        pull, then push each model to an OCI registry
  model-pull demo [--keep]              pull a generated model from local servers (no internet)

${LINES_PLACEHOLDER}
Run model-pull COMMAND --help for its options. Exit codes: 0 ok, 1 failed, 2 bad usage.
`,
  pull: `Usage: model-pull pull [options] LINE...
       model-pull pull --lockfile FILE [options]

Pulls each model line into its layout: ollama: lines into the Ollama store, hf: lines into the
Hugging Face cache, URLs into --files-dir, the other sources' lines into the folders their
options below name. Quote a line with options, or write its key=value words right after the
reference. Ctrl-C stops cleanly; the next run resumes.

Examples:
  model-pull pull ollama:qwen2.5:0.5b
  model-pull pull --json 'hf:Qwen/Qwen2.5-0.5B-Instruct include=*.json,*.safetensors'
  model-pull pull https://host/model.gguf sha256=<64 hex> --files-dir ./models

${PULL_OPTIONS}`,
  verify: `Usage: model-pull verify [--ollama-models DIR] [--hf-cache DIR] [--files-dir DIR] [options] [--json]

Re-hashes every blob of every manifest in the Ollama store, every file of every snapshot in
the Hugging Face cache, every file a URL line put in files-dir and what the other sources put
in the folders their options below name, and lists what is damaged
(missing, wrong size, wrong digest) by model line, with the pull command that repairs it.
Exit 1 when anything is damaged or a folder given here does not exist.

Options (environment defaults as for pull):
  --ollama-models DIR     Ollama store root ($OLLAMA_MODELS or ~/.ollama/models)
  --hf-cache DIR          Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)
  --files-dir DIR         where https:// files land (~/.cache/model-pull/files)
  --json                  print {"damaged": [{model, line, path, problem}], "missing": [folders]} on stdout
  -h, --help              this help
`,
  lock: `Usage: model-pull lock [--lockfile FILE] [options] LINE... | -f FILE
       model-pull lock --lockfile FILE [options]

Resolves each line (Ollama manifest digest, HF commit and files, URL sha256) and writes it into
the lock file (default ./model-pull.lock), keeping the entries of other lines. The action's
lockfile input (and pull --lockfile) then pulls exactly these, with no tag or branch lookup.
When a line cannot be resolved, the file is left unchanged.

${LOCK_OPTIONS}`,
  mirror: `Usage: model-pull mirror --to PREFIX [options] LINE...

Pulls each line as pull does, then pushes each model to the OCI registry PREFIX
(host[:port][/path], http:// or https:// to choose): Ollama models as Ollama manifests, unchanged,
at PREFIX/<model>:<tag> (a bare host keeps the namespace), which ollama: lines and ollama pull read;
Hugging Face repos as ModelPack artifacts at PREFIX/<owner>/<repo>:<commit> and :<revision> (a
line with include=/exclude= adds -<hash of its filters> to both), which hf-oci-mirror reads; files
at PREFIX/files/<name>:<sha256>. See docs/scale-out.md. Blobs the registry has are not sent
again, and an upload stopped between chunks resumes in the next run. Credentials:
--registry-host with --registry-username/--registry-password.

Examples:
  model-pull mirror --to registry.corp/models ollama:qwen2.5:0.5b
  model-pull mirror --to ghcr.io/org/hf --registry-host ghcr.io --registry-username me \\
    --registry-password "$TOKEN" hf:Qwen/Qwen2.5-0.5B-Instruct

  --to PREFIX             the registry and repository prefix to push to (required)
${PULL_OPTIONS}`,
  demo: `Usage: model-pull demo [--keep]

Starts a local OCI registry and a local Hugging Face hub on 127.0.0.1 serving a small generated
model, pulls both through the real pipeline into a temporary folder twice (the second pull
downloads nothing), and prints the result. Needs no internet.

  --keep                  keep the temporary folder (printed) instead of removing it
  -h, --help              this help
`,
} as const;

/** The option rows of `text` that `command` accepts (lock does not take the download flags). */
function onlyAcceptedBy(command: string, text: string): string {
  const accepted = COMMAND_FLAGS[command] ?? {};
  return text
    .split('\n')
    .filter((row) => {
      const flag = /^ {2}(?:-\w, )?--([a-z0-9-]+)/.exec(row)?.[1];
      return flag === undefined || Object.hasOwn(accepted, flag);
    })
    .join('\n');
}

/** The help of a command, with the lines the sources take and the options they add. */
export function helpFor(command: keyof typeof HELP, sources: SourceList): string {
  if (command === 'main') return HELP.main.replace(LINES_PLACEHOLDER, linesHelp(sources));
  const options = sourceOptions(sources);
  if (command === 'demo' || options.length === 0) return HELP[command];
  return `${HELP[command]}\nOptions of the sources:\n${options.map(helpRow).join('\n')}\n`;
}

/** Bad lines and bad flags are usage errors (exit 2); the rest, an uncovered lock line too, are failures. */
export function usageError(error: unknown): boolean {
  return isModelPullError(error, 'ERR_BAD_REFERENCE') || isModelPullError(error, 'ERR_BAD_INPUT');
}
