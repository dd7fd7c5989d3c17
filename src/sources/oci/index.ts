import { registryOptions } from '../../registry/client.js';
import type { SourceDescriptor } from '../descriptor.js';
import { OCI_PREFIX, type OciRef, parseOciRef } from './ref.js';
import { createOciSource } from './source.js';

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
  parse: parseOciRef,
  options: [
    {
      name: OCI_DIR,
      help: 'where oci: models land: an OCI image layout plus one folder per model',
      type: 'path',
      default: '~/.cache/model-pull/oci',
    },
  ],
  create: (settings) =>
    createOciSource({
      // The settings module fills every declared option, defaults included.
      root: settings.sourceOptions[OCI_DIR]!,
      verify: settings.verify,
      ...registryOptions(settings),
    }),
};
