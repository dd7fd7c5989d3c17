import { join } from 'node:path';
import { systemClock } from '../../src/clock.js';
import { fetchBlobs } from '../../src/download/engine.js';
import type { RegistryCall } from '../../src/registry/client.js';
import { type BlobRoute, type RegistrySession, registryBlob } from '../../src/registry/session.js';
import { MemoryLogger } from '../../src/report/logger.js';
import { startBlobServer } from '../helpers/blob-server.js';
import { engineOptions, randomBlob, testClient } from '../helpers/engine.js';
import { tempDir } from '../helpers/http.js';

// A blob that fails at a mirror goes to its origin once (BlobSpec.fallback), never back and
// forth: here the route says "fetch it elsewhere" every time it is asked, as one whose mirror is
// its own origin (registry-mirror HOST=HOST: both are one session) would, and the only server
// sends other bytes than the digest, so every try fails.

test('a registry blob falls back at most once, then fails with the mismatch', async () => {
  const served = randomBlob(1000);
  const expected = randomBlob(1000);
  const server = await startBlobServer(served.data);
  const dir = await tempDir('model-pull-blob-fallback-');
  const http = testClient();
  try {
    const session = {
      blobLocation: async () => ({
        location: { url: `${server.url}/v2/team/m/blobs/sha256:${expected.hex}` },
        generation: 0,
      }),
    } as unknown as RegistrySession;
    let leaves = 0;
    const route: BlobRoute = {
      session: async () => session,
      leave: () => {
        leaves++;
        if (leaves > 3) throw new Error('the blob went back to the mirror again and again');
        return true;
      },
    };
    const call: RegistryCall = {
      http,
      retry: engineOptions(http, 1).retry,
      log: new MemoryLogger(),
      clock: systemClock,
    };
    const blob = registryBlob(
      route,
      call,
      { hex: expected.hex, size: 1000 },
      {
        label: 'team/m blob',
        target: join(dir.path, 'blob'),
        ingestDir: join(dir.path, 'ingest'),
      },
    );
    await expect(fetchBlobs([blob], engineOptions(http, 1))).rejects.toThrow(
      `team/m blob: sha256 mismatch from ${new URL(server.url).host}: expected ${expected.hex}, got ${served.hex}`,
    );
    expect(leaves).toBe(1);
    // One try at the "mirror", then the origin's own two.
    expect(server.requests.length).toBe(3);
  } finally {
    await http.close();
    await server.close();
    await dir.remove();
  }
});
