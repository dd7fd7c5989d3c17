import { Inputs } from '../../constants.js';
import { RegistryClient, registryOptions } from '../../registry/client.js';
import type { SourceDescriptor } from '../descriptor.js';
import { hfMirror } from './mirror.js';
import { HfOciMirror } from './oci-mirror.js';
import { canonicalHfLine, HF_PREFIX, type HfRef, parseHfRef } from './ref.js';
import { createHfSource } from './source.js';
import { verifyHfCache } from './verify.js';

/** `hf:[datasets/|spaces/]owner/repo[@revision] [include=…] [exclude=…]`: the Hub into the HF cache. */
export const hfSource: SourceDescriptor<HfRef> = {
  kind: 'hf',
  prefixes: [HF_PREFIX],
  syntax: 'hf:OWNER/REPO',
  usage: 'hf:OWNER/REPO[@REV] [include=GLOB,..] [exclude=GLOB,..]',
  parse: parseHfRef,
  stores: (settings) => [
    {
      what: 'the Hugging Face cache',
      path: settings.hfCache,
      input: Inputs.HfCache,
      verify: { label: 'Hugging Face cache', check: verifyHfCache },
    },
  ],
  phases: { resolving: 'resolving revision', writing: 'linking snapshot' },
  canonical: canonicalHfLine,
  create: (settings) =>
    createHfSource({
      cacheRoot: settings.hfCache,
      endpoint: settings.hfEndpoint,
      ...(settings.hfToken ? { token: settings.hfToken } : {}),
      ...(settings.hfEndpointAuth ? { endpointAuth: settings.hfEndpointAuth } : {}),
      ...(settings.hfOciMirror
        ? { ociMirror: new HfOciMirror(new RegistryClient(registryOptions(settings)), settings.hfOciMirror) }
        : {}),
    }),
  mirror: hfMirror,
};
