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



async function startDemoServers(weightsBytes = 8 * 1024 * 1024) {
    const weights = Buffer.concat([Buffer.from('GGUF'), (0,external_node_crypto_.randomBytes)(weightsBytes - 4)]);
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
        ['model.safetensors', { data: (0,external_node_crypto_.randomBytes)(weightsBytes), lfs: true }],
    ]);
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
        sendRange(req, res, blob);
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
                return void sendRange(req, res, file.data, { etag: `"${(0,digest/* gitBlobSha1Hex */.ce)(file.data)}"` });
            const location = `/cdn/${(0,digest/* sha256Hex */.fg)(file.data)}?expires=${Date.now() + 3_600_000}`;
            return void res
                .writeHead(302, { location, 'x-linked-etag': `"${(0,digest/* sha256Hex */.fg)(file.data)}"`, 'x-repo-commit': commit })
                .end();
        }
        const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
        const lfs = cdn ? [...hfFiles.values()].find((f) => f.lfs && (0,digest/* sha256Hex */.fg)(f.data) === cdn[1]) : undefined;
        if (lfs)
            return void sendRange(req, res, lfs.data);
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
function sendRange(req, res, data, extra = {}) {
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
    res.end(data.subarray(start, end + 1));
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
var pull = __webpack_require__(2088);
// EXTERNAL MODULE: ./src/report/format.ts
var format = __webpack_require__(2011);
// EXTERNAL MODULE: ./src/report/progress-log.ts
var progress_log = __webpack_require__(8340);
// EXTERNAL MODULE: ./src/settings/settings.ts
var settings_settings = __webpack_require__(7100);
// EXTERNAL MODULE: ./src/sources/index.ts + 21 modules
var sources = __webpack_require__(5785);
;// CONCATENATED MODULE: ./src/cli/demo.ts











const ROUNDS = [
    'first pull (downloads everything)',
    'second pull (verifies what is on disk, downloads nothing)',
];
/**
 * Pulls a generated Ollama model and HF repo from local servers into a temporary folder, twice:
 * the first round shows the download, the second that a filled store costs no bytes. The folder
 * is removed at the end unless `keep` is set (then it is printed, ready for `ollama list`).
 */
async function demoCommand(io, options = {}) {
    const servers = await startDemoServers();
    const root = await (0,promises_.mkdtemp)((0,external_node_path_.join)((0,external_node_os_.tmpdir)(), 'model-pull-demo-'));
    try {
        const settings = (0,settings_settings/* buildSettings */.E6)({
            [constants/* Inputs */.G0.Models]: `${servers.ollamaLine}\n${servers.hfLine}`,
            [constants/* Inputs */.G0.OllamaModels]: (0,external_node_path_.join)(root, 'ollama'),
            [constants/* Inputs */.G0.HfCache]: (0,external_node_path_.join)(root, 'hf'),
            [constants/* Inputs */.G0.FilesDir]: (0,external_node_path_.join)(root, 'files'),
            [constants/* Inputs */.G0.HfEndpoint]: servers.hub,
            [constants/* Inputs */.G0.Cache]: 'false',
        }, { env: {}, nameOf: (n) => n });
        const log = demoLogger(io);
        io.stdout.write(`registry ${servers.registry} and hub ${servers.hub} serve a generated model\n`);
        io.stdout.write(`lines:\n  ${servers.ollamaLine}\n  ${servers.hfLine}\n`);
        for (const round of ROUNDS) {
            const report = await (0,pull/* pull */.a)(settings, {
                sources: sources/* DEFAULT_SOURCES */.h,
                log,
                cache: (0,client/* createNoCache */.m)(),
                onProgress: (0,progress_log/* progressLines */.L)(log.info, 1000),
                signal: io.signal,
            });
            io.stdout.write(`\n${round}:\n`);
            if (!printRound(io, report))
                return 1;
        }
        if (options.keep) {
            io.stdout.write(`\nkept in ${root}:\n`);
            io.stdout.write(`  OLLAMA_MODELS=${settings.ollamaModels} ollama list   # lists the model\n`);
            io.stdout.write(`  HF_HUB_CACHE=${settings.hfCache} HF_HUB_OFFLINE=1   # transformers finds demo/tiny\n`);
        }
        else {
            io.stdout.write('\n(run model-pull demo --keep to keep the pulled files)\n');
        }
        return 0;
    }
    finally {
        await servers.close();
        if (!options.keep)
            await (0,promises_.rm)(root, { recursive: true, force: true });
    }
}
/** A line per model; false when one failed. */
function printRound(io, report) {
    for (const m of report.models) {
        if (!m.output) {
            io.stdout.write(`  ${m.line}: FAILED ${m.error?.message}\n`);
            return false;
        }
        io.stdout.write(`  ${m.output.name}\n    ${m.output.digest}, ${(0,format/* formatBytes */.z3)(m.output.size)}, downloaded ${(0,format/* formatBytes */.z3)(m.downloadedBytes)} in ${(0,format/* formatDuration */.a3)(m.durationMs)}\n    ${m.output.path}\n`);
    }
    return true;
}
function demoLogger(io) {
    return {
        debug: () => undefined,
        info: (m) => io.stderr.write(`${m}\n`),
        warning: (m) => io.stderr.write(`warning: ${m}\n`),
        error: (m) => io.stderr.write(`error: ${m}\n`),
        group: async (_title, fn) => fn(),
    };
}


/***/ })

};
