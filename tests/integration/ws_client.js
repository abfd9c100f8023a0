#!/usr/bin/env node
// A WebSocket client on Node's `ws`, driven by the Python tests
// (helpers.run_node_client). One JSON argument says what to do:
//
//   {"url": "ws://127.0.0.1:PORT/echo", "origin": "...", "ca": "cert.pem"|null,
//    "messages": [{"type": "text"|"binary", "size": N}, ...],
//    "options": {...ws client options, e.g. "perMessageDeflate": false},
//    "timeout_ms": 20000}
//
// It connects, sends each message and waits for its echo before the next,
// then closes with 1000 and waits for the server's close. It prints one JSON
// line: {"opened", "protocol", "extensions", "results": [{"type", "size",
// "ok", "got_type", "got_size"}], "close_code", "error"} and exits 0 if
// every echo matched and the close completed, 1 otherwise, 2 on a timeout.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');

const spec = JSON.parse(process.argv[2]);
const out = {opened: false, protocol: null, extensions: null, results: [],
             close_code: null, close_reason: null, error: null};

function finish(code) {
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(code);
}

setTimeout(() => { out.error = 'timeout'; finish(2); },
           spec.timeout_ms || 20000).unref();

// The same payloads as helpers.py: text with 1- to 4-byte characters padded
// with 'x' to an exact byte size, binary in a 251-byte cycle.
const TEXT_UNIT = Buffer.from('h\u00e9llo w\u00f6rld \u20ac\u{1F600} ', 'utf8');

function payload(m) {
  if (m.type === 'text') {
    const k = Math.floor(m.size / TEXT_UNIT.length);
    const r = m.size % TEXT_UNIT.length;
    return TEXT_UNIT.toString('utf8').repeat(k) + 'x'.repeat(r);
  }
  const b = Buffer.alloc(m.size);
  for (let i = 0; i < m.size; i++) b[i] = i % 251;
  return b;
}

const options = Object.assign({origin: spec.origin}, spec.options || {});
if (spec.ca) options.ca = fs.readFileSync(spec.ca);

const ws = new WebSocket(spec.url, spec.protocols || [], options);
let index = 0;
let expected = null;

function sendNext() {
  if (index >= spec.messages.length) {
    ws.close(1000, 'done');
    return;
  }
  const m = spec.messages[index];
  expected = payload(m);
  ws.send(expected, {binary: m.type === 'binary'});
}

ws.on('open', () => {
  out.opened = true;
  out.protocol = ws.protocol;
  out.extensions = ws.extensions;
  sendNext();
});

ws.on('message', (data, isBinary) => {
  const m = spec.messages[index] || {type: '?', size: -1};
  const got = isBinary ? data : data.toString('utf8');
  const ok = (m.type === 'binary') === isBinary &&
             (isBinary ? Buffer.compare(got, expected) === 0
                       : got === expected);
  out.results.push({type: m.type, size: m.size, ok: ok,
                    got_type: isBinary ? 'binary' : 'text',
                    got_size: data.length});
  index++;
  sendNext();
});

ws.on('unexpected-response', (req, res) => {
  out.error = 'HTTP ' + res.statusCode;
  finish(1);
});

ws.on('error', (err) => { out.error = String(err && err.message || err); });

ws.on('close', (code, reason) => {
  out.close_code = code;
  out.close_reason = reason.toString('utf8');
  const allOk = out.results.length === spec.messages.length &&
                out.results.every((r) => r.ok);
  finish(allOk && code === 1000 && !out.error ? 0 : 1);
});
