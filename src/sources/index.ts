import type { Source } from '../plan.js';
import type { HfRef } from '../refs/hf.js';
import type { OllamaRef } from '../refs/ollama.js';
import type { UrlRef } from '../refs/url.js';
import type { Settings } from '../settings/settings.js';
import { createHfSource } from './hf/source.js';
import { createOllamaSource } from './ollama/source.js';
import { createUrlSource } from './url.js';

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
