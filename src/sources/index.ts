import type { Source } from '../plan.js';
import type { Settings } from '../settings/settings.js';
import type { HfRef } from './hf/ref.js';
import { createHfSource } from './hf/source.js';
import type { OllamaRef } from './ollama/ref.js';
import { createOllamaSource } from './ollama/source.js';
import type { UrlRef } from './url/ref.js';
import { createUrlSource } from './url/source.js';

export interface Sources {
  readonly ollama: Source<OllamaRef>;
  readonly hf: Source<HfRef>;
  readonly url: Source<UrlRef>;
}

export function createSources(settings: Settings): Sources {
  return {
    ollama: createOllamaSource({
      modelsRoot: settings.ollamaModels,
      allowedRealmHosts: settings.allowedRealmHosts,
      ...(settings.registryAuth ? { basicAuth: settings.registryAuth } : {}),
    }),
    hf: createHfSource({
      cacheRoot: settings.hfCache,
      endpoint: settings.hfEndpoint,
      ...(settings.hfToken ? { token: settings.hfToken } : {}),
    }),
    url: createUrlSource({ filesDir: settings.filesDir }),
  };
}
