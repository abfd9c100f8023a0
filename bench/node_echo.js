#!/usr/bin/env node
// node_echo.js: the benchmark's Node peer, an echo server on Node's `ws`
// (bench/node_modules, from bench/package-lock.json) that also broadcasts.
//
//   node bench/node_echo.js PORT
//
// Listens on 127.0.0.1:PORT, any path. Every message is echoed with its
// type, except the text command "burst K S": K text messages of S bytes
// (default 64) to every open connection, message by message, each to all,
// like bench/plugins/fanout.c. No permessage-deflate (as the other peers).
'use strict';

const path = require('path');
const { WebSocketServer, WebSocket } = require(path.join(__dirname,
  'node_modules', 'ws'));

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node_echo.js PORT');
  process.exit(1);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: false,
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
    'ws', 'package.json')).version} on 127.0.0.1:${port}`);
});
wss.on('error', (err) => {
  console.error(`node_echo: ${err.message}`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => process.exit(0));
}
