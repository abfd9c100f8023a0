'use strict';
/* Browser tests of the demo pages: Debian's headless Chromium, driven by
 * playwright-core, against the real demo/run on free loopback ports.
 *
 *   clock  two tabs 1.5 s apart tick on their own
 *   echo   text and binary round trips, subprotocol echo.v1, a clean
 *          close with code 4000 (ws://)
 *   chat   two names see each other's messages, joins and leaves; a
 *          third in ?room=kitchen hears none of it
 *   wss    the echo check again over TLS (demo/run with TLS_CERT/TLS_KEY,
 *          a throw-away self-signed certificate, Chromium with
 *          --ignore-certificate-errors)
 *
 * Screenshots and the servers' logs go to $BUILD/browser (build/browser).
 * Run through tests/browser/run.sh, or: node --test tests/browser/
 */
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startDemo, makeCert, pgrepGroups, REPO, sleep } = require('./lib/demo');
const { launch, missing, CHROMIUM } = require('./lib/browser');

const OUT = path.resolve(REPO, process.env.BUILD || 'build', 'browser');
const TEST_TIMEOUT_MS = 60000;
const SUITE_TIMEOUT_MS = 240000;

const servers = [];     /* every demo started, for the final check */
const browsers = [];    /* every Chromium launched, likewise */
const leftovers = [];   /* pids found alive after a stop or close */

fs.mkdirSync(OUT, { recursive: true });
const problems = missing();

function say(text) {
    console.log(`browser: ${text}`);
}

say(`output (screenshots, demo logs): ${path.relative(REPO, OUT)}/`);
if (problems.length) {
    problems.forEach((p) => say(`MISSING: ${p}`));
} else {
    say(`chromium: ${CHROMIUM}; playwright-core ` +
        require('playwright-core/package.json').version);
}
const handlerMissing = (name) => !fs.existsSync(path.join(REPO, 'handlers', name));
for (const name of ['clock', 'chat']) {
    if (handlerMissing(name))
        say(`SKIPPING the ${name} test: handlers/${name}/ is not in this tree`);
}
say('running: clock (two tabs), echo (ws://), chat (two users, two rooms), echo (wss://)');

/* Nothing is skipped for a missing browser: this test fails, and so does
 * every test below, each naming what to install. */
test('prerequisites: Debian Chromium and playwright-core', () => {
    assert.deepEqual(problems, [], problems.join('\n'));
});

async function shot(page, name) {
    const file = path.join(OUT, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    say(`screenshot ${path.relative(REPO, file)}`);
}

/* The console's widgets, by what a user sees. */
const statusOf = (page) => page.locator('.status strong');
const prop = (page, name) =>
    page.locator(`dl.props dt:text-is("${name}") + dd`);
const logItems = (page, kind) => page.locator(`ol.log li.${kind} .text`);

async function texts(locator) {
    return (await locator.allTextContents()).map((s) => s.trim());
}

/* Poll fn until it returns something truthy (bounded); return it. */
async function until(fn, what, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await fn();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
        await sleep(100);
    }
}

/* As the console shows binary data: hex bytes, the first 48 of them. */
function hexOf(bytes) {
    const b = Buffer.from(bytes);
    const s = b.subarray(0, 48).toString('hex').replace(/(..)(?!$)/g, '$1 ');
    return b.length > 48 ? s + ' …' : s;
}

/* Run fn(); if it throws, save what the page looked like first. */
async function shotOnFailure(pages, fn) {
    try {
        return await fn();
    } catch (e) {
        for (const [name, page] of Object.entries(pages)) {
            try {
                await shot(page, `FAILED-${name}`);
            } catch (e2) { /* the page may be gone */ }
        }
        throw e;
    }
}

