export const id = 550;
export const ids = [550];
export const modules = {

/***/ 8364:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   Q3: () => (/* binding */ writeFileAtomicSync),
/* harmony export */   Zf: () => (/* binding */ writeFileAtomic),
/* harmony export */   jH: () => (/* binding */ removeStaleTemps)
/* harmony export */ });
/* harmony import */ var node_crypto__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(7598);
/* harmony import */ var node_crypto__WEBPACK_IMPORTED_MODULE_0___default = /*#__PURE__*/__webpack_require__.n(node_crypto__WEBPACK_IMPORTED_MODULE_0__);
/* harmony import */ var node_fs__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(3024);
/* harmony import */ var node_fs__WEBPACK_IMPORTED_MODULE_1___default = /*#__PURE__*/__webpack_require__.n(node_fs__WEBPACK_IMPORTED_MODULE_1__);
/* harmony import */ var node_fs_promises__WEBPACK_IMPORTED_MODULE_2__ = __webpack_require__(1455);
/* harmony import */ var node_fs_promises__WEBPACK_IMPORTED_MODULE_2___default = /*#__PURE__*/__webpack_require__.n(node_fs_promises__WEBPACK_IMPORTED_MODULE_2__);
/* harmony import */ var node_path__WEBPACK_IMPORTED_MODULE_3__ = __webpack_require__(6760);
/* harmony import */ var node_path__WEBPACK_IMPORTED_MODULE_3___default = /*#__PURE__*/__webpack_require__.n(node_path__WEBPACK_IMPORTED_MODULE_3__);
/* harmony import */ var _fs_dirs_js__WEBPACK_IMPORTED_MODULE_4__ = __webpack_require__(3341);





/**
 * Writes a small file so that a reader sees the old content or the whole new one, never a part:
 * the bytes go to a fresh temporary name, then one rename replaces the target. The temporary
 * file is created exclusively under a random name, so a file or link planted there by another
 * process is never written through, and two writers never share one; it is removed on failure.
 */
async function writeFileAtomic(path, data, options = {}) {
    const folder = options.tempDir ?? (0,node_path__WEBPACK_IMPORTED_MODULE_3__.dirname)(path);
    const temp = tempName(path, folder);
    const mode = options.mode === undefined ? {} : { mode: options.mode };
    // Folders are made only when missing, so frequent writers (progress records) pay no extra call.
    const whenMissing = (folders, step) => async (error) => {
        if (error.code !== 'ENOENT')
            throw error;
        for (const f of folders)
            await (0,_fs_dirs_js__WEBPACK_IMPORTED_MODULE_4__/* .ensureDirs */ .J)(f);
        await step();
    };
    const write = () => (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_2__.writeFile)(temp, data, { flag: 'wx', ...mode });
    const move = () => (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_2__.rename)(temp, path);
    try {
        await write().catch(whenMissing([folder], write));
        if (options.mode !== undefined)
            await (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_2__.chmod)(temp, options.mode);
        await move().catch(whenMissing([(0,node_path__WEBPACK_IMPORTED_MODULE_3__.dirname)(path)], move));
    }
    catch (error) {
        await (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_2__.rm)(temp, { force: true });
        throw error;
    }
}
/**
 * `writeFileAtomic` on the calling thread, for a small file in a folder that exists: nothing else
 * runs between the caller's decision and the rename (a download's progress record must describe
 * the bytes on disk when it lands, not what landed while a write waited for the thread pool).
 */
function writeFileAtomicSync(path, data) {
    const temp = tempName(path, (0,node_path__WEBPACK_IMPORTED_MODULE_3__.dirname)(path));
    try {
        (0,node_fs__WEBPACK_IMPORTED_MODULE_1__.writeFileSync)(temp, data, { flag: 'wx' });
        (0,node_fs__WEBPACK_IMPORTED_MODULE_1__.renameSync)(temp, path);
    }
    catch (error) {
        (0,node_fs__WEBPACK_IMPORTED_MODULE_1__.rmSync)(temp, { force: true });
        throw error;
    }
}
/** A fresh temporary name for a writer of `path` in `folder` (see removeStaleTemps). */
const tempName = (path, folder) => (0,node_path__WEBPACK_IMPORTED_MODULE_3__.join)(folder, `${tempPrefix(path)}${(0,node_crypto__WEBPACK_IMPORTED_MODULE_0__.randomBytes)(6).toString('hex')}.tmp`);
/** `.record.json.` for `…/record.json`: the temporary names of a path start with it. */
const tempPrefix = (path) => `.${(0,node_path__WEBPACK_IMPORTED_MODULE_3__.basename)(path)}.`;
/**
 * Removes the temporary files that writers of `path` killed mid-write left behind (a random name
 * each, so nothing else would ever reuse them). Only while no other writer of `path` can run:
 * the staging area calls it under the entry's lease.
 */
async function removeStaleTemps(path, tempDir = (0,node_path__WEBPACK_IMPORTED_MODULE_3__.dirname)(path)) {
    const prefix = tempPrefix(path);
    const names = await (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_2__.readdir)(tempDir).catch(() => []);
    const stale = names.filter((n) => n.startsWith(prefix) && /^[0-9a-f]{12}\.tmp$/.test(n.slice(prefix.length)));
    await Promise.all(stale.map((n) => (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_2__.rm)((0,node_path__WEBPACK_IMPORTED_MODULE_3__.join)(tempDir, n), { force: true })));
}


/***/ }),

/***/ 9439:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   m_: () => (/* binding */ createNoCache)
/* harmony export */ });
/* unused harmony exports missed, notLookedUp, restoreOnly */
/** Nothing restored: every planned file comes from the origin. */
function missed(entry, found = false) {
    return { state: 'miss', found, restored: new Map(), fetched: 0, missing: entry.blobs.length };
}
/** Nothing looked up: the cache is off or cannot be used in this run. */
function notLookedUp(entry) {
    return { ...missed(entry), state: 'off' };
}
/** For `cache: false`: nothing is restored or saved, and nothing is logged. */
function createNoCache() {
    return {
        restore: async (entry) => notLookedUp(entry),
        save: async () => 'unavailable',
        lookup: async () => 'off',
    };
}
/**
 * For `save: false`: restores as `cache` does and never saves (a matrix job after the job that
 * warms the cache; a pull request from a fork, whose entries others would read).
 */
function restoreOnly(cache, log) {
    return {
        restore: (...args) => cache.restore(...args),
        lookup: (...args) => cache.lookup(...args),
        save: async (_paths, key) => {
            log.info(`Cache entry ${key} not saved: save is false in this step.`);
            return 'unavailable';
        },
    };
}


/***/ }),

/***/ 5877:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   C6: () => (/* binding */ isKeyPrefix),
/* harmony export */   OS: () => (/* binding */ KEY_PREFIX_RULE),
/* harmony export */   k$: () => (/* binding */ cacheKey)
/* harmony export */ });
/* unused harmony exports LAYOUT_VERSION, MAX_KEY_LENGTH */
/* harmony import */ var _digest_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(2187);
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(3916);


/**
 * Version of the on-disk layouts an entry holds. Bump it when what a cache entry contains for
 * the same content changes (another layout, other files), so old entries are never restored
 * into a layout that no longer expects them.
 */
const LAYOUT_VERSION = 'v1';
/** The Actions cache refuses longer keys (docs/actions-cache.md, "Keys"). */
const MAX_KEY_LENGTH = 512;
// The service splits key lists on commas; control characters would break log lines and annotations.
const FORBIDDEN = /[,\p{Cc}]/u;
/**
 * The rule for `cache-key-prefix`, the one the settings check: at most 200 characters, none of
 * them a comma, a space or a control character. Stricter than what the service takes (cacheKey
 * below guards only that), and short enough that `<prefix>-v1-<kind>-<64 hex>` always fits
 * MAX_KEY_LENGTH for any source kind (checkSourceList keeps kinds to 32 characters).
 */
const KEY_PREFIX_RULE = 'at most 200 characters without commas or spaces';
function isKeyPrefix(prefix) {
    return prefix.length > 0 && prefix.length <= 200 && !/[\s,\p{Cc}]/u.test(prefix);
}
/**
 * `<prefix>-<LAYOUT_VERSION>-<source>-<contentDigest>`: one entry per model, named by the bytes it
 * holds, so every workflow and branch pulling the same content shares it, and a different file
 * selection (another include filter) is a different entry.
 */
function cacheKey(prefix, identity) {
    checkPrefix(prefix);
    const digest = contentHex(identity);
    const key = `${prefix}-${LAYOUT_VERSION}-${identity.source}-${digest}`;
    if (key.length > MAX_KEY_LENGTH) {
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_1__/* .ModelPullError */ .Vy('ERR_BAD_INPUT', `cache-key-prefix: the cache key would be ${key.length} characters, more than the ${MAX_KEY_LENGTH} ` +
            `the Actions cache accepts; use a prefix of at most ${MAX_KEY_LENGTH - (key.length - prefix.length)} characters`);
    }
    return key;
}
function checkPrefix(prefix) {
    if (prefix.trim() === '') {
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_1__/* .ModelPullError */ .Vy('ERR_BAD_INPUT', 'cache-key-prefix: must not be empty');
    }
    if (FORBIDDEN.test(prefix)) {
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_1__/* .ModelPullError */ .Vy('ERR_BAD_INPUT', `cache-key-prefix: ${JSON.stringify(prefix)} contains a comma or a control character, ` +
            'which Actions cache keys cannot hold');
    }
}
/** Accepts the hex or `sha256:<hex>`; the key always carries the bare hex so it never changes form. */
function contentHex(identity) {
    const hex = identity.contentDigest.replace(/^sha256:/, '');
    if (!(0,_digest_js__WEBPACK_IMPORTED_MODULE_0__/* .isSha256Hex */ .P4)(hex)) {
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_1__/* .ModelPullError */ .Vy('ERR_BAD_INPUT', `${identity.ref}: cannot name its cache entry, the content digest ${JSON.stringify(identity.contentDigest)} ` +
            'is not a sha256 hex digest');
    }
    return hex;
}


/***/ }),

/***/ 3552:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  Hw: () => (/* binding */ lineLogger),
  uq: () => (/* binding */ pullDisplay),
  _y: () => (/* binding */ toStream)
});

// EXTERNAL MODULE: ./src/report/model-log.ts
var model_log = __webpack_require__(7400);
// EXTERNAL MODULE: ./src/report/format.ts
var format = __webpack_require__(2011);
;// CONCATENATED MODULE: ./src/report/progress-log.ts

/**
 * Progress as plain lines for logs (the action, a CLI without a terminal): at most one batch
 * every `intervalMs`, a line per file being fetched and a total, never a line per chunk.
 */
function progressLines(write, intervalMs = 5000) {
    let last = 0;
    return (snapshot) => {
        const now = Date.now();
        const active = snapshot.blobs.filter((b) => b.state === 'downloading');
        if (active.length === 0 || now - last < intervalMs)
            return;
        last = now;
        for (const line of describe(snapshot))
            write(line);
    };
}
function describe(snapshot) {
    const active = snapshot.blobs.filter((b) => b.state === 'downloading');
    const lines = active.map((b) => {
        // Bytes fetched again after a restart are traffic: progress never passes the size.
        const done = b.total === undefined ? b.done : Math.min(b.done, b.total);
        return `  ${b.label}: ${(0,format/* formatBytes */.z3)(done)} of ${b.total === undefined ? '?' : (0,format/* formatBytes */.z3)(b.total)} (${(0,format/* percent */.KN)(done, b.total)}) at ${(0,format/* formatRate */.CE)(b.rate)}`;
    });
    // The time left only when every size is known (an unknown one counts as done so far, which
    // would promise the end too soon) and something is left.
    const known = snapshot.blobs.every((b) => b.total !== undefined || b.state === 'done');
    const left = snapshot.total - snapshot.done;
    const eta = known && left > 0 && snapshot.rate > 0 ? `, about ${(0,format/* formatEta */.gc)(left / snapshot.rate)} left` : '';
    const total = known ? (0,format/* formatBytes */.z3)(snapshot.total) : '?';
    lines.push(`downloading: ${(0,format/* formatBytes */.z3)(Math.min(snapshot.done, snapshot.total))} of ${total} (${known ? (0,format/* percent */.KN)(snapshot.done, snapshot.total) : '?%'}) at ${(0,format/* formatRate */.CE)(snapshot.rate)}${eta}`);
    return lines;
}

// EXTERNAL MODULE: ./src/report/text.ts
var report_text = __webpack_require__(5655);
// EXTERNAL MODULE: ./node_modules/cli-progress/cli-progress.js
var cli_progress = __webpack_require__(8502);
var cli_progress_default = /*#__PURE__*/__webpack_require__.n(cli_progress);
;// CONCATENATED MODULE: ./src/cli/progress-bars.ts



/**
 * Live bars for a terminal: one bar per file being fetched and a total (rate, time left) below
 * them. A finished file leaves its bar for one `✓ name size time` line above the bars, a failed
 * one a `✗ name: reason` line, so a repository of many files stays readable. Files checked on
 * disk get no bar: nothing is downloaded for them (the log lines say `verifying`). cli-progress
 * does the redrawing (cursor moves, clipping to the terminal width); we only feed it.
 */
function progressBars(stream) {
    const columns = stream.columns || 80;
    const layout = barLayout(columns);
    // Small files run many at once (up to concurrency × connections): past a screenful of bars
    // the display would scroll and tear, so files beyond the cap wait for a free bar and the
    // total counts them (`total, 12 more files`). Their bytes are in the total all along.
    const maxBars = fileBarLimit(stream.rows);
    const multi = new (cli_progress_default()).MultiBar({
        stream,
        hideCursor: true,
        clearOnComplete: false,
        format: ' {labelText} {bar} {pctText} {amountText} {rateText}{etaText}',
        barsize: layout.barsize,
        fps: 5,
    }, (cli_progress_default()).Presets.shades_classic);
    const bars = new Map();
    const ended = new Set();
    let unseen = 0;
    let total;
    // cli-progress turns the terminal's line wrap off while it draws, so a line longer than the
    // screen would be cut: it is wrapped here instead, nothing lost. It clears only the first row
    // of what it prints between two frames, so each row clears itself (ESC[2K): a second line
    // printed over a longer bar would otherwise keep the bar's tail.
    const log = (line) => multi.log(`${wrap(line, columns)
        .split('\n')
        .map((row) => `\x1b[2K${row}`)
        .join('\n')}\n`);
    const listener = (snapshot) => {
        unseen = 0;
        for (const blob of snapshot.blobs)
            updateFile(blob);
        // The total appears with the first download: a run that only verifies shows no rate at all.
        if (!total && bars.size === 0)
            return;
        // The snapshot counts an unknown size as what has arrived so far; the total is then unknown.
        const known = snapshot.total > 0 && snapshot.blobs.every((b) => b.total !== undefined || b.state === 'done');
        total ??= multi.create(1, 0, fields('total', 0, undefined, 0, layout.label));
        const label = unseen > 0 ? `total, ${unseen} more file${unseen === 1 ? '' : 's'}` : 'total';
        draw(total, label, snapshot.done, known ? snapshot.total : undefined, snapshot.rate, true);
    };
    const updateFile = (blob) => {
        let bar = bars.get(blob.target);
        if (blob.state === 'done' || blob.state === 'failed') {
            if (bar)
                multi.remove(bar);
            bars.delete(blob.target);
            // One line per file this run fetched (a file found good on disk was never fetched), even
            // one that finished between two frames and never had a bar.
            if (blob.fetchMs === undefined || ended.has(blob.target))
                return;
            ended.add(blob.target);
            const name = shorten((0,report_text/* printable */.g$)(blob.label), layout.line);
            if (blob.state === 'done')
                log(` ✓ ${name} ${(0,format/* formatBytes */.z3)(blob.total ?? blob.done)} ${(0,format/* formatDuration */.a3)(blob.fetchMs)}`);
            else
                log(` ✗ ${name}: ${(0,report_text/* printable */.g$)(withoutLabel(blob.error ?? 'failed', blob.label))}`);
            return;
        }
        if (blob.state !== 'downloading' && blob.state !== 'verifying')
            return;
        if (!bar && bars.size >= maxBars) {
            unseen += 1;
            return;
        }
        if (!bar) {
            // Above the total, which stays the last line.
            bar = multi.create(1, 0, fields(blob.label, 0, blob.total, 0, layout.label), {});
            if (total) {
                multi.remove(total);
                total = multi.create(1, 0, fields('total', 0, undefined, 0, layout.label));
            }
            bars.set(blob.target, bar);
        }
        draw(bar, blob.label, blob.done, blob.total, blob.rate, false);
    };
    const draw = (bar, label, done, all, rate, eta) => {
        // An unknown size (a plain URL before its first response) shows an empty bar, not a full one.
        bar.setTotal(all ?? 1);
        bar.update(all === undefined ? 0 : Math.min(done, all), fields(label, done, all, rate, layout.label, eta));
    };
    let stopped = false;
    return {
        listener,
        log,
        stop: () => {
            if (stopped)
                return;
            stopped = true;
            multi.update(); // flushes lines logged since the last redraw
            multi.stop();
        },
    };
}
/** How many file bars a terminal of `rows` lines shows at most: 8, fewer on a short screen. */
function fileBarLimit(rows) {
    return Math.max(1, Math.min(8, (rows || 24) - 4));
}
/** An engine error names its file first; the ✗ line has named it already. */
function withoutLabel(error, label) {
    return error.startsWith(`${label}: `) ? error.slice(label.length + 2) : error;
}
/** `text` cut into lines of at most `width` characters. */
function wrap(text, width) {
    const chars = [...text];
    const lines = [];
    for (let i = 0; i < chars.length; i += width)
        lines.push(chars.slice(i, i + width).join(''));
    return lines.join('\n');
}
/**
 * Widths for a terminal of `columns`: the numbers after the label take about 45 columns plus
 * the bar; the label gets the rest (log lines about a file, the whole width less their marks).
 */
function barLayout(columns) {
    const barsize = columns >= 110 ? 20 : 10;
    return {
        barsize,
        label: Math.max(20, Math.min(60, columns - barsize - 46)),
        line: Math.max(20, columns - 30),
    };
}
/** The payload of one bar line, each field padded to a fixed width so columns line up. */
function fields(label, done, all, rate, labelWidth, eta = true) {
    // Never past the end: bytes fetched again after a restart are traffic, not progress.
    const shown = all === undefined ? done : Math.min(done, all);
    const pct = all ? `${Math.floor((shown / all) * 100)}%` : '?%';
    const remaining = all === undefined ? undefined : all - shown;
    // Own names: cli-progress fills `eta`, `percentage`, `value`… itself and would win.
    return {
        pctText: pct.padStart(4),
        labelText: shorten((0,report_text/* printable */.g$)(label), labelWidth).padEnd(labelWidth),
        amountText: amount(shown, all).padStart(17),
        rateText: (0,format/* formatRate */.CE)(rate).padStart(11),
        etaText: !eta
            ? ''
            : remaining === 0
                ? ''
                : ` ETA ${remaining !== undefined && rate > 0 ? (0,format/* formatEta */.gc)(remaining / rate) : '?'}`,
    };
}
/** `12.3/257.0 MiB`, or `12.3 KiB/1.0 GiB` when the units differ, or `12.3 MiB/?`. */
function amount(done, all) {
    if (all === undefined)
        return `${(0,format/* formatBytes */.z3)(done)}/?`;
    const [n, unit] = (0,format/* formatBytes */.z3)(done).split(' ');
    const whole = (0,format/* formatBytes */.z3)(all);
    return whole.endsWith(` ${unit}`) ? `${n}/${whole}` : `${(0,format/* formatBytes */.z3)(done)}/${whole}`;
}
/**
 * What identifies a file in little room: the reference without its `key=value` options (a
 * URL's sha256 says nothing to a reader), shortened in the middle so that the file name stays
 * whole (two shards must never read alike); a file name longer than the room keeps its start
 * (where shards differ) and its end (the extension).
 */
function shorten(label, width) {
    const words = label.split(/\s+/).filter((w) => !/^[a-z0-9_-]+=/i.test(w));
    const text = words.join(' ');
    if (text.length <= width)
        return text;
    const cut = Math.max(text.lastIndexOf('/'), text.lastIndexOf(' ')) + 1;
    const name = text.slice(cut);
    if (name.length + 2 <= width)
        return `${text.slice(0, width - name.length - 1)}…${name}`;
    const end = Math.min(name.length, Math.floor((width - 1) / 3));
    return `${name.slice(0, width - 1 - end)}…${name.slice(name.length - end)}`;
}

;// CONCATENATED MODULE: ./src/cli/display.ts




/** Seconds between plain progress batches when stderr is not a terminal (a CI log). */
const PLAIN_PROGRESS_MS = 3000;
/**
 * A terminal gets live bars, with log lines (phases, retries, ✓/✗ per file) printed above them;
 * a log (CI, a pipe) gets plain lines and a batch of progress lines every few seconds. Every
 * line is printable and has the run's secrets masked.
 */
function pullDisplay(stderr, options = {}) {
    const bars = stderr.isTTY ? progressBars(stderr) : undefined;
    let live = bars !== undefined;
    const plain = toStream(stderr);
    const log = lineLogger((line) => (live ? bars.log(line) : plain(line)), options.secrets ?? []);
    return {
        log,
        onProgress: bars?.listener ?? progressLines((line) => log.info(line), options.plainIntervalMs ?? PLAIN_PROGRESS_MS),
        onModel: (0,model_log/* modelLog */.qi)(log, { paths: options.paths ?? true }),
        close: () => {
            bars?.stop();
            live = false;
        },
    };
}
/** Log lines for stderr, secrets masked; `write` takes one line without its newline. */
function lineLogger(write, secrets) {
    const mask = (m) => secrets.reduce((text, s) => text.split(s).join('***'), m);
    const out = (m) => write((0,report_text/* printable */.g$)(mask(m)));
    return {
        debug: () => undefined,
        info: out,
        warning: (m) => out(`warning: ${m}`),
        error: (m) => out(`error: ${m}`),
        group: async (title, fn) => {
            out(title);
            return fn();
        },
    };
}
const toStream = (stream) => (line) => void stream.write(`${line}\n`);


/***/ }),

/***/ 9550:
/***/ ((module, __webpack_exports__, __webpack_require__) => {

__webpack_require__.a(module, async (__webpack_handle_async_dependencies__, __webpack_async_result__) => { try {
__webpack_require__.r(__webpack_exports__);
/* harmony import */ var _main_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(7402);

// The CLI proper, loaded by src/cli.ts once Node is new enough: the only place that touches
// argv, signals and the exit code.
// SIGTERM (what CI systems and `timeout` send on cancel) stops like Ctrl-C: downloads end,
// their progress and staging leases are left in order for the next run.
const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
        // runCli says "stopping: …" where it stays visible (above the progress bars, if any).
        controller.abort(new Error('interrupted'));
        process.once(signal, () => {
            // The progress bars hide the cursor; a forced quit skips their cleanup, so show it here.
            if (process.stderr.isTTY)
                process.stderr.write('\u001b[?25h\n');
            process.exit(signal === 'SIGINT' ? 130 : 143);
        });
    });
}
// `model-pull verify | head -1`: the reader has gone, so there is nobody left to tell anything;
// end quietly instead of crashing on the unhandled EPIPE (and hashing on for nobody).
for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error) => {
        if (error.code !== 'EPIPE')
            throw error;
        process.exit(process.exitCode ?? 0);
    });
}
process.exitCode = await (0,_main_js__WEBPACK_IMPORTED_MODULE_0__/* .runCli */ .a)(process.argv.slice(2), {
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    signal: controller.signal,
});

__webpack_async_result__();
} catch(e) { __webpack_async_result__(e); } }, 1);

/***/ }),

/***/ 7402:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  a: () => (/* binding */ runCli)
});

// UNUSED EXPORTS: MAX_LINES_FILE_BYTES

// EXTERNAL MODULE: external "node:path"
var external_node_path_ = __webpack_require__(6760);
// EXTERNAL MODULE: ./src/cache/client.ts
var client = __webpack_require__(9439);
// EXTERNAL MODULE: ./src/clock.ts
var clock = __webpack_require__(9373);
// EXTERNAL MODULE: ./src/constants.ts
var constants = __webpack_require__(7242);
// EXTERNAL MODULE: ./src/download/safe-fs.ts
var safe_fs = __webpack_require__(5039);
// EXTERNAL MODULE: ./src/errors.ts
var errors = __webpack_require__(3916);
// EXTERNAL MODULE: ./src/http/client.ts + 1 modules
var http_client = __webpack_require__(4530);
// EXTERNAL MODULE: ./src/http/retry.ts
var http_retry = __webpack_require__(8902);
// EXTERNAL MODULE: ./src/lockfile.ts
var lockfile = __webpack_require__(9746);
// EXTERNAL MODULE: ./src/pull.ts + 15 modules
var pull = __webpack_require__(7733);
// EXTERNAL MODULE: ./src/refs/index.ts
var src_refs = __webpack_require__(8674);
// EXTERNAL MODULE: ./src/refs/line.ts
var line = __webpack_require__(9534);
// EXTERNAL MODULE: ./src/registry/client.ts + 1 modules
var registry_client = __webpack_require__(8178);
// EXTERNAL MODULE: ./src/registry/prefix.ts
var registry_prefix = __webpack_require__(8911);
// EXTERNAL MODULE: external "node:fs"
var external_node_fs_ = __webpack_require__(3024);
// EXTERNAL MODULE: external "node:stream"
var external_node_stream_ = __webpack_require__(7075);
// EXTERNAL MODULE: ./src/digest.ts
var src_digest = __webpack_require__(2187);
// EXTERNAL MODULE: external "node:crypto"
var external_node_crypto_ = __webpack_require__(7598);
// EXTERNAL MODULE: external "node:fs/promises"
var promises_ = __webpack_require__(1455);
// EXTERNAL MODULE: ./src/atomic-write.ts
var atomic_write = __webpack_require__(8364);
// EXTERNAL MODULE: ./src/fs-dirs.ts
var fs_dirs = __webpack_require__(3341);
;// CONCATENATED MODULE: ./src/registry/uploads.ts






const FORMAT = 'model-pull/upload@1';
/** A record is a few hundred bytes; anything larger was not written by us. */
const MAX_RECORD = 16 * 1024;
/** Records as small files in `dir` (mode 0600: an upload URL lets anyone with it add bytes). */
function uploadRecords(dir) {
    const pathOf = (origin, repository, hex) => (0,external_node_path_.join)(dir, `${(0,external_node_crypto_.createHash)('sha256').update(`${origin}\n${repository}\n${hex}`).digest('hex')}.json`);
    return {
        async get(origin, repository, hex) {
            const bytes = await (0,safe_fs/* readSmall */.o5)(pathOf(origin, repository, hex), MAX_RECORD);
            if (!bytes)
                return undefined;
            let doc;
            try {
                doc = JSON.parse(bytes.toString('utf8'));
            }
            catch {
                return undefined;
            }
            const same = doc.format === FORMAT && doc.origin === origin && doc.repository === repository && doc.hex === hex;
            // Another process may have left anything here: only an upload on the same origin is asked.
            if (!same || typeof doc.location !== 'string')
                return undefined;
            try {
                return new URL(doc.location).origin === origin ? doc.location : undefined;
            }
            catch {
                return undefined;
            }
        },
        async set(origin, repository, hex, location) {
            await (0,fs_dirs/* ensureDirs */.J)(dir);
            const record = { format: FORMAT, origin, repository, hex, location };
            await (0,atomic_write/* writeFileAtomic */.Zf)(pathOf(origin, repository, hex), `${JSON.stringify(record)}\n`, { mode: 0o600 });
        },
        async forget(origin, repository, hex) {
            await (0,promises_.rm)(pathOf(origin, repository, hex), { force: true });
        },
    };
}
/** No records: every upload starts afresh (tests, or a run without a state folder). */
const noUploadRecords = {
    get: async () => undefined,
    set: async () => undefined,
    forget: async () => undefined,
};

;// CONCATENATED MODULE: ./src/registry/push.ts







const MiB = 1024 * 1024;
/** Bytes [start, end) of a blob as a fresh stream. */
function bytesOf(blob, start = 0, end = blob.size) {
    if (end <= start)
        return external_node_stream_.Readable.from([]);
    if (blob.bytes)
        return external_node_stream_.Readable.from([Buffer.from(blob.bytes.subarray(start, end))]);
    return (0,external_node_fs_.createReadStream)(blob.path, { start, end: end - 1 });
}
const DEFAULT_PUSH_TUNING = {
    monolithicMax: 32 * MiB,
    chunkSize: 64 * MiB,
    uploads: noUploadRecords,
};
/**
 * A registry's answer to the digest given at the end of an upload: the bytes it received hash
 * to something else (the file changed under us). Resending would not help.
 */
const DIGEST_REFUSED = /DIGEST_INVALID|BLOB_UPLOAD_INVALID/;
/** Waiting for the answer to the last byte of an upload: the registry may hash the whole blob. */
const FINISH_TIMEOUT_MS = 10 * 60_000;
/**
 * Pushes one blob (docs/registries.md, "Pushing"): nothing when the registry has it (`HEAD`);
 * a cross-repository mount when `mountFrom` names a repository of the same registry that holds
 * it; else an upload, resumed where a previous run left it (the registry says how many bytes
 * it holds), in one `PUT` for small blobs or in `PATCH` chunks that can resume.
 */
async function pushBlob(session, call, blob, tuning, mountFrom) {
    if (await blobExists(session, call, blob))
        return { hex: blob.hex, outcome: 'present', sentBytes: 0 };
    const upload = new BlobUpload(session, call, blob, tuning);
    const resumed = await upload.resume();
    if (!resumed) {
        const mounted = await upload.start(mountFrom);
        if (mounted)
            return { hex: blob.hex, outcome: 'mounted', sentBytes: 0 };
    }
    await upload.send();
    return { hex: blob.hex, outcome: 'uploaded', sentBytes: upload.sent };
}
/**
 * Pushes an artifact: several blobs at once (each skipped, mounted or uploaded), and only once
 * every blob is there, the manifest under each reference, so a tag never names a blob the
 * registry lacks. `mountFrom` names, per blob, a repository of the same registry that holds it.
 */
async function pushArtifact(session, call, artifact, tuning, mountFrom = () => undefined) {
    const unique = [...new Map(artifact.blobs.map((b) => [b.hex, b])).values()];
    const blobs = new Array(unique.length);
    let next = 0;
    let failed = false;
    const worker = async () => {
        while (next < unique.length && !failed) {
            const i = next++;
            const blob = unique[i];
            try {
                blobs[i] = await pushBlob(session, call, blob, tuning, mountFrom(blob.hex));
            }
            catch (error) {
                failed = true;
                throw error;
            }
        }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(tuning.concurrency, unique.length)) }, worker));
    let digest = (0,src_digest/* sha256Hex */.fg)(artifact.manifest.bytes);
    for (const reference of artifact.references)
        digest = await putManifest(session, call, reference, artifact.manifest, `${artifact.name} (${reference})`);
    return { blobs, digest };
}
/**
 * Puts a manifest under a tag or digest, exactly these bytes (its digest is theirs); returns
 * the digest the registry reports, which differs only where a registry rewrites manifests.
 */
async function putManifest(session, call, reference, manifest, name) {
    const hex = (0,src_digest/* sha256Hex */.fg)(manifest.bytes);
    return (0,http_retry/* withRetries */.LH)(async () => {
        const answer = await session.request(call, `manifests/${reference}`, {
            method: 'PUT',
            headers: { 'content-type': manifest.mediaType, 'content-length': String(manifest.bytes.length) },
            body: () => manifest.bytes,
        });
        if (answer.status !== 201 && answer.status !== 200)
            throw await (0,http_client/* statusError */.$C)(answer, `${session.registry.host} for the manifest of ${name}`);
        (0,http_client/* discardBody */.LL)(answer.body);
        const reported = /^sha256:([0-9a-f]{64})$/.exec(String(answer.headers['docker-content-digest'] ?? ''));
        return reported ? reported[1] : hex;
    }, call.retry, retryOptions(call, `the manifest of ${name}`));
}
/** `HEAD blobs/<digest>`: 200 (or a redirect to where it is stored) means the registry has it. */
async function blobExists(session, call, blob) {
    return (0,http_retry/* withRetries */.LH)(async () => {
        const answer = await session.request(call, `blobs/sha256:${blob.hex}`, {
            method: 'HEAD',
            maxRedirects: 0,
        });
        (0,http_client/* discardBody */.LL)(answer.body);
        if (answer.status === 404)
            return false;
        if (answer.status === 200 || (answer.status >= 300 && answer.status < 400)) {
            const length = Number(answer.headers['content-length']);
            return answer.status !== 200 || !Number.isFinite(length) || length === blob.size;
        }
        throw await (0,http_client/* statusError */.$C)(answer, `${session.registry.host} for ${blob.label}`);
    }, call.retry, retryOptions(call, blob.label));
}
function retryOptions(call, subject) {
    return { clock: call.clock, subject, ...(call.signal ? { signal: call.signal } : {}) };
}
/** The upload of one blob: its URL (which the registry may change at every step) and offset. */
class BlobUpload {
    session;
    call;
    blob;
    tuning;
    location = '';
    offset = 0;
    chunkSize;
    /** Uploads the registry dropped under us since it last took a chunk (see dropped). */
    restarts = 0;
    sent = 0;
    constructor(session, call, blob, tuning) {
        this.session = session;
        this.call = call;
        this.blob = blob;
        this.tuning = tuning;
        this.chunkSize = tuning.chunkSize;
    }
    get key() {
        return [this.session.registry.origin, this.session.repository, this.blob.hex];
    }
    /** Picks up the upload a previous run recorded, when the registry still knows it. */
    async resume() {
        const recorded = await this.tuning.uploads.get(...this.key);
        if (!recorded)
            return false;
        const status = await this.status(recorded).catch((error) => {
            if ((0,errors/* isModelPullError */.pq)(error, 'ERR_ABORTED'))
                throw error;
            return undefined;
        });
        if (!status || status.offset === 0 || status.offset > this.blob.size) {
            await this.tuning.uploads.forget(...this.key);
            return false;
        }
        this.location = status.location;
        this.offset = status.offset;
        this.call.log.info(`${this.blob.label}: resuming the upload to ${this.session.registry.host} at byte ${status.offset} of ${this.blob.size}`);
        return true;
    }
    /**
     * Opens an upload (`POST blobs/uploads/`), or mounts the blob from `mountFrom`: 201 means
     * mounted, 202 that the registry opened an upload instead (it may not share across
     * repositories, or the token may not read the other one).
     */
    async start(mountFrom) {
        const query = mountFrom ? `?mount=sha256:${this.blob.hex}&from=${encodeURIComponent(mountFrom)}` : '';
        const answer = await (0,http_retry/* withRetries */.LH)(async () => {
            const response = await this.session.request(this.call, `blobs/uploads/${query}`, {
                method: 'POST',
                headers: { 'content-length': '0' },
            });
            if (response.status !== 201 && response.status !== 202)
                throw await (0,http_client/* statusError */.$C)(response, `${this.session.registry.host} opening an upload of ${this.blob.label}`);
            (0,http_client/* discardBody */.LL)(response.body);
            return response;
        }, this.call.retry, retryOptions(this.call, this.blob.label));
        if (answer.status === 201)
            return true;
        this.location = locationOf(answer, this.blob.label);
        this.offset = 0;
        const min = Number(answer.headers['oci-chunk-min-length']);
        if (Number.isSafeInteger(min) && min > this.chunkSize)
            this.chunkSize = min;
        if (this.blob.size > this.tuning.monolithicMax)
            await this.tuning.uploads.set(...this.key, this.location);
        return false;
    }
    /** Sends what the registry lacks, then closes the upload with the digest. */
    async send() {
        if (this.offset === 0 && this.blob.size <= this.tuning.monolithicMax) {
            await this.whole();
        }
        else {
            // Until the closing PUT commits (it says false when the registry dropped the upload).
            do
                await this.chunks();
            while (!(await this.finish()));
        }
        await this.tuning.uploads.forget(...this.key);
    }
    /** One `PUT ?digest=` with the whole blob; a failed attempt opens a fresh upload. */
    async whole() {
        await (0,http_retry/* withRetries */.LH)(async () => {
            if (!this.location)
                await this.start();
            try {
                await this.close(this.blob.size, () => bytesOf(this.blob));
                this.sent += this.blob.size;
                this.tuning.onBytes?.(this.blob.size);
            }
            catch (error) {
                this.location = '';
                throw error;
            }
        }, this.call.retry, retryOptions(this.call, this.blob.label));
    }
    /**
     * `PATCH` chunks from the offset to the end. After a failure the registry is asked how much
     * it holds (`GET` the upload) and the next chunk starts there; failures in a row are bounded
     * by the retry policy, and any progress restores the budget.
     */
    async chunks() {
        let failures = 0;
        while (this.offset < this.blob.size) {
            const start = this.offset;
            try {
                await this.patch(start, Math.min(this.blob.size, start + this.chunkSize));
                failures = 0;
            }
            catch (error) {
                if (this.call.signal?.aborted)
                    throw error;
                failures = this.offset > start ? 1 : failures + 1;
                const plan = (0,http_retry/* nextRetry */.GL)(error, failures, this.call.retry);
                if (!plan)
                    throw error;
                const host = this.session.registry.host;
                this.call.retry.onRetry?.((0,http_retry/* retryEvent */.N7)(error, failures, plan, { host, subject: this.blob.label }));
                await this.call.clock.sleep(plan.delayMs, this.call.signal);
                await this.resync();
            }
        }
    }
    async patch(start, end) {
        const answer = await this.session.request(this.call, this.location, {
            method: 'PATCH',
            headers: {
                'content-type': 'application/octet-stream',
                'content-length': String(end - start),
                'content-range': `${start}-${end - 1}`,
            },
            body: () => bytesOf(this.blob, start, end),
        });
        if (answer.status === 416) {
            // The registry holds a different number of bytes than we thought: ask it, go on from
            // there; when it names this very offset again (its `0-0` is ambiguous), start afresh.
            (0,http_client/* discardBody */.LL)(answer.body);
            await this.resync();
            if (this.offset === start)
                await this.start();
            return;
        }
        if (answer.status === 404) {
            await this.dropped(await (0,http_client/* statusError */.$C)(answer, `${this.session.registry.host} for ${this.blob.label}`));
            return;
        }
        if (answer.status !== 202 && answer.status !== 204)
            throw await (0,http_client/* statusError */.$C)(answer, `${this.session.registry.host} for ${this.blob.label}`);
        (0,http_client/* discardBody */.LL)(answer.body);
        const held = heldBytes(answer.headers.range);
        this.location = locationOf(answer, this.blob.label, this.location);
        const next = held ?? end;
        if (next < start || next > end) {
            throw new errors/* ModelPullError */.Vy('ERR_BAD_RANGE', `${this.session.registry.host} reports ${next} bytes of ${this.blob.label} after a chunk ending at ${end}`);
        }
        this.sent += next - start;
        this.tuning.onBytes?.(next - start);
        this.offset = next;
        this.restarts = 0;
        await this.tuning.uploads.set(...this.key, this.location);
    }
    /** The registry's own count of the upload's bytes; an upload it no longer knows starts over. */
    async resync() {
        const status = await this.status(this.location);
        if (status) {
            // Bytes of a cut chunk that the registry kept count as sent.
            if (status.offset > this.offset) {
                this.sent += status.offset - this.offset;
                this.tuning.onBytes?.(status.offset - this.offset);
            }
            this.location = status.location;
            this.offset = status.offset;
            return;
        }
        await this.dropped();
    }
    /**
     * The registry no longer knows the upload (404 to its status, a chunk or the closing PUT):
     * a new one starts from byte 0. docker-registry cancels an upload whose bytes do not match the
     * count in the URL we hold, as when a cut chunk's bytes land after its status said otherwise.
     * Bounded by the retry policy between accepted chunks, so a registry that refuses every upload
     * fails with its answer.
     */
    async dropped(answer) {
        if (++this.restarts > this.call.retry.retries) {
            throw (answer ??
                new errors/* ModelPullError */.Vy('ERR_HTTP_STATUS', `${this.session.registry.host} dropped the upload of ${this.blob.label} ${this.restarts} times in a row`, { host: this.session.registry.host }));
        }
        this.call.log.info(`${this.blob.label}: the registry dropped the upload; starting it again`);
        await this.start();
    }
    /** `GET` an upload: `Range: 0-<last byte held>`; undefined when the registry does not know it. */
    async status(location) {
        return (0,http_retry/* withRetries */.LH)(async () => {
            const answer = await this.session.request(this.call, location, { maxRedirects: 0 });
            (0,http_client/* discardBody */.LL)(answer.body);
            if (answer.status === 404)
                return undefined;
            if (answer.status !== 204 && answer.status !== 200)
                throw await (0,http_client/* statusError */.$C)(answer, `${this.session.registry.host} for the upload of ${this.blob.label}`);
            // `0-0` is said for both none and one byte: counted as none, the byte is sent again.
            const held = heldBytes(answer.headers.range);
            return {
                location: locationOf(answer, this.blob.label, location),
                offset: held === 1 ? 0 : (held ?? 0),
            };
        }, this.call.retry, retryOptions(this.call, this.blob.label));
    }
    /**
     * Every byte is there: `PUT ?digest=` with no body closes the upload. False when the registry
     * no longer knows it (404): a new one was started, its chunks are sent again.
     */
    async finish() {
        try {
            await (0,http_retry/* withRetries */.LH)(() => this.close(0, () => ''), this.call.retry, retryOptions(this.call, this.blob.label));
            return true;
        }
        catch (error) {
            if (!(0,errors/* isModelPullError */.pq)(error, 'ERR_HTTP_STATUS') || error.status !== 404)
                throw error;
            await this.dropped(error);
            return false;
        }
    }
    /** `PUT <upload>?digest=sha256:…` with the last bytes (or none); 201 means committed. */
    async close(length, body) {
        const url = new URL(this.location);
        url.searchParams.set('digest', `sha256:${this.blob.hex}`);
        const answer = await this.session.request(this.call, url.toString(), {
            method: 'PUT',
            headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
            body,
            answerTimeoutMs: FINISH_TIMEOUT_MS,
        });
        if (answer.status === 201 || answer.status === 204) {
            (0,http_client/* discardBody */.LL)(answer.body);
            const reported = /^sha256:([0-9a-f]{64})$/.exec(String(answer.headers['docker-content-digest'] ?? ''));
            if (reported && reported[1] !== this.blob.hex)
                throw this.refused(`it stored sha256:${reported[1]}`);
            return;
        }
        const error = await (0,http_client/* statusError */.$C)(answer, `${this.session.registry.host} for ${this.blob.label}`);
        if (answer.status === 400 && DIGEST_REFUSED.test(error.message)) {
            await this.tuning.uploads.forget(...this.key);
            throw this.refused('the bytes it received hash to another digest');
        }
        throw error;
    }
    refused(why) {
        return new errors/* ModelPullError */.Vy('ERR_DIGEST_MISMATCH', `${this.session.registry.host} refused ${this.blob.label} (sha256:${this.blob.hex}): ${why}; was ${this.blob.path} changed?`);
    }
}
/** The upload URL a registry answered with (relative to the request, as the spec allows). */
function locationOf(answer, label, previous) {
    const location = answer.headers.location;
    if (typeof location !== 'string' || location === '') {
        if (previous)
            return previous;
        throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `${new URL(answer.url).host} opened an upload of ${label} without a Location (${(0,errors/* redactUrl */.BO)(answer.url)})`);
    }
    return new URL(location, answer.url).toString();
}
/** `Range: 0-<last>` → bytes held (`last + 1`); undefined when absent or malformed. */
function heldBytes(header) {
    const m = /^(?:bytes=)?0-(\d+)$/.exec(String(header ?? '').trim());
    return m ? Number(m[1]) + 1 : undefined;
}

// EXTERNAL MODULE: ./src/report/format.ts
var format = __webpack_require__(2011);
// EXTERNAL MODULE: ./src/sources/descriptor.ts
var descriptor = __webpack_require__(6541);
;// CONCATENATED MODULE: ./src/mirror/run.ts













/**
 * `model-pull mirror --to PREFIX` and `mirror-to`: pull every line as always (verified, cached),
 * then push each model under the prefix (docs/scale-out.md). Where each line goes is settled
 * before anything is pulled, so a line no source can push, or two origins meeting in one
 * repository, stop the run before any download.
 */
async function mirror(settings, deps) {
    const prefix = settings.mirrorTo;
    if (!prefix)
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', 'mirror needs a registry prefix to push to');
    (0,descriptor/* checkSourceList */.EA)(deps.sources);
    const refs = (0,src_refs/* parseLines */.L)(settings.lines, deps.sources);
    const targets = mirrorTargets(refs, deps.sources, prefix);
    const report = await (0,pull/* pull */.a)(settings, deps);
    const pushes = await pushModels(report.models, refs, targets, settings, deps);
    return { ...report, pushes, ok: report.ok && pushes.every((p) => !p.error) };
}
/** Each line's repository under the prefix; refuses lines that cannot go and collisions. */
function mirrorTargets(refs, sources, prefix) {
    const byRepository = new Map();
    return refs.map((ref) => {
        const mirror = descriptorOf(sources, ref).mirror;
        if (!mirror)
            throw (0,line/* badLine */.mV)(ref.line, `${ref.kind} models cannot be mirrored to a registry`);
        const target = mirror.target(ref.ref, ref.line, prefix);
        const first = byRepository.get(target.repository);
        if (first && first.origin !== target.origin) {
            throw (0,line/* badLine */.mV)(ref.line, `it would go to ${prefix.host}/${target.repository}, where "${first.line}" goes (${first.origin} and ${target.origin} would mix their tags there); mirror them to different prefixes`);
        }
        byRepository.set(target.repository, first ?? { origin: target.origin, line: ref.line });
        return target;
    });
}
function descriptorOf(sources, ref) {
    const source = sources.find((s) => s.kind === ref.kind);
    if (!source)
        throw new Error(`no source of kind ${ref.kind} for "${ref.line}"`);
    return source;
}
/**
 * Pushes every pulled model, one after another (each one's blobs several at once). A blob
 * another model of this run already put in the registry is mounted from there, not sent again.
 */
async function pushModels(models, refs, targets, settings, deps) {
    const prefix = settings.mirrorTo;
    const http = new http_client/* HttpClient */.Qq(settings.http);
    const registry = new registry_client/* RegistryClient */.b((0,registry_client/* registryOptions */._)(settings));
    const onRetry = deps.onRetry ?? ((event) => deps.log.info((0,http_retry/* describeRetry */.eV)(event)));
    const call = {
        http,
        retry: { ...settings.retry, onRetry },
        log: deps.log,
        clock: deps.clock ?? clock/* systemClock */.m,
        ...(deps.signal ? { signal: deps.signal } : {}),
    };
    const tuning = {
        ...DEFAULT_PUSH_TUNING,
        uploads: uploadRecords(settings.uploadsDir),
        concurrency: settings.concurrency,
    };
    const holders = new Map();
    const pushes = [];
    try {
        for (const [i, model] of models.entries()) {
            const ref = refs[i];
            const target = targets[i];
            if (!model.output || !model.identity) {
                // Said once where it is shown: "not pushed: the pull failed" (pushFailureLine, the summary).
                pushes.push({ line: ref.line, names: [], error: new Error('the pull failed') });
                continue;
            }
            try {
                const mirror = descriptorOf(deps.sources, ref).mirror;
                const artifact = await mirror.artifact(ref.ref, { identity: model.identity, output: model.output }, target, settings);
                const session = await registry.resolve(call, {
                    host: prefix.host,
                    ...(prefix.scheme ? { scheme: prefix.scheme } : {}),
                    repository: target.repository,
                }, ['pull', 'push']);
                const pushed = await pushArtifact(session, call, artifact, tuning, (hex) => holders.get(hex));
                for (const blob of artifact.blobs)
                    if (!holders.has(blob.hex))
                        holders.set(blob.hex, target.repository);
                const names = artifact.references.map((r) => (0,registry_prefix/* nameUnder */.c9)(prefix, target.repository, r));
                deps.log.info(`${ref.line}: pushed ${names.join(', ')} (sha256:${pushed.digest}): ${blobSummary(pushed)}`);
                pushes.push({ line: ref.line, names, digest: `sha256:${pushed.digest}`, blobs: pushed.blobs });
            }
            catch (error) {
                const reason = error instanceof Error ? error : new Error((0,errors/* describeError */.Uc)(error));
                pushes.push({ line: ref.line, names: [], error: reason });
            }
        }
    }
    finally {
        await http.close();
    }
    return pushes;
}
/** `2 blobs uploaded (1.2 GiB), 1 already there, 1 mounted`. */
function blobSummary(pushed) {
    const count = (outcome) => pushed.blobs.filter((b) => b.outcome === outcome).length;
    const sent = pushed.blobs.reduce((n, b) => n + b.sentBytes, 0);
    const parts = [
        `${count('uploaded')} blobs uploaded (${(0,format/* formatBytes */.z3)(sent)})`,
        `${count('present')} already there`,
    ];
    if (count('mounted'))
        parts.push(`${count('mounted')} mounted`);
    return parts.join(', ');
}

// EXTERNAL MODULE: ./src/report/model-log.ts
var model_log = __webpack_require__(7400);
;// CONCATENATED MODULE: ./src/report/summary.ts



/**
 * The `models` output: one object per line, in input order (README.md, "Outputs"), so index i is
 * always line i; a failed line has only `ref`, `source` and `error`.
 */
function modelsJson(report) {
    return report.models.map((m) => m.output ?? { ref: m.line, source: m.source, error: (0,errors/* describeError */.Uc)(m.error ?? 'failed') });
}
/**
 * The `paths` output: each line as written (trimmed, comment removed) → its model's `path`, so a
 * step can write `fromJSON(steps.m.outputs.paths)['hf:o/r']`; a line that failed has none.
 */
function pathsJson(report) {
    const paths = {};
    for (const m of report.models)
        if (m.output)
            paths[m.line] = m.output.path;
    return paths;
}
/**
 * The `downloaded-from` output: each line that downloaded bytes in this run → the hosts that
 * served them and how many bytes each (a registry-mirror, the origin, the Hub's CDN), so a step
 * can check that a warm mirror served everything.
 */
function downloadedFromJson(report) {
    const from = {};
    for (const m of report.models)
        if (m.from)
            from[m.line] = m.from;
    return from;
}
/** Summary lines for `mirror-to`: where each line went, and what its push sent. */
function pushLines(pushes) {
    if (pushes.length === 0)
        return [];
    const items = pushes.map((p) => {
        if (p.error)
            return `- ${codeSpan(p.line)}: not pushed: ${codeSpan(describeError(p.error))}`;
        const blobs = p.blobs ?? [];
        const sent = blobs.reduce((n, b) => n + b.sentBytes, 0);
        const uploaded = blobs.filter((b) => b.outcome === 'uploaded').length;
        return `- ${codeSpan(p.line)} → ${p.names.map(codeSpan).join(', ')}: ${uploaded} of ${blobs.length} blobs uploaded (${formatBytes(sent)})`;
    });
    return ['', '**Pushed (mirror-to)**', '', ...items];
}
/** Summary lines: each host that served bytes, how many, and for which lines. */
function hostLines(report) {
    const hosts = new Map();
    for (const m of report.models) {
        for (const [host, bytes] of Object.entries(m.from ?? {})) {
            const entry = hosts.get(host) ?? { bytes: 0, lines: [] };
            entry.bytes += bytes;
            entry.lines.push(codeSpan(m.line));
            hosts.set(host, entry);
        }
    }
    if (hosts.size === 0)
        return [];
    const items = [...hosts].map(([host, { bytes, lines }]) => `- ${codeSpan(host)}: ${formatBytes(bytes)} (${lines.join(', ')})`);
    return ['', '**Downloaded from**', '', ...items];
}
/**
 * A Markdown job summary: a row per model with source, size, cache state, bytes, time,
 * throughput and its cache entry's key; then each failure with the fix it suggests. Lines and
 * errors quote what users and servers wrote, so they go in code spans: never markup.
 */
function summaryMarkdown(report, pushes = []) {
    const rows = report.models.map((m) => {
        const o = m.output;
        const key = m.key ? cellCodeSpan(m.key) : '–';
        const rate = m.downloadedBytes > 0 && m.durationMs > 0 ? formatRate((m.downloadedBytes * 1000) / m.durationMs) : '–';
        if (!o)
            return `| ${cellCodeSpan(m.line)} | – | – | failed | ${formatBytes(m.downloadedBytes)} | – | – | ${key} |`;
        return `| ${cellCodeSpan(m.line)} | ${o.source} | ${formatBytes(o.size)} | ${o.cache} | ${formatBytes(m.downloadedBytes)} | ${formatDuration(m.durationMs)} | ${rate} | ${key} |`;
    });
    const failures = report.models.flatMap((m) => (m.error ? failureItem(m.error, m.line) : []));
    return [
        '### model-pull',
        '',
        '| model | source | size | cache | downloaded | time | throughput | cache key |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |',
        ...rows,
        '',
        `Downloaded ${formatBytes(report.downloadedBytes)}, restored ${formatBytes(report.cachedBytes)} from the Actions cache.`,
        ...hostLines(report),
        ...pushLines(pushes),
        ...(failures.length ? ['', '**Failed**', '', ...failures] : []),
        '',
    ].join('\n');
}
/** The summary of a run that stopped before any model was pulled (a frozen lock that lacks lines…). */
function stoppedMarkdown(error) {
    return ['### model-pull', '', '**Failed before any download**', '', ...failureItem(error), ''].join('\n');
}
/** A list item: what went wrong (for a line, when given), then the fix the error suggests. */
function failureItem(error, line) {
    const reason = isModelPullError(error) ? error.reason : describeError(error);
    const fix = isModelPullError(error) ? error.fix : undefined;
    return [
        line === undefined ? `- ${codeSpan(reason)}` : `- ${codeSpan(line)}: ${codeSpan(reason)}`,
        ...(fix ? [`  - **Fix:** ${codeSpan(fix)}`] : []),
    ];
}

// EXTERNAL MODULE: ./src/resolve.ts
var resolve = __webpack_require__(1259);
// EXTERNAL MODULE: ./src/settings/settings.ts + 1 modules
var settings = __webpack_require__(3756);
// EXTERNAL MODULE: ./src/sources/index.ts + 44 modules
var src_sources = __webpack_require__(578);
// EXTERNAL MODULE: external "node:util"
var external_node_util_ = __webpack_require__(7975);
;// CONCATENATED MODULE: ./src/cli/args.ts





/** Flags shared with the action's inputs (same names, same defaults, same validation). */
const SETTING_FLAGS = [
    constants/* Inputs */.G0.OllamaModels,
    constants/* Inputs */.G0.HfCache,
    constants/* Inputs */.G0.FilesDir,
    constants/* Inputs */.G0.HfEndpoint,
    constants/* Inputs */.G0.HfToken,
    constants/* Inputs */.G0.Concurrency,
    constants/* Inputs */.G0.Connections,
    constants/* Inputs */.G0.Verify,
    constants/* Inputs */.G0.CaCert,
    constants/* Inputs */.G0.Lockfile,
    constants/* Inputs */.G0.StallTimeout,
    constants/* Inputs */.G0.Retries,
    constants/* Inputs */.G0.RegistryHost,
    constants/* Inputs */.G0.RegistryUsername,
    constants/* Inputs */.G0.RegistryPassword,
    constants/* Inputs */.G0.AllowedRealmHosts,
    constants/* Inputs */.G0.RegistryMirror,
    constants/* Inputs */.G0.HfOciMirror,
];
/** Flags whose value is a count or seconds: a value that is not digits is refused at once. */
const NUMBER_FLAGS = new Set([
    constants/* Inputs */.G0.Concurrency,
    constants/* Inputs */.G0.Connections,
    constants/* Inputs */.G0.StallTimeout,
    constants/* Inputs */.G0.Retries,
]);
/** What `lock` reads: it resolves lines (stores answer pinned lines offline) and writes no model. */
const LOCK_UNUSED = new Set([
    constants/* Inputs */.G0.FilesDir,
    constants/* Inputs */.G0.Concurrency,
    constants/* Inputs */.G0.Connections,
    constants/* Inputs */.G0.Verify,
]);
const stringFlags = (names) => Object.fromEntries(names.map((name) => [name, { type: 'string' }]));
const HELP_FLAG = { help: { type: 'boolean', short: 'h' } };
/**
 * Each command accepts only the flags it uses, so a flag given to the wrong command is a usage
 * error instead of being silently ignored. `pull` and `lock` also take the sources' own options.
 */
function commandFlags(sources) {
    const pullFlags = {
        ...stringFlags(SETTING_FLAGS),
        ...stringFlags((0,descriptor/* sourceOptions */.k0)(sources).map((o) => o.name)),
        insecure: { type: 'boolean' },
        file: { type: 'string', short: 'f' },
        ...HELP_FLAG,
    };
    return {
        pull: { ...pullFlags, [constants/* Inputs */.G0.LockMode]: { type: 'string' }, json: { type: 'boolean' } },
        lock: Object.fromEntries(Object.entries(pullFlags).filter(([name]) => !LOCK_UNUSED.has(name))),
        mirror: { ...pullFlags, to: { type: 'string' }, json: { type: 'boolean' } },
        verify: {
            ...stringFlags([constants/* Inputs */.G0.OllamaModels, constants/* Inputs */.G0.HfCache, constants/* Inputs */.G0.FilesDir]),
            ...stringFlags((0,descriptor/* sourceOptions */.k0)(sources).map((o) => o.name)),
            json: { type: 'boolean' },
            ...HELP_FLAG,
        },
        demo: { keep: { type: 'boolean' }, ...HELP_FLAG },
    };
}
/** The flags of the CLI as shipped (the default sources). */
const COMMAND_FLAGS = commandFlags(src_sources/* DEFAULT_SOURCES */.h);
/** Commands whose positionals are model lines; the others take none. */
const TAKES_LINES = new Set(['pull', 'lock', 'mirror']);
/** Parses one command's arguments; every problem is an ERR_BAD_INPUT (exit 2) on one line. */
function parseCommandArgs(command, args, sources = src_sources/* DEFAULT_SOURCES */.h) {
    const options = commandFlags(sources)[command] ?? HELP_FLAG;
    let parsed;
    try {
        parsed = (0,external_node_util_.parseArgs)({ args: [...args], options, allowPositionals: true, strict: true });
    }
    catch (error) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', parseProblem(command, error));
    }
    for (const [name, value] of Object.entries(parsed.values)) {
        // `pull --concurrency ollama:x` would otherwise take the line as the number and then
        // complain that no line was given.
        if (NUMBER_FLAGS.has(name) && typeof value === 'string' && !/^\s*\d+\s*$/.test(value)) {
            const line = (0,descriptor/* claimingSource */._u)(sources, value) ? ' (a model line? it needs a number first)' : '';
            throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `--${name} needs a number, got "${value}"${line}`);
        }
    }
    const positionals = parsed.positionals;
    if (!TAKES_LINES.has(command) && positionals.length > 0 && !parsed.values.help) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `takes no model lines, got "${positionals[0]}" (see model-pull ${command} --help)`);
    }
    // No option is declared `multiple`, so every value is a single string or boolean.
    return { values: parsed.values, lines: joinOptionWords(positionals, sources) };
}
/**
 * `model-pull pull https://host/f.gguf sha256=…` without quotes arrives as two words; a word
 * that is only `key=value` belongs to the line before it (a reference never looks like that).
 * So does a `key:value` word no source claims (`sha256:<hex>`, a slip for `sha256=`), so the
 * line's own error quotes it as typed and suggests the `=`.
 */
function joinOptionWords(words, sources = src_sources/* DEFAULT_SOURCES */.h) {
    const lines = [];
    for (const word of words) {
        const last = lines.length - 1;
        const option = /^[a-z0-9_-]+=/i.test(word) && !word.includes(':');
        const slip = /^[a-z0-9_-]+:[^/]/i.test(word) && !(0,descriptor/* claimingSource */._u)(sources, word);
        if (last >= 0 && (option || slip))
            lines[last] += ` ${word}`;
        else
            lines.push(word);
    }
    return lines;
}
/** node:util parseArgs errors, rewritten as one short line that points at the help. */
function parseProblem(command, error) {
    const code = error.code;
    const message = error instanceof Error ? error.message : String(error);
    const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
    const flag = quoted.split(' ')[0];
    const hint = `(see model-pull ${command} --help)`;
    switch (code) {
        case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
            return `unknown option ${flag} ${hint}`;
        case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
            return message.includes('does not take')
                ? `option ${flag} takes no value ${hint}`
                : `option ${flag} needs a value ${hint}`;
        default:
            return `${message.split('. ')[0]} ${hint}`;
    }
}

// EXTERNAL MODULE: ./src/cli/display.ts + 2 modules
var cli_display = __webpack_require__(3552);
;// CONCATENATED MODULE: ./src/sources/reference.ts
/**
 * What users read about the sources, written from their descriptors so that a new source is its
 * folder and one line in the list: the line forms in action.yml's `models` input, the sources'
 * own inputs in action.yml, their rows in the README's input and CLI option tables, and their
 * `--help` rows. `npm run build` rewrites action.yml and README.md with these
 * (scripts/sources-reference.ts); a test checks both are what it would write.
 */
/** What the flag's value is called: `--oci-dir DIR`. */
function valueName(option) {
    return option.type === 'path' ? 'DIR' : 'VALUE';
}
/** Where the value comes from when not given, in order: `$A, else ~/x` (`quote` wraps each). */
function defaultText(option, quote = (w) => w) {
    const words = [
        ...(option.env ?? []).map((name) => `$${name}`),
        ...(option.default ? [option.default] : []),
    ];
    return words.map(quote).join(', else ');
}
/** The option's row in `--help`: `  --oci-dir DIR           where … (~/.cache/model-pull/oci)`. */
function helpRow(option) {
    const from = defaultText(option);
    return `  --${`${option.name} ${valueName(option)}`.padEnd(22)}${option.help}${from ? ` (${from})` : ''}`;
}
const START = '  # The sources’ own inputs, written by `npm run build` from src/sources/*/index.ts: edit those.';
const END = '  # End of the sources’ inputs.';
/** One input of action.yml, as YAML: the description is a JSON string (a YAML double-quoted one). */
function actionInput(option) {
    const from = defaultText(option);
    const secret = option.type === 'secret' ? '; masked in logs' : '';
    const description = `${option.help}${from ? ` (default ${from})` : ''}${secret}`;
    return `  ${option.name}:\n    description: ${JSON.stringify(description)}\n    required: false`;
}
/** `Model lines: a, b or c. Blank lines and # comments are ignored.` */
function modelsDescription(sources) {
    const forms = sources.map((s) => s.usage);
    const listed = forms.length > 1 ? `${forms.slice(0, -1).join(', ')} or ${forms.at(-1)}` : (forms[0] ?? '');
    return `Model lines, one per line: ${listed}. Blank lines and # comments are ignored.`;
}
/**
 * action.yml with the `models` description and the sources' inputs written from `sources`. The
 * inputs go between the marker comments, which are added after `models` when absent.
 */
function writeActionYml(text, sources) {
    const models = /^( {2}models:\n {4}description: ).*$/m;
    if (!models.test(text))
        throw new Error('action.yml has no models input with a description line');
    let out = text.replace(models, (_all, head) => head + JSON.stringify(modelsDescription(sources)));
    const inputs = sources.flatMap((s) => s.options ?? []).map(actionInput);
    const block = [START, ...inputs, END].join('\n');
    const start = out.indexOf(`${START}\n`);
    const end = out.indexOf(`${END}\n`);
    if (start >= 0 && end > start)
        return `${out.slice(0, start)}${block}${out.slice(end + END.length)}`;
    // First run: after the models input (its description and required lines).
    out = out.replace(/^( {2}models:\n(?: {4}.*\n)+)/m, (all) => `${all}${block}\n`);
    return out;
}
/**
 * README.md with one row per source option in the input table (the one that lists `models`) and
 * in the CLI option table (the one with a `commands` column): an existing row of that option is
 * replaced where it stands, a new one goes at the table's end. Other rows are the README's own.
 */
function writeReadme(text, sources, commandsOf) {
    const options = sources.flatMap((s) => s.options ?? []);
    const code = (w) => `\`${w}\``;
    const cells = (...texts) => `|${texts.map((t) => (t ? ` ${t} ` : ' ')).join('|')}|`;
    const inputRow = (o) => cells(code(o.name), defaultText(o, code), o.help);
    const flagRow = (o) => cells(code(`--${o.name} ${valueName(o)}`), commandsOf(o.name).map(code).join(' '), defaultText(o, code), o.help);
    const lines = text.split('\n');
    fillTable(lines, '| input | default | meaning |', '| `models` |', options, inputRow, (o) => `| \`${o.name}\` |`);
    fillTable(lines, '| option | commands | default | meaning |', '', options, flagRow, (o) => `| \`--${o.name} `);
    return lines.join('\n');
}
/** Rewrites, in place, the first table under `header` that has a row starting with `having`. */
function fillTable(lines, header, having, options, row, rowStart) {
    for (let i = 0; i < lines.length; i++) {
        if (lines[i] !== header)
            continue;
        let end = i + 2;
        while (end < lines.length && lines[end].startsWith('|'))
            end++;
        const rows = lines.slice(i + 2, end);
        if (!rows.some((r) => r.startsWith(having)))
            continue;
        for (const option of options) {
            const at = rows.findIndex((r) => r.startsWith(rowStart(option)));
            if (at >= 0)
                rows[at] = row(option);
            else
                rows.push(row(option));
        }
        lines.splice(i + 2, end - i - 2, ...rows);
        return;
    }
    throw new Error(`README.md has no table "${header}"${having ? ` listing ${having}` : ''}`);
}

;// CONCATENATED MODULE: ./src/cli/help.ts




const LINES_PLACEHOLDER = '<lines>';
/** `Lines: a | b` wrapped under 100 columns, one alternative per source, in list order. */
function linesHelp(sources) {
    const rows = [`Lines: ${sources[0]?.usage ?? ''}`];
    for (const source of sources.slice(1)) {
        const last = rows.length - 1;
        if (`${rows[last]} | ${source.usage}`.length <= 100)
            rows[last] += ` | ${source.usage}`;
        else
            rows.push(`       | ${source.usage}`);
    }
    return rows.join('\n');
}
const COMMON_OPTIONS = `Options (environment defaults as in the action):
  --ollama-models DIR     Ollama store root ($OLLAMA_MODELS or ~/.ollama/models)
  --hf-cache DIR          Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)
  --files-dir DIR         where https:// files land (~/.cache/model-pull/files)
  --hf-endpoint URL       Hub or mirror ($HF_ENDPOINT or https://huggingface.co)
  --hf-token TOKEN        Hub token ($HF_TOKEN); sent only to the hub's own origin
  --concurrency N         files at once (4); small files share the idle connections
  --connections N         parallel ranges per large file (16)
  --verify full|size      how files already on disk are trusted (full)
  --insecure              allow plain http to non-loopback hosts
  --ca-cert FILE          extra PEM certificates to trust
  --stall-timeout SEC     seconds without a byte before a retry (30)
  --retries N             retries without progress before giving up (6)
  --registry-host HOST    the private OCI registry (host[:port]) the credentials are for
  --registry-username U   basic credentials for --registry-host,
  --registry-password P   sent only to its token service
  --allowed-realm-hosts H hosts besides the registry that may issue its tokens
  --registry-mirror H=URL ollama:/oci: lines for registry H from URL first (comma-separated list)
  --hf-oci-mirror PREFIX  hf: lines from <PREFIX>/<owner>/<repo>:<commit> when it is there
  -f, --file FILE         read model lines from FILE too (one per line, # comments)
`;
const PULL_OPTIONS = `${COMMON_OPTIONS}  --lockfile FILE         obey this lock file; with no LINE, pull every line it pins
  --lock-mode MODE        frozen: FILE must exist and pin every line (default);
                          update: write FILE when absent, add the lines it lacks
  --json                  print the models JSON on stdout (progress goes to stderr)
  -h, --help              this help
`;
const LOCK_OPTIONS = `${onlyAcceptedBy('lock', COMMON_OPTIONS)}  --lockfile FILE         the lock file to write or update (./model-pull.lock);
                          with no LINE, every line it holds is looked up again
  -h, --help              this help
`;
const HELP = {
    main: `model-pull: fast, verified, resumable model downloads into the layouts Ollama and Hugging Face read

Usage:
  model-pull pull [options] LINE...     pull into the same layouts as the action
  model-pull verify [options]           re-hash what is on disk against manifests / snapshots
  model-pull lock [options] LINE...     write or update the lock file
  model-pull mirror --to PREFIX [options] LINE...
                                        pull, then push each model to an OCI registry
  model-pull demo [--keep]              pull a generated model from local servers (no internet)

${LINES_PLACEHOLDER}
Run model-pull COMMAND --help for its options. Exit codes: 0 ok, 1 failed, 2 bad usage.
`,
    pull: `Usage: model-pull pull [options] LINE...
       model-pull pull --lockfile FILE [options]

Pulls each model line into its layout: ollama: lines into the Ollama store, hf: lines into the
Hugging Face cache, URLs into --files-dir, the other sources' lines into the folders their
options below name. Quote a line with options, or write its key=value words right after the
reference. Ctrl-C stops cleanly; the next run resumes.

Examples:
  model-pull pull ollama:qwen2.5:0.5b
  model-pull pull --json 'hf:Qwen/Qwen2.5-0.5B-Instruct include=*.json,*.safetensors'
  model-pull pull https://host/model.gguf sha256=<64 hex> --files-dir ./models

${PULL_OPTIONS}`,
    verify: `Usage: model-pull verify [--ollama-models DIR] [--hf-cache DIR] [--files-dir DIR] [options] [--json]

Re-hashes every blob of every manifest in the Ollama store, every file of every snapshot in
the Hugging Face cache, every file a URL line put in files-dir and what the other sources put
in the folders their options below name, and lists what is damaged
(missing, wrong size, wrong digest) by model line, with the pull command that repairs it.
Exit 1 when anything is damaged or a folder given here does not exist.

Options (environment defaults as for pull):
  --ollama-models DIR     Ollama store root ($OLLAMA_MODELS or ~/.ollama/models)
  --hf-cache DIR          Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)
  --files-dir DIR         where https:// files land (~/.cache/model-pull/files)
  --json                  print {"damaged": [{model, line, path, problem}], "missing": [folders]} on stdout
  -h, --help              this help
`,
    lock: `Usage: model-pull lock [--lockfile FILE] [options] LINE... | -f FILE
       model-pull lock --lockfile FILE [options]

Resolves each line (Ollama manifest digest, HF commit and files, URL sha256) and writes it into
the lock file (default ./model-pull.lock), keeping the entries of other lines. The action's
lockfile input (and pull --lockfile) then pulls exactly these, with no tag or branch lookup.
When a line cannot be resolved, the file is left unchanged.

${LOCK_OPTIONS}`,
    mirror: `Usage: model-pull mirror --to PREFIX [options] LINE...

Pulls each line as pull does, then pushes each model to the OCI registry PREFIX
(host[:port][/path], http:// or https:// to choose): Ollama models as Ollama manifests, unchanged,
at PREFIX/<model>:<tag> (a bare host keeps the namespace), which ollama: lines and ollama pull read;
Hugging Face repos as ModelPack artifacts at PREFIX/<owner>/<repo>:<commit> and :<revision> (a
line with include=/exclude= adds -<hash of its filters> to both), which hf-oci-mirror reads; files
at PREFIX/files/<name>:<sha256>. See docs/scale-out.md. Blobs the registry has are not sent
again, and an upload stopped between chunks resumes in the next run. Credentials:
--registry-host with --registry-username/--registry-password.

Examples:
  model-pull mirror --to registry.corp/models ollama:qwen2.5:0.5b
  model-pull mirror --to ghcr.io/org/hf --registry-host ghcr.io --registry-username me \\
    --registry-password "$TOKEN" hf:Qwen/Qwen2.5-0.5B-Instruct

  --to PREFIX             the registry and repository prefix to push to (required)
${PULL_OPTIONS}`,
    demo: `Usage: model-pull demo [--keep]

Starts a local OCI registry and a local Hugging Face hub on 127.0.0.1 serving a small generated
model, pulls both through the real pipeline into a temporary folder twice (the second pull
downloads nothing), and prints the result. Needs no internet.

  --keep                  keep the temporary folder (printed) instead of removing it
  -h, --help              this help
`,
};
/** The option rows of `text` that `command` accepts (lock does not take the download flags). */
function onlyAcceptedBy(command, text) {
    const accepted = COMMAND_FLAGS[command] ?? {};
    return text
        .split('\n')
        .filter((row) => {
        const flag = /^ {2}(?:-\w, )?--([a-z0-9-]+)/.exec(row)?.[1];
        return flag === undefined || Object.hasOwn(accepted, flag);
    })
        .join('\n');
}
/** The help of a command, with the lines the sources take and the options they add. */
function helpFor(command, sources) {
    if (command === 'main')
        return HELP.main.replace(LINES_PLACEHOLDER, linesHelp(sources));
    const options = (0,descriptor/* sourceOptions */.k0)(sources);
    if (command === 'demo' || options.length === 0)
        return HELP[command];
    return `${HELP[command]}\nOptions of the sources:\n${options.map(helpRow).join('\n')}\n`;
}
/** Bad lines and bad flags are usage errors (exit 2); the rest, an uncovered lock line too, are failures. */
function usageError(error) {
    return (0,errors/* isModelPullError */.pq)(error, 'ERR_BAD_REFERENCE') || (0,errors/* isModelPullError */.pq)(error, 'ERR_BAD_INPUT');
}

// EXTERNAL MODULE: ./src/report/text.ts
var report_text = __webpack_require__(5655);
;// CONCATENATED MODULE: ./src/cli/verify.ts



/** The folders verify checks (those the sources say they write), in source order. */
function foldersOf(sources, settings) {
    return sources.flatMap((source) => (source.stores?.(settings) ?? []).flatMap((folder) => folder.verify
        ? [{ what: folder.verify.label, flag: folder.input, root: folder.path, check: folder.verify.check }]
        : []));
}
/**
 * `model-pull verify`: re-hashes each folder against what model-pull recorded there, lists the
 * damage by model line and prints the pull that repairs each damaged model. Exit 1 when
 * anything is damaged, a folder named by a flag is absent, or there was nothing to check.
 */
async function verifyCommand(settings, values, io, sources) {
    const folders = [];
    const missing = [];
    for (const folder of foldersOf(sources, settings)) {
        const root = folder.root;
        const present = await isFolder(root);
        // A folder named on the command line must be there; a default one may not be (a machine
        // that only uses Hugging Face has no Ollama store).
        if (!present && values[folder.flag] !== undefined)
            missing.push(`--${folder.flag} ${root}`);
        else
            folders.push({ ...folder, root, ...(present ? { report: await folder.check(root) } : {}) });
    }
    const checked = folders.filter((f) => f.report !== undefined);
    const damaged = checked.flatMap((f) => f.report.damaged);
    if (values.json)
        io.stdout.write(`${JSON.stringify({ damaged, missing }, null, 2)}\n`);
    else
        printReports(folders, (line) => io.stdout.write(`${(0,report_text/* printable */.g$)(line)}\n`));
    for (const folder of missing)
        io.stderr.write(`model-pull verify: ${folder}: no such folder\n`);
    if (checked.length === 0 && missing.length === 0) {
        io.stderr.write('model-pull verify: none of the folders exists, nothing was checked\n');
        return 1;
    }
    return damaged.length || missing.length ? 1 : 0;
}
function printReports(folders, out) {
    const repairs = new Set();
    for (const { what, flag, root, report } of folders) {
        if (!report) {
            out(`${what} ${root}: not there, nothing to check`);
            continue;
        }
        const { checkedFiles, checkedBytes, damaged } = report;
        out(`${what} ${root}: ${checkedFiles} files, ${(0,format/* formatBytes */.z3)(checkedBytes)} checked, ${damaged.length} damaged`);
        for (const d of damaged) {
            out(`  ${d.line}: ${d.path}: ${d.problem}`);
            repairs.add(`model-pull pull --${flag} ${shellWord(root)} ${shellWord(d.line)}`);
        }
    }
    if (repairs.size === 0)
        return;
    out(`to repair ${repairs.size === 1 ? 'it' : 'them'}, run:`);
    for (const command of repairs)
        out(`  ${command}`);
}
async function isFolder(path) {
    return (0,promises_.stat)(path).then((info) => info.isDirectory(), () => false);
}
/** A word as a POSIX shell reads it back: quoted unless it is plainly safe. */
function shellWord(word) {
    return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

;// CONCATENATED MODULE: ./src/cli/main.ts























/** Runs one CLI command; returns the exit code (0 ok, 1 failed, 2 bad usage). */
async function runCli(argv, io) {
    const [command, ...rest] = argv;
    if (command === '--help' || command === '-h' || command === 'help') {
        // `model-pull help pull` is `model-pull pull --help`.
        const topic = command === 'help' ? rest[0] : undefined;
        if (topic !== undefined && !Object.hasOwn(COMMANDS, topic)) {
            io.stderr.write(`model-pull: unknown command "${topic}" (try model-pull --help)\n`);
            return 2;
        }
        io.stdout.write(topic
            ? helpFor(topic, io.sources ?? src_sources/* DEFAULT_SOURCES */.h)
            : helpFor('main', io.sources ?? src_sources/* DEFAULT_SOURCES */.h));
        return 0;
    }
    if (!command) {
        io.stderr.write(helpFor('main', io.sources ?? src_sources/* DEFAULT_SOURCES */.h));
        return 2;
    }
    if (command === '--version' || command === '-V') {
        io.stdout.write('model-pull 0.1.0\n');
        return 0;
    }
    const handler = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!handler) {
        io.stderr.write(`model-pull: unknown command "${command}" (try model-pull --help)\n`);
        return 2;
    }
    const sources = io.sources ?? src_sources/* DEFAULT_SOURCES */.h;
    // Ctrl-C is told where the user looks: above the progress bars while they run.
    const notices = { write: (line) => void io.stderr.write(`${line}\n`) };
    const onAbort = () => notices.write(STOPPING);
    io.signal?.addEventListener('abort', onAbort, { once: true });
    try {
        const { values, lines } = parseCommandArgs(command, rest, sources);
        if (values.help) {
            io.stdout.write(helpFor(command, sources));
            return 0;
        }
        return await handler({ values, lines, io, command, sources, notices });
    }
    catch (error) {
        io.stderr.write(`model-pull ${command}: ${(0,errors/* describeError */.Uc)(error)}\n`);
        return usageError(error) ? 2 : 1;
    }
    finally {
        io.signal?.removeEventListener('abort', onAbort);
    }
}
const STOPPING = 'stopping: progress is kept for the next run (Ctrl-C again to quit at once)';
const COMMANDS = {
    pull: (inv) => pipelineCommand(inv, pull/* pull */.a),
    mirror: mirrorCommand,
    verify: async (inv) => verifyCommand(await settingsOf(inv, false), inv.values, inv.io, inv.sources),
    lock: lockCommand,
    demo: async (inv) => (await __webpack_require__.e(/* import() */ 57).then(__webpack_require__.bind(__webpack_require__, 3057))).demoCommand(inv.io, { keep: inv.values.keep === true, notices: inv.notices }),
};
/**
 * `requireModels`: `verify` takes no lines; `pull` and `lock` need some, or a lock file whose
 * lines they then take.
 */
async function settingsOf(inv, requireModels = true) {
    const lines = [...inv.lines];
    const file = inv.values.file;
    if (typeof file === 'string')
        lines.push(...(0,line/* modelLines */.tG)(await readLinesFile(file)));
    const fromLock = typeof inv.values[constants/* Inputs */.G0.Lockfile] === 'string';
    if (requireModels && !fromLock && (0,line/* modelLines */.tG)(lines.join('\n')).length === 0) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', 'no model line given: pass LINE... or -f FILE');
    }
    const raw = {
        [constants/* Inputs */.G0.Models]: lines.join('\n'),
        [constants/* Inputs */.G0.Cache]: 'false',
    };
    const options = (0,descriptor/* sourceOptions */.k0)(inv.sources);
    for (const name of [...SETTING_FLAGS, constants/* Inputs */.G0.LockMode, ...options.map((o) => o.name)])
        raw[name] = inv.values[name];
    if (inv.values.insecure)
        raw[constants/* Inputs */.G0.Insecure] = 'true';
    if (typeof inv.values.to === 'string')
        raw[constants/* Inputs */.G0.MirrorTo] = inv.values.to;
    return (0,settings/* buildSettings */.E6)(raw, {
        env: inv.io.env,
        cwd: inv.io.cwd,
        nameOf: (name) => `--${name}`,
        settingText: (name, value) => `--${name} ${value}`,
        requireModels: false,
        sourceOptions: options,
    });
}
/** A models list holds lines of a few dozen bytes: a MiB is tens of thousands of them. */
const MAX_LINES_FILE_BYTES = 1024 * 1024;
/** `-f FILE`: a file, or a pipe (`-f /dev/stdin`, `-f <(…)`), read up to MAX_LINES_FILE_BYTES. */
async function readLinesFile(file) {
    const read = await (0,safe_fs/* readBounded */.CB)(file, MAX_LINES_FILE_BYTES, { named: true });
    if (read.kind === 'read')
        return read.bytes.toString('utf8');
    const reason = read.kind === 'missing' ? 'no such file' : read.reason;
    throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `cannot read -f ${file}: ${reason}`);
}
async function mirrorCommand(inv) {
    if (typeof inv.values.to !== 'string')
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', 'needs --to PREFIX: the registry to push to (see model-pull mirror --help)');
    return pipelineCommand(inv, async (settings, deps) => {
        const report = await mirror(settings, deps);
        for (const push of report.pushes)
            if (push.error)
                deps.log.error((0,model_log/* pushFailureLine */.pN)(push.line, push.error));
        return report;
    });
}
/** `pull` and `mirror`: settings, what happens on stderr as it happens, the pipeline. */
async function pipelineCommand(inv, run) {
    const settings = await settingsOf(inv);
    const { io } = inv;
    // Phases, each model's end and each failure (once, as it happens) are told as they come.
    const display = (0,cli_display/* pullDisplay */.uq)(io.stderr, { secrets: settings.secrets });
    const { log, onProgress, onModel } = display;
    const deps = { sources: inv.sources, log, cache: (0,client/* createNoCache */.m_)(), onProgress, onModel, signal: io.signal };
    const plain = inv.notices.write;
    inv.notices.write = (line) => log.info(line);
    const report = await run(settings, deps).finally(() => {
        display.close();
        inv.notices.write = plain;
    });
    if (inv.values.json)
        io.stdout.write(`${JSON.stringify(modelsJson(report), null, 2)}\n`);
    if (io.signal?.aborted) {
        log.error('interrupted: progress is kept, run the same command again to resume');
        return 1;
    }
    return report.ok ? 0 : 1;
}
async function lockCommand(inv) {
    const settings = await settingsOf(inv);
    const path = settings.lockfile?.path ?? (0,external_node_path_.resolve)(inv.io.cwd ?? process.cwd(), 'model-pull.lock');
    const previous = await (0,lockfile/* readLockEntries */.M0)(path, path, inv.sources);
    // With no line given, every line of the lock is looked up again (moved tags and branches).
    const lines = settings.lines.length > 0 ? settings.lines : [...(previous?.keys() ?? [])];
    if (lines.length === 0) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `no model line given, and ${previous ? `${path} holds none` : `${path} does not exist`}: pass LINE... or -f FILE`);
    }
    const refs = (0,src_refs/* parseLines */.L)(lines, inv.sources);
    const http = new http_client/* HttpClient */.Qq(settings.http);
    const log = (0,cli_display/* lineLogger */.Hw)((0,cli_display/* toStream */._y)(inv.io.stderr), settings.secrets);
    try {
        const retry = { ...settings.retry, onRetry: (event) => log.info((0,http_retry/* describeRetry */.eV)(event)) };
        const ctx = { http, retry, log, clock: clock/* systemClock */.m, signal: inv.io.signal };
        const sources = (0,descriptor/* createSources */.LH)(inv.sources, settings);
        const { results, written } = await (0,resolve/* lockLines */.l)(path, refs, sources, ctx, previous);
        results.forEach((result, i) => {
            const line = refs[i].line;
            if (result.status === 'fulfilled')
                log.info(`${line}: ${result.value.pin}`);
            else
                log.error((0,model_log/* failureLine */.Pu)(line, result.reason));
        });
        if (!written) {
            const failed = results.filter((r) => r.status === 'rejected').length;
            log.error(`${path} left unchanged: ${failed} of ${refs.length} lines could not be resolved`);
            return 1;
        }
        const n = refs.length;
        log.info(`${previous ? 'updated' : 'wrote'} ${path} (${n} line${n === 1 ? '' : 's'})`);
        return 0;
    }
    finally {
        await http.close();
    }
}


/***/ }),

/***/ 9373:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   m: () => (/* binding */ systemClock)
/* harmony export */ });
/* unused harmony export realSleep */
const realSleep = (ms, signal) => new Promise((resolve, reject) => {
    if (signal?.aborted)
        return reject(signal.reason);
    const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
    }, ms);
    const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
});
const systemClock = { now: () => Date.now(), sleep: realSleep };


/***/ }),

/***/ 7242:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   G0: () => (/* binding */ Inputs),
/* harmony export */   _O: () => (/* binding */ USER_AGENT)
/* harmony export */ });
/* unused harmony exports Outputs, EnvNames */
/** Names of the action's inputs, outputs and exported variables; they mirror action.yml. */
const Inputs = {
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
};
const Outputs = {
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
};
const EnvNames = {
    OllamaModels: 'OLLAMA_MODELS',
    HfHubCache: 'HF_HUB_CACHE',
    HfHubOffline: 'HF_HUB_OFFLINE',
    OllamaHost: 'OLLAMA_HOST',
};
const USER_AGENT = 'model-pull/0.1';


/***/ }),

/***/ 2187:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   AS: () => (/* binding */ sha256HexOf),
/* harmony export */   DC: () => (/* binding */ hashFile),
/* harmony export */   MO: () => (/* binding */ formatDigest),
/* harmony export */   P4: () => (/* binding */ isSha256Hex),
/* harmony export */   PV: () => (/* binding */ isSha1Hex),
/* harmony export */   ce: () => (/* binding */ gitBlobSha1Hex),
/* harmony export */   d4: () => (/* binding */ createDigestHash),
/* harmony export */   fg: () => (/* binding */ sha256Hex),
/* harmony export */   m: () => (/* binding */ parseDigest)
/* harmony export */ });
/* harmony import */ var node_crypto__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(7598);
/* harmony import */ var node_crypto__WEBPACK_IMPORTED_MODULE_0___default = /*#__PURE__*/__webpack_require__.n(node_crypto__WEBPACK_IMPORTED_MODULE_0__);
/* harmony import */ var node_fs_promises__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(1455);
/* harmony import */ var node_fs_promises__WEBPACK_IMPORTED_MODULE_1___default = /*#__PURE__*/__webpack_require__.n(node_fs_promises__WEBPACK_IMPORTED_MODULE_1__);
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_2__ = __webpack_require__(3916);



const HEX_LENGTH = { sha256: 64, 'git-sha1': 40 };
function formatDigest(d) {
    return `${d.algorithm}:${d.hex}`;
}
/** Parses `sha256:<64 hex>` or `git-sha1:<40 hex>`; anything else is refused before use in a path. */
function parseDigest(text, what = 'digest') {
    const m = /^(sha256|git-sha1):([0-9a-f]+)$/.exec(text);
    if (m) {
        const algorithm = m[1];
        if (m[2].length === HEX_LENGTH[algorithm])
            return { algorithm, hex: m[2] };
    }
    throw new _errors_js__WEBPACK_IMPORTED_MODULE_2__/* .ModelPullError */ .Vy('ERR_BAD_MANIFEST', `invalid ${what} "${text.slice(0, 100)}"`);
}
/** The one check for a sha256 in hex: 64 lowercase hex digits, safe in a path, a URL and a key. */
function isSha256Hex(hex) {
    return /^[0-9a-f]{64}$/.test(hex);
}
/** The hex of `sha256:<64 lowercase hex>`, or undefined for anything else. */
function sha256HexOf(digest) {
    const hex = digest.startsWith('sha256:') ? digest.slice('sha256:'.length) : '';
    return isSha256Hex(hex) ? hex : undefined;
}
/** 40 lowercase hex digits: a git object id (blob sha1, commit). */
function isSha1Hex(hex) {
    return /^[0-9a-f]{40}$/.test(hex);
}
/** A hasher for the digest's algorithm; git-sha1 needs the size up front for its header. */
function createDigestHash(algorithm, size) {
    if (algorithm === 'sha256')
        return (0,node_crypto__WEBPACK_IMPORTED_MODULE_0__.createHash)('sha256');
    if (size === undefined) {
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_2__/* .ModelPullError */ .Vy('ERR_BAD_INPUT', 'a git-sha1 digest needs the size of the file');
    }
    const hash = (0,node_crypto__WEBPACK_IMPORTED_MODULE_0__.createHash)('sha1');
    hash.update(`blob ${size}\0`);
    return hash;
}
function sha256Hex(data) {
    return (0,node_crypto__WEBPACK_IMPORTED_MODULE_0__.createHash)('sha256').update(data).digest('hex');
}
function gitBlobSha1Hex(data) {
    return (0,node_crypto__WEBPACK_IMPORTED_MODULE_0__.createHash)('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}
/** Hex digest of a file on disk, read in 1 MiB blocks (the size is git-sha1's header). */
async function hashFile(path, algorithm, size) {
    const hash = createDigestHash(algorithm, size);
    // Two buffers for the whole file, the next block read (on libuv's pool) while this one is
    // hashed. A read stream allocated a fresh 1 MiB buffer per block: re-verifying 1 GiB cost
    // 2.6 s of CPU and 130 MiB of RSS against 1.2 s and 52 MiB this way (measured).
    const buffers = [Buffer.allocUnsafe(HASH_BLOCK), Buffer.allocUnsafe(HASH_BLOCK)];
    const file = await (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_1__.open)(path, 'r');
    try {
        let pos = 0;
        let [block, next] = buffers;
        let reading = file.read(block, 0, HASH_BLOCK, 0);
        for (;;) {
            const { bytesRead } = await reading;
            if (bytesRead === 0)
                break;
            pos += bytesRead;
            reading = file.read(next, 0, HASH_BLOCK, pos);
            hash.update(block.subarray(0, bytesRead));
            [block, next] = [next, block];
        }
        return hash.digest('hex');
    }
    finally {
        await file.close();
    }
}
const HASH_BLOCK = 1 << 20;


/***/ }),

/***/ 3712:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  ZZ: () => (/* binding */ acquireLease),
  sG: () => (/* binding */ describeHolder)
});

// UNUSED EXPORTS: DEFAULT_LEASE_TIMING

// EXTERNAL MODULE: external "node:crypto"
var external_node_crypto_ = __webpack_require__(7598);
// EXTERNAL MODULE: external "node:fs"
var external_node_fs_ = __webpack_require__(3024);
// EXTERNAL MODULE: external "node:fs/promises"
var promises_ = __webpack_require__(1455);
// EXTERNAL MODULE: external "node:os"
var external_node_os_ = __webpack_require__(8161);
// EXTERNAL MODULE: ./src/errors.ts
var errors = __webpack_require__(3916);
;// CONCATENATED MODULE: ./src/process-liveness.ts
/** The largest pid_t: past it a number names no process (Node refuses it outright). */
const MAX_PID = 2 ** 31 - 1;
/**
 * Whether a process with this pid runs on this machine (in this pid namespace). Signal 0 is a
 * check that sends nothing: EPERM means the process runs under another user (alive, not ours
 * to signal), ESRCH that there is none. 0 and negative numbers address process groups, which
 * would answer for a whole group, so a pid that is not a positive integer (read from a lease
 * file another process wrote) is no live process.
 */
function isAlive(pid) {
    if (!Number.isInteger(pid) || pid <= 0 || pid > MAX_PID)
        return false;
    try {
        process.kill(pid, 0);
        return true;
    }
    catch (error) {
        return error.code === 'EPERM';
    }
}

// EXTERNAL MODULE: ./src/download/safe-fs.ts
var safe_fs = __webpack_require__(5039);
;// CONCATENATED MODULE: ./src/download/lease.ts







const DEFAULT_LEASE_TIMING = {
    heartbeatMs: 5_000,
    staleMs: 30_000,
    pollMs: 500,
    maxWaitMs: 60 * 60_000,
};
const MAX_LEASE_BYTES = 4096;
/** In-process turns: two blobs of one run with the same digest take turns before the file lease. */
const turns = new Map();
/** Waits for and takes the lease at `path` for `subject` (a blob's label, for messages). */
async function acquireLease(path, subject, options) {
    const previous = turns.get(path);
    let endTurn;
    const mine = new Promise((resolve) => {
        endTurn = resolve;
    });
    const turn = (previous ?? Promise.resolve()).then(() => mine);
    turns.set(path, turn);
    const done = () => {
        endTurn();
        if (turns.get(path) === turn)
            turns.delete(path);
    };
    try {
        await previous;
        const lease = await takeFileLease(path, subject, options);
        return {
            waited: lease.waited,
            held: lease.held,
            release: async () => {
                try {
                    await lease.release();
                }
                finally {
                    done();
                }
            },
        };
    }
    catch (error) {
        done();
        throw error;
    }
}
async function takeFileLease(path, subject, options) {
    const timing = { ...DEFAULT_LEASE_TIMING, ...options.timing };
    const { clock, signal } = options;
    const me = { ...machine(), pid: process.pid, token: (0,external_node_crypto_.randomUUID)() };
    const text = JSON.stringify(me);
    const started = clock.now();
    let waited = false;
    for (;;) {
        if (await createLease(path, text))
            break;
        const seen = await inspect(path);
        if (!seen)
            continue; // released just now
        if (isStale(seen, clock.now(), timing.staleMs)) {
            await breakLease(path, seen, clock.now(), timing.staleMs);
            continue;
        }
        const holder = { pid: seen.record?.pid, host: seen.record?.host };
        if (!waited)
            options.onWait?.(holder);
        waited = true;
        if (clock.now() - started >= timing.maxWaitMs) {
            throw new errors/* ModelPullError */.Vy('ERR_STAGING_LOCK', `gave up after ${Math.round(timing.maxWaitMs / 1000)} s waiting for ${describeHolder(holder)} to finish ${subject}; if it is no longer running, delete ${path}`);
        }
        await clock.sleep(timing.pollMs, signal);
    }
    const held = async () => (await inspect(path))?.text === text;
    let beating = true;
    const heartbeat = setInterval(() => {
        void held().then(async (ours) => {
            if (!ours || !beating)
                return;
            const now = new Date(clock.now());
            await (0,promises_.lutimes)(path, now, now).catch(() => undefined);
        });
    }, timing.heartbeatMs);
    heartbeat.unref();
    return {
        waited,
        held,
        release: async () => {
            beating = false;
            clearInterval(heartbeat);
            // A lease that another process took over (it judged us dead) is theirs to remove.
            if (await held())
                await (0,promises_.rm)(path, { force: true });
        },
    };
}
/** "another model-pull (pid 4242 on runner-7)" */
function describeHolder(holder) {
    if (holder.pid === undefined)
        return 'another model-pull';
    return `another model-pull (pid ${holder.pid}${holder.host ? ` on ${holder.host}` : ''})`;
}
/** Creates the lease file exclusively with our record; false when it exists already. */
async function createLease(path, text) {
    const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = promises_.constants;
    let file;
    try {
        file = await (0,promises_.open)(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
    }
    catch (error) {
        if (error.code === 'EEXIST')
            return false;
        throw error;
    }
    try {
        await file.writeFile(text);
    }
    finally {
        await file.close();
    }
    return true;
}
/** The lease as it is now (undefined when absent); its record only when it has our shape. */
async function inspect(path) {
    const info = await (0,promises_.lstat)(path).catch(() => undefined);
    if (!info)
        return undefined;
    const bytes = info.isFile() ? await (0,safe_fs/* readSmall */.o5)(path, MAX_LEASE_BYTES) : undefined;
    const text = bytes?.toString('utf8') ?? '';
    return { text, record: parseRecord(text), mtimeMs: info.mtimeMs };
}
function parseRecord(text) {
    // Earlier versions wrote the bare pid: a holder we can name but not place.
    if (/^\d+$/.test(text.trim()))
        return { pid: Number(text.trim()) };
    try {
        const value = JSON.parse(text);
        if (typeof value !== 'object' || value === null || !Number.isSafeInteger(value.pid))
            return undefined;
        const str = (k) => (typeof value[k] === 'string' ? value[k] : undefined);
        return {
            pid: value.pid,
            host: str('host'),
            boot: str('boot'),
            pidns: str('pidns'),
            token: str('token'),
        };
    }
    catch {
        return undefined;
    }
}
function isStale(seen, now, staleMs) {
    const record = seen.record;
    if (record?.pid !== undefined && sameMachine(record)) {
        // Our own pid on a lease we do not hold (turns keep us from holding one twice): a leftover.
        if (record.pid === process.pid || !isAlive(record.pid))
            return true;
    }
    return now - seen.mtimeMs > staleMs;
}
/**
 * Removes a dead lease, one breaker at a time: a second process that judged the same lease
 * dead must not remove the fresh lease the first one has just created in its place.
 */
async function breakLease(path, seen, now, staleMs) {
    const breaker = `${path}.break`;
    if (!(await createLease(breaker, String(process.pid)))) {
        const info = await (0,promises_.lstat)(breaker).catch(() => undefined);
        // A breaker that crashed mid-way is removed once it is as old as a dead lease.
        if (info && now - info.mtimeMs > staleMs)
            await (0,promises_.rm)(breaker, { force: true });
        return;
    }
    try {
        const again = await inspect(path);
        if (again && again.text === seen.text && again.mtimeMs === seen.mtimeMs)
            await (0,promises_.rm)(path, { force: true });
    }
    finally {
        await (0,promises_.rm)(breaker, { force: true });
    }
}
let machineInfo;
/** Host name, boot id and pid namespace: where a pid means the same process as ours. */
function machine() {
    machineInfo ??= {
        host: (0,external_node_os_.hostname)(),
        boot: readOr(() => (0,external_node_fs_.readFileSync)('/proc/sys/kernel/random/boot_id', 'utf8').trim()),
        pidns: readOr(() => (0,external_node_fs_.readlinkSync)('/proc/self/ns/pid')),
    };
    return machineInfo;
}
function sameMachine(record) {
    const here = machine();
    return record.host === here.host && record.boot === here.boot && record.pidns === here.pidns;
}
function readOr(read) {
    try {
        return read();
    }
    catch {
        return '';
    }
}


/***/ }),

/***/ 5039:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   CB: () => (/* binding */ readBounded),
/* harmony export */   H0: () => (/* binding */ createExclusive),
/* harmony export */   ZM: () => (/* binding */ openOwnFile),
/* harmony export */   o5: () => (/* binding */ readSmall),
/* harmony export */   xY: () => (/* binding */ readBoundedSync)
/* harmony export */ });
/* harmony import */ var node_fs__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(3024);
/* harmony import */ var node_fs__WEBPACK_IMPORTED_MODULE_0___default = /*#__PURE__*/__webpack_require__.n(node_fs__WEBPACK_IMPORTED_MODULE_0__);
/* harmony import */ var node_fs_promises__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(1455);
/* harmony import */ var node_fs_promises__WEBPACK_IMPORTED_MODULE_1___default = /*#__PURE__*/__webpack_require__.n(node_fs_promises__WEBPACK_IMPORTED_MODULE_1__);


/**
 * File access for folders other processes share (staging areas, lease files): nothing here
 * follows a symbolic link planted at the path, and nothing reads more than it expects. Files the
 * user names (a models list, a CA bundle) are read bounded too, links followed (`named`).
 */
const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_WRONLY } = node_fs_promises__WEBPACK_IMPORTED_MODULE_1__.constants;
/**
 * Reads at most `limit` bytes of a regular file, never through a link and without blocking on
 * a FIFO (O_NONBLOCK), saying why when it does not: for files whose absence means something
 * other than damage (a lock file) or whose refusal is worth naming (verify). `options` widen
 * it for a path the user named or a log's tail.
 */
async function readBounded(path, limit, options = {}) {
    let file;
    try {
        file = await (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_1__.open)(path, options.named ? O_RDONLY : O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    }
    catch (error) {
        return notOpened(error);
    }
    try {
        const info = await file.stat();
        if (options.named && (info.isFIFO() || info.isCharacterDevice()))
            return await readStream(file, limit);
        const refusal = refusalOf(info, limit, options.tail);
        if (refusal)
            return { kind: 'refused', reason: refusal };
        const from = Math.max(0, info.size - limit);
        const buffer = Buffer.alloc(info.size - from + 1);
        const { bytesRead } = await file.read(buffer, 0, buffer.length, from);
        return grown(buffer, bytesRead, limit, options.tail);
    }
    catch (error) {
        return { kind: 'refused', reason: error.message };
    }
    finally {
        await file.close();
    }
}
/**
 * readBounded for a file the user named that must be read synchronously (settings: the
 * `ca-cert` bundle): links are followed, and only a regular file of at most `limit` bytes is read.
 */
function readBoundedSync(path, limit) {
    let fd;
    try {
        fd = (0,node_fs__WEBPACK_IMPORTED_MODULE_0__.openSync)(path, O_RDONLY | O_NONBLOCK);
    }
    catch (error) {
        return notOpened(error);
    }
    try {
        const info = (0,node_fs__WEBPACK_IMPORTED_MODULE_0__.fstatSync)(fd);
        const refusal = refusalOf(info, limit);
        if (refusal)
            return { kind: 'refused', reason: refusal };
        const buffer = Buffer.alloc(info.size + 1);
        return grown(buffer, (0,node_fs__WEBPACK_IMPORTED_MODULE_0__.readSync)(fd, buffer, 0, buffer.length, 0), limit);
    }
    catch (error) {
        return { kind: 'refused', reason: error.message };
    }
    finally {
        (0,node_fs__WEBPACK_IMPORTED_MODULE_0__.closeSync)(fd);
    }
}
/** What a failed open means: nothing at the path, or why it cannot be read. */
function notOpened(error) {
    const code = error.code;
    if (code === 'ENOENT')
        return { kind: 'missing' };
    return { kind: 'refused', reason: openProblem(code, error) };
}
/** Why a file that `stat` describes is not read, if it is not. */
function refusalOf(info, limit, tail = false) {
    if (!info.isFile())
        return `not a regular file (${kindOf(info)})`;
    if (info.size > limit && !tail)
        return tooLarge(info.size, limit);
    return undefined;
}
/**
 * The bytes read into a buffer one byte larger than the stat said: that byte filled means the
 * file grew since (still being written), past the limit, or past the tail asked for.
 */
function grown(buffer, bytesRead, limit, tail = false) {
    if (bytesRead > limit && !tail)
        return { kind: 'refused', reason: tooLarge(bytesRead, limit, 'at least ') };
    return { kind: 'read', bytes: buffer.subarray(Math.max(0, bytesRead - limit), bytesRead) };
}
/** A pipe or device read to its end, refused as soon as more than `limit` bytes came. */
async function readStream(file, limit) {
    const chunks = [];
    let total = 0;
    for (;;) {
        const chunk = Buffer.alloc(Math.min(64 * 1024, limit + 1 - total));
        const { bytesRead } = await file.read(chunk, 0, chunk.length, null);
        if (bytesRead === 0)
            return { kind: 'read', bytes: Buffer.concat(chunks, total) };
        chunks.push(chunk.subarray(0, bytesRead));
        total += bytesRead;
        if (total > limit)
            return { kind: 'refused', reason: tooLarge(total, limit, 'at least ') };
    }
}
/** Reads at most `limit` bytes of a regular file, never through a link; undefined if absent or odd. */
async function readSmall(path, limit) {
    const result = await readBounded(path, limit);
    return result.kind === 'read' ? result.bytes : undefined;
}
function tooLarge(size, limit, qualifier = '') {
    return `too large (${qualifier}${size} bytes, limit ${limit})`;
}
function openProblem(code, error) {
    switch (code) {
        case 'ELOOP':
            return 'not a regular file (a symbolic link)';
        case 'EACCES':
        case 'EPERM':
            return 'permission denied';
        case 'ENOTDIR':
            return 'a file is in the way where a folder must be';
        default:
            return error.message;
    }
}
function kindOf(info) {
    if (info.isDirectory())
        return 'a folder';
    if (info.isFIFO())
        return 'a FIFO';
    if (info.isCharacterDevice())
        return 'a character device';
    if (info.isBlockDevice())
        return 'a block device';
    if (info.isSocket())
        return 'a socket';
    return 'an unknown kind';
}
/**
 * Creates `path` afresh for writing: whatever was there (a file, a planted link) is removed and
 * the new file is created exclusively, so a link that appears in between makes this fail
 * (EEXIST) instead of writing through it.
 */
async function createExclusive(path, mode = 0o644, read = false) {
    await (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_1__.rm)(path, { force: true });
    return (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_1__.open)(path, (read ? O_RDWR : O_WRONLY) | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
}
/**
 * Opens an existing file for reading and writing only if it is a regular file with a single
 * name (no link to elsewhere, no hard link shared with a file outside the store).
 */
async function openOwnFile(path) {
    let file;
    try {
        file = await (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_1__.open)(path, O_RDWR | O_NOFOLLOW);
    }
    catch {
        return undefined;
    }
    const info = await file.stat().catch(() => undefined);
    if (info?.isFile() && info.nlink === 1)
        return file;
    await file.close();
    return undefined;
}


/***/ }),

/***/ 3916:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   BO: () => (/* binding */ redactUrl),
/* harmony export */   Uc: () => (/* binding */ describeError),
/* harmony export */   Vy: () => (/* binding */ ModelPullError),
/* harmony export */   pq: () => (/* binding */ isModelPullError)
/* harmony export */ });
/* harmony import */ var _report_text_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(5655);

class ModelPullError extends Error {
    name = 'ModelPullError';
    code;
    /** HTTP status when the error came from a response. */
    status;
    /** Seconds the server asked us to wait (Retry-After / RateLimit t=). */
    retryAfterSeconds;
    /** The host (`name[:port]`) that failed, when the error came from one: retry events name it. */
    host;
    /** What went wrong, without the fix. */
    reason;
    /**
     * What the user can do about it, when there is one thing to do ("create it with `…`"): the
     * message ends with it, and the job summary shows it on its own.
     */
    fix;
    constructor(code, message, options = {}) {
        super(options.fix ? `${message}; ${options.fix}` : message, options.cause === undefined ? undefined : { cause: options.cause });
        this.code = code;
        this.status = options.status;
        this.retryAfterSeconds = options.retryAfterSeconds;
        this.host = options.host;
        this.reason = message;
        this.fix = options.fix;
    }
    /**
     * The same error with another message (a prefix naming the blob or model), facts kept; the
     * message given replaces the reason, and the fix still follows it.
     */
    withMessage(message) {
        const { status, retryAfterSeconds, host, fix } = this;
        return new ModelPullError(this.code, message, { cause: this, status, retryAfterSeconds, host, fix });
    }
}
function isModelPullError(error, code) {
    return error instanceof ModelPullError && (code === undefined || error.code === code);
}
/** Strips userinfo and the query (signed URLs carry their signature there) for messages. */
function redactUrl(url) {
    try {
        const u = new URL(url);
        u.username = '';
        u.password = '';
        const query = u.search ? '?…' : '';
        u.search = '';
        u.hash = '';
        return u.toString() + query;
    }
    catch {
        return '<invalid URL>';
    }
}
/**
 * A one-line description of any thrown value, for logs and CLI stderr. Messages quote servers
 * (error bodies, names), so control characters are shown, never sent (report/text.ts).
 */
function describeError(error) {
    if (error instanceof Error)
        return (0,_report_text_js__WEBPACK_IMPORTED_MODULE_0__/* .printable */ .g$)(error.message.replace(/\s*\n\s*/g, ' '));
    return (0,_report_text_js__WEBPACK_IMPORTED_MODULE_0__/* .printable */ .g$)(String(error));
}


/***/ }),

/***/ 3341:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   J: () => (/* binding */ ensureDirs)
/* harmony export */ });
/* unused harmony export pathExists */
/* harmony import */ var node_fs_promises__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(1455);
/* harmony import */ var node_fs_promises__WEBPACK_IMPORTED_MODULE_0___default = /*#__PURE__*/__webpack_require__.n(node_fs_promises__WEBPACK_IMPORTED_MODULE_0__);
/* harmony import */ var node_path__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(6760);
/* harmony import */ var node_path__WEBPACK_IMPORTED_MODULE_1___default = /*#__PURE__*/__webpack_require__.n(node_path__WEBPACK_IMPORTED_MODULE_1__);


/**
 * mkdir -p, then 0755 on the folders this call created (never on the user's existing ones).
 * mkdir's mode passes through the umask, and a strict umask would hide the store from a
 * consumer running as another user (the Linux install runs Ollama as user `ollama`).
 */
async function ensureDirs(path) {
    const first = await (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_0__.mkdir)(path, { recursive: true, mode: 0o755 });
    if (first === undefined)
        return;
    const rel = (0,node_path__WEBPACK_IMPORTED_MODULE_1__.relative)(first, path);
    const created = [
        first,
        ...(rel ? rel.split(node_path__WEBPACK_IMPORTED_MODULE_1__.sep) : []).map((_, i, all) => (0,node_path__WEBPACK_IMPORTED_MODULE_1__.join)(first, ...all.slice(0, i + 1))),
    ];
    for (const dir of created)
        await (0,node_fs_promises__WEBPACK_IMPORTED_MODULE_0__.chmod)(dir, 0o755);
}
async function pathExists(path) {
    try {
        await access(path);
        return true;
    }
    catch {
        return false;
    }
}


/***/ }),

/***/ 9662:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   $C: () => (/* binding */ statusError),
/* harmony export */   LL: () => (/* binding */ discardBody),
/* harmony export */   Mu: () => (/* binding */ BODY_LIMITS),
/* harmony export */   Vh: () => (/* binding */ readJson),
/* harmony export */   f1: () => (/* binding */ DRAIN_LIMIT),
/* harmony export */   x8: () => (/* binding */ readBody)
/* harmony export */ });
/* unused harmony exports readText, readSnippet */
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(3916);
/* harmony import */ var _report_format_js__WEBPACK_IMPORTED_MODULE_3__ = __webpack_require__(2011);
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(8549);
/* harmony import */ var _retry_js__WEBPACK_IMPORTED_MODULE_2__ = __webpack_require__(8902);




const KiB = 1024;
const MiB = 1024 * KiB;
/** The most of an unwanted body (a redirect's page) read to keep its connection; beyond, it is cut. */
const DRAIN_LIMIT = 64 * KiB;
/**
 * The most we read into memory for each kind of answer. Model bytes never come through here
 * (the engine streams them to disk); everything that does is small by nature, and a server
 * that sends more is broken or hostile (an endless body once took a pull to 16 GB of memory).
 */
const BODY_LIMITS = {
    /** API documents: Hub revision and tree pages (1,000 entries a page), Ollama's local API. */
    json: 16 * MiB,
    /** A registry token realm's answer (a JWT of a few KiB). */
    token: 1 * MiB,
    /** A release's sha256sum.txt (one line per asset). */
    checksums: 1 * MiB,
    /** What an error message quotes from an error body. */
    errorText: 4 * KiB,
};
const noop = () => undefined;
/**
 * Lets go of a body we will not read, now: no unhandled 'error' event (undici reports the
 * destroy as an abort, and a body that already arrived whole has nobody left to hear it), no
 * socket held by a body that trickles.
 */
function discardBody(body) {
    body.on('error', noop);
    if (!body.destroyed)
        body.destroy();
}
/**
 * Reads a whole body into memory, refusing more than `limit` bytes with ERR_TOO_LARGE (the
 * Content-Length is checked first, then every chunk). `what` names the answer in the error.
 */
async function readBody(response, limit, what) {
    const tooLarge = () => {
        discardBody(response.body);
        return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_TOO_LARGE', `${what} from ${(0,_errors_js__WEBPACK_IMPORTED_MODULE_0__/* .redactUrl */ .BO)(response.url)} is larger than ${(0,_report_format_js__WEBPACK_IMPORTED_MODULE_3__/* .formatBytes */ .z3)(limit)}; refusing to read it`, { host: (0,_errors_js__WEBPACK_IMPORTED_MODULE_1__/* .hostOf */ .w4)(response.url) });
    };
    // Leaving the loop early destroys the body; that must not become an unhandled 'error'.
    response.body.on('error', noop);
    const declared = Number(response.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit)
        throw tooLarge();
    const chunks = [];
    let total = 0;
    try {
        for await (const chunk of response.body) {
            total += chunk.length;
            if (total > limit)
                throw tooLarge();
            chunks.push(chunk);
        }
    }
    catch (error) {
        throw (0,_errors_js__WEBPACK_IMPORTED_MODULE_1__/* .networkError */ .x6)(error, response.url);
    }
    return Buffer.concat(chunks);
}
async function readText(response, limit, what) {
    return (await readBody(response, limit, what)).toString('utf8');
}
/**
 * A JSON document of at most `limit` bytes. Text that does not parse is treated like a cut
 * connection (ERR_NETWORK, retried): proxies and overloaded servers answer 200 with junk.
 */
async function readJson(response, limit, what) {
    const text = await readText(response, limit, what);
    try {
        return JSON.parse(text);
    }
    catch (error) {
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_NETWORK', `${what} from ${(0,_errors_js__WEBPACK_IMPORTED_MODULE_0__/* .redactUrl */ .BO)(response.url)} is not valid JSON`, {
            cause: error,
            host: (0,_errors_js__WEBPACK_IMPORTED_MODULE_1__/* .hostOf */ .w4)(response.url),
        });
    }
}
/** Up to `max` bytes of a body as text, the rest discarded; never throws (for error messages). */
async function readSnippet(response, max = BODY_LIMITS.errorText) {
    response.body.on('error', noop);
    const chunks = [];
    let total = 0;
    try {
        for await (const chunk of response.body) {
            chunks.push(chunk);
            total += chunk.length;
            if (total >= max)
                break;
        }
    }
    catch {
        // whatever arrived is the snippet
    }
    discardBody(response.body);
    return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}
/** Reads a little of a non-2xx answer and turns it into an error; 429 carries the server's wait. */
async function statusError(response, what) {
    const detail = (await readSnippet(response)).slice(0, 200).replace(/\s+/g, ' ').trim();
    const retryAfterSeconds = (0,_retry_js__WEBPACK_IMPORTED_MODULE_2__/* .parseRetryAfter */ .mu)(response.headers);
    const subject = what ?? (0,_errors_js__WEBPACK_IMPORTED_MODULE_0__/* .redactUrl */ .BO)(response.url);
    const code = response.status === 429 ? 'ERR_RATE_LIMITED' : 'ERR_HTTP_STATUS';
    return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy(code, `HTTP ${response.status} from ${subject}${detail ? `: ${detail}` : ''}`, {
        status: response.status,
        retryAfterSeconds,
        host: (0,_errors_js__WEBPACK_IMPORTED_MODULE_1__/* .hostOf */ .w4)(response.url),
    });
}


/***/ }),

/***/ 4530:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  Qq: () => (/* binding */ HttpClient),
  LL: () => (/* reexport */ http_body/* discardBody */.LL),
  cW: () => (/* binding */ isLoopbackHost),
  $C: () => (/* reexport */ http_body/* statusError */.$C)
});

// UNUSED EXPORTS: networkError

// EXTERNAL MODULE: external "node:net"
var external_node_net_ = __webpack_require__(7030);
// EXTERNAL MODULE: external "node:stream"
var external_node_stream_ = __webpack_require__(7075);
// EXTERNAL MODULE: ./src/errors.ts
var errors = __webpack_require__(3916);
// EXTERNAL MODULE: ./src/http/body.ts
var http_body = __webpack_require__(9662);
// EXTERNAL MODULE: ./src/http/errors.ts
var http_errors = __webpack_require__(8549);
// EXTERNAL MODULE: ./src/memory.ts + 1 modules
var memory = __webpack_require__(9328);
;// CONCATENATED MODULE: ./src/http/native.ts



// node:http is taken through getBuiltinModule, not an ES import: the ES module of a built-in
// reads every export once, and node:http's WebSocket, CloseEvent and MessageEvent getters then
// load Node's own bundled copy of undici, which no request here uses (the engine's process: 45 MiB
// RSS after `import('node:http')` against 59 MiB; a CommonJS require, as in the ncc bundle, never
// read them). node:https (and TLS under it, ~5 MiB) loads with the first https: URL.
const http = process.getBuiltinModule('node:http');
/**
 * Requests through Node's built-in HTTP/1.1 client (node:http, its native llhttp parser): GET
 * and HEAD, model bytes and metadata alike, and requests whose body is a small buffer (JSON for a
 * token or the cache service's lookup), so a run that only reads and looks entries up never
 * loads undici (its import, node:http2 and its WebAssembly parser took 60-80 ms and ~25 MiB
 * before a restore's first archive byte). Measured against undici's Agent on a 1 GiB loopback
 * download (see the commit that added it): undici feeds every socket read through its
 * WebAssembly parser and several handler layers, and its Agent loads node:http2 even with
 * HTTP/2 off. The client's policy (URLs, credentials, redirects, error codes) stays in
 * client.ts; this only sends one request and hands back the answer.
 */
class NativeTransport {
    options;
    http;
    https;
    constructor(options) {
        this.options = options;
        this.http = new http.Agent(this.pool());
    }
    pool() {
        return { keepAlive: true, maxSockets: this.options.connections, scheduling: 'lifo' };
    }
    httpsAgent() {
        const ca = this.options.ca;
        this.https ??= new (process.getBuiltinModule('node:https').Agent)({
            ...this.pool(),
            ...(ca ? { ca: [...ca] } : {}),
        });
        return this.https;
    }
    /**
     * Sends one request, with `body` (sent whole, with its Content-Length) when given. Rejects
     * with the socket's error (client.ts maps it) or with ERR_STALLED when the headers do not come
     * within the stall timeout; the body then fails with ERR_STALLED when it brings no byte for
     * that long while it is being read.
     */
    send(target, method, headers, signal, body) {
        const stall = this.options.stallTimeoutMs;
        const url = target.toString();
        const stalled = () => (0,http_errors/* stalledError */.Iy)(url);
        return new Promise((resolve, reject) => {
            if (signal?.aborted)
                return reject(signal.reason);
            const https = target.protocol === 'https:';
            const agent = https ? this.httpsAgent() : this.http;
            const req = (https ? process.getBuiltinModule('node:https').request : http.request)({
                protocol: target.protocol,
                hostname: target.hostname.replace(/^\[|\]$/g, ''),
                port: target.port || undefined,
                path: target.pathname + target.search,
                method,
                headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
                agent,
            });
            let answer;
            // The caller's abort ends the request, and the body once it is out, with the caller's reason.
            const onAbort = () => {
                answer?.destroy(signal?.reason);
                req.destroy(signal?.reason);
            };
            signal?.addEventListener('abort', onAbort, { once: true });
            req.once('close', () => signal?.removeEventListener('abort', onAbort));
            // The headers must come within the stall timeout of the request (connecting included): a
            // server trickling its header lines never goes idle.
            const deadline = setTimeout(() => req.destroy(stalled()), stall);
            req.once('error', (error) => {
                clearTimeout(deadline);
                reject(error);
            });
            // Idle time on the socket (Node refreshes this timer on every read, at no cost per chunk).
            // A body holding bytes its reader has not taken is not stalled: the reader is the one
            // waiting (a paused body stops the socket's reads once its buffer is full).
            const onIdle = (socket) => {
                if (answer?.complete)
                    return;
                if (answer && answer.readableLength > 0) {
                    socket.setTimeout(stall);
                    return;
                }
                const error = stalled();
                answer?.destroy(error);
                req.destroy(error);
            };
            let watched;
            const onTimeout = () => watched && onIdle(watched);
            // Both listeners leave with the request, or at the body's end: before Node hands the socket
            // to the next request (which adds the parser's listener again, ticks later), so a read is
            // never freed before it is parsed.
            const unwatch = () => {
                watched?.off('data', memory/* freeWhole */.QK).off('timeout', onTimeout).setTimeout(0);
                watched = undefined;
            };
            req.once('socket', (socket) => {
                watched = socket;
                socket.setTimeout(stall);
                socket.on('timeout', onTimeout);
                // Each socket read is freed once Node's parser is done with it: the parser copies a
                // read's body bytes into the chunks it hands out and keeps nothing of the read itself.
                // Left to the collector, 64 KiB reads piled up to ~70 MiB between its passes (receiving
                // 1 GiB over 4 connections: 132-134 MiB peak RSS and 1.8-2.4 CPU-s, against 62 MiB and
                // 1.1 CPU-s with each read freed; undici 93 MiB and 1.5 CPU-s). The listener goes after
                // Node's own (added before this event), exactly once.
                socket.off('data', memory/* freeWhole */.QK);
                socket.on('data', memory/* freeWhole */.QK);
            });
            req.once('close', unwatch);
            req.once('response', (res) => {
                answer = res;
                res.once('end', unwatch);
                clearTimeout(deadline);
                resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: withHelpers(res) });
            });
            if (body === undefined)
                req.end();
            else
                req.end(body);
        });
    }
    close() {
        this.http.destroy();
        this.https?.destroy();
    }
}
/**
 * undici's `dump` on a node:http answer. Its unbounded `text`/`json` are left out on purpose:
 * bodies are read through body.ts's readBody/readText/readJson, which take a limit.
 */
function withHelpers(res) {
    const body = res;
    // A short body is read to its end so its connection is reused; a long one is cut.
    body.dump = () => new Promise((resolve) => {
        if (res.destroyed || res.readableEnded)
            return resolve();
        let seen = 0;
        res.on('data', (chunk) => {
            seen += chunk.length;
            if (seen > http_body/* DRAIN_LIMIT */.f1)
                res.destroy();
        });
        res.once('end', () => resolve());
        res.once('close', () => resolve());
        res.on('error', () => resolve());
        res.resume();
    });
    return body;
}

// EXTERNAL MODULE: ./src/http/raw.ts + 1 modules
var raw = __webpack_require__(2696);
;// CONCATENATED MODULE: ./src/http/client.ts









function isLoopbackHost(hostname) {
    const host = hostname.replace(/^\[|\]$/g, '');
    if (host === 'localhost' || host.endsWith('.localhost'))
        return true;
    if ((0,external_node_net_.isIP)(host) === 4)
        return host.startsWith('127.');
    return host === '::1';
}
/**
 * A thin layer over the HTTP clients: URL policy, origin-bound credentials, manual redirects,
 * error codes. Without a proxy, every request whose body is absent or a buffer goes through
 * node:http (see native.ts); undici carries uploads (a stream body) and everything through a
 * proxy. undici is loaded on its first use: its Agent loads node:http2 and compiles a WebAssembly
 * parser (~25 MiB of RSS together), which a pull or a restore (its lookup is a small POST) never
 * needs.
 */
class HttpClient {
    options;
    timers;
    dispatcher;
    /** Requests without a stream body when no proxy is set (see native.ts). */
    native;
    /** Bulk bodies (http and https) with no credentials, when no proxy is set (see raw.ts). */
    raw;
    /** The system's CAs plus the extra one, when there is one. */
    ca;
    /** The proxy settings, when a proxy is set for http or https (then every request takes undici). */
    proxy;
    /**
     * `timers` runs the whole-request deadline and the upload watchdog (tests inject a clock they
     * step); by default the wall clock with unref'd timers, so an answer nobody reads to its end
     * never keeps the process alive.
     */
    constructor(options, timers = backgroundTimers) {
        this.options = options;
        this.timers = timers;
        // node:tls only where it is needed (an http: pull never loads it; see native.ts).
        const ca = options.extraCa
            ? [...process.getBuiltinModule('node:tls').getCACertificates('default'), options.extraCa]
            : undefined;
        this.ca = ca;
        const proxy = options.proxy;
        this.proxy = proxy && (proxy.httpProxy || proxy.httpsProxy) ? proxy : undefined;
        this.native = this.proxy
            ? undefined
            : new NativeTransport({
                connections: options.connections,
                ca,
                stallTimeoutMs: options.stallTimeoutMs,
            });
        this.raw = this.proxy
            ? undefined
            : new raw/* RawTransport */.A0({
                connections: options.connections,
                stallTimeoutMs: options.stallTimeoutMs,
                ...(ca ? { ca } : {}),
            });
    }
    undici() {
        this.dispatcher ??= Promise.all(/* import() */[__webpack_require__.e(7), __webpack_require__.e(150)]).then(__webpack_require__.bind(__webpack_require__, 1150)).then(({ Agent, EnvHttpProxyAgent }) => {
            const { options, ca, proxy } = this;
            const common = {
                connections: options.connections,
                // One TCP flow per range is the point of parallel ranges; h2 would multiplex them all.
                allowH2: false,
                headersTimeout: options.stallTimeoutMs,
                bodyTimeout: options.stallTimeoutMs,
                connect: ca ? { ca } : {},
            };
            return proxy
                ? new EnvHttpProxyAgent({
                    ...common,
                    httpProxy: proxy.httpProxy,
                    httpsProxy: proxy.httpsProxy,
                    noProxy: proxy.noProxy,
                    ...(ca ? { requestTls: { ca } } : {}),
                })
                : new Agent(common);
        });
        return this.dispatcher;
    }
    /** Throws unless the URL is https, or http to loopback, or http with `insecure`. */
    checkUrl(url) {
        let parsed;
        try {
            parsed = new URL(url);
        }
        catch {
            throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `not a valid URL: ${(0,errors/* redactUrl */.BO)(url)}`);
        }
        if (parsed.protocol === 'https:')
            return parsed;
        if (parsed.protocol === 'http:') {
            if (this.options.insecure || isLoopbackHost(parsed.hostname))
                return parsed;
            throw new errors/* ModelPullError */.Vy('ERR_INSECURE_URL', `refusing plain http to ${parsed.host} (${(0,errors/* redactUrl */.BO)(url)}); use https or set insecure`);
        }
        throw new errors/* ModelPullError */.Vy('ERR_INSECURE_URL', `unsupported URL scheme ${parsed.protocol} in ${(0,errors/* redactUrl */.BO)(url)}`);
    }
    /** The minimum rate of model-byte streams (see HttpOptions.minRate). */
    get minRate() {
        return this.options.minRate ?? { bytes: 32 * 1024, windowMs: this.options.stallTimeoutMs };
    }
    async request(url, options = {}) {
        if (isStream(options.body))
            return this.upload(url, options, options.body);
        const deadline = options.stream ? undefined : this.deadline(url, options.signal);
        try {
            const response = await this.follow(url, options, deadline?.signal ?? options.signal);
            deadline?.until(response.body);
            return response;
        }
        catch (error) {
            deadline?.cancel();
            throw error;
        }
    }
    /**
     * A request whose body is a stream of model bytes. undici's headers timeout runs from the
     * first byte sent, so it would cut any upload longer than the stall timeout; instead the
     * upload stalls when the server takes no byte for the stall timeout, and the answer must come
     * within `answerTimeoutMs` of the last byte.
     */
    async upload(url, options, body) {
        const stall = this.options.stallTimeoutMs;
        const answerDefault = this.options.requestDeadlineMs ?? Math.max(60_000, 2 * stall);
        const host = (0,http_errors/* hostOf */.w4)(url);
        const where = (0,errors/* redactUrl */.BO)(url);
        const controller = new AbortController();
        // One watchdog on the client's clock (so tests can step it), not a timer per chunk: each
        // chunk only moves `since`; the watchdog sleeps until the current limit runs out.
        const stopped = new AbortController();
        let since = this.timers.now();
        let limit = { ms: stall, why: `${where} took no upload bytes within the stall timeout` };
        const arm = (ms, why) => {
            since = this.timers.now();
            limit = { ms, why };
        };
        void (async () => {
            for (;;) {
                const left = since + limit.ms - this.timers.now();
                if (left <= 0)
                    return controller.abort(new errors/* ModelPullError */.Vy('ERR_STALLED', limit.why, { host }));
                await this.timers.sleep(left, stopped.signal);
            }
        })().catch(() => undefined); // stopped: the answer came
        const watched = body.pipe(new external_node_stream_.Transform({
            transform(chunk, _encoding, done) {
                arm(stall, `${where} took no upload bytes within the stall timeout`);
                done(null, chunk);
            },
            flush(done) {
                // The last bytes may still sit in socket buffers: the answer gets the metadata deadline.
                arm(options.answerTimeoutMs ?? answerDefault, `no answer from ${where} after the upload`);
                done();
            },
        }));
        body.once('error', (error) => watched.destroy(error));
        const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
        try {
            return await this.follow(url, { ...options, body: watched }, signal);
        }
        finally {
            stopped.abort();
            if (!body.destroyed)
                body.destroy();
        }
    }
    async follow(url, options, signal) {
        const maxRedirects = options.maxRedirects ?? 5;
        const firstOrigin = new URL(url).origin;
        let current = url;
        for (let hop = 0;; hop++) {
            const target = this.checkUrl(current);
            const headers = { 'user-agent': this.options.userAgent, ...options.headers };
            const credited = options.credentials !== undefined && options.credentials.origin === target.origin;
            if (credited)
                Object.assign(headers, options.credentials.headers);
            checkHeaders(headers, current);
            let answer;
            const method = options.method ?? 'GET';
            try {
                // A secret never rides the raw reader: it only carries requests that have none.
                const direct = this.raw !== undefined &&
                    options.stream === true &&
                    options.direct === true &&
                    method === 'GET' &&
                    options.body === undefined &&
                    !credited &&
                    (0,raw/* rawEligible */.UL)(target, headers);
                if (direct) {
                    try {
                        answer = await this.raw.send(target, headers, signal);
                    }
                    catch (error) {
                        // Not an answer it reads (chunked, an interim 1xx): node:http sends it again.
                        if (!(error instanceof raw/* ForeignAnswer */.J6))
                            throw error;
                    }
                }
                answer ??=
                    this.native && !isStream(options.body)
                        ? await this.native.send(target, method, headers, signal, options.body)
                        : await (await this.undici()).request({
                            origin: target.origin,
                            path: target.pathname + target.search,
                            method,
                            headers,
                            ...(options.body !== undefined ? { body: options.body } : {}),
                            // An upload guards its own time (see upload()).
                            ...(isStream(options.body) ? { headersTimeout: 0 } : {}),
                            signal,
                        });
            }
            catch (error) {
                throw (0,http_errors/* networkError */.x6)(signal?.aborted ? (signal.reason ?? error) : error, current);
            }
            const res = answer;
            const location = res.headers.location;
            const follows = maxRedirects > 0 && (method === 'GET' || method === 'HEAD');
            if (res.statusCode >= 300 && res.statusCode < 400 && location && follows) {
                await res.body.dump().catch(() => undefined);
                if (hop >= maxRedirects) {
                    throw new errors/* ModelPullError */.Vy('ERR_REDIRECT', `too many redirects from ${(0,errors/* redactUrl */.BO)(url)}`);
                }
                current = new URL(String(location), current).toString();
                continue;
            }
            const body = res.body;
            // Errors while streaming the body get the same codes as errors before it.
            return {
                status: res.statusCode,
                headers: res.headers,
                body,
                url: current,
                crossedOrigin: new URL(current).origin !== firstOrigin,
            };
        }
    }
    /**
     * A whole-request deadline: aborts the request (and its body, once returned) with
     * ERR_TOO_SLOW, which callers retry like a stall. Cleared when the body closes.
     */
    deadline(url, outer) {
        const ms = this.options.requestDeadlineMs ?? Math.max(60_000, 2 * this.options.stallTimeoutMs);
        const controller = new AbortController();
        const cancelled = new AbortController();
        this.timers.sleep(ms, cancelled.signal).then(() => controller.abort(new errors/* ModelPullError */.Vy('ERR_TOO_SLOW', `no complete answer from ${(0,errors/* redactUrl */.BO)(url)} within ${ms / 1000} s`, { host: (0,http_errors/* hostOf */.w4)(url) })), () => undefined);
        const cancel = () => cancelled.abort();
        return {
            signal: outer ? AbortSignal.any([outer, controller.signal]) : controller.signal,
            cancel,
            until: (body) => {
                if (body.closed)
                    cancel();
                else
                    body.once('close', cancel);
            },
        };
    }
    /** GET a JSON document; non-2xx becomes a status error (see `statusError`). */
    async getJson(url, options = {}) {
        const response = await this.request(url, {
            ...options,
            headers: { accept: 'application/json', ...options.headers },
        });
        if (response.status < 200 || response.status >= 300)
            throw await (0,http_body/* statusError */.$C)(response);
        return { json: await (0,http_body/* readJson */.Vh)(response, http_body/* BODY_LIMITS */.Mu.json, 'the answer'), response };
    }
    async close() {
        this.native?.close();
        this.raw?.close();
        if (this.dispatcher)
            await (await this.dispatcher).close();
    }
}
const backgroundTimers = {
    now: () => Date.now(),
    sleep: (ms, signal) => new Promise((resolve, reject) => {
        if (signal?.aborted)
            return reject(signal.reason);
        const timer = setTimeout(resolve, ms);
        timer.unref();
        signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(signal.reason);
        }, { once: true });
    }),
};
function isStream(body) {
    return typeof body === 'object' && body !== null && typeof body.pipe === 'function';
}
/**
 * Header values with control characters (a token pasted with its newline) are refused before
 * anything is sent: undici would throw on every attempt, and the error looked like a network
 * fault worth a minute of retries. The value itself is never quoted: it is usually a secret.
 */
function checkHeaders(headers, url) {
    for (const [name, value] of Object.entries(headers)) {
        // biome-ignore lint/suspicious/noControlCharactersInRegex: exactly what is refused
        if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) {
            throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `the ${name} header for ${(0,errors/* redactUrl */.BO)(url)} contains a line break or control character (a token copied with its newline?)`);
        }
    }
}


/***/ }),

/***/ 8549:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   Iy: () => (/* binding */ stalledError),
/* harmony export */   w4: () => (/* binding */ hostOf),
/* harmony export */   x6: () => (/* binding */ networkError)
/* harmony export */ });
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(3916);

/**
 * Errors whose only cure is a different certificate setup: Node's and OpenSSL's verification
 * codes (UNABLE_TO_VERIFY_LEAF_SIGNATURE, SELF_SIGNED_CERT_IN_CHAIN, CERT_HAS_EXPIRED,
 * ERR_TLS_CERT_ALTNAME_INVALID, …).
 */
const TLS_CODE = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/;
/** `name[:port]` of a URL, for errors and retry lines; undefined when it does not parse. */
function hostOf(url) {
    try {
        return new URL(url).host;
    }
    catch {
        return undefined;
    }
}
/** A request or body that brought no byte for the stall timeout (every transport says it so). */
function stalledError(url, cause) {
    return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_STALLED', `no data from ${(0,_errors_js__WEBPACK_IMPORTED_MODULE_0__/* .redactUrl */ .BO)(url)} within the stall timeout`, {
        ...(cause === undefined ? {} : { cause }),
        host: hostOf(url),
    });
}
/**
 * Maps a thrown undici/socket error to our codes. Stalls, resets and refused connections are
 * worth a retry (the last only a few); a name that does not resolve, a refused certificate or an
 * invalid header value are not, and fail at once.
 */
function networkError(error, url) {
    if (error instanceof _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy)
        return error;
    const code = errorCode(error);
    const name = error?.name ?? '';
    const host = hostOf(url);
    const where = (0,_errors_js__WEBPACK_IMPORTED_MODULE_0__/* .redactUrl */ .BO)(url);
    const opts = { cause: error, host };
    if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
        return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_ABORTED', `request to ${where} was aborted`, opts);
    }
    if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
        return stalledError(url, error);
    }
    // Not `instanceof Error`: errors from another realm (a VM context, a worker) fail that test.
    const message = error?.message;
    const detail = typeof message === 'string' && message ? message : String(error);
    if (code === 'ENOTFOUND') {
        const hostname = host ? new URL(url).hostname : 'the host';
        return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_DNS', `network error from ${where}: ${hostname} does not resolve (${code})`, opts);
    }
    if (code === 'ECONNREFUSED') {
        return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_CONNECTION_REFUSED', `network error from ${where}: ${detail}`, opts);
    }
    if (TLS_CODE.test(code)) {
        // Node's own text suggests --use-system-ca, which a user of the action cannot pass.
        return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_TLS', `network error from ${where}: its certificate was refused (${code}); if the server uses a private or self-signed CA, trust it with ca-cert (--ca-cert)`, opts);
    }
    if (code === 'UND_ERR_INVALID_ARG' ||
        code === 'ERR_INVALID_CHAR' ||
        code === 'ERR_HTTP_INVALID_HEADER_VALUE') {
        return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_BAD_INPUT', `cannot send the request to ${where}: ${detail}`, opts);
    }
    return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_NETWORK', `network error from ${where}: ${detail}`, opts);
}
/** The error's own code, or its cause's (a proxy or fetch-style wrapper keeps the socket's there). */
function errorCode(error) {
    const own = error?.code;
    if (typeof own === 'string' && own !== 'UND_ERR_SOCKET')
        return own;
    const inner = error?.cause?.code;
    if (typeof inner === 'string')
        return inner;
    return typeof own === 'string' ? own : '';
}


/***/ }),

/***/ 2696:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  J6: () => (/* binding */ ForeignAnswer),
  X7: () => (/* binding */ RawBody),
  A0: () => (/* binding */ RawTransport),
  UL: () => (/* binding */ rawEligible)
});

// UNUSED EXPORTS: READ_BUFFER_BYTES

// EXTERNAL MODULE: external "node:net"
var external_node_net_ = __webpack_require__(7030);
// EXTERNAL MODULE: external "node:stream"
var external_node_stream_ = __webpack_require__(7075);
// EXTERNAL MODULE: ./src/errors.ts
var errors = __webpack_require__(3916);
// EXTERNAL MODULE: ./src/http/body.ts
var body = __webpack_require__(9662);
// EXTERNAL MODULE: ./src/http/errors.ts
var http_errors = __webpack_require__(8549);
;// CONCATENATED MODULE: ./src/http/raw-head.ts
/**
 * The most a response head may take (status line and header lines with their CRLFs, and the
 * empty line): node:http's default bound. A server sending more is broken or hostile.
 */
const MAX_HEAD_BYTES = 16 * 1024;
/** The end of the head in `bytes` (the index after its empty line), or -1 while it is incomplete. */
function headEnd(bytes) {
    const at = bytes.indexOf('\r\n\r\n', 0, 'latin1');
    return at < 0 ? -1 : at + 4;
}
/** RFC 9110's token (a header name) and the characters a field value may hold (no controls). */
const TOKEN_SOURCE = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const TEXT_SOURCE = '[\\t\\x20-\\x7e\\x80-\\xff]';
const TOKEN = new RegExp(`^${TOKEN_SOURCE}$`);
const FIELD_VALUE = new RegExp(`^${TEXT_SOURCE}*$`);
const STATUS_LINE = new RegExp(`^HTTP/1\\.([01]) ([1-9]\\d\\d)(?: ${TEXT_SOURCE}*)?$`);
const HEADER_LINE = new RegExp(`^(${TOKEN_SOURCE}):[\\t ]*(${TEXT_SOURCE}*?)[\\t ]*$`);
const DIGITS = /^\d{1,16}$/;
/**
 * Headers that say one thing: a second copy that differs makes the head malformed (two lengths
 * or two ranges would let a server pick which one we believe); equal copies count once.
 */
const SINGLE = new Set([
    'content-length',
    'content-range',
    'content-type',
    'content-encoding',
    'location',
    'retry-after',
    'etag',
    'last-modified',
]);
/**
 * Parses a complete response head (`text`: its bytes as latin1, the final empty line included)
 * by RFC 9112's grammar with no leniency: every line ends in CRLF (a bare CR or LF, a NUL or any
 * other control character outside HTAB is refused), no line folding, header names are tokens, and
 * the body length follows from the status and the headers alone. Header names come out in lower
 * case, repeated values joined with ", " (set-cookie kept as a list), as node:http gives them.
 */
function parseHead(text) {
    if (!text.endsWith('\r\n\r\n'))
        return { kind: 'malformed', why: 'the head does not end with an empty line' };
    const lines = text.slice(0, -4).split('\r\n');
    const status = STATUS_LINE.exec(lines[0]);
    if (!status)
        return { kind: 'malformed', why: 'bad status line' };
    const minor = status[1];
    const statusCode = Number(status[2]);
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
        const match = HEADER_LINE.exec(lines[i]);
        if (!match)
            return { kind: 'malformed', why: 'bad header line' };
        const name = match[1].toLowerCase();
        const value = match[2];
        const seen = headers[name];
        if (seen === undefined)
            headers[name] = name === 'set-cookie' ? [value] : value;
        else if (Array.isArray(seen))
            seen.push(value);
        else if (SINGLE.has(name)) {
            if (seen !== value)
                return { kind: 'malformed', why: `conflicting ${name} headers` };
        }
        else
            headers[name] = `${seen}, ${value}`;
    }
    if (statusCode < 200)
        return { kind: 'foreign', why: `interim answer ${statusCode}` };
    const connection = String(headers.connection ?? '').toLowerCase();
    const keepAlive = minor === '1' ? !/(^|[\s,])close($|[\s,])/.test(connection) : false;
    if (statusCode === 204 || statusCode === 304) {
        return { kind: 'head', head: { statusCode, headers, bodyLength: 0, reusable: keepAlive } };
    }
    const coding = headers['transfer-encoding'];
    if (coding !== undefined) {
        // A length beside a coding is how requests are smuggled: refused, not guessed at.
        if (headers['content-length'] !== undefined) {
            return { kind: 'malformed', why: 'both Transfer-Encoding and Content-Length' };
        }
        // Only plain chunked is read here; other codings (gzip, chunked) go to node:http.
        if (String(coding).toLowerCase() !== 'chunked' || minor !== '1') {
            return { kind: 'foreign', why: `Transfer-Encoding ${String(coding).slice(0, 40)}` };
        }
        return { kind: 'head', head: { statusCode, headers, bodyLength: 'chunked', reusable: keepAlive } };
    }
    const length = headers['content-length'];
    if (length === undefined) {
        return { kind: 'head', head: { statusCode, headers, bodyLength: 'close', reusable: false } };
    }
    if (typeof length !== 'string' || !DIGITS.test(length) || !Number.isSafeInteger(Number(length))) {
        return { kind: 'malformed', why: 'bad content-length' };
    }
    return { kind: 'head', head: { statusCode, headers, bodyLength: Number(length), reusable: keepAlive } };
}
/** The most a chunk-size line or the trailer section may take. */
const MAX_CHUNK_LINE = 1024;
const CHUNK_SIZE = /^([0-9a-fA-F]{1,12})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;
/**
 * Reads a chunked body (RFC 9112 §7.1) as it arrives, as strictly as the head: every line ends
 * in CRLF, a chunk's data is followed by exactly CRLF, sizes are at most 12 hex digits, size
 * lines and the trailer section are bounded, and trailer fields are read and dropped. Servers
 * answer errors and redirects this way (node:http does for a status with no length), so those
 * answers are read here and not sent again.
 */
class ChunkedDecoder {
    state = 'size';
    line = '';
    left = 0;
    trailer = 0;
    /**
     * Takes the next bytes of the body; its data goes to `out` as views of `bytes`. Returns the
     * index just after the body's last byte once it ends within `bytes`, -1 while it goes on.
     * Throws an Error naming what is malformed.
     */
    feed(bytes, out) {
        let i = 0;
        while (i < bytes.length) {
            if (this.state === 'data') {
                const n = Math.min(this.left, bytes.length - i);
                out(bytes.subarray(i, i + n));
                i += n;
                this.left -= n;
                if (this.left === 0)
                    this.state = 'data-end';
                continue;
            }
            const lf = bytes.indexOf(10, i);
            const stop = lf < 0 ? bytes.length : lf + 1;
            this.line += bytes.toString('latin1', i, stop);
            i = stop;
            const limit = this.state === 'trailer' ? MAX_HEAD_BYTES - this.trailer : MAX_CHUNK_LINE;
            if (this.line.length > limit)
                throw new Error('a chunk line or the trailer is too long');
            if (lf < 0)
                break;
            const line = this.line;
            this.line = '';
            if (!line.endsWith('\r\n'))
                throw new Error('a chunk line does not end with CRLF');
            const text = line.slice(0, -2);
            if (this.state === 'data-end') {
                if (text !== '')
                    throw new Error('chunk data longer than its size');
                this.state = 'size';
            }
            else if (this.state === 'size') {
                const size = CHUNK_SIZE.exec(text);
                if (!size)
                    throw new Error('bad chunk size');
                this.left = Number.parseInt(size[1], 16);
                this.state = this.left === 0 ? 'trailer' : 'data';
            }
            else {
                if (text === '')
                    return i;
                if (!HEADER_LINE.test(text))
                    throw new Error('bad trailer line');
                this.trailer += line.length;
            }
        }
        return -1;
    }
}

;// CONCATENATED MODULE: ./src/http/raw.ts






/**
 * The transport's one body buffer, shared by all its connections: every read of a body lands
 * here, and its bytes are written and hashed inside the read callback, before the next read (of
 * any connection: reads run one at a time on this thread) reuses it. Measured on the 1 GiB
 * loopback (issue 17): reading into one reused 1 MiB block cost 1.22-1.28x curl's CPU, 64 KiB
 * ~1.6x, node:http (a fresh buffer per read, and its parser's copy of every body chunk)
 * 1.7-2.0x. One block per connection (16 MiB with 16 connections) took the capped case's peak
 * RSS from 70 to 83-86 MiB in the bench.
 *
 * A head is read into its connection's own small buffer (HEAD_BUFFER_BYTES) instead: the body
 * bytes that come in the head's read must wait there, the socket paused, until the engine has
 * looked at the head and starts reading (a promise later). Copying them out of a shared block
 * cost more than it saved: up to 1 MiB of fresh memory per request (capped case: 86-106 MiB peak
 * RSS, and slower).
 */
const READ_BUFFER_BYTES = 1024 * 1024;
/** Each connection's buffer for the read that brings a head (and the body's first bytes). */
const HEAD_BUFFER_BYTES = 16 * 1024;
/**
 * Why a request went no further on the raw reader: its answer is not one it reads (a
 * Transfer-Encoding, an interim 1xx). The request was sent once; the caller sends it again
 * through node:http, which reads every answer.
 */
class ForeignAnswer extends Error {
}
/**
 * The TLS alert a server sends when it speaks none of the protocols we offered (an h2-only
 * server refusing http/1.1): node:https offers none, so the request goes there, as today.
 */
const NO_APPLICATION_PROTOCOL = 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL';
/** What node:http's answer reports when the connection ends before the body's last byte. */
function cutShort() {
    return Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
}
/** What node:http reports when the connection ends before the answer's head. */
function hangUp() {
    return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}
/**
 * An HTTP/1.1 reader of our own for the bulk of the bytes: ranged GETs of blob bodies over plain
 * http or https that go to a file. Body reads land in one reused buffer (net.Socket's `onread`, see
 * READ_BUFFER_BYTES), and their bytes are handed to a synchronous sink (written at their
 * position and hashed) inside the read callback, then the buffer is read into again: curl's
 * model, with no allocation or copy per read. Everything else stays on node:http (native.ts).
 *
 * Rules, because the answer is untrusted:
 * - The head is bounded (MAX_HEAD_BYTES) and parsed strictly (raw-head.ts); a malformed one is a
 *   network error, retried like a reset. A chunked body is read (as a stream: servers answer
 *   errors and redirects so); another Transfer-Encoding, or an interim 1xx answer, is not read
 *   here at all: `send` throws ForeignAnswer and the client sends the request again on node:http.
 * - The body is its Content-Length (one value, or equal copies; never beside a
 *   Transfer-Encoding), never a byte more; with neither it runs to the connection's close and
 *   the connection is not reused. A body that ends
 *   short fails like node:http's ('aborted', ECONNRESET), which the engine retries and resumes.
 * - Bytes after the declared body (in the same read, or while the connection is idle) mean the
 *   connection is out of step: it is closed, never reused.
 * - No credentials ride on this path: client.ts sends a request here only when it carries none
 *   and no proxy is set, so nothing here decides where a secret may go.
 * - Connections per origin are bounded like node:http's agent (`connections`, requests beyond
 *   wait for one), idle ones kept (last in, first out) and closed by `close`.
 * - Stall: the head must come within the stall timeout of the request (a server trickling its
 *   head never goes idle); then no byte for the stall timeout while a reader waits is ERR_STALLED.
 *   The caller's abort signal ends the request and its body with the signal's reason.
 * - https: each connection is a TLS socket (node:tls, which takes `onread` too: each decrypted
 *   record lands in the same buffer) with certificate verification on, the client's CAs (`ca`,
 *   exactly what node:https's agent gets), SNI for a host name (never an IP literal) and ALPN
 *   offering http/1.1 only. The request is written once the handshake is done and the server
 *   chose http/1.1 or nothing; a server that chose anything else, or refused http/1.1 with a
 *   TLS alert, gets ForeignAnswer (node:https, which offers no ALPN, sends it again). TLS
 *   errors are the socket's own, as node:https reports them, so client.ts maps them alike.
 * - Connections are kept per origin, scheme included: an http and an https origin on one
 *   host:port never share one.
 */
class RawTransport {
    options;
    origins = new Map();
    closed = false;
    buffer;
    /** Hands every read the shared buffer (net.Socket asks again after each read). */
    readBuffer = () => {
        this.buffer ??= Buffer.allocUnsafe(this.options.bufferBytes ?? READ_BUFFER_BYTES);
        return this.buffer;
    };
    constructor(options) {
        this.options = options;
    }
    /**
     * Sends one GET (`headers` as given, plus Host and keep-alive) and resolves with the answer's
     * head once it is in; its body is read through `answer.body`. Rejects with the socket's error,
     * ERR_STALLED, a malformed head's network error, the signal's reason, or ForeignAnswer.
     */
    async send(target, headers, signal) {
        if (this.closed)
            throw new Error('the raw transport is closed');
        const origin = this.origin(target);
        const request = requestBytes(target, headers);
        // A kept connection the server closed meanwhile fails before any byte of the answer: the
        // request goes once more on a new connection (node:http's agent would have dropped it too).
        for (let attempt = 0;; attempt++) {
            const connection = await origin.acquire(signal);
            try {
                return await connection.exchange(request, target.toString(), signal);
            }
            catch (error) {
                const reset = !(error instanceof errors/* ModelPullError */.Vy) && !(error instanceof ForeignAnswer);
                if (attempt === 0 && reset && connection.reused && connection.silent && !signal?.aborted)
                    continue;
                throw error;
            }
        }
    }
    origin(target) {
        const secure = target.protocol === 'https:';
        const port = Number(target.port || (secure ? 443 : 80));
        const key = `${target.protocol}//${target.hostname}:${port}`;
        let origin = this.origins.get(key);
        if (!origin) {
            const ca = this.options.ca;
            origin = new Origin(target.hostname.replace(/^\[|\]$/g, ''), port, {
                connections: this.options.connections,
                stallTimeoutMs: this.options.stallTimeoutMs,
                readBuffer: this.readBuffer,
                tls: secure ? { ...(ca ? { ca: [...ca] } : {}) } : undefined,
            });
            this.origins.set(key, origin);
        }
        return origin;
    }
    /** Closes every connection, idle or busy (a body still being read fails). */
    close() {
        this.closed = true;
        for (const origin of this.origins.values())
            origin.close();
        this.origins.clear();
    }
}
/** One origin's connections: at most `connections` at once, idle ones kept for the next request. */
class Origin {
    host;
    port;
    options;
    idle = [];
    busy = new Set();
    waiting = [];
    closed = false;
    constructor(host, port, options) {
        this.host = host;
        this.port = port;
        this.options = options;
    }
    async acquire(signal) {
        while (this.busy.size >= this.options.connections) {
            if (signal?.aborted)
                throw signal.reason;
            await new Promise((resolve, reject) => {
                const wake = () => {
                    signal?.removeEventListener('abort', onAbort);
                    resolve();
                };
                const onAbort = () => {
                    const at = this.waiting.indexOf(wake);
                    if (at >= 0)
                        this.waiting.splice(at, 1);
                    reject(signal.reason);
                };
                this.waiting.push(wake);
                signal?.addEventListener('abort', onAbort, { once: true });
            });
        }
        if (this.closed)
            throw new Error('the raw transport is closed');
        const kept = this.idle.pop();
        const connection = kept ?? new Connection(this.host, this.port, this.options, (c, keep) => this.release(c, keep));
        this.busy.add(connection);
        return connection;
    }
    /** A connection is done with its request: kept for the next one, or gone. */
    release(connection, keep) {
        if (!this.busy.delete(connection)) {
            // An idle connection that closed (or sent bytes nobody asked for).
            const at = this.idle.indexOf(connection);
            if (at >= 0)
                this.idle.splice(at, 1);
            return;
        }
        if (keep && !this.closed && this.idle.length < this.options.connections)
            this.idle.push(connection);
        else
            connection.destroy();
        this.waiting.shift()?.();
    }
    close() {
        this.closed = true;
        for (const connection of [...this.idle, ...this.busy])
            connection.destroy();
        this.idle.length = 0;
        for (const wake of this.waiting.splice(0))
            wake();
    }
}
/** One TCP (or TLS) connection and its head buffer, carrying one request at a time. */
class Connection {
    options;
    release;
    socket;
    /** A TLS connection's request waits here until the handshake is done and ALPN allows it. */
    unsent;
    secured;
    phase = 'idle';
    /** Served a request before this one. */
    reused = false;
    /** No byte of the current answer has arrived. */
    silent = true;
    headBytes = [];
    headLength = 0;
    url = '';
    head;
    /** Body bytes still to come (Infinity: until the connection closes, or its chunks end). */
    remaining = 0;
    /** Reads a chunked body. */
    chunks;
    /** Body bytes no reader has taken yet: in the head's buffer, or a copy (the socket is paused). */
    pending;
    /** Paused until a reader takes the body (bytes may wait in `pending`). */
    held = false;
    headBuffer = Buffer.allocUnsafe(HEAD_BUFFER_BYTES);
    body;
    answered;
    refused;
    headDeadline;
    signal;
    destroyed = false;
    constructor(host, port, options, release) {
        this.options = options;
        this.release = release;
        // Asked again after each read, for the next: the head's own buffer until a head is in.
        const onread = {
            buffer: () => (this.phase === 'body' ? options.readBuffer() : this.headBuffer),
            callback: this.onRead,
        };
        this.secured = options.tls === undefined;
        if (options.tls) {
            // Node 24's tls.connect takes `onread` (net.Socket's); its types do not say so yet.
            const tlsOptions = {
                host,
                port,
                ...((0,external_node_net_.isIP)(host) === 0 ? { servername: host } : {}),
                ...options.tls,
                ALPNProtocols: ['http/1.1'],
                onread,
            };
            // node:tls only where it is needed (an http: pull never loads it).
            const socket = process.getBuiltinModule('node:tls').connect(tlsOptions);
            socket.setNoDelay(true);
            socket.once('secureConnect', () => this.onSecure(socket));
            this.socket = socket;
        }
        else {
            this.socket = (0,external_node_net_.connect)({ host, port, noDelay: true, onread });
        }
        this.socket.on('error', (error) => {
            const code = error.code;
            this.fail(code === NO_APPLICATION_PROTOCOL ? new ForeignAnswer(error.message) : error);
        });
        this.socket.on('end', this.onEnd);
        this.socket.on('close', () => this.fail(hangUp()));
        this.socket.on('timeout', this.onIdle);
    }
    exchange(request, url, signal) {
        return new Promise((resolve, reject) => {
            this.url = url;
            this.answered = resolve;
            this.refused = reject;
            this.phase = 'head';
            this.silent = true;
            this.headBytes = [];
            this.headLength = 0;
            this.head = undefined;
            this.body = undefined;
            this.signal = signal;
            if (signal?.aborted)
                return this.fail(signal.reason);
            signal?.addEventListener('abort', this.onAbort, { once: true });
            this.headDeadline = setTimeout(() => this.fail(this.stalled()), this.options.stallTimeoutMs);
            this.socket.setTimeout(0);
            this.socket.ref();
            this.socket.resume();
            if (this.secured)
                this.socket.write(request, 'latin1');
            else
                this.unsent = request;
        });
    }
    /** The TLS handshake is done (certificate verified): HTTP/1.1 only, then the request goes. */
    onSecure(socket) {
        const protocol = socket.alpnProtocol;
        if (protocol !== false && protocol !== 'http/1.1') {
            this.fail(new ForeignAnswer(`the server chose ${String(protocol)} over TLS`));
            return;
        }
        this.secured = true;
        const request = this.unsent;
        this.unsent = undefined;
        if (request !== undefined && !this.destroyed)
            this.socket.write(request, 'latin1');
    }
    onAbort = () => this.fail(this.signal?.reason);
    stalled() {
        return (0,http_errors/* stalledError */.Iy)(this.url);
    }
    /** No byte for the stall timeout while the body is read; bytes a reader has not taken are its wait. */
    onIdle = () => {
        if (this.phase !== 'body' || this.held || (this.body?.readableLength ?? 0) > 0) {
            if (this.phase === 'body')
                this.socket.setTimeout(this.options.stallTimeoutMs);
            return;
        }
        this.fail(this.stalled());
    };
    /** Every socket read: `n` bytes at the start of the shared buffer, theirs until this returns. */
    onRead = (n, buffer) => {
        if (this.destroyed)
            return false;
        if (this.phase === 'head') {
            this.silent = false;
            return this.readHead(buffer.subarray(0, n));
        }
        if (this.phase === 'body')
            return this.readBody(buffer.subarray(0, n));
        // Bytes with no request waiting for them: the server is out of step with us.
        this.destroy();
        return false;
    };
    readHead(bytes) {
        const before = this.headLength;
        const room = MAX_HEAD_BYTES - before;
        const seen = Buffer.concat([...this.headBytes, bytes.subarray(0, room)]);
        const end = headEnd(seen);
        if (end < 0) {
            if (seen.length >= MAX_HEAD_BYTES) {
                this.fail(this.malformed(`its head is larger than ${MAX_HEAD_BYTES / 1024} KiB`));
                return false;
            }
            this.headBytes = [seen];
            this.headLength = seen.length;
            return true;
        }
        const verdict = parseHead(seen.toString('latin1', 0, end));
        if (verdict.kind === 'malformed') {
            this.fail(this.malformed(verdict.why));
            return false;
        }
        if (verdict.kind === 'foreign') {
            this.fail(new ForeignAnswer(verdict.why));
            return false;
        }
        const head = verdict.head;
        clearTimeout(this.headDeadline);
        this.headBytes = [];
        this.head = head;
        this.phase = 'body';
        this.remaining = typeof head.bodyLength === 'number' ? head.bodyLength : Number.POSITIVE_INFINITY;
        this.chunks = head.bodyLength === 'chunked' ? new ChunkedDecoder() : undefined;
        this.socket.setTimeout(this.options.stallTimeoutMs);
        this.body = new RawBody(this, typeof head.bodyLength === 'number' ? head.bodyLength : undefined);
        const answered = this.answered;
        this.answered = undefined;
        answered({ statusCode: head.statusCode, headers: head.headers, body: this.body });
        // The bytes after the head in this read (in the head's own buffer, which the next read
        // will not use) wait, the socket paused, until a reader comes.
        const rest = bytes.subarray(end - before);
        if (this.remaining === 0) {
            this.finish(rest.length === 0);
            return rest.length === 0;
        }
        this.pending = rest.length > 0 ? rest : undefined;
        this.held = true;
        return false;
    }
    malformed(why) {
        return new errors/* ModelPullError */.Vy('ERR_NETWORK', `network error from ${(0,errors/* redactUrl */.BO)(this.url)}: malformed HTTP answer (${why})`, { host: (0,http_errors/* hostOf */.w4)(this.url) });
    }
    /** Body bytes of one read: to the reader now, or held (socket paused) until it asks. */
    readBody(bytes) {
        const body = this.body;
        if (!body.flowing()) {
            // The socket is paused while nobody reads, but a TLS socket still hands over the rest of
            // the records it decrypted from its last TCP read: they queue behind the bytes held (in
            // order), and never as a view of the shared buffer.
            this.pending = this.pending ? Buffer.concat([this.pending, bytes]) : Buffer.from(bytes);
            this.held = true;
            return false;
        }
        return this.deliver(bytes);
    }
    /** Hands body bytes to the reader, never past the declared end; false pauses the socket. */
    deliver(bytes) {
        if (this.chunks)
            return this.deliverChunks(bytes);
        const take = bytes.length > this.remaining ? bytes.subarray(0, this.remaining) : bytes;
        const extra = take.length < bytes.length;
        this.remaining -= take.length;
        const more = take.length > 0 ? this.body.feed(take) : true;
        if (this.phase !== 'body')
            return false; // the reader stopped, or failed
        if (this.remaining === 0) {
            this.finish(!extra);
            return !extra;
        }
        if (!more)
            return false;
        return true;
    }
    /** A chunked body's bytes: its data to the reader, never a byte past its last chunk. */
    deliverChunks(bytes) {
        const body = this.body;
        let more = true;
        let end;
        try {
            end = this.chunks.feed(bytes, (data) => {
                // Data of one read after the reader stopped is dropped with the connection.
                if (this.phase === 'body' && data.length > 0)
                    more = body.feed(data) && more;
            });
        }
        catch (error) {
            this.fail(this.malformed(error.message));
            return false;
        }
        if (this.phase !== 'body')
            return false;
        if (end >= 0) {
            this.remaining = 0;
            this.finish(end === bytes.length);
            return end === bytes.length;
        }
        return more;
    }
    /** Called by the body when its reader wants bytes again. */
    resume() {
        if (this.phase !== 'body')
            return;
        this.held = false;
        const pending = this.pending;
        if (pending) {
            this.pending = undefined;
            // The reader may stop, or the body end, within these bytes (a kept connection reads on).
            if (!this.deliver(pending))
                return;
        }
        this.socket.resume();
    }
    /** The body is read to its declared end: the connection is kept when nothing else came. */
    finish(inStep) {
        this.phase = 'done';
        this.pending = undefined;
        this.socket.setTimeout(0);
        this.signal?.removeEventListener('abort', this.onAbort);
        const body = this.body;
        const keep = inStep && this.head.reusable && !this.destroyed;
        this.phase = keep ? 'idle' : 'done';
        this.reused = true;
        // A kept connection never holds the process open (as node:http's agent does with its own).
        if (keep)
            this.socket.unref();
        this.release(this, keep);
        body.ended();
    }
    onEnd = () => {
        // The end is read only while the socket reads, so no body bytes are held back here.
        if (this.phase === 'body' && this.remaining === Number.POSITIVE_INFINITY && !this.chunks) {
            // A body without a length ends with its connection.
            this.remaining = 0;
            this.finish(false);
            return;
        }
        this.fail(this.phase === 'body' ? cutShort() : hangUp());
    };
    /** The request or its body fails with `error`; the connection is closed. */
    fail(error) {
        clearTimeout(this.headDeadline);
        this.signal?.removeEventListener('abort', this.onAbort);
        const phase = this.phase;
        this.phase = 'done';
        this.pending = undefined;
        this.destroy();
        if (phase === 'head') {
            const refused = this.refused;
            this.answered = undefined;
            this.refused = undefined;
            refused?.(error);
        }
        else if (phase === 'body') {
            this.body?.failed(error instanceof Error ? error : new Error(String(error)));
        }
    }
    /** The reader stopped early: the rest of the body is in flight, so the connection goes. */
    abandon() {
        if (this.phase === 'body') {
            this.phase = 'done';
            this.pending = undefined;
            this.signal?.removeEventListener('abort', this.onAbort);
            clearTimeout(this.headDeadline);
        }
        this.destroy();
    }
    destroy() {
        if (this.destroyed)
            return;
        this.destroyed = true;
        this.socket.destroy();
        this.release(this, false);
    }
}
/**
 * An answer's body. The engine reads a bulk body through `pump` (each read's bytes, in place,
 * to a synchronous sink); anything else reads it as a stream (each chunk a copy), as it would
 * read node:http's: error snippets, the redirect's page, a body to discard.
 */
class RawBody extends external_node_stream_.Readable {
    connection;
    length;
    sink;
    wanted = false;
    /** How the body ended before a sink came (undefined: not yet; null: at its length). */
    outcome;
    told = false;
    constructor(connection, 
    /** The declared length (undefined: the body runs to the connection's close). */
    length) {
        super();
        this.connection = connection;
        this.length = length;
    }
    /** Reads the body into `sink` from now on (and never as a stream). */
    pump(sink) {
        if (this.sink)
            throw new Error('a body is read once');
        this.sink = sink;
        if (this.outcome !== undefined)
            this.tell(this.outcome ?? undefined);
        else
            this.connection.resume();
    }
    /**
     * undici's `dump`: the body is not wanted. A short one (a redirect's page) is read to its end
     * so its connection carries the next request; a longer one, or one of unknown length, is cut.
     */
    dump() {
        if (this.destroyed || this.readableEnded)
            return Promise.resolve();
        if (this.sink || this.length === undefined || this.length > body/* DRAIN_LIMIT */.f1) {
            this.destroy();
            return Promise.resolve();
        }
        return new Promise((resolve) => {
            this.on('error', () => resolve());
            this.once('close', () => resolve());
            this.resume();
        });
    }
    /** Whether a reader is taking bytes now. */
    flowing() {
        return this.sink !== undefined || this.wanted;
    }
    /** Bytes from the connection; false to pause it. */
    feed(view) {
        if (this.sink) {
            if (this.sink.data(view))
                return true;
            this.tell();
            this.connection.abandon();
            return false;
        }
        this.wanted = this.push(Buffer.from(view));
        return this.wanted;
    }
    ended() {
        if (this.sink) {
            this.tell();
            return;
        }
        this.outcome ??= null;
        this.push(null);
    }
    failed(error) {
        if (this.sink) {
            this.tell(error);
            return;
        }
        this.outcome ??= error;
        this.destroy(error);
    }
    tell(error) {
        if (this.told)
            return;
        this.told = true;
        this.sink.end(error);
    }
    _read() {
        this.wanted = true;
        this.connection.resume();
    }
    _destroy(error, callback) {
        if (this.outcome === undefined && !this.told) {
            this.outcome = error ?? new Error('the response body was destroyed');
            this.connection.abandon();
            if (this.sink)
                this.tell(this.outcome);
        }
        callback(error);
    }
}
/** The request's bytes: a GET with the caller's headers, Host, and keep-alive (HTTP/1.1's default). */
function requestBytes(target, headers) {
    let text = `GET ${target.pathname}${target.search} HTTP/1.1\r\nhost: ${target.host}\r\n`;
    for (const [name, value] of Object.entries(headers))
        text += `${name}: ${value}\r\n`;
    return `${text}connection: keep-alive\r\n\r\n`;
}
/**
 * Whether a request may go through the raw reader: header names that are tokens and values of
 * latin1 text without control characters (client.ts refused line breaks already), and no header
 * that carries a secret.
 */
function rawEligible(target, headers) {
    if (target.protocol !== 'http:' && target.protocol !== 'https:')
        return false;
    for (const [name, value] of Object.entries(headers)) {
        if (!TOKEN.test(name))
            return false;
        if (/^(authorization|proxy-authorization|cookie|host|connection|transfer-encoding|content-length)$/i.test(name))
            return false;
        if (!FIELD_VALUE.test(value))
            return false;
    }
    return true;
}


/***/ }),

/***/ 8902:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   GL: () => (/* binding */ nextRetry),
/* harmony export */   LH: () => (/* binding */ withRetries),
/* harmony export */   N7: () => (/* binding */ retryEvent),
/* harmony export */   R0: () => (/* binding */ isUnreachable),
/* harmony export */   cO: () => (/* binding */ DEFAULT_RETRY_POLICY),
/* harmony export */   eV: () => (/* binding */ describeRetry),
/* harmony export */   mu: () => (/* binding */ parseRetryAfter),
/* harmony export */   r3: () => (/* binding */ isRetryable)
/* harmony export */ });
/* unused harmony exports REFUSED_RETRIES, retriesFor, retryDelayMs, retryCause */
/* harmony import */ var _clock_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(9373);
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(3916);



const DEFAULT_RETRY_POLICY = {
    retries: 6,
    baseDelayMs: 1000,
    maxDelayMs: 30_000,
    maxRetryAfterMs: 120_000,
};
/**
 * Retries after a refused connection. A server that is restarting listens again within a
 * second or two; a host with nothing listening never will, and a minute of 2^n waits only
 * hides that from the user.
 */
const REFUSED_RETRIES = 2;
const RETRYABLE = new Set([
    'ERR_NETWORK',
    'ERR_CONNECTION_REFUSED',
    'ERR_STALLED',
    'ERR_TOO_SLOW',
    'ERR_TRUNCATED',
    'ERR_BAD_RANGE',
    'ERR_RATE_LIMITED',
]);
/** The code, never the message, decides: network faults, stalls, 429 and 5xx are worth another try. */
function isRetryable(error) {
    if (!(0,_errors_js__WEBPACK_IMPORTED_MODULE_1__/* .isModelPullError */ .pq)(error))
        return false;
    if (RETRYABLE.has(error.code))
        return true;
    return error.code === 'ERR_HTTP_STATUS' && error.status !== undefined && error.status >= 500;
}
/** The server could not be reached at all (or not for long enough): a local copy may stand in. */
function isUnreachable(error) {
    return isRetryable(error) || (0,_errors_js__WEBPACK_IMPORTED_MODULE_1__/* .isModelPullError */ .pq)(error, 'ERR_DNS');
}
/** Retries the policy allows for this error (fewer for a refused connection). */
function retriesFor(error, policy) {
    return error.code === 'ERR_CONNECTION_REFUSED' ? Math.min(policy.retries, REFUSED_RETRIES) : policy.retries;
}
/**
 * Delay before attempt `attempt` (1 = first retry): exponential with full jitter, unless the
 * server named a wait, which is honoured (plus a little jitter so a fleet does not stampede).
 * Returns undefined when the server's wait is longer than the policy accepts.
 */
function retryDelayMs(attempt, policy, retryAfterSeconds, random = Math.random) {
    if (retryAfterSeconds !== undefined) {
        const wait = retryAfterSeconds * 1000;
        if (wait > policy.maxRetryAfterMs)
            return undefined;
        return wait + Math.floor(random() * Math.min(1000, policy.baseDelayMs));
    }
    const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
    return Math.floor(ceiling / 2 + (random() * ceiling) / 2);
}
/**
 * Whether (and after how long) to try again after the `failures`-th failure in a row: undefined
 * when the error is not worth a retry, its budget is spent, or the server asks for too long a wait.
 */
function nextRetry(error, failures, policy, random = Math.random) {
    if (!isRetryable(error))
        return undefined;
    const max = retriesFor(error, policy);
    if (failures > max)
        return undefined;
    const delayMs = retryDelayMs(failures, policy, error.retryAfterSeconds, random);
    return delayMs === undefined ? undefined : { delayMs, max };
}
/** Words for the failure, as a retry line shows them. */
function retryCause(error) {
    switch (error.code) {
        case 'ERR_CONNECTION_REFUSED':
            return 'connection refused';
        case 'ERR_HTTP_STATUS':
            return `HTTP ${error.status}`;
        case 'ERR_RATE_LIMITED':
            return `rate-limited (HTTP ${error.status ?? 429})`;
        case 'ERR_STALLED':
            return 'no data';
        case 'ERR_TOO_SLOW':
            return 'too slow';
        case 'ERR_TRUNCATED':
            return 'connection closed early';
        case 'ERR_BAD_RANGE':
            return 'wrong byte range';
        default: {
            const code = error.cause?.code;
            if (code === 'ECONNRESET')
                return 'connection reset';
            if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT')
                return 'connection timed out';
            if (code === 'EAI_AGAIN')
                return 'name lookup failed';
            if (code === 'UND_ERR_SOCKET' || code === 'EPIPE')
                return 'connection closed';
            return 'network error';
        }
    }
}
/** `registry.ollama.ai: connection refused, retry 2/6 in 4 s (model.gguf)`. */
function describeRetry(event) {
    const wait = event.delayMs < 10_000 ? (event.delayMs / 1000).toFixed(1) : String(Math.round(event.delayMs / 1000));
    const where = event.host ? `${event.host}: ` : '';
    const what = event.subject ? ` (${event.subject})` : '';
    return `${where}${event.cause}, retry ${event.attempt}/${event.max} in ${wait} s${what}`;
}
/** Builds the event for a retry that `nextRetry` allowed. */
function retryEvent(error, attempt, plan, context = {}) {
    return {
        host: error.host ?? context.host,
        cause: retryCause(error),
        code: error.code,
        attempt,
        max: plan.max,
        delayMs: plan.delayMs,
        ...(context.subject !== undefined ? { subject: context.subject } : {}),
    };
}
/**
 * Seconds to wait from `Retry-After` (seconds or an HTTP date) or the IETF `RateLimit` header
 * the Hugging Face Hub sends (`"api";r=0;t=55`).
 */
function parseRetryAfter(headers, now = Date.now()) {
    const retryAfter = first(headers['retry-after']);
    if (retryAfter !== undefined) {
        if (/^\d+$/.test(retryAfter.trim()))
            return Number(retryAfter.trim());
        const at = Date.parse(retryAfter);
        if (!Number.isNaN(at))
            return Math.max(0, Math.ceil((at - now) / 1000));
    }
    const rateLimit = first(headers['ratelimit']);
    const t = rateLimit ? /(?:^|;)\s*t=(\d+)/.exec(rateLimit) : null;
    if (t)
        return Number(t[1]);
    return undefined;
}
function first(value) {
    return Array.isArray(value) ? value[0] : value;
}
/**
 * Runs `attempt` until it succeeds, fails with an error not worth retrying, or the policy is
 * spent; every retry is announced to the policy's listener first. For small requests
 * (manifests, listings); the engine keeps its own per-range loop on the same rules.
 */
async function withRetries(attempt, policy, options = {}) {
    const clock = options.clock ?? _clock_js__WEBPACK_IMPORTED_MODULE_0__/* .systemClock */ .m;
    for (let n = 1;; n++) {
        try {
            return await attempt();
        }
        catch (error) {
            const plan = nextRetry(error, n, policy, options.random);
            if (!plan)
                throw error;
            policy.onRetry?.(retryEvent(error, n, plan, { subject: options.subject }));
            await clock.sleep(plan.delayMs, options.signal);
        }
    }
}


/***/ }),

/***/ 9746:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   M0: () => (/* binding */ readLockEntries),
/* harmony export */   be: () => (/* binding */ writeLock)
/* harmony export */ });
/* unused harmony exports LOCK_VERSION, MAX_LOCK_BYTES, readLock, lockEntries, stableStringify */
/* harmony import */ var _atomic_write_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(8364);
/* harmony import */ var _digest_js__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(2187);
/* harmony import */ var _download_safe_fs_js__WEBPACK_IMPORTED_MODULE_2__ = __webpack_require__(5039);
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_3__ = __webpack_require__(3916);
/* harmony import */ var _refs_index_js__WEBPACK_IMPORTED_MODULE_4__ = __webpack_require__(8674);





/**
 * The lock file pins every line to the identity it resolved to (Ollama manifest digest and
 * bytes, HF commit and file list, URL sha256), so a run that reads it makes no tag or branch
 * lookup and knows its cache keys before any request. Sorted JSON, one model per key: stable
 * and reviewable in a diff.
 */
const LOCK_VERSION = 1;
/**
 * A lock holds each HF line's whole listing, as a snapshot record does, so it gets the record's
 * bound (MAX_RECORD_BYTES in sources/hf/record.ts); a file past it was not written by us.
 */
const MAX_LOCK_BYTES = 256 * 1024 * 1024;
function toEntry({ pin, ...rest }) {
    return { ...rest, digest: pin };
}
function fromEntry({ digest, ...rest }) {
    return { ...rest, pin: digest };
}
/**
 * The lock, or undefined when the file does not exist. It comes with the repository, so it is
 * read like any file from outside: bounded, never through a link, never blocking on a FIFO.
 */
async function readLock(path) {
    const read = await (0,_download_safe_fs_js__WEBPACK_IMPORTED_MODULE_2__/* .readBounded */ .CB)(path, MAX_LOCK_BYTES);
    if (read.kind === 'missing')
        return undefined;
    if (read.kind === 'refused')
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_3__/* .ModelPullError */ .Vy('ERR_LOCKFILE', `cannot read lock file ${path}: ${read.reason}`);
    const text = read.bytes.toString('utf8');
    let parsed;
    try {
        parsed = JSON.parse(text);
    }
    catch {
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_3__/* .ModelPullError */ .Vy('ERR_LOCKFILE', `lock file ${path} is not valid JSON`);
    }
    if (parsed?.version !== LOCK_VERSION || typeof parsed.models !== 'object' || parsed.models === null) {
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_3__/* .ModelPullError */ .Vy('ERR_LOCKFILE', `lock file ${path} is not a version ${LOCK_VERSION} model-pull lock`);
    }
    const models = {};
    for (const [line, entry] of Object.entries(parsed.models)) {
        checkEntry(path, line, entry);
        models[line] = fromEntry(entry);
    }
    return { version: LOCK_VERSION, models };
}
/**
 * Keys every entry by its line's canonical form, so a lock written as `hf:a/b` serves the line
 * `hf:a/b@main` (and locks written before keys were canonical keep working). An entry whose
 * key is no model line, whose source is not its line's, or which repeats another's line, is
 * refused: the file was edited by hand or by a newer model-pull.
 */
function lockEntries(lock, path, sources) {
    const entries = new Map();
    const keptAs = new Map();
    for (const [line, identity] of Object.entries(lock.models)) {
        let ref;
        try {
            ref = (0,_refs_index_js__WEBPACK_IMPORTED_MODULE_4__/* .parseLine */ .A)(line, sources);
        }
        catch (error) {
            throw new _errors_js__WEBPACK_IMPORTED_MODULE_3__/* .ModelPullError */ .Vy('ERR_LOCKFILE', `lock file ${path}: ${(0,_errors_js__WEBPACK_IMPORTED_MODULE_3__/* .describeError */ .Uc)(error)}`, {
                cause: error,
            });
        }
        if (identity.source !== ref.kind) {
            throw new _errors_js__WEBPACK_IMPORTED_MODULE_3__/* .ModelPullError */ .Vy('ERR_LOCKFILE', `lock file ${path} has a ${identity.source} entry for the ${ref.kind} line "${line}"`);
        }
        const other = keptAs.get(ref.key);
        if (other !== undefined) {
            throw new _errors_js__WEBPACK_IMPORTED_MODULE_3__/* .ModelPullError */ .Vy('ERR_LOCKFILE', `lock file ${path} has two entries for one model line: "${other}" and "${line}" (keep one)`);
        }
        keptAs.set(ref.key, line);
        entries.set(ref.key, identity);
    }
    return entries;
}
/** The entries of the lock file at `path` (named `shown` in messages); undefined when it does not exist. */
async function readLockEntries(path, shown, sources) {
    const lock = await readLock(path);
    return lock ? lockEntries(lock, shown, sources) : undefined;
}
/**
 * Writes atomically (temp file + rename) with sorted keys and a final newline; `entries` are
 * keyed by canonical line, which each entry's `ref` repeats.
 */
async function writeLock(path, entries) {
    const models = {};
    for (const [key, identity] of entries)
        models[key] = toEntry({ ...identity, ref: key });
    const text = `${stableStringify({ version: LOCK_VERSION, models })}\n`;
    await (0,_atomic_write_js__WEBPACK_IMPORTED_MODULE_0__/* .writeFileAtomic */ .Zf)(path, text);
}
function checkEntry(path, line, entry) {
    const ok = entry &&
        typeof entry === 'object' &&
        entry.ref === line &&
        typeof entry.source === 'string' &&
        typeof entry.name === 'string' &&
        typeof entry.digest === 'string' &&
        typeof entry.contentDigest === 'string' &&
        (0,_digest_js__WEBPACK_IMPORTED_MODULE_1__/* .isSha256Hex */ .P4)(entry.contentDigest) &&
        (entry.detail === undefined || (typeof entry.detail === 'object' && entry.detail !== null));
    if (!ok)
        throw new _errors_js__WEBPACK_IMPORTED_MODULE_3__/* .ModelPullError */ .Vy('ERR_LOCKFILE', `lock file ${path}: the entry for "${line}" is malformed`);
}
/** JSON with object keys sorted at every level, two-space indented. */
function stableStringify(value) {
    return JSON.stringify(sortKeys(value), null, 2);
}
function sortKeys(value) {
    if (Array.isArray(value))
        return value.map(sortKeys);
    if (value && typeof value === 'object') {
        return Object.fromEntries(Object.keys(value)
            .sort()
            .map((k) => [k, sortKeys(value[k])]));
    }
    return value;
}


/***/ }),

/***/ 7733:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  a: () => (/* binding */ pull)
});

// EXTERNAL MODULE: ./src/clock.ts
var src_clock = __webpack_require__(9373);
// EXTERNAL MODULE: ./src/constants.ts
var constants = __webpack_require__(7242);
// EXTERNAL MODULE: external "node:fs/promises"
var promises_ = __webpack_require__(1455);
// EXTERNAL MODULE: ./src/digest.ts
var src_digest = __webpack_require__(2187);
// EXTERNAL MODULE: ./src/errors.ts
var errors = __webpack_require__(3916);
// EXTERNAL MODULE: ./src/fs-dirs.ts
var fs_dirs = __webpack_require__(3341);
// EXTERNAL MODULE: ./src/http/body.ts
var body = __webpack_require__(9662);
// EXTERNAL MODULE: ./src/http/errors.ts
var http_errors = __webpack_require__(8549);
;// CONCATENATED MODULE: ./src/http/rate-guard.ts
/**
 * The minimum rate of a stream: bytes are counted in windows of `windowMs`, and a window that
 * ends with fewer than `bytes` makes the stream "too slow". A trickle (a byte a second) keeps
 * any idle timeout from firing, so without this a hostile or broken server holds a pull forever.
 * Checked as bytes arrive (time from the injected clock); silence is the stall timeout's job.
 */
class RateGuard {
    min;
    now;
    windowStart;
    windowBytes = 0;
    constructor(min, now) {
        this.min = min;
        this.now = now;
        this.windowStart = now();
    }
    /** Counts `n` new bytes; returns the window's byte count when it closed below the minimum. */
    add(n) {
        this.windowBytes += n;
        const t = this.now();
        if (t - this.windowStart < this.min.windowMs)
            return undefined;
        const seen = this.windowBytes;
        this.windowStart = t;
        this.windowBytes = 0;
        return seen < this.min.bytes ? seen : undefined;
    }
}

// EXTERNAL MODULE: ./src/http/raw.ts + 1 modules
var raw = __webpack_require__(2696);
// EXTERNAL MODULE: ./src/http/retry.ts
var http_retry = __webpack_require__(8902);
// EXTERNAL MODULE: ./src/report/format.ts
var format = __webpack_require__(2011);
// EXTERNAL MODULE: external "node:fs"
var external_node_fs_ = __webpack_require__(3024);
// EXTERNAL MODULE: ./src/memory.ts + 1 modules
var memory = __webpack_require__(9328);
;// CONCATENATED MODULE: ./src/download/body-writer.ts



/** Bytes handed to an asynchronous sink and not yet written, per connection, before we pause. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = HIGH_WATER / 4;
/**
 * Streams a response body into the staging file at its segment, until the body ends or a thief
 * has moved `segment.end` below what arrived. Writes are issued as chunks arrive, several at
 * once, and retired in order: awaiting each write before reading the next chunk paused the
 * parser on every chunk, and undici then re-joins the socket's buffered reads into new buffers
 * (a second copy of every byte, and twice the garbage).
 */
function writeBody(body, target) {
    return new Promise((resolve, reject) => {
        new BodyWriter(body, target, resolve, reject).start();
    });
}
class BodyWriter {
    body;
    target;
    resolve;
    reject;
    queue = [];
    segment;
    /** Offset of the next byte that arrives (writes in flight lie between pos and next). */
    next;
    inFlight = 0;
    ended = false;
    settled = false;
    /** The segment ends before the body does (a thief took the rest): we stop reading. */
    cut = false;
    /** A reset or stall: bytes that arrived before it are still good once their writes land. */
    failure;
    /** The sink's file descriptor: chunks are written synchronously, nothing is queued. */
    fd;
    constructor(body, target, resolve, reject) {
        this.body = body;
        this.target = target;
        this.resolve = resolve;
        this.reject = reject;
        this.segment = target.segment;
        this.next = this.segment.pos;
        const fd = target.file.fd;
        this.fd = typeof fd === 'number' ? fd : undefined;
    }
    start() {
        if (this.next >= this.segment.end) {
            this.settle();
            return;
        }
        this.body
            .on('data', this.onData)
            .on('end', this.onEnd)
            .on('error', this.onError)
            .on('close', this.onClose);
    }
    onData = (chunk) => {
        if (this.failure)
            return;
        const room = this.segment.end - this.next;
        if (room <= 0) {
            this.cut = true;
            this.body.pause();
            this.retire();
            return;
        }
        const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
        // Behind a queued write, a chunk waits its turn.
        if ((this.fd !== undefined || this.queue.length === 0) && this.writeNow(piece))
            return;
        const write = { offset: this.next, piece, done: false };
        this.queue.push(write);
        this.next += piece.length;
        this.inFlight += piece.length;
        this.target.file.write(piece, 0, piece.length, write.offset).then(({ bytesWritten }) => {
            // A short write means bytes we would count but never wrote: fail, never skip them.
            if (bytesWritten !== piece.length) {
                this.settle(writeError(Object.assign(new Error('short write'), { code: 'ENOSPC' })));
                return;
            }
            write.done = true;
            this.inFlight -= piece.length;
            try {
                this.retire();
            }
            catch (error) {
                this.settle(error instanceof Error ? error : new Error(String(error)));
            }
        }, (error) => this.settle(writeError(error)));
        this.noteCut();
        if (this.inFlight >= HIGH_WATER || this.cut)
            this.body.pause();
    };
    /**
     * A chunk written synchronously (to a file, or a window with room): counted and freed before
     * the next one is read. False when the sink cannot take it now (nothing happened).
     */
    writeNow(piece) {
        const offset = this.next;
        try {
            if (this.fd !== undefined) {
                const written = (0,external_node_fs_.writeSync)(this.fd, piece, 0, piece.length, offset);
                // A short write means bytes we would count but never wrote: fail, never skip them.
                if (written !== piece.length)
                    throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
            }
            else if (!this.target.file.tryWrite?.(piece, offset)) {
                return false;
            }
            this.next += piece.length;
            this.segment.pos = this.next;
            this.target.landed(offset, piece);
        }
        catch (error) {
            this.settle(writeError(error));
            return true;
        }
        (0,memory/* freeWhole */.QK)(piece);
        this.noteCut();
        if (this.cut)
            this.retire();
        return true;
    }
    onEnd = () => {
        this.ended = true;
        this.retire();
    };
    onError = (error) => {
        this.failure ??= this.target.bodyError(error);
        this.retire();
    };
    onClose = () => {
        if (!this.body.readableEnded)
            this.onError(new Error('the response body closed early'));
    };
    /** Reports written pieces in file order, then resumes, waits, or finishes. */
    retire() {
        const { segment } = this;
        while (this.queue[0]?.done && !this.settled) {
            const { offset, piece } = this.queue.shift();
            // A thief may have moved `end` below this piece while it was being written; the
            // overlap holds the same bytes the thief writes, but only our share counts as ours.
            const ours = Math.max(0, Math.min(piece.length, segment.end - offset));
            if (ours > 0) {
                segment.pos = offset + ours;
                this.target.landed(offset, ours === piece.length ? piece : piece.subarray(0, ours));
            }
            (0,memory/* freeWhole */.QK)(piece);
        }
        this.noteCut();
        if (this.inFlight <= LOW_WATER && this.body.isPaused() && !this.cut)
            this.body.resume();
        // The body's own end keeps the connection reusable; we cut it only when it has more.
        if (this.queue.length === 0 && (this.ended || this.cut || this.failure))
            this.settle(this.failure);
    }
    noteCut() {
        const bodyEnd = this.target.bodyEnd ?? Number.POSITIVE_INFINITY;
        if (this.next >= this.segment.end && this.segment.end < bodyEnd)
            this.cut = true;
    }
    settle(error) {
        if (this.settled)
            return;
        this.settled = true;
        const { body } = this;
        body
            .off('data', this.onData)
            .off('end', this.onEnd)
            .off('error', this.onError)
            .off('close', this.onClose);
        // A body we stop reading early would hold its socket, so it goes (undici reports that as
        // an abort, which is expected here and ignored).
        if (!body.readableEnded)
            body.on('error', () => undefined).destroy();
        if (error)
            this.reject(error);
        else
            this.resolve();
    }
}
/**
 * Writes a body read in place (raw.ts) into the file at `fd`: each read's bytes are written at
 * their position and handed to `landed` (which hashes them) inside the read callback, and the
 * read buffer is reused once the call returns; nothing is queued, copied or kept. Stops when the
 * body ends or a thief has moved `segment.end` below what arrived (the connection then goes:
 * the rest of the body is in flight). `check` is asked after each read (the rate guard): an
 * error it returns ends the body.
 */
function writeRawBody(body, fd, target, check) {
    const { segment } = target;
    const bodyEnd = target.bodyEnd ?? Number.POSITIVE_INFINITY;
    return new Promise((resolve, reject) => {
        if (segment.pos >= segment.end) {
            body.dump();
            return resolve();
        }
        let failure;
        body.pump({
            data(view) {
                const room = segment.end - segment.pos;
                if (room <= 0)
                    return false;
                const ours = view.length > room ? view.subarray(0, room) : view;
                try {
                    // A read (up to 1 MiB) lands in pieces that end where progress is to be recorded.
                    for (let at = 0; at < ours.length;) {
                        const length = Math.min(ours.length - at, Math.max(1, target.untilRecord?.() ?? ours.length));
                        const piece = ours.subarray(at, at + length);
                        const offset = segment.pos;
                        const written = (0,external_node_fs_.writeSync)(fd, piece, 0, length, offset);
                        // A short write means bytes we would count but never wrote: fail, never skip them.
                        if (written !== length)
                            throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
                        segment.pos = offset + length;
                        at += length;
                        target.landed(offset, piece);
                    }
                }
                catch (error) {
                    failure = writeError(error);
                    return false;
                }
                failure = check(ours.length);
                if (failure)
                    return false;
                // A thief took the rest: what is left of the body is not ours.
                return !(segment.pos >= segment.end && segment.end < bodyEnd);
            },
            end(error) {
                if (failure)
                    reject(failure);
                else if (error)
                    reject(target.bodyError(error));
                else
                    resolve();
            },
        });
    });
}
function writeError(error) {
    if (error.code === 'ENOSPC') {
        return new errors/* ModelPullError */.Vy('ERR_DISK_SPACE', 'the disk filled up while writing the download', {
            cause: error,
        });
    }
    return error instanceof Error ? error : new Error(String(error));
}

// EXTERNAL MODULE: external "node:perf_hooks"
var external_node_perf_hooks_ = __webpack_require__(643);
;// CONCATENATED MODULE: ./src/download/connection-gate.ts

/**
 * The main thread's event-loop utilisation: the share of the time it ran callbacks rather than
 * waited for I/O (time it was ready but had no core counts as busy).
 */
const eventLoopLoad = () => {
    const start = external_node_perf_hooks_.performance.eventLoopUtilization();
    const startCpu = process.cpuUsage();
    return () => {
        const { idle, active, utilization } = external_node_perf_hooks_.performance.eventLoopUtilization(start);
        const elapsedMs = idle + active;
        return {
            elapsedMs,
            busy: utilization,
            // Read only when asked (a system call), not on every chunk.
            get cpu() {
                const { user, system } = process.cpuUsage(startCpu);
                return elapsedMs > 0 ? (user + system) / 1000 / elapsedMs : 0;
            },
        };
    };
};
/** A thread that never looks busy: for a gate that starts open and never looks. */
const idleThread = () => () => ({ elapsedMs: 0, busy: 0 });
const MiB = 1024 * 1024;
/**
 * One connection slower than this is held back by its path, not by this process: 32 MiB/s is
 * twice what a capped CDN gives a connection (16 MiB/s, the bench's capped case), and under a
 * third of the slowest that one uncapped loopback connection measured on a loaded machine
 * (89-333 MiB/s over 100 ms windows, issue 17). It opens the gate when the thread is busy
 * with other work (re-verifying another model, say): the busy share alone kept a capped blob on
 * one connection, 16 times slower, until the thread had room. Judged over whole seconds: over
 * 30 ms windows smoothed like the busy share, the bench's uncapped case at load 10 dipped under
 * it and opened (132 CDN requests instead of 20, 3.9 s of CPU instead of 2.7). A download that
 * gets only a sliver of a saturated thread for seconds on end can still fall under it; its other
 * connections then cost more CPU per byte, as every blob's did before the gate.
 */
const MIN_SOLO_RATE = 32 * MiB;
/** How long one look at the thread lasts. */
const WINDOW_MS = 30;
/** The smoothed busy share under which the thread has room for more connections. */
const ROOM = 0.6;
/** How long each look at the one connection's rate lasts. */
const RATE_PERIOD_MS = 1000;
/** Periods in a row under the floor that open the gate: a slow second alone may be the machine. */
const SLOW_PERIODS = 2;
/**
 * A period counts as slow only if the process had a core for this share of it at least: one
 * starved of CPU (more work than cores on the machine) is slow whatever its path, and that was
 * what opened the bench's uncapped case at load 9-10 with periods of whole seconds alone (46 CDN
 * requests, median of three runs, against 20). Half a core moves a loopback download at well over
 * 100 MiB/s (2.7 s of CPU per GiB measured in that bench), so a rate under the floor with this
 * much CPU is a path's limit, or a thread taken by other work: the case the floor is for.
 */
const MIN_CPU_SHARE = 0.5;
/** No byte for this long on the one connection: the others start (see `tick`). */
const QUIET_MS = 500;
/** How often the one connection's silence is looked at. */
const GATE_TICK_MS = 250;
/**
 * Decides, from this process's own cost, whether a large blob's other connections can help.
 * The blob starts on one connection; every WINDOW_MS while its bytes arrive, the gate looks at
 * the share of the window the main thread was busy (event-loop utilisation), smoothed over the
 * windows (each new one counts a quarter). A thread with room is waiting for bytes (a capped or
 * distant path, a crawling server): the gate opens and every connection starts, for good. A
 * saturated thread (one connection already brings more than it can write and hash, as on a
 * fast local link) cannot go faster with more sockets, only spend more per byte on them (their
 * reads, and bytes landing ahead of the hash that are read back later), so the blob stays on
 * one connection while that holds, looked at again every window. Smoothed, because on a loaded
 * machine a saturated download has a window at 0.25-0.5 now and then (the server, or the next
 * range's answer, waiting for a core); a capped one sits near 0.05 from its first window.
 *
 * Rates were tried as the signal and dropped (issue 17): one connection's rate over 100 ms swung
 * 89–333 MiB/s on a loaded machine, so a rate cannot tell a fast link from a saturated thread.
 * A rate far below that range, second after second, while the process had the CPU, can only be
 * the path's limit, though: the one connection's rate opens the gate when it stays under
 * `minRate` for SLOW_PERIODS periods of RATE_PERIOD_MS with MIN_CPU_SHARE of a core, whatever
 * else keeps the thread busy. A crawling first connection leaves the thread
 * idle, so it opens the gate at once; one that sends nothing opens it after QUIET_MS (`tick`).
 */
class ConnectionGate {
    load;
    closed;
    minRate;
    window;
    /** The busy share, smoothed over the windows so far (undefined before the first). */
    smoothed;
    /** The current look at the one connection's rate, its bytes so far, and slow periods in a row. */
    period;
    periodBytes = 0;
    slowPeriods = 0;
    /** Bytes landed since the last tick. */
    heard = false;
    /** Started at the first tick with no bytes since the one before. */
    silence;
    constructor(load, 
    /** False: opened from the start (a small blob, a stream read in memory, no gate tuning). */
    closed, 
    /** See GateTuning.minRate. */
    minRate = 0) {
        this.load = load;
        this.closed = closed;
        this.minRate = minRate;
    }
    get open() {
        return !this.closed;
    }
    /** Called as `bytes` land; true exactly once, when the gate opens. */
    landed(bytes) {
        if (!this.closed)
            return false;
        this.heard = true;
        if (this.minRate > 0 && this.slowFor(bytes))
            return this.opened();
        if (this.window) {
            const { elapsedMs, busy } = this.window();
            if (elapsedMs < WINDOW_MS)
                return false;
            this.smoothed = this.smoothed === undefined ? busy : this.smoothed + (busy - this.smoothed) / 4;
            if (this.smoothed < ROOM)
                return this.opened();
        }
        this.window = this.load();
        return false;
    }
    /** Counts `bytes` in the current rate period; true once SLOW_PERIODS in a row were slow. */
    slowFor(bytes) {
        // (The chunk that starts the first period arrived before it: a burst from buffers is no rate.)
        if (!this.period) {
            this.period = this.load();
            return false;
        }
        this.periodBytes += bytes;
        const load = this.period();
        const { elapsedMs } = load;
        if (elapsedMs < RATE_PERIOD_MS)
            return false;
        const slow = (this.periodBytes * 1000) / elapsedMs < this.minRate && (load.cpu ?? 1) >= MIN_CPU_SHARE;
        this.slowPeriods = slow ? this.slowPeriods + 1 : 0;
        this.period = this.load();
        this.periodBytes = 0;
        return this.slowPeriods >= SLOW_PERIODS;
    }
    opened() {
        this.closed = false;
        this.window = undefined;
        this.period = undefined;
        return true;
    }
    /**
     * Called every GATE_TICK_MS while closed; true exactly once, when it opens because the one
     * connection brought no byte for QUIET_MS (a server slow to answer, or one that stopped
     * sending): the others must not wait for its stall timeout, as they would not if all had
     * started at once.
     */
    tick() {
        if (!this.closed)
            return false;
        if (this.heard || !this.silence) {
            this.heard = false;
            this.silence = this.load();
            return false;
        }
        if (this.silence().elapsedMs < QUIET_MS)
            return false;
        return this.opened();
    }
}

// EXTERNAL MODULE: external "node:path"
var external_node_path_ = __webpack_require__(6760);
;// CONCATENATED MODULE: ./src/download/disk.ts



const disk_MiB = 1024 * 1024;
/** Free bytes for an unprivileged writer on the filesystem holding `dir` (or its nearest parent). */
async function freeBytes(dir) {
    let at = dir;
    for (;;) {
        try {
            const [s, st] = await Promise.all([(0,promises_.statfs)(at), (0,promises_.stat)(at)]);
            return { free: Number(s.bavail) * Number(s.bsize), at, device: st.dev };
        }
        catch (error) {
            const parent = (0,external_node_path_.dirname)(at);
            if (parent === at)
                throw error;
            at = parent;
        }
    }
}
/**
 * The filesystems where `needs` (a folder → the bytes still to land under it) does not fit:
 * folders on the same filesystem are summed.
 */
async function shortfalls(needs) {
    const byFs = new Map();
    for (const [dir, need] of needs) {
        if (need <= 0)
            continue;
        const { free, at, device } = await freeBytes(dir);
        const entry = byFs.get(device) ?? { need: 0, free, at };
        entry.need += need;
        byFs.set(device, entry);
    }
    return [...byFs.values()].filter((e) => e.need > e.free);
}
/**
 * Fails before the first byte when the missing bytes cannot fit (Ollama has no such check and
 * fills the disk, ollama#1731). `needs` maps a folder to the bytes still to land under it.
 */
async function checkDiskSpace(needs) {
    const [short] = await shortfalls(needs);
    if (short) {
        throw new errors/* ModelPullError */.Vy('ERR_DISK_SPACE', `not enough disk space under ${short.at}: ${(short.need / disk_MiB).toFixed(1)} MiB to download, ${(short.free / disk_MiB).toFixed(1)} MiB free`);
    }
}

;// CONCATENATED MODULE: ./src/download/locator.ts

/** How often one blob may ask its source for a fresh URL before we call it broken. */
const MAX_REFRESHES = 5;
/**
 * Where the connections of one blob fetch from. The first connection asks the source and sends
 * the first request; the others wait for its answer, then share the URL a redirect landed on (a
 * signed CDN URL), so sixteen ranges cost the registry (the Hub's `resolve/`) one request, not
 * sixteen. When that URL expires, one refresh serves every connection the same way.
 */
class Locator {
    blob;
    signal;
    current;
    learned;
    refreshes = 0;
    writtenAtRefresh = 0;
    generation = 0;
    /** The source's URL answered with the bytes itself (no redirect): nothing to wait for. */
    direct = false;
    /** The first request of this generation is on its way; the others wait for its answer. */
    probe;
    lastUrl;
    constructor(blob, signal) {
        this.blob = blob;
        this.signal = signal;
    }
    /**
     * The URL to request now. Until the first request of this location has answered, one caller
     * gets it (and must `learn` its answer or `unblock` after a failure) and the others wait.
     */
    async get() {
        while (this.probe && this.learned === undefined && !this.direct)
            await this.probe.done;
        const first = this.learned === undefined && !this.direct;
        if (first) {
            let settle = () => undefined;
            const done = new Promise((resolve) => {
                settle = resolve;
            });
            this.probe = { done, settle };
        }
        if (!this.current) {
            // A failed locate (a token service hiccup) is forgotten, so the retry asks again.
            const pending = this.blob.locate(this.signal);
            this.current = pending;
            pending.catch(() => {
                if (this.current === pending)
                    this.current = undefined;
            });
        }
        let location;
        try {
            location = await this.current;
        }
        catch (error) {
            if (first)
                this.unblock();
            throw error;
        }
        const url = this.learned ?? location.url;
        this.lastUrl = url;
        return { url, location, redirected: this.learned !== undefined, generation: this.generation, first };
    }
    /** Remembers where a redirect led, for the other connections. */
    learn(finalUrl, requested) {
        if (finalUrl !== requested)
            this.learned = finalUrl;
        else if (this.learned === undefined)
            this.direct = true;
        this.lastUrl = finalUrl;
        this.unblock();
    }
    /** The first request (`first` from get) failed before an answer: the next caller tries in its place. */
    unblock() {
        const probe = this.probe;
        this.probe = undefined;
        probe?.settle();
    }
    /**
     * The signed URL expired: ask the source again (once for all connections that saw it).
     * `written` is the blob's progress: refreshes only count against the limit while no bytes
     * land between them, so a long download through short-lived URLs is not cut off.
     */
    expire(generation, written) {
        if (generation !== this.generation)
            return;
        if (written > this.writtenAtRefresh)
            this.refreshes = 0;
        this.writtenAtRefresh = written;
        if (++this.refreshes > MAX_REFRESHES) {
            throw new errors/* ModelPullError */.Vy('ERR_URL_REFRESH_LIMIT', `${this.blob.label}: the download URL kept expiring (${MAX_REFRESHES} fresh URLs refused)`);
        }
        this.generation++;
        this.learned = undefined;
        this.direct = false;
        this.current = undefined;
    }
}

;// CONCATENATED MODULE: ./src/download/prefix-hasher.ts

const prefix_hasher_MiB = 1024 * 1024;
const READ_BLOCK = prefix_hasher_MiB;
/**
 * Hashes a blob while it downloads, on the thread that writes it. Ranges land out of order, so
 * the hash follows the contiguous written prefix; the range plan hands out work in file order so
 * that prefix keeps up. A chunk that lands exactly at the frontier is hashed from memory, right
 * after its write (on one connection, every chunk); bytes beyond it are read back from the page
 * cache once the gap before them closes. Either way the digest is ready right after the last
 * byte, with no second pass over the file.
 *
 * A worker thread hashing a read-back copy cost more than it saved: its second V8 isolate held
 * 15–20 MiB, and reading every byte back ~0.25 s of CPU per GiB (issue 17, measured). sha256 of
 * 1 GiB is ~0.7 s here with SHA-NI whichever thread runs it.
 */
class PrefixHasher {
    algorithm;
    file;
    sizeOf;
    writtenPrefix;
    hash;
    frontier = 0;
    catchingUp;
    failure;
    /** One read buffer for the blob's whole life (a fresh one per catch-up was garbage). */
    buffer;
    constructor(algorithm, file, 
    /** The blob's size, once known (a plain URL's is learned from the first response). */
    sizeOf, 
    /** Bytes [0, n) are written to the file. */
    writtenPrefix) {
        this.algorithm = algorithm;
        this.file = file;
        this.sizeOf = sizeOf;
        this.writtenPrefix = writtenPrefix;
    }
    /** Starts the hash once there are bytes to hash (git-sha1 needs the size first). */
    start() {
        this.hash ??= (0,src_digest/* createDigestHash */.d4)(this.algorithm, this.sizeOf());
    }
    /**
     * Called once `chunk` is written at `offset`, or while it is being written: only a chunk at the
     * frontier is hashed from memory; any other is read back up to `writtenPrefix` later.
     */
    written(offset, chunk) {
        this.start();
        if (this.hash && !this.catchingUp && offset === this.frontier) {
            this.hash.update(chunk);
            this.frontier += chunk.length;
            return;
        }
        this.catchUp();
    }
    /** Hashes whatever written prefix it has not seen yet, reading it back from the file. */
    catchUp() {
        const prefix = this.writtenPrefix();
        if (prefix > 0)
            this.start();
        if (!this.hash || this.catchingUp || this.frontier >= prefix)
            return;
        this.catchingUp = this.readForward()
            .catch((error) => {
            this.failure = error;
        })
            .finally(() => {
            this.catchingUp = undefined;
        });
    }
    async readForward() {
        this.buffer ??= Buffer.allocUnsafe(READ_BLOCK);
        const buffer = this.buffer;
        for (;;) {
            const target = this.writtenPrefix();
            if (this.frontier >= target)
                return;
            const want = Math.min(READ_BLOCK, target - this.frontier);
            const { bytesRead } = await this.file.read(buffer, 0, want, this.frontier);
            if (bytesRead === 0)
                throw new Error(`staged file ended at ${this.frontier} bytes`);
            this.hash.update(buffer.subarray(0, bytesRead));
            this.frontier += bytesRead;
        }
    }
    /** Hashes any remaining prefix up to `total` bytes and returns the hex digest. */
    async finish(total) {
        this.start();
        await this.catchingUp;
        if (this.failure)
            throw this.failure;
        if (this.frontier < total) {
            await this.readForward();
        }
        return { hex: this.hash.digest('hex'), hashed: this.frontier };
    }
    /** Waits for a read in flight, so the file can be closed under no one. */
    async dispose() {
        await this.catchingUp;
    }
}

;// CONCATENATED MODULE: ./src/download/range-plan.ts
const range_plan_MiB = 1024 * 1024;
/** Largest piece: bounds how far ahead of the hash any range lands (and is read back). */
const MAX_PIECE = 64 * range_plan_MiB;
/** A steal must save at least this much time, or the new request is not worth it. */
const MIN_STEAL_GAIN_S = 0.05;
class RangePlan {
    minSplit;
    connections;
    maxPiece;
    segments;
    constructor(size, 
    /** Smallest piece worth a request of its own. */
    minSplit, saved, 
    /** Connections sharing the blob; pieces are sized so each gets several. */
    connections = 1, 
    /** Largest piece (a stream read through a bounded window wants them well inside it). */
    maxPiece = MAX_PIECE) {
        this.minSplit = minSplit;
        this.connections = connections;
        this.maxPiece = maxPiece;
        if (saved && saved.length > 0) {
            this.segments = saved.map((s) => ({ ...s, taken: false, rate: 0 }));
        }
        else {
            this.segments = [{ start: 0, pos: 0, end: size ?? Number.POSITIVE_INFINITY, taken: false, rate: 0 }];
        }
        this.sort();
    }
    get size() {
        const last = this.segments[this.segments.length - 1];
        return Number.isFinite(last.end) ? last.end : undefined;
    }
    /**
     * Learns the size (from Content-Range or Content-Length) when it was unknown. The open-ended
     * segment keeps one piece; the rest becomes untaken work for the other connections.
     */
    setSize(size) {
        const last = this.segments[this.segments.length - 1];
        if (Number.isFinite(last.end))
            return;
        last.end = size;
        if (!last.taken || this.connections <= 1)
            return;
        const cut = last.pos + this.pieceSize(size - last.pos);
        if (cut < size - this.minSplit / 2) {
            last.end = cut;
            this.segments.push({ start: cut, pos: cut, end: size, taken: false, rate: 0 });
        }
    }
    /** The server ignores Range: from now on one connection streams everything, unsplit. */
    streamWhole() {
        this.connections = 1;
    }
    /**
     * Work for an idle connection: the next piece of untaken bytes in file order, else a stolen
     * share of a taken segment, else undefined (nothing left worth a request). `sharing`: how many
     * connections the piece is sized for, when fewer than the plan's are at work for now.
     */
    take(thiefRate, sharing = this.connections) {
        const free = this.segments.find((s) => !s.taken && s.pos < s.end);
        if (!free)
            return this.steal(this.victim(), thiefRate);
        // A connection far slower than the rest would finish long after them, and the hash waits
        // at its range: split it now rather than at the end.
        const straggler = this.straggler(thiefRate);
        if (straggler) {
            const stolen = this.steal(straggler, thiefRate);
            if (stolen)
                return stolen;
        }
        const piece = this.pieceSize(this.untaken(), sharing);
        // A single connection streams all it can in one request.
        if (this.connections > 1 &&
            Number.isFinite(free.end) &&
            free.end - free.pos > piece + this.minSplit / 2) {
            const cut = free.pos + piece;
            this.segments.push({ start: cut, pos: cut, end: free.end, taken: false, rate: 0 });
            free.end = cut;
            this.sort();
        }
        free.taken = true;
        free.rate = thiefRate ?? 0;
        return free;
    }
    untaken() {
        let sum = 0;
        for (const s of this.segments)
            if (!s.taken)
                sum += s.end - s.pos;
        return sum;
    }
    pieceSize(left, sharing = this.connections) {
        if (!Number.isFinite(left))
            return this.maxPiece;
        const share = Math.ceil(left / (2 * sharing));
        return Math.min(this.maxPiece, Math.max(this.minSplit, share));
    }
    /** Mean measured rate of the connections at work (0 before any measurement). */
    meanRate() {
        let sum = 0;
        let n = 0;
        for (const s of this.segments) {
            if (s.taken && s.rate > 0) {
                sum += s.rate;
                n++;
            }
        }
        return n ? sum / n : 0;
    }
    /** The taken segment that will finish last; unmeasured ones count at the mean rate. */
    victim() {
        const mean = this.meanRate();
        let victim;
        let worst = 0;
        for (const s of this.segments) {
            const left = s.end - s.pos;
            if (!s.taken || !Number.isFinite(left) || left <= 0)
                continue;
            const eta = left / (s.rate || mean || 1);
            if (eta > worst) {
                worst = eta;
                victim = s;
            }
        }
        return victim;
    }
    /** A measured segment due more than twice as late as the whole blob at the current rates. */
    straggler(thiefRate) {
        const mean = this.meanRate();
        if (!mean || !Number.isFinite(this.size ?? Number.POSITIVE_INFINITY))
            return undefined;
        let left = 0;
        let rate = thiefRate || mean;
        for (const s of this.segments) {
            left += s.end - s.pos;
            if (s.taken)
                rate += s.rate || mean;
        }
        const blobEta = left / rate;
        let straggler;
        let worst = 2 * blobEta;
        for (const s of this.segments) {
            if (!s.taken || !s.rate)
                continue;
            const eta = (s.end - s.pos) / s.rate;
            if (eta > worst) {
                worst = eta;
                straggler = s;
            }
        }
        return straggler;
    }
    steal(victim, thiefRate) {
        if (!victim)
            return undefined;
        const left = victim.end - victim.pos;
        const mean = this.meanRate();
        const victimRate = victim.rate || mean;
        const thief = thiefRate || mean;
        const measured = victimRate > 0 && thief > 0;
        // The victim keeps what it fetches in the time the thief needs for the rest.
        const stolen = measured ? Math.floor((left * thief) / (victimRate + thief)) : Math.floor(left / 2);
        // A steal costs a request and cuts the victim's. Blind (no rates yet), both halves must be
        // worth a request; with rates, it must save real time (so equal connections near the end
        // are left alone), and may then leave a crawling victim less than minSplit.
        if (!measured && stolen < this.minSplit)
            return undefined;
        if (measured &&
            (stolen < Math.min(this.minSplit, range_plan_MiB) || left / victimRate - stolen / thief < MIN_STEAL_GAIN_S)) {
            return undefined;
        }
        const mid = victim.end - stolen;
        const segment = { start: mid, pos: mid, end: victim.end, taken: true, rate: thiefRate ?? 0 };
        victim.end = mid;
        this.segments.push(segment);
        this.sort();
        return segment;
    }
    /** The connection is done with the segment (complete, or failed and to be taken again). */
    release(segment) {
        segment.taken = false;
        this.coalesce();
    }
    /** Bytes [0, n) are all written. */
    contiguousPrefix() {
        let p = 0;
        for (const s of this.segments) {
            if (s.start !== p)
                break;
            p = s.pos;
            if (s.pos < s.end)
                break;
        }
        return p;
    }
    written() {
        return this.segments.reduce((sum, s) => sum + (s.pos - s.start), 0);
    }
    complete() {
        return this.size !== undefined && this.segments.every((s) => s.pos >= s.end);
    }
    records() {
        return this.segments.map(({ start, pos, end }) => ({ start, pos, end }));
    }
    /** Merges neighbouring finished segments, so the record and the prefix scan stay short. */
    coalesce() {
        const merged = [];
        for (const s of this.segments) {
            const prev = merged[merged.length - 1];
            const done = (x) => !x.taken && x.pos >= x.end;
            if (prev && done(prev) && done(s) && prev.end === s.start) {
                merged[merged.length - 1] = { start: prev.start, pos: s.end, end: s.end, taken: false, rate: 0 };
            }
            else {
                merged.push(s);
            }
        }
        this.segments = merged;
    }
    sort() {
        this.segments.sort((a, b) => a.start - b.start);
    }
}

// EXTERNAL MODULE: ./src/atomic-write.ts
var atomic_write = __webpack_require__(8364);
// EXTERNAL MODULE: ./src/download/safe-fs.ts
var safe_fs = __webpack_require__(5039);
;// CONCATENATED MODULE: ./src/download/staging.ts







/** A record holds a few hundred segments at most (the plan coalesces finished ones). */
const MAX_RECORD_BYTES = 1024 * 1024;
function stagingPaths(ingestDir, digest) {
    const base = (0,external_node_path_.join)(ingestDir, `${digest.algorithm}-${digest.hex}`);
    return { data: `${base}.partial`, record: `${base}.progress.json`, lease: `${base}.lock` };
}
/** The saved progress, when it belongs to this digest and size; anything odd means start over. */
async function loadProgress(paths, digest, size) {
    const bytes = await (0,safe_fs/* readSmall */.o5)(paths.record, MAX_RECORD_BYTES);
    if (!bytes)
        return undefined;
    let value;
    try {
        value = JSON.parse(bytes.toString('utf8'));
    }
    catch {
        return undefined;
    }
    return parseRecord(value, (0,src_digest/* formatDigest */.MO)(digest), size);
}
const isOffset = (x) => Number.isSafeInteger(x) && x >= 0;
/**
 * Valid JSON of the wrong shape (`null`, no segments, overlapping ranges) is as good as no
 * record: the blob starts over instead of every run failing on it.
 */
function parseRecord(value, digest, size) {
    if (typeof value !== 'object' || value === null)
        return undefined;
    const record = value;
    if (record.version !== 1 || record.digest !== digest)
        return undefined;
    const recorded = record.size;
    if (recorded !== null && !isOffset(recorded))
        return undefined;
    if (size !== undefined && recorded !== null && recorded !== size)
        return undefined;
    if (!Array.isArray(record.segments) || record.segments.length === 0)
        return undefined;
    // The segments must partition [0, size): each starts where the previous one ended.
    const segments = [];
    let next = 0;
    for (const [i, raw] of record.segments.entries()) {
        if (typeof raw !== 'object' || raw === null)
            return undefined;
        const { start, pos, end } = raw;
        const last = i === record.segments.length - 1;
        const open = end === null && last && recorded === null;
        if (!isOffset(start) || !isOffset(pos) || (!open && !isOffset(end)))
            return undefined;
        const stop = open ? Number.POSITIVE_INFINITY : end;
        if (start !== next || pos < start || pos > stop)
            return undefined;
        segments.push({ start, pos, end: stop });
        next = stop;
    }
    if (recorded !== null && next !== recorded)
        return undefined;
    return { size: recorded ?? undefined, segments };
}
/** Written to a fresh temporary file and renamed, so a kill mid-write leaves the previous record. */
function saveProgress(paths, digest, size, segments) {
    const record = {
        version: 1,
        digest: (0,src_digest/* formatDigest */.MO)(digest),
        size: size ?? null,
        segments: segments.map((s) => ({
            start: s.start,
            pos: s.pos,
            end: Number.isFinite(s.end) ? s.end : null,
        })),
    };
    (0,atomic_write/* writeFileAtomicSync */.Q3)(paths.record, JSON.stringify(record));
}
/**
 * The staged data file: the existing one when there is progress to resume and it is a plain
 * file of ours, else a new one created exclusively (a planted link or a hard link to another
 * file is removed, never written through). `resumed` says which.
 */
async function openStagingData(paths, resume) {
    const existing = resume ? await (0,safe_fs/* openOwnFile */.ZM)(paths.data) : undefined;
    if (existing)
        return { file: existing, resumed: true };
    return { file: await (0,safe_fs/* createExclusive */.H0)(paths.data, 0o644, true), resumed: false };
}
async function discardStaging(paths) {
    await Promise.all([(0,promises_.rm)(paths.data, { force: true }), removeRecord(paths)]);
}
/**
 * The record and the temporary files of record writes a kill cut short. A record is only a hint
 * (loadProgress ignores anything that is not a well-formed file), so one that cannot be removed,
 * a folder planted in its place say, is left rather than failing a blob that is in place.
 */
async function removeRecord(paths) {
    await Promise.all([(0,promises_.rm)(paths.record, { force: true }), (0,atomic_write/* removeStaleTemps */.jH)(paths.record)]).catch(() => undefined);
}
/**
 * Moves verified bytes onto the target: 0644, parent folders 0755, then the record goes. The
 * rename replaces whatever the target was (an older file, a planted link) in one step, so a
 * reader sees the old bytes or the new ones, never none.
 */
async function commitStaged(paths, target) {
    await (0,fs_dirs/* ensureDirs */.J)((0,external_node_path_.dirname)(target));
    const file = await (0,safe_fs/* openOwnFile */.ZM)(paths.data);
    if (!file) {
        throw new errors/* ModelPullError */.Vy('ERR_STAGING_LOCK', `the staged file ${paths.data} was replaced by another process before its commit`);
    }
    try {
        await file.chmod(0o644);
    }
    finally {
        await file.close();
    }
    await (0,promises_.rename)(paths.data, target);
    await removeRecord(paths);
}
/** What is at a final path, without following a link there. */
async function targetInfo(target) {
    try {
        const info = await (0,promises_.lstat)(target);
        return { kind: info.isFile() ? 'file' : 'other', size: info.size, ino: info.ino, mtimeMs: info.mtimeMs };
    }
    catch (error) {
        const code = error.code;
        if (code === 'ENOENT' || code === 'ENOTDIR')
            return undefined;
        throw error;
    }
}

;// CONCATENATED MODULE: ./src/download/blob-download.ts














/** Thrown inside a download when a server answered a range request with the whole body. */
class RangesIgnored extends Error {
}
const RATE_WINDOW_MS = 250;
/**
 * Downloads one blob into its staging file (the caller holds its staging lock) over up to `connections` ranges with work
 * stealing, hashing the contiguous prefix as it lands and recording progress so that a killed
 * process resumes. Returns once every byte is staged; the caller compares the digest.
 */
async function downloadToStaging(blob, tuning) {
    const paths = stagingPaths(blob.ingestDir, blob.digest);
    const recorded = await loadProgress(paths, blob.digest, blob.size);
    // The record is only worth something with its own data file (not a link planted in its place).
    const { file, resumed } = await openStagingData(paths, recorded !== undefined);
    const saved = resumed ? recorded : undefined;
    const output = {
        sink: file,
        paths,
        follow: (landed) => new PrefixHasher(blob.digest.algorithm, file, landed.size, landed.prefix),
    };
    try {
        return { paths, ...(await runWithRestarts(blob, tuning, output, saved)) };
    }
    catch (error) {
        // Refused for lack of room before its first byte: leave no empty staging file behind.
        if ((0,errors/* isModelPullError */.pq)(error, 'ERR_DISK_SPACE') && !saved)
            await discardStaging(paths);
        throw error;
    }
    finally {
        await file.close();
    }
}
/**
 * Downloads a blob into a sink of the caller's (a stream's in-memory window) instead of a
 * staging file: the same ranges, retries, steals and URL refreshes, nothing on disk and nothing
 * recorded for a resume. `follow` takes the contiguous prefix as it grows.
 */
async function downloadToSink(blob, tuning, sink, follow) {
    return runWithRestarts(blob, tuning, { sink, follow }, undefined);
}
async function runWithRestarts(blob, tuning, output, saved) {
    const run = new BlobRun(blob, tuning, output, saved?.segments, saved?.size, false);
    try {
        return await run.execute();
    }
    catch (error) {
        if (!(error instanceof RangesIgnored))
            throw error;
    }
    // The server sends whole bodies only: start over as one stream (undici's rule: a 200 to a
    // range request means "restart", never "append"). A stream cut short cannot resume
    // there either, so each cut restarts from byte 0, within the retry budget.
    for (let attempt = 0; attempt <= tuning.retry.retries; attempt++) {
        const single = new BlobRun(blob, tuning, output, undefined, blob.size, true);
        try {
            return await single.execute();
        }
        catch (error) {
            if (!(error instanceof RangesIgnored))
                throw error;
        }
    }
    throw new errors/* ModelPullError */.Vy('ERR_RANGE_IGNORED', `${blob.label}: the server ignores Range and its connection kept breaking; gave up after ${tuning.retry.retries + 1} full restarts`);
}
class BlobRun {
    blob;
    tuning;
    output;
    singleStream;
    plan;
    hasher;
    locator;
    gate;
    /** Ends the gate's watch with the run. */
    gateWatch = new AbortController();
    abort = new AbortController();
    workers = new Set();
    failure;
    fetched = 0;
    unflushed = 0;
    lastFlush;
    /** Whether more than one connection may ask (see BlobSpec.probeRanges). */
    rangesShown;
    constructor(blob, tuning, output, saved, size, 
    /** One request for the whole blob: the server ignores Range. */
    singleStream) {
        this.blob = blob;
        this.tuning = tuning;
        this.output = output;
        this.singleStream = singleStream;
        const connections = singleStream ? 1 : tuning.connections;
        this.plan = new RangePlan(blob.size ?? size, tuning.minSplit, saved, connections, tuning.maxPiece);
        this.hasher = output.follow({
            size: () => this.plan.size,
            prefix: () => this.plan.contiguousPrefix(),
        });
        this.locator = new Locator(blob, this.abort.signal);
        const gate = tuning.gate;
        const total = blob.size ?? size;
        // Only a blob going to a file: a stream read in memory (a cache restore) feeds a consumer
        // on this thread whose pace the gate cannot tell from the download's.
        const gated = gate !== undefined &&
            output.paths !== undefined &&
            connections > 1 &&
            total !== undefined &&
            total >= gate.minSize;
        this.gate = new ConnectionGate(gate?.load ?? idleThread, gated, gate?.minRate);
        this.rangesShown = blob.probeRanges !== true;
        this.lastFlush = tuning.clock.now();
        // A blob that starts after Ctrl-C must stop at once, not download in full.
        if (tuning.signal?.aborted)
            this.abort.abort(tuning.signal.reason);
        else
            tuning.signal?.addEventListener('abort', this.onAbort, { once: true });
    }
    onAbort = () => this.abort.abort(this.tuning.signal?.reason);
    async execute() {
        try {
            this.tuning.onStart?.(this.plan.written(), this.plan.size);
            this.hasher.catchUp();
            this.spawnWorkers();
            void this.watchGate();
            while (this.workers.size > 0)
                await Promise.race(this.workers);
            this.flush();
            if (this.failure)
                throw this.failure;
            if (this.tuning.signal?.aborted) {
                throw new errors/* ModelPullError */.Vy('ERR_ABORTED', `${this.blob.label}: stopped; progress kept for the next run`);
            }
            if (!this.plan.complete()) {
                throw new errors/* ModelPullError */.Vy('ERR_TRUNCATED', `${this.blob.label}: download ended with bytes missing`);
            }
            const size = this.plan.size ?? 0;
            const { hex } = await this.hasher.finish(size);
            return { size, hex, fetched: this.fetched, host: this.host() ?? 'unknown host' };
        }
        finally {
            this.gateWatch.abort();
            this.tuning.signal?.removeEventListener('abort', this.onAbort);
            await this.hasher.dispose();
        }
    }
    /** While the gate is closed, opens it when the one connection goes quiet (ConnectionGate.tick). */
    async watchGate() {
        const { signal } = this.gateWatch;
        while (!this.gate.open && !signal.aborted) {
            try {
                await this.tuning.clock.sleep(GATE_TICK_MS, signal);
            }
            catch {
                return;
            }
            if (this.gate.tick())
                this.spawnWorkers();
        }
    }
    spawnWorkers() {
        const wanted = this.singleStream || this.plan.size === undefined || !this.rangesShown || !this.gate.open
            ? 1
            : this.tuning.connections;
        while (this.workers.size < wanted && !this.abort.signal.aborted) {
            const segment = this.plan.take();
            if (!segment)
                return;
            const worker = this.work(segment).finally(() => this.workers.delete(worker));
            this.workers.add(worker);
        }
    }
    /** One connection: streams its segment, then steals more until nothing is left. */
    async work(first) {
        let segment = first;
        let rate = 0;
        try {
            while (segment && !this.abort.signal.aborted) {
                await this.fetchSegment(segment);
                rate = segment.rate;
                this.plan.release(segment);
                // Alone behind a closed gate, a connection takes pieces sized for one (fewer requests).
                segment = this.singleStream ? undefined : this.plan.take(rate, this.gate.open ? undefined : 1);
            }
        }
        catch (error) {
            if (segment)
                this.plan.release(segment);
            if (!this.failure && !this.abort.signal.aborted)
                this.failure = error;
            this.abort.abort(error);
        }
    }
    /** Where the bytes come from now, for messages. */
    host() {
        return this.locator.lastUrl ? (0,http_errors/* hostOf */.w4)(this.locator.lastUrl) : undefined;
    }
    /**
     * Retries one segment until it is complete, giving up after the policy's retries without
     * progress (fewer for a refused connection). Each retry is announced with its cause and wait.
     */
    async fetchSegment(segment) {
        const { retry, clock } = this.tuning;
        let failures = 0;
        while (segment.pos < segment.end && !this.abort.signal.aborted) {
            const before = segment.pos;
            try {
                await this.stream(segment);
            }
            catch (error) {
                if (this.abort.signal.aborted || error instanceof RangesIgnored)
                    throw error;
                // The locator has already asked the source for a fresh URL: go again at once.
                if ((0,errors/* isModelPullError */.pq)(error, 'ERR_URL_EXPIRED'))
                    continue;
                if (!(0,http_retry/* isRetryable */.r3)(error))
                    throw error;
                // Bytes that landed restore the budget, unless they came too slowly to count: a
                // server trickling a byte at a time would otherwise be retried forever.
                const progressed = segment.pos > before && !(0,errors/* isModelPullError */.pq)(error, 'ERR_TOO_SLOW');
                failures = progressed ? 1 : failures + 1;
                const plan = (0,http_retry/* nextRetry */.GL)(error, failures, retry);
                if (!plan) {
                    throw new errors/* ModelPullError */.Vy('ERR_RETRIES_EXHAUSTED', `${this.blob.label}: giving up after ${failures} failed attempts: ${error.message}`, { cause: error, host: error.host ?? this.host() });
                }
                retry.onRetry?.((0,http_retry/* retryEvent */.N7)(error, failures, plan, { host: this.host(), subject: this.blob.label }));
                await clock.sleep(plan.delayMs, this.abort.signal);
            }
        }
    }
    async stream(segment) {
        const target = await this.locator.get();
        const last = Number.isFinite(segment.end) ? String(segment.end - 1) : '';
        let response;
        try {
            response = await this.tuning.http.request(target.url, {
                headers: {
                    ...target.location.headers,
                    range: `bytes=${segment.pos}-${last}`,
                    'accept-encoding': 'identity',
                },
                credentials: target.location.credentials,
                signal: this.abort.signal,
                stream: true,
                // A file takes each read's bytes in place (raw.ts); a stream's window keeps its chunks.
                direct: this.output.sink.fd !== undefined,
            });
        }
        catch (error) {
            if (target.first)
                this.locator.unblock();
            throw error;
        }
        this.locator.learn(response.url, target.url);
        // A signed CDN URL reached through a redirect has expired, or the registry's own token has
        // (a plain registry serves the bytes itself): either way the source mints a new location.
        const expired = ((response.status === 401 || response.status === 403) &&
            (target.redirected || response.crossedOrigin)) ||
            (response.status === 401 && target.location.credentials !== undefined);
        if (expired) {
            (0,body/* discardBody */.LL)(response.body);
            this.locator.expire(target.generation, this.plan.written());
            throw new errors/* ModelPullError */.Vy('ERR_URL_EXPIRED', `${this.blob.label}: download URL expired`, {
                status: response.status,
                host: (0,http_errors/* hostOf */.w4)(response.url),
            });
        }
        if (response.status === 416)
            return this.rangeNotSatisfiable(segment, response);
        if (response.status === 200) {
            if (segment.pos !== 0 || this.plan.records().length > 1) {
                (0,body/* discardBody */.LL)(response.body);
                this.singleStream = true;
                throw new RangesIgnored();
            }
            this.singleStream = true;
            this.plan.streamWhole();
            const length = Number(response.headers['content-length']);
            if (this.plan.size === undefined && Number.isFinite(length))
                await this.learnSize(length, segment, response);
            return this.consume(segment, response, this.plan.size);
        }
        if (response.status !== 206)
            throw await (0,body/* statusError */.$C)(response);
        const contentRange = String(response.headers['content-range'] ?? '');
        const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange);
        if (!range || Number(range[1]) !== segment.pos || Number(range[2]) < segment.pos) {
            // Not the bytes we asked for: never written, and the answer is dropped without a trace.
            (0,body/* discardBody */.LL)(response.body);
            const host = (0,http_errors/* hostOf */.w4)(response.url);
            throw new errors/* ModelPullError */.Vy('ERR_BAD_RANGE', `${host} answered Content-Range "${contentRange.slice(0, 100)}" to a request for bytes from ${segment.pos}`, { host });
        }
        if (range[3] !== '*')
            await this.learnSize(Number(range[3]), segment, response);
        if (!this.rangesShown) {
            this.rangesShown = true;
            this.spawnWorkers();
        }
        return this.consume(segment, response, Number(range[2]) + 1);
    }
    /**
     * The server states the blob's size. A blob whose source did not know it (a URL line) gets
     * its disk-space check here, before its first byte is written.
     */
    async learnSize(total, segment, response) {
        // A stream read in memory puts nothing on disk.
        if (this.plan.size === undefined && this.blob.size === undefined && this.output.paths) {
            try {
                await checkDiskSpace(new Map([[this.blob.ingestDir, total - this.plan.written()]]));
            }
            catch (error) {
                (0,body/* discardBody */.LL)(response.body);
                throw error;
            }
        }
        try {
            this.setSize(total, segment);
        }
        catch (error) {
            (0,body/* discardBody */.LL)(response.body);
            throw error;
        }
    }
    setSize(total, segment) {
        const expected = this.blob.size ?? this.plan.size;
        if (expected !== undefined && expected !== total) {
            throw new errors/* ModelPullError */.Vy('ERR_SIZE_MISMATCH', `${this.blob.label}: the server has ${total} bytes, expected ${expected}`);
        }
        if (this.plan.size === undefined) {
            this.tuning.onSize?.(total);
            this.plan.setSize(total);
            if (!Number.isFinite(segment.end))
                segment.end = total;
            this.spawnWorkers();
        }
    }
    async rangeNotSatisfiable(segment, response) {
        (0,body/* discardBody */.LL)(response.body);
        const total = /^bytes \*\/(\d+)$/.exec(String(response.headers['content-range'] ?? ''));
        // Asking for the bytes after the last one (a resumed blob that had all its bytes) is the
        // one 416 that means "done"; any other says the file is not the size we expect.
        if (total && Number(total[1]) === segment.pos) {
            this.setSize(segment.pos, segment);
            segment.end = segment.pos;
            return;
        }
        throw new errors/* ModelPullError */.Vy('ERR_RANGE_NOT_SATISFIABLE', `${this.blob.label}: the server cannot serve bytes from ${segment.pos} (it reports ${response.headers['content-range'] ?? 'no size'})`, { status: 416 });
    }
    /** Writes the body into the segment until it ends or a thief has taken the rest. */
    async consume(segment, response, declaredEnd) {
        const { clock } = this.tuning;
        let windowStart = clock.now();
        let windowBytes = 0;
        const target = {
            file: this.output.sink,
            segment,
            bodyEnd: declaredEnd,
            bodyError: (error) => (0,http_errors/* networkError */.x6)(error, response.url),
            untilRecord: () => this.tuning.flushBytes - this.unflushed,
            landed: (offset, bytes) => {
                this.fetched += bytes.length;
                this.hasher.written(offset, bytes);
                this.tuning.onBytes?.(bytes.length);
                windowBytes += bytes.length;
                const now = clock.now();
                if (now - windowStart >= RATE_WINDOW_MS) {
                    const instant = (windowBytes * 1000) / (now - windowStart);
                    segment.rate = segment.rate ? (segment.rate + instant) / 2 : instant;
                    windowStart = now;
                    windowBytes = 0;
                }
                this.noteProgress(bytes.length);
                if (this.gate.landed(bytes.length))
                    this.spawnWorkers();
            },
        };
        const fd = this.output.sink.fd;
        const body = response.body;
        if (body instanceof raw/* RawBody */.X7 && body.length !== undefined && fd !== undefined) {
            // Read in place: each read is written and hashed before the buffer is read into again.
            await writeRawBody(body, fd, target, this.rateCheck(response));
        }
        else {
            const writing = writeBody(body, target);
            // After the writer's listeners: this one must not start the flow before they hear it.
            this.guardRate(response);
            await writing;
        }
        if (segment.pos >= segment.end)
            return;
        if (!Number.isFinite(segment.end) && declaredEnd === undefined) {
            this.setSize(segment.pos, segment);
            return;
        }
        const expectedEnd = Math.min(declaredEnd ?? segment.end, segment.end);
        if (segment.pos < expectedEnd) {
            throw new errors/* ModelPullError */.Vy('ERR_TRUNCATED', `${this.blob.label}: the connection ended at byte ${segment.pos} of ${expectedEnd}`);
        }
    }
    /**
     * A body trickling below the minimum rate is cut like a stall (ERR_TOO_SLOW, retried): the
     * check takes each arrival's byte count and returns the error once a window ends too slow.
     */
    rateCheck(response) {
        const min = this.tuning.http.minRate;
        const guard = new RateGuard(min, this.tuning.clock.now);
        return (bytes) => {
            const seen = guard.add(bytes);
            if (seen === undefined)
                return undefined;
            const host = (0,http_errors/* hostOf */.w4)(response.url);
            return new errors/* ModelPullError */.Vy('ERR_TOO_SLOW', `${host} sent ${(0,format/* formatBytes */.z3)(seen)} in ${min.windowMs / 1000} s, below the minimum of ${(0,format/* formatBytes */.z3)(min.bytes)}`, { host });
        };
    }
    /** The rate check on a body read as a stream: a body too slow is destroyed with its error. */
    guardRate(response) {
        const check = this.rateCheck(response);
        const onData = (chunk) => {
            const error = check(chunk.length);
            if (!error)
                return;
            response.body.off('data', onData);
            response.body.destroy(error);
        };
        response.body.on('data', onData);
    }
    noteProgress(bytes) {
        this.unflushed += bytes;
        if (this.unflushed >= this.tuning.flushBytes ||
            this.tuning.clock.now() - this.lastFlush >= this.tuning.flushIntervalMs) {
            this.flush();
        }
    }
    /**
     * Records which ranges are written, on this thread: the record describes the file as it is
     * now, and no byte lands until it is in place. Written asynchronously, it waited for the thread
     * pool (four calls) while the bodies went on landing, and a starved process or a busy disk let
     * a kill lose what landed meanwhile on top of `flushBytes` (16.2 MiB with a rename slowed by
     * 1 s); now a kill loses less than `flushBytes` and one chunk. Its cost is a small file's write
     * and rename every `flushBytes`, beside the bytes' own synchronous writes.
     */
    flush() {
        const paths = this.output.paths;
        if (!paths)
            return;
        this.unflushed = 0;
        this.lastFlush = this.tuning.clock.now();
        try {
            saveProgress(paths, this.blob.digest, this.plan.size, this.plan.records());
        }
        catch (error) {
            // Losing one record costs only resume distance, never correctness: the digest checks all.
            this.tuning.log?.debug(`${this.blob.label}: could not save download progress: ${String(error)}`);
        }
    }
}

// EXTERNAL MODULE: ./src/download/lease.ts + 1 modules
var download_lease = __webpack_require__(3712);
;// CONCATENATED MODULE: ./src/download/pool.ts
/**
 * Runs `fn` over the items in order, each outcome its own. `limit` bounds how many run at once,
 * or, with a weight, their summed weights (an item heavier than the limit runs alone): the next
 * item starts as soon as it fits, never overtaken by a later, lighter one.
 */
async function poolSettled(items, limit, fn) {
    const { limit: capacity, weight } = typeof limit === 'number' ? { limit, weight: () => 1 } : limit;
    const results = new Array(items.length);
    const running = new Set();
    let used = 0;
    for (let i = 0; i < items.length; i++) {
        const item = items[i];
        const w = Math.min(Math.max(1, capacity), weight(item));
        while (running.size > 0 && used + w > capacity)
            await Promise.race(running);
        used += w;
        const run = fn(item).then((value) => {
            results[i] = { status: 'fulfilled', value };
        }, (reason) => {
            results[i] = { status: 'rejected', reason };
        });
        const done = run.finally(() => {
            used -= w;
            running.delete(done);
        });
        running.add(done);
    }
    await Promise.all(running);
    return results;
}

;// CONCATENATED MODULE: ./src/download/progress.ts
const progress_RATE_WINDOW_MS = 5000;
/** Counts bytes per blob and hands snapshots (with rates over the last seconds) to a listener. */
class ProgressTracker {
    listener;
    clock;
    entries = [];
    started;
    timer;
    constructor(listener, intervalMs, clock) {
        this.listener = listener;
        this.clock = clock;
        this.started = clock.now();
        if (listener) {
            this.timer = setInterval(() => this.emit(), intervalMs);
            this.timer.unref();
        }
    }
    add(label, target, total) {
        const entry = { label, target, done: 0, total, state: 'queued', samples: [] };
        this.entries.push(entry);
        return entry;
    }
    /**
     * The blob's download begins now (its time counts from here); it shows as downloading once its
     * first attempt knows what is already staged (`startAt`), so no snapshot shows a resumed blob
     * at 0.
     */
    start(entry) {
        entry.startedAt = this.clock.now();
    }
    /** The blob is in place with `size` bytes (downloaded, or found good on disk). */
    finish(entry, size) {
        entry.state = 'done';
        entry.total = size;
        entry.done = size;
        if (entry.startedAt !== undefined)
            entry.endedAt = this.clock.now();
    }
    /**
     * An attempt starts with `staged` bytes in place (a resume, or 0 after a restart): the blob's
     * progress is that, and its rate counts from here, so neither a resume nor a restart looks
     * like a burst of download.
     */
    startAt(entry, staged) {
        entry.state = 'downloading';
        entry.done = staged;
        entry.samples = [{ at: this.clock.now(), done: staged }];
    }
    snapshot() {
        const now = this.clock.now();
        const blobs = this.entries.map((e) => ({
            label: e.label,
            target: e.target,
            done: e.done,
            total: e.total,
            state: e.state,
            rate: rateOf(e, now),
            ...(e.error !== undefined ? { error: e.error } : {}),
            ...(e.startedAt !== undefined ? { fetchMs: (e.endedAt ?? now) - e.startedAt } : {}),
        }));
        return {
            blobs,
            done: blobs.reduce((sum, b) => sum + b.done, 0),
            total: blobs.reduce((sum, b) => sum + (b.total ?? b.done), 0),
            rate: blobs.reduce((sum, b) => sum + b.rate, 0),
            elapsedMs: now - this.started,
        };
    }
    /** Stops the ticker and sends a last snapshot. */
    stop() {
        if (this.timer)
            clearInterval(this.timer);
        this.timer = undefined;
        this.emit();
    }
    emit() {
        this.listener?.(this.snapshot());
    }
}
function rateOf(entry, now) {
    entry.samples.push({ at: now, done: entry.done });
    while (entry.samples.length > 2 && now - entry.samples[0].at > progress_RATE_WINDOW_MS)
        entry.samples.shift();
    const first = entry.samples[0];
    const span = now - first.at;
    return span > 0 ? ((entry.done - first.done) * 1000) / span : 0;
}

;// CONCATENATED MODULE: ./src/download/engine.ts












const engine_MiB = 1024 * 1024;
/**
 * Blobs from this size start on one connection and open the rest once the main thread has room
 * (connection-gate.ts): big enough that a window or two on one connection costs little.
 */
const GATED_BLOB = 256 * engine_MiB;
/** A blob's progress is recorded every this many new bytes: what a kill -9 may cost a resume. */
const FLUSH_BYTES = 8 * engine_MiB;
/** Places every blob, verified, at its target (reusing verified ones), or throws the first error. */
async function fetchBlobs(blobs, options) {
    const settled = await fetchBlobsSettled(blobs, options);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed)
        throw failed.reason;
    return settled.map((s) => s.value);
}
/**
 * Like fetchBlobs, but every blob gets its own outcome, so one broken model does not stop the
 * others. The disk check covers all of them together, before the first byte.
 */
async function fetchBlobsSettled(blobs, options) {
    // Two specs for one target (one blob shared by two models) are fetched once.
    const unique = [...new Map(blobs.map((b) => [b.target, b])).values()];
    const outcomes = await fetchUnique(unique, options);
    const byTarget = new Map(unique.map((b, i) => [b.target, outcomes[i]]));
    return blobs.map((b) => byTarget.get(b.target));
}
async function fetchUnique(blobs, options) {
    const clock = options.clock ?? src_clock/* systemClock */.m;
    const tracker = new ProgressTracker(options.onProgress, options.progressIntervalMs ?? 1000, clock);
    try {
        const entries = blobs.map((blob) => ({
            blob,
            progress: tracker.add(blob.label, blob.target, blob.size),
        }));
        // Each target is checked on its own: one that cannot be read fails its blob, not the run.
        const checks = await poolSettled(entries, options.concurrency, async ({ blob, progress }) => {
            progress.state = 'checking';
            const verdict = await checkExisting(blob, options.verify);
            if (verdict.ok)
                tracker.finish(progress, verdict.size);
            return verdict;
        });
        const early = entries.map(({ blob, progress }, i) => {
            const check = checks[i];
            let outcome;
            if (check.status === 'rejected') {
                outcome = { status: 'rejected', reason: labelled(blob, check.reason) };
                failedWith(progress, outcome.reason);
            }
            else if (check.value.ok) {
                outcome = { status: 'fulfilled', value: reusedResult(blob, check.value.size) };
            }
            else {
                return undefined;
            }
            options.onSettled?.(blob, outcome);
            return outcome;
        });
        const missing = entries.flatMap((entry, i) => {
            const check = checks[i];
            return check.status === 'fulfilled' && !check.value.ok ? [{ ...entry, verdict: check.value }] : [];
        });
        await checkDiskSpace(await bytesToFetch(missing.map((e) => e.blob)));
        // The connections of `concurrency` large blobs are the budget: a blob too small to split takes
        // one of them, so many small files (a sharded repo) run side by side instead of four at a
        // time on one connection each, and the tail of a repo does not crawl.
        const minSplit = options.minSplit ?? 4 * engine_MiB;
        const connectionsOf = ({ blob }) => blob.size === undefined
            ? options.connections
            : Math.min(options.connections, Math.max(1, Math.floor(blob.size / minSplit)));
        const budget = { limit: options.concurrency * options.connections, weight: connectionsOf };
        const fetched = await poolSettled(missing, budget, async ({ blob, progress, verdict }) => {
            tracker.start(progress);
            options.onFetchStart?.(blob);
            try {
                const result = await fetchVerified(blob, options, verdict, {
                    onStart: (staged, size) => {
                        if (size !== undefined)
                            progress.total = size;
                        tracker.startAt(progress, staged);
                    },
                    onBytes: (n) => {
                        progress.done += n;
                    },
                    onSize: (size) => {
                        progress.total = size;
                    },
                });
                tracker.finish(progress, result.size);
                options.onSettled?.(blob, { status: 'fulfilled', value: result });
                return result;
            }
            catch (caught) {
                const error = labelled(blob, caught);
                failedWith(progress, error);
                options.onSettled?.(blob, { status: 'rejected', reason: error });
                throw error;
            }
        });
        const byBlob = new Map(missing.map((e, i) => [e.blob, fetched[i]]));
        return entries.map(({ blob }, i) => early[i] ?? byBlob.get(blob));
    }
    finally {
        tracker.stop();
    }
}
function failedWith(progress, error) {
    progress.state = 'failed';
    progress.error = (0,errors/* describeError */.Uc)(error);
}
/** A blob whose target already holds its verified bytes: nothing fetched. */
function reusedResult(blob, size) {
    return {
        target: blob.target,
        digest: blob.digest,
        size,
        downloadedBytes: 0,
        reused: true,
        replaced: false,
    };
}
/**
 * Downloads, compares the streamed digest, commits; one fresh try after a mismatch. The lease
 * spans download, verification and the rename: nobody else may touch the staged file. Another
 * process pulling the same blob waits for it, then finds the blob committed and reuses it.
 */
async function fetchVerified(blob, options, verdict, progress) {
    if (options.signal?.aborted) {
        throw new errors/* ModelPullError */.Vy('ERR_ABORTED', `${blob.label}: not started, stopped by the user`);
    }
    // The ingest folder may be the first thing created in a new store: its parents must be 0755.
    await (0,fs_dirs/* ensureDirs */.J)(blob.ingestDir);
    const paths = stagingPaths(blob.ingestDir, blob.digest);
    const lease = await (0,download_lease/* acquireLease */.ZZ)(paths.lease, blob.label, {
        clock: options.clock ?? src_clock/* systemClock */.m,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.lease ? { timing: options.lease } : {}),
        onWait: (holder) => options.log?.info(`waiting for ${(0,download_lease/* describeHolder */.sG)(holder)} to finish ${blob.label}`),
    });
    try {
        const committed = await committedMeanwhile(blob, options.verify, verdict);
        if (committed)
            return committed;
        const result = await fetchVerifiedLocked(blob, options, progress, lease);
        // A target that was there but failed verification has just been replaced.
        return { ...result, replaced: verdict.present };
    }
    finally {
        await lease.release();
    }
}
/**
 * The target as another process may have left it while this blob queued or waited for the
 * lease: unchanged since the first check (absent, or the same wrong file) means fetch; anything
 * new is checked like any existing target and reused when verified.
 */
async function committedMeanwhile(blob, verify, before) {
    const now = await targetInfo(blob.target);
    if (!now)
        return undefined;
    const seen = before.seen;
    if (seen && seen.ino === now.ino && seen.mtimeMs === now.mtimeMs && seen.size === now.size)
        return undefined;
    const verdict = await checkExisting(blob, verify);
    return verdict.ok ? reusedResult(blob, verdict.size) : undefined;
}
async function fetchVerifiedLocked(blob, options, progress, lease) {
    let downloaded = 0;
    // A blob has one other place at most (the origin behind a mirror): one fallback, so two
    // places that both fail, or a mirror that is its own origin, cannot send it back and forth.
    let fellBack = false;
    const fallBack = (error) => {
        if (fellBack || !fallsBack(blob, error, options))
            return false;
        fellBack = true;
        return true;
    };
    for (let attempt = 1;; attempt++) {
        let staged;
        try {
            staged = await downloadToStaging(blob, {
                http: options.http,
                connections: options.connections,
                retry: options.retry,
                minSplit: options.minSplit ?? 4 * engine_MiB,
                flushBytes: options.flushBytes ?? FLUSH_BYTES,
                flushIntervalMs: 1000,
                signal: options.signal,
                clock: options.clock ?? src_clock/* systemClock */.m,
                log: options.log,
                onStart: progress.onStart,
                onBytes: progress.onBytes,
                onSize: progress.onSize,
                gate: options.gate ?? { load: eventLoopLoad, minSize: GATED_BLOB, minRate: MIN_SOLO_RATE },
            });
        }
        catch (error) {
            if (!fallBack(error))
                throw error;
            await discardStaging(stagingPaths(blob.ingestDir, blob.digest));
            attempt = 0;
            continue;
        }
        downloaded += staged.fetched;
        // The file itself must hold as many bytes as were hashed (the hash saw them in memory).
        const onDisk = (await (0,promises_.stat)(staged.paths.data)).size;
        const sizeOk = onDisk === staged.size && (blob.size === undefined || staged.size === blob.size);
        if (sizeOk && staged.hex === blob.digest.hex) {
            if (!(await lease.held())) {
                throw new errors/* ModelPullError */.Vy('ERR_STAGING_LOCK', `another process took over the download of ${blob.label} (it judged this one stalled)`);
            }
            await commitStaged(staged.paths, blob.target);
            return {
                target: blob.target,
                digest: blob.digest,
                size: staged.size,
                downloadedBytes: downloaded,
                host: staged.host,
                reused: false,
                replaced: false,
            };
        }
        // Staged bytes that do not match are never kept: the next try starts from byte 0.
        await discardStaging(staged.paths);
        const mismatch = new errors/* ModelPullError */.Vy('ERR_DIGEST_MISMATCH', `${blob.label}: ${blob.digest.algorithm} mismatch from ${staged.host}: expected ${blob.digest.hex}, got ${staged.hex}`, { host: staged.host });
        // Another place for the blob gets its own two tries; the same place, one more.
        if (fallBack(mismatch))
            attempt = 0;
        else if (attempt >= 2)
            throw mismatch;
    }
}
/**
 * Whether the blob is fetched again from the source's other place after this failure: never
 * for a stop, a local fault (disk, filesystem, another process's lease), which no other
 * server mends.
 */
function fallsBack(blob, error, options) {
    if (!blob.fallback || options.signal?.aborted)
        return false;
    const local = [
        'ERR_ABORTED',
        'ERR_DISK_SPACE',
        'ERR_FILESYSTEM',
        'ERR_STAGING_LOCK',
        'ERR_NOT_WRITABLE',
    ];
    if (local.some((code) => (0,errors/* isModelPullError */.pq)(error, code)))
        return false;
    return blob.fallback(error);
}
/**
 * The size of the blob's target when it already holds the verified bytes (checked as the
 * engine checks before a download), else undefined. A target that cannot be read throws.
 */
async function verifiedSize(blob, verify) {
    const verdict = await checkExisting(blob, verify);
    return verdict.ok ? verdict.size : undefined;
}
/**
 * Is the target already the right bytes? Never follows a link there, and never deletes a wrong
 * file: the commit's rename replaces it atomically, so a failed download leaves the old file,
 * and a target another process has just committed is not removed under it.
 */
async function checkExisting(blob, verify) {
    let seen;
    try {
        seen = await targetInfo(blob.target);
        if (!seen)
            return { ok: false, present: false };
        if (seen.kind !== 'file')
            return { ok: false, present: true, seen };
        if (blob.size !== undefined && seen.size !== blob.size)
            return { ok: false, present: true, seen };
        // Without a known size only the hash can tell; a git-sha1 always comes with its size.
        if (verify === 'size' && blob.size !== undefined)
            return { ok: true, present: true, size: seen.size };
        const hex = await (0,src_digest/* hashFile */.DC)(blob.target, blob.digest.algorithm, seen.size);
        if (hex === blob.digest.hex)
            return { ok: true, present: true, size: seen.size };
        return { ok: false, present: true, seen };
    }
    catch (error) {
        throw new errors/* ModelPullError */.Vy('ERR_FILESYSTEM', `cannot check the existing file ${blob.target}: ${(0,errors/* describeError */.Uc)(error)}`, { cause: error });
    }
}
/** Bytes still to land per ingest folder: expected size minus what a previous run staged. */
async function bytesToFetch(blobs) {
    const needs = new Map();
    for (const blob of blobs) {
        if (blob.size === undefined)
            continue;
        const saved = await loadProgress(stagingPaths(blob.ingestDir, blob.digest), blob.digest, blob.size);
        const staged = saved ? saved.segments.reduce((sum, s) => sum + (s.pos - s.start), 0) : 0;
        needs.set(blob.ingestDir, (needs.get(blob.ingestDir) ?? 0) + blob.size - staged);
    }
    return needs;
}
/** Every blob error names its blob first, once. */
function labelled(blob, error) {
    if (!(error instanceof errors/* ModelPullError */.Vy) || error.message.startsWith(`${blob.label}: `))
        return error;
    return error.withMessage(`${blob.label}: ${error.message}`);
}

// EXTERNAL MODULE: ./src/http/client.ts + 1 modules
var client = __webpack_require__(4530);
// EXTERNAL MODULE: ./src/lockfile.ts
var lockfile = __webpack_require__(9746);
// EXTERNAL MODULE: ./src/cache/key.ts
var key = __webpack_require__(5877);
// EXTERNAL MODULE: ./src/resolve.ts
var resolve = __webpack_require__(1259);
// EXTERNAL MODULE: ./src/sources/descriptor.ts
var descriptor = __webpack_require__(6541);
;// CONCATENATED MODULE: ./src/model-run.ts




/**
 * One model through the pipeline: before the engine, `prepare` (plan, name the cache entry),
 * then `restore` from the Actions cache (it needs the plan's paths); after it, `finish` (count
 * the bytes, commit the layout, tell the cache state, save a missed entry, build the output).
 */
class ModelRun {
    ref;
    run;
    plan;
    /** The cache named an entry for this model (restored in whole, in part, or refused). */
    restored = false;
    /** What the restore placed (verified) and what it refused. */
    restoreResult;
    /** Why the model cannot go on (identify, plan or restore failed). */
    error;
    /** The key of the model's cache entry, once planned with the cache on. */
    key;
    constructor(ref, run) {
        this.ref = ref;
        this.run = run;
    }
    /**
     * The identity came from the lock file and the source refused it as not naming this line
     * (`lock-mode: update` looks such lines up again).
     */
    get lockEntryRefused() {
        return this.fromLock && (0,errors/* isModelPullError */.pq)(this.error, 'ERR_LOCKFILE');
    }
    fromLock = false;
    /** `lockPath`: the identity came from this lock file, so a misfit is the file's fault. */
    async prepare(identity, lockPath) {
        if (identity.status === 'rejected') {
            this.error = asError(identity.reason);
            return this;
        }
        this.fromLock = lockPath !== undefined;
        try {
            this.plan = await (0,descriptor/* sourceOf */.vz)(this.run.sources, this.ref).plan(this.ref.ref, identity.value, this.run.ctx);
            const cache = this.run.cache;
            if (cache)
                this.key = (0,key/* cacheKey */.k$)(cache.keyPrefix, this.plan.identity);
        }
        catch (error) {
            this.error =
                lockPath && (0,errors/* isModelPullError */.pq)(error, 'ERR_LOCKFILE')
                    ? new errors/* ModelPullError */.Vy('ERR_LOCKFILE', `lock file ${lockPath}: ${error.message}`, {
                        cause: error,
                        fix: `look the line up again with \`${(0,resolve/* lockCommand */.Lg)(lockPath, [this.ref.line])}\``,
                    })
                    : asError(error);
            this.plan = undefined;
        }
        return this;
    }
    /**
     * Whether the model's cache entry exists, nothing downloaded (for fail-on-cache-miss);
     * undefined when the model has none to ask about (it failed already, or the cache is off).
     */
    async lookup() {
        const plan = this.plan;
        const key = this.key;
        if (!plan || this.error || !key || !this.run.cache)
            return undefined;
        return { key, found: await this.run.cache.client.lookup({ key, paths: plan.cachePaths }) };
    }
    /**
     * The model's Actions cache entry, named by its content, restored onto the plan's paths;
     * files already in place and verified are kept, and when all are, no archive is fetched.
     */
    async restore(progress) {
        const plan = this.plan;
        const cache = this.run.cache;
        if (!plan || this.error || !cache || !this.key)
            return this;
        this.restoreResult = await cache.client.restore({
            key: this.key,
            paths: plan.cachePaths,
            blobs: plan.blobs,
            verify: this.run.verify,
            ...(progress ? { progress: progress(this) } : {}),
        });
        this.restored = this.restoreResult.state !== 'miss' && this.restoreResult.state !== 'off';
        if (this.restored) {
            const present = this.restoreResult.present?.size ?? 0;
            const kept = present > 0 ? `, ${present} already in place` : '';
            this.run.log.info(`${this.ref.line}: restored ${this.restoreResult.restored.size} of ${plan.blobs.length} files from the Actions cache${kept} (${this.key})`);
        }
        return this;
    }
    async finish(fetched, owns) {
        const plan = this.plan;
        if (!plan || this.error)
            return this.failed(this.error, zeroTraffic);
        const results = plan.blobs.map((b) => fetched.results.get(b.target));
        const traffic = this.traffic(plan, results, fetched, owns);
        const failed = results.find((r) => r.status === 'rejected');
        if (failed)
            return this.failed(failed.reason, traffic);
        const done = results.map((r) => r.value);
        let files = plan.files;
        try {
            files = (await plan.commit())?.files ?? files;
        }
        catch (error) {
            return this.failed(error, traffic);
        }
        const cache = this.cacheState(done);
        this.warnRepaired(done);
        await this.save(plan, cache);
        const result = output(this.ref.line, { ...plan, files }, done, cache);
        return { ...this.base(), output: result, identity: plan.identity, ...traffic };
    }
    /** Bytes fetched and restored for this model, and how long its blobs took. */
    traffic(plan, results, fetched, owns) {
        const durationMs = Math.max(0, ...plan.blobs.map((b) => (fetched.settledAt.get(b.target) ?? fetched.started) - fetched.started));
        let downloadedBytes = 0;
        let cachedBytes = 0;
        const from = {};
        for (const r of results) {
            if (r.status !== 'fulfilled')
                continue;
            if (owns.fetched(r.value.target)) {
                downloadedBytes += r.value.downloadedBytes;
                const host = r.value.host;
                if (host && r.value.downloadedBytes > 0)
                    from[host] = (from[host] ?? 0) + r.value.downloadedBytes;
            }
            // A file the restore found in place came from the disk, not from the cache.
            const inPlace = this.restoreResult?.present?.has(r.value.target) === true;
            if (this.restored && r.value.reused && !inPlace && owns.restored(r.value.target))
                cachedBytes += r.value.size;
        }
        // Restored bytes count only for a model that ends in place (a failed one restored nothing usable).
        const anyFailed = results.some((r) => r.status === 'rejected');
        return {
            downloadedBytes,
            cachedBytes: anyFailed ? 0 : cachedBytes,
            durationMs,
            ...(Object.keys(from).length > 0 ? { from } : {}),
        };
    }
    /** `off` when nothing was looked up; `miss` only when the entry was looked up and not found. */
    cacheState(done) {
        if (!this.run.cache || !this.restoreResult || this.restoreResult.state === 'off')
            return 'off';
        if (!this.restored)
            return 'miss';
        // A refused member (the restore warned) or any file from the origin makes it partial.
        const fetched = done.some((r) => r.downloadedBytes > 0 || r.replaced);
        return this.restoreResult?.state === 'partial' || fetched ? 'partial' : 'hit';
    }
    /** Files that were on disk but did not verify were fetched again: worth a warning. */
    warnRepaired(done) {
        const repaired = done.filter((r) => r.replaced).length;
        if (repaired === 0)
            return;
        const files = repaired === 1 ? '1 file' : `${repaired} files`;
        const were = repaired === 1 ? 'was' : 'were';
        this.run.log.warning(`${this.ref.line}: ${files} on disk failed verification and ${were} downloaded again`);
    }
    /**
     * Only a miss is saved: a restored entry that needed repair keeps its key (entries are
     * immutable), and the repaired files are on disk for this run anyway. (The client also knows
     * an entry it found but could not read, and does not save that one again.)
     */
    async save(plan, cache) {
        if (cache !== 'miss' || !this.key || !this.run.cache)
            return;
        const saved = await this.run.cache.client.save(plan.cachePaths, this.key);
        if (saved === 'saved')
            this.run.log.info(`${this.ref.line}: saved to the Actions cache (${this.key})`);
    }
    base() {
        return { line: this.ref.line, source: this.ref.kind, ...(this.key ? { key: this.key } : {}) };
    }
    failed(reason, traffic) {
        return { ...this.base(), error: reason === undefined ? undefined : asError(reason), ...traffic };
    }
}
const zeroTraffic = { downloadedBytes: 0, cachedBytes: 0, durationMs: 0 };
/** The `models` output object; file sizes the plan did not know come from the engine. */
function output(line, plan, done, cache) {
    const sizes = new Map(done.map((r) => [r.target, r.size]));
    const files = plan.files.map((f) => (f.size > 0 ? f : { ...f, size: sizes.get(f.path) ?? f.size }));
    const identity = plan.identity;
    return {
        ref: line,
        source: identity.source,
        name: identity.name,
        digest: identity.pin,
        path: plan.path,
        size: plan.size > 0 ? plan.size : files.reduce((s, f) => s + f.size, 0),
        cache,
        files,
    };
}
function asError(reason) {
    return reason instanceof Error ? reason : new Error((0,errors/* describeError */.Uc)(reason));
}

// EXTERNAL MODULE: ./src/refs/index.ts
var src_refs = __webpack_require__(8674);
;// CONCATENATED MODULE: ./src/report/phases.ts

const ORDER = [
    'resolving',
    'listing',
    'restoring',
    'verifying',
    'downloading',
    'writing',
];
/**
 * Tells a listener each model's phase as the pipeline moves: the pipeline calls it at its
 * steps, and it reads the engine's progress to tell verifying from downloading per model.
 * Each phase is told once per model, in order; nothing follows `done` or `failed`.
 */
class ModelPhases {
    listener;
    wordsOf;
    phase = new Map();
    constructor(listener, wordsOf) {
        this.listener = listener;
        this.wordsOf = wordsOf;
    }
    /** Moves `ref` to `phase` unless it is there or further already. */
    enter(ref, phase, text) {
        const now = this.phase.get(ref.line);
        if (now === 'done' || now === 'failed')
            return;
        if (now !== undefined && ORDER.indexOf(now) >= ORDER.indexOf(phase))
            return;
        this.phase.set(ref.line, phase);
        const words = this.wordsOf(ref);
        const said = text ??
            (phase === 'resolving'
                ? (words.resolving ?? 'resolving')
                : phase === 'writing'
                    ? (words.writing ?? 'writing files')
                    : phase);
        if (said !== '')
            this.listener?.({ line: ref.line, phase, text: said });
    }
    /** The model failed: told once, the first time. */
    failed(line, error, report) {
        if (this.phase.get(line) === 'failed' || this.phase.get(line) === 'done')
            return;
        this.phase.set(line, 'failed');
        this.listener?.({ line, phase: 'failed', text: 'failed', error, ...(report ? { report } : {}) });
    }
    /** The end of a model: done, or failed if it was not told yet. */
    finished(report) {
        if (!report.output) {
            this.failed(report.line, report.error ?? new Error('failed'), report);
            return;
        }
        if (this.phase.get(report.line) === 'done')
            return;
        this.phase.set(report.line, 'done');
        this.listener?.({ line: report.line, phase: 'done', text: 'done', report });
    }
    /**
     * The run's sources, each telling `resolving` as it looks a line up (and `failed` at once when
     * that fails), `listing files (N)` once it has planned it, and `writing` as its layout is
     * committed.
     */
    watching(sources, refs) {
        const refOf = (parsed) => refs.find((r) => r.ref === parsed);
        const watch = (source) => ({
            identify: async (parsed, ctx) => {
                const ref = refOf(parsed);
                if (ref)
                    this.enter(ref, 'resolving');
                try {
                    return await source.identify(parsed, ctx);
                }
                catch (error) {
                    if (ref)
                        this.failed(ref.line, phases_asError(error));
                    throw error;
                }
            },
            plan: async (parsed, identity, ctx) => {
                const entry = await source.plan(parsed, identity, ctx);
                const ref = refOf(parsed);
                if (!ref)
                    return entry;
                this.enter(ref, 'listing', this.wordsOf(ref).listing ?? `listing files (${entry.files.length})`);
                return { ...entry, commit: () => this.committing(ref, entry) };
            },
        });
        return new Map([...sources].map(([kind, source]) => [kind, watch(source)]));
    }
    committing(ref, entry) {
        this.enter(ref, 'writing');
        return entry.commit();
    }
    /**
     * What the engine tells, turned into each model's phases: `verifying` while its files on disk
     * are checked (seen in a progress snapshot, or told once one of them proves good),
     * `downloading N files` as the first of its missing files starts, `failed` as soon as one of
     * its files fails. The progress snapshots are handed on to `next`.
     */
    engineEvents(models, next) {
        const listing = (target) => models.filter((m) => m.plan?.blobs.some((b) => b.target === target));
        const settled = new Set();
        return {
            onProgress: this.listener
                ? (snapshot) => {
                    const checking = new Set(snapshot.blobs.filter((b) => b.state === 'checking').map((b) => b.target));
                    for (const { ref, plan } of models)
                        if (plan?.blobs.some((b) => checking.has(b.target)))
                            this.enter(ref, 'verifying');
                    next?.(snapshot);
                }
                : next,
            onFetchStart: (blob) => {
                for (const { ref, plan } of listing(blob.target)) {
                    const left = plan.blobs.filter((b) => !settled.has(b.target));
                    this.enter(ref, 'downloading', downloading(left));
                }
            },
            onSettled: (blob, outcome) => {
                settled.add(blob.target);
                for (const { ref } of listing(blob.target)) {
                    if (outcome.status === 'rejected')
                        this.failed(ref.line, phases_asError(outcome.reason));
                    else if (outcome.value.reused)
                        this.enter(ref, 'verifying');
                }
            },
        };
    }
}
/** `downloading 2 files, 1.2 GiB` (the size when every file's is known). */
function downloading(blobs) {
    const files = `${blobs.length} file${blobs.length === 1 ? '' : 's'}`;
    const known = blobs.every((b) => b.size !== undefined);
    const size = known ? `, ${(0,format/* formatBytes */.z3)(blobs.reduce((sum, b) => sum + b.size, 0))}` : '';
    return `downloading ${files}${size}`;
}
function phases_asError(reason) {
    return reason instanceof Error ? reason : new Error(String(reason));
}

;// CONCATENATED MODULE: ./src/stores.ts



/**
 * The run's sources, each refusing a line before any request when a folder it writes into
 * cannot be written, with a message that names the folder and the option to change:
 * `cannot write the Ollama store /x/models (ollama-models / --ollama-models): permission denied`.
 * Each folder is created (as the pull would) and tried once per run; only the lines of the
 * sources that write there fail.
 */
function checkingStores(sources, list, settings, refs) {
    const checks = new Map();
    const check = (folder) => {
        let pending = checks.get(folder.path);
        if (!pending) {
            pending = writable(folder);
            checks.set(folder.path, pending);
        }
        return pending;
    };
    const checkFor = async (parsed) => {
        const kind = refs.find((r) => r.ref === parsed)?.kind;
        const descriptor = list.find((s) => s.kind === kind);
        for (const folder of descriptor?.stores?.(settings) ?? [])
            await check(folder);
    };
    return new Map([...sources].map(([kind, source]) => [
        kind,
        {
            identify: async (parsed, ctx) => {
                await checkFor(parsed);
                return source.identify(parsed, ctx);
            },
            // A line pinned by a lock file is never identified: its plan checks instead.
            plan: async (parsed, identity, ctx) => {
                await checkFor(parsed);
                return source.plan(parsed, identity, ctx);
            },
        },
    ]));
}
async function writable(folder) {
    try {
        await (0,fs_dirs/* ensureDirs */.J)(folder.path);
        await (0,promises_.access)(folder.path, promises_.constants.W_OK | promises_.constants.X_OK);
    }
    catch (error) {
        throw new errors/* ModelPullError */.Vy('ERR_NOT_WRITABLE', `cannot write ${folder.what} ${folder.path} (${folder.input} / --${folder.input}): ${reason(error)}`, { cause: error });
    }
}
function reason(error) {
    switch (error.code) {
        case 'EACCES':
        case 'EPERM':
            return 'permission denied';
        case 'EROFS':
            return 'read-only file system';
        case 'ENOTDIR':
        case 'EEXIST':
            return 'a file is in the way where a folder must be';
        case 'ENOSPC':
            return 'no space left on the device';
        default:
            return error instanceof Error ? error.message : String(error);
    }
}

;// CONCATENATED MODULE: ./src/pull.ts















/**
 * The whole pipeline for a list of model lines: parse (every line, before any request),
 * identify (or read the lock), plan, restore from the Actions cache, fetch what is missing,
 * commit the layouts, save new cache entries. One model's failure does not stop the others;
 * the report says which failed and why.
 */
async function pull(settings, deps) {
    (0,descriptor/* checkSourceList */.EA)(deps.sources);
    const lockfile = await lockTarget(settings, deps.sources);
    const refs = (0,src_refs/* parseLines */.L)(linesOf(settings, lockfile), deps.sources);
    const http = new client/* HttpClient */.Qq(settings.http);
    try {
        const clock = deps.clock ?? src_clock/* systemClock */.m;
        const onRetry = deps.onRetry ?? ((event) => deps.log.info((0,http_retry/* describeRetry */.eV)(event)));
        const retry = { ...settings.retry, onRetry };
        const ctx = { http, retry, log: deps.log, clock, signal: deps.signal };
        const phases = new ModelPhases(deps.onModel, (ref) => (0,descriptor/* phaseWords */.V2)(deps.sources, ref.kind));
        const created = (0,descriptor/* createSources */.LH)(deps.sources, settings);
        const sources = phases.watching(checkingStores(created, deps.sources, settings, refs), refs);
        const started = clock.now();
        const { identities, fromLock, entries, wrote } = await (0,resolve/* resolveIdentities */.hA)(refs, sources, ctx, lockfile);
        if (wrote) {
            const lines = `${wrote.added} line${wrote.added === 1 ? '' : 's'}`;
            deps.log.info(wrote.created
                ? `wrote lock file ${lockfile.shown} (${lines})`
                : `added ${lines} to lock file ${lockfile.shown}`);
        }
        const run = {
            sources,
            ctx,
            log: deps.log,
            cache: settings.cache
                ? { client: oncePerEntry(deps.cache), keyPrefix: settings.cacheKeyPrefix }
                : undefined,
            verify: settings.verify,
        };
        let models = await Promise.all(refs.map((ref, i) => new ModelRun(ref, run).prepare(identities[i], fromLock[i] ? lockfile?.shown : undefined)));
        if (lockfile?.mode === 'update' && entries)
            models = await refreshRefused(models, lockfile, entries, run);
        // A model that could not be planned is reported now, not after the others' downloads.
        for (const model of models)
            if (model.error)
                phases.failed(model.ref.line, model.error);
        if (settings.failOnCacheMiss)
            await requireCacheEntries(models, settings);
        const restoring = restoreProgress(deps.onProgress, clock, phases);
        try {
            await Promise.all(models.map((m) => m.restore(restoring.of)));
        }
        finally {
            restoring.stop();
        }
        if (settings.failOnCacheMiss)
            requireRestored(models, settings);
        const fetched = await fetchAll(models, settings, ctx, deps, started, phases);
        const reports = [];
        for (const [model, owns] of ownership(models)) {
            const report = await model.finish(fetched, owns);
            phases.finished(report);
            reports.push(report);
        }
        return summarise(reports);
    }
    finally {
        await http.close();
    }
}
/**
 * `lock-mode: update`: lines whose lock entry their source refused (edited by hand, copied from
 * another line) are looked up again and prepared with the fresh identity; the file takes the
 * new entries when all of them resolved.
 */
async function refreshRefused(models, lockfile, entries, run) {
    const refused = models.filter((m) => m.lockEntryRefused);
    if (refused.length === 0)
        return [...models];
    const refs = refused.map((m) => m.ref);
    const { results, written } = await (0,resolve/* lockLines */.l)(lockfile.path, refs, run.sources, run.ctx, entries);
    if (written)
        run.log.info(`refreshed ${refs.length} line(s) of lock file ${lockfile.shown}`);
    const fresh = new Map(await Promise.all(refused.map(async (m, i) => [m, await new ModelRun(m.ref, run).prepare(results[i], undefined)])));
    return models.map((m) => fresh.get(m) ?? m);
}
/**
 * fail-on-cache-miss: every model's entry is looked up first, downloading nothing; when any has
 * none (or the cache cannot be asked), the run stops before anything is restored or fetched,
 * naming those models and their keys. Models that already failed keep their own error.
 */
async function requireCacheEntries(models, settings) {
    const answers = await Promise.all(models.map(async (m) => ({ line: m.ref.line, answer: await m.lookup() })));
    const asked = answers.filter((a) => a.answer !== undefined);
    const missing = asked.filter((a) => a.answer.found !== 'found');
    if (missing.length === 0)
        return;
    const listed = missing.map((a) => `"${a.line}" (${a.answer.key})`).join(', ');
    const fix = `run the job that pulls and saves them first (a job this one needs:), or set ${settings.settingText(constants/* Inputs */.G0.FailOnCacheMiss, 'false')}`;
    if (missing.every((a) => a.answer.found === 'off')) {
        throw new errors/* ModelPullError */.Vy('ERR_CACHE_MISS', `the Actions cache could not be asked for ${missing.length} of ${asked.length} models (see the warning above), and fail-on-cache-miss is true: ${listed}`, {
            fix: `make the cache service reachable, or set ${settings.settingText(constants/* Inputs */.G0.FailOnCacheMiss, 'false')}`,
        });
    }
    throw new errors/* ModelPullError */.Vy('ERR_CACHE_MISS', `${missing.length} of ${asked.length} models have no Actions cache entry, and fail-on-cache-miss is true: ${listed}`, { fix });
}
/**
 * fail-on-cache-miss, after the restores: an entry that was there but could not supply every
 * file (unreadable, refused members) would send the engine to the origin; stop instead.
 */
function requireRestored(models, settings) {
    const short = models.flatMap((m) => {
        const result = m.restoreResult;
        if (!result || !m.key || !m.plan || result.missing === 0)
            return [];
        return [`"${m.ref.line}" (${m.key}: ${result.missing} of ${m.plan.blobs.length} files)`];
    });
    if (short.length === 0)
        return;
    throw new errors/* ModelPullError */.Vy('ERR_CACHE_MISS', `${short.length} of ${models.length} models could not be restored in full from their Actions cache entries (see the warning above), and fail-on-cache-miss is true: ${short.join(', ')}`, {
        fix: `run the job that saves them again, or set ${settings.settingText(constants/* Inputs */.G0.FailOnCacheMiss, 'false')}`,
    });
}
/** The run's lock file, read and keyed by canonical line, when one is configured. */
async function lockTarget(settings, sources) {
    const config = settings.lockfile;
    if (!config)
        return undefined;
    const entries = await (0,lockfile/* readLockEntries */.M0)(config.path, config.shown, sources);
    return { ...config, entries, setting: settings.settingText };
}
/** The lines given, or with none (`pull --lockfile FILE`), every line of the lock, like `npm ci`. */
function linesOf(settings, lockfile) {
    if (settings.lines.length > 0)
        return settings.lines;
    if (!lockfile)
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', 'no model line given');
    if (!lockfile.entries) {
        throw new errors/* ModelPullError */.Vy('ERR_LOCKFILE', `lock file ${lockfile.shown} does not exist, and no model line was given`, {
            fix: `create it with \`model-pull lock --lockfile ${lockfile.shown} LINE...\``,
        });
    }
    if (lockfile.entries.size === 0) {
        throw new errors/* ModelPullError */.Vy('ERR_LOCKFILE', `lock file ${lockfile.shown} holds no model line, and none was given`);
    }
    return [...lockfile.entries.keys()];
}
/** Every planned blob of every model through the engine at once; a blob's failure is its own. */
async function fetchAll(models, settings, ctx, deps, started, phases) {
    const blobs = models.flatMap((m) => m.plan?.blobs ?? []);
    // Files a cache restore placed were verified as they were written, and the ones it found in
    // place were verified before: the engine skips them.
    const restored = new Map(models.flatMap((m) => [...(m.restoreResult?.restored ?? []), ...(m.restoreResult?.present ?? [])]));
    const pending = blobs.filter((b) => !restored.has(b.target));
    const settledAt = new Map();
    const told = phases.engineEvents(models, deps.onProgress);
    const outcomes = await fetchBlobsSettled(pending, {
        http: ctx.http,
        concurrency: settings.concurrency,
        connections: settings.connections,
        verify: settings.verify,
        retry: ctx.retry,
        clock: ctx.clock,
        log: deps.log,
        signal: deps.signal,
        onProgress: told.onProgress,
        onFetchStart: told.onFetchStart,
        onSettled: (blob, outcome) => {
            settledAt.set(blob.target, ctx.clock.now());
            told.onSettled(blob, outcome);
        },
    }).catch((error) => pending.map(() => ({ status: 'rejected', reason: error })));
    const results = new Map(pending.map((b, i) => [b.target, outcomes[i]]));
    for (const blob of blobs) {
        const size = restored.get(blob.target);
        if (size === undefined)
            continue;
        results.set(blob.target, { status: 'fulfilled', value: reusedResult(blob, size) });
    }
    return { results, settledAt, started };
}
/**
 * The restores' progress as the engine's is shown (a bar, or log lines, per archive being
 * fetched), and each model's `restoring` phase as its archive starts.
 */
function restoreProgress(listener, clock, phases) {
    const tracker = new ProgressTracker(listener, 1000, clock);
    return {
        of: (model) => {
            let entry;
            return {
                start: (size) => {
                    const of = size !== undefined ? `, ${(0,format/* formatBytes */.z3)(size)}` : '';
                    phases.enter(model.ref, 'restoring', `restoring from the Actions cache${of}`);
                    entry = tracker.add(`${model.ref.line} (Actions cache)`, `actions-cache:${model.key}`, size);
                    tracker.start(entry);
                    tracker.startAt(entry, 0);
                },
                size: (size) => {
                    if (entry)
                        entry.total = size;
                },
                bytes: (n) => {
                    if (entry)
                        entry.done += n;
                },
                end: (ok) => {
                    if (!entry)
                        return;
                    if (ok)
                        tracker.finish(entry, entry.total ?? entry.done);
                    else
                        Object.assign(entry, { state: 'failed', error: 'not restored; its files are downloaded' });
                },
            };
        },
        stop: () => tracker.stop(),
    };
}
/**
 * Each model with the blobs its bytes count for: a blob two lines share is fetched (or
 * restored) once, and counts for the first line that lists it (among the restored lines, for
 * restored bytes), so totals are real traffic.
 */
function ownership(models) {
    const fetchedBy = firstLister(models, () => true);
    const restoredBy = firstLister(models, (m) => m.restored);
    return models.map((model) => [
        model,
        {
            fetched: (target) => fetchedBy.get(target) === model,
            restored: (target) => restoredBy.get(target) === model,
        },
    ]);
}
/** For each blob target, the first model (in line order) that lists it and passes `filter`. */
function firstLister(models, filter) {
    const owners = new Map();
    for (const model of models) {
        if (!filter(model))
            continue;
        for (const blob of model.plan?.blobs ?? [])
            if (!owners.has(blob.target))
                owners.set(blob.target, model);
    }
    return owners;
}
function summarise(reports) {
    return {
        models: reports,
        downloadedBytes: reports.reduce((sum, r) => sum + r.downloadedBytes, 0),
        cachedBytes: reports.reduce((sum, r) => sum + r.cachedBytes, 0),
        cacheHit: reports.every((r) => r.output?.cache === 'hit'),
        ok: reports.every((r) => r.output !== undefined),
    };
}
/**
 * One restore and one save per entry (key and path list) in a run: two lines naming the same
 * content would otherwise extract one archive twice at once and meet their own reserve conflict.
 */
function oncePerEntry(cache) {
    const restores = new Map();
    const saves = new Map();
    const id = (paths, key) => [key, ...[...paths].sort()].join('\0');
    const once = (calls, entry, call) => {
        let pending = calls.get(entry);
        if (!pending) {
            pending = call();
            calls.set(entry, pending);
        }
        return pending;
    };
    return {
        restore: (entry) => once(restores, id(entry.paths, entry.key), () => cache.restore(entry)),
        save: (paths, key) => once(saves, id(paths, key), () => cache.save(paths, key)),
        lookup: (entry) => cache.lookup(entry),
    };
}


/***/ }),

/***/ 8674:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   A: () => (/* binding */ parseLine),
/* harmony export */   L: () => (/* binding */ parseLines)
/* harmony export */ });
/* harmony import */ var _sources_descriptor_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(6541);
/* harmony import */ var _line_js__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(9534);


/** Parses one model line; a malformed line fails here, before any request. */
function parseLine(text, sources) {
    const parts = (0,_line_js__WEBPACK_IMPORTED_MODULE_1__/* .splitLine */ .ho)(text);
    const source = (0,_sources_descriptor_js__WEBPACK_IMPORTED_MODULE_0__/* .claimingSource */ ._u)(sources, parts.reference);
    if (!source)
        throw (0,_line_js__WEBPACK_IMPORTED_MODULE_1__/* .badLine */ .mV)(parts.line, `expected ${alternatives(sources.map((s) => s.syntax))}`);
    const ref = source.parse(parts);
    const key = source.canonical ? source.canonical(ref) : (0,_line_js__WEBPACK_IMPORTED_MODULE_1__/* .plainKey */ .y7)(parts);
    return { kind: source.kind, line: parts.line, key, ref };
}
/** Parses every line first, so one bad line stops the run before anything is fetched. */
function parseLines(lines, sources) {
    const refs = lines.map((line) => parseLine(line, sources));
    for (const source of sources)
        source.checkLines?.(refs.filter((r) => r.kind === source.kind));
    return refs;
}
/** `a`, `a or b`, `a, b or c`. */
function alternatives(words) {
    return words.length <= 1
        ? (words[0] ?? 'a model line')
        : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;
}


/***/ }),

/***/ 9534:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   Lg: () => (/* binding */ onlyOptions),
/* harmony export */   ho: () => (/* binding */ splitLine),
/* harmony export */   mV: () => (/* binding */ badLine),
/* harmony export */   tG: () => (/* binding */ modelLines),
/* harmony export */   y7: () => (/* binding */ plainKey)
/* harmony export */ });
/* unused harmony export withoutComment */
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(3916);

/** The error every malformed line gets: it quotes the line and says what is wrong. */
function badLine(line, reason) {
    return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_BAD_REFERENCE', `invalid model line "${line.trim()}": ${reason}`);
}
/**
 * A ` #` (whitespace, then `#`) starts a trailing comment, as YAML users write them inside
 * `models: |`; it is not part of the line. A reference or option never holds whitespace, so a
 * `#` inside a URL (`…/f.gguf#x`) stays.
 */
function withoutComment(line) {
    return line.replace(/\s#.*$/s, '').trim();
}
function splitLine(line) {
    const trimmed = withoutComment(line);
    const [reference = '', ...rest] = trimmed.split(/\s+/);
    const options = new Map();
    for (const word of rest) {
        const eq = word.indexOf('=');
        if (eq <= 0) {
            // `sha256:<hex>` is how digests are written elsewhere; here options take `=`.
            const colon = /^([a-z0-9_-]+):(.+)$/i.exec(word);
            if (colon)
                throw badLine(trimmed, `did you mean ${colon[1]}=${colon[2]}? (options are key=value)`);
            throw badLine(trimmed, `expected key=value after the reference, got "${word}"`);
        }
        const key = word.slice(0, eq);
        if (options.has(key))
            throw badLine(trimmed, `option ${key}= given twice`);
        options.set(key, word.slice(eq + 1));
    }
    return { line: trimmed, reference, options };
}
/** Refuses options a source does not know, naming them. */
function onlyOptions(parts, allowed) {
    for (const key of parts.options.keys()) {
        if (!allowed.includes(key)) {
            const hint = allowed.length ? ` (allowed here: ${allowed.map((k) => `${k}=`).join(', ')})` : '';
            throw badLine(parts.line, `unknown option ${key}=${hint}`);
        }
    }
}
/**
 * The lines that name models, trimmed, trailing ` # comments` removed; blank lines and lines
 * starting with `#` are skipped.
 */
function modelLines(text) {
    const lines = typeof text === 'string' ? text.split(/\r?\n/) : text;
    return lines
        .map((l) => l.trim())
        .filter((l) => !l.startsWith('#'))
        .map(withoutComment)
        .filter((l) => l.length > 0);
}
/**
 * The line with its options in name order and single spaces: the key of a line for a source
 * that does not define its own canonical form.
 */
function plainKey(parts) {
    const options = [...parts.options].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return [parts.reference, ...options.map(([k, v]) => `${k}=${v}`)].join(' ');
}


/***/ }),

/***/ 8178:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  b: () => (/* binding */ RegistryClient),
  _: () => (/* binding */ registryOptions)
});

// EXTERNAL MODULE: ./src/errors.ts
var errors = __webpack_require__(3916);
// EXTERNAL MODULE: ./src/http/client.ts + 1 modules
var client = __webpack_require__(4530);
// EXTERNAL MODULE: ./src/http/retry.ts
var retry = __webpack_require__(8902);
;// CONCATENATED MODULE: ./src/registry/endpoint.ts



/**
 * Where a registry's API lives, from the name users write (docs/registries.md, "Names and
 * addresses"): most registries serve it at their own host; Docker Hub's name `docker.io` is
 * served at `registry-1.docker.io`, with its token realm on `auth.docker.io`.
 */
const WELL_KNOWN = {
    'docker.io': { api: 'registry-1.docker.io', realmHosts: ['auth.docker.io'] },
};
/** The host (and port) the distribution API is served at. */
function apiHostOf(host) {
    return WELL_KNOWN[host]?.api ?? host;
}
/** Token realms on other hosts that a well-known registry uses (https only, like any listed host). */
function knownRealmHosts(host) {
    return WELL_KNOWN[host]?.realmHosts ?? [];
}
/**
 * Socket codes that mean "nothing speaks TLS there": a plain-http server answering a ClientHello
 * (OpenSSL's `wrong version number`, `packet length too long`…) or hanging up on it. With a
 * refused connection (no listener on the https port) they are the only reasons to try http.
 * Certificate failures (ERR_TLS) are not: https was spoken, and a bad certificate is a reason to
 * stop (or to pass `ca-cert`), never to drop to plain http.
 */
const NO_TLS_CODES = /^(?:ERR_SSL_(?!.*CERT).*|EPROTO|ECONNRESET)$/;
/**
 * The origin (`scheme://host[:port]`) of a registry's API. A written scheme is obeyed. Without
 * one, Docker's rule for insecure registries: https first, and plain http only when https cannot
 * be spoken there; that fallback applies to loopback hosts and, with `insecure`, to every host.
 * Any other host is https, asked nothing here. The probe (`GET /v2/`, no credentials, no
 * redirect) is retried like any small request; only "no TLS there" leads to http.
 */
async function registryOrigin(call, name) {
    const host = apiHostOf(name.host);
    if (name.scheme)
        return new URL(`${name.scheme}://${host}/`).origin;
    const https = new URL(`https://${host}/`).origin;
    if (!call.http.options.insecure && !(0,client/* isLoopbackHost */.cW)(new URL(https).hostname))
        return https;
    const scheme = await (0,retry/* withRetries */.LH)(async () => {
        try {
            const answer = await call.http.request(`${https}/v2/`, {
                maxRedirects: 0,
                ...(call.signal ? { signal: call.signal } : {}),
            });
            await answer.body.dump().catch(() => undefined);
            return 'https';
        }
        catch (error) {
            // A refused certificate (ERR_TLS) is thrown as it is: https was spoken.
            if (speaksNoTls(error))
                return 'http';
            throw error;
        }
    }, call.retry, { clock: call.clock, subject: `registry ${name.host}`, ...(call.signal ? { signal: call.signal } : {}) });
    call.log.debug(`registry ${name.host}: ${scheme}`);
    return scheme === 'https' ? https : new URL(`http://${host}/`).origin;
}
/** The codes along an error's cause chain. */
function codes(error) {
    const out = [];
    for (let e = error; e; e = e.cause) {
        const code = e.code;
        if (typeof code === 'string')
            out.push(code);
    }
    return out;
}
function speaksNoTls(error) {
    if ((0,errors/* isModelPullError */.pq)(error, 'ERR_CONNECTION_REFUSED'))
        return true;
    if (!(0,errors/* isModelPullError */.pq)(error, 'ERR_NETWORK'))
        return false;
    return codes(error).some((c) => NO_TLS_CODES.test(c));
}

// EXTERNAL MODULE: ./src/registry/session.ts + 1 modules
var registry_session = __webpack_require__(7898);
;// CONCATENATED MODULE: ./src/registry/client.ts


function registryOptions(settings) {
    return {
        allowedRealmHosts: settings.allowedRealmHosts,
        ...(settings.registryAuth ? { basicAuth: settings.registryAuth } : {}),
        mirrors: settings.registryMirrors,
    };
}
/**
 * The OCI distribution client of a run: one session per repository and set of actions, so a
 * token is fetched once and shared by every blob of that repository. Basic credentials belong
 * to one registry: a session for any other host never sees them, even if that registry's
 * challenge names a realm on its own host.
 */
class RegistryClient {
    options;
    sessions = new Map();
    /** Origins by registry name, settled once per run (a probe may be needed). */
    origins = new Map();
    policy;
    constructor(options = {}) {
        this.options = options;
        this.policy = { allowedRealmHosts: options.allowedRealmHosts ?? [] };
    }
    /**
     * The session of a repository named as users write it (`host[:port]`, a scheme only if one
     * was written): its origin is settled first (registryOrigin), once per registry and run.
     */
    async resolve(call, name, actions = ['pull']) {
        const key = `${name.scheme ?? ''}://${name.host}`;
        let origin = this.origins.get(key);
        if (!origin) {
            origin = registryOrigin(call, name);
            this.origins.set(key, origin);
            // A failed probe is not remembered: the next model of the run asks again.
            origin.catch(() => this.origins.delete(key));
        }
        return this.session({ origin: await origin, host: name.host, repository: name.repository }, actions);
    }
    session(address, actions = ['pull'], alsoPull = []) {
        const registry = new URL(address.origin);
        const key = `${registry.origin}/${address.repository} ${actions.join(',')} ${alsoPull.join(',')}`;
        let session = this.sessions.get(key);
        if (!session) {
            const basicAuth = this.options.basicAuth;
            const own = basicAuth !== undefined && basicAuth.host === address.host;
            // A well-known registry's own realm (Docker Hub's auth.docker.io) needs no listing.
            const known = knownRealmHosts(address.host);
            const realms = known.length ? { allowedRealmHosts: [...this.policy.allowedRealmHosts, ...known] } : {};
            const policy = { ...this.policy, ...realms, ...(own ? { basicAuth } : {}) };
            session = new registry_session/* RegistrySession */.G(registry, address.repository, policy, actions, alsoPull);
            this.sessions.set(key, session);
        }
        return session;
    }
}


/***/ }),

/***/ 506:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   ED: () => (/* binding */ MANIFEST_OR_INDEX_ACCEPT),
/* harmony export */   FC: () => (/* binding */ badManifest),
/* harmony export */   Sw: () => (/* binding */ parseImageManifest),
/* harmony export */   ZJ: () => (/* binding */ MAX_MANIFEST_BYTES),
/* harmony export */   dY: () => (/* binding */ MANIFEST_ACCEPT),
/* harmony export */   mI: () => (/* binding */ MediaTypes),
/* harmony export */   yA: () => (/* binding */ parseManifestOrIndex)
/* harmony export */ });
/* unused harmony export MAX_BLOB_SIZE */
/* harmony import */ var _digest_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(2187);
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(3916);


/**
 * OCI image manifests and indexes, as the distribution API serves them (docs/registries.md,
 * "Manifests"). Nothing here knows what the layers hold: Ollama, ModelPack and Docker Model
 * Runner artifacts are all a config plus layers of their own media types.
 */
const MediaTypes = {
    DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
    OciManifest: 'application/vnd.oci.image.manifest.v1+json',
    OciIndex: 'application/vnd.oci.image.index.v1+json',
    DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
};
const MANIFEST_TYPES = new Set([MediaTypes.DockerManifest, MediaTypes.OciManifest]);
const INDEX_TYPES = new Set([MediaTypes.OciIndex, MediaTypes.DockerManifestList]);
/** `Accept` for a manifest that must be a single image (config + layers). */
const MANIFEST_ACCEPT = [...MANIFEST_TYPES].join(', ');
/** `Accept` for a reference that may name an index (per-platform or per-variant manifests). */
const MANIFEST_OR_INDEX_ACCEPT = [...MANIFEST_TYPES, ...INDEX_TYPES].join(', ');
/**
 * Far beyond any model (1 PiB) yet small enough that sums stay exact in a double: a size above
 * it is a broken or hostile manifest, not a download to plan disk space for.
 */
const MAX_BLOB_SIZE = 2 ** 50;
/** OCI registries must accept manifests up to 4 MiB; anything larger is not a model manifest. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
function badManifest(name, reason) {
    return new _errors_js__WEBPACK_IMPORTED_MODULE_1__/* .ModelPullError */ .Vy('ERR_BAD_MANIFEST', `manifest of ${name} is invalid: ${reason}`);
}
/**
 * Parses and validates a manifest or an index before anything in it reaches a path or a URL:
 * UTF-8 JSON, schemaVersion 2, a known media type, every descriptor with a `sha256:<64 hex>`
 * digest and a whole size in [0, 2^50]. `name` only labels the errors.
 */
function parseManifestOrIndex(bytes, name) {
    const { text, doc } = decode(bytes, name);
    const mediaType = doc.mediaType;
    return isIndex(doc, name) ? index(text, doc, mediaType, name) : manifest(text, doc, mediaType, name);
}
/** An image manifest only: an index here is refused (the caller asked for one image). */
function parseImageManifest(bytes, name) {
    const { text, doc } = decode(bytes, name);
    const mediaType = doc.mediaType;
    if (isIndex(doc, name))
        throw badManifest(name, `it is an image index (${mediaType ?? 'no mediaType'}), not a model manifest`);
    return manifest(text, doc, mediaType, name);
}
/** By its media type; one written without any is an index when it lists manifests and no layers. */
function isIndex(doc, name) {
    const mediaType = doc.mediaType;
    if (mediaType === undefined)
        return doc.manifests !== undefined && doc.layers === undefined;
    if (typeof mediaType === 'string' && INDEX_TYPES.has(mediaType))
        return true;
    if (typeof mediaType === 'string' && MANIFEST_TYPES.has(mediaType))
        return false;
    throw badManifest(name, `unsupported mediaType ${short(mediaType)}`);
}
function decode(bytes, name) {
    let text;
    let doc;
    try {
        // ignoreBOM keeps a BOM in the text, so the text always re-encodes to the served bytes.
        text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
        doc = JSON.parse(text);
    }
    catch {
        throw badManifest(name, 'it is not UTF-8 JSON');
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
        throw badManifest(name, 'it is not a JSON object');
    const m = doc;
    if (m.schemaVersion !== 2)
        throw badManifest(name, `unsupported schemaVersion ${short(m.schemaVersion)} (expected 2)`);
    return { text, doc: m };
}
function manifest(text, m, mediaType, name) {
    const config = descriptor(name, 'config', m.config);
    if (!Array.isArray(m.layers) || m.layers.length === 0)
        throw badManifest(name, 'it lists no layers');
    const layers = m.layers.map((l, i) => descriptor(name, `layer ${i + 1}`, l));
    const totalSize = layers.reduce((sum, l) => sum + l.size, config.size);
    if (totalSize > MAX_BLOB_SIZE)
        throw badManifest(name, `its blobs add up to ${totalSize} bytes, over the 2^50 limit`);
    const annotations = annotationsOf(name, 'it', m.annotations);
    return {
        kind: 'manifest',
        text,
        mediaType,
        ...(typeof m.artifactType === 'string' ? { artifactType: m.artifactType } : {}),
        config,
        layers,
        ...(annotations ? { annotations } : {}),
        totalSize,
    };
}
function index(text, m, mediaType, name) {
    if (!Array.isArray(m.manifests))
        throw badManifest(name, 'the index lists no manifests');
    const manifests = m.manifests.map((d, i) => descriptor(name, `index entry ${i + 1}`, d));
    const annotations = annotationsOf(name, 'it', m.annotations);
    return { kind: 'index', text, mediaType, manifests, ...(annotations ? { annotations } : {}) };
}
function descriptor(name, what, value) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw badManifest(name, `${what} is missing or not an object`);
    }
    const d = value;
    if (typeof d.mediaType !== 'string' || d.mediaType === '')
        throw badManifest(name, `${what} has no mediaType`);
    const digest = d.digest;
    if (typeof digest !== 'string' || !digest.startsWith('sha256:') || !(0,_digest_js__WEBPACK_IMPORTED_MODULE_0__/* .isSha256Hex */ .P4)(digest.slice(7))) {
        throw badManifest(name, `${what} has an invalid digest ${short(digest)} (expected sha256: and 64 lowercase hex)`);
    }
    const size = d.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        throw badManifest(name, `${what} has an invalid size ${short(size)}`);
    }
    if (size > MAX_BLOB_SIZE)
        throw badManifest(name, `${what} has an absurd size ${size} (over 2^50 bytes)`);
    const annotations = annotationsOf(name, what, d.annotations);
    const platform = d.platform;
    if (platform !== undefined &&
        (typeof platform !== 'object' || platform === null || Array.isArray(platform)))
        throw badManifest(name, `${what} has a platform that is not an object`);
    return {
        mediaType: d.mediaType,
        hex: digest.slice(7),
        size,
        ...(annotations ? { annotations } : {}),
        ...(typeof d.artifactType === 'string' ? { artifactType: d.artifactType } : {}),
        ...(platform ? { platform: platform } : {}),
    };
}
function annotationsOf(name, what, value) {
    if (value === undefined)
        return undefined;
    const ok = typeof value === 'object' &&
        value !== null &&
        !Array.isArray(value) &&
        Object.values(value).every((v) => typeof v === 'string');
    if (!ok)
        throw badManifest(name, `${what} has annotations that are not string pairs`);
    return value;
}
function short(value) {
    const text = JSON.stringify(value) ?? String(value);
    return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}


/***/ }),

/***/ 8911:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   FL: () => (/* binding */ tagFrom),
/* harmony export */   c9: () => (/* binding */ nameUnder),
/* harmony export */   mi: () => (/* binding */ repositoryPart),
/* harmony export */   u: () => (/* binding */ parseRepositoryPrefix),
/* harmony export */   vt: () => (/* binding */ repositoryUnder)
/* harmony export */ });
/* unused harmony export repositoryComponent */
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(3916);
/* harmony import */ var _refs_line_js__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(9534);


/** One repository path component, as the distribution spec allows it. */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** Parses a prefix; `what` names the input in errors (`input "mirror-to"`, `--to`). */
function parseRepositoryPrefix(value, what) {
    const text = value.trim().replace(/\/+$/, '');
    const bad = (why) => new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_BAD_INPUT', `${what} "${text}" ${why}`);
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
    const given = scheme?.[1]?.toLowerCase();
    if (given !== undefined && given !== 'http' && given !== 'https')
        throw bad('must start with a registry host, or http:// or https://');
    const rest = scheme ? text.slice(scheme[0].length) : text;
    const [host = '', ...parts] = rest.split('/');
    let parsed;
    try {
        parsed = new URL(`https://${host}/`);
    }
    catch {
        throw bad('does not start with a registry host (host[:port])');
    }
    if (host === '' || parsed.host !== host.toLowerCase() || /[@?#]/.test(host))
        throw bad('does not start with a registry host (host[:port])');
    for (const part of parts) {
        if (!COMPONENT.test(part))
            throw bad(`has the path part "${part}": repository parts are lowercase letters and digits joined by ., _, __ or -`);
    }
    return {
        host: host.toLowerCase(),
        ...(given ? { scheme: given } : {}),
        path: parts.join('/'),
        text,
    };
}
/** `prefix/path/part/…` as a repository, checked part by part (the parts must already be valid). */
function repositoryUnder(prefix, ...parts) {
    return [prefix.path, ...parts].filter((p) => p !== '').join('/');
}
/** `host[:port]/repository:tag` as users name it (no scheme), for messages and the report. */
function nameUnder(prefix, repository, reference) {
    const separator = reference.startsWith('sha256:') ? '@' : ':';
    return `${prefix.host}/${repository}${separator}${reference}`;
}
/**
 * A name part made valid as a repository component: lower case, runs of other characters as
 * one `-`, separators trimmed at the ends; undefined when nothing is left.
 */
function repositoryComponent(text) {
    const lower = text
        .toLowerCase()
        .replace(/[^a-z0-9._-]+/g, '-')
        .replace(/[._-]{2,}/g, (run) => (run === '__' ? run : run[0] === '-' ? '-' : run[0]))
        .replace(/^[._-]+|[._-]+$/g, '');
    return COMPONENT.test(lower) ? lower : undefined;
}
/**
 * A name part of a line (`what` says which) as one repository component under a mirror prefix:
 * lower case is all that may change (capitals are common on the Hub and in Ollama names);
 * anything else would be a silent rename, so the line is refused.
 */
function repositoryPart(part, what, line) {
    const valid = repositoryComponent(part);
    if (valid === undefined || valid !== part.toLowerCase())
        throw (0,_refs_line_js__WEBPACK_IMPORTED_MODULE_1__/* .badLine */ .mV)(line, `the ${what} "${part}" cannot be a registry repository part (lowercase letters and digits joined by ., _ or -)`);
    return valid;
}
/**
 * A tag made from a name (a branch, `refs/pr/1`): characters a tag cannot hold become `-`, and
 * `suffix` is kept whole within the 128 allowed; undefined when nothing valid is left.
 */
function tagFrom(name, suffix = '') {
    const base = name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[.-]+/, '');
    const tag = `${base.slice(0, 128 - suffix.length)}${suffix}`;
    return base !== '' && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag) ? tag : undefined;
}


/***/ }),

/***/ 7898:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  G: () => (/* binding */ RegistrySession),
  L: () => (/* binding */ registryBlob)
});

// EXTERNAL MODULE: ./src/digest.ts
var digest = __webpack_require__(2187);
// EXTERNAL MODULE: ./src/errors.ts
var errors = __webpack_require__(3916);
// EXTERNAL MODULE: ./src/http/body.ts
var http_body = __webpack_require__(9662);
// EXTERNAL MODULE: ./src/http/client.ts + 1 modules
var client = __webpack_require__(4530);
// EXTERNAL MODULE: ./src/http/retry.ts
var retry = __webpack_require__(8902);
;// CONCATENATED MODULE: ./src/registry/auth.ts



/**
 * Parses every challenge of one or more `WWW-Authenticate` values (RFC 7235): a scheme, then
 * comma-separated `key=value` or `key="quoted, with \" escapes"` parameters. A bare word that
 * is followed by a space starts the next challenge.
 */
function parseChallenges(header) {
    const values = header === undefined ? [] : typeof header === 'string' ? [header] : header;
    const out = [];
    for (const value of values) {
        const re = /\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?\s*,?/gy;
        let current;
        for (let m = re.exec(value); m && m[0] !== ''; m = re.exec(value)) {
            const [, word, quoted, bare] = m;
            if (quoted === undefined && bare === undefined) {
                current = { scheme: word.toLowerCase(), params: {} };
                out.push(current);
            }
            else if (current) {
                current.params[word.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare;
            }
        }
    }
    return out;
}
/**
 * The realm is where credentials go, so it is checked before any request: on the registry's own
 * host it is trusted as the registry is; on another host only over https and only when the user
 * listed that host. Ollama refuses every foreign realm (its fix for CVE-2025-51471, where a
 * registry sent clients' credentials to an attacker's realm); GHCR-style registries keep the
 * realm on the same host, Docker Hub's lives on auth.docker.io, hence the opt-in list.
 */
function checkRealm(realm, registry, policy) {
    if (!realm)
        throw authError(registry, 'asked for a Bearer token but named no realm');
    let url;
    try {
        url = new URL(realm);
    }
    catch {
        throw authError(registry, 'sent a token realm that is not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        throw authError(registry, `sent a token realm with the unsupported scheme ${url.protocol}`);
    }
    if (url.host === registry.host)
        return url;
    const listed = policy.allowedRealmHosts.some((h) => {
        const allowed = h.trim().toLowerCase();
        return allowed === url.host || allowed === url.hostname;
    });
    if (listed && url.protocol === 'https:')
        return url;
    const why = listed
        ? 'it is listed in allowed-realm-hosts but is not https'
        : 'add that host to allowed-realm-hosts if you trust it';
    throw authError(registry, `sent a token realm on another host (${url.host}); refused: ${why}`);
}
/**
 * Gets a token from the realm: `GET realm?service=…&scope=…`, anonymous or with the configured
 * basic credentials (bound to the realm's origin), answer `token` or `access_token`. The scopes
 * are the challenge's and ours, one `scope` parameter each (a push that mounts a blob from another
 * repository needs pull on that one too). The token spec says a missing `expires_in` means 60 seconds.
 */
async function fetchToken(http, challenge, registry, scopes, policy, now, signal) {
    const realm = checkRealm(challenge.params.realm, registry, policy);
    if (challenge.params.service)
        realm.searchParams.set('service', challenge.params.service);
    const asked = challenge.params.scope ? [challenge.params.scope] : [];
    for (const scope of new Set([...asked, ...scopes]))
        realm.searchParams.append('scope', scope);
    const credentials = policy.basicAuth && {
        origin: realm.origin,
        headers: { authorization: basicHeader(policy.basicAuth) },
    };
    const started = now();
    const response = await http.request(realm.toString(), {
        headers: { accept: 'application/json' },
        ...(credentials ? { credentials } : {}),
        ...(signal ? { signal } : {}),
        // A token endpoint has no reason to redirect; refusing keeps credentials on its origin.
        maxRedirects: 0,
    });
    if (response.status === 401 || response.status === 403) {
        await response.body.dump().catch(() => undefined);
        const who = policy.basicAuth ? 'the configured credentials' : 'an anonymous request';
        throw authError(registry, `its token service at ${realm.host} refused ${who} (HTTP ${response.status})`, 401);
    }
    if (response.status !== 200)
        throw await (0,client/* statusError */.$C)(response, `the token service at ${realm.host}`);
    let body;
    try {
        body = await (0,http_body/* readJson */.Vh)(response, http_body/* BODY_LIMITS */.Mu.token, 'the token answer');
    }
    catch (error) {
        // Junk is "no token" below; an answer past the limit is refused as such.
        if ((0,errors/* isModelPullError */.pq)(error, 'ERR_TOO_LARGE'))
            throw error;
        body = undefined;
    }
    const doc = (typeof body === 'object' && body !== null ? body : {});
    const value = typeof doc.token === 'string' && doc.token ? doc.token : doc.access_token;
    if (typeof value !== 'string' || value === '' || /[\r\n]/.test(value)) {
        throw authError(registry, `its token service at ${realm.host} answered without a token`);
    }
    const lifetime = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    return { value, expiresAt: started + lifetime * 1000 };
}
function basicHeader(auth) {
    return `Basic ${Buffer.from(`${auth.username}:${auth.password}`, 'utf8').toString('base64')}`;
}
function authError(registry, reason, status) {
    return new errors/* ModelPullError */.Vy('ERR_AUTH', `registry ${registry.host} ${reason}`, status === undefined ? {} : { status });
}

// EXTERNAL MODULE: ./src/registry/manifest.ts
var manifest = __webpack_require__(506);
;// CONCATENATED MODULE: ./src/registry/session.ts







/** Refresh a token this long before the expiry the realm announced. */
const EXPIRY_MARGIN_MS = 10_000;
/**
 * One repository on one registry (`scheme://host`, `namespace/name`): the distribution API calls,
 * with anonymous-first auth (docs/registries.md, "Authentication"). Tokens live only here, in a
 * `Credentials` bound to the registry's origin, so the HTTP client never sends them to a CDN a
 * blob redirects to. Knows nothing of what the artifacts hold.
 */
class RegistrySession {
    registry;
    repository;
    policy;
    auth = { kind: 'unknown' };
    /** Bumped on every new token, so blobs re-located at once share one refresh. */
    generation = 0;
    pending;
    scopes;
    /**
     * `actions` on this repository; `alsoPull`: other repositories of the same registry the token
     * must read too (the sources of cross-repository blob mounts).
     */
    constructor(registry, repository, policy, actions = ['pull'], alsoPull = []) {
        this.registry = registry;
        this.repository = repository;
        this.policy = policy;
        this.scopes = [
            `repository:${repository}:${actions.join(',')}`,
            ...alsoPull.map((r) => `repository:${r}:pull`),
        ];
    }
    /** `{origin}/v2/{repository}/{path}`: where every call of this repository goes. */
    url(path) {
        return `${this.registry.origin}/v2/${this.repository}/${path}`;
    }
    /**
     * GET a manifest (or, with an `accept` that lists index types, an index) by tag or `sha256:`
     * digest, at most 4 MiB, with retries; when `expectHex` is given the bytes must hash to it.
     */
    async getManifest(call, reference, options) {
        const { name } = options;
        const url = this.url(`manifests/${reference}`);
        const bytes = await (0,retry/* withRetries */.LH)(async () => {
            const response = await this.send(call, url, {
                headers: { accept: options.accept ?? manifest/* MANIFEST_ACCEPT */.dY },
            });
            if (response.status === 404) {
                await response.body.dump().catch(() => undefined);
                throw new errors/* ModelPullError */.Vy('ERR_NOT_FOUND', `${name} was not found on ${this.registry.host} (HTTP 404)`, {
                    status: 404,
                });
            }
            if (response.status !== 200)
                throw await (0,client/* statusError */.$C)(response, `${this.registry.host} for ${name}`);
            return (0,http_body/* readBody */.x8)(response, manifest/* MAX_MANIFEST_BYTES */.ZJ, `the manifest of ${name}`);
        }, call.retry, {
            clock: call.clock,
            ...(call.signal ? { signal: call.signal } : {}),
        });
        const hex = (0,digest/* sha256Hex */.fg)(bytes);
        if (options.expectHex !== undefined && hex !== options.expectHex) {
            throw new errors/* ModelPullError */.Vy('ERR_DIGEST_MISMATCH', `the manifest served for ${name} has digest sha256:${hex}, not the requested sha256:${options.expectHex}`);
        }
        call.log.debug(`manifest of ${name}: sha256:${hex} (${bytes.length} bytes)`);
        return bytes;
    }
    /**
     * Where a blob is fetched: the registry URL with the current token (the client follows a
     * 307/302 to the CDN without it; a plain registry answers 200 itself). `previous` is the token
     * generation a blob saw when it last asked: asking again means its URL failed, so a token that
     * has not changed since is refreshed once for everyone.
     */
    async blobLocation(call, hex, previous) {
        const url = this.url(`blobs/sha256:${hex}`);
        if (this.auth.kind === 'unknown')
            await this.probe(call, url, hex);
        if (this.auth.kind === 'bearer' && previous === this.generation) {
            await this.refresh(call, this.auth.challenge);
        }
        const credentials = await this.credentials(call);
        return { location: { url, ...(credentials ? { credentials } : {}) }, generation: this.generation };
    }
    /**
     * Any other call on this repository (`HEAD blobs/…`, an upload), with the session's
     * credentials: anonymous first, a 401 answered once. `path` is relative to the repository
     * (`blobs/uploads/`), or an absolute URL the registry gave (an upload's Location). The caller
     * reads or dumps the body.
     */
    request(call, path, options = {}) {
        return this.send(call, /^https?:\/\//.test(path) ? path : this.url(path), options);
    }
    /** Learns the auth state with a HEAD that stops at the first answer (no CDN round trip). */
    async probe(call, url, hex) {
        const response = await this.send(call, url, { method: 'HEAD', maxRedirects: 0 });
        await response.body.dump().catch(() => undefined);
        if (response.status === 404) {
            throw new errors/* ModelPullError */.Vy('ERR_NOT_FOUND', `blob sha256:${hex} of ${this.repository} is missing on ${this.registry.host}`, {
                status: 404,
            });
        }
    }
    /** A request with the current credentials; on 401, answer the challenge and retry once. */
    async send(call, url, options) {
        const { body, ...rest } = options;
        const attempt = async () => {
            const credentials = await this.credentials(call);
            return call.http.request(url, {
                ...rest,
                // A fresh body for each attempt: a stream sent before the 401 is spent.
                ...(body ? { body: body() } : {}),
                ...(credentials ? { credentials } : {}),
                ...(call.signal ? { signal: call.signal } : {}),
            });
        };
        let response = await attempt();
        if (response.status !== 401) {
            if (this.auth.kind === 'unknown')
                this.auth = { kind: 'anonymous' };
            return response;
        }
        const challenges = parseChallenges(response.headers['www-authenticate']);
        await response.body.dump().catch(() => undefined);
        await this.answer(call, challenges);
        response = await attempt();
        if (response.status === 401) {
            await response.body.dump().catch(() => undefined);
            throw authError(this.registry, `refused access to ${this.repository} after authenticating (HTTP 401)`, 401);
        }
        return response;
    }
    async answer(call, challenges) {
        const bearer = challenges.find((c) => c.scheme === 'bearer');
        if (bearer)
            return this.refresh(call, bearer);
        if (challenges.some((c) => c.scheme === 'basic') && this.policy.basicAuth) {
            // A Basic challenge names no separate realm: the registry itself is where the password goes.
            this.auth = { kind: 'basic' };
            return;
        }
        const offered = challenges.map((c) => c.scheme).join(', ') || 'no challenge';
        throw authError(this.registry, `requires authentication for ${this.repository} (offered: ${offered})`, 401);
    }
    /** One token request at a time; callers that arrive meanwhile share its result. */
    refresh(call, challenge) {
        this.pending ??= (async () => {
            try {
                const token = await fetchToken(call.http, challenge, this.registry, this.scopes, this.policy, () => call.clock.now(), call.signal);
                this.auth = { kind: 'bearer', challenge, token: token.value, expiresAt: token.expiresAt };
                this.generation++;
            }
            finally {
                this.pending = undefined;
            }
        })();
        return this.pending;
    }
    async credentials(call) {
        if (this.pending)
            await this.pending;
        if (this.auth.kind === 'basic' && this.policy.basicAuth) {
            return { origin: this.registry.origin, headers: { authorization: basicHeader(this.policy.basicAuth) } };
        }
        if (this.auth.kind !== 'bearer')
            return undefined;
        if (call.clock.now() >= this.auth.expiresAt - EXPIRY_MARGIN_MS)
            await this.refresh(call, this.auth.challenge);
        if (this.auth.kind !== 'bearer')
            return undefined;
        return { origin: this.registry.origin, headers: { authorization: `Bearer ${this.auth.token}` } };
    }
}
/**
 * The engine's view of one blob of a repository: fetched at the registry's blob URL with the
 * session's credentials (a redirect to a CDN goes there without them). A second locate() means
 * the URL stopped working (an expired CDN signature, a revoked token), so it passes the token
 * generation this blob last saw at that session, and a token that has not changed since is
 * renewed once for all. The session is settled on the first locate(), so a blob already in
 * place costs no request. A failure at a mirror's session sends the blob to the origin's
 * (BlobSpec.fallback).
 */
function registryBlob(route, call, blob, place) {
    let asked;
    let seen;
    const leave = route.leave;
    return {
        digest: { algorithm: 'sha256', hex: blob.hex },
        size: blob.size,
        ...place,
        async locate(signal) {
            const attempt = signal ? { ...call, signal } : call;
            asked = undefined;
            const session = await route.session(call);
            asked = session;
            const previous = seen?.session === session ? seen.generation : undefined;
            const { location, generation } = await session.blobLocation(attempt, blob.hex, previous);
            seen = { session, generation };
            return location;
        },
        ...(leave
            ? { fallback: (error) => asked !== undefined && leave(call, asked, blob.hex, error) }
            : {}),
    };
}


/***/ }),

/***/ 2011:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   CE: () => (/* binding */ formatRate),
/* harmony export */   KN: () => (/* binding */ percent),
/* harmony export */   a3: () => (/* binding */ formatDuration),
/* harmony export */   gc: () => (/* binding */ formatEta),
/* harmony export */   z3: () => (/* binding */ formatBytes)
/* harmony export */ });
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
function formatBytes(bytes) {
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < UNITS.length - 1) {
        value /= 1024;
        unit++;
    }
    return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}
function formatRate(bytesPerSecond) {
    return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}
function formatDuration(ms) {
    if (ms < 1000)
        return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60)
        return `${s.toFixed(1)} s`;
    return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
function percent(done, total) {
    return total ? `${Math.floor((Math.min(done, total) / total) * 100)}%` : '?%';
}
/** Time left, rounded up so that work still to do never reads as `0s`. */
function formatEta(seconds) {
    const s = Math.max(1, Math.ceil(seconds));
    if (s < 60)
        return `${s}s`;
    if (s < 3600)
        return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}


/***/ }),

/***/ 7400:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   Pu: () => (/* binding */ failureLine),
/* harmony export */   pN: () => (/* binding */ pushFailureLine),
/* harmony export */   qi: () => (/* binding */ modelLog)
/* harmony export */ });
/* unused harmony export doneLine */
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(3916);
/* harmony import */ var _format_js__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(2011);


/**
 * Each model's phases as log lines, for a CI log or a terminal: `ollama:x: resolving manifest`,
 * `…: listing files (3)`, `…: downloading 2 files, 1.2 GiB`, `…: writing manifest`, then one
 * line when it is done, or one error line as soon as it fails.
 */
function modelLog(log, options = {}) {
    return (event) => {
        if (event.phase === 'failed')
            log.error(failureLine(event.line, event.error ?? 'failed'));
        else if (event.phase === 'done' && event.report)
            log.info(doneLine(event.report, options.paths ?? true));
        else
            log.info(`${event.line}: ${event.text}`);
    };
}
/**
 * `<line>: <why>`, naming the line once: an engine message that starts with the line (or its
 * reference, as blob labels do: `hf:org/x model.safetensors: …`) is not prefixed again.
 */
function failureLine(line, error) {
    return `${line}: ${reasonFor(line, error)}`;
}
/** `hf:o/r: not pushed: why`: a line's push that failed or was skipped (mirror, mirror-to). */
function pushFailureLine(line, error) {
    return `${line}: not pushed: ${reasonFor(line, error)}`;
}
/** The error's message without the line (or its reference) it may start with. */
function reasonFor(line, error) {
    const why = (0,_errors_js__WEBPACK_IMPORTED_MODULE_0__/* .describeError */ .Uc)(error);
    const reference = line.split(/\s+/)[0];
    for (const prefix of [`${line}: `, `${reference}: `, `${reference} `]) {
        if (why.startsWith(prefix))
            return why.slice(prefix.length);
    }
    return why;
}
/** `ollama:x: done, 1.2 GiB at /path (downloaded 1.2 GiB in 4.1 s)`; `paths`: false leaves out where. */
function doneLine(report, paths = true) {
    const o = report.output;
    const how = [];
    if (report.downloadedBytes > 0)
        how.push(`downloaded ${(0,_format_js__WEBPACK_IMPORTED_MODULE_1__/* .formatBytes */ .z3)(report.downloadedBytes)} in ${(0,_format_js__WEBPACK_IMPORTED_MODULE_1__/* .formatDuration */ .a3)(report.durationMs)}`);
    if (report.cachedBytes > 0)
        how.push(`restored ${(0,_format_js__WEBPACK_IMPORTED_MODULE_1__/* .formatBytes */ .z3)(report.cachedBytes)} from the Actions cache`);
    if (how.length === 0)
        how.push('already on disk, verified');
    const where = paths ? ` at ${o.path}` : '';
    return `${report.line}: done, ${(0,_format_js__WEBPACK_IMPORTED_MODULE_1__/* .formatBytes */ .z3)(o.size)}${where} (${how.join(', ')})`;
}


/***/ }),

/***/ 5655:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   g$: () => (/* binding */ printable)
/* harmony export */ });
/* unused harmony exports codeSpan, cellCodeSpan */
/**
 * Text from outside (a server's error body, a file name from a listing, a tag) reaches terminals,
 * CI logs and the job summary. There it must stay text: an escape sequence would drive the
 * terminal (rewrite lines, set its title, hide what follows), a line break in a CI log would
 * start a workflow command (`::add-mask::`, `::stop-commands::`), and Markdown or HTML in the job
 * summary would render as links, images or markup (issue 10, item 14).
 */
/**
 * C0 and C1 controls, DEL, and the invisible format characters that reorder or hide text
 * (bidi embeddings, overrides and isolates, zero-width joiners, the BOM).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
/** One printable line: whitespace controls become a space, every other one a visible `\xHH`/`\uHHHH`. */
function printable(text) {
    return text.replace(UNPRINTABLE, (c) => {
        if (c === '\n' || c === '\r' || c === '\t' || c === '\u2028' || c === '\u2029')
            return ' ';
        const code = c.charCodeAt(0);
        return code <= 0xff
            ? `\\x${code.toString(16).padStart(2, '0')}`
            : `\\u${code.toString(16).padStart(4, '0')}`;
    });
}
/**
 * Text as a Markdown code span: printable, with a backtick (which could end the span) made a
 * quote. Inside a code span nothing else is markup: no HTML, no links, no emphasis.
 */
function codeSpan(text) {
    return `\`${printable(text).replace(/`/g, "'")}\``;
}
/**
 * A code span inside a table cell, where a `|` would end the cell even within the span; GitHub
 * reads `\|` there as a plain `|`. Elsewhere (a list item) the backslash would show, so only
 * cells escape it.
 */
function cellCodeSpan(text) {
    return codeSpan(text).replace(/\|/g, '\\|');
}


/***/ }),

/***/ 1259:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   Lg: () => (/* binding */ lockCommand),
/* harmony export */   hA: () => (/* binding */ resolveIdentities),
/* harmony export */   l: () => (/* binding */ lockLines)
/* harmony export */ });
/* unused harmony exports identifyLines, shellWord */
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(3916);
/* harmony import */ var _lockfile_js__WEBPACK_IMPORTED_MODULE_1__ = __webpack_require__(9746);
/* harmony import */ var _sources_descriptor_js__WEBPACK_IMPORTED_MODULE_2__ = __webpack_require__(6541);



/**
 * The identity of every line, settled one by one (a line that fails is that model's failure).
 * Without a lock file, each line's source looks it up. With one in `frozen` mode, every line
 * must be in it, or the run stops here, before any request, saying how to create or update it;
 * then nothing is looked up at all. In `update` mode the lines it lacks are looked up and
 * written into it (created when absent), provided every one of them resolved.
 */
async function resolveIdentities(refs, sources, ctx, lockfile) {
    if (!lockfile) {
        return { identities: await identifyLines(refs, sources, ctx), fromLock: refs.map(() => false) };
    }
    const entries = lockfile.entries ?? new Map();
    const missing = refs.filter((ref) => !entries.has(ref.key));
    if (lockfile.mode === 'frozen' && (lockfile.entries === undefined || missing.length > 0)) {
        throw notCovered(lockfile, lockfile.entries === undefined ? refs : missing, refs.length);
    }
    const lookedUp = new Map();
    const results = await identifyLines(missing, sources, ctx);
    for (const [i, ref] of missing.entries())
        lookedUp.set(ref, results[i]);
    const identities = refs.map((ref) => lookedUp.get(ref) ?? { status: 'fulfilled', value: entries.get(ref.key) });
    const fromLock = refs.map((ref) => !lookedUp.has(ref));
    if (missing.length === 0 && lockfile.entries !== undefined)
        return { identities, fromLock, entries };
    const { written, entries: after } = await writeLines(lockfile.path, missing, results, lockfile.entries);
    if (!written)
        return { identities, fromLock, entries };
    const added = new Set(missing.map((ref) => ref.key)).size;
    return { identities, fromLock, entries: after, wrote: { created: lockfile.entries === undefined, added } };
}
/** Asks each line's source, all at once; one result per line, in line order. */
function identifyLines(refs, sources, ctx) {
    return Promise.allSettled(refs.map(async (ref) => {
        const identity = await (0,_sources_descriptor_js__WEBPACK_IMPORTED_MODULE_2__/* .sourceOf */ .vz)(sources, ref).identify(ref.ref, ctx);
        // The kind and line are the lock entry's key and check: a source must answer for its own.
        if (identity.source !== ref.kind || identity.ref !== ref.line)
            throw new Error(`the ${ref.kind} source answered "${ref.line}" with a ${identity.source} identity for "${identity.ref}"`);
        return identity;
    }));
}
/**
 * Looks every line up and writes them all into the lock file, keeping `previous`'s other lines;
 * writes nothing when any line failed: a lock that pins only some of the lines asked for would
 * surprise later.
 */
async function lockLines(path, refs, sources, ctx, previous) {
    const results = await identifyLines(refs, sources, ctx);
    const { written } = await writeLines(path, refs, results, previous);
    return { results, written };
}
async function writeLines(path, refs, results, previous) {
    if (results.some((r) => r.status === 'rejected'))
        return { written: false };
    const entries = new Map(previous ?? []);
    for (const [i, ref] of refs.entries())
        entries.set(ref.key, results[i].value);
    await (0,_lockfile_js__WEBPACK_IMPORTED_MODULE_1__/* .writeLock */ .be)(path, entries);
    return { written: true, entries };
}
/**
 * The frozen lock's refusal: which lines it lacks, and the command that adds exactly those
 * (the lock command keeps the file's other lines), ready to paste.
 */
function notCovered(lockfile, lines, total) {
    const command = lockCommand(lockfile.shown, lines.map((r) => r.line));
    const update = lockfile.setting('lock-mode', 'update');
    if (lockfile.entries === undefined) {
        return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_LOCKFILE', `lock file ${lockfile.shown} does not exist (lock-mode is frozen, so nothing was pulled)`, { fix: `create it with \`${command}\` and commit it, or use ${update} to have this run write it` });
    }
    const named = lines.map((r) => `"${r.line}"`).join(', ');
    return new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_LOCKFILE', `lock file ${lockfile.shown} does not cover ${lines.length} of ${total} lines: ${named} (lock-mode is frozen, so nothing was pulled)`, { fix: `add them with \`${command}\` and commit it, or use ${update} to have this run add them` });
}
/** `model-pull lock --lockfile FILE LINE…`, each word quoted for a POSIX shell. */
function lockCommand(file, lines) {
    return ['model-pull', 'lock', '--lockfile', file, ...new Set(lines)].map(shellWord).join(' ');
}
/** A word as a POSIX shell reads it back: bare when safe, else single-quoted. */
function shellWord(word) {
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}


/***/ }),

/***/ 3756:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  E6: () => (/* binding */ buildSettings)
});

// UNUSED EXPORTS: MAX_CA_BYTES, cacheService, parseBoolean, parseInteger

// EXTERNAL MODULE: external "node:os"
var external_node_os_ = __webpack_require__(8161);
// EXTERNAL MODULE: external "node:path"
var external_node_path_ = __webpack_require__(6760);
// EXTERNAL MODULE: ./src/cache/key.ts
var key = __webpack_require__(5877);
// EXTERNAL MODULE: ./src/constants.ts
var constants = __webpack_require__(7242);
// EXTERNAL MODULE: ./src/digest.ts
var digest = __webpack_require__(2187);
// EXTERNAL MODULE: ./src/download/safe-fs.ts
var safe_fs = __webpack_require__(5039);
// EXTERNAL MODULE: ./src/errors.ts
var errors = __webpack_require__(3916);
// EXTERNAL MODULE: ./src/http/client.ts + 1 modules
var client = __webpack_require__(4530);
// EXTERNAL MODULE: ./src/http/retry.ts
var retry = __webpack_require__(8902);
// EXTERNAL MODULE: ./src/refs/line.ts
var line = __webpack_require__(9534);
// EXTERNAL MODULE: ./src/registry/prefix.ts
var registry_prefix = __webpack_require__(8911);
;// CONCATENATED MODULE: ./src/settings/mirrors.ts



function mirrorSettings(value, nameOf) {
    const prefix = (input) => {
        const text = value(input);
        return text === undefined ? undefined : (0,registry_prefix/* parseRepositoryPrefix */.u)(text, nameOf(input));
    };
    return {
        mirrorTo: prefix(constants/* Inputs */.G0.MirrorTo),
        registryMirrors: parseRegistryMirrors(value(constants/* Inputs */.G0.RegistryMirror) ?? '', nameOf(constants/* Inputs */.G0.RegistryMirror)),
        hfOciMirror: prefix(constants/* Inputs */.G0.HfOciMirror),
    };
}
/**
 * `HOST=URL` entries, one a line (or separated by commas or spaces, as a CLI flag writes them);
 * `#` starts a comment line. A host named twice is refused: which mirror would win?
 */
function parseRegistryMirrors(text, what) {
    const mirrors = [];
    const entries = text
        .split(/\r?\n/)
        .filter((line) => !line.trim().startsWith('#'))
        .flatMap((line) => line.split(/[\s,]+/))
        .filter(Boolean);
    for (const entry of entries) {
        const eq = entry.indexOf('=');
        const host = entry.slice(0, eq).trim().toLowerCase();
        if (eq <= 0 || !isHost(host))
            throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${what}: "${entry}" is not HOST=URL (the registry host as lines name it, then its mirror)`);
        if (mirrors.some((m) => m.host === host))
            throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${what} names ${host} twice`);
        const mirror = (0,registry_prefix/* parseRepositoryPrefix */.u)(entry.slice(eq + 1), `${what} for ${host}:`);
        // Its repositories would be the origin's own: nothing to fall back to, the same bytes twice.
        if (mirror.host === host && mirror.path === '')
            throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${what} for ${host}: "${mirror.text}" is ${host} itself (a mirror is another registry, or a path on this one)`);
        mirrors.push({ host, mirror });
    }
    return mirrors;
}
function isHost(text) {
    try {
        return text !== '' && !/[/@?#]/.test(text) && new URL(`https://${text}/`).host === text;
    }
    catch {
        return false;
    }
}

;// CONCATENATED MODULE: ./src/settings/settings.ts











function buildSettings(raw, ctx) {
    const env = ctx.env;
    const home = ctx.home ?? (0,external_node_os_.homedir)();
    const cwd = ctx.cwd ?? process.cwd();
    const value = (name) => {
        const v = raw[name]?.trim();
        return v ? v : undefined;
    };
    const path = (p) => (0,external_node_path_.resolve)(cwd, p.startsWith('~/') ? (0,external_node_path_.join)(home, p.slice(2)) : p);
    const flag = (name, fallback) => parseBoolean(value(name), fallback, ctx.nameOf(name));
    const int = (name, fallback, min, max) => parseInteger(value(name), fallback, min, max, ctx.nameOf(name));
    const lines = (0,line/* modelLines */.tG)(raw.models ?? '');
    if (ctx.requireModels !== false && lines.length === 0) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${ctx.nameOf(constants/* Inputs */.G0.Models)} names no model`);
    }
    const verify = value(constants/* Inputs */.G0.Verify) ?? 'full';
    if (verify !== 'full' && verify !== 'size') {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${ctx.nameOf(constants/* Inputs */.G0.Verify)} must be full or size, got "${verify}"`);
    }
    const { url: hfEndpoint, auth: hfEndpointAuth, secrets: endpointSecrets, } = hubEndpointSetting(value(constants/* Inputs */.G0.HfEndpoint) ?? nonEmpty(env.HF_ENDPOINT) ?? 'https://huggingface.co', ctx.nameOf(constants/* Inputs */.G0.HfEndpoint));
    const insecure = flag(constants/* Inputs */.G0.Insecure, false);
    if (!insecure)
        refusePlainHttp(lines, hfEndpoint, ctx.nameOf);
    const hfToken = value(constants/* Inputs */.G0.HfToken) ?? nonEmpty(env.HF_TOKEN) ?? nonEmpty(env.HUGGING_FACE_HUB_TOKEN);
    const username = value(constants/* Inputs */.G0.RegistryUsername);
    const password = value(constants/* Inputs */.G0.RegistryPassword);
    const registryHost = value(constants/* Inputs */.G0.RegistryHost);
    // A credential goes into a header: a line break inside it (a secret pasted with its newline)
    // would fail every request, so it fails here, before any, without quoting the secret.
    for (const [name, secret] of [
        [`${ctx.nameOf(constants/* Inputs */.G0.HfToken)} (or HF_TOKEN)`, hfToken],
        [ctx.nameOf(constants/* Inputs */.G0.RegistryUsername), username],
        [ctx.nameOf(constants/* Inputs */.G0.RegistryPassword), password],
    ]) {
        // biome-ignore lint/suspicious/noControlCharactersInRegex: exactly what is refused
        if (secret !== undefined && /[\u0000-\u001f\u007f]/.test(secret)) {
            throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${name} contains a line break or control character`);
        }
    }
    if (username !== undefined && registryHost === undefined) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${ctx.nameOf(constants/* Inputs */.G0.RegistryUsername)} needs ${ctx.nameOf(constants/* Inputs */.G0.RegistryHost)}: the registry (host[:port]) the credentials belong to`);
    }
    if ((username === undefined) !== (password === undefined)) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${ctx.nameOf(constants/* Inputs */.G0.RegistryUsername)} and ${ctx.nameOf(constants/* Inputs */.G0.RegistryPassword)} go together`);
    }
    const prefix = value(constants/* Inputs */.G0.CacheKeyPrefix) ?? 'model-pull';
    if (!(0,key/* isKeyPrefix */.C6)(prefix)) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${ctx.nameOf(constants/* Inputs */.G0.CacheKeyPrefix)} must be ${key/* KEY_PREFIX_RULE */.OS}`);
    }
    const cache = flag(constants/* Inputs */.G0.Cache, true);
    const failOnCacheMiss = flag(constants/* Inputs */.G0.FailOnCacheMiss, false);
    if (failOnCacheMiss && !cache) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${ctx.nameOf(constants/* Inputs */.G0.FailOnCacheMiss)} needs the cache: it cannot be true with ${ctx.nameOf(constants/* Inputs */.G0.Cache)} false`);
    }
    const lockMode = value(constants/* Inputs */.G0.LockMode) ?? 'frozen';
    if (lockMode !== 'frozen' && lockMode !== 'update') {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${ctx.nameOf(constants/* Inputs */.G0.LockMode)} must be frozen or update, got "${lockMode}"`);
    }
    const lockfile = value(constants/* Inputs */.G0.Lockfile);
    const concurrency = int(constants/* Inputs */.G0.Concurrency, 4, 1, 64);
    const connections = int(constants/* Inputs */.G0.Connections, 16, 1, 64);
    const caFile = value(constants/* Inputs */.G0.CaCert);
    const ollamaServe = flag(constants/* Inputs */.G0.OllamaServe, false);
    const ollamaVersion = value(constants/* Inputs */.G0.OllamaVersion);
    if (ollamaServe && !ollamaVersion) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${ctx.nameOf(constants/* Inputs */.G0.OllamaServe)} needs ${ctx.nameOf(constants/* Inputs */.G0.OllamaVersion)} (the version to install, or latest)`);
    }
    const ollamaSha256 = value(constants/* Inputs */.G0.OllamaSha256)
        ?.toLowerCase()
        .replace(/^sha256:/, '');
    if (ollamaSha256 !== undefined && !(0,digest/* isSha256Hex */.P4)(ollamaSha256)) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${ctx.nameOf(constants/* Inputs */.G0.OllamaSha256)} must be a sha256 hex digest (64 hex characters), not "${ollamaSha256.slice(0, 80)}"`);
    }
    const sourceOptions = {};
    for (const option of ctx.sourceOptions ?? []) {
        const given = nonEmpty(raw[option.name]) ??
            (option.env ?? []).map((name) => nonEmpty(env[name])).find((v) => v !== undefined) ??
            option.default;
        sourceOptions[option.name] = given !== undefined && option.type === 'path' ? path(given) : given;
    }
    const secrets = [
        hfToken,
        password,
        ...endpointSecrets,
        ...(ctx.sourceOptions ?? []).filter((o) => o.type === 'secret').map((o) => sourceOptions[o.name]),
    ].filter((s) => s !== undefined);
    return {
        lines,
        ollamaModels: path(value(constants/* Inputs */.G0.OllamaModels) ?? nonEmpty(env.OLLAMA_MODELS) ?? '~/.ollama/models'),
        hfCache: path(value(constants/* Inputs */.G0.HfCache) ?? defaultHfCache(env)),
        filesDir: path(value(constants/* Inputs */.G0.FilesDir) ?? '~/.cache/model-pull/files'),
        hfEndpoint,
        hfEndpointAuth,
        hfToken,
        cache,
        save: flag(constants/* Inputs */.G0.Save, true),
        failOnCacheMiss,
        cacheKeyPrefix: prefix,
        concurrency,
        connections,
        verify,
        lockfile: lockfile ? { path: path(lockfile), shown: lockfile, mode: lockMode } : undefined,
        exportEnv: flag(constants/* Inputs */.G0.ExportEnv, true),
        hfOffline: flag(constants/* Inputs */.G0.HfOffline, false),
        ollamaVersion,
        ollamaServe,
        ollamaDownloadUrl: (value(constants/* Inputs */.G0.OllamaDownloadUrl) ?? 'https://github.com/ollama/ollama/releases').replace(/\/+$/, ''),
        ollamaSha256,
        runner: {
            toolCache: nonEmpty(env.RUNNER_TOOL_CACHE),
            temp: nonEmpty(env.RUNNER_TEMP),
            ...cacheService(env),
        },
        registryAuth: username && password && registryHost ? { host: registryHost, username, password } : undefined,
        allowedRealmHosts: (value(constants/* Inputs */.G0.AllowedRealmHosts) ?? '').split(/[\s,]+/).filter(Boolean),
        sourceOptions,
        http: {
            // The engine's budget: `concurrency` files of `connections` ranges each (small files share it).
            connections: connections * concurrency,
            insecure,
            extraCa: caFile ? readCa(path(caFile), ctx.nameOf(constants/* Inputs */.G0.CaCert)) : undefined,
            proxy: proxyFrom(env),
            stallTimeoutMs: int(constants/* Inputs */.G0.StallTimeout, 30, 1, 3600) * 1000,
            userAgent: constants/* USER_AGENT */._O,
        },
        retry: { ...retry/* DEFAULT_RETRY_POLICY */.cO, retries: int(constants/* Inputs */.G0.Retries, retry/* DEFAULT_RETRY_POLICY */.cO.retries, 0, 50) },
        secrets,
        ...mirrorSettings(value, ctx.nameOf),
        uploadsDir: path('~/.cache/model-pull/uploads'),
        nameOf: ctx.nameOf,
        settingText: ctx.settingText ?? ((input, v) => `${ctx.nameOf(input)} ${v}`),
    };
}
/**
 * hf-endpoint split into a printable URL and the `user:pass@` it may carry (issue 10: the password
 * reached the error annotation, the `models` output and the summary). Errors never echo userinfo.
 */
function hubEndpointSetting(given, name) {
    const bad = () => new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${name} is not a URL: "${given.replace(/\/\/[^/]*@/, '//***@')}"`);
    let url;
    try {
        url = new URL(given);
    }
    catch {
        throw bad();
    }
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || !/^https?:\/\/[^/]+/i.test(given))
        throw bad();
    if (!url.username && !url.password)
        return { url: url.toString().replace(/\/+$/, ''), auth: undefined, secrets: [] };
    let auth;
    try {
        auth = { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
    }
    catch {
        throw bad();
    }
    // Masked as decoded, as written (percent-encoded) and as sent (the Basic header's base64).
    const header = Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
    const secrets = auth.password ? [...new Set([auth.password, url.password, header])] : [];
    url.username = '';
    url.password = '';
    return { url: url.toString().replace(/\/+$/, ''), auth, secrets };
}
/**
 * Plain http to a host other than loopback needs `insecure` (docs/security.md, Network): said before any
 * request, naming the option, instead of as a download failure. A reference may carry its
 * source's prefix before the URL (`ollama:http://…`).
 */
function refusePlainHttp(lines, hfEndpoint, nameOf) {
    const plainHost = (text) => {
        const host = /^(?:[a-z][a-z0-9-]*:)?http:\/\/([^/\s?#]+)/i.exec(text)?.[1];
        if (host === undefined)
            return undefined;
        let hostname;
        try {
            hostname = new URL(`http://${host}`).hostname;
        }
        catch {
            return undefined; // the line's own parser says what is wrong with it
        }
        return (0,client/* isLoopbackHost */.cW)(hostname) ? undefined : hostname;
    };
    const fix = `needs ${nameOf(constants/* Inputs */.G0.Insecure)} (or use https)`;
    for (const line of lines) {
        const host = plainHost(line);
        if (host)
            throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `model line "${line}": plain http to ${host} ${fix}`);
    }
    const hub = plainHost(hfEndpoint);
    if (hub) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${nameOf(constants/* Inputs */.G0.HfEndpoint)} ${hfEndpoint}: plain http to ${hub} ${fix}`);
    }
}
/** huggingface_hub's order: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME, ~/.cache. */
function defaultHfCache(env) {
    return (nonEmpty(env.HF_HUB_CACHE) ??
        nonEmpty(env.HUGGINGFACE_HUB_CACHE) ??
        (nonEmpty(env.HF_HOME) ? (0,external_node_path_.join)(env.HF_HOME, 'hub') : undefined) ??
        (nonEmpty(env.XDG_CACHE_HOME) ? (0,external_node_path_.join)(env.XDG_CACHE_HOME, 'huggingface', 'hub') : undefined) ??
        '~/.cache/huggingface/hub');
}
function proxyFrom(env) {
    const httpsProxy = nonEmpty(env.HTTPS_PROXY) ?? nonEmpty(env.https_proxy);
    const httpProxy = nonEmpty(env.HTTP_PROXY) ?? nonEmpty(env.http_proxy);
    if (!httpsProxy && !httpProxy)
        return undefined;
    return { httpsProxy, httpProxy, noProxy: nonEmpty(env.NO_PROXY) ?? nonEmpty(env.no_proxy) };
}
/** A system bundle of every public CA is about 200 KiB; a private one is a few certificates. */
const MAX_CA_BYTES = 4 * 1024 * 1024;
function readCa(file, name) {
    const read = (0,safe_fs/* readBoundedSync */.xY)(file, MAX_CA_BYTES);
    if (read.kind !== 'read') {
        const reason = read.kind === 'missing' ? 'no such file' : read.reason;
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${name}: cannot read ${file}: ${reason}`);
    }
    const pem = read.bytes.toString('utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${name}: ${file} holds no PEM certificate`);
    }
    return pem;
}
function nonEmpty(v) {
    return v?.trim() ? v.trim() : undefined;
}
function parseBoolean(v, fallback, name) {
    if (v === undefined)
        return fallback;
    if (/^(true|yes|1|on)$/i.test(v))
        return true;
    if (/^(false|no|0|off)$/i.test(v))
        return false;
    throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${name} must be true or false, got "${v}"`);
}
function parseInteger(v, fallback, min, max, name) {
    if (v === undefined)
        return fallback;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `${name} must be a whole number from ${min} to ${max}, got "${v}"`);
    }
    return Number(v);
}
/**
 * The runner's cache service, read the way @actions/cache 6.3 reads it (internal/config.js): v2
 * when ACTIONS_CACHE_SERVICE_V2 is set on github.com or GHE.com (ACTIONS_RESULTS_URL), else the
 * legacy v1 service (ACTIONS_CACHE_URL), which GitHub Enterprise Server always uses. An unset or
 * unknown ACTIONS_CACHE_MODE permits reads, as there.
 */
function cacheService(env) {
    let ghes = true;
    try {
        const host = new URL(nonEmpty(env.GITHUB_SERVER_URL) ?? 'https://github.com').hostname.toUpperCase();
        ghes = !(host === 'GITHUB.COM' || host.endsWith('.GHE.COM') || host.endsWith('.LOCALHOST'));
    }
    catch {
        // an unparsable server URL is treated as GHES, which is what the library's URL() would throw on
    }
    const protocol = !ghes && nonEmpty(env.ACTIONS_CACHE_SERVICE_V2) ? 'v2' : 'v1';
    const url = protocol === 'v2'
        ? nonEmpty(env.ACTIONS_RESULTS_URL)
        : (nonEmpty(env.ACTIONS_CACHE_URL) ?? nonEmpty(env.ACTIONS_RESULTS_URL));
    if (!url)
        return {};
    const mode = (env.ACTIONS_CACHE_MODE ?? '').trim().toLowerCase();
    const readable = !['none', 'read', 'write', 'write-only'].includes(mode) || mode === 'read' || mode === 'write';
    return { cacheService: { protocol, url, token: nonEmpty(env.ACTIONS_RUNTIME_TOKEN), readable, mode } };
}


/***/ }),

/***/ 6541:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {

/* harmony export */ __webpack_require__.d(__webpack_exports__, {
/* harmony export */   EA: () => (/* binding */ checkSourceList),
/* harmony export */   LH: () => (/* binding */ createSources),
/* harmony export */   V2: () => (/* binding */ phaseWords),
/* harmony export */   _u: () => (/* binding */ claimingSource),
/* harmony export */   k0: () => (/* binding */ sourceOptions),
/* harmony export */   vz: () => (/* binding */ sourceOf)
/* harmony export */ });
/* harmony import */ var _errors_js__WEBPACK_IMPORTED_MODULE_0__ = __webpack_require__(3916);

/** The source that claims a reference (the first word of a line), if any. */
function claimingSource(sources, reference) {
    const lower = reference.toLowerCase();
    return sources.find((s) => s.prefixes.some((p) => lower.startsWith(p.toLowerCase())));
}
/**
 * Refuses a list that would make lines, lock entries or cache keys ambiguous: kinds must be
 * unique key-safe words, a line must belong to one source only, option names unique.
 */
function checkSourceList(sources, sharedInputs = []) {
    const problem = (why) => new _errors_js__WEBPACK_IMPORTED_MODULE_0__/* .ModelPullError */ .Vy('ERR_BAD_INPUT', `invalid list of sources: ${why}`);
    const kinds = new Set();
    const prefixes = [];
    const options = new Set(sharedInputs);
    for (const source of sources) {
        // Kinds are part of cache keys: short enough that any valid cache-key-prefix still fits.
        if (!/^[a-z][a-z0-9-]{0,31}$/.test(source.kind))
            throw problem(`kind "${source.kind}" is not [a-z][a-z0-9-]*, at most 32 characters`);
        if (kinds.has(source.kind))
            throw problem(`kind "${source.kind}" is listed twice`);
        kinds.add(source.kind);
        if (source.prefixes.length === 0)
            throw problem(`${source.kind} claims no line prefix`);
        for (const prefix of source.prefixes.map((p) => p.toLowerCase())) {
            const clash = prefixes.find((p) => p.startsWith(prefix) || prefix.startsWith(p));
            if (prefix === '' || clash !== undefined)
                throw problem(`${source.kind}'s prefix "${prefix}" overlaps "${clash ?? ''}"`);
            prefixes.push(prefix);
        }
        for (const option of source.options ?? []) {
            if (!/^[a-z][a-z0-9-]*$/.test(option.name) || options.has(option.name))
                throw problem(`${source.kind}'s option "${option.name}" is not a new [a-z][a-z0-9-]* name`);
            options.add(option.name);
        }
    }
}
/** The words a kind of source has for its steps (none: the generic ones). */
function phaseWords(sources, kind) {
    return sources.find((s) => s.kind === kind)?.phases ?? {};
}
/** The options every listed source adds, in list order. */
function sourceOptions(sources) {
    return sources.flatMap((s) => s.options ?? []);
}
/** One source instance per kind for a run. */
function createSources(sources, settings) {
    return new Map(sources.map((s) => [s.kind, s.create(settings)]));
}
/** The instance for a parsed line (parseLines only yields kinds of the run's list). */
function sourceOf(sources, ref) {
    const source = sources.get(ref.kind);
    if (!source)
        throw new Error(`no source of kind ${ref.kind} for "${ref.line}"`);
    return source;
}


/***/ }),

/***/ 578:
/***/ ((__unused_webpack_module, __webpack_exports__, __webpack_require__) => {


// EXPORTS
__webpack_require__.d(__webpack_exports__, {
  h: () => (/* binding */ DEFAULT_SOURCES)
});

// EXTERNAL MODULE: ./src/constants.ts
var constants = __webpack_require__(7242);
// EXTERNAL MODULE: ./src/registry/client.ts + 1 modules
var client = __webpack_require__(8178);
// EXTERNAL MODULE: ./src/digest.ts
var src_digest = __webpack_require__(2187);
// EXTERNAL MODULE: external "node:fs"
var external_node_fs_ = __webpack_require__(3024);
// EXTERNAL MODULE: external "node:fs/promises"
var promises_ = __webpack_require__(1455);
// EXTERNAL MODULE: external "node:path"
var external_node_path_ = __webpack_require__(6760);
// EXTERNAL MODULE: ./src/atomic-write.ts
var atomic_write = __webpack_require__(8364);
// EXTERNAL MODULE: ./src/errors.ts
var errors = __webpack_require__(3916);
// EXTERNAL MODULE: ./src/fs-dirs.ts
var fs_dirs = __webpack_require__(3341);
;// CONCATENATED MODULE: ./src/layouts/hf.ts






function repoFolderName(type, repo) {
    return [`${type}s`, ...repo.split('/')].join('--');
}
function hfRepoPaths(cacheRoot, type, repo) {
    const folder = (0,external_node_path_.join)(cacheRoot, repoFolderName(type, repo));
    const priv = (0,external_node_path_.join)(folder, '.model-pull');
    return {
        folder,
        blobs: (0,external_node_path_.join)(folder, 'blobs'),
        snapshots: (0,external_node_path_.join)(folder, 'snapshots'),
        refs: (0,external_node_path_.join)(folder, 'refs'),
        private: priv,
        ingest: (0,external_node_path_.join)(priv, 'ingest'),
    };
}
function blobPath(paths, etag) {
    return (0,external_node_path_.join)(paths.blobs, etag);
}
/** `path` uses `/` and has been checked by `repoPathProblem`. */
function snapshotFilePath(paths, commit, path) {
    return (0,external_node_path_.join)(paths.snapshots, commit, ...path.split('/'));
}
/**
 * Why a path from the Hub (or a lock file) may not be joined under `snapshots/<commit>/`: it must
 * be relative, use `/`, and have no empty, `.` or `..` segment, or it could land outside the folder.
 */
function repoPathProblem(path) {
    if (typeof path !== 'string' || path === '')
        return 'an empty path';
    if (path.length > 4096)
        return 'a path longer than 4096 characters';
    if (path.includes('\\'))
        return 'a path with a backslash';
    if ([...path].some((c) => c < ' ' || c === '\x7f'))
        return 'a path with a control character';
    if (path.startsWith('/'))
        return 'an absolute path';
    if (path.split('/').some((s) => s === '' || s === '.' || s === '..'))
        return 'a path with an empty, "." or ".." part';
    return undefined;
}
const DEFAULT_OPS = {
    symlink: (target, path) => (0,promises_.symlink)(target, path),
    link: (existing, path) => (0,promises_.link)(existing, path),
    copyFile: (source, dest) => (0,promises_.copyFile)(source, dest, external_node_fs_.constants.COPYFILE_FICLONE),
};
/**
 * Writes the snapshot entries for verified blobs, the commit's listing, then `refs/<revision>`,
 * then our record. The
 * order matters to offline readers: a ref that exists names a snapshot whose files are there.
 *
 * A snapshot folder that does not exist yet is built aside (in our private folder, at the same
 * depth so relative links read the same) and renamed into place whole: a commit that fails
 * half-way leaves no `snapshots/<commit>` behind (issue 10). An existing snapshot (another
 * `include=` of the same commit) only gains entries, each placed atomically.
 */
async function commitSnapshot(spec) {
    const ops = { ...DEFAULT_OPS, ...spec.ops };
    const { paths, commit } = spec;
    const conflict = pathConflict(spec.files.map((f) => f.path));
    if (conflict)
        throw conflictError(conflict, `the snapshot of ${commit}`);
    for (const file of spec.files)
        await checkBlob(blobPath(paths, file.etag), file);
    // @huggingface/hub's scanCacheDir fails on a repo without refs/ (a pinned pull writes no ref).
    await (0,fs_dirs/* ensureDirs */.J)(paths.refs);
    const snapshot = (0,external_node_path_.join)(paths.snapshots, commit);
    const built = !(await (0,promises_.lstat)(snapshot).catch(() => undefined)) && (await buildSnapshotAside(spec, ops));
    if (!built)
        await placeEntries(spec, snapshot, ops);
    if (spec.listing)
        await writeAtomic(spec.listing.path, spec.listing.content, { mode: 0o600 });
    if (spec.revision !== undefined && spec.revision !== commit) {
        await writeAtomic((0,external_node_path_.join)(paths.refs, ...spec.revision.split('/')), commit);
    }
    if (spec.record)
        await writeAtomic(spec.record.path, spec.record.content);
}
async function placeEntries(spec, folder, ops) {
    await (0,fs_dirs/* ensureDirs */.J)(folder);
    const mode = { symlinks: true };
    for (const file of spec.files) {
        await placeEntry(blobPath(spec.paths, file.etag), (0,external_node_path_.join)(folder, ...file.path.split('/')), ops, mode);
    }
}
/**
 * The whole snapshot in a private folder, then one rename; a failure removes the folder aside.
 * False when another process renamed its snapshot in first: that one then gains our entries.
 */
async function buildSnapshotAside(spec, ops) {
    // `.model-pull/<name>` sits as deep as `snapshots/<commit>`, so link texts are the final ones.
    const aside = (0,external_node_path_.join)(spec.paths.private, tempName(`snapshot-${spec.commit}`));
    try {
        await placeEntries(spec, aside, ops);
        await (0,fs_dirs/* ensureDirs */.J)(spec.paths.snapshots);
        await (0,promises_.rename)(aside, (0,external_node_path_.join)(spec.paths.snapshots, spec.commit));
        return true;
    }
    catch (error) {
        if (errorCode(error) !== 'ENOTEMPTY' && errorCode(error) !== 'EEXIST')
            throw error;
        return false;
    }
    finally {
        await (0,promises_.rm)(aside, { recursive: true, force: true });
    }
}
/**
 * A path that is also a folder of another path (`a` and `a/b.json`), which no snapshot (and no
 * git tree) can hold. A trie of path segments keeps this linear in the total path length.
 */
function pathConflict(paths) {
    const root = { children: new Map() };
    for (const path of paths) {
        let node = root;
        for (const segment of path.split('/')) {
            if (node.file !== undefined)
                return [node.file, path];
            let child = node.children.get(segment);
            if (!child) {
                child = { children: new Map() };
                node.children.set(segment, child);
            }
            node = child;
        }
        if (node.children.size > 0)
            return [path, firstFileUnder(node)];
        node.file = path;
    }
    return undefined;
}
function firstFileUnder(node) {
    let current = node;
    while (current.file === undefined)
        current = current.children.values().next().value;
    return current.file;
}
function conflictError([file, under], where) {
    return new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `${where} names both a file "${file}" and a file under it ("${under}"); no snapshot can hold both`);
}
async function checkBlob(blob, file) {
    const size = await (0,promises_.stat)(blob).then((s) => s.size, () => undefined);
    if (size !== file.size) {
        const found = size === undefined ? 'it is missing' : `it has ${size} bytes`;
        throw new errors/* ModelPullError */.Vy('ERR_SIZE_MISMATCH', `cannot link ${file.path}: blob ${file.etag} should have ${file.size} bytes but ${found}`);
    }
}
/**
 * One snapshot entry: a relative symlink when the filesystem has them (what huggingface_hub
 * writes), else a hard link, else a copy (real files are what huggingface_hub falls back to as
 * well). Once a symlink fails with EPERM/ENOTSUP, the rest of the snapshot skips straight to links.
 */
async function placeEntry(blob, entry, ops, mode) {
    const target = (0,external_node_path_.relative)((0,external_node_path_.dirname)(entry), blob).split(external_node_path_.sep).join('/');
    if (await entryIsCurrent(entry, blob, target))
        return;
    await (0,fs_dirs/* ensureDirs */.J)((0,external_node_path_.dirname)(entry));
    const temp = tempName(entry);
    await (0,promises_.rm)(temp, { force: true });
    if (mode.symlinks) {
        try {
            await ops.symlink(target, temp);
            return await replace(temp, entry);
        }
        catch (error) {
            if (!isUnsupported(error))
                throw error;
            mode.symlinks = false;
        }
    }
    try {
        await ops.link(blob, temp);
    }
    catch (error) {
        if (!isUnsupported(error) && errorCode(error) !== 'EXDEV' && errorCode(error) !== 'EMLINK')
            throw error;
        await ops.copyFile(blob, temp);
    }
    await replace(temp, entry);
}
async function entryIsCurrent(entry, blob, target) {
    const info = await (0,promises_.lstat)(entry).catch(() => undefined);
    if (!info)
        return false;
    if (info.isSymbolicLink())
        return (await (0,promises_.readlink)(entry)) === target;
    if (!info.isFile())
        return false;
    const blobInfo = await (0,promises_.stat)(blob);
    return info.ino === blobInfo.ino && info.dev === blobInfo.dev;
}
/** rename() replaces a stale file or link atomically, but not a folder: one in the way goes first. */
async function removeFolderInTheWay(path) {
    const info = await (0,promises_.lstat)(path).catch(() => undefined);
    if (info?.isDirectory())
        await (0,promises_.rm)(path, { recursive: true, force: true });
}
async function replace(temp, entry) {
    await removeFolderInTheWay(entry);
    try {
        await (0,promises_.rename)(temp, entry);
    }
    catch (error) {
        // A temp name left beside the entry would look like one more file or ref to HF readers.
        await (0,promises_.rm)(temp, { force: true });
        throw error;
    }
}
/** Temporary name, then rename: a reader never sees a half-written ref or record. */
async function writeAtomic(path, content, options = {}) {
    await removeFolderInTheWay(path);
    await (0,atomic_write/* writeFileAtomic */.Zf)(path, content, options);
}
let tempCounter = 0;
/** Unique per call: two lines of one run may commit the same snapshot entry at the same time. */
function tempName(path) {
    tempCounter += 1;
    return `${path}.model-pull-${process.pid}-${tempCounter}.tmp`;
}
function errorCode(error) {
    return error?.code ?? '';
}
function isUnsupported(error) {
    const code = errorCode(error);
    return code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS';
}

// EXTERNAL MODULE: ./src/registry/manifest.ts
var registry_manifest = __webpack_require__(506);
;// CONCATENATED MODULE: ./src/sources/oci/formats.ts
/**
 * What the two model artifact formats say about their layers (docs/oci-artifacts.md, "Formats"):
 * which layer is a file at a path, which is a tar archive of files, which we do not know. The
 * rules are data, not code paths, so a new media type is one entry here.
 */
const MODELPACK_ARTIFACT = 'application/vnd.cncf.model.manifest.v1+json';
const MODELPACK_CONFIG = 'application/vnd.cncf.model.config.v1+json';
const DOCKER_CONFIG_PREFIX = 'application/vnd.docker.ai.model.config.';
/** Both formats name a layer's file here, relative to the model's folder. */
const FILEPATH_ANNOTATION = 'org.cncf.model.filepath';
/** What ORAS and other generic artifact tools name a layer's file with. */
const TITLE_ANNOTATION = 'org.opencontainers.image.title';
const MODELPACK_LAYER = /^application\/vnd\.cncf\.model\.(weight|weight\.config|doc|code|dataset)\.v1\.(raw|tar|tar\+gzip|tar\+zstd)$/;
/** Docker Model Runner marks some ModelPack weights with their file format (`…weight.v1.gguf`). */
const MODELPACK_TYPED_WEIGHT = /^application\/vnd\.cncf\.model\.weight\.v1\.([a-z0-9]+)$/;
/**
 * Docker Model Runner's layer types: single files, with the name its own unpacker gives them
 * when a layer carries no path (v0.1 artifacts), and its tar archives of folders.
 */
const DOCKER_FILES = {
    'application/vnd.docker.ai.gguf.v3': { name: 'model.gguf', gguf: true },
    'application/vnd.docker.ai.safetensors': { name: 'model.safetensors' },
    'application/vnd.docker.ai.dduf': { name: 'model.dduf' },
    'application/vnd.docker.ai.mmproj': { name: 'model.mmproj' },
    'application/vnd.docker.ai.chat.template.jinja': { name: 'template.jinja' },
    'application/vnd.docker.ai.license': { name: 'LICENSE' },
};
const DOCKER_ARCHIVES = new Set([
    'application/vnd.docker.ai.dir.tar',
    'application/vnd.docker.ai.vllm.config.tar',
]);
/** Generic OCI layer archives, which early model artifacts (CNAI) used for their files. */
const OCI_ARCHIVES = {
    'application/vnd.oci.image.layer.v1.tar': 'none',
    'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
    'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
};
function artifactFormat(manifest) {
    if (manifest.artifactType === MODELPACK_ARTIFACT || manifest.config.mediaType === MODELPACK_CONFIG)
        return 'modelpack';
    if (manifest.config.mediaType.startsWith(DOCKER_CONFIG_PREFIX))
        return 'docker';
    return 'unknown';
}
/** Configs of container images (OCI and Docker): their layers are root filesystems, not model files. */
const IMAGE_CONFIGS = new Set([
    'application/vnd.oci.image.config.v1+json',
    'application/vnd.docker.container.image.v1+json',
]);
/**
 * Why a manifest is no model artifact at all, before anything is fetched: an Ollama model (its
 * own source reads it) or a container image. Other unknown artifacts are pulled as they are.
 */
function notAModel(manifest) {
    if (artifactFormat(manifest) !== 'unknown')
        return undefined;
    if (manifest.layers.some((l) => l.mediaType.startsWith('application/vnd.ollama.image.')))
        return 'it is an Ollama model: pull it with an ollama: line';
    if (IMAGE_CONFIGS.has(manifest.config.mediaType))
        return `it is a container image (config ${manifest.config.mediaType}), not a model artifact`;
    return undefined;
}
/** Whether an index entry announces a model manifest (its `artifactType`), without fetching it. */
function announcesModel(entry) {
    return (entry.artifactType === MODELPACK_ARTIFACT || entry.artifactType?.startsWith(DOCKER_CONFIG_PREFIX) === true);
}
/**
 * Where every layer goes. Paths are as the artifact states them; the folder module checks them
 * (relative, no `..`, no clash) before anything is written.
 */
function layoutOf(manifest) {
    const format = artifactFormat(manifest);
    // Unnamed Docker layers are named by type, numbered among those of their type.
    const docker = manifest.layers.filter((l) => DOCKER_FILES[l.mediaType] !== undefined && !annotatedPath(l));
    const placements = manifest.layers.map((layer) => placementOf(layer, docker));
    return { format, placements };
}
function placementOf(layer, dockerFiles) {
    const type = layer.mediaType;
    const annotated = annotatedPath(layer);
    const modelpack = MODELPACK_LAYER.exec(type);
    if (modelpack) {
        const packing = modelpack[2];
        if (packing !== 'raw')
            return { kind: 'archive', layer, compression: compressionOf(packing) };
        if (!annotated)
            return { kind: 'blob', layer, why: `a ${type} layer without ${FILEPATH_ANNOTATION}` };
        return { kind: 'file', layer, path: annotated, gguf: modelpack[1] === 'weight' && isGgufName(annotated) };
    }
    const typedWeight = MODELPACK_TYPED_WEIGHT.exec(type);
    if (typedWeight && annotated) {
        return { kind: 'file', layer, path: annotated, gguf: typedWeight[1] === 'gguf' };
    }
    const dockerFile = DOCKER_FILES[type];
    if (dockerFile) {
        const path = annotated || defaultDockerName(layer, dockerFile.name, dockerFiles);
        return { kind: 'file', layer, path, gguf: dockerFile.gguf === true };
    }
    if (DOCKER_ARCHIVES.has(type))
        return { kind: 'archive', layer, compression: 'none' };
    const oci = OCI_ARCHIVES[type];
    if (oci !== undefined)
        return { kind: 'archive', layer, compression: oci };
    if (annotated && type.startsWith('application/vnd.cncf.model.'))
        return { kind: 'file', layer, path: annotated, gguf: false };
    return { kind: 'blob', layer, why: `unknown layer type ${type}` };
}
function annotatedPath(layer) {
    return layer.annotations?.[FILEPATH_ANNOTATION] || layer.annotations?.[TITLE_ANNOTATION] || undefined;
}
function compressionOf(packing) {
    return packing === 'tar+gzip' ? 'gzip' : packing === 'tar+zstd' ? 'zstd' : 'none';
}
/**
 * A v0.1 Docker artifact names no files: its runner calls one GGUF `model.gguf` and several
 * `model-00001-of-00003.gguf` (in layer order); the other types likewise by their kind.
 */
function defaultDockerName(layer, name, dockerFiles) {
    const same = dockerFiles.filter((l) => l.mediaType === layer.mediaType);
    if (same.length < 2)
        return name;
    const n = String(same.length).padStart(5, '0');
    const i = String(same.indexOf(layer) + 1).padStart(5, '0');
    const dot = name.lastIndexOf('.');
    return dot > 0 ? `${name.slice(0, dot)}-${i}-of-${n}${name.slice(dot)}` : `${name}-${i}-of-${n}`;
}
/**
 * A GGUF weights file by its name. A multimodal projector is GGUF too, but not the model's
 * weights: ModelPack gives it the same weight media type, and its name says `mmproj` (the
 * heuristic Docker Model Runner and Hugging Face tooling use).
 */
function isGgufName(path) {
    const lower = path.toLowerCase();
    const base = lower.slice(lower.lastIndexOf('/') + 1);
    return base.endsWith('.gguf') && !base.includes('mmproj');
}
/** The model's single GGUF weights file, when it has exactly one. */
function singleGguf(placements) {
    const ggufs = placements.filter((p) => p.kind === 'file' && p.gguf);
    return ggufs.length === 1 ? ggufs[0] : undefined;
}

;// CONCATENATED MODULE: ./src/mirror/modelpack.ts



/**
 * A CNCF ModelPack artifact (docs/oci-artifacts.md, "Formats") with one raw layer per file, its
 * path in `org.cncf.model.filepath`: what `oci:` lines (and modctl, Docker Model Runner) read.
 * The bytes depend only on the files and the metadata given (no timestamps), so pushing the
 * same model again yields the same digest and sends nothing.
 */
function modelPackArtifact(spec) {
    const config = Buffer.from(JSON.stringify({
        descriptor: spec.descriptor,
        config: formatOf(spec.files),
        modelfs: { type: 'layers', diff_ids: spec.files.map((f) => `sha256:${f.hex}`) },
        ...spec.extra,
    }));
    const configHex = (0,src_digest/* sha256Hex */.fg)(config);
    const layers = spec.files.map((f) => ({
        mediaType: `application/vnd.cncf.model.${layerKind(f.path)}.v1.raw`,
        digest: `sha256:${f.hex}`,
        size: f.size,
        annotations: { [FILEPATH_ANNOTATION]: f.path, ...f.annotations },
    }));
    const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: registry_manifest/* MediaTypes */.mI.OciManifest,
        artifactType: MODELPACK_ARTIFACT,
        config: { mediaType: MODELPACK_CONFIG, digest: `sha256:${configHex}`, size: config.length },
        layers,
        annotations: spec.annotations,
    }));
    // A file listed under two paths is one blob.
    const blobs = new Map();
    blobs.set(configHex, {
        hex: configHex,
        size: config.length,
        path: `${spec.name} config`,
        bytes: config,
        label: `${spec.label} config`,
    });
    for (const f of spec.files)
        if (!blobs.has(f.hex))
            blobs.set(f.hex, { hex: f.hex, size: f.size, path: f.source, label: `${spec.label} ${f.path}` });
    return {
        blobs: [...blobs.values()],
        manifest: { bytes: manifest, mediaType: registry_manifest/* MediaTypes */.mI.OciManifest },
        references: spec.references,
        name: spec.name,
    };
}
const WEIGHTS = /\.(gguf|safetensors|bin|pt|pth|ckpt|onnx|h5|msgpack|tflite|mlmodel|ot|nemo|llamafile)$/i;
const CODE = /\.(py|ipynb|sh|js|ts|rs|go|c|cc|cpp|h)$/i;
const DOCS = /(^|\/)(readme|license|licence|notice|copying|use_policy|model_card)[^/]*$|\.(md|txt|rst|pdf)$/i;
/** ModelPack's layer kind for a file, by its name: weights, their config, docs, code. */
function layerKind(path) {
    if (WEIGHTS.test(path))
        return 'weight';
    if (DOCS.test(path))
        return 'doc';
    if (CODE.test(path))
        return 'code';
    return 'weight.config';
}
/** The config's `format`, when the weights agree on one file format. */
function formatOf(files) {
    const formats = new Set(files
        .filter((f) => layerKind(f.path) === 'weight')
        .map((f) => /\.([^./]+)$/.exec(f.path)?.[1]?.toLowerCase()));
    const [format] = formats;
    return formats.size === 1 && format ? { format } : {};
}

// EXTERNAL MODULE: ./src/registry/prefix.ts
var registry_prefix = __webpack_require__(8911);
;// CONCATENATED MODULE: ./src/plan.ts

/**
 * The one error for an identity that does not fit its line (edited or stale lock entry, an
 * entry copied under another line): ERR_LOCKFILE whichever source finds it.
 */
function recordedIdentityError(identity, why) {
    return new errors/* ModelPullError */.Vy('ERR_LOCKFILE', `the recorded identity of "${identity.ref}" is invalid: ${why}`);
}
/**
 * Refuses a recorded identity that names another model than its line. An empty name is refused
 * too: model-pull always writes the name, so an entry without one was edited, and the bytes its
 * pin names are then not known to be the line's model.
 */
function checkRecordedName(identity, name) {
    if (identity.name === name)
        return;
    throw recordedIdentityError(identity, identity.name === '' ? `its name is empty, not ${name}` : `it names ${identity.name}, not ${name}`);
}

// EXTERNAL MODULE: ./src/download/safe-fs.ts
var safe_fs = __webpack_require__(5039);
;// CONCATENATED MODULE: ./src/layouts/hf-trees.ts




/** A whole commit's listing as huggingface_hub writes it; more is not a trees file (absent). */
const MAX_TREES_BYTES = 256 * 1024 * 1024;
/**
 * `<repo folder>/trees/<commit>.json`: huggingface_hub (≥ 1.x) caches a commit's whole file
 * listing there and, for a commit revision, reads it instead of calling the tree API. Offline
 * (`HF_HUB_OFFLINE=1`) `snapshot_download(repo, revision=<commit>)` fails without it; with it, the
 * reader also tells a complete snapshot from a partial one. So it must list every file of the
 * commit, never just an `include=` selection (a partial listing would make a later online
 * `snapshot_download(revision=<commit>)` silently return a partial snapshot).
 *
 * The bytes are what huggingface_hub writes: `{"format_version": 1, "files": {…}}` with the paths
 * sorted by code point, one-space indentation, non-ASCII escaped as `\uXXXX`, no final newline,
 * mode 0600 (it writes through a private temporary file). `commitSnapshot` writes it.
 */
const TREES_FORMAT_VERSION = 1;
function treesPath(paths, commit) {
    return (0,external_node_path_.join)(paths.folder, 'trees', `${commit}.json`);
}
/** The file's exact bytes for a listing, as huggingface_hub would write them. */
function treesContent(files) {
    const sorted = [...files].sort((a, b) => compareCodePoints(a.path, b.path));
    const entries = sorted.map((f) => {
        const info = { size: f.size, blob_id: f.blobId };
        if (f.lfsSha256 !== undefined) {
            info.lfs_sha256 = f.lfsSha256;
            info.lfs_size = f.size;
        }
        if (f.xetHash !== undefined)
            info.xet_hash = f.xetHash;
        return [f.path, info];
    });
    // Built from entries so that a path such as "__proto__" stays an ordinary key.
    const json = JSON.stringify({ format_version: TREES_FORMAT_VERSION, files: Object.fromEntries(entries) }, null, 1);
    // Python's json.dump escapes every non-ASCII UTF-16 unit (and DEL); JSON.stringify keeps them.
    return json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
/**
 * The listing in an existing trees file (ours or huggingface_hub's), or undefined when it is
 * absent, of another format, or has any entry that is not a sound file description.
 */
async function readTrees(paths, commit) {
    let data;
    try {
        data = JSON.parse(String(await (0,safe_fs/* readSmall */.o5)(treesPath(paths, commit), MAX_TREES_BYTES)));
    }
    catch {
        return undefined;
    }
    if (data?.format_version !== TREES_FORMAT_VERSION)
        return undefined;
    if (typeof data.files !== 'object' || data.files === null || Array.isArray(data.files))
        return undefined;
    const files = [];
    for (const [path, raw] of Object.entries(data.files)) {
        const file = treeCacheFile(path, raw);
        if (!file)
            return undefined;
        files.push(file);
    }
    return files;
}
function treeCacheFile(path, raw) {
    const info = raw;
    if (repoPathProblem(path) || info === null || typeof info !== 'object')
        return undefined;
    const { size, blob_id: blobId, lfs_sha256: lfs, lfs_size: lfsSize, xet_hash: xet } = info;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
        return undefined;
    if (typeof blobId !== 'string' || !(0,src_digest/* isSha1Hex */.PV)(blobId))
        return undefined;
    const file = { path, size, blobId };
    if (lfs !== undefined && lfs !== null) {
        if (typeof lfs !== 'string' || !(0,src_digest/* isSha256Hex */.P4)(lfs) || lfsSize !== size)
            return undefined;
        file.lfsSha256 = lfs;
    }
    if (xet !== undefined && xet !== null) {
        if (!isXetHash(xet))
            return undefined;
        file.xetHash = xet;
    }
    return file;
}
/** What huggingface_hub accepts as a Xet hash (it ignores a listing with any other). */
function isXetHash(value) {
    return typeof value === 'string' && /^[0-9a-fA-F]{64}$/.test(value);
}
/** Python orders str by code point; JavaScript's default sort compares UTF-16 units. */
function compareCodePoints(a, b) {
    const x = a[Symbol.iterator]();
    const y = b[Symbol.iterator]();
    for (;;) {
        const p = x.next();
        const q = y.next();
        if (p.done || q.done)
            return p.done && q.done ? 0 : p.done ? -1 : 1;
        const d = p.value.codePointAt(0) - q.value.codePointAt(0);
        if (d !== 0)
            return d;
    }
}

;// CONCATENATED MODULE: ./src/sources/hf/glob.ts
/**
 * File selection with huggingface_hub's semantics (`filter_repo_objects`): Python's `fnmatchcase`,
 * so matching is case-sensitive and whole-path; `*` matches any run of characters, `/` included;
 * `?` one character; `[seq]` / `[!seq]` a character class; no escapes (a backslash is taken as
 * `/`, as huggingface_hub normalises it); a pattern ending in `/` selects everything below it.
 *
 * Repository owners choose the paths, so matching must not backtrack (issue 10: `*-*-*.gguf`
 * against a 4,000-character path took 33 s as a regular expression). Because `*` matches every
 * character, a pattern is a run of fixed-width pieces between stars: the first piece must sit at
 * the start, the last at the end, and each middle piece at its leftmost place after the one
 * before (any later place leaves less room and gains nothing). Every path character is then
 * compared at most once per pattern character: linear in the path for a given pattern.
 */
/** Compiles one pattern into an anchored matcher. */
function compileGlob(pattern, meter) {
    let normalized = pattern.replace(/\\/g, '/');
    if (normalized.endsWith('/'))
        normalized += '*';
    const pieces = parse(Array.from(normalized));
    const count = meter ? (n) => (meter.comparisons += n) : () => 0;
    return (path) => matchPieces(pieces, codePoints(path), count);
}
/**
 * A file is selected when it matches some include pattern (or there are none) and no exclude
 * pattern, the same precedence as `allow_patterns` / `ignore_patterns`.
 */
function fileFilter(include, exclude) {
    const allow = include.map((p) => compileGlob(p));
    const deny = exclude.map((p) => compileGlob(p));
    return (path) => (allow.length === 0 || allow.some((m) => m(path))) && !deny.some((m) => m(path));
}
/** The pattern split at its stars (a run of stars is one star): n stars give n + 1 pieces. */
function parse(chars) {
    const pieces = [[]];
    let i = 0;
    while (i < chars.length) {
        const c = chars[i];
        i++;
        if (c === '*') {
            while (chars[i] === '*')
                i++;
            pieces.push([]);
        }
        else if (c === '?') {
            pieces.at(-1).push('any');
        }
        else if (c === '[') {
            const cls = characterClass(chars, i);
            if (cls) {
                pieces.at(-1).push(cls.test);
                i = cls.next;
            }
            else {
                pieces.at(-1).push(cp('['));
            }
        }
        else {
            pieces.at(-1).push(cp(c));
        }
    }
    return pieces;
}
function matchPieces(pieces, path, count) {
    const first = pieces[0];
    if (pieces.length === 1)
        return path.length === first.length && matchesAt(first, path, 0, count);
    const last = pieces.at(-1);
    const end = path.length - last.length;
    if (end < first.length || !matchesAt(first, path, 0, count) || !matchesAt(last, path, end, count))
        return false;
    let from = first.length;
    for (let p = 1; p < pieces.length - 1; p++) {
        const piece = pieces[p];
        const at = leftmost(piece, path, from, end, count);
        if (at < 0)
            return false;
        from = at + piece.length;
    }
    return true;
}
/** The first position in [from, end - piece.length] where the piece matches, or -1. */
function leftmost(piece, path, from, end, count) {
    for (let at = from; at + piece.length <= end; at++)
        if (matchesAt(piece, path, at, count))
            return at;
    return -1;
}
function matchesAt(piece, path, at, count) {
    for (let k = 0; k < piece.length; k++) {
        if (!charMatches(piece[k], path[at + k])) {
            count(k + 1);
            return false;
        }
    }
    count(piece.length);
    return true;
}
function charMatches(test, c) {
    if (test === 'any')
        return true;
    if (typeof test === 'number')
        return test === c;
    return test.ranges.some(([lo, hi]) => lo <= c && c <= hi) !== test.negated;
}
/**
 * fnmatch's class rules: `!` first negates; a `]` right after `[` or `[!` is a member; `a-z` is a
 * range and a reversed range matches nothing; a `-` first or last is literal; without a closing
 * `]` the `[` is an ordinary character (returns undefined).
 */
function characterClass(chars, start) {
    let j = start;
    const negated = chars[j] === '!';
    if (negated)
        j++;
    if (chars[j] === ']')
        j++;
    while (j < chars.length && chars[j] !== ']')
        j++;
    if (j >= chars.length)
        return undefined;
    const members = chars.slice(negated ? start + 1 : start, j);
    const ranges = [];
    for (let k = 0; k < members.length;) {
        const first = cp(members[k]);
        if (members[k + 1] === '-' && k + 2 < members.length) {
            const last = cp(members[k + 2]);
            if (first <= last)
                ranges.push([first, last]);
            k += 3;
        }
        else {
            ranges.push([first, first]);
            k += 1;
        }
    }
    return { test: { negated, ranges }, next: j + 1 };
}
function cp(c) {
    return c.codePointAt(0);
}
function codePoints(text) {
    const out = [];
    for (const c of text)
        out.push(cp(c));
    return out;
}

;// CONCATENATED MODULE: ./src/sources/hf/record.ts





/** A record lists the selected files; past this it is not ours (absent). */
const MAX_RECORD_BYTES = 256 * 1024 * 1024;
/** A ref holds a 40-hex commit (huggingface_hub writes no newline); past this it is not one. */
const MAX_REF_BYTES = 1024;
const FORMAT = 'model-pull/hf-snapshot@1';
/** Filters decide the listing, so they are part of the record's name (order and repeats do not matter). */
function recordPath(paths, key) {
    const filters = JSON.stringify([canonical(key.include), canonical(key.exclude)]);
    return (0,external_node_path_.join)(paths.private, `${key.commit}.${(0,src_digest/* sha256Hex */.fg)(filters).slice(0, 16)}.json`);
}
function recordContent(key, files) {
    return `${JSON.stringify({
        format: FORMAT,
        type: key.type,
        repo: key.repo,
        commit: key.commit,
        include: canonical(key.include),
        exclude: canonical(key.exclude),
        files: files.map((f) => ({ path: f.path, digest: (0,src_digest/* formatDigest */.MO)(f.digest), size: f.size })),
    }, null, 1)}\n`;
}
/** The listing of a matching record, or undefined when absent, foreign or malformed in any way. */
async function readRecord(path, key) {
    let data;
    try {
        data = JSON.parse(String(await (0,safe_fs/* readSmall */.o5)(path, MAX_RECORD_BYTES)));
    }
    catch {
        return undefined;
    }
    const same = data.format === FORMAT &&
        data.type === key.type &&
        data.repo === key.repo &&
        data.commit === key.commit &&
        JSON.stringify(data.include) === JSON.stringify(canonical(key.include)) &&
        JSON.stringify(data.exclude) === JSON.stringify(canonical(key.exclude));
    if (!same || !Array.isArray(data.files))
        return undefined;
    try {
        return data.files.map(checkedFile);
    }
    catch {
        return undefined;
    }
}
/** Validates a `{path, digest, size}` from a record or a lock file before it names a path. */
function checkedFile(raw) {
    const f = raw;
    const problem = repoPathProblem(f?.path);
    if (problem)
        throw new Error(problem);
    if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0)
        throw new Error('an invalid size');
    let digest;
    try {
        digest = (0,src_digest/* parseDigest */.m)(typeof f.digest === 'string' ? f.digest : '');
    }
    catch {
        throw new Error('an invalid digest');
    }
    return { path: f.path, digest, size: f.size };
}
/** The commit `refs/<revision>` names, when it holds exactly 40 hex (as huggingface_hub writes it). */
async function readRef(paths, revision) {
    const text = String(await (0,safe_fs/* readSmall */.o5)((0,external_node_path_.join)(paths.refs, ...revision.split('/')), MAX_REF_BYTES)).trim();
    return (0,src_digest/* isSha1Hex */.PV)(text) ? text : undefined;
}
/** Every file's blob is present with its size (the engine hashes them before use). */
async function blobsPresent(paths, files) {
    for (const file of files) {
        const size = await (0,promises_.stat)(blobPath(paths, file.digest.hex)).then((s) => (s.isFile() ? s.size : -1), () => -1);
        if (size !== file.size)
            return false;
    }
    return true;
}
function canonical(patterns) {
    return [...new Set(patterns)].sort();
}

;// CONCATENATED MODULE: ./src/sources/hf/listing.ts





/**
 * A commit's whole file listing (not just what `include=` selected): it travels in the identity
 * (so a lock file can write `trees/<commit>.json` without a request) and becomes that file.
 * In `detail.tree` an entry is `{path, digest, size}` like a selected file, plus `blobId` where
 * the git object id is not the digest itself (LFS files) and `xetHash` where the Hub gave one.
 * Sorted by path, so the same commit gives the same identity whichever way it was listed.
 */
function treeJson(tree) {
    const sorted = [...tree].sort((a, b) => compareCodePoints(a.path, b.path));
    return sorted.map((e) => ({
        path: e.path,
        digest: (0,src_digest/* formatDigest */.MO)(e.digest),
        size: e.size,
        ...(e.digest.algorithm === 'git-sha1' ? {} : { blobId: e.blobId }),
        ...(e.xetHash === undefined ? {} : { xetHash: e.xetHash }),
    }));
}
/** Reads `detail.tree` back; throws an Error whose message says what is wrong. */
function checkedTree(raw) {
    if (!Array.isArray(raw))
        throw new Error('tree must be a list');
    const tree = raw.map((item) => {
        let file;
        try {
            file = checkedFile(item);
        }
        catch (error) {
            throw new Error(`a tree entry has ${error.message}`);
        }
        const { blobId, xetHash } = item;
        const xet = xetHash === undefined ? {} : { xetHash: checked(isXetHash(xetHash), xetHash, file, 'Xet hash') };
        if (file.digest.algorithm === 'git-sha1') {
            if (blobId !== undefined && blobId !== file.digest.hex)
                throw new Error(`"${file.path}" has two git ids`);
            return { ...file, blobId: file.digest.hex, ...xet };
        }
        const id = checked(typeof blobId === 'string' && (0,src_digest/* isSha1Hex */.PV)(blobId), blobId, file, 'git id');
        return { ...file, blobId: id, ...xet };
    });
    const problem = listingProblem(tree);
    if (problem)
        throw new Error(problem);
    return tree;
}
function checked(ok, value, file, what) {
    if (!ok)
        throw new Error(`"${file.path}" has an invalid ${what}`);
    return value;
}
/** Duplicate paths or a file that is also a folder: no commit has such a tree. */
function listingProblem(tree) {
    const paths = new Set();
    for (const e of tree) {
        if (paths.has(e.path))
            return `"${e.path}" is listed twice in the tree`;
        paths.add(e.path);
    }
    const conflict = pathConflict(paths);
    return conflict ? conflictError(conflict, 'the tree').message : undefined;
}
/**
 * Why a listing cannot be the commit's whole tree for these selected files: the filters must
 * select from it exactly the files, with the same digests and sizes. Undefined when it fits.
 */
function treeMismatch(tree, files, include, exclude) {
    const byPath = new Map(tree.map((e) => [e.path, e]));
    const keep = fileFilter(include, exclude);
    for (const f of files) {
        if (!keep(f.path))
            return `the filters do not select "${f.path}"`;
        const e = byPath.get(f.path);
        if (!e)
            return `the tree does not list "${f.path}"`;
        if ((0,src_digest/* formatDigest */.MO)(e.digest) !== (0,src_digest/* formatDigest */.MO)(f.digest) || e.size !== f.size)
            return `the tree lists "${f.path}" with other content`;
    }
    const selected = tree.reduce((n, e) => n + (keep(e.path) ? 1 : 0), 0);
    return selected === files.length ? undefined : 'the filters select other files from the tree';
}
/** The listing as the layout writes it to `trees/<commit>.json`. */
function treeCacheFiles(tree) {
    return tree.map((e) => ({
        path: e.path,
        size: e.size,
        blobId: e.blobId,
        ...(e.digest.algorithm === 'sha256' ? { lfsSha256: e.digest.hex } : {}),
        ...(e.xetHash === undefined ? {} : { xetHash: e.xetHash }),
    }));
}
/** A `trees/<commit>.json` listing read back as tree entries; undefined when no tree can look so. */
function treeEntries(files) {
    const tree = files.map((f) => ({
        path: f.path,
        size: f.size,
        blobId: f.blobId,
        digest: f.lfsSha256 === undefined
            ? { algorithm: 'git-sha1', hex: f.blobId }
            : { algorithm: 'sha256', hex: f.lfsSha256 },
        ...(f.xetHash === undefined ? {} : { xetHash: f.xetHash }),
    }));
    return listingProblem(tree) ? undefined : tree;
}

// EXTERNAL MODULE: ./src/refs/line.ts
var refs_line = __webpack_require__(9534);
;// CONCATENATED MODULE: ./src/sources/hf/ref.ts


const HF_PREFIX = 'hf:';
const DEFAULT_REVISION = 'main';
const TYPE_PREFIXES = [
    ['datasets/', 'dataset'],
    ['spaces/', 'space'],
];
/** Parses the reference and options of an `hf:` line; every failure quotes the line and says why. */
function parseHfRef(parts) {
    const { line } = parts;
    (0,refs_line/* onlyOptions */.Lg)(parts, ['include', 'exclude']);
    if (!parts.reference.startsWith(HF_PREFIX))
        throw (0,refs_line/* badLine */.mV)(line, 'expected a reference starting with hf:');
    let rest = parts.reference.slice(HF_PREFIX.length);
    let type = 'model';
    for (const [prefix, kind] of TYPE_PREFIXES) {
        if (rest.startsWith(prefix)) {
            type = kind;
            rest = rest.slice(prefix.length);
            break;
        }
    }
    let revision = DEFAULT_REVISION;
    const at = rest.indexOf('@');
    if (at >= 0) {
        revision = rest.slice(at + 1);
        rest = rest.slice(0, at);
        const problem = revisionProblem(revision);
        if (problem)
            throw (0,refs_line/* badLine */.mV)(line, problem);
    }
    const problem = repoIdProblem(rest);
    if (problem)
        throw (0,refs_line/* badLine */.mV)(line, problem);
    return {
        line,
        type,
        repo: rest,
        revision,
        include: patternList(parts, 'include'),
        exclude: patternList(parts, 'exclude'),
    };
}
/** `hf:[datasets/|spaces/]owner/repo@revision [include=…] [exclude=…]`, the revision written out. */
function canonicalHfLine(ref) {
    const type = TYPE_PREFIXES.find(([, kind]) => kind === ref.type)?.[0] ?? '';
    const words = [`${HF_PREFIX}${type}${ref.repo}@${ref.revision}`];
    if (ref.include.length)
        words.push(`include=${ref.include.join(',')}`);
    if (ref.exclude.length)
        words.push(`exclude=${ref.exclude.join(',')}`);
    return words.join(' ');
}
const MAX_NAME = 96;
/**
 * The Hub's repo id rules (as huggingface_hub validates them): `owner/name`, each part made of
 * letters, digits, `_`, `-` and `.`, starting and ending with a letter, digit or `_`, no `--` or
 * `..` anywhere (`--` is the cache's folder separator), the name at most 96 characters and not
 * ending in `.git`.
 */
function repoIdProblem(repo) {
    if (repo === '')
        return 'the repository is missing: expected hf:owner/repo';
    const parts = repo.split('/');
    if (parts.length !== 2) {
        return `"${clip(repo)}" is not owner/repo (for a dataset write hf:datasets/owner/repo)`;
    }
    for (const [index, part] of parts.entries()) {
        const what = index === 0 ? 'owner' : 'repository name';
        if (part === '')
            return `the ${what} in "${clip(repo)}" is empty`;
        if (part.length > MAX_NAME)
            return `the ${what} "${clip(part)}" is longer than ${MAX_NAME} characters`;
        if (!/^[A-Za-z0-9_.-]+$/.test(part)) {
            return `the ${what} "${clip(part)}" may hold only letters, digits, "_", "-" and "."`;
        }
        if (!/^[A-Za-z0-9_]/.test(part) || !/[A-Za-z0-9_]$/.test(part)) {
            return `the ${what} "${clip(part)}" must start and end with a letter, digit or "_"`;
        }
        if (part.includes('--') || part.includes('..'))
            return `the ${what} "${clip(part)}" may not contain "--" or ".."`;
    }
    if (parts[1].endsWith('.git'))
        return `the repository name "${clip(parts[1])}" may not end with ".git"`;
    return undefined;
}
const MAX_REVISION = 255;
/**
 * A branch, tag, `refs/pr/N` or commit, checked with git's ref-name rules (no `..`, no spaces or
 * control characters, none of `~^:?*[\`, no `@{`, no empty, `.`-led or `.lock` segment). It later
 * becomes a file under `refs/` and a URL path segment, so a lax check here would be a path escape.
 */
function revisionProblem(revision) {
    if (revision === '')
        return 'the revision after "@" is empty';
    if (revision.length > MAX_REVISION)
        return `the revision is longer than ${MAX_REVISION} characters`;
    if (!/^[A-Za-z0-9._/+-]+$/.test(revision)) {
        return `the revision "${clip(revision)}" may hold only letters, digits, "/", "_", "-", "+" and "."`;
    }
    if (revision.includes('..'))
        return `the revision "${clip(revision)}" may not contain ".."`;
    const segments = revision.split('/');
    for (const segment of segments) {
        if (segment === '')
            return `the revision "${clip(revision)}" has an empty part between "/"`;
        if (segment.startsWith('.') || segment.endsWith('.lock') || segment.startsWith('-')) {
            return `the revision "${clip(revision)}" has a part starting with "." or "-", or ending with ".lock"`;
        }
    }
    if (revision.endsWith('.'))
        return `the revision "${clip(revision)}" may not end with "."`;
    if (segments[0] === 'refs' && segments[1] === 'pr' && !/^refs\/pr\/[1-9][0-9]*$/.test(revision)) {
        return `"${clip(revision)}" is not a pull request revision: expected refs/pr/<number>`;
    }
    return undefined;
}
/** True for a full commit id, which needs no revision lookup. */
function isCommitId(revision) {
    return (0,src_digest/* isSha1Hex */.PV)(revision);
}
/** `include=a,b` → ['a','b']; empty patterns are refused rather than silently matching nothing. */
function patternList(parts, key) {
    const value = parts.options.get(key);
    if (value === undefined)
        return [];
    const patterns = value.split(',');
    if (patterns.some((p) => p === '')) {
        throw (0,refs_line/* badLine */.mV)(parts.line, `${key}= holds an empty pattern (write ${key}=GLOB[,GLOB…])`);
    }
    return patterns;
}
function clip(text) {
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

;// CONCATENATED MODULE: ./src/sources/hf/identity.ts






/** `owner/repo` for models, `datasets/owner/repo` and `spaces/owner/repo` otherwise. */
function displayName(type, repo) {
    return type === 'model' ? repo : `${type}s/${repo}`;
}
/**
 * The sha256 of a canonical JSON of the commit and the selected files sorted by path: two pulls
 * with the same bytes at the same paths share it, whatever the filters that chose them.
 */
function contentDigestOf(commit, files) {
    const rows = files
        .map((f) => [f.path, (0,src_digest/* formatDigest */.MO)(f.digest), f.size])
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return (0,src_digest/* sha256Hex */.fg)(JSON.stringify(['hf', commit, rows]));
}
function hfIdentity(ref, commit, files, tree) {
    return {
        source: 'hf',
        ref: ref.line,
        name: displayName(ref.type, ref.repo),
        pin: commit,
        contentDigest: contentDigestOf(commit, files),
        detail: {
            type: ref.type,
            repo: ref.repo,
            revision: ref.revision,
            commit,
            include: [...ref.include],
            exclude: [...ref.exclude],
            files: files.map((f) => ({ path: f.path, digest: (0,src_digest/* formatDigest */.MO)(f.digest), size: f.size })),
            ...(tree ? { tree: treeJson(tree) } : {}),
        },
    };
}
/**
 * Reads `detail` back, checking everything that will reach a path or URL, and that it names what
 * the line names: an identity may come from a lock file that someone edited, or from the entry
 * of another line.
 */
function hfDetail(identity, ref) {
    const bad = (why) => recordedIdentityError(identity, why);
    const d = (identity.detail ?? {});
    if (identity.source !== 'hf')
        throw bad(`source is ${identity.source}, not hf`);
    const type = d.type;
    if (type !== 'model' && type !== 'dataset' && type !== 'space')
        throw bad('type must be model, dataset or space');
    const repo = typeof d.repo === 'string' ? d.repo : '';
    const repoProblem = repoIdProblem(repo);
    if (repoProblem)
        throw bad(repoProblem);
    const revision = typeof d.revision === 'string' ? d.revision : '';
    const revProblem = revisionProblem(revision);
    if (revProblem)
        throw bad(revProblem);
    const commit = typeof d.commit === 'string' ? d.commit : '';
    if (!isCommitId(commit) || identity.pin !== commit)
        throw bad('the commit must be 40 lowercase hex, equal to digest');
    const include = stringList(d.include);
    const exclude = stringList(d.exclude);
    if (!include || !exclude || !Array.isArray(d.files))
        throw bad('include, exclude and files must be lists');
    const files = [];
    const seen = new Set();
    for (const raw of d.files) {
        let file;
        try {
            file = checkedFile(raw);
        }
        catch (error) {
            throw bad(`a file entry has ${error.message}`);
        }
        if (seen.has(file.path))
            throw bad(`"${file.path}" is listed twice`);
        seen.add(file.path);
        files.push(file);
    }
    const conflict = pathConflict(seen);
    if (conflict)
        throw bad(conflictError(conflict, 'the file list').message);
    if (contentDigestOf(commit, files) !== identity.contentDigest)
        throw bad('contentDigest does not match the files');
    const named = displayName(type, repo);
    const wanted = displayName(ref.type, ref.repo);
    if (identity.name !== named || named !== wanted)
        throw bad(`it names ${identity.name}, not ${wanted}`);
    if (revision !== ref.revision)
        throw bad(`it is for revision ${revision}, not ${ref.revision}`);
    if (isCommitId(ref.revision) && commit !== ref.revision)
        throw bad(`it pins commit ${commit}, not the line's ${ref.revision}`);
    if (!sameList(include, ref.include) || !sameList(exclude, ref.exclude))
        throw bad("its include= / exclude= filters are not the line's");
    if (d.tree === undefined)
        return { type, repo, revision, commit, include, exclude, files };
    let tree;
    try {
        tree = checkedTree(d.tree);
    }
    catch (error) {
        throw bad(error.message);
    }
    const mismatch = treeMismatch(tree, files, include, exclude);
    if (mismatch)
        throw bad(mismatch);
    return { type, repo, revision, commit, include, exclude, files, tree };
}
function sameList(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
}
function stringList(value) {
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? [...value] : undefined;
}

;// CONCATENATED MODULE: ./src/sources/hf/mirror.ts






/**
 * What a mirrored Hugging Face repo records (docs/scale-out.md, "What a mirror holds"): the
 * manifest names the repository, its commit and the revision the line named; each layer the
 * file's Hub oid (`sha256:` for LFS files, `git-sha1:` for the others), which is what
 * hf-oci-mirror verifies the bytes against, as a pull from the Hub does.
 */
const HfAnnotations = {
    Repo: 'dev.model-pull.hf.repo',
    Commit: 'dev.model-pull.hf.commit',
    Revision: 'dev.model-pull.hf.revision',
    /** Set only on an artifact that holds part of the commit (include= / exclude=). */
    Filters: 'dev.model-pull.hf.filters',
    Oid: 'dev.model-pull.hf.oid',
};
/** The config key beside ModelPack's own that carries the commit's listing (trees/<commit>.json). */
const HF_CONFIG_KEY = 'huggingface';
/** `owner/repo` (`datasets/owner/repo`) under the prefix, lower case. */
function hfRepository(prefix, ref) {
    const [owner = '', name = ''] = ref.repo.split('/');
    const kind = ref.type === 'model' ? [] : [`${ref.type}s`];
    return (0,registry_prefix/* repositoryUnder */.vt)(prefix, ...kind, (0,registry_prefix/* repositoryPart */.mi)(owner, 'owner', ref.line), (0,registry_prefix/* repositoryPart */.mi)(name, 'repository name', ref.line));
}
/**
 * The tag of a commit's artifact: the commit itself for the whole repo; with `include=` /
 * `exclude=`, the commit and a short hash of the filters, so a partial copy never takes the
 * tag that promises every file.
 */
function hfTag(name, ref) {
    const filtered = ref.include.length > 0 || ref.exclude.length > 0;
    const suffix = filtered ? `-${(0,src_digest/* sha256Hex */.fg)(JSON.stringify([ref.include, ref.exclude])).slice(0, 12)}` : '';
    return (0,registry_prefix/* tagFrom */.FL)(name, suffix);
}
/** HF repos as ModelPack artifacts, one raw layer per file at its repo path, tagged by commit. */
const hfMirror = {
    target(ref, line, prefix) {
        return {
            repository: hfRepository(prefix, { ...ref, line }),
            origin: `hf:${displayName(ref.type, ref.repo)}`,
        };
    },
    async artifact(ref, model, target, settings) {
        const d = hfDetail(model.identity, ref);
        const paths = hfRepoPaths(settings.hfCache, d.type, d.repo);
        const files = [];
        // Layers in the order the Hub listed the files: hf-oci-mirror rebuilds the same identity.
        for (const f of d.files) {
            const source = blobPath(paths, f.digest.hex);
            // LFS files are named by their sha256 already; git files by a sha1 of their header and bytes.
            const hex = f.digest.algorithm === 'sha256' ? f.digest.hex : await (0,src_digest/* hashFile */.DC)(source, 'sha256');
            files.push({
                path: f.path,
                hex,
                size: f.size,
                source,
                annotations: { [HfAnnotations.Oid]: (0,src_digest/* formatDigest */.MO)(f.digest) },
            });
        }
        const tags = [hfTag(d.commit, d), d.revision === d.commit ? undefined : hfTag(d.revision, d)].filter((t) => t !== undefined);
        const name = displayName(d.type, d.repo);
        const filters = d.include.length || d.exclude.length
            ? JSON.stringify({ include: d.include, exclude: d.exclude })
            : undefined;
        const source = `${settings.hfEndpoint}/${d.type === 'model' ? '' : `${d.type}s/`}${d.repo}`;
        return modelPackArtifact({
            files,
            descriptor: { name, revision: d.commit, sourceURL: source },
            extra: {
                [HF_CONFIG_KEY]: {
                    type: d.type,
                    repo: d.repo,
                    commit: d.commit,
                    ...(d.tree ? { tree: treeJson(d.tree) } : {}),
                },
            },
            annotations: {
                [HfAnnotations.Repo]: name,
                [HfAnnotations.Commit]: d.commit,
                [HfAnnotations.Revision]: d.revision,
                ...(filters ? { [HfAnnotations.Filters]: filters } : {}),
                'org.opencontainers.image.source': source,
                'org.opencontainers.image.revision': d.commit,
            },
            references: tags,
            name: (0,registry_prefix/* nameUnder */.c9)(settings.mirrorTo, target.repository, tags[0]),
            label: ref.line,
        });
    },
};

// EXTERNAL MODULE: ./src/http/body.ts
var body = __webpack_require__(9662);
// EXTERNAL MODULE: ./src/http/retry.ts
var retry = __webpack_require__(8902);
;// CONCATENATED MODULE: ./src/sources/hf/oci-mirror.ts











/** A commit's listing travels in the artifact's config: 100,000 files fit well within this. */
const MAX_CONFIG_BYTES = 64 * 1024 * 1024;
/**
 * `hf-oci-mirror` (docs/scale-out.md, "Hugging Face repos from a registry"): a commit that
 * `model-pull mirror` pushed is read from `<prefix>/<owner>/<repo>:<commit>` (or the tag of the
 * line's filters) instead of the Hub. The artifact is only used when it names this repository
 * and commit and carries every selected file with the oid the Hub listed (or the lock
 * recorded); the engine then checks every byte against those oids, as for a Hub download.
 * Anything else sends the line to the Hub, with one warning.
 */
class HfOciMirror {
    registry;
    prefix;
    commits = new Map();
    constructor(registry, prefix) {
        this.registry = registry;
        this.prefix = prefix;
    }
    /** The artifact of a commit for this line's repository and filters, if the mirror has it. */
    commit(ref, commit, ctx) {
        const key = `${ref.type}/${ref.repo}@${commit} ${JSON.stringify([ref.include, ref.exclude])}`;
        let found = this.commits.get(key);
        if (!found) {
            found = this.fetch(ref, commit, ctx).catch((error) => {
                if ((0,errors/* isModelPullError */.pq)(error, 'ERR_ABORTED') || ctx.signal?.aborted)
                    throw error;
                ctx.log.warning(`${ref.line}: hf-oci-mirror ${this.prefix.text}: ${(0,errors/* describeError */.Uc)(error)}; pulling from the Hub`);
                return undefined;
            });
            this.commits.set(key, found);
        }
        return found;
    }
    /**
     * Selected files from the mirror's listing: what identify() would have listed at the Hub, in
     * the order the Hub listed them (the layers keep it), so the identity is the same either way.
     */
    static selected(mirrored, ref) {
        const keep = fileFilter(ref.include, ref.exclude);
        const byPath = new Map(mirrored.tree.map((e) => [e.path, e]));
        const carried = [...mirrored.layers.keys()].flatMap((p) => {
            const entry = byPath.get(p);
            return entry && keep(p) ? [entry] : [];
        });
        const others = mirrored.tree.filter((e) => keep(e.path) && !mirrored.layers.has(e.path));
        return [...carried, ...others];
    }
    /** Where the engine fetches a file from the mirror (credentials bound to the registry). */
    async location(mirrored, file, ctx, previous) {
        const layer = mirrored.layers.get(file.path);
        if (!layer)
            throw new Error(`${file.path} is not in ${mirrored.name}`);
        return mirrored.session.blobLocation(ctx, layer.hex, previous);
    }
    /** Why the artifact cannot serve these files (a file missing or with another oid), if it cannot. */
    static lacks(mirrored, files) {
        for (const f of files) {
            const layer = mirrored.layers.get(f.path);
            if (!layer)
                return `it does not hold "${f.path}"`;
            if (layer.oid !== (0,src_digest/* formatDigest */.MO)(f.digest) || layer.size !== f.size)
                return `it holds "${f.path}" with oid ${layer.oid}, not ${(0,src_digest/* formatDigest */.MO)(f.digest)}`;
        }
        return undefined;
    }
    async fetch(ref, commit, ctx) {
        const repository = hfRepository(this.prefix, ref);
        const session = await this.registry.resolve(ctx, {
            host: this.prefix.host,
            ...(this.prefix.scheme ? { scheme: this.prefix.scheme } : {}),
            repository,
        });
        const filtered = ref.include.length > 0 || ref.exclude.length > 0;
        // The line's own copy first, then the whole commit, which serves any filters.
        const tags = [hfTag(commit, ref), ...(filtered ? [hfTag(commit, { include: [], exclude: [] })] : [])];
        for (const tag of tags) {
            if (tag === undefined)
                continue;
            const name = (0,registry_prefix/* nameUnder */.c9)(this.prefix, repository, tag);
            let bytes;
            try {
                bytes = await session.getManifest(ctx, tag, { name, accept: registry_manifest/* MediaTypes */.mI.OciManifest });
            }
            catch (error) {
                if ((0,errors/* isModelPullError */.pq)(error, 'ERR_NOT_FOUND'))
                    continue;
                throw error;
            }
            const mirrored = await this.read(ref, commit, name, (0,registry_manifest/* parseImageManifest */.Sw)(bytes, name), session, ctx);
            const lacks = HfOciMirror.lacks(mirrored, HfOciMirror.selected(mirrored, ref));
            if (lacks)
                throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `${name} cannot serve this line: ${lacks}`);
            ctx.log.info(`${ref.line}: commit ${commit} from ${name}`);
            return mirrored;
        }
        const where = (0,registry_prefix/* nameUnder */.c9)(this.prefix, repository, tags[0] ?? commit);
        throw new errors/* ModelPullError */.Vy('ERR_NOT_FOUND', `${where} is not there`);
    }
    /** Checks what the artifact says it is, then reads its listing from the config. */
    async read(ref, commit, name, manifest, session, ctx) {
        const bad = (why) => new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `${name} ${why}`);
        const notes = manifest.annotations ?? {};
        const repo = displayName(ref.type, ref.repo);
        if (notes[HfAnnotations.Commit] !== commit)
            throw bad(`is not commit ${commit}`);
        if (notes[HfAnnotations.Repo]?.toLowerCase() !== repo.toLowerCase())
            throw bad(`is not ${repo}`);
        if (manifest.config.mediaType !== MODELPACK_CONFIG)
            throw bad('is not a ModelPack artifact');
        const config = await (0,retry/* withRetries */.LH)(async () => {
            const answer = await session.request(ctx, `blobs/sha256:${manifest.config.hex}`);
            if (answer.status !== 200) {
                await answer.body.dump().catch(() => undefined);
                throw bad(`has no config blob (HTTP ${answer.status})`);
            }
            return (0,body/* readBody */.x8)(answer, MAX_CONFIG_BYTES, `the config of ${name}`);
        }, ctx.retry, { clock: ctx.clock, ...(ctx.signal ? { signal: ctx.signal } : {}) });
        if ((0,src_digest/* sha256Hex */.fg)(config) !== manifest.config.hex)
            throw bad('has a config that does not match its digest');
        let tree;
        try {
            const hf = JSON.parse(config.toString('utf8'))[HF_CONFIG_KEY];
            if (hf?.commit !== commit)
                throw new Error(`it names another commit`);
            tree = checkedTree(hf.tree);
        }
        catch (error) {
            throw bad(`has no usable listing of the commit (${error.message})`);
        }
        const layers = new Map();
        for (const layer of manifest.layers) {
            const path = layer.annotations?.[FILEPATH_ANNOTATION];
            const oid = layer.annotations?.[HfAnnotations.Oid];
            if (path === undefined || oid === undefined)
                continue;
            layers.set(path, {
                hex: layer.hex,
                size: layer.size,
                oid: (0,src_digest/* formatDigest */.MO)((0,src_digest/* parseDigest */.m)(oid, `oid of ${path}`)),
            });
        }
        return { name, tree, layers, session };
    }
}

// EXTERNAL MODULE: ./src/http/client.ts + 1 modules
var http_client = __webpack_require__(4530);
;// CONCATENATED MODULE: ./src/sources/hf/errors.ts



/**
 * Turns a non-2xx Hub answer into an error a user can act on. The Hub names the cause in
 * `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and answers 401 for
 * private, gated and missing repos alike when no token is sent (docs/registries.md, "Hugging Face Hub").
 */
async function hubError(response, subject) {
    const status = response.status;
    // 5xx keeps the generic, retryable status error (it carries the body's first words).
    if (status >= 500)
        return (0,http_client/* statusError */.$C)(response);
    await response.body.dump().catch(() => undefined);
    const host = new URL(response.url).host;
    if (status === 429)
        return rateLimited(response, host);
    return (byErrorCode(header(response, 'x-error-code'), status, subject) ??
        byStatus(status, host, subject, header(response, 'x-error-message')));
}
/** 429 carries the wait the Hub asked for (Retry-After, or `RateLimit: "api";r=0;t=55`). */
function rateLimited(response, host) {
    const status = response.status;
    const after = (0,retry/* parseRetryAfter */.mu)(response.headers);
    return new errors/* ModelPullError */.Vy('ERR_RATE_LIMITED', `${host} rate-limited this runner (HTTP 429${after === undefined ? '' : `, retry after ${after} s`}); ` +
        'a token (hf-token or HF_TOKEN) raises the limit', after === undefined ? { status } : { status, retryAfterSeconds: after });
}
function byErrorCode(code, status, subject) {
    const { label, tokenGiven } = subject;
    const opts = { status };
    if (code === 'GatedRepo') {
        const how = tokenGiven
            ? 'and check that the token (hf-token or HF_TOKEN) belongs to the account that accepted them'
            : 'and provide a token (hf-token or HF_TOKEN)';
        const message = `${label} is gated: accept the terms on the model page (${subject.pageUrl}) ${how}`;
        return new errors/* ModelPullError */.Vy('ERR_GATED_REPO', message, opts);
    }
    if (code === 'RevisionNotFound') {
        const message = `revision "${subject.revision ?? '?'}" not found in ${label}: check the branch, tag or commit`;
        return new errors/* ModelPullError */.Vy('ERR_REVISION_NOT_FOUND', message, opts);
    }
    if (code === 'EntryNotFound') {
        const what = subject.path === undefined ? 'a file' : `file "${subject.path}"`;
        return new errors/* ModelPullError */.Vy('ERR_NOT_FOUND', `${what} not found in ${label}`, opts);
    }
    // Without a token the Hub cannot tell private from missing, and says 401 for both.
    if (code === 'RepoNotFound' || ((status === 401 || status === 404) && !tokenGiven)) {
        const how = tokenGiven
            ? 'check the name, or that the token given has access'
            : 'check the name, or provide a token with access (hf-token or HF_TOKEN)';
        return new errors/* ModelPullError */.Vy('ERR_NOT_FOUND', `${label} not found, or private: ${how}`, opts);
    }
    return undefined;
}
function byStatus(status, host, subject, said) {
    const detail = said ? `: ${said.replace(/\s+/g, ' ').slice(0, 200)}` : '';
    const opts = { status };
    if (status === 401) {
        return new errors/* ModelPullError */.Vy('ERR_AUTH', `${host} refused the token (HTTP 401${detail}): check hf-token or HF_TOKEN`, opts);
    }
    if (status === 403) {
        const message = `${host} denied access to ${subject.label} (HTTP 403${detail}): the token lacks permission for this repository`;
        return new errors/* ModelPullError */.Vy('ERR_AUTH', message, opts);
    }
    if (status === 404) {
        return new errors/* ModelPullError */.Vy('ERR_NOT_FOUND', `${subject.label}: not found on ${host} (HTTP 404${detail})`, opts);
    }
    return new errors/* ModelPullError */.Vy('ERR_HTTP_STATUS', `HTTP ${status} from ${host} for ${subject.label}${detail}`, opts);
}
function header(response, name) {
    const value = response.headers[name];
    return Array.isArray(value) ? value[0] : value;
}

;// CONCATENATED MODULE: ./src/sources/hf/api.ts







/**
 * Credentials go to the endpoint's origin only (HttpClient drops them on any other host, the CDN
 * included). A mirror's own Basic credentials win over the Hub token: they name that server.
 */
function hubEndpoint(endpoint, token, basic) {
    let url;
    try {
        url = new URL(endpoint);
    }
    catch {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `hf-endpoint is not a valid URL: ${(0,errors/* redactUrl */.BO)(endpoint)}`);
    }
    if (url.username || url.password) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_INPUT', `hf-endpoint must carry no credentials here: ${(0,errors/* redactUrl */.BO)(endpoint)}`);
    }
    const base = endpoint.replace(/\/+$/, '');
    const authorization = basic
        ? `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}`
        : token
            ? `Bearer ${token}`
            : undefined;
    return authorization ? { base, credentials: { origin: url.origin, headers: { authorization } } } : { base };
}
/** `datasets/` and `spaces/` prefix web and resolve URLs; models have none. */
function webPrefix(type) {
    return type === 'model' ? '' : `${type}s/`;
}
function repoPageUrl(ep, type, repo) {
    return `${ep.base}/${webPrefix(type)}${repo}`;
}
function apiRepoUrl(ep, type, repo) {
    return `${ep.base}/api/${type}s/${repo}`;
}
/** Percent-encodes each segment like Python's `quote` (only letters, digits and `_.-~` stay). */
function quotePath(path) {
    return path
        .split('/')
        .map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
        .join('/');
}
/** `{EP}/{""|datasets/|spaces/}{repo}/resolve/{commit}/{path}`: 200 for small files, 302 to a CDN for LFS. */
function resolveUrl(ep, type, repo, commit, path) {
    return `${ep.base}/${webPrefix(type)}${repo}/resolve/${commit}/${quotePath(path)}`;
}
/** GET a Hub JSON document with retries (429 waits as told); returns the body and the next page. */
async function hubJson(url, ep, ctx, subject) {
    return (0,retry/* withRetries */.LH)(async () => {
        const response = await ctx.http.request(url, {
            headers: { accept: 'application/json' },
            ...(ep.credentials ? { credentials: ep.credentials } : {}),
            ...(ctx.signal ? { signal: ctx.signal } : {}),
        });
        if (response.status < 200 || response.status >= 300)
            throw await hubError(response, subject);
        const json = await (0,body/* readJson */.Vh)(response, body/* BODY_LIMITS */.Mu.json, 'the Hub answer');
        const link = response.headers.link;
        return { json, next: nextLink(Array.isArray(link) ? link.join(',') : link, response.url) };
    }, ctx.retry, { clock: ctx.clock, ...(ctx.signal ? { signal: ctx.signal } : {}) });
}
/** The `rel="next"` target of a `Link` header (RFC 8288), resolved against the page that carried it. */
function nextLink(header, pageUrl) {
    if (!header)
        return undefined;
    for (const part of header.split(/,(?=\s*<)/)) {
        const m = /^\s*<([^>]*)>(.*)$/.exec(part);
        if (!m)
            continue;
        const rels = m[2]
            .split(';')
            .map((p) => /^\s*rel\s*=\s*"?([^"]*)"?\s*$/i.exec(p)?.[1])
            .find((r) => r !== undefined);
        if (rels?.toLowerCase().split(/\s+/).includes('next'))
            return new URL(m[1], pageUrl).toString();
    }
    return undefined;
}
/** `GET /api/{type}s/{repo}/revision/{rev}` → the 40-hex commit the revision names now. */
async function resolveRevision(ep, type, repo, revision, ctx, subject) {
    const url = `${apiRepoUrl(ep, type, repo)}/revision/${encodeURIComponent(revision)}`;
    const { json } = await hubJson(url, ep, ctx, subject);
    const sha = json?.sha;
    if (typeof sha !== 'string' || !(0,src_digest/* isSha1Hex */.PV)(sha)) {
        throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `the Hub gave no valid commit for revision "${revision}" of ${subject.label}`);
    }
    return sha;
}
const MAX_PAGES = 100_000;
/** Every file at `commit`, following `Link: <…>; rel="next"` pages (1,000 entries each on the Hub). */
async function listTree(ep, type, repo, commit, ctx, subject) {
    const files = [];
    const seenPaths = new Set();
    const seenPages = new Set();
    let url = `${apiRepoUrl(ep, type, repo)}/tree/${commit}?recursive=true`;
    while (url !== undefined) {
        if (seenPages.has(url) || seenPages.size >= MAX_PAGES) {
            throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `the file listing of ${subject.label} does not end (page loop)`);
        }
        seenPages.add(url);
        const page = await hubJson(url, ep, ctx, subject);
        if (!Array.isArray(page.json)) {
            throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `the file listing of ${subject.label} is not a JSON array`);
        }
        for (const raw of page.json) {
            const file = treeFile(raw, subject.label);
            if (!file)
                continue;
            if (seenPaths.has(file.path)) {
                throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `the file listing of ${subject.label} names "${file.path}" twice`);
            }
            seenPaths.add(file.path);
            files.push(file);
        }
        url = page.next;
    }
    const conflict = pathConflict(seenPaths);
    if (conflict)
        throw conflictError(conflict, `the file listing of ${subject.label}`);
    return files;
}
/**
 * A tree entry `{type, path, size, oid, lfs?:{oid, size}, xetHash?}` checked before any part of
 * it reaches a path or URL: LFS files are verified by sha256 (`lfs.oid`), others by git blob sha1
 * (`oid`). Folders and anything that is not a file (submodules) are skipped. A Xet hash that
 * huggingface_hub would not accept is dropped (it is only passed on in `trees/`).
 */
function treeFile(raw, label) {
    const entry = raw;
    if (entry === null || typeof entry !== 'object' || entry.type !== 'file')
        return undefined;
    const bad = (why) => new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `the file listing of ${label} has an invalid entry: ${why}`);
    const pathProblem = repoPathProblem(entry.path);
    if (pathProblem)
        throw bad(`${pathProblem} (${JSON.stringify(String(entry.path).slice(0, 100))})`);
    const path = entry.path;
    if (!isSize(entry.size))
        throw bad(`"${path}" has no valid size`);
    if (typeof entry.oid !== 'string' || !(0,src_digest/* isSha1Hex */.PV)(entry.oid))
        throw bad(`"${path}" has no valid git blob id`);
    const common = {
        path,
        size: entry.size,
        blobId: entry.oid,
        ...(isXetHash(entry.xetHash) ? { xetHash: entry.xetHash } : {}),
    };
    const lfs = entry.lfs;
    if (lfs !== undefined && lfs !== null) {
        if (typeof lfs.oid !== 'string' || !(0,src_digest/* isSha256Hex */.P4)(lfs.oid))
            throw bad(`"${path}" has no valid LFS sha256`);
        if (lfs.size !== undefined && lfs.size !== entry.size)
            throw bad(`"${path}" has two different sizes`);
        return { ...common, digest: { algorithm: 'sha256', hex: lfs.oid } };
    }
    return { ...common, digest: { algorithm: 'git-sha1', hex: entry.oid } };
}
function isSize(value) {
    return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

;// CONCATENATED MODULE: ./src/sources/hf/source.ts













/** The `hf:` source: Hub revision → commit → filtered listing → blobs and the HF cache layout. */
function createHfSource(options) {
    const env = {
        ...options,
        ep: hubEndpoint(options.endpoint, options.token, options.endpointAuth),
    };
    return {
        identify: (ref, ctx) => identify(env, ref, ctx),
        plan: async (ref, identity, ctx) => plan(env, ref, identity, ctx),
    };
}
function subjectOf(env, ref) {
    return {
        label: `Hugging Face ${ref.type} ${ref.repo}`,
        pageUrl: repoPageUrl(env.ep, ref.type, ref.repo),
        revision: ref.revision,
        tokenGiven: env.token !== undefined && env.token !== '',
    };
}
async function identify(env, ref, ctx) {
    const paths = hfRepoPaths(env.cacheRoot, ref.type, ref.repo);
    if (isCommitId(ref.revision)) {
        // A commit's tree never changes: a complete earlier pull (with the commit's whole listing in
        // trees/) answers without a request.
        const local = await completeLocally(paths, ref, ref.revision);
        if (local?.tree) {
            ctx.log.debug(`${ref.line}: complete in the cache at ${ref.revision}, no request made`);
            return hfIdentity(ref, ref.revision, local.files, local.tree);
        }
        const mirrored = await fromOciMirror(env, ref, ref.revision, ctx);
        if (mirrored)
            return mirrored;
        const listed = await listFiles(env, ref, ref.revision, ctx);
        return hfIdentity(ref, ref.revision, listed.files, listed.tree);
    }
    let commit;
    try {
        commit = await resolveRevision(env.ep, ref.type, ref.repo, ref.revision, ctx, subjectOf(env, ref));
        // A branch costs the Hub one call; the listing and the files may come from the mirror.
        const mirrored = await fromOciMirror(env, ref, commit, ctx);
        if (mirrored)
            return mirrored;
        const listed = await listFiles(env, ref, commit, ctx);
        return hfIdentity(ref, commit, listed.files, listed.tree);
    }
    catch (error) {
        // Only when the Hub could not be reached (no such host, refused, network, 5xx, 429 past the
        // retry budget): a branch whose `refs/` entry names a complete local snapshot is used, with a
        // warning.
        if (!(0,retry/* isUnreachable */.R0)(error))
            throw error;
        const fallback = commit ?? (await readRef(paths, ref.revision));
        const local = fallback === undefined ? undefined : await completeLocally(paths, ref, fallback);
        if (fallback === undefined || !local)
            throw error;
        ctx.log.warning(`${ref.line}: ${(0,errors/* describeError */.Uc)(error)}; using ${ref.revision} = ${fallback} from the local cache, ` +
            'which may be behind the Hub');
        return hfIdentity(ref, fallback, local.files, local.tree);
    }
}
/** The identity of a commit from the hf-oci-mirror's listing, when the mirror has the commit. */
async function fromOciMirror(env, ref, commit, ctx) {
    const mirrored = env.ociMirror && (await env.ociMirror.commit(ref, commit, ctx));
    if (!mirrored)
        return undefined;
    const files = HfOciMirror.selected(mirrored, ref);
    return files.length ? hfIdentity(ref, commit, files, mirrored.tree) : undefined;
}
/**
 * The mirror's copy of the planned commit; undefined (the Hub) when it is absent or does not
 * hold these files with these oids.
 */
function mirroredFiles(env, ref, d, ctx) {
    const mirror = env.ociMirror;
    if (!mirror)
        return undefined;
    let found;
    let warned = false;
    return {
        commit() {
            found ??= mirror.commit({ ...d, line: ref.line }, d.commit, ctx).then((m) => {
                const lacks = m && HfOciMirror.lacks(m, d.files);
                if (!lacks)
                    return m;
                ctx.log.warning(`${ref.line}: hf-oci-mirror ${m.name} does not fit the lock (${lacks}); pulling from the Hub`);
                return undefined;
            });
            return found;
        },
        leave(file, error) {
            const why = `hf-oci-mirror ${mirror.prefix.text} failed on "${file.path}" (${(0,errors/* describeError */.Uc)(error)})`;
            if (warned)
                return ctx.log.debug(`${ref.line}: ${why}; pulling it from the Hub`);
            warned = true;
            ctx.log.warning(`${ref.line}: ${why}; pulling the files it fails from the Hub`);
        },
    };
}
function recordKey(ref, commit) {
    return { type: ref.type, repo: ref.repo, commit, include: ref.include, exclude: ref.exclude };
}
/**
 * The recorded listing when our record exists and every blob it names is on disk at its size,
 * with the commit's whole listing when `trees/<commit>.json` fits it (ours or huggingface_hub's).
 * Sizes are enough here: the engine hashes every blob before it is used (verify: full), so
 * hashing here too would read every file twice on each cache hit; a damaged blob is then
 * caught and fetched by the engine.
 */
async function completeLocally(paths, ref, commit) {
    const key = recordKey(ref, commit);
    const files = await readRecord(recordPath(paths, key), key);
    if (!files || !(await blobsPresent(paths, files)))
        return undefined;
    const tree = await localTree(paths, commit, files, ref);
    return tree ? { files, tree } : { files };
}
/** The listing in `trees/<commit>.json` when it is the whole tree these files were selected from. */
async function localTree(paths, commit, files, filters) {
    const cached = await readTrees(paths, commit);
    const tree = cached && treeEntries(cached);
    return tree && !treeMismatch(tree, files, filters.include, filters.exclude) ? tree : undefined;
}
/** The commit's whole listing and the files the filters select from it (at least one). */
async function listFiles(env, ref, commit, ctx) {
    const subject = subjectOf(env, ref);
    const tree = await listTree(env.ep, ref.type, ref.repo, commit, ctx, subject);
    const keep = fileFilter(ref.include, ref.exclude);
    const files = tree.filter((f) => keep(f.path));
    if (files.length === 0) {
        const filters = [
            ref.include.length ? `include=${ref.include.join(',')}` : '',
            ref.exclude.length ? `exclude=${ref.exclude.join(',')}` : '',
        ].filter(Boolean);
        const why = tree.length === 0 ? 'has no files' : `has no file matching ${filters.join(' ')}`;
        throw new errors/* ModelPullError */.Vy('ERR_NOT_FOUND', `${subject.label} ${why} at commit ${commit}`);
    }
    return { files, tree };
}
/** Blobs, files and the commit step for an identity; no request (the engine fetches, later). */
function plan(env, ref, identity, ctx) {
    const d = hfDetail(identity, ref);
    const paths = hfRepoPaths(env.cacheRoot, d.type, d.repo);
    const blobs = new Map();
    const mirrored = mirroredFiles(env, ref, d, ctx);
    for (const file of d.files) {
        // Files with the same content share one blob, as in huggingface_hub's cache.
        if (!blobs.has(file.digest.hex))
            blobs.set(file.digest.hex, blobSpec(env, d, paths, identity.name, file, ctx, mirrored));
    }
    const record = recordPath(paths, recordKey(d, d.commit));
    return {
        identity,
        path: (0,external_node_path_.join)(paths.snapshots, d.commit),
        size: d.files.reduce((sum, f) => sum + f.size, 0),
        files: d.files.map((f) => ({
            path: snapshotFilePath(paths, d.commit, f.path),
            digest: (0,src_digest/* formatDigest */.MO)(f.digest),
            size: f.size,
        })),
        blobs: [...blobs.values()],
        // trees/<commit>.json is not part of the entry: commit() writes it from the identity (the
        // Hub's listing or the lock), so a cache archive can never supply it.
        cachePaths: [...[...blobs.values()].map((b) => b.target), record],
        commit: async () => {
            const tree = d.tree ?? (await recoverTree(env, d, paths, ctx, ref.line));
            await commitSnapshot({
                paths,
                commit: d.commit,
                revision: d.revision,
                files: d.files.map((f) => ({ path: f.path, etag: f.digest.hex, size: f.size })),
                ...(tree
                    ? { listing: { path: treesPath(paths, d.commit), content: treesContent(treeCacheFiles(tree)) } }
                    : {}),
                record: { path: record, content: recordContent(recordKey(d, d.commit), d.files) },
                ...(env.linkOps ? { ops: env.linkOps } : {}),
            });
        },
    };
}
/**
 * An identity recorded by an older model-pull (lock file) has no listing: a fitting
 * `trees/<commit>.json` already on disk stays, else the Hub is asked once. Without either, the
 * snapshot is still written, with a warning that huggingface_hub cannot load it offline by commit.
 */
async function recoverTree(env, d, paths, ctx, line) {
    if (await localTree(paths, d.commit, d.files, d))
        return undefined;
    try {
        const tree = await listTree(env.ep, d.type, d.repo, d.commit, ctx, subjectOf(env, d));
        const mismatch = treeMismatch(tree, d.files, d.include, d.exclude);
        if (mismatch)
            throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `the Hub's listing does not fit the lock: ${mismatch}`);
        ctx.log.info(`${line}: the recorded identity has no file listing (written by an older model-pull); listed commit ${d.commit} once. Refresh the lock file to skip this request`);
        return tree;
    }
    catch (error) {
        ctx.log.warning(`${line}: trees/${d.commit}.json not written (${(0,errors/* describeError */.Uc)(error)}): huggingface_hub will not load this snapshot offline by its commit. Refresh the lock file with this model-pull to record the listing`);
        return undefined;
    }
}
function blobSpec(env, d, paths, name, file, ctx, mirrored) {
    const url = resolveUrl(env.ep, d.type, d.repo, d.commit, file.path);
    const location = env.ep.credentials ? { url, credentials: env.ep.credentials } : { url };
    /** The registry token generation this blob last saw (see registryBlob). */
    let seen;
    /** Whether the last locate() named the mirror, and whether the mirror failed this file. */
    let atMirror = false;
    let left = false;
    return {
        digest: file.digest,
        size: file.size,
        label: `hf:${name} ${file.path}`,
        target: blobPath(paths, file.digest.hex),
        ingestDir: paths.ingest,
        // The resolve URL answers 302 to a freshly signed CDN URL each time, so asking again after
        // an expiry is just asking the Hub again. From the mirror, the engine checks the bytes
        // against the same oid.
        async locate(signal) {
            atMirror = false;
            const commit = !left && mirrored && (await mirrored.commit());
            if (!commit || !env.ociMirror)
                return location;
            atMirror = true;
            const at = await env.ociMirror.location(commit, file, signal ? { ...ctx, signal } : ctx, seen);
            seen = at.generation;
            return at.location;
        },
        ...(mirrored
            ? {
                fallback(error) {
                    if (!atMirror || ctx.signal?.aborted)
                        return false;
                    left = true;
                    mirrored.leave(file, error);
                    return true;
                },
            }
            : {}),
    };
}

;// CONCATENATED MODULE: ./src/verify/files.ts



/** Counts what was hashed; a file reached twice (a blob shared by two models) is hashed once. */
class Checker {
    checkedFiles = 0;
    checkedBytes = 0;
    damaged = [];
    verdicts = new Map();
    /** Why `path` does not hold `digest` in `size` bytes, or undefined when it does. */
    problem(path, digest, size) {
        const key = `${path}\0${digest.algorithm}:${digest.hex}\0${size}`;
        let verdict = this.verdicts.get(key);
        if (!verdict) {
            verdict = this.check(path, digest, size);
            this.verdicts.set(key, verdict);
        }
        return verdict;
    }
    report() {
        return { checkedFiles: this.checkedFiles, checkedBytes: this.checkedBytes, damaged: this.damaged };
    }
    async check(path, digest, size) {
        let actual;
        try {
            const info = await (0,promises_.stat)(path);
            if (!info.isFile())
                return 'not a file';
            actual = info.size;
        }
        catch {
            return 'missing';
        }
        this.checkedFiles++;
        this.checkedBytes += actual;
        if (size !== undefined && actual !== size)
            return `size ${actual}, expected ${size}`;
        const hex = await (0,src_digest/* hashFile */.DC)(path, digest.algorithm, actual);
        return hex === digest.hex ? undefined : `${digest.algorithm} ${hex}, expected ${digest.hex}`;
    }
}
/** Names of the sub-folders of `path` (none when it does not exist). */
async function dirs(path) {
    return (await entries(path)).filter((e) => e.isDirectory()).map((e) => e.name);
}
/**
 * Every entry below `path` that is not a folder (files, links, and whatever else was planted:
 * a FIFO where a manifest belongs is damage to report), depth first, sorted by name.
 */
async function walk(path) {
    const out = [];
    for (const e of await entries(path)) {
        const full = (0,external_node_path_.join)(path, e.name);
        if (e.isDirectory())
            out.push(...(await walk(full)));
        else
            out.push(full);
    }
    return out;
}
async function entries(path) {
    try {
        const list = await (0,promises_.readdir)(path, { withFileTypes: true });
        return list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    catch {
        return [];
    }
}

;// CONCATENATED MODULE: ./src/sources/hf/verify.ts







const REPO_FOLDER = /^(models|datasets|spaces)--(.+)$/;
/**
 * Re-hashes a Hugging Face cache (docs/layouts.md, "The Hugging Face cache"):
 * - a snapshot model-pull wrote has a record (`<repo>/.model-pull/<commit>.*.json`) listing every
 *   file with its digest and size, so a file missing from the snapshot is found too;
 * - any other snapshot entry is checked against the blob its symlink names (the ETag: sha256 for
 *   LFS files, git blob sha1 otherwise), or for a hard link, the blob that shares its inode; a
 *   real file with no blob to compare with (huggingface_hub moves the blob where symlinks are
 *   missing) cannot be checked and is skipped;
 * - a ref must name a commit that has a snapshot;
 * - a snapshot model-pull wrote has `trees/<commit>.json` listing its files as they are (else
 *   huggingface_hub cannot load that commit offline).
 */
async function verifyHfCache(root) {
    const checker = new Checker();
    for (const folder of await dirs(root)) {
        const m = REPO_FOLDER.exec(folder);
        if (!m)
            continue;
        const repo = `hf:${m[1] === 'models' ? '' : `${m[1]}/`}${m[2].split('--').join('/')}`;
        await verifyRepo((0,external_node_path_.join)(root, folder), repo, checker);
    }
    // Records list files in the Hub's order; a report sorted by path is easier to read and diff.
    checker.damaged.sort((a, b) => (a.model === b.model ? compare(a.path, b.path) : compare(a.model, b.model)));
    return checker.report();
}
async function verifyRepo(folder, repo, checker) {
    const commits = await dirs((0,external_node_path_.join)(folder, 'snapshots'));
    for (const ref of await walk((0,external_node_path_.join)(folder, 'refs'))) {
        const read = await (0,safe_fs/* readBounded */.CB)(ref, MAX_REF_BYTES);
        const commit = read.kind === 'read' ? read.bytes.toString('utf8').trim() : '';
        if (!commits.includes(commit)) {
            const named = (0,src_digest/* isSha1Hex */.PV)(commit) ? `commit ${commit}, which has no snapshot` : 'no commit';
            const problem = read.kind === 'refused' ? `cannot read the ref: ${read.reason}` : `the ref names ${named}`;
            const line = `${repo}@${(0,external_node_path_.relative)((0,external_node_path_.join)(folder, 'refs'), ref).split(external_node_path_.sep).join('/')}`;
            checker.damaged.push({ model: repo, path: ref, problem, line });
        }
    }
    const records = await readRecords((0,external_node_path_.join)(folder, '.model-pull'));
    const inodes = new BlobInodes((0,external_node_path_.join)(folder, 'blobs'));
    for (const commit of commits) {
        const model = `${repo}@${commit}`;
        const snapshot = (0,external_node_path_.join)(folder, 'snapshots', commit);
        const expected = records.get(commit) ?? new Map();
        for (const [path, want] of expected) {
            const file = (0,external_node_path_.join)(snapshot, ...path.split('/'));
            const present = await (0,promises_.lstat)(file).then(() => true, () => false);
            const problem = present
                ? await checker.problem(file, want.digest, want.size)
                : 'missing from the snapshot';
            if (problem)
                checker.damaged.push({
                    model,
                    path: file,
                    problem: linkProblem(problem, want.digest),
                    line: `${model}${want.filters}`,
                });
        }
        if (records.has(commit)) {
            const problem = await verify_listingProblem(folder, commit, expected);
            // Any recorded line of the commit repairs it: a pull writes the whole listing.
            const line = `${model}${[...expected.values()][0]?.filters ?? ''}`;
            if (problem)
                checker.damaged.push({ model, path: treesPath({ folder }, commit), problem, line });
        }
        for (const file of await walk(snapshot)) {
            if (expected.has((0,external_node_path_.relative)(snapshot, file).split(external_node_path_.sep).join('/')))
                continue;
            const etag = await etagOf(file, inodes);
            if (!etag)
                continue;
            const digest = (0,src_digest/* isSha256Hex */.P4)(etag)
                ? { algorithm: 'sha256', hex: etag }
                : { algorithm: 'git-sha1', hex: etag };
            const problem = await checker.problem(file, digest, undefined);
            if (problem)
                checker.damaged.push({ model, path: file, problem: linkProblem(problem, digest), line: model });
        }
    }
}
/** Why trees/<commit>.json does not describe the recorded files, or undefined when it does. */
async function verify_listingProblem(folder, commit, expected) {
    const listing = await readTrees({ folder }, commit);
    if (!listing) {
        const present = await (0,promises_.lstat)(treesPath({ folder }, commit)).then(() => true, () => false);
        return present
            ? 'not a listing huggingface_hub accepts'
            : 'missing (huggingface_hub cannot load this commit offline)';
    }
    const byPath = new Map(listing.map((f) => [f.path, f]));
    for (const [path, want] of expected) {
        const entry = byPath.get(path);
        if (!entry || !describes(entry, want))
            return `does not list ${path} as the snapshot holds it`;
    }
    return undefined;
}
function describes(entry, want) {
    const sameContent = want.digest.algorithm === 'sha256'
        ? entry.lfsSha256 === want.digest.hex
        : entry.lfsSha256 === undefined && entry.blobId === want.digest.hex;
    return sameContent && (want.size === undefined || entry.size === want.size);
}
function compare(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
}
/** A snapshot entry whose link target is gone is a missing blob, and says which. */
function linkProblem(problem, digest) {
    return problem === 'missing' ? `missing blob ${digest.hex}` : problem;
}
/** What model-pull's records say each complete snapshot holds, by commit then path. */
async function readRecords(folder) {
    const byCommit = new Map();
    let names;
    try {
        names = (await (0,promises_.readdir)(folder)).filter((n) => n.endsWith('.json')).sort();
    }
    catch {
        return byCommit;
    }
    for (const name of names) {
        try {
            const data = JSON.parse(String(await (0,safe_fs/* readSmall */.o5)((0,external_node_path_.join)(folder, name), MAX_RECORD_BYTES)));
            if (typeof data.commit !== 'string' || !(0,src_digest/* isSha1Hex */.PV)(data.commit) || !Array.isArray(data.files))
                continue;
            const files = byCommit.get(data.commit) ?? new Map();
            const filters = [filterWord('include', data.include), filterWord('exclude', data.exclude)].join('');
            for (const raw of data.files) {
                const file = checkedFile(raw);
                if (!files.has(file.path))
                    files.set(file.path, { digest: file.digest, size: file.size, filters });
            }
            byCommit.set(data.commit, files);
        }
        catch {
            // Not a record of ours (or a damaged one): the symlink check below still covers its files.
        }
    }
    return byCommit;
}
/** ` include=a,b` for a record's filter list (patterns never hold spaces or commas), '' when none. */
function filterWord(key, patterns) {
    if (!Array.isArray(patterns))
        return '';
    const words = patterns.filter((p) => typeof p === 'string' && /^[^\s,]+$/.test(p));
    return words.length ? ` ${key}=${words.join(',')}` : '';
}
/** The ETag a snapshot entry stands for: its symlink target's name, or a blob with its inode. */
async function etagOf(file, inodes) {
    let name;
    try {
        name = (0,external_node_path_.basename)(await (0,promises_.readlink)(file));
    }
    catch {
        name = (await inodes.nameOf(file)) ?? '';
    }
    return (0,src_digest/* isSha256Hex */.P4)(name) || (0,src_digest/* isSha1Hex */.PV)(name) ? name : undefined;
}
/** Blob names by inode, read once per repo, to recognise hard-linked snapshot files. */
class BlobInodes {
    blobs;
    map;
    constructor(blobs) {
        this.blobs = blobs;
    }
    async nameOf(file) {
        this.map ??= this.read();
        const info = await (0,promises_.stat)(file).catch(() => undefined);
        return info ? (await this.map).get(`${info.dev}:${info.ino}`) : undefined;
    }
    async read() {
        const map = new Map();
        for (const name of await (0,promises_.readdir)(this.blobs).catch(() => [])) {
            const info = await (0,promises_.stat)((0,external_node_path_.join)(this.blobs, name)).catch(() => undefined);
            if (info?.isFile())
                map.set(`${info.dev}:${info.ino}`, name);
        }
        return map;
    }
}

;// CONCATENATED MODULE: ./src/sources/hf/index.ts







/** `hf:[datasets/|spaces/]owner/repo[@revision] [include=…] [exclude=…]`: the Hub into the HF cache. */
const hfSource = {
    kind: 'hf',
    prefixes: [HF_PREFIX],
    syntax: 'hf:OWNER/REPO',
    usage: 'hf:OWNER/REPO[@REV] [include=GLOB,..] [exclude=GLOB,..]',
    parse: parseHfRef,
    stores: (settings) => [
        {
            what: 'the Hugging Face cache',
            path: settings.hfCache,
            input: constants/* Inputs */.G0.HfCache,
            verify: { label: 'Hugging Face cache', check: verifyHfCache },
        },
    ],
    phases: { resolving: 'resolving revision', writing: 'linking snapshot' },
    canonical: canonicalHfLine,
    create: (settings) => createHfSource({
        cacheRoot: settings.hfCache,
        endpoint: settings.hfEndpoint,
        ...(settings.hfToken ? { token: settings.hfToken } : {}),
        ...(settings.hfEndpointAuth ? { endpointAuth: settings.hfEndpointAuth } : {}),
        ...(settings.hfOciMirror
            ? { ociMirror: new HfOciMirror(new client/* RegistryClient */.b((0,client/* registryOptions */._)(settings)), settings.hfOciMirror) }
            : {}),
    }),
    mirror: hfMirror,
};

;// CONCATENATED MODULE: ./src/refs/registry-reference.ts


/**
 * Cuts `[scheme://]name[:tag][@sha256:<64 hex>]` the way Docker and Ollama read image names
 * (docs/registries.md, "Names and addresses"): `@` never appears in a name part, so the last one
 * starts the pin; the tag is split off only when the last `:` comes after the last `/`, so
 * `host:port/ns/m` keeps its port (a `/` never appears in a tag). Errors quote the line.
 */
function cutReference(line, text) {
    let rest = text;
    let pin;
    const at = rest.lastIndexOf('@');
    if (at >= 0) {
        const digest = rest.slice(at + 1);
        pin = (0,src_digest/* sha256HexOf */.AS)(digest);
        if (pin === undefined) {
            throw (0,refs_line/* badLine */.mV)(line, `a pin must be @sha256: followed by 64 lowercase hex digits, got "@${registry_reference_clip(digest)}"`);
        }
        rest = rest.slice(0, at);
    }
    let scheme;
    const s = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(rest);
    if (s) {
        const given = s[1].toLowerCase();
        if (given !== 'http' && given !== 'https') {
            throw (0,refs_line/* badLine */.mV)(line, `unsupported scheme "${s[1]}://" (use http:// or https://)`);
        }
        scheme = given;
        rest = rest.slice(s[0].length);
    }
    let tag;
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
        tag = rest.slice(colon + 1);
        rest = rest.slice(0, colon);
    }
    return {
        ...(scheme ? { scheme } : {}),
        name: rest,
        ...(tag === undefined ? {} : { tag }),
        ...(pin === undefined ? {} : { pin }),
    };
}
function registry_reference_clip(text) {
    return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

;// CONCATENATED MODULE: ./src/sources/oci/ref.ts


const OCI_PREFIX = 'oci:';
const DOCKER_HUB = 'docker.io';
/** Docker's grammar for repository parts: lowercase alphanumerics joined by `.`, `_`, `__` or dashes. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** A host name or IPv4 address, then an optional port; or a bracketed IPv6 address. */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** Docker refuses names longer than this (host and repository). */
const ref_MAX_NAME = 255;
/** Parses the reference of an `oci:` line; every failure quotes the line and says why. */
function parseOciRef(parts) {
    const { line } = parts;
    (0,refs_line/* onlyOptions */.Lg)(parts, []);
    if (!parts.reference.toLowerCase().startsWith(OCI_PREFIX)) {
        throw (0,refs_line/* badLine */.mV)(line, 'expected a reference starting with oci:');
    }
    const text = parts.reference.slice(OCI_PREFIX.length);
    if (text === '')
        throw (0,refs_line/* badLine */.mV)(line, 'the artifact name is missing after oci:');
    const { scheme, name: rest, tag, pin } = cutReference(line, text);
    if (rest === '')
        throw (0,refs_line/* badLine */.mV)(line, 'the artifact name is missing before its tag or pin');
    if (tag !== undefined && !TAG.test(tag)) {
        throw (0,refs_line/* badLine */.mV)(line, `tag "${registry_reference_clip(tag)}" must be 1 to 128 letters, digits, _, . or - and not start with . or -`);
    }
    const [host, repository] = splitHost(line, rest, scheme !== undefined);
    for (const component of repository.split('/')) {
        if (!PATH_COMPONENT.test(component)) {
            throw (0,refs_line/* badLine */.mV)(line, `repository part "${registry_reference_clip(component)}" must be lowercase letters and digits, joined by ., _, __ or -`);
        }
    }
    if (host.length + 1 + repository.length > ref_MAX_NAME) {
        throw (0,refs_line/* badLine */.mV)(line, `the name is longer than ${ref_MAX_NAME} characters`);
    }
    return {
        line,
        ...(scheme ? { scheme } : {}),
        host,
        repository,
        tag: tag ?? 'latest',
        ...(pin === undefined ? {} : { pin }),
    };
}
/**
 * Docker's rule: the first part is a registry host when it holds a `.` or a `:`, is `localhost`,
 * or has capitals (repository parts never do); otherwise the name is on Docker Hub, where a
 * single-part name lives under `library/`.
 */
function splitHost(line, name, explicitScheme) {
    const slash = name.indexOf('/');
    const first = slash < 0 ? name : name.slice(0, slash);
    const isHost = slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase());
    if (explicitScheme && !isHost) {
        throw (0,refs_line/* badLine */.mV)(line, 'an explicit scheme needs a registry host: scheme://host/repository[:tag]');
    }
    if (!isHost)
        return [DOCKER_HUB, name.includes('/') ? name : `library/${name}`];
    if (!HOST.test(first) || !isAddress(first)) {
        throw (0,refs_line/* badLine */.mV)(line, `registry host "${registry_reference_clip(first)}" is not a host name or address (host[:port])`);
    }
    let host = first.toLowerCase();
    if (host === 'index.docker.io')
        host = DOCKER_HUB;
    const repository = name.slice(slash + 1);
    if (repository === '')
        throw (0,refs_line/* badLine */.mV)(line, `the repository is missing after "${first}/"`);
    return [host, host === DOCKER_HUB && !repository.includes('/') ? `library/${repository}` : repository];
}
/** The URL parser has the last word on ports and IPv6 literals. */
function isAddress(host) {
    try {
        return new URL(`https://${host}/`).host !== '';
    }
    catch {
        return false;
    }
}
/** `host/repository:tag` or `host/repository@sha256:…`: the `name` output, the layout's ref name. */
function ociName(ref) {
    return ref.pin === undefined
        ? `${ref.host}/${ref.repository}:${ref.tag}`
        : `${ref.host}/${ref.repository}@sha256:${ref.pin}`;
}

;// CONCATENATED MODULE: ./src/registry/mirror-route.ts






/**
 * The `registry-mirror` routes of one run (docs/scale-out.md, "Pulling through a mirror"): a
 * repository whose host has a mirror is asked there first. A mirror that cannot be reached is
 * left for the rest of the run after one warning; a mirror that lacks a model (or answers it
 * wrongly) sends that repository to its own registry, again with one warning. Content never
 * depends on the route: manifests by digest and every blob are verified against the digests
 * the line, the lock or the manifest names, whichever registry served them.
 */
class RegistryRoutes {
    client;
    mirrors;
    routes = new Map();
    /** Mirrors found unreachable in this run (by their prefix text), with the warning told. */
    down;
    constructor(client, mirrors = []) {
        this.client = client;
        this.mirrors = mirrors;
        // Every source of a run gets the same list from its settings: the one warning and the
        // decision to leave an unreachable mirror are shared by ollama: and oci: lines alike.
        const down = downByRun.get(mirrors) ?? new Set();
        downByRun.set(mirrors, down);
        this.down = down;
    }
    /** The route of one repository (shared by every line that names it, so it warns once). */
    route(name) {
        const key = `${name.scheme ?? ''}://${name.host}/${name.repository}`;
        let route = this.routes.get(key);
        if (!route) {
            const mirror = this.mirrors.find((m) => m.host === name.host.toLowerCase())?.mirror;
            route = new RepositoryRoute(this, name, mirror);
            this.routes.set(key, route);
        }
        return route;
    }
}
/**
 * How a registry source (ollama:, oci:) reaches the repository a line names: through the
 * user's `registry-mirror` for the line's host when there is one, else the registry itself.
 * `repositoryOf` says which repository a reference names.
 */
function repositoryRoutes(options, repositoryOf) {
    const routes = new RegistryRoutes(new client/* RegistryClient */.b(options), options.mirrors);
    return (ref) => routes.route({
        host: ref.host,
        ...(ref.scheme ? { scheme: ref.scheme } : {}),
        repository: repositoryOf(ref),
    });
}
/** The repository on a mirror: the mirror's path, then the origin's repository. */
function mirrorRepository(mirror, origin) {
    return {
        host: mirror.host,
        ...(mirror.scheme ? { scheme: mirror.scheme } : {}),
        repository: (0,registry_prefix/* repositoryUnder */.vt)(mirror, ...origin.repository.split('/')),
    };
}
/** The mirrors found unreachable, per run (keyed by the run's list of mirrors). */
const downByRun = new WeakMap();
/** One repository's way to its manifests and blobs: the mirror while it serves, else the origin. */
class RepositoryRoute {
    routes;
    origin;
    mirror;
    /** Set once the mirror failed this repository: everything then goes to the origin. */
    fellBack = false;
    /** Sessions handed out for blobs at the mirror, so a failure there is told from the origin's. */
    mirrorSessions = new WeakSet();
    /** Manifest digests the mirror was seen to hold (or not), so blobs know where to go. */
    held = new Map();
    constructor(routes, origin, mirror) {
        this.routes = routes;
        this.origin = origin;
        this.mirror = mirror;
    }
    /**
     * Whether blobs may come from a mirror: then each is asked with one connection until the
     * mirror shows it serves ranges (a pull-through cache lacking a blob fetches all of it from
     * the origin for every range request; measured in docs/scale-out.md).
     */
    get mirrored() {
        return this.mirror !== undefined;
    }
    /** The repository on the mirror while it is used: the mirror's path, then the origin's repository. */
    get mirrorName() {
        const m = this.mirror;
        if (!m || this.fellBack || this.routes.down.has(m.text))
            return undefined;
        return mirrorRepository(m, this.origin);
    }
    /** The origin's session (no mirror). */
    originSession(call) {
        return this.routes.client.resolve(call, this.origin);
    }
    /**
     * A manifest (or index) by tag or digest: from the mirror when it has it, else from the
     * origin. A digest mismatch from the mirror is a miss, never an answer.
     */
    async manifest(call, reference, request) {
        const mirror = this.mirrorName;
        if (mirror) {
            try {
                const session = await this.routes.client.resolve(call, mirror);
                const bytes = await session.getManifest(call, reference, request);
                this.held.set((0,src_digest/* sha256Hex */.fg)(bytes), Promise.resolve(true));
                call.log.debug(`${request.name}: manifest ${reference} from the mirror ${this.mirror.host}`);
                return bytes;
            }
            catch (error) {
                this.fallBack(call, error, mirror, reference);
            }
        }
        return (await this.originSession(call)).getManifest(call, reference, request);
    }
    /**
     * Where the blobs of the manifest `hex` are fetched: the mirror when it holds that manifest
     * (asked once, by digest, when the manifest came from elsewhere: a lock or the store), else
     * the origin. Called on the first blob that needs fetching, so a model on disk asks nothing.
     */
    async blobSession(call, hex, name) {
        const mirror = this.mirrorName;
        if (!mirror)
            return this.originSession(call);
        let held = this.held.get(hex);
        if (!held) {
            held = (async () => {
                try {
                    const session = await this.routes.client.resolve(call, mirror);
                    await session.getManifest(call, `sha256:${hex}`, {
                        name,
                        expectHex: hex,
                        accept: registry_manifest/* MANIFEST_OR_INDEX_ACCEPT */.ED,
                    });
                    return true;
                }
                catch (error) {
                    this.fallBack(call, error, mirror, `sha256:${hex}`);
                    return false;
                }
            })();
            this.held.set(hex, held);
        }
        const onMirror = await held;
        const still = this.mirrorName;
        if (!onMirror || !still)
            return this.originSession(call);
        const session = await this.routes.client.resolve(call, still);
        this.mirrorSessions.add(session);
        return session;
    }
    /** The blobs of the manifest `hex`: where each is fetched, and the origin after a failure there. */
    blobs(hex, name) {
        return {
            session: (call) => this.blobSession(call, hex, name),
            leave: (call, session, blob, error) => this.leaveAfterBlob(call, session, blob, error),
        };
    }
    /**
     * A blob failed at `session` (not there, unreachable, other bytes than its digest): when that
     * session was the mirror's, the repository leaves the mirror (one warning, as for a manifest)
     * and the blob is fetched again from the origin. A failure at the origin stays a failure.
     */
    leaveAfterBlob(call, session, hex, error) {
        if (!this.mirror || !this.mirrorSessions.has(session))
            return false;
        if (call.signal?.aborted)
            return false;
        // A refused connection reaches here after its retries: the mirror is down, not the blob.
        const cause = (0,errors/* isModelPullError */.pq)(error, 'ERR_RETRIES_EXHAUSTED') && error.cause !== undefined ? error.cause : error;
        this.fallBack(call, cause, mirrorRepository(this.mirror, this.origin), `sha256:${hex}`, error);
        return true;
    }
    /**
     * Leaves the mirror for this repository (or, when unreachable, for the run) with one warning.
     * `told` is the error the warning quotes, when it is not `error` itself (a retry budget spent
     * on what `error` says).
     */
    fallBack(call, error, mirror, reference, told = error) {
        if ((0,errors/* isModelPullError */.pq)(error, 'ERR_ABORTED') || call.signal?.aborted)
            throw error;
        const prefix = this.mirror;
        const where = (0,registry_prefix/* nameUnder */.c9)(prefix, mirror.repository, reference);
        const origin = this.origin.host;
        if ((0,retry/* isUnreachable */.R0)(error)) {
            if (this.routes.down.has(prefix.text))
                return;
            this.routes.down.add(prefix.text);
            call.log.warning(`registry-mirror ${prefix.text} cannot be reached (${(0,errors/* describeError */.Uc)(told)}); pulling from ${origin} instead for the rest of this run`);
            return;
        }
        if (this.fellBack)
            return;
        this.fellBack = true;
        const why = (0,errors/* isModelPullError */.pq)(error, 'ERR_NOT_FOUND')
            ? 'is not on the mirror'
            : `failed: ${(0,errors/* describeError */.Uc)(told)}`;
        call.log.warning(`registry-mirror: ${where} ${why}; pulling ${this.origin.repository} from ${origin}`);
    }
}

;// CONCATENATED MODULE: ./src/registry/recorded.ts



/**
 * The rules every registry source (ollama:, oci:) applies to an identity from identify() or a
 * lock file: it pins a manifest by digest, and the manifest text it may carry is those bytes.
 */
/**
 * The manifest digest (hex) an identity records, once it names `name` and its pin is a
 * `sha256:` digest equal to its contentDigest.
 */
function recordedManifestHex(identity, name) {
    checkRecordedName(identity, name);
    const hex = (0,src_digest/* sha256HexOf */.AS)(identity.pin);
    if (hex === undefined || identity.contentDigest !== hex)
        throw recordedIdentityError(identity, `"${identity.pin.slice(0, 80)}" is not a manifest digest`);
    return hex;
}
/** The manifest bytes an identity records (`detail.manifest`), checked against `hex`; none: undefined. */
function recordedManifest(identity, name, hex) {
    const text = identity.detail?.manifest;
    if (typeof text !== 'string')
        return undefined;
    const bytes = Buffer.from(text, 'utf8');
    const actual = (0,src_digest/* sha256Hex */.fg)(bytes);
    if (actual !== hex) {
        throw new errors/* ModelPullError */.Vy('ERR_DIGEST_MISMATCH', `the recorded manifest of ${name} hashes to sha256:${actual}, not its recorded digest sha256:${hex}`);
    }
    return bytes;
}

// EXTERNAL MODULE: ./src/registry/session.ts + 1 modules
var session = __webpack_require__(7898);
// EXTERNAL MODULE: ./src/download/lease.ts + 1 modules
var download_lease = __webpack_require__(3712);
// EXTERNAL MODULE: external "node:crypto"
var external_node_crypto_ = __webpack_require__(7598);
// EXTERNAL MODULE: external "node:stream"
var external_node_stream_ = __webpack_require__(7075);
// EXTERNAL MODULE: external "node:stream/promises"
var external_node_stream_promises_ = __webpack_require__(6466);
// EXTERNAL MODULE: external "node:zlib"
var external_node_zlib_ = __webpack_require__(8522);
;// CONCATENATED MODULE: ./src/cache/tar-reader.ts

class TarFormatError extends Error {
}
const BLOCK = 512;
/** The most bytes of one extended header (pax records, GNU long name) we hold in memory. */
const MAX_META = 64 * 1024;
class TarReader extends external_node_stream_.Writable {
    #state = { kind: 'header' };
    #header = Buffer.alloc(BLOCK);
    #headerFill = 0;
    #zeroBlocks = 0;
    #pending = {};
    #offset = 0;
    #handler;
    #release;
    /** Members whose header was read (for the caller's accounting). */
    members = 0;
    constructor(handler, options = {}) {
        super({ highWaterMark: 4 * 1024 * 1024 });
        this.#handler = handler;
        this.#release = options.release;
    }
    _write(chunk, _encoding, callback) {
        this.#consume(chunk).then(() => {
            this.#release?.(chunk);
            callback();
        }, (error) => callback(error instanceof Error ? error : new Error(String(error))));
    }
    _final(callback) {
        const state = this.#state;
        // GNU tar ends with two zero blocks; one is tolerated, as GNU tar itself does.
        const ended = state.kind === 'header' && this.#headerFill === 0 && this.#zeroBlocks >= 1;
        if (state.kind === 'done' || ended) {
            callback();
            return;
        }
        callback(new TarFormatError(`the archive is truncated (it ends at byte ${this.#offset} inside ${describe(state)})`));
    }
    async #consume(chunk) {
        let at = 0;
        while (at < chunk.length) {
            const state = this.#state;
            switch (state.kind) {
                case 'done':
                    // Whatever follows the end marker (GNU tar pads to a 10 KiB record) is never read.
                    this.#offset += chunk.length - at;
                    return;
                case 'header': {
                    const take = Math.min(BLOCK - this.#headerFill, chunk.length - at);
                    chunk.copy(this.#header, this.#headerFill, at, at + take);
                    this.#headerFill += take;
                    at += take;
                    this.#offset += take;
                    if (this.#headerFill === BLOCK) {
                        this.#headerFill = 0;
                        await this.#onHeader();
                    }
                    break;
                }
                case 'meta': {
                    const take = Math.min(state.left, chunk.length - at);
                    if (!state.oversize)
                        state.parts.push(Buffer.from(chunk.subarray(at, at + take)));
                    state.left -= take;
                    at += take;
                    this.#offset += take;
                    if (state.left === 0)
                        this.#onMeta(state);
                    break;
                }
                case 'data': {
                    const take = Math.min(state.left, chunk.length - at);
                    if (take > 0 && state.sink)
                        await state.sink.write(chunk.subarray(at, at + take));
                    state.left -= take;
                    at += take;
                    this.#offset += take;
                    if (state.left === 0) {
                        if (state.sink)
                            await state.sink.end();
                        this.#state = state.pad > 0 ? { kind: 'pad', left: state.pad } : { kind: 'header' };
                    }
                    break;
                }
                case 'pad': {
                    const take = Math.min(state.left, chunk.length - at);
                    state.left -= take;
                    at += take;
                    this.#offset += take;
                    if (state.left === 0)
                        this.#state = { kind: 'header' };
                    break;
                }
            }
        }
    }
    async #onHeader() {
        const header = this.#header;
        if (header.every((b) => b === 0)) {
            this.#zeroBlocks++;
            if (this.#zeroBlocks >= 2)
                this.#state = { kind: 'done' };
            return;
        }
        if (this.#zeroBlocks > 0)
            throw new TarFormatError(`a header follows the end-of-archive marker at byte ${this.#offset - BLOCK}`);
        checkChecksum(header, this.#offset - BLOCK);
        const type = header[156] === 0 ? '0' : String.fromCharCode(header[156] ?? 0x30);
        const pending = this.#pending;
        const extended = type === 'x' || type === 'g' || type === 'L' || type === 'K';
        // A pax `size` is the next member's; an extended header's own size is in its header.
        const size = (extended ? undefined : pending.size) ?? headerSize(header, this.#offset - BLOCK);
        const pad = (BLOCK - (size % BLOCK)) % BLOCK;
        // Extended headers: kept (bounded) and applied to the next member.
        if (extended) {
            this.#state = { kind: 'meta', type, left: size, pad, parts: [], oversize: size > MAX_META };
            if (size === 0)
                this.#onMeta(this.#state);
            return;
        }
        this.#pending = {};
        this.members++;
        const name = pending.path ?? ustarName(header);
        const member = pending.problem
            ? { name, type, size, problem: pending.problem }
            : { name, type, size };
        const sink = await this.#handler(member);
        this.#state = { kind: 'data', left: size, pad, sink };
        if (size === 0) {
            if (sink)
                await sink.end();
            this.#state = pad > 0 ? { kind: 'pad', left: pad } : { kind: 'header' };
        }
    }
    #onMeta(state) {
        this.#state = state.pad > 0 ? { kind: 'pad', left: state.pad } : { kind: 'header' };
        if (state.oversize) {
            if (state.type === 'x' || state.type === 'L')
                this.#pending.problem = `an extended header larger than ${MAX_META} bytes`;
            return;
        }
        const data = Buffer.concat(state.parts);
        if (state.type === 'L') {
            this.#pending.path = cString(data);
        }
        else if (state.type === 'x') {
            const records = paxRecords(data);
            if (records === undefined) {
                this.#pending.problem = 'a malformed pax header';
                return;
            }
            if (records.path !== undefined)
                this.#pending.path = records.path;
            if (records.size !== undefined) {
                if (!/^\d{1,16}$/.test(records.size) || !Number.isSafeInteger(Number(records.size))) {
                    throw new TarFormatError(`a pax header gives the size ${JSON.stringify(records.size.slice(0, 40))}`);
                }
                this.#pending.size = Number(records.size);
            }
        }
        // 'g' (global) and 'K' (long link target) say nothing we use.
    }
}
function describe(state) {
    switch (state.kind) {
        case 'header':
            return 'a header';
        case 'meta':
            return 'an extended header';
        case 'data':
            return `a member, ${state.left} bytes short`;
        case 'pad':
            return 'the padding after a member';
        case 'done':
            return 'nothing';
    }
}
function checkChecksum(header, at) {
    const stored = Number.parseInt(cString(header.subarray(148, 156)).trim() || 'x', 8);
    let unsigned = 0;
    let signed = 0;
    for (let i = 0; i < BLOCK; i++) {
        const byte = i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
        unsigned += byte;
        signed += byte > 127 ? byte - 256 : byte;
    }
    if (stored !== unsigned && stored !== signed) {
        throw new TarFormatError(`not a tar archive, or a damaged one (bad header checksum at byte ${at})`);
    }
}
/** Octal, or GNU base-256 (first byte 0x80) for sizes of 8 GiB and more. */
function headerSize(header, at) {
    const field = header.subarray(124, 136);
    if (((field[0] ?? 0) & 0x80) !== 0) {
        if (field[0] !== 0x80)
            throw new TarFormatError(`a negative or oversize member size at byte ${at}`);
        let value = 0;
        for (let i = 1; i < field.length; i++)
            value = value * 256 + (field[i] ?? 0);
        if (!Number.isSafeInteger(value))
            throw new TarFormatError(`an oversize member size at byte ${at}`);
        return value;
    }
    const text = cString(field).trim();
    if (!/^[0-7]*$/.test(text))
        throw new TarFormatError(`a malformed member size at byte ${at}`);
    return text === '' ? 0 : Number.parseInt(text, 8);
}
function ustarName(header) {
    const name = cString(header.subarray(0, 100));
    const ustar = header.toString('latin1', 257, 262) === 'ustar';
    const prefix = ustar ? cString(header.subarray(345, 500)) : '';
    return prefix ? `${prefix}/${name}` : name;
}
function cString(bytes) {
    const end = bytes.indexOf(0);
    return bytes.toString('utf8', 0, end < 0 ? bytes.length : end);
}
/** `<length> <key>=<value>\n` records; undefined when they do not add up. */
function paxRecords(data) {
    const out = {};
    let at = 0;
    while (at < data.length) {
        const space = data.indexOf(0x20, at);
        if (space < 0 || space - at > 20)
            return undefined;
        const length = Number(data.toString('latin1', at, space));
        if (!Number.isSafeInteger(length) || length <= space - at + 1 || at + length > data.length)
            return undefined;
        if (data[at + length - 1] !== 0x0a)
            return undefined;
        const record = data.toString('utf8', space + 1, at + length - 1);
        const eq = record.indexOf('=');
        if (eq <= 0)
            return undefined;
        out[record.slice(0, eq)] = record.slice(eq + 1);
        at += length;
    }
    return out;
}

;// CONCATENATED MODULE: ./src/sources/oci/paths.ts
/**
 * Paths inside a model's folder come from the artifact (a layer's annotation, a tar member's
 * name): untrusted. A path is accepted only when it names something strictly inside the folder
 * the same way on every system: relative, `/`-separated, no empty, `.` or `..` part, no
 * backslash or control character, parts of at most 255 bytes. Nothing is "cleaned" into shape:
 * a path that needs cleaning is refused, so what lands is exactly what the artifact says.
 */
const MAX_PART_BYTES = 255;
const MAX_PATH_BYTES = 4096;
/** Why `path` is refused, or undefined when it is a safe relative path. */
function unsafePathReason(path) {
    if (path === '')
        return 'it is empty';
    if (Buffer.byteLength(path) > MAX_PATH_BYTES)
        return `it is longer than ${MAX_PATH_BYTES} bytes`;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
    if (/[\u0000-\u001f\u007f]/.test(path))
        return 'it holds a control character';
    if (path.includes('\\'))
        return 'it holds a backslash';
    if (path.startsWith('/'))
        return 'it is absolute';
    for (const part of path.split('/')) {
        if (part === '')
            return 'it has an empty part (a doubled or trailing /)';
        if (part === '.' || part === '..')
            return `it has a "${part}" part`;
        if (Buffer.byteLength(part) > MAX_PART_BYTES)
            return `a part is longer than ${MAX_PART_BYTES} bytes`;
    }
    return undefined;
}
/**
 * A tar member's name as archivers write it (`./a/b`, `dir/`), brought to the form above; the
 * archive's own root (`.`, `./`) is `''`. The result still has to pass unsafePathReason.
 */
function memberPath(name) {
    let path = name;
    while (path.startsWith('./'))
        path = path.slice(2);
    if (path === '.')
        return '';
    return path.endsWith('/') ? path.replace(/\/+$/, '') : path;
}
/**
 * Every path of one folder, files and folders, so that no two entries claim one path and no
 * file sits where another entry needs a folder (`a` as a file, then `a/b`).
 */
class PathClaims {
    files = new Map();
    dirs = new Set();
    /** Claims a file path for `owner`; returns why not when it clashes. */
    file(path, owner) {
        const earlier = this.files.get(path);
        if (earlier !== undefined)
            return `${owner} and ${earlier} both write "${path}"`;
        if (this.dirs.has(path))
            return `${owner} writes "${path}", which is a folder of another entry`;
        for (const parent of parents(path)) {
            const file = this.files.get(parent);
            if (file !== undefined)
                return `${owner} writes "${path}" inside "${parent}", a file of ${file}`;
        }
        this.files.set(path, owner);
        for (const parent of parents(path))
            this.dirs.add(parent);
        return undefined;
    }
    /** Every folder the claimed paths need, parents before children. */
    folders() {
        return [...this.dirs].sort((a, b) => a.split('/').length - b.split('/').length);
    }
    /** Claims a folder path (a tar folder member). */
    dir(path, owner) {
        const file = this.files.get(path);
        if (file !== undefined)
            return `${owner} makes "${path}" a folder, but it is a file of ${file}`;
        for (const parent of parents(path)) {
            const other = this.files.get(parent);
            if (other !== undefined)
                return `${owner} makes "${path}" inside "${parent}", a file of ${other}`;
        }
        this.dirs.add(path);
        for (const parent of parents(path))
            this.dirs.add(parent);
        return undefined;
    }
}
/** `a/b/c` → `a`, `a/b`. */
function parents(path) {
    const parts = path.split('/');
    return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

;// CONCATENATED MODULE: ./src/sources/oci/extract.ts










/** Far beyond any model's file count; bounds the inodes one hostile layer can use. */
const MAX_MEMBERS = 100_000;
const MiB = 1024 * 1024;
const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = promises_.constants;
/**
 * Extracts a tar layer into the folder with the rules of a cache restore: only regular files and
 * folders, each at a path that stays inside the folder and is claimed by nothing else; links,
 * devices, `..`, absolute paths and anything the tar reader itself refuses fail the layer (a
 * model with a silently missing file is worse than one that fails). Files are created
 * exclusively without following links, hashed as they are written, mode 0644.
 */
async function extractLayer(options) {
    const files = [];
    let writing;
    let members = 0;
    const refuse = (name, why) => new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `${options.owner} holds ${JSON.stringify(name.slice(0, 200))}, which is refused: ${why}`);
    const handler = async (member) => {
        if (++members > MAX_MEMBERS)
            throw refuse(member.name, `the layer has more than ${MAX_MEMBERS} members`);
        if (member.problem)
            throw refuse(member.name, member.problem);
        const path = memberPath(member.name);
        if (member.type === '5') {
            if (path === '')
                return undefined;
            const why = unsafePathReason(path) ?? options.claims.dir(path, options.owner);
            if (why)
                throw refuse(member.name, why);
            await (0,promises_.mkdir)((0,external_node_path_.join)(options.root, path), { recursive: true, mode: 0o755 });
            return undefined;
        }
        if (member.type !== '0' && member.type !== '7') {
            throw refuse(member.name, `it is ${kindOf(member.type)}; only regular files and folders are extracted`);
        }
        const why = unsafePathReason(path) ?? options.claims.file(path, options.owner);
        if (why)
            throw refuse(member.name, why);
        const target = (0,external_node_path_.join)(options.root, path);
        await (0,promises_.mkdir)((0,external_node_path_.dirname)(target), { recursive: true, mode: 0o755 });
        const file = await (0,promises_.open)(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
        writing = file;
        const hash = (0,external_node_crypto_.createHash)('sha256');
        let size = 0;
        return {
            async write(chunk) {
                hash.update(chunk);
                size += chunk.length;
                for (let at = 0; at < chunk.length;) {
                    const { bytesWritten } = await file.write(chunk, at, chunk.length - at);
                    at += bytesWritten;
                }
            },
            async end() {
                writing = undefined;
                await file.close();
                files.push({ path, hex: hash.digest('hex'), size });
            },
        };
    };
    const source = (0,external_node_fs_.createReadStream)(options.blob, { highWaterMark: MiB });
    const reader = new TarReader(handler);
    try {
        if (options.compression === 'none') {
            await (0,external_node_stream_promises_.pipeline)(source, reader);
        }
        else {
            await (0,external_node_stream_promises_.pipeline)(source, decompressor(options.compression), capped(options.maxBytes, options.owner), reader);
        }
    }
    catch (error) {
        await writing?.close().catch(() => undefined);
        if (error instanceof errors/* ModelPullError */.Vy)
            throw error;
        throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `${options.owner} is not a readable tar archive: ${error.message}`, { cause: error });
    }
    return files;
}
function decompressor(compression) {
    return compression === 'gzip'
        ? (0,external_node_zlib_.createGunzip)({ chunkSize: MiB })
        : // Long-distance matching (`zstd --long`) needs a window up to zstd's 64-bit ceiling.
            (0,external_node_zlib_.createZstdDecompress)({ chunkSize: MiB, params: { [external_node_zlib_.constants.ZSTD_d_windowLogMax]: 31 } });
}
function capped(maxBytes, owner) {
    let total = 0;
    return new external_node_stream_.Transform({
        transform(chunk, _encoding, callback) {
            total += chunk.length;
            if (total > maxBytes) {
                callback(new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `${owner} expands to more than ${maxBytes} bytes; refused`));
                return;
            }
            callback(null, chunk);
        },
    });
}
function kindOf(type) {
    switch (type) {
        case '1':
            return 'a hard link';
        case '2':
            return 'a symbolic link';
        case '3':
        case '4':
            return 'a device';
        case '6':
            return 'a named pipe';
        default:
            return `a member of type "${type}"`;
    }
}

;// CONCATENATED MODULE: ./src/sources/oci/folder.ts











/** Linked or copied raw files keep the blob's bytes; an archive expands at most this much. */
const EXPANSION_FACTOR = 64;
const EXPANSION_SLACK = 64 * 1024 * 1024;
const folder_MAX_RECORD_BYTES = 64 * 1024 * 1024;
/** The record of a folder: a hidden sibling, so the folder holds exactly the model's files. */
function folder_recordPath(dir) {
    return (0,external_node_path_.join)((0,external_node_path_.dirname)(dir), `.${(0,external_node_path_.basename)(dir)}.files.json`);
}
/** A short name for a layer in messages: `layer 3 (sha256:0123456789ab…, …doc.v1.tar+zstd)`. */
function layerName(placement, index) {
    return `layer ${index + 1} (sha256:${placement.layer.hex.slice(0, 12)}…, ${placement.layer.mediaType})`;
}
/**
 * Checks every path the manifest states before anything is fetched: a bad or clashing path fails
 * the model at plan time. (Tar members are checked as they are read.)
 */
function checkPlacedPaths(placements, name) {
    const claims = new PathClaims();
    placements.forEach((p, i) => {
        if (p.kind !== 'file')
            return;
        const why = unsafePathReason(p.path) ?? claims.file(p.path, layerName(p, i));
        if (why) {
            throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `manifest of ${name} is invalid: ${layerName(p, i)} names the path ${JSON.stringify(p.path.slice(0, 200))}, which is refused: ${why}`);
        }
    });
}
/**
 * Builds the folder, or keeps the one in place when its record still holds; returns its files.
 * One builder at a time per folder (two lines naming one manifest, two jobs sharing oci-dir):
 * the others wait for its lease, then find its folder and keep it.
 */
async function commitFolder(spec, ctx) {
    const parent = (0,external_node_path_.dirname)(spec.dir);
    await (0,fs_dirs/* ensureDirs */.J)(parent);
    const lease = await (0,download_lease/* acquireLease */.ZZ)((0,external_node_path_.join)(parent, `.${(0,external_node_path_.basename)(spec.dir)}.lock`), `the folder ${spec.dir}`, {
        clock: ctx.clock,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        onWait: (holder) => ctx.log.info(`waiting for ${(0,download_lease/* describeHolder */.sG)(holder)} to finish ${spec.dir}`),
    });
    try {
        return await buildOrKeep(spec, parent);
    }
    finally {
        await lease.release();
    }
}
async function buildOrKeep(spec, parent) {
    const kept = await checkExisting(spec);
    if (kept)
        return kept;
    await removeAbandoned(parent, (0,external_node_path_.basename)(spec.dir));
    // mkdtemp makes it 0700: nobody else can plant a link inside while it is built.
    const temp = await (0,promises_.mkdtemp)((0,external_node_path_.join)(parent, `.${(0,external_node_path_.basename)(spec.dir)}.${process.pid}.`));
    try {
        const files = await build(spec, temp);
        await (0,promises_.chmod)(temp, 0o755);
        await swapInto(temp, spec.dir);
        await (0,atomic_write/* writeFileAtomic */.Zf)(folder_recordPath(spec.dir), JSON.stringify({ version: 1, files }), {
            mode: 0o644,
        });
        return files;
    }
    catch (error) {
        await (0,promises_.rm)(temp, { recursive: true, force: true });
        throw error;
    }
}
async function build(spec, root) {
    const claims = new PathClaims();
    const files = [];
    for (const [i, placement] of spec.placements.entries()) {
        const owner = layerName(placement, i);
        const blob = spec.blobPath(placement.layer.hex);
        if (placement.kind === 'file') {
            const why = claims.file(placement.path, owner);
            if (why)
                throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `the artifact is invalid: ${why}`);
            const target = (0,external_node_path_.join)(root, placement.path);
            await (0,promises_.mkdir)((0,external_node_path_.dirname)(target), { recursive: true, mode: 0o755 });
            await linkOrCopy(blob, target);
            files.push({ path: placement.path, hex: placement.layer.hex, size: placement.layer.size });
        }
        else {
            const extracted = await extractLayer({
                blob,
                compression: placement.compression,
                root,
                claims,
                owner,
                maxBytes: placement.layer.size * EXPANSION_FACTOR + EXPANSION_SLACK,
            });
            files.push(...extracted);
        }
    }
    await openFolders(root, claims);
    return files;
}
/** Folders made while building get 0755 whatever the umask (the consumer may be another user). */
async function openFolders(root, claims) {
    for (const dir of claims.folders())
        await (0,promises_.chmod)((0,external_node_path_.join)(root, dir), 0o755);
}
/** A hard link shares the verified blob's bytes at no cost; a copy where links are not possible. */
async function linkOrCopy(blob, target) {
    try {
        await (0,promises_.link)(blob, target);
    }
    catch (error) {
        const code = error.code;
        if (code !== 'EXDEV' &&
            code !== 'EPERM' &&
            code !== 'EMLINK' &&
            code !== 'ENOTSUP' &&
            code !== 'EOPNOTSUPP')
            throw error;
        await (0,promises_.copyFile)(blob, target, external_node_fs_.constants.COPYFILE_EXCL | external_node_fs_.constants.COPYFILE_FICLONE);
        await (0,promises_.chmod)(target, 0o644);
    }
}
/** Puts the new folder in place of whatever is there (a damaged or older build). */
async function swapInto(temp, dir) {
    try {
        await (0,promises_.rename)(temp, dir);
        return;
    }
    catch (error) {
        const code = error.code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR')
            throw error;
    }
    const old = `${temp}.old`;
    await (0,promises_.rename)(dir, old);
    await (0,promises_.rename)(temp, dir);
    await (0,promises_.rm)(old, { recursive: true, force: true });
}
/**
 * Folders a killed run left half-built (`.<hex>.<pid>.<random>`). Called under the folder's
 * lease: nobody else is building this folder now, so every such folder is abandoned.
 */
async function removeAbandoned(parent, name) {
    const prefix = `.${name}.`;
    for (const entry of await (0,promises_.readdir)(parent).catch(() => [])) {
        if (entry.startsWith(prefix) && !entry.endsWith('.files.json') && !entry.endsWith('.lock'))
            await (0,promises_.rm)((0,external_node_path_.join)(parent, entry), { recursive: true, force: true });
    }
}
/**
 * The files of a folder already in place, when its record is readable and every file still is
 * what it says: a raw layer's file is still the blob's inode (or has its size and hash), an
 * extracted file its size (and, with `verify: full`, its sha256). Anything else: rebuild.
 */
async function checkExisting(spec) {
    const info = await (0,promises_.lstat)(spec.dir).catch(() => undefined);
    if (!info?.isDirectory())
        return undefined;
    const record = parseRecord(await (0,safe_fs/* readSmall */.o5)(folder_recordPath(spec.dir), folder_MAX_RECORD_BYTES));
    if (!record)
        return undefined;
    const raw = new Map(spec.placements.flatMap((p) => (p.kind === 'file' ? [[p.path, p.layer.hex]] : [])));
    if ([...raw.keys()].some((path) => !record.files.some((f) => f.path === path)))
        return undefined;
    for (const file of record.files) {
        if (unsafePathReason(file.path))
            return undefined;
        const path = (0,external_node_path_.join)(spec.dir, file.path);
        const stat = await (0,promises_.lstat)(path).catch(() => undefined);
        if (!stat?.isFile() || stat.size !== file.size)
            return undefined;
        const blobHex = raw.get(file.path);
        if (blobHex !== undefined) {
            if (blobHex !== file.hex)
                return undefined;
            const blob = await (0,promises_.lstat)(spec.blobPath(blobHex)).catch(() => undefined);
            if (blob && blob.ino === stat.ino && blob.dev === stat.dev)
                continue;
        }
        else if (spec.verify === 'size') {
            continue;
        }
        if ((await (0,src_digest/* hashFile */.DC)(path, 'sha256')) !== file.hex)
            return undefined;
    }
    return [...record.files];
}
function parseRecord(bytes) {
    if (!bytes)
        return undefined;
    try {
        const doc = JSON.parse(bytes.toString('utf8'));
        const ok = doc.version === 1 &&
            Array.isArray(doc.files) &&
            doc.files.every((f) => typeof f?.path === 'string' &&
                typeof f.hex === 'string' &&
                (0,src_digest/* isSha256Hex */.P4)(f.hex) &&
                Number.isSafeInteger(f.size) &&
                f.size >= 0);
        return ok ? doc : undefined;
    }
    catch {
        return undefined;
    }
}

;// CONCATENATED MODULE: ./src/sources/oci/layout.ts








/**
 * The OCI image layout at `oci-dir` (docs/oci-artifacts.md, "Where models land"), which skopeo,
 * oras and containerd read:
 *   oci-layout                  {"imageLayoutVersion":"1.0.0"}
 *   index.json                  an image index; one entry per pulled reference, named by the
 *                               `org.opencontainers.image.ref.name` annotation
 *   blobs/sha256/<hex>          manifests, configs and layers, shared by every model
 * and beside it, ours: `models/` (one folder per model) and the engine's staging folder.
 */
const REF_NAME = 'org.opencontainers.image.ref.name';
const INDEX_TYPE = 'application/vnd.oci.image.index.v1+json';
const LAYOUT_FILE = '{"imageLayoutVersion":"1.0.0"}';
/** index.json grows by one entry per reference; far beyond any real store, small for memory. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;
function layout_blobPath(root, hex) {
    if (!(0,src_digest/* isSha256Hex */.P4)(hex))
        throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `not a sha256 digest: "${hex.slice(0, 80)}"`);
    return (0,external_node_path_.join)(root, 'blobs', 'sha256', hex);
}
/** The engine's staging folder: same filesystem as `blobs/`, outside it. */
function ingestDir(root) {
    return (0,external_node_path_.join)(root, '.model-pull-ingest');
}
/** The stored bytes of a blob when they hash to `hex` (a manifest or index kept from a pull). */
async function readVerifiedBlob(root, hex, limit) {
    const bytes = await (0,safe_fs/* readSmall */.o5)(layout_blobPath(root, hex), limit);
    return bytes && (0,src_digest/* sha256Hex */.fg)(bytes) === hex ? bytes : undefined;
}
/** Stores small verified bytes (a manifest) as a blob, unless the blob is already right. */
async function writeBlob(root, hex, bytes) {
    if ((0,src_digest/* sha256Hex */.fg)(bytes) !== hex)
        throw new errors/* ModelPullError */.Vy('ERR_DIGEST_MISMATCH', `refusing to store bytes as sha256:${hex}: they hash differently`);
    if (await readVerifiedBlob(root, hex, bytes.length))
        return;
    await (0,atomic_write/* writeFileAtomic */.Zf)(layout_blobPath(root, hex), bytes, { mode: 0o644, tempDir: ingestDir(root) });
}
/**
 * Names `descriptor` `refName` in index.json (replacing an older entry of that name), creating
 * the layout files on first use. Several processes may share the folder: the read-change-write
 * happens under a lease, and the file is replaced whole.
 */
async function addReference(root, refName, descriptor, ctx) {
    await (0,fs_dirs/* ensureDirs */.J)((0,external_node_path_.join)(root, 'blobs', 'sha256'));
    await (0,fs_dirs/* ensureDirs */.J)(ingestDir(root));
    const lease = await (0,download_lease/* acquireLease */.ZZ)((0,external_node_path_.join)(ingestDir(root), 'index.json.lock'), `the index of ${root}`, {
        clock: ctx.clock,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        onWait: (holder) => ctx.log.info(`waiting for ${(0,download_lease/* describeHolder */.sG)(holder)} to update ${(0,external_node_path_.join)(root, 'index.json')}`),
    });
    try {
        const layoutFile = (0,external_node_path_.join)(root, 'oci-layout');
        if (await (0,promises_.lstat)(layoutFile).catch(() => undefined))
            checkLayoutFile(layoutFile, await (0,safe_fs/* readSmall */.o5)(layoutFile, 4096));
        else
            await (0,atomic_write/* writeFileAtomic */.Zf)(layoutFile, LAYOUT_FILE, { mode: 0o644 });
        const index = await readIndex((0,external_node_path_.join)(root, 'index.json'));
        const manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== refName);
        manifests.push({
            mediaType: descriptor.mediaType,
            ...(descriptor.artifactType ? { artifactType: descriptor.artifactType } : {}),
            digest: `sha256:${descriptor.hex}`,
            size: descriptor.size,
            annotations: { [REF_NAME]: refName },
        });
        const text = JSON.stringify({ ...index, schemaVersion: 2, mediaType: INDEX_TYPE, manifests });
        await (0,atomic_write/* writeFileAtomic */.Zf)((0,external_node_path_.join)(root, 'index.json'), text, { mode: 0o644 });
    }
    finally {
        await lease.release();
    }
}
function checkLayoutFile(path, bytes) {
    let version;
    try {
        version = JSON.parse(bytes?.toString('utf8') ?? '')
            .imageLayoutVersion;
    }
    catch {
        version = undefined;
    }
    if (version !== '1.0.0') {
        throw new errors/* ModelPullError */.Vy('ERR_FILESYSTEM', `${path} is not an OCI image layout version 1.0.0 marker; oci-dir must be an OCI layout or a new folder`);
    }
}
/** index.json as another tool (or process) left it: an object with a `manifests` array, or none yet. */
async function readIndex(path) {
    const info = await (0,promises_.lstat)(path).catch(() => undefined);
    if (!info)
        return { schemaVersion: 2, manifests: [] };
    const bytes = info.isFile() ? await (0,safe_fs/* readSmall */.o5)(path, MAX_INDEX_BYTES) : undefined;
    let doc;
    try {
        doc = bytes ? JSON.parse(bytes.toString('utf8')) : undefined;
    }
    catch {
        doc = undefined;
    }
    const manifests = doc?.manifests;
    if (!bytes || typeof doc !== 'object' || doc === null || Array.isArray(doc) || !Array.isArray(manifests)) {
        throw new errors/* ModelPullError */.Vy('ERR_FILESYSTEM', `${path} is not an OCI image index; move it away (the models in ${(0,external_node_path_.join)(path, '..', 'models')} stay usable)`);
    }
    return { ...doc, manifests };
}

;// CONCATENATED MODULE: ./src/sources/oci/select.ts



/** Manifests of an index we open to look for the model when none announces itself. */
const MAX_INSPECTED = 16;
const MANIFEST_TYPES = new Set([registry_manifest/* MediaTypes */.mI.OciManifest, registry_manifest/* MediaTypes */.mI.DockerManifest]);
/**
 * The model manifest of an image index (docs/oci-artifacts.md, "Indexes"): the one entry that is
 * a ModelPack or Docker Model Runner manifest. Entries that announce it (`artifactType`) are
 * taken at their word and checked once loaded; otherwise each manifest entry is opened (nested
 * indexes and attestations are not models). None, or more than one, fails with a list of what
 * the index offers, so the user can pin the one they mean.
 */
async function pickModel(index, name, load) {
    const manifests = index.manifests.filter((e) => MANIFEST_TYPES.has(e.mediaType) && !isAttestation(e));
    const announced = manifests.filter(announcesModel);
    const candidates = announced.length > 0 ? announced : manifests;
    if (candidates.length > MAX_INSPECTED) {
        throw choose(index, name, `it lists ${candidates.length} manifests and none announces a model`);
    }
    const models = [];
    for (const entry of candidates) {
        const loaded = await load(entry);
        if (artifactFormat(loaded.manifest) !== 'unknown')
            models.push({ entry, ...loaded });
    }
    if (models.length === 1)
        return models[0];
    if (models.length === 0)
        throw choose(index, name, 'none of its entries is a model manifest');
    throw choose(index, name, `it holds ${models.length} model manifests (${models.map((m) => `sha256:${m.entry.hex}`).join(', ')})`);
}
/** BuildKit stores provenance as manifests for the platform unknown/unknown. */
function isAttestation(entry) {
    return (entry.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
        (entry.platform?.os === 'unknown' && entry.platform?.architecture === 'unknown'));
}
function choose(index, name, why) {
    const offers = index.manifests.map(describeEntry).join('; ');
    return new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `${name} is an image index, and ${why}; it offers: ${offers || 'nothing'}. Pin the model's manifest with @sha256:<digest>`);
}
/** `sha256:<hex> (mediaType, artifactType …, linux/amd64)` */
function describeEntry(entry) {
    const platform = entry.platform
        ? [entry.platform.os, entry.platform.architecture, entry.platform.variant]
            .filter((p) => typeof p === 'string')
            .join('/')
        : '';
    const details = [
        entry.mediaType,
        ...(entry.artifactType ? [`artifactType ${entry.artifactType}`] : []),
        ...(platform ? [platform] : []),
    ];
    return `sha256:${entry.hex} (${details.join(', ')})`;
}

;// CONCATENATED MODULE: ./src/sources/oci/source.ts













/** The folder of one model: `models/<host>/<repository>/<manifest hex>`. */
function modelDir(root, ref, hex) {
    return (0,external_node_path_.join)(root, 'models', ref.host, ...ref.repository.split('/'), hex);
}
/**
 * Resolves `oci:` references: CNCF ModelPack and Docker Model Runner artifacts (directly or
 * behind an image index) from any OCI distribution registry, into the OCI image layout at
 * `oci-dir` plus one folder per model (docs/oci-artifacts.md).
 */
function createOciSource(options) {
    const { root } = options;
    // Each line's repository, through the user's registry-mirror for its host when there is one.
    const routeFor = repositoryRoutes(options, (ref) => ref.repository);
    /** Manifest or index bytes by digest: the layout's own copy when it is there, else the registry. */
    const byDigest = async (ref, hex, ctx) => (await readVerifiedBlob(root, hex, registry_manifest/* MAX_MANIFEST_BYTES */.ZJ)) ??
        routeFor(ref).manifest(ctx, `sha256:${hex}`, {
            name: ociName(ref),
            expectHex: hex,
            accept: registry_manifest/* MANIFEST_OR_INDEX_ACCEPT */.ED,
        });
    return {
        async identify(ref, ctx) {
            const name = ociName(ref);
            const bytes = ref.pin !== undefined
                ? await byDigest(ref, ref.pin, ctx)
                : await routeFor(ref).manifest(ctx, ref.tag, {
                    name,
                    accept: registry_manifest/* MANIFEST_OR_INDEX_ACCEPT */.ED,
                });
            const doc = (0,registry_manifest/* parseManifestOrIndex */.yA)(bytes, name);
            if (doc.kind === 'manifest')
                return identityOf(ref, doc, (0,src_digest/* sha256Hex */.fg)(bytes));
            const chosen = await pickModel(doc, name, async (entry) => {
                const entryBytes = await byDigest(ref, entry.hex, ctx);
                return { bytes: entryBytes, manifest: (0,registry_manifest/* parseImageManifest */.Sw)(entryBytes, name) };
            });
            ctx.log.info(`${ref.line}: the index ${name} names the model manifest sha256:${chosen.entry.hex}`);
            return identityOf(ref, chosen.manifest, chosen.entry.hex, doc.text);
        },
        async plan(ref, identity, ctx) {
            const { hex, index } = recorded(ref, identity);
            const manifest = await manifestFor(ref, identity, hex, () => byDigest(ref, hex, ctx));
            const route = routeFor(ref).blobs(hex, ociName(ref));
            return planEntry(ref, identity, hex, manifest, index, options, route, ctx, routeFor(ref).mirrored);
        },
    };
}
function identityOf(ref, manifest, hex, index) {
    return {
        source: 'oci',
        ref: ref.line,
        name: ociName(ref),
        pin: `sha256:${hex}`,
        contentDigest: hex,
        // The manifest (and the index it came through) let plan() and a lock file skip requests;
        // plan() checks their digests again.
        detail: { manifest: manifest.text, ...(index === undefined ? {} : { index }) },
    };
}
/**
 * The manifest digest of an identity from identify() or a lock file, once it is known to name
 * the line's artifact and pin. A pin may name the index the manifest was chosen from: then the
 * recorded index must hash to the pin and list the manifest.
 */
function recorded(ref, identity) {
    const name = ociName(ref);
    const hex = recordedManifestHex(identity, name);
    const index = identity.detail?.index;
    if (index !== undefined && typeof index !== 'string')
        throw recordedIdentityError(identity, 'its recorded index is not text');
    if (ref.pin === undefined || ref.pin === hex)
        return { hex, ...(index === undefined ? {} : { index }) };
    if (index !== undefined && (0,src_digest/* sha256Hex */.fg)(index) === ref.pin) {
        const doc = (0,registry_manifest/* parseManifestOrIndex */.yA)(Buffer.from(index, 'utf8'), name);
        if (doc.kind === 'index' && doc.manifests.some((e) => e.hex === hex))
            return { hex, index };
    }
    throw recordedIdentityError(identity, `it is pinned to ${identity.pin}, the line to sha256:${ref.pin}`);
}
/** The manifest bytes for a known digest: the recorded text, else the layout, else the registry. */
async function manifestFor(ref, identity, hex, fetch) {
    const name = ociName(ref);
    const recorded = recordedManifest(identity, name, hex);
    if (recorded)
        return (0,registry_manifest/* parseImageManifest */.Sw)(recorded, name);
    return (0,registry_manifest/* parseImageManifest */.Sw)(await fetch(), name);
}
function planEntry(ref, identity, hex, manifest, index, options, route, ctx, 
/** Blobs may come from a registry-mirror (see BlobSpec.probeRanges). */
probeRanges) {
    const { root } = options;
    const name = ociName(ref);
    const refused = notAModel(manifest);
    if (refused)
        throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `${name} cannot be pulled as a model: ${refused}`);
    const { placements } = layoutOf(manifest);
    checkPlacedPaths(placements, name);
    placements.forEach((p, i) => {
        if (p.kind === 'blob')
            ctx.log.warning(`${ref.line}: ${layerName(p, i)} is kept as a blob in the OCI layout only (${p.why})`);
    });
    const dir = modelDir(root, ref, hex);
    const blobs = uniqueBlobs([manifest.config, ...manifest.layers]);
    const gguf = singleGguf(placements);
    const inFolder = placements.filter((p) => p.kind !== 'blob');
    // Layers kept only as blobs are listed too, so the output shows every byte that was pulled.
    const blobsOnly = placements.flatMap((p) => p.kind === 'blob'
        ? [{ path: layout_blobPath(root, p.layer.hex), digest: `sha256:${p.layer.hex}`, size: p.layer.size }]
        : []);
    // Files known before the pull (raw layers); commit() returns them with what the archives hold.
    const files = [
        ...inFolder.flatMap((p) => p.kind === 'file'
            ? [{ path: (0,external_node_path_.join)(dir, p.path), digest: `sha256:${p.layer.hex}`, size: p.layer.size }]
            : []),
        ...blobsOnly,
    ];
    const manifestBytes = Buffer.from(manifest.text, 'utf8');
    return {
        identity: { ...identity, name, detail: { ...identity.detail, manifest: manifest.text } },
        path: gguf ? (0,external_node_path_.join)(dir, gguf.path) : dir,
        size: manifest.totalSize,
        files,
        blobs: blobs.map((d) => (0,session/* registryBlob */.L)(route, ctx, d, {
            label: `${ref.line} ${d === manifest.config ? 'config' : source_kindOf(d)}`,
            target: layout_blobPath(root, d.hex),
            ingestDir: ingestDir(root),
            probeRanges,
        })),
        // Blobs only: the manifest, the folder and the index entry are written by commit() from
        // verified blobs and the identity's bytes.
        cachePaths: blobs.map((d) => layout_blobPath(root, d.hex)),
        async commit() {
            await writeBlob(root, hex, manifestBytes);
            if (index !== undefined)
                await writeBlob(root, (0,src_digest/* sha256Hex */.fg)(index), Buffer.from(index, 'utf8'));
            const placed = await commitFolder({ dir, placements: inFolder, blobPath: (h) => layout_blobPath(root, h), verify: options.verify }, ctx);
            const all = [...placed.map((f) => fileOf(dir, f)), ...blobsOnly];
            await addReference(root, name, {
                mediaType: manifest.mediaType ?? registry_manifest/* MediaTypes */.mI.OciManifest,
                hex,
                size: manifestBytes.length,
                ...(manifest.artifactType ? { artifactType: manifest.artifactType } : {}),
            }, ctx);
            return { files: all };
        },
    };
}
function fileOf(dir, file) {
    return { path: (0,external_node_path_.join)(dir, file.path), digest: `sha256:${file.hex}`, size: file.size };
}
/** A layer listed twice (one license under two names) is fetched once. */
function uniqueBlobs(all) {
    const byHex = new Map();
    for (const d of all)
        if (!byHex.has(d.hex))
            byHex.set(d.hex, d);
    return [...byHex.values()];
}
/** `weight.v1.raw`, `gguf.v3`, …: the end of the media type, for progress labels. */
function source_kindOf(d) {
    const m = /^application\/vnd\.(?:cncf\.model|docker\.ai)\.(.+)$/.exec(d.mediaType);
    return m ? m[1] : d.mediaType;
}

;// CONCATENATED MODULE: ./src/sources/oci/verify.ts










/** index.json beyond this is not ours to read whole (the layout module's own bound). */
const verify_MAX_INDEX_BYTES = 64 * 1024 * 1024;
const verify_MAX_RECORD_BYTES = 64 * 1024 * 1024;
/**
 * Re-hashes `oci-dir` (docs/oci-artifacts.md, "Where models land"): every reference in
 * index.json must name a manifest blob with its digest, and every blob that manifest names its
 * size and sha256; every model folder with a record must hold each recorded file with its size
 * and sha256. A damaged model is named by the `oci:` line that pulls it again.
 */
async function verifyOciDir(root) {
    const checker = new Checker();
    const named = await references(root, checker);
    for (const entry of named) {
        const model = `oci:${entry.name}`;
        const manifestFile = layout_blobPath(root, entry.hex);
        const problem = await checker.problem(manifestFile, { algorithm: 'sha256', hex: entry.hex }, entry.size);
        if (problem) {
            checker.damaged.push({ model, path: manifestFile, problem, line: model });
            continue;
        }
        let blobs = [];
        try {
            const doc = (0,registry_manifest/* parseManifestOrIndex */.yA)((await (0,safe_fs/* readSmall */.o5)(manifestFile, registry_manifest/* MAX_MANIFEST_BYTES */.ZJ)), entry.name);
            blobs = doc.kind === 'manifest' ? [doc.config, ...doc.layers] : [...doc.manifests];
        }
        catch (error) {
            checker.damaged.push({ model, path: manifestFile, problem: (0,errors/* describeError */.Uc)(error), line: model });
        }
        for (const blob of blobs) {
            const path = layout_blobPath(root, blob.hex);
            const bad = await checker.problem(path, { algorithm: 'sha256', hex: blob.hex }, blob.size);
            if (bad)
                checker.damaged.push({ model, path, problem: bad, line: model });
        }
    }
    await verifyFolders(root, checker, named);
    return checker.report();
}
/** The named entries of index.json; an unreadable index is itself the damage. */
async function references(root, checker) {
    const path = (0,external_node_path_.join)(root, 'index.json');
    if (!(await (0,promises_.lstat)(path).catch(() => undefined)))
        return [];
    let manifests;
    try {
        manifests = JSON.parse((await (0,safe_fs/* readSmall */.o5)(path, verify_MAX_INDEX_BYTES))?.toString('utf8') ?? '').manifests;
    }
    catch {
        manifests = undefined;
    }
    if (!Array.isArray(manifests)) {
        checker.damaged.push({ model: root, path, problem: 'not an OCI image index', line: '' });
        return [];
    }
    return manifests.flatMap((m) => {
        const name = m?.annotations?.[REF_NAME];
        const hex = typeof m?.digest === 'string' && m.digest.startsWith('sha256:') ? m.digest.slice(7) : '';
        if (typeof name !== 'string' || !(0,src_digest/* isSha256Hex */.P4)(hex) || !Number.isSafeInteger(m.size))
            return [];
        return [{ name, hex, size: m.size }];
    });
}
/**
 * Each `models/…/.<hex>.files.json` record against the folder `models/…/<hex>` beside it. A
 * damaged folder is named by the reference that pulled it (so one model gets one repair line),
 * else by its repository and manifest digest.
 */
async function verifyFolders(root, checker, named) {
    const models = (0,external_node_path_.join)(root, 'models');
    for (const record of await walk(models)) {
        const m = /^\.([0-9a-f]{64})\.files\.json$/.exec((0,external_node_path_.basename)(record));
        if (!m)
            continue;
        const dir = (0,external_node_path_.join)((0,external_node_path_.dirname)(record), m[1]);
        if (folder_recordPath(dir) !== record)
            continue;
        const repository = (0,external_node_path_.relative)(models, (0,external_node_path_.dirname)(record)).split(external_node_path_.sep).join('/');
        const reference = named.find((r) => r.hex === m[1] && repositoryOf(r.name) === repository);
        const model = `oci:${reference ? reference.name : `${repository}@sha256:${m[1]}`}`;
        let files;
        try {
            files = JSON.parse((await (0,safe_fs/* readSmall */.o5)(record, verify_MAX_RECORD_BYTES))?.toString('utf8') ?? '').files;
            if (!Array.isArray(files))
                throw new Error('no file list');
        }
        catch {
            checker.damaged.push({ model, path: record, problem: 'an unreadable record', line: model });
            continue;
        }
        for (const file of files) {
            if (typeof file?.path !== 'string' || unsafePathReason(file.path) || !(0,src_digest/* isSha256Hex */.P4)(file.hex)) {
                checker.damaged.push({
                    model,
                    path: record,
                    problem: 'a record entry that is not a file of the folder',
                    line: model,
                });
                continue;
            }
            const path = (0,external_node_path_.join)(dir, file.path);
            const problem = await checker.problem(path, { algorithm: 'sha256', hex: file.hex }, file.size);
            if (problem)
                checker.damaged.push({ model, path, problem, line: model });
        }
    }
}
/** `host/team/model` of a reference name (`host/team/model:tag`, `host/team/model@sha256:…`). */
function repositoryOf(name) {
    const at = name.indexOf('@');
    const base = at >= 0 ? name.slice(0, at) : name;
    const colon = base.lastIndexOf(':');
    return colon > base.lastIndexOf('/') ? base.slice(0, colon) : base;
}

;// CONCATENATED MODULE: ./src/sources/oci/index.ts




const OCI_DIR = 'oci-dir';
/**
 * `oci:[host/]repository[:tag][@sha256:…]`: a CNCF ModelPack or Docker Model Runner artifact
 * from any OCI registry (Docker Hub when no host is written), into an OCI image layout plus one
 * folder per model at `oci-dir`.
 */
const ociSource = {
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
            path: settings.sourceOptions[OCI_DIR],
            input: OCI_DIR,
            verify: { label: 'OCI layout', check: verifyOciDir },
        },
    ],
    phases: { resolving: 'resolving manifest', writing: 'writing model folder' },
    // Docker's normal form: docker.io/library/x:latest is the line `oci:x` (and `oci:docker.io/x`).
    canonical: (ref) => `${OCI_PREFIX}${ref.scheme === 'http' ? 'http://' : ''}${ociName(ref)}`,
    create: (settings) => createOciSource({
        // The settings module fills every declared option, defaults included.
        root: settings.sourceOptions[OCI_DIR],
        verify: settings.verify,
        ...(0,client/* registryOptions */._)(settings),
    }),
};

;// CONCATENATED MODULE: ./src/sources/ollama/manifest.ts

/** The layer that holds the GGUF weights (docs/registries.md, "Ollama's registry and names"). */
const OLLAMA_MODEL_LAYER = 'application/vnd.ollama.image.model';
/**
 * An image manifest (not an index) with a config and at least one layer, validated before
 * anything in it is used in a path or a URL, and with no digest listed twice: the store keeps one
 * file per digest, so a repeat can only be a broken or hostile manifest.
 */
function parseManifest(bytes, name) {
    const manifest = (0,registry_manifest/* parseImageManifest */.Sw)(bytes, name);
    const seen = new Map([[manifest.config.hex, 'the config']]);
    manifest.layers.forEach((layer, i) => {
        const earlier = seen.get(layer.hex);
        if (earlier)
            throw (0,registry_manifest/* badManifest */.FC)(name, `layer ${i + 1} repeats the digest of ${earlier} (sha256:${layer.hex})`);
        seen.set(layer.hex, `layer ${i + 1}`);
    });
    return manifest;
}
/** The weights: the `model` layer; a manifest without one (an adapter-only or OCI artifact) the largest. */
function weightsLayer(manifest) {
    const model = manifest.layers.find((l) => l.mediaType === OLLAMA_MODEL_LAYER);
    if (model)
        return model;
    return manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
}
/** `model`, `template`, … for Ollama layers; the media type otherwise. For labels. */
function manifest_layerKind(mediaType) {
    const prefix = 'application/vnd.ollama.image.';
    return mediaType.startsWith(prefix) ? mediaType.slice(prefix.length) : mediaType;
}

;// CONCATENATED MODULE: ./src/sources/ollama/mirror.ts






/**
 * Ollama models go to a registry as they are: the same manifest bytes (so the same digest where
 * the registry keeps them verbatim), the same layers and media types, under
 * `<host>/<namespace>/<model>:<tag>`, which is all an Ollama name can hold (docs/registries.md,
 * "Ollama's registry and names"). A prefix with one path part is that namespace; a bare host
 * keeps the source's namespace.
 */
const ollamaMirror = {
    target(ref, line, prefix) {
        const parts = prefix.path === '' ? [] : prefix.path.split('/');
        if (parts.length > 1) {
            throw (0,refs_line/* badLine */.mV)(line, `Ollama names hold one namespace (host/namespace/model:tag), so Ollama models can go to ${prefix.host} or ${prefix.host}/${parts[0]}, not under ${prefix.text}`);
        }
        const namespace = parts.length ? [] : [(0,registry_prefix/* repositoryPart */.mi)(ref.namespace, 'namespace', line)];
        return {
            repository: (0,registry_prefix/* repositoryUnder */.vt)(prefix, ...namespace, (0,registry_prefix/* repositoryPart */.mi)(ref.model, 'model', line)),
            origin: `${ref.host}/${ref.namespace}/${ref.model}`,
        };
    },
    async artifact(ref, model, target, settings) {
        const text = model.identity.detail?.manifest;
        if (typeof text !== 'string')
            throw new Error(`${ref.line}: the pull left no manifest to push`);
        const bytes = Buffer.from(text, 'utf8');
        if ((0,src_digest/* sha256Hex */.fg)(bytes) !== model.identity.contentDigest) {
            throw new errors/* ModelPullError */.Vy('ERR_DIGEST_MISMATCH', `${ref.line}: the manifest to push is not the one pulled (sha256:${model.identity.contentDigest})`);
        }
        const manifest = parseManifest(bytes, model.identity.name);
        const paths = new Map(model.output.files.map((f) => [f.digest, f.path]));
        const blobs = [manifest.config, ...manifest.layers].map((d) => {
            const path = paths.get(`sha256:${d.hex}`);
            if (!path)
                throw new Error(`${ref.line}: blob sha256:${d.hex} was not pulled`);
            const kind = d === manifest.config ? 'config' : manifest_layerKind(d.mediaType);
            return { hex: d.hex, size: d.size, path, label: `${ref.line} ${kind}` };
        });
        return {
            blobs,
            manifest: { bytes, mediaType: manifest.mediaType ?? registry_manifest/* MediaTypes */.mI.DockerManifest },
            references: [ref.tag],
            name: (0,registry_prefix/* nameUnder */.c9)(settings.mirrorTo, target.repository, ref.tag),
        };
    },
};

;// CONCATENATED MODULE: ./src/sources/ollama/ref.ts


const OLLAMA_PREFIX = 'ollama:';
const DEFAULTS = {
    host: 'registry.ollama.ai',
    namespace: 'library',
    tag: 'latest',
};
/**
 * Ollama's per-part rules (docs/registries.md, "Ollama's registry and names"): every part starts with a letter, digit or `_`;
 * the host may also hold `.`, `-`, `_`, `:` (a port) and be 350 long; a namespace holds no `.`;
 * model and tag may hold `.`, `-`, `_`; namespace, model and tag are at most 80 long.
 */
const PARTS = {
    host: { max: 350, rest: /^[A-Za-z0-9_.:-]*$/, allowed: 'letters, digits, _, -, . and :' },
    namespace: { max: 80, rest: /^[A-Za-z0-9_-]*$/, allowed: 'letters, digits, _ and -' },
    model: { max: 80, rest: /^[A-Za-z0-9_.-]*$/, allowed: 'letters, digits, _, - and .' },
    tag: { max: 80, rest: /^[A-Za-z0-9_.-]*$/, allowed: 'letters, digits, _, - and .' },
};
/** Parses the reference of an `ollama:` line; every failure quotes the line and says why. */
function parseOllamaRef(parts) {
    const { line } = parts;
    (0,refs_line/* onlyOptions */.Lg)(parts, []);
    if (!parts.reference.startsWith(OLLAMA_PREFIX)) {
        throw (0,refs_line/* badLine */.mV)(line, 'expected a reference starting with ollama:');
    }
    const name = parts.reference.slice(OLLAMA_PREFIX.length);
    if (name === '')
        throw (0,refs_line/* badLine */.mV)(line, 'the model name is missing after ollama:');
    const { scheme, name: rest, tag, pin } = cutReference(line, name);
    if (tag === '')
        throw (0,refs_line/* badLine */.mV)(line, 'the tag after ":" is empty');
    const segments = rest.split('/');
    if (segments.length > 3)
        throw (0,refs_line/* badLine */.mV)(line, 'too many "/": expected [host/][namespace/]model[:tag]');
    if (segments.some((p) => p === '')) {
        throw (0,refs_line/* badLine */.mV)(line, 'empty part between "/": expected [host/][namespace/]model[:tag]');
    }
    const model = segments.pop();
    const namespace = segments.pop();
    const host = segments.pop();
    if (scheme && host === undefined) {
        throw (0,refs_line/* badLine */.mV)(line, 'an explicit scheme needs a host: scheme://host/namespace/model[:tag]');
    }
    const ref = {
        line,
        ...(scheme ? { scheme } : {}),
        host: host ?? DEFAULTS.host,
        namespace: namespace ?? DEFAULTS.namespace,
        model,
        tag: tag ?? DEFAULTS.tag,
        ...(pin === undefined ? {} : { pin }),
    };
    for (const kind of ['host', 'namespace', 'model', 'tag'])
        checkPart(line, kind, ref[kind]);
    checkAddress(line, ref);
    return ref;
}
function checkPart(line, kind, value) {
    const rule = PARTS[kind];
    if (value.length > rule.max) {
        throw (0,refs_line/* badLine */.mV)(line, `${kind} "${registry_reference_clip(value)}" is longer than ${rule.max} characters`);
    }
    if (!/^[A-Za-z0-9_]/.test(value)) {
        throw (0,refs_line/* badLine */.mV)(line, `${kind} "${registry_reference_clip(value)}" must start with a letter, a digit or _`);
    }
    if (!rule.rest.test(value.slice(1))) {
        throw (0,refs_line/* badLine */.mV)(line, `${kind} "${registry_reference_clip(value)}" may only contain ${rule.allowed}`);
    }
}
/**
 * Ollama accepts names such as `host:https/ns/model` that no URL can reach; refusing them here
 * keeps the promise that a bad line fails before any request.
 */
function checkAddress(line, ref) {
    try {
        new URL(`${ref.scheme ?? 'https'}://${ref.host}/`);
    }
    catch {
        throw (0,refs_line/* badLine */.mV)(line, `host "${registry_reference_clip(ref.host)}" is not a network address (expected host or host:port)`);
    }
}
/** `host/namespace/model:tag`, the name Ollama lists and the `name` of the model's report. */
function ollamaName(ref) {
    return `${ref.host}/${ref.namespace}/${ref.model}:${ref.tag}`;
}
/**
 * `ollama:host/namespace/model:tag[@sha256:…]`, Ollama's defaults written out; a scheme only
 * when the line asks for plain `http://` (https is what a bare host means).
 */
function canonicalOllamaLine(ref) {
    const scheme = ref.scheme === 'http' ? 'http://' : '';
    const pin = ref.pin === undefined ? '' : `@sha256:${ref.pin}`;
    return `${OLLAMA_PREFIX}${scheme}${ollamaName(ref)}${pin}`;
}
/** `namespace/model`, the repository path of the distribution API. */
function ref_repositoryOf(ref) {
    return `${ref.namespace}/${ref.model}`;
}

;// CONCATENATED MODULE: ./src/layouts/ollama.ts








/**
 * Ollama's store (docs/layouts.md, "Ollama's store"):
 *   <root>/blobs/sha256-<hex>                          every layer and the config, 0644
 *   <root>/manifests/<host>/<namespace>/<model>/<tag>  the manifest bytes exactly as served
 * Folders are 0755. Partial data never goes inside `blobs/`, because the server deletes names
 * there that are not digests; our staging folder sits beside it and Ollama never scans it.
 */
const INGEST_FOLDER = '.model-pull-ingest';
function ollama_blobPath(root, hex) {
    if (!(0,src_digest/* isSha256Hex */.P4)(hex))
        throw new errors/* ModelPullError */.Vy('ERR_BAD_MANIFEST', `not a sha256 digest: "${hex.slice(0, 80)}"`);
    return (0,external_node_path_.join)(root, 'blobs', `sha256-${hex}`);
}
/** The manifest file; the name parts were validated by the reference parser (no `/`, no `..`). */
function manifestPath(root, name) {
    return (0,external_node_path_.join)(root, 'manifests', name.host, name.namespace, name.model, name.tag);
}
/** The engine's staging folder: same filesystem as `blobs/` (atomic rename), outside it. */
function ollama_ingestDir(root) {
    return (0,external_node_path_.join)(root, INGEST_FOLDER);
}
/** The stored manifest bytes, or undefined when there is none. */
async function readStoredManifest(root, name) {
    // The store is shared: a planted link, FIFO or endless file reads as no manifest.
    return (0,safe_fs/* readSmall */.o5)(manifestPath(root, name), registry_manifest/* MAX_MANIFEST_BYTES */.ZJ);
}
/**
 * Makes verified blobs a model Ollama lists and runs: every blob present at its size, 0644, mtime
 * now (Ollama prunes unreferenced blobs older than an hour at start; a blob restored from a cache
 * carries an old mtime, and until the manifest lands it is unreferenced), then the manifest,
 * last, through a temporary file and a rename, so a reader never sees half a manifest and a
 * manifest never names a blob that is not there.
 */
async function commitOllamaModel(root, name, manifest, blobs, now = new Date()) {
    await (0,fs_dirs/* ensureDirs */.J)((0,external_node_path_.join)(root, 'blobs'));
    for (const blob of blobs) {
        const path = ollama_blobPath(root, blob.hex);
        let size;
        try {
            size = (await (0,promises_.stat)(path)).size;
        }
        catch {
            throw new errors/* ModelPullError */.Vy('ERR_NOT_FOUND', `blob ${path} is missing; cannot write the manifest of ${label(name)}`);
        }
        if (size !== blob.size) {
            throw new errors/* ModelPullError */.Vy('ERR_SIZE_MISMATCH', `blob ${path} has ${size} bytes, the manifest of ${label(name)} says ${blob.size}`);
        }
        await (0,promises_.chmod)(path, 0o644);
        await (0,promises_.utimes)(path, now, now);
    }
    // The temporary name lives in our staging folder: Ollama lists every file under manifests/.
    await (0,atomic_write/* writeFileAtomic */.Zf)(manifestPath(root, name), manifest, { mode: 0o644, tempDir: ollama_ingestDir(root) });
}
function label(name) {
    return `${name.host}/${name.namespace}/${name.model}:${name.tag}`;
}

;// CONCATENATED MODULE: ./src/sources/ollama/source.ts








/** Resolves `ollama:` references against Ollama's registry or any OCI-distribution registry. */
function createOllamaSource(options) {
    // Each line's repository, through the user's registry-mirror for its host when there is one.
    const routeFor = repositoryRoutes(options, ref_repositoryOf);
    return {
        async identify(ref, ctx) {
            // A pin whose manifest is already in the store needs no request at all (offline reruns).
            if (ref.pin !== undefined) {
                const stored = await readStoredManifest(options.modelsRoot, ref);
                if (stored && (0,src_digest/* sha256Hex */.fg)(stored) === ref.pin)
                    return source_identityOf(ref, parseManifest(stored, ollamaName(ref)), ref.pin);
            }
            const bytes = await routeFor(ref).manifest(ctx, ref.pin ? `sha256:${ref.pin}` : ref.tag, {
                name: ollamaName(ref),
                ...(ref.pin ? { expectHex: ref.pin } : {}),
            });
            return source_identityOf(ref, parseManifest(bytes, ollamaName(ref)), (0,src_digest/* sha256Hex */.fg)(bytes));
        },
        async plan(ref, identity, ctx) {
            const hex = recordedHex(ref, identity);
            // Settled only when a request is made: a pinned model complete on disk asks nothing.
            const route = routeFor(ref).blobs(hex, ollamaName(ref));
            const manifest = await source_manifestFor(ref, identity, hex, options.modelsRoot, () => routeFor(ref).manifest(ctx, `sha256:${hex}`, { name: ollamaName(ref), expectHex: hex }));
            return source_planEntry(ref, identity, manifest, options.modelsRoot, route, ctx, routeFor(ref).mirrored);
        },
    };
}
function source_identityOf(ref, manifest, hex) {
    return {
        source: 'ollama',
        ref: ref.line,
        name: ollamaName(ref),
        pin: `sha256:${hex}`,
        contentDigest: hex,
        // The manifest text lets plan() and a lock file skip a second request; plan() re-hashes it.
        detail: { manifest: manifest.text },
    };
}
/**
 * The manifest digest of an identity from identify() or a lock file, once it is known to name
 * the line's model (and its pin, if the line has one).
 */
function recordedHex(ref, identity) {
    const hex = recordedManifestHex(identity, ollamaName(ref));
    if (ref.pin !== undefined && hex !== ref.pin)
        throw recordedIdentityError(identity, `it is pinned to ${identity.pin}, the line to sha256:${ref.pin}`);
    return hex;
}
/** The manifest bytes for a known digest: recorded text, else the store, else the registry. */
async function source_manifestFor(ref, identity, hex, root, fetch) {
    const name = ollamaName(ref);
    const recorded = recordedManifest(identity, name, hex);
    if (recorded)
        return parseManifest(recorded, name);
    const stored = await readStoredManifest(root, ref);
    if (stored && (0,src_digest/* sha256Hex */.fg)(stored) === hex)
        return parseManifest(stored, name);
    return parseManifest(await fetch(), name);
}
function source_planEntry(ref, identity, manifest, root, route, ctx, 
/** Blobs may come from a registry-mirror (see BlobSpec.probeRanges). */
probeRanges) {
    const all = [manifest.config, ...manifest.layers];
    const blobs = all.map((d) => (0,session/* registryBlob */.L)(route, ctx, d, {
        label: `${ref.line} ${d === manifest.config ? 'config' : manifest_layerKind(d.mediaType)}`,
        target: ollama_blobPath(root, d.hex),
        ingestDir: ollama_ingestDir(root),
        probeRanges,
    }));
    const files = all.map((d) => ({ path: ollama_blobPath(root, d.hex), digest: `sha256:${d.hex}`, size: d.size }));
    const bytes = Buffer.from(manifest.text, 'utf8');
    return {
        identity: { ...identity, name: ollamaName(ref), detail: { ...identity.detail, manifest: manifest.text } },
        path: ollama_blobPath(root, weightsLayer(manifest).hex),
        size: manifest.totalSize,
        files,
        blobs,
        // Blobs only: a restored manifest would name blobs before they are verified (the manifest is
        // written last, by commit(), from the identity's bytes).
        cachePaths: files.map((f) => f.path),
        commit: () => commitOllamaModel(root, ref, bytes, all, new Date(ctx.clock.now())),
    };
}

;// CONCATENATED MODULE: ./src/sources/ollama/verify.ts








/**
 * Re-hashes an Ollama store against its manifests: every manifest under `manifests/` must parse
 * and every blob it names (config included) must be `blobs/sha256-<hex>` with its size and
 * sha256, which is what `ollama run` trusts without checking (docs/layouts.md, "Ollama's store").
 */
async function verifyOllamaStore(root) {
    const checker = new Checker();
    const manifests = (0,external_node_path_.join)(root, 'manifests');
    for (const file of await walk(manifests)) {
        const model = verify_ollamaName((0,external_node_path_.relative)(manifests, file));
        const line = ollamaLine(model);
        const read = await (0,safe_fs/* readBounded */.CB)(file, registry_manifest/* MAX_MANIFEST_BYTES */.ZJ);
        if (read.kind !== 'read') {
            const problem = read.kind === 'refused' ? `cannot read the manifest: ${read.reason}` : 'missing';
            checker.damaged.push({ model, path: file, problem, line });
            continue;
        }
        let manifest;
        try {
            manifest = parseManifest(read.bytes, model);
        }
        catch (error) {
            checker.damaged.push({ model, path: file, problem: (0,errors/* describeError */.Uc)(error), line });
            continue;
        }
        for (const blob of [manifest.config, ...manifest.layers]) {
            const path = (0,external_node_path_.join)(root, 'blobs', `sha256-${blob.hex}`);
            const problem = await checker.problem(path, { algorithm: 'sha256', hex: blob.hex }, blob.size);
            if (problem)
                checker.damaged.push({ model, path, problem, line });
        }
    }
    return checker.report();
}
/**
 * The shortest line naming an Ollama model: Ollama's own defaults (its registry, `library/`) left
 * out. The store does not keep the scheme; a registry on loopback is taken to be plain http (a
 * local or test registry), anything else https.
 */
function ollamaLine(name) {
    const short = name.replace(/^registry\.ollama\.ai\/(library\/)?/, '');
    const host = short.split('/')[0];
    const hostname = /^\[[^\]]*\]/.exec(host)?.[0] ?? host.replace(/:\d+$/, '');
    const loopback = short.includes('/') && (0,http_client/* isLoopbackHost */.cW)(hostname);
    return `ollama:${loopback ? 'http://' : ''}${short}`;
}
/** `host/namespace/name/tag` (the manifest's path in the store) as `host/namespace/name:tag`. */
function verify_ollamaName(path) {
    const parts = path.split(external_node_path_.sep);
    const tag = parts.pop();
    return parts.length ? `${parts.join('/')}:${tag}` : (tag ?? path);
}

;// CONCATENATED MODULE: ./src/sources/ollama/index.ts






/** `ollama:[scheme://][host/][namespace/]model[:tag][@sha256:…]`: Ollama's registry or any OCI registry. */
const ollamaSource = {
    kind: 'ollama',
    prefixes: [OLLAMA_PREFIX],
    syntax: 'ollama:NAME',
    usage: 'ollama:NAME[:TAG][@sha256:HEX]',
    parse: parseOllamaRef,
    stores: (settings) => [
        {
            what: 'the Ollama store',
            path: settings.ollamaModels,
            input: constants/* Inputs */.G0.OllamaModels,
            verify: { label: 'Ollama store', check: verifyOllamaStore },
        },
    ],
    phases: { resolving: 'resolving manifest', writing: 'writing manifest' },
    canonical: canonicalOllamaLine,
    create: (settings) => createOllamaSource({ modelsRoot: settings.ollamaModels, ...(0,client/* registryOptions */._)(settings) }),
    mirror: ollamaMirror,
};

;// CONCATENATED MODULE: ./src/sources/url/mirror.ts




/**
 * A URL file as a single-layer ModelPack artifact at `<prefix>/files/<file name>:<sha256>`: the
 * tag is the line's own pin, so an `oci:` line with that tag (or a pin of the manifest) reads
 * back exactly the file the URL line verified.
 */
const urlMirror = {
    target(ref, line, prefix) {
        const name = (0,registry_prefix/* repositoryPart */.mi)(ref.fileName, 'file name', line);
        // Files of one name from different URLs share the repository: their tags (sha256) differ.
        return { repository: (0,registry_prefix/* repositoryUnder */.vt)(prefix, 'files', name), origin: `file ${name}` };
    },
    async artifact(ref, model, target, settings) {
        const source = model.output.path;
        const { size } = await (0,promises_.stat)(source);
        const url = (0,errors/* redactUrl */.BO)(ref.url);
        return modelPackArtifact({
            files: [{ path: ref.fileName, hex: ref.sha256, size, source }],
            descriptor: { name: ref.fileName, sourceURL: url },
            annotations: { 'org.opencontainers.image.source': url },
            references: [ref.sha256],
            name: (0,registry_prefix/* nameUnder */.c9)(settings.mirrorTo, target.repository, ref.sha256),
            label: ref.line,
        });
    },
};

;// CONCATENATED MODULE: ./src/sources/url/ref.ts


function parseUrlRef(parts) {
    const { line } = parts;
    (0,refs_line/* onlyOptions */.Lg)(parts, ['sha256']);
    let url;
    try {
        url = new URL(parts.reference);
    }
    catch {
        throw (0,refs_line/* badLine */.mV)(line, 'not a valid URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
        throw (0,refs_line/* badLine */.mV)(line, 'only http(s) URLs can be fetched');
    const sha256 = parts.options.get('sha256')?.toLowerCase();
    if (sha256 === undefined)
        throw (0,refs_line/* badLine */.mV)(line, 'a URL needs sha256=<64 hex> so the file can be verified');
    if (!(0,src_digest/* isSha256Hex */.P4)(sha256))
        throw (0,refs_line/* badLine */.mV)(line, 'sha256= must be 64 hexadecimal characters');
    // The line is echoed in logs, outputs and the lock file, so it must never carry a secret.
    if (url.username || url.password) {
        throw (0,refs_line/* badLine */.mV)(line, 'credentials in a URL would end up in logs, outputs and the lock file; remove user:password@');
    }
    url.hash = '';
    const fileName = fileNameOf(url);
    if (!fileName)
        throw (0,refs_line/* badLine */.mV)(line, 'the URL path names no file');
    return { line, url: url.toString(), sha256, fileName };
}
/** The last path segment, decoded, if it is a safe single file name. */
function fileNameOf(url) {
    const last = url.pathname.split('/').pop() ?? '';
    let name;
    try {
        name = decodeURIComponent(last);
    }
    catch {
        return undefined;
    }
    if (!name || name === '.' || name === '..' || /[/\\\0]/.test(name) || name.startsWith('.'))
        return undefined;
    return name;
}

;// CONCATENATED MODULE: ./src/sources/url/record.ts





/** A record names one line, one file and its sha256. */
const record_MAX_RECORD_BYTES = 64 * 1024;
const record_FORMAT = 'model-pull/url-file@1';
const recordsFolder = (filesDir) => (0,external_node_path_.join)(filesDir, '.model-pull');
/** Written after the file is in place; a record is a hint for verify, never trusted for bytes. */
async function writeUrlRecord(filesDir, record) {
    const path = (0,external_node_path_.join)(recordsFolder(filesDir), `${record.file}.json`);
    await (0,atomic_write/* writeFileAtomic */.Zf)(path, `${JSON.stringify({ format: record_FORMAT, ...record }, null, 1)}\n`);
}
/** Every well-formed record in files-dir, by file name; anything else there is ignored. */
async function readUrlRecords(filesDir) {
    const folder = recordsFolder(filesDir);
    const names = await (0,promises_.readdir)(folder).catch(() => []);
    const records = [];
    for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
        try {
            const data = JSON.parse(String(await (0,safe_fs/* readSmall */.o5)((0,external_node_path_.join)(folder, name), record_MAX_RECORD_BYTES)));
            const { line, file, sha256 } = data;
            if (data.format !== record_FORMAT || typeof line !== 'string' || typeof file !== 'string')
                continue;
            if (typeof sha256 !== 'string' || !(0,src_digest/* isSha256Hex */.P4)(sha256) || `${file}.json` !== name)
                continue;
            // A record names a file in files-dir itself, never a path that leaves it.
            if (file.startsWith('.') || /[/\\\0]/.test(file))
                continue;
            records.push({ line, file, sha256 });
        }
        catch {
            // unreadable or not JSON: not a record of ours
        }
    }
    return records;
}

;// CONCATENATED MODULE: ./src/sources/url/source.ts




/**
 * The plain-URL source: the line carries its sha256, so identifying it needs no request. The
 * size is learned from the server; the file lands as `<files-dir>/<file name>`.
 */
function createUrlSource(options) {
    return {
        async identify(ref) {
            return url_source_identityOf(ref);
        },
        async plan(ref, identity) {
            // The line itself is the whole identity: a recorded one must say the same.
            const expected = url_source_identityOf(ref);
            checkRecordedName(identity, expected.name);
            if (identity.pin !== expected.pin)
                throw recordedIdentityError(identity, `it names ${identity.name} ${identity.pin}, not the line's file`);
            if (identity.contentDigest !== expected.contentDigest)
                throw recordedIdentityError(identity, 'contentDigest is not the sha256 of the file');
            const target = (0,external_node_path_.join)(options.filesDir, ref.fileName);
            return {
                identity: expected,
                path: target,
                size: 0,
                files: [{ path: target, digest: expected.pin, size: 0 }],
                blobs: [
                    {
                        digest: { algorithm: 'sha256', hex: ref.sha256 },
                        label: ref.fileName,
                        target,
                        ingestDir: (0,external_node_path_.join)(options.filesDir, '.model-pull-ingest'),
                        locate: async () => ({ url: ref.url }),
                    },
                ],
                cachePaths: [target],
                commit: () => writeUrlRecord(options.filesDir, { line: ref.line, file: ref.fileName, sha256: ref.sha256 }),
            };
        },
    };
}
function url_source_identityOf(ref) {
    return {
        source: 'url',
        ref: ref.line,
        name: (0,errors/* redactUrl */.BO)(ref.url),
        pin: `sha256:${ref.sha256}`,
        contentDigest: ref.sha256,
    };
}

;// CONCATENATED MODULE: ./src/sources/url/verify.ts



/**
 * Re-hashes the files URL lines put in files-dir against the sha256 of their line, from the
 * records model-pull keeps beside them. A file without a record (placed by hand, or by a
 * version that kept none) has nothing to be compared with and is left alone.
 */
async function verifyFilesDir(root) {
    const checker = new Checker();
    for (const record of await readUrlRecords(root)) {
        const path = (0,external_node_path_.join)(root, record.file);
        const problem = await checker.problem(path, { algorithm: 'sha256', hex: record.sha256 }, undefined);
        if (problem)
            checker.damaged.push({ model: record.line, path, problem, line: record.line });
    }
    return checker.report();
}

;// CONCATENATED MODULE: ./src/sources/url/index.ts






/** `https://host/path/file.gguf sha256=<64 hex>`: a plain file, landing in files-dir. */
const urlSource = {
    kind: 'url',
    prefixes: ['https://', 'http://'],
    syntax: 'an https:// URL with sha256=',
    usage: 'https://HOST/PATH/FILE sha256=HEX',
    parse: parseUrlRef,
    stores: (settings) => [
        {
            what: 'files-dir',
            path: settings.filesDir,
            input: constants/* Inputs */.G0.FilesDir,
            verify: { label: 'files', check: verifyFilesDir },
        },
    ],
    // The line carries its sha256: nothing to look up.
    phases: { resolving: '', listing: '', writing: '' },
    canonical: (ref) => `${ref.url} sha256=${ref.sha256}`,
    // URL lines land as <files-dir>/<file name>: two different files may not share one.
    checkLines(refs) {
        const byName = new Map();
        for (const { line, ref } of refs) {
            const first = byName.get(ref.fileName);
            if (first && first.sha256 !== ref.sha256) {
                throw (0,refs_line/* badLine */.mV)(line, `its file name "${ref.fileName}" is already used by "${first.line}" for other bytes`);
            }
            byName.set(ref.fileName, ref);
        }
    },
    create: (settings) => createUrlSource({ filesDir: settings.filesDir }),
    mirror: urlMirror,
};

;// CONCATENATED MODULE: ./src/sources/index.ts




/**
 * The sources the action and the CLI pull with, one line each; a new source is its folder (with
 * a descriptor in its index.ts) and one line here. Order only matters for the wording of the
 * error on a line that no source claims.
 */
const DEFAULT_SOURCES = [ollamaSource, hfSource, ociSource, urlSource];


/***/ })

};
