import UndiciApi from 'undici/lib/api/index.js';
import Agent from 'undici/lib/dispatcher/agent.js';
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import EnvHttpProxyAgent from 'undici/lib/dispatcher/env-http-proxy-agent.js';

/**
 * The parts of undici the client uses, loaded by path rather than through undici's index: that
 * also loads fetch, WebSocket, the caches and the mocks, ~13 MiB of resident memory for code we
 * never call (measured with Node 24). The index's one other job is done here the same way:
 * giving every dispatcher its request API (`request`, `stream`, …).
 */
if (typeof (Dispatcher.prototype as { request?: unknown }).request !== 'function') {
  Object.assign(Dispatcher.prototype, UndiciApi);
}

export { Agent, EnvHttpProxyAgent };
