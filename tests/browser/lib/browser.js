'use strict';
/* Debian's Chromium, headless, through playwright-core: never a browser
 * that Playwright downloads. Each launch gets a fresh, empty user data
 * directory (removed on close) and the flags this machine needs: without
 * the background-networking ones Chromium keeps trying to reach Google's
 * hosts through a closed network.
 *
 *   const b = await launch({ extraArgs: ['--ignore-certificate-errors'] });
 *   const page = await b.newPage();
 *   await b.close();   -> Chromium pids still alive afterwards (empty)
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FLAGS = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
];
const LAUNCH_TIMEOUT_MS = 60000;
const CLOSE_TIMEOUT_MS = 15000;

/* What is missing to run the browser tests, as lines that say what to
 * install; empty when everything is there. */
function missing() {
    const lines = [];
    try {
        fs.accessSync(CHROMIUM, fs.constants.X_OK);
    } catch (e) {
        lines.push(`${CHROMIUM} not found: install Debian's Chromium ` +
                   '(as root: apt-get install -y chromium)');
    }
    try {
        require.resolve('playwright-core');
    } catch (e) {
        lines.push('playwright-core not found: run npm ci in tests/browser ' +
                   '(tests/browser/run.sh does; never "npx playwright install")');
    }
    return lines;
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/* Every process running a binary from Chromium's directory (the browser,
 * its zygotes, renderers and utilities, and the crash handlers it
 * daemonizes), by pid. */
function chromiumPids() {
    const pids = new Set();
    for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        let argv0;
        try {
            argv0 = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0];
        } catch (e) {
            continue;
        }
        if (argv0.startsWith('/usr/lib/chromium/')) pids.add(Number(entry));
    }
    return pids;
}

async function launch({ name = 'chromium', extraArgs = [] } = {}) {
    const problems = missing();
    if (problems.length) throw new Error(problems.join('\n'));
    const { chromium } = require('playwright-core');
    const before = chromiumPids();
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), `mws-${name}-`));
    let context;
    try {
        context = await chromium.launchPersistentContext(userDataDir, {
            executablePath: CHROMIUM,
            headless: true,
            args: FLAGS.concat(extraArgs),
            viewport: { width: 1000, height: 800 },
            timeout: LAUNCH_TIMEOUT_MS,
        });
    } catch (e) {
        fs.rmSync(userDataDir, { recursive: true, force: true });
        throw e;
    }
    context.setDefaultTimeout(10000);
    const pageErrors = [];
    let first = context.pages()[0] || null;
    let closed = false;

    return {
        userDataDir,
        pageErrors,   /* uncaught exceptions in any page: a test fails on them */
        version: context.browser() ? context.browser().version() : '?',
        async newPage() {
            const page = first || await context.newPage();
            first = null;
            page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
            return page;
        },
        /* Close, then wait (bounded) for every Chromium process that was
         * not there before the launch to be gone; returns those left. */
        async close() {
            if (!closed) {
                closed = true;
                await Promise.race([context.close().catch(() => {}),
                                    sleep(CLOSE_TIMEOUT_MS)]);
            }
            const deadline = Date.now() + CLOSE_TIMEOUT_MS;
            let left;
            for (;;) {
                left = [...chromiumPids()].filter((p) => !before.has(p));
                if (!left.length || Date.now() > deadline) break;
                await sleep(100);
            }
            fs.rmSync(userDataDir, { recursive: true, force: true });
            return left;
        },
    };
}

module.exports = { launch, missing, CHROMIUM, FLAGS };
