export const id = 57;
export const ids = [57];
export const modules = {

/***/ 3057:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

// ESM COMPAT FLAG
__webpack_require__.r(__webpack_exports__);

// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  demoCommand: () => (/* binding */ demoCommand)
});

// EXTERNAL MODULE: external "node:fs/promises"
var promises_ = __webpack_require__(1455);
// EXTERNAL MODULE: external "node:os"
var external_node_os_ = __webpack_require__(8161);
// EXTERNAL MODULE: external "node:path"
var external_node_path_ = __webpack_require__(6760);
// EXTERNAL MODULE: ./src/cache/client.ts
var client = __webpack_require__(9439);
// EXTERNAL MODULE: ./src/constants.ts
var constants = __webpack_require__(7242);
// EXTERNAL MODULE: external "node:crypto"
var external_node_crypto_ = __webpack_require__(7598);
// EXTERNAL MODULE: external "node:http"
var external_node_http_ = __webpack_require__(7067);
// EXTERNAL MODULE: ./src/digest.ts
var digest = __webpack_require__(2187);
;// CONCATENATED MODULE: ./src/demo/servers.ts



async function startDemoServers(options = {}) {
    const weightsBytes = options.weightsBytes ?? 8 * 1024 * 1024;
    // The same bytes every run, so an interrupted demo resumes where it stopped.
    const weights = Buffer.concat([Buffer.from('GGUF'), demoBytes('ollama weights', weightsBytes - 4)]);
    const ollamaBlobs = [
        { data: weights, mediaType: 'application/vnd.ollama.image.model' },
        { data: Buffer.from('{{ .Prompt }}'), mediaType: 'application/vnd.ollama.image.template' },
        { data: Buffer.from('{"temperature":0}'), mediaType: 'application/vnd.ollama.image.params' },
    ];
    const config = Buffer.from(JSON.stringify({ model_format: 'gguf', model_family: 'demo', file_type: 'Q4_0' }));
    const descriptor = (b) => ({
        mediaType: b.mediaType,
        digest: `sha256:${(0,digest/* sha256Hex */.fg)(b.data)}`,
        size: b.data.length,
    });
    const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: descriptor({ data: config, mediaType: 'application/vnd.docker.container.image.v1+json' }),
        layers: ollamaBlobs.map(descriptor),
    }));
    const byDigest = new Map([config, ...ollamaBlobs.map((b) => b.data)].map((d) => [`sha256:${(0,digest/* sha256Hex */.fg)(d)}`, d]));
    const commit = (0,external_node_crypto_.createHash)('sha1').update('demo commit').digest('hex');
    const hfFiles = new Map([
        ['config.json', { data: Buffer.from('{"architectures":["Demo"],"hidden_size":64}\n'), lfs: false }],
        ['model.safetensors', { data: demoBytes('hf weights', weightsBytes), lfs: true }],
    ]);
    const send = (pacer) => (req, res, data, extra) => sendRange(req, res, data, extra, pacer);
    const registryPacer = new Pacer(options.bytesPerSecond);
    const hubPacer = new Pacer(options.bytesPerSecond);
    const sendBlob = send(registryPacer);
    const sendFile = send(hubPacer);
    const registry = await listen((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        const m = /^\/v2\/demo\/tiny\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
        if (url.pathname === '/v2/')
            return void res.writeHead(200).end('{}');
        if (m?.[1] === 'manifests') {
            return void res
                .writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' })
                .end(manifest);
        }
        const blob = m?.[1] === 'blobs' ? byDigest.get(m[2]) : undefined;
        if (!blob)
            return void res.writeHead(404).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
        sendBlob(req, res, blob);
    });
    const hub = await listen((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        const path = url.pathname;
        if (path === '/api/models/demo/tiny/revision/main')
            return void json(res, { id: 'demo/tiny', sha: commit });
        if (path === `/api/models/demo/tiny/tree/${commit}`) {
            return void json(res, [...hfFiles].map(([name, f]) => ({
                type: 'file',
                path: name,
                size: f.data.length,
                oid: (0,digest/* gitBlobSha1Hex */.ce)(f.data),
                ...(f.lfs ? { lfs: { oid: (0,digest/* sha256Hex */.fg)(f.data), size: f.data.length } } : {}),
            })));
        }
        const resolve = new RegExp(`^/demo/tiny/resolve/${commit}/(.+)$`).exec(path);
        const file = resolve ? hfFiles.get(decodeURIComponent(resolve[1])) : undefined;
        if (resolve && file) {
            if (!file.lfs)
                return void sendFile(req, res, file.data, { etag: `"${(0,digest/* gitBlobSha1Hex */.ce)(file.data)}"` });
            const location = `/cdn/${(0,digest/* sha256Hex */.fg)(file.data)}?expires=${Date.now() + 3_600_000}`;
            return void res
                .writeHead(302, { location, 'x-linked-etag': `"${(0,digest/* sha256Hex */.fg)(file.data)}"`, 'x-repo-commit': commit })
                .end();
        }
        const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
        const lfs = cdn ? [...hfFiles.values()].find((f) => f.lfs && (0,digest/* sha256Hex */.fg)(f.data) === cdn[1]) : undefined;
        if (lfs)
            return void sendFile(req, res, lfs.data);
        res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
    });
    return {
        registry: registry.url,
        hub: hub.url,
        ollamaLine: `ollama:${registry.url}/demo/tiny:latest`,
        hfLine: 'hf:demo/tiny',
        close: async () => {
            await Promise.all([registry.close(), hub.close()]);
        },
    };
}
function json(res, body) {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
/** Bytes that look random and are the same every run (AES-CTR over zeros, keyed by `seed`). */
function demoBytes(seed, length) {
    const key = (0,external_node_crypto_.createHash)('sha256').update(seed).digest().subarray(0, 16);
    const cipher = (0,external_node_crypto_.createCipheriv)('aes-128-ctr', key, Buffer.alloc(16));
    return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}
/** Spaces out chunks so that a server sends at most `bytesPerSecond` over all its connections. */
class Pacer {
    bytesPerSecond;
    nextFree = 0;
    constructor(bytesPerSecond) {
        this.bytesPerSecond = bytesPerSecond;
    }
    /** Resolves when `bytes` more may be sent. */
    async turn(bytes) {
        if (!this.bytesPerSecond)
            return;
        const now = Date.now();
        const start = Math.max(now, this.nextFree);
        this.nextFree = start + (bytes * 1000) / this.bytesPerSecond;
        if (start > now)
            await new Promise((resolve) => setTimeout(resolve, start - now));
    }
}
const CHUNK = 64 * 1024;
function sendRange(req, res, data, extra = {}, pacer = new Pacer(undefined)) {
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const end = m?.[2] ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
    if (m && start >= data.length)
        return void res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
    res.writeHead(m ? 206 : 200, {
        ...extra,
        'accept-ranges': 'bytes',
        'content-length': end - start + 1,
        ...(m ? { 'content-range': `bytes ${start}-${end}/${data.length}` } : {}),
    });
    void (async () => {
        for (let at = start; at <= end && !res.destroyed; at += CHUNK) {
            const chunk = data.subarray(at, Math.min(at + CHUNK, end + 1));
            await pacer.turn(chunk.length);
            if (!res.write(chunk))
                await drained(res);
        }
        res.end();
    })();
}
/** Resolves when the response can take more, or is gone. */
function drained(res) {
    return new Promise((resolve) => {
        const done = () => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
        };
        res.on('drain', done);
        res.on('close', done);
    });
}
async function listen(handler) {
    const server = (0,external_node_http_.createServer)(handler);
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address();
    return {
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
        }),
    };
}

