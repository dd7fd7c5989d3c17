/** Names of the action's inputs, outputs and exported variables; they mirror action.yml. */
export const Inputs = {
  Models: 'models',
  OllamaModels: 'ollama-models',
  HfCache: 'hf-cache',
  FilesDir: 'files-dir',
  HfEndpoint: 'hf-endpoint',
  HfToken: 'hf-token',
  Cache: 'cache',
  CacheKeyPrefix: 'cache-key-prefix',
  Concurrency: 'concurrency',
  Connections: 'connections',
  Verify: 'verify',
  Insecure: 'insecure',
  CaCert: 'ca-cert',
  Lockfile: 'lockfile',
  LockMode: 'lock-mode',
  Save: 'save',
  FailOnCacheMiss: 'fail-on-cache-miss',
  ExportEnv: 'export-env',
  HfOffline: 'hf-offline',
  OllamaVersion: 'ollama-version',
  OllamaServe: 'ollama-serve',
  OllamaDownloadUrl: 'ollama-download-url',
  OllamaSha256: 'ollama-sha256',
  StallTimeout: 'stall-timeout',
  Retries: 'retries',
  RegistryHost: 'registry-host',
  RegistryUsername: 'registry-username',
  RegistryPassword: 'registry-password',
  AllowedRealmHosts: 'allowed-realm-hosts',
  MirrorTo: 'mirror-to',
  RegistryMirror: 'registry-mirror',
  HfOciMirror: 'hf-oci-mirror',
} as const;

export const Outputs = {
  CacheHit: 'cache-hit',
  Models: 'models',
  Paths: 'paths',
  OllamaModels: 'ollama-models',
  HfCache: 'hf-cache',
  DownloadedBytes: 'downloaded-bytes',
  CachedBytes: 'cached-bytes',
  DownloadedFrom: 'downloaded-from',
  OllamaVersion: 'ollama-version',
  OllamaHost: 'ollama-host',
} as const;

export const EnvNames = {
  OllamaModels: 'OLLAMA_MODELS',
  HfHubCache: 'HF_HUB_CACHE',
  HfHubOffline: 'HF_HUB_OFFLINE',
  OllamaHost: 'OLLAMA_HOST',
} as const;

export const USER_AGENT = 'model-pull/0.1';
