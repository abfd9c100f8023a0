#!/usr/bin/env node
// node_echo.js: the benchmark's Node peer, an echo server on Node's `ws`
// (bench/node_modules, from bench/package-lock.json) that also broadcasts.
//
//   node bench/node_echo.js PORT [--deflate]
//
// Listens on 127.0.0.1:PORT, any path. Every message is echoed with its
// type, except the text command "burst K S": K text messages of S bytes
// (default 64) to every open connection, message by message, each to all,
// like bench/plugins/fanout.c. No permessage-deflate, unless --deflate:
// then ws's `perMessageDeflate: true` with all of ws's defaults (context
// takeover both ways, windows of 15 bits, zlib's default level and memLevel
// 8, a threshold of 1024 bytes that applies only without context takeover,
// at most 10 zlib operations at once).
'use strict';

const path = require('path');
const { WebSocketServer, WebSocket } = require(path.join(__dirname,
  'node_modules', 'ws'));

const port = Number(process.argv[2]);
const deflate = process.argv[3] === '--deflate';
if (!Number.isInteger(port) || port <= 0 || port > 65535
    || (process.argv.length > 3 && !deflate) || process.argv.length > 4) {
  console.error('usage: node_echo.js PORT [--deflate]');
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

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length < 64) {
      const m = BURST.exec(data.toString());
      if (m) {
        burst(Math.min(Number(m[1]), 1000000),
          Math.min(Number(m[2] || 64), 1 << 20));
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
    + (deflate ? 'on (ws defaults)' : 'off'));
});
wss.on('error', (err) => {
  console.error(`node_echo: ${err.message}`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => process.exit(0));
}