/* (b) and (d): the echo page, from open to a clean close with 4000. */
async function checkEcho(page, base, shotName) {
    const wsBase = base.replace(/^http/, 'ws');
    await page.goto(`${base}/echo`);
    await until(async () => (await statusOf(page).textContent()) === 'OPEN',
                'the echo page opens its WebSocket');
    assert.equal(await page.locator('.status code').textContent(),
                 `${wsBase}/echo`, 'ws:/wss: and host follow the page');
    assert.equal(await prop(page, 'protocol').textContent(), '"echo.v1"');
    /* Chromium offers permessage-deflate; the demo's locations take the
     * default, shared mode (no context takeover either way). */
    assert.match(await prop(page, 'extensions').textContent(),
                 /^"permessage-deflate; server_no_context_takeover; client_no_context_takeover(; client_max_window_bits=\d+)?"$/);
    assert.equal(await prop(page, 'readyState').textContent(), '1 (OPEN)');
    assert.match(await prop(page, 'bufferedAmount').textContent(), /^\d+ bytes$/);

    /* Text: non-ASCII and markup-like characters come back as they went. */
    const text = 'browser test: héllo wörld ✓ <b>not bold</b>';
    await page.getByLabel('message text').fill(text);
    await page.getByRole('button', { name: 'Send text' }).click();
    const textLine = `text, ${text.length} chars / ` +
        `${Buffer.byteLength(text)} bytes: ${text}`;
    await until(async () => (await texts(logItems(page, 'in'))).includes(textLine),
                'the text echo');

    /* Binary: the same text's UTF-8 bytes, then random bytes; the log
     * shows the bytes sent and received in hex. */
    await page.getByRole('button', { name: 'Send as binary' }).click();
    const binLine = `binary, ${Buffer.byteLength(text)} bytes: ` +
        hexOf(Buffer.from(text));
    await until(async () => (await texts(logItems(page, 'in'))).includes(binLine),
                'the binary echo');
    await page.getByLabel('number of random bytes').fill('24');
    await page.getByRole('button', { name: 'Send random bytes' }).click();
    const randomOut = await until(async () => (await texts(logItems(page, 'out')))
        .find((t) => t.startsWith('binary, 24 bytes:')), 'random bytes sent');
    const sentHex = randomOut.replace(/\s+\(bufferedAmount \d+\)$/, '');
    await until(async () => (await texts(logItems(page, 'in'))).includes(sentHex),
                'the random bytes echoed');

    /* Close with 4000 and a reason. The server answers with the same code
     * and no reason (README: "A peer's close is answered with the same
     * code and no reason"), so the close event has code 4000 and the
     * reason we sent is in the log line of the call. */
    const reason = 'bye from the browser test';
    await page.getByLabel('close code').fill('4000');
    await page.getByLabel('close reason').fill(reason);
    await page.getByRole('button', { name: 'Close', exact: true }).click();
    const closeLine = await until(async () => (await texts(logItems(page, 'close')))[0],
                                  'the close event');
    assert.match(closeLine, /^code 4000, reason "[^"]*", wasClean true$/);
    assert.ok((await texts(logItems(page, 'info')))
        .includes(`close(4000, ${JSON.stringify(reason)}) called`));
    await until(async () => (await statusOf(page).textContent()) === 'CLOSED',
                'the status line says CLOSED');
    assert.deepEqual(await texts(logItems(page, 'error')), []);
    await shot(page, shotName);
}

