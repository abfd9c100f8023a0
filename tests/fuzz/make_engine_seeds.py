#!/usr/bin/env python3
# make_engine_seeds.py: write the permessage-deflate seeds (pmd-*) of
# tests/fuzz/corpus/fuzz_engine/, whose layout fuzz_engine.c describes at
# its top: seven config bytes with the queue policy bits at 3, three
# deflate bytes, then the client's byte stream. The seeds are binary, so
# this is how to read, change or add one; run it from anywhere, it writes
# next to itself. The older seeds were made by hand and are left alone.
import os
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_engine")
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])   # RFC 6455 §5.7's masking key

# Indexes into fuzz_engine.c's tables.
SIZES = {0: 0, 1: 1, 2: 2, 5: 3, 16: 4, 125: 5, 65536: 6, None: 7}
CAPS = {0: 0, 1: 1, 5: 2, 16: 3, 100: 4, 4096: 5, 65536: 6, None: 7}
FRAG_SIZES = {0: 0, 1: 1, 3: 2, 100: 3}
MIN_SIZES = {0: 0, 1: 1, 2: 2, 5: 3, 16: 4, 125: 5, 1000: 6, None: 7}
REFUSE, FAIL_1008, FAIL_1013 = 0, 1, 2
BORROW_NONE, BORROW_LEND, BORROW_NULL, BORROW_ALTERNATE = 0, 1, 2, 3


def frame(opcode, payload, fin=True, rsv1=False):
    """A masked client frame."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = bytes([b0, 0x80 | n])
    elif n < 65536:
        hdr = bytes([b0, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        hdr = bytes([b0, 0x80 | 127]) + n.to_bytes(8, "big")
    return hdr + KEY + bytes(c ^ KEY[i % 4] for i, c in enumerate(payload))


def deflate(data, wbits=15):
    """data compressed as RFC 7692 §7.2.1 says, without context."""
    z = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def seed(name, stream, max_frame=None, max_msg=None, fragments=1024,
         cap=None, frag_size=0, timers=0, pattern=(0x1F,) * 4,
         client_bits=15, client_no_context=False, our_bits=15,
         our_no_context=False, mem_level=8, level=-1, min_size=0,
         policy=REFUSE, borrow=BORROW_NONE, probe=False, bad=0):
    frag_idx = [0, 1, 2, 3, 5, 16, 1024, None].index(fragments)
    cfg = bytes([
        SIZES[max_frame] | SIZES[max_msg] << 3 | 3 << 6,
        frag_idx | CAPS[cap] << 3 | FRAG_SIZES[frag_size] << 6,
        timers,
        *pattern,
    ])
    assert not probe or MIN_SIZES[min_size] & 3 == bad
    pmd = bytes([
        (client_bits - 9) | client_no_context << 3 | (our_bits - 9) << 4
        | our_no_context << 7,
        (mem_level - 1) | (level + 1) << 4,
        MIN_SIZES[min_size] | policy << 3 | borrow << 5 | probe << 7,
    ])
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(cfg + pmd + stream)


HELLO = bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])   # §7.2.3.1
CLOSE = frame(0x8, b"\x03\xe8")

# Receiving: the RFC 7692 §7.2.3 examples, and what must fail.
seed("pmd-rfc-hello", frame(0x1, HELLO, rsv1=True) + CLOSE)
# §7.2.3.2: the second "Hello" refers back into the first.
seed("pmd-rfc-hello-twice",
     frame(0x1, HELLO, rsv1=True)
     + frame(0x1, bytes([0xF2, 0x00, 0x11, 0x00, 0x00]), rsv1=True) + CLOSE,
     pattern=(0x0C, 0x1F, 0x1F, 0x1F))
# §7.2.3.1, fragmented: RSV1 on the first frame only; a ping in between.
seed("pmd-rfc-hello-fragmented",
     frame(0x1, HELLO[:3], fin=False, rsv1=True) + frame(0x9, b"hi")
     + frame(0x0, HELLO[3:]) + CLOSE,
     pattern=(0x02, 0x04, 0x1F, 0x1F), client_no_context=True)
seed("pmd-rfc-stored-block",   # §7.2.3.3
     frame(0x2, bytes([0x00, 0x05, 0x00, 0xFA, 0xFF]) + b"Hello\x00",
           rsv1=True) + CLOSE)
seed("pmd-rfc-bfinal",         # §7.2.3.4: BFINAL, then a new stream
     frame(0x1, bytes([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00]),
           rsv1=True) + frame(0x1, HELLO, rsv1=True) + CLOSE,
     client_bits=9)
seed("pmd-rfc-empty",          # §7.2.3.6, and no payload at all
     frame(0x1, b"\x00", rsv1=True) + frame(0x2, b"", rsv1=True) + CLOSE)
seed("pmd-rsv1-continuation",
     frame(0x1, HELLO[:3], fin=False, rsv1=True)
     + frame(0x0, HELLO[3:], rsv1=True))
seed("pmd-rsv1-ping", frame(0x9, b"", rsv1=True))
seed("pmd-bomb",               # 1 MiB of zeros for a 64 KiB limit: 1009
     frame(0x2, deflate(bytes(1 << 20)), rsv1=True),
     max_msg=65536, client_no_context=True)
seed("pmd-corrupt",            # BTYPE 11 is reserved: 1007
     frame(0x2, b"\xff\xff\xff\xff", rsv1=True))
seed("pmd-cut-inside-block",   # §7.2.1's empty block missing: 1007
     frame(0x1, HELLO[:4], rsv1=True))
seed("pmd-bad-utf8-inflated",
     frame(0x1, deflate(b"ok \xc3\x28 not"), rsv1=True))
seed("pmd-uncompressed-too", # RSV1 clear: a plain message still works
     frame(0x1, b"Hello") + frame(0x1, HELLO, rsv1=True) + CLOSE,
     min_size=None, probe=True, bad=3)

# Sending: pattern bytes 0x60-0x9f send after their chunk, 0x40-0x5f
# write, 0xa0-0xbf tick, 0xe0-0xff close (act() in fuzz_engine.c).
# Without a Close from the peer, what was queued is written at the end.
PINGS = b"".join(frame(0x9, bytes([i])) for i in range(8))
seed("pmd-send-takeover", PINGS, pattern=(0x65, 0x86, 0x45, 0x6B),
     min_size=5)
seed("pmd-send-then-close", PINGS + CLOSE,
     pattern=(0x65, 0x46, 0x8B, 0x25), min_size=2)
seed("pmd-send-fragmented", PINGS, pattern=(0x6B, 0x8A, 0x25, 0x7E),
     frag_size=3, min_size=2, level=9, mem_level=9, our_bits=9)
seed("pmd-send-shared-lend", PINGS, pattern=(0x6B, 0x6B, 0x45, 0x8F),
     our_no_context=True, borrow=BORROW_LEND, min_size=1)
seed("pmd-send-shared-alternate", PINGS, pattern=(0x6B, 0x8A, 0x6B, 0x6A),
     our_no_context=True, borrow=BORROW_ALTERNATE, min_size=16,
     level=0, probe=True, bad=0)
seed("pmd-send-borrow-null", PINGS, pattern=(0x65, 0x8A, 0x45, 0x6F),
     our_no_context=True, borrow=BORROW_NULL, level=1, mem_level=1)
seed("pmd-send-queue-1013", PINGS, pattern=(0x65, 0x8A, 0x6F, 0x67),
     cap=16, policy=FAIL_1013, min_size=0)
