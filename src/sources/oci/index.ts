import { registryOptions } from '../../registry/client.js';
import type { SourceDescriptor } from '../descriptor.js';
import { OCI_PREFIX, type OciRef, ociName, parseOciRef } from './ref.js';
import { createOciSource } from './source.js';
import { verifyOciDir } from './verify.js';

export const OCI_DIR = 'oci-dir';

/**
 * `oci:[host/]repository[:tag][@sha256:…]`: a CNCF ModelPack or Docker Model Runner artifact
 * from any OCI registry (Docker Hub when no host is written), into an OCI image layout plus one
 * folder per model at `oci-dir`.
 */
export const ociSource: SourceDescriptor<OciRef> = {
  kind: 'oci',
  prefixes: [OCI_PREFIX],
  syntax: 'oci:[HOST/]REPO[:TAG]',
  usage: 'oci:[HOST/]REPO[:TAG][@sha256:HEX]',
  parse: parseOciRef,
  options: [
    {
      name: OCI_DIR,
      help: 'where oci: models land: an OCI image layout plus one folder per model',
      type: 'path',
      default: '~/.cache/model-pull/oci',
    },
  ],
  stores: (settings) => [
    {
      what: 'the OCI layout',
      // The settings module fills every declared option, defaults included.
      path: settings.sourceOptions[OCI_DIR]!,
      input: OCI_DIR,
      verify: { label: 'OCI layout', check: verifyOciDir },
    },
  ],
  phases: { resolving: 'resolving manifest', writing: 'writing model folder' },
  // Docker's normal form: docker.io/library/x:latest is the line `oci:x` (and `oci:docker.io/x`).
  canonical: (ref) => `${OCI_PREFIX}${ref.scheme === 'http' ? 'http://' : ''}${ociName(ref)}`,
  create: (settings) =>
    createOciSource({
      // The settings module fills every declared option, defaults included.
      root: settings.sourceOptions[OCI_DIR]!,
      verify: settings.verify,
      ...registryOptions(settings),
    }),
};