describe('demo over http', { timeout: SUITE_TIMEOUT_MS }, () => {
    let demo = null;
    let browser = null;

    before(async () => {
        if (problems.length) throw new Error(problems.join('\n'));
        demo = await startDemo({ name: 'http', logDir: OUT });
        servers.push(demo);
        say(`demo/run serving ${demo.url} (pid ${demo.pid}, httpd ${demo.httpdPid})`);
        browser = await launch({ name: 'http' });
        browsers.push(browser);
        say(`Chromium ${browser.version} (user data ${browser.userDataDir})`);
    });

    after(async () => {
        if (browser) leftovers.push(...await browser.close());
        if (demo) leftovers.push(...await demo.stop());
    });

    test('index: links to every demo page', { timeout: TEST_TIMEOUT_MS },
         async () => {
        const page = await browser.newPage();
        await shotOnFailure({ index: page }, async () => {
            await page.goto(`${demo.url}/`);
            const links = await page.locator('ul.demos a')
                .evaluateAll((as) => as.map((a) => a.getAttribute('href')));
            assert.deepEqual(links, ['/echo', '/clock', '/chat']);
            await shot(page, 'index');
        });
        await page.close();
    });

    test('clock: two tabs count on their own', { timeout: TEST_TIMEOUT_MS,
            skip: handlerMissing('clock') && 'handlers/clock is not in this tree' },
    async () => {
        const count = async (page) => {
            const t = (await page.locator('#count').textContent()).trim();
            return /^\d+$/.test(t) ? Number(t) : -1;
        };
        const tab1 = await browser.newPage();
        const tab2 = await browser.newPage();
        await shotOnFailure({ 'clock-tab1': tab1, 'clock-tab2': tab2 }, async () => {
            await tab1.goto(`${demo.url}/clock`);
            await sleep(1500);
            await tab2.goto(`${demo.url}/clock`);
            /* Both have ticked at least once... */
            await until(async () => (await count(tab1)) >= 2 &&
                                    (await count(tab2)) >= 1,
                        'both tabs tick', 10000);
            const a1 = await count(tab1), a2 = await count(tab2);
            /* ...and keep going, each from its own start: the first tab,
             * opened 1.5 s earlier, is 1 or 2 ticks ahead. */
            await sleep(2300);
            const b1 = await count(tab1), b2 = await count(tab2);
            say(`clock: tab 1 ${a1} -> ${b1}, tab 2 ${a2} -> ${b2}`);
            assert.ok(b1 > a1, `tab 1 counts on (${a1} -> ${b1})`);
            assert.ok(b2 > a2, `tab 2 counts on (${a2} -> ${b2})`);
            assert.notEqual(b1, b2, 'the two tabs count independently');
            assert.ok(b1 - b2 >= 1 && b1 - b2 <= 2,
                      `tab 1 is 1-2 ticks ahead (${b1} vs ${b2})`);
            for (const tab of [tab1, tab2]) {
                assert.equal(await statusOf(tab).textContent(), 'OPEN');
                assert.deepEqual(await texts(logItems(tab, 'error')), []);
                assert.match(await tab.locator('#caption').textContent(),
                             /^ticks, \d+ s since this WebSocket opened \(one every 1 s\)$/);
            }
            await shot(tab1, 'clock-tab1');
            await shot(tab2, 'clock-tab2');
        });
        await tab1.close();
        await tab2.close();
    });

    test('echo: text and binary round trips, echo.v1, close 4000 (ws://)',
         { timeout: TEST_TIMEOUT_MS }, async () => {
        const page = await browser.newPage();
        await shotOnFailure({ echo: page },
                            () => checkEcho(page, demo.url, 'echo'));
        await page.close();
    });

    test('chat: two users see messages, history, joins and leaves',
         { timeout: TEST_TIMEOUT_MS,
           skip: handlerMissing('chat') && 'handlers/chat is not in this tree' },
    async () => {
        /* A list item is "<time>who text" or "<time>notice"; compare
         * without the time, who and text joined by '|'. */
        const lines = (page, cls) => page.locator(`#messages li${cls}`)
            .evaluateAll((lis) => lis.map((li) =>
                Array.from(li.childNodes).filter((n) => n.nodeName !== 'TIME')
                    .map((n) => n.textContent).join('|')));
        const seen = (page, cls, line, what) =>
            until(async () => (await lines(page, cls)).includes(line), what);
        const who = (page) => page.locator('#who').textContent();

        const alice = await browser.newPage();
        const bob = await browser.newPage();
        const carol = await browser.newPage();
        await shotOnFailure({ 'chat-alice': alice, 'chat-bob': bob,
                              'chat-carol': carol }, async () => {
            await alice.goto(`${demo.url}/chat?name=alice`);
            assert.equal(await alice.locator('#name').inputValue(), 'alice');
            await seen(alice, '.notice.join', 'alice joined (you)', 'alice joins');
            assert.equal(await alice.locator('.status code').textContent(),
                         `${demo.url.replace(/^http/, 'ws')}/chat?name=alice`);
            assert.equal(await who(alice), 'You are alice in /chat.');
            const early = 'anyone here?';
            await alice.locator('#text').fill(early);
            await alice.locator('#text').press('Enter');
            await seen(alice, '.msg.mine', `alice|${early}`, 'alice hears herself');
            assert.equal(await alice.locator('#text').inputValue(), '',
                         'the send box empties after sending');

            /* bob comes in: the history has alice's message; both see
             * his join. */
            await bob.goto(`${demo.url}/chat?name=bob`);
            await seen(bob, '.notice.join', 'bob joined (you)', 'bob joins');
            await seen(bob, '.history', `alice|${early}`, 'bob gets the history');
            await seen(alice, '.notice.join', 'bob joined', 'alice sees bob join');
            assert.equal(await who(bob), 'You are bob in /chat.');
            assert.equal(await who(alice), 'You are alice in /chat.');

            /* Markup in a message shows as text. */
            const fromBob = 'hi alice <img src=x onerror=alert(1)> & "quotes"';
            await bob.locator('#text').fill(fromBob);
            await bob.locator('#sendBtn').click();
            await seen(alice, '.msg', `bob|${fromBob}`, "alice sees bob's message");
            await seen(bob, '.msg.mine', `bob|${fromBob}`, 'bob sees his own');
            assert.equal(await alice.locator('#messages img').count(), 0,
                         'no markup from a message reaches the page');

            const fromAlice = 'hello bob ✓';
            await alice.locator('#text').fill(fromAlice);
            await alice.locator('#sendBtn').click();
            await seen(bob, '.msg', `alice|${fromAlice}`, "bob sees alice's message");
            await shot(bob, 'chat-bob');

            /* bob leaves: alice sees the notice, bob sees himself out. */
            await bob.locator('#leaveBtn').click();
            await seen(alice, '.notice.leave', 'bob left', 'alice sees bob leave');
            await until(async () => (await statusOf(bob).textContent()) === 'CLOSED',
                        "bob's socket closes");
            assert.match((await lines(bob, '.notice.leave')).pop(),
                         /^You left \/chat \(code 1000\b/);
            assert.equal(await who(alice), 'You are alice in /chat.');
            await shot(alice, 'chat-alice');

            /* carol in another room of /chat: none of /chat's history,
             * and alice does not hear her. */
            await carol.goto(`${demo.url}/chat?name=carol&room=kitchen`);
            assert.equal(await carol.locator('#room').inputValue(), 'kitchen');
            await seen(carol, '.notice.join', 'carol joined (you)', 'carol joins');
            assert.equal(await who(carol), 'You are carol in /chat/kitchen.');
            assert.equal(await carol.locator('#messages li.history').count(), 0);
            await carol.locator('#text').fill('in the kitchen');
            await carol.locator('#text').press('Enter');
            await seen(carol, '.msg.mine', 'carol|in the kitchen', 'carol hears herself');
            await alice.locator('#text').fill('still here');
            await alice.locator('#text').press('Enter');
            await seen(alice, '.msg.mine', 'alice|still here', 'alice hears herself');
            assert.deepEqual((await lines(alice, '.notice.join')).filter(
                (l) => l.includes('carol')), []);
            assert.deepEqual((await lines(carol, '.msg')).filter(
                (l) => l.includes('still here')), []);
            for (const page of [alice, bob, carol])
                assert.deepEqual(await texts(logItems(page, 'error')), []);
        });
        await alice.close();
        await bob.close();
        await carol.close();
    });

    test('no uncaught page errors (http)', () => {
        assert.deepEqual(browser ? browser.pageErrors : ['no browser'], []);
    });
});

describe('demo over https', { timeout: SUITE_TIMEOUT_MS }, () => {
    let demo = null;
    let browser = null;
    let certDir = null;

    before(async () => {
        if (problems.length) throw new Error(problems.join('\n'));
        certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mws-browser-tls-'));
        const tls = makeCert(certDir);
        demo = await startDemo({ name: 'https', logDir: OUT, tls });
        servers.push(demo);
        say(`demo/run serving ${demo.url} (TLS_CERT/TLS_KEY, self-signed; ` +
            `pid ${demo.pid}, httpd ${demo.httpdPid})`);
        browser = await launch({ name: 'https',
                                 extraArgs: ['--ignore-certificate-errors'] });
        browsers.push(browser);
    });

    after(async () => {
        if (browser) leftovers.push(...await browser.close());
        if (demo) leftovers.push(...await demo.stop());
        if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
    });

    test('echo over wss://: text and binary, echo.v1, close 4000',
         { timeout: TEST_TIMEOUT_MS }, async () => {
        const page = await browser.newPage();
        await shotOnFailure({ 'echo-wss': page },
                            () => checkEcho(page, demo.url, 'echo-wss'));
        await page.close();
    });

    test('no uncaught page errors (https)', () => {
        assert.deepEqual(browser ? browser.pageErrors : ['no browser'], []);
    });
});

/* Runs last: every demo/run, httpd and Chromium started above is gone. */
test('nothing left running (pgrep)', { timeout: 30000 }, async () => {
    /* The describes' after hooks have stopped everything; stop() again is
     * a no-op that reports what pgrep still finds in each group. */
    for (const demo of servers) leftovers.push(...await demo.stop());
    for (const browser of browsers) leftovers.push(...await browser.close());
    const groups = servers.flatMap((d) => d.pgids());
    const found = pgrepGroups(groups);
    say(`pgrep -g ${groups.join(',') || '(none started)'}: ` +
        `${found.length ? found.join(' ') : 'nothing'}`);
    assert.deepEqual(found, [], 'demo/run or httpd processes left behind');
    assert.deepEqual([...new Set(leftovers)], [], 'processes left behind');
});

/* Whatever happened above (a failed test, a hook that threw), stop what is
 * still running; lib/demo.js also SIGKILLs its groups at process exit. */
after(async () => {
    for (const browser of browsers) await browser.close().catch(() => {});
    for (const demo of servers) await demo.stop().catch(() => {});
});