// EXTERNAL MODULE: ./src/pull.ts + 15 modules
var pull = __webpack_require__(7733);
// EXTERNAL MODULE: ./src/report/format.ts
var format = __webpack_require__(2011);
// EXTERNAL MODULE: ./src/settings/settings.ts + 1 modules
var settings_settings = __webpack_require__(3756);
// EXTERNAL MODULE: ./src/sources/index.ts + 44 modules
var sources = __webpack_require__(578);
// EXTERNAL MODULE: ./src/cli/display.ts + 2 modules
var cli_display = __webpack_require__(3552);
;// CONCATENATED MODULE: ./src/cli/demo.ts











const MiB = 1024 * 1024;
const ROUNDS = [
    'first pull (downloads everything)',
    'second pull (verifies what is on disk, downloads nothing)',
];
/**
 * On a terminal each server sends at most this much per second, so the first pull takes a few
 * seconds: long enough to see the bars and phases, and to stop it with Ctrl-C and resume.
 */
const TERMINAL_RATE = 2 * MiB;
/**
 * Pulls a generated Ollama model and HF repo from local servers, twice: the first round shows
 * the download, the second that a filled store costs no bytes. The folder is per user and the
 * bytes are the same every run, so an interrupted demo resumes; it is removed at the end unless
 * `keep` is set (then it is printed, ready for `ollama list`) or the demo was interrupted.
 */
