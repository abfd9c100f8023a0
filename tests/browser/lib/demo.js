'use strict';
/* The demo server for the browser tests: the real demo/run, started as a
 * child in a process group of its own on a free port, optionally with
 * TLS_CERT/TLS_KEY (https and wss), and stopped so that nothing is left:
 *
 *   const demo = await startDemo({ name: 'http', logDir });
 *   demo.url        'http://127.0.0.1:PORT'
 *   await demo.stop()   -> list of pids still alive afterwards (empty)
 *
 * demo/run runs httpd under setsid, so httpd's parent and children form a
 * second process group (id = httpd's pid); both groups are remembered and
 * ended, and a process 'exit' hook SIGKILLs whatever is still registered if
 * the test run dies before stop() (an exception, a runner timeout).
 */
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const DEMO_RUN = path.join(REPO, 'demo', 'run');

const START_TIMEOUT_MS = 180000;   /* demo/run runs make first */
const STOP_TIMEOUT_MS = 20000;     /* graceful stop is bounded at 3 s + 10 s */

/* Process groups we started and have not yet seen end. */
const live = new Set();
function killLive() {
    for (const pgid of live) {
        try { process.kill(-pgid, 'SIGKILL'); } catch (e) { /* gone */ }
    }
    live.clear();
}
process.on('exit', killLive);
/* A signal's default action skips 'exit' hooks: a runner timeout or
 * Ctrl-C would leave the servers running. (Playwright's own exit hook then
 * kills its browsers.) */
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.once(sig, () => {
        killLive();
        process.exit(code);
    });
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

/* Pids in process group pgid, from /proc (no pgrep needed). */
function groupMembers(pgid) {
    const pids = [];
    for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        let stat;
        try {
            stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        } catch (e) {
            continue;
        }
        /* pid (comm) state ppid pgrp ...; comm may hold spaces and ')' */
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(f[2]) === pgid && f[0] !== 'Z') pids.push(Number(entry));
    }
    return pids;
}

/* The pids pgrep finds in these groups: the end-of-run check. */
function pgrepGroups(pgids) {
    if (!pgids.length) return [];
    try {
        const out = execFileSync('pgrep', ['-g', pgids.join(',')],
                                 { encoding: 'utf8', timeout: 5000 });
        return out.split('\n').filter(Boolean).map(Number);
    } catch (e) {
        if (e.status === 1) return [];      /* pgrep: nothing matched */
        throw e;
    }
}

function childrenOf(ppid) {
    const kids = [];
    for (const entry of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        let stat;
        try {
            stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        } catch (e) {
            continue;
        }
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(f[1]) === ppid && f[0] !== 'Z')
            kids.push({ pid: Number(entry), comm, pgid: Number(f[2]) });
    }
    return kids;
}

/* One GET of url; resolves to the status code, rejects on any error. The
 * TLS server's certificate is a throw-away self-signed one. */
function probe(url) {
    return new Promise((resolve, reject) => {
        const mod = url.startsWith('https:') ? https : http;
        const req = mod.get(url, { rejectUnauthorized: false, timeout: 2000 },
            (res) => { res.resume(); resolve(res.statusCode); });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
    });
}

function tail(file, lines = 30) {
    try {
        return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
    } catch (e) {
        return '(no log)';
    }
}

/* A self-signed certificate for 127.0.0.1 made with the openssl CLI. */
function makeCert(dir) {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
        '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=DNS:127.0.0.1,DNS:localhost,IP:127.0.0.1',
        '-addext', 'basicConstraints=critical,CA:FALSE',
        '-keyout', key, '-out', cert,
    ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60000 });
    return { cert, key };
}

async function startOnce({ name, logDir, tls }) {
    const port = await freePort();
    const scheme = tls ? 'https' : 'http';
    const url = `${scheme}://127.0.0.1:${port}`;
    const logFile = path.join(logDir, `demo-${name}.log`);
    const log = fs.openSync(logFile, 'w');
    const env = { ...process.env, PORT: String(port) };
    delete env.TLS_CERT;
    delete env.TLS_KEY;
    if (tls) {
        env.TLS_CERT = tls.cert;
        env.TLS_KEY = tls.key;
    }
    /* detached: a new session and process group whose id is the child's
     * pid, so the whole of demo/run (make, sleep) can be signalled. */
    const child = spawn(DEMO_RUN, [], {
        cwd: REPO, env, detached: true, stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    const pgid = child.pid;
    live.add(pgid);
    let exited = null;
    const exitPromise = new Promise((resolve) => {
        child.on('exit', (code, signal) => {
            exited = { code, signal };
            resolve(exited);
        });
    });

    const demo = {
        name, url, port, logFile, pid: child.pid, httpdPid: null,
        stopped: false,
        pgids() {
            return [pgid].concat(this.httpdPid ? [this.httpdPid] : []);
        },
        async stop() {
            if (this.stopped) return pgrepGroups(this.pgids());
            this.stopped = true;
            /* demo/run's trap stops httpd gracefully and waits for it. */
            if (!exited) {
                try { process.kill(-pgid, 'SIGTERM'); } catch (e) { /* gone */ }
                await Promise.race([exitPromise, sleep(STOP_TIMEOUT_MS)]);
            }
            const groups = this.pgids();
            /* Whatever is left after that gets no second chance. */
            for (let i = 0; i < 50; i++) {
                const left = groups.flatMap(groupMembers);
                if (!left.length) break;
                for (const g of groups) {
                    try { process.kill(-g, 'SIGKILL'); } catch (e) { /* gone */ }
                }
                await sleep(100);
            }
            for (const g of groups) live.delete(g);
            return pgrepGroups(groups);
        },
    };

    const deadline = Date.now() + START_TIMEOUT_MS;
    const announce = `demo: open ${url}/`;
    for (;;) {
        if (exited) {
            const why = tail(logFile);
            await demo.stop();
            const err = new Error(`demo/run (${name}) exited at start-up ` +
                `(${JSON.stringify(exited)}); log ${logFile}:\n${why}`);
            err.addressInUse = /Address already in use/.test(why);
            throw err;
        }
        if (Date.now() > deadline) {
            await demo.stop();
            throw new Error(`demo/run (${name}) did not serve ${url}/ within ` +
                `${START_TIMEOUT_MS / 1000} s; log ${logFile}:\n${tail(logFile)}`);
        }
        /* The announcement comes after httpd wrote its pid file (so the
         * port is ours, not another server's); then the page must load. */
        let ready = false;
        if (fs.readFileSync(logFile, 'utf8').includes(announce)) {
            try {
                ready = (await probe(`${url}/`)) === 200;
            } catch (e) {
                ready = false;
            }
        }
        if (ready) break;
        await sleep(200);
    }
    const httpd = childrenOf(child.pid).find((k) => k.comm === 'apache2');
    if (httpd) {
        demo.httpdPid = httpd.pgid;
        live.add(httpd.pgid);
    }
    return demo;
}

/* Start demo/run; a port someone else took in between is tried again. */
async function startDemo({ name, logDir, tls = null }) {
    fs.mkdirSync(logDir, { recursive: true });
    for (let attempt = 1; ; attempt++) {
        try {
            return await startOnce({ name, logDir, tls });
        } catch (e) {
            if (!e.addressInUse || attempt >= 3) throw e;
        }
    }
}

module.exports = { startDemo, makeCert, pgrepGroups, groupMembers, REPO, sleep };
