#!/usr/bin/env node
// node_echo.js: the benchmark's Node peer, an echo server on Node's `ws`
// (bench/node_modules, from bench/package-lock.json) that also broadcasts.
//
//   node bench/node_echo.js PORT [--deflate] [--pubsub]
//
// Listens on 127.0.0.1:PORT, any path. Every message is echoed with its
// type, except the text command "burst K S": K text messages of S bytes
// (default 64) to every open connection, message by message, each to all,
// like bench/plugins/fanout.c. No permessage-deflate, unless --deflate:
// then ws's `perMessageDeflate: true` with all of ws's defaults (context
// takeover both ways, windows of 15 bits, zlib's default level and memLevel
// 8, a threshold of 1024 bytes that applies only without context takeover,
// at most 10 zlib operations at once).
//
// --pubsub (the topic scenarios): the burst is the same loop over the
// clients (ws has no topics), but each of the K messages begins with a
// stamp, as bench/plugins/pubsub.c writes it: "%019llu %010ld ", the
// CLOCK_MONOTONIC time in ns just before the message's loop over the
// clients (process.hrtime.bigint(), which is libuv's uv_hrtime(): the same
// clock on Linux) and its number in the burst; and "whoami" is answered
// "pid N".
'use strict';

const path = require('path');
const { WebSocketServer, WebSocket } = require(path.join(__dirname,
  'node_modules', 'ws'));

const port = Number(process.argv[2]);
const flags = process.argv.slice(3);
const deflate = flags.includes('--deflate');
const pubsub = flags.includes('--pubsub');
if (!Number.isInteger(port) || port <= 0 || port > 65535
    || flags.some((f) => f !== '--deflate' && f !== '--pubsub')) {
  console.error('usage: node_echo.js PORT [--deflate] [--pubsub]');
  process.exit(1);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: deflate,
  clientTracking: true,
  maxPayload: 16 * 1024 * 1024,
  backlog: 4096,
});

const BURST = /^burst (\d+)(?: (\d+))?$/;

function burst(k, size) {
  const body = Buffer.alloc(size, 'x');
  const all = [...wss.clients];
  for (let i = 0; i < k; i++) {
    for (const ws of all) {
      if (ws.readyState === WebSocket.OPEN) ws.send(body, { binary: false });
    }
  }
}

// --pubsub: each message stamped (see the top), a new buffer each, as ws
// may keep a reference to what it could not write at once.
function stampedBurst(k, size) {
  const all = [...wss.clients];
  size = Math.max(size, 32);
  for (let i = 0; i < k; i++) {
    const body = Buffer.alloc(size, 'x');
    const stamp = process.hrtime.bigint().toString().padStart(19, '0');
    body.write(`${stamp} ${String(i).padStart(10, '0')} `, 0, 'latin1');
    for (const ws of all) {
      if (ws.readyState === WebSocket.OPEN) ws.send(body, { binary: false });
    }
  }
}

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length < 64) {
      const text = data.toString();
      const m = BURST.exec(text);
      if (m) {
        (pubsub ? stampedBurst : burst)(Math.min(Number(m[1]), 1000000),
          Math.min(Number(m[2] || 64), 1 << 20));
        return;
      }
      if (pubsub && text === 'whoami') {
        ws.send(`pid ${process.pid}`);
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  console.log(`node_echo: ws ${require(path.join(__dirname, 'node_modules',
    'ws', 'package.json')).version} on 127.0.0.1:${port}, permessage-deflate `
    + (deflate ? 'on (ws defaults)' : 'off')
    + (pubsub ? ', bursts stamped (--pubsub)' : ''));
});
wss.on('error', (err) => {
  console.error(`node_echo: ${err.message}`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => process.exit(0));
}