async function demoCommand(io, options) {
    const servers = await startDemoServers(io.stderr.isTTY ? { bytesPerSecond: TERMINAL_RATE } : {});
    const root = await demoFolder();
    let keep = options.keep === true;
    const out = (line) => void io.stdout.write(`${line}\n`);
    try {
        const settings = (0,settings_settings/* buildSettings */.E6)({
            [constants/* Inputs */.G0.Models]: `${servers.ollamaLine}\n${servers.hfLine}`,
            [constants/* Inputs */.G0.OllamaModels]: (0,external_node_path_.join)(root, 'ollama'),
            [constants/* Inputs */.G0.HfCache]: (0,external_node_path_.join)(root, 'hf'),
            [constants/* Inputs */.G0.FilesDir]: (0,external_node_path_.join)(root, 'files'),
            [constants/* Inputs */.G0.HfEndpoint]: servers.hub,
            [constants/* Inputs */.G0.Cache]: 'false',
        }, { env: {}, nameOf: (n) => n });
        out(`a local registry (${servers.registry}) and hub (${servers.hub}) serve a generated model:`);
        out(`  ${servers.ollamaLine}\n  ${servers.hfLine}`);
        for (const round of ROUNDS) {
            out(`\n${round}:`);
            const report = await pullRound(settings, io, options.notices, keep);
            if (io.signal?.aborted) {
                // What is on disk stays: the next demo takes up from there.
                keep = true;
                out(`\nstopped: run ${demoCommandLine(io)} again and it resumes from what is on disk`);
                return 1;
            }
            if (!report.ok)
                return 1;
            out(roundSummary(report));
        }
        if (keep) {
            out(`\nkept in ${root}:`);
            out(`  OLLAMA_MODELS=${settings.ollamaModels} ollama list   # lists the model`);
            out(`  HF_HUB_CACHE=${settings.hfCache} HF_HUB_OFFLINE=1   # transformers finds demo/tiny`);
        }
        const next = [['npx model-pull pull ollama:qwen2.5:0.5b', 'a real model (needs the internet)']];
        if (!keep)
            next.push([demoCommandLine(io, '--keep'), "the same, keeping the demo's files to try them"]);
        const width = Math.max(...next.map(([command]) => command.length));
        out('\nnext:');
        for (const [command, what] of next)
            out(`  ${command.padEnd(width)}   # ${what}`);
        return 0;
    }
    finally {
        await servers.close();
        if (!keep)
            await (0,promises_.rm)(root, { recursive: true, force: true });
    }
}
async function pullRound(settings, io, notices, keep) {
    // Paths only when the files stay: the folder is removed a moment later otherwise.
    const display = (0,cli_display/* pullDisplay */.uq)(io.stderr, { paths: keep, plainIntervalMs: 1000 });
    const { log, onProgress, onModel } = display;
    const plain = notices.write;
    notices.write = (line) => log.info(line);
    try {
        return await (0,pull/* pull */.a)(settings, {
            sources: sources/* DEFAULT_SOURCES */.h,
            log,
            cache: (0,client/* createNoCache */.m_)(),
            onProgress,
            onModel,
            signal: io.signal,
        });
    }
    finally {
        display.close();
        notices.write = plain;
    }
}
/** `  downloaded 16.0 MiB in 3.1 s` / `  downloaded 0 B: 16.0 MiB verified on disk`. */
function roundSummary(report) {
    const size = report.models.reduce((sum, m) => sum + (m.output?.size ?? 0), 0);
    const time = Math.max(...report.models.map((m) => m.durationMs));
    return report.downloadedBytes > 0
        ? `  downloaded ${(0,format/* formatBytes */.z3)(report.downloadedBytes)} in ${(0,format/* formatDuration */.a3)(time)}`
        : `  downloaded 0 B: ${(0,format/* formatBytes */.z3)(size)} verified on disk`;
}
/** How the user started the demo, so the command we suggest is one they can type. */
function demoCommandLine(io, flag) {
    if (io.env.npm_lifecycle_event === 'demo')
        return `npm run demo${flag ? ` -- ${flag}` : ''}`;
    return `npx model-pull demo${flag ? ` ${flag}` : ''}`;
}
/**
 * The demo's folder: the same one on every run for this user (so Ctrl-C and a rerun resume),
 * unless something else took that name; then a fresh one.
 */
async function demoFolder() {
    const stable = (0,external_node_path_.join)((0,external_node_os_.tmpdir)(), `model-pull-demo-${process.getuid?.() ?? 'user'}`);
    await (0,promises_.mkdir)(stable, { recursive: true, mode: 0o700 }).catch(() => undefined);
    const info = await (0,promises_.lstat)(stable).catch(() => undefined);
    const ours = info?.isDirectory() && !info.isSymbolicLink() && info.uid === (process.getuid?.() ?? info.uid);
    return ours ? stable : (0,promises_.mkdtemp)((0,external_node_path_.join)((0,external_node_os_.tmpdir)(), 'model-pull-demo-'));
}


/***/ })

};
