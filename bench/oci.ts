import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import type { BenchBlob } from './data.js';
import { runTimed } from './proc.js';
import { inScratch, TIMEOUT_MS, type Tool } from './tools.js';

/**
 * The `oci` case (issue 15): a CNCF ModelPack artifact whose weight layer is the bench blob (raw,
 * `model.gguf`) plus small layers (a tokenizer tar+zstd, a README, the config), served by the
 * bench server's registry, which sends the large layer to its capped /blob like a CDN. Ours pulls
 * it with the whole `oci:` pipeline; skopeo copies it into an OCI layout (one stream per layer).
 */
export const OCI_REPOSITORY = 'bench/model';
export const OCI_TAG = 'v1';

const FILEPATH = 'org.cncf.model.filepath';
const sha256 = async (data: Buffer) =>
  (await import('node:crypto')).createHash('sha256').update(data).digest('hex');

/** Writes the artifact folder the server reads (--oci) and returns it. */
export async function ensureArtifact(dir: string, blob: BenchBlob, query: string): Promise<string> {
  const folder = join(dir, `oci-${blob.hex.slice(0, 12)}`);
  await mkdir(join(folder, 'blobs'), { recursive: true });
  const tokenizer = Buffer.from(
    JSON.stringify({
      model: { type: 'BPE', vocab: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`t${i}`, i])) },
    }),
  );
  const tar = ustar('tokenizer.json', tokenizer);
  const small = [
    {
      mediaType: 'application/vnd.cncf.model.weight.config.v1.tar+zstd',
      bytes: zstdCompressSync(tar),
      annotations: { [FILEPATH]: 'tokenizer.json' },
    },
    {
      mediaType: 'application/vnd.cncf.model.doc.v1.raw',
      bytes: Buffer.from('# bench model\n'),
      annotations: { [FILEPATH]: 'README.md' },
    },
  ];
  const config = Buffer.from(
    JSON.stringify({
      descriptor: { name: 'bench' },
      config: { format: 'gguf' },
      modelfs: { type: 'layers', diffIds: [] },
    }),
  );
  const descriptor = async (mediaType: string, bytes: Buffer, annotations?: Record<string, string>) => ({
    mediaType,
    digest: `sha256:${await sha256(bytes)}`,
    size: bytes.length,
    ...(annotations ? { annotations } : {}),
  });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.cncf.model.manifest.v1+json',
      config: await descriptor('application/vnd.cncf.model.config.v1+json', config),
      layers: [
        {
          mediaType: 'application/vnd.cncf.model.weight.v1.raw',
          digest: `sha256:${blob.hex}`,
          size: blob.size,
          annotations: { [FILEPATH]: 'model.gguf' },
        },
        ...(await Promise.all(small.map((l) => descriptor(l.mediaType, l.bytes, l.annotations)))),
      ],
    }),
  );
  for (const bytes of [config, ...small.map((l) => l.bytes)])
    await writeFile(join(folder, 'blobs', await sha256(bytes)), bytes);
  await writeFile(join(folder, 'manifest.json'), manifest);
  await writeFile(
    join(folder, 'artifact.json'),
    JSON.stringify({
      repository: OCI_REPOSITORY,
      tag: OCI_TAG,
      manifestType: 'application/vnd.oci.image.manifest.v1+json',
      large: { hex: blob.hex, size: blob.size, query },
    }),
  );
  return folder;
}

/** A one-member tar (ustar header, the data, two zero blocks). */
function ustar(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100, 'latin1');
  header.write('0000000\0', 108, 'latin1');
  header.write('0000000\0', 116, 'latin1');
  header.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.write('00000000000\0', 136, 'latin1');
  header.write('        ', 148, 'latin1');
  header.write('0', 156, 'latin1');
  header.write('ustar\0', 257, 'latin1');
  header.write('00', 263, 'latin1');
  const sum = header.reduce((a, b) => a + b, 0);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024)]);
}

async function expectSize(path: string, size: number, who: string): Promise<void> {
  const actual = (await stat(path)).size;
  if (actual !== size) throw new Error(`${who} left ${actual} bytes at ${path}, expected ${size}`);
}

/** Ours: the `oci:` pipeline in a child running `script` (bench/ours-oci.ts transpiled). */
export function oursOci(connections: number, script: string): Tool {
  return (reference, blob) =>
    inScratch(async (dir) => {
      const args = { line: `oci:${reference}`, dir, connections };
      const run = await runTimed(process.execPath, [script, JSON.stringify(args)], TIMEOUT_MS);
      const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as {
        engineMs: number;
        maxRssKiB: number;
        downloadedBytes: number;
        path?: string;
        error?: string;
      };
      if (report.error || !report.path) throw new Error(`ours failed: ${report.error ?? 'no path'}`);
      if (report.downloadedBytes < blob.size) throw new Error(`ours fetched ${report.downloadedBytes} bytes`);
      // The weights are the blob itself, verified by the engine and linked into the folder.
      await expectSize(report.path, blob.size, 'ours');
      await readFile(join(dir, 'oci', 'index.json'));
      return { wallMs: run.wallMs, engineMs: report.engineMs, peakRssKiB: report.maxRssKiB };
    });
}

/** `skopeo copy docker://… oci:DIR:REF`: a standard OCI client, one stream per layer. */
export const skopeoCopy: Tool = (reference, blob) =>
  inScratch(async (dir) => {
    const run = await runTimed(
      'skopeo',
      [
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        `docker://${reference}`,
        `oci:${join(dir, 'layout')}:${reference}`,
      ],
      TIMEOUT_MS,
    );
    // skopeo checks every blob's digest as it copies; a mismatch is a non-zero exit.
    await expectSize(join(dir, 'layout', 'blobs', 'sha256', blob.hex), blob.size, 'skopeo');
    return { wallMs: run.wallMs, peakRssKiB: run.polledHwmKiB };
  });
