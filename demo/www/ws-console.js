/* ws-console.js: a small console for one WebSocket endpoint, shared by the
 * demo pages. It builds its controls inside an element and exercises the
 * whole browser WebSocket API: the constructor with a subprotocol list,
 * the open/message/error/close events, text and binary sends, close with a
 * code and reason, and the readyState, bufferedAmount, protocol and
 * extensions attributes. Plain JS, no framework, no build step.
 *
 *   var con = wsConsole({
 *       path: '/echo',            // same host and port as the page; or a
 *                                 // function returning it, called at each
 *                                 // connect (e.g. to add a query string)
 *       mount: element,           // default: the element with id "console"
 *       protocols: '',            // comma-separated; '' offers none
 *       text: 'Hello',            // what the text field starts with
 *       sendPanel: true,          // false hides the raw Send controls
 *       autoConnect: true,
 *       onopen: function (con) {},           // optional hooks, called
 *       onmessage: function (data, con) {},  // after the console's own
 *       onclose: function (event, con) {}
 *   });
 *   con.connect(); con.send(data); con.close(code, reason);
 *   con.log(kind, text); con.socket()
 */
(function () {
    'use strict';

    var STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
    var CLOSE_NAMES = {  /* RFC 6455 §7.4.1 and the IANA registry */
        1000: 'Normal Closure', 1001: 'Going Away', 1002: 'Protocol Error',
        1003: 'Unsupported Data', 1005: 'No Status Received',
        1006: 'Abnormal Closure', 1007: 'Invalid Payload Data',
        1008: 'Policy Violation', 1009: 'Message Too Big',
        1010: 'Mandatory Extension', 1011: 'Internal Error',
        1012: 'Service Restart', 1013: 'Try Again Later',
        1015: 'TLS Handshake'
    };
    var HEX_SHOWN = 48;  /* bytes of a binary message shown in the log */
    var TEXT_SHOWN = 400;  /* characters of a text message shown */

    /* h('button', {type: 'button'}, 'text', child...): a DOM element. */
    function h(tag, attrs) {
        var node = document.createElement(tag);
        Object.keys(attrs || {}).forEach(function (k) {
            if (k === 'class') node.className = attrs[k];
            else node.setAttribute(k, attrs[k]);
        });
        for (var i = 2; i < arguments.length; i++) {
            var c = arguments[i];
            node.append(typeof c === 'string' ? document.createTextNode(c) : c);
        }
        return node;
    }

    function clock() {
        var d = new Date();
        return d.toTimeString().slice(0, 8) + '.' +
            String(d.getMilliseconds()).padStart(3, '0');
    }

    /* The bytes of an ArrayBuffer (received) or a typed array (sent). */
    function bytesOf(data) {
        return data instanceof ArrayBuffer ? new Uint8Array(data) :
            new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }

    function hex(bytes) {
        var s = Array.from(bytes.subarray(0, HEX_SHOWN), function (b) {
            return b.toString(16).padStart(2, '0');
        }).join(' ');
        return bytes.length > HEX_SHOWN ? s + ' …' : s;
    }

    /* A long text's start, not cut inside a surrogate pair. */
    function clip(s) {
        if (s.length <= TEXT_SHOWN) return s;
        return s.slice(0, TEXT_SHOWN).replace(/[\uD800-\uDBFF]$/, '') + ' …';
    }

    function utf8Length(s) {
        return new TextEncoder().encode(s).length;
    }

    /* ws: for a page served over http:, wss: for https:, so the same page
     * works behind TLS; same host and port as the page. */
    function socketUrl(path) {
        return (location.protocol === 'https:' ? 'wss:' : 'ws:') +
            '//' + location.host + path;
    }

    window.wsConsole = function (opts) {
        function currentUrl() {
            return socketUrl(typeof opts.path === 'function' ? opts.path() :
                             opts.path);
        }
        var url = currentUrl();
        var mount = opts.mount || document.getElementById('console');
        var ws = null;

        /* The controls. */
        var dot = h('span', {class: 'dot'});
        var stateText = h('strong', {}, 'CLOSED');
        var protocolsIn = h('input', {type: 'text', class: 'grow',
            value: opts.protocols || '', 'aria-label': 'subprotocols',
            placeholder: 'none, or a comma-separated list'});
        var connectBtn = h('button', {type: 'button'}, 'Connect');
        var codeIn = h('input', {type: 'number', class: 'code', value: '1000',
            min: '1000', max: '4999', 'aria-label': 'close code'});
        var reasonIn = h('input', {type: 'text', class: 'grow',
            placeholder: 'reason', 'aria-label': 'close reason',
            title: 'at most 123 bytes of UTF-8'});
        var closeBtn = h('button', {type: 'button'}, 'Close');
        var textIn = h('input', {type: 'text', class: 'grow',
            value: opts.text === undefined ? 'Hello, WebSocket' : opts.text,
            'aria-label': 'message text'});
        var sendTextBtn = h('button', {type: 'button'}, 'Send text');
        var sendUtf8Btn = h('button', {type: 'button',
            title: 'the same text, as a binary message of its UTF-8 bytes'},
            'Send as binary');
        var countIn = h('input', {type: 'number', class: 'count', value: '16',
            min: '0', 'aria-label': 'number of random bytes'});
        var sendRandomBtn = h('button', {type: 'button'}, 'Send random bytes');
        var props = {};
        var propList = h('dl', {class: 'props'});
        ['readyState', 'bufferedAmount', 'protocol', 'extensions',
         'binaryType'].forEach(function (name) {
            props[name] = h('dd', {}, '–');
            propList.append(h('dt', {}, name), props[name]);
        });
        var logList = h('ol', {class: 'log'});
        var clearBtn = h('button', {type: 'button', class: 'small'}, 'Clear');
        var urlText = h('code', {}, url);
        var sendPanel = h('fieldset', {class: 'send'},
            h('legend', {}, 'Send'),
            h('div', {class: 'row'}, textIn, sendTextBtn, sendUtf8Btn),
            h('div', {class: 'row'}, countIn, sendRandomBtn));
        if (opts.sendPanel === false) sendPanel.hidden = true;

        mount.append(
            h('p', {class: 'status'}, dot, stateText, ' ', urlText),
            h('div', {class: 'panels'},
              h('fieldset', {},
                h('legend', {}, 'Connection'),
                h('div', {class: 'row'},
                  h('span', {class: 'lbl'}, 'Subprotocols'),
                  protocolsIn, connectBtn),
                h('div', {class: 'row'},
                  h('span', {class: 'lbl'}, 'Close code'),
                  codeIn, reasonIn, closeBtn),
                h('p', {class: 'hint'}, 'A page may close with 1000 or ' +
                  '3000–4999; other codes throw InvalidAccessError.')),
              h('fieldset', {},
                h('legend', {}, 'Attributes'), propList)),
            sendPanel,
            h('div', {class: 'loghead'}, h('h2', {}, 'Events'), clearBtn),
            logList);

        function log(kind, text) {
            var item = h('li', {class: kind},
                h('time', {}, clock()), h('span', {class: 'kind'}, kind),
                h('span', {class: 'text'}, text));
            logList.append(item);
            while (logList.childNodes.length > 500)
                logList.firstChild.remove();
            logList.scrollTop = logList.scrollHeight;
        }

        /* Redrawn on a timer as well as on events: readyState and
         * bufferedAmount change without any event to say so. */
        function render() {
            var state = ws ? ws.readyState : WebSocket.CLOSED;
            var open = state === WebSocket.OPEN;
            stateText.textContent = STATES[state];
            dot.className = 'dot ' + STATES[state].toLowerCase();
            props.readyState.textContent = state + ' (' + STATES[state] + ')';
            if (ws) {
                props.bufferedAmount.textContent = ws.bufferedAmount + ' bytes';
                props.protocol.textContent = JSON.stringify(ws.protocol);
                props.extensions.textContent = JSON.stringify(ws.extensions);
                props.binaryType.textContent = ws.binaryType;
            }
            connectBtn.disabled = !(state === WebSocket.CLOSED);
            protocolsIn.disabled = connectBtn.disabled;
            closeBtn.disabled = !(open || state === WebSocket.CONNECTING);
            [sendTextBtn, sendUtf8Btn, sendRandomBtn].forEach(function (b) {
                b.disabled = !open;
            });
        }

        function describe(data) {
            if (typeof data === 'string')
                return 'text, ' + data.length + ' chars / ' + utf8Length(data) +
                    ' bytes: ' + clip(data);
            var bytes = bytesOf(data);
            return 'binary, ' + bytes.length + ' bytes: ' + hex(bytes);
        }

        function connect() {
            var list = protocolsIn.value.split(',').map(function (s) {
                return s.trim();
            }).filter(Boolean);
            url = currentUrl();
            urlText.textContent = url;
            try {
                ws = new WebSocket(url, list);
            } catch (e) {  /* SyntaxError: a bad URL or subprotocol list */
                return log('error', e.name + ': ' + e.message);
            }
            /* ArrayBuffer rather than the default Blob: readable at once. */
            ws.binaryType = 'arraybuffer';
            log('info', 'connecting to ' + url + ' offering ' +
                (list.length ? list.join(', ') : 'no subprotocol'));
            ws.onopen = function () {
                log('open', 'protocol ' + JSON.stringify(ws.protocol) +
                    ', extensions ' + JSON.stringify(ws.extensions));
                render();
                if (opts.onopen) opts.onopen(api);
            };
            ws.onmessage = function (ev) {
                log('in', describe(ev.data));
                if (opts.onmessage) opts.onmessage(ev.data, api);
            };
            ws.onerror = function () {
                /* Browsers deliberately say nothing more; the close event
                 * that follows carries the code. */
                log('error', 'error event (details follow in the close event)');
            };
            ws.onclose = function (ev) {
                var name = CLOSE_NAMES[ev.code];
                log('close', 'code ' + ev.code + (name ? ' (' + name + ')' : '') +
                    ', reason ' + JSON.stringify(ev.reason) +
                    ', wasClean ' + ev.wasClean);
                render();
                if (opts.onclose) opts.onclose(ev, api);
            };
            render();
        }

        function send(data) {
            if (!ws || ws.readyState !== WebSocket.OPEN)
                return log('error', 'not open');
            ws.send(data);
            log('out', describe(data) + '  (bufferedAmount ' +
                ws.bufferedAmount + ')');
            render();
        }

        function close(code, reason) {
            if (!ws) return;
            try {
                if (code === undefined) ws.close();
                else ws.close(code, reason);
                log('info', 'close(' + (code === undefined ? '' :
                    code + ', ' + JSON.stringify(reason)) + ') called');
            } catch (e) {  /* InvalidAccessError: code not 1000/3000-4999;
                              SyntaxError: reason over 123 bytes */
                log('error', e.name + ': ' + e.message);
            }
            render();
        }

        connectBtn.onclick = connect;
        closeBtn.onclick = function () {
            var code = codeIn.value.trim();
            close(code === '' ? undefined : Number(code), reasonIn.value);
        };
        sendTextBtn.onclick = function () { send(textIn.value); };
        textIn.onkeydown = function (ev) {
            if (ev.key === 'Enter') send(textIn.value);
        };
        sendUtf8Btn.onclick = function () {
            send(new TextEncoder().encode(textIn.value));
        };
        sendRandomBtn.onclick = function () {
            var bytes = new Uint8Array(Math.max(0, Number(countIn.value) || 0));
            /* getRandomValues fills at most 64 KiB per call. */
            for (var i = 0; i < bytes.length; i += 65536)
                crypto.getRandomValues(bytes.subarray(i, i + 65536));
            send(bytes);
        };
        clearBtn.onclick = function () { logList.textContent = ''; };

        setInterval(render, 100);
        render();

        var api = {
            connect: connect, send: send, close: close, log: log,
            socket: function () { return ws; }
        };
        if (opts.autoConnect !== false) connect();
        return api;
    };
})();
