import { Inputs } from '../../constants.js';
import { registryOptions } from '../../registry/client.js';
import type { SourceDescriptor } from '../descriptor.js';
import { ollamaMirror } from './mirror.js';
import { canonicalOllamaLine, OLLAMA_PREFIX, type OllamaRef, parseOllamaRef } from './ref.js';
import { createOllamaSource } from './source.js';
import { verifyOllamaStore } from './verify.js';

/** `ollama:[scheme://][host/][namespace/]model[:tag][@sha256:…]`: Ollama's registry or any OCI registry. */
export const ollamaSource: SourceDescriptor<OllamaRef> = {
  kind: 'ollama',
  prefixes: [OLLAMA_PREFIX],
  syntax: 'ollama:NAME',
  usage: 'ollama:NAME[:TAG][@sha256:HEX]',
  parse: parseOllamaRef,
  stores: (settings) => [
    {
      what: 'the Ollama store',
      path: settings.ollamaModels,
      input: Inputs.OllamaModels,
      verify: { label: 'Ollama store', check: verifyOllamaStore },
    },
  ],
  phases: { resolving: 'resolving manifest', writing: 'writing manifest' },
  canonical: canonicalOllamaLine,
  create: (settings) =>
    createOllamaSource({ modelsRoot: settings.ollamaModels, ...registryOptions(settings) }),
  mirror: ollamaMirror,
};
