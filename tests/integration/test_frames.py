"""Bad frames over raw sockets, each failing the connection with its close
code (RFC 6455 §5, §7.4.1, §8.1), and the size and fragment limits of a
<Location> decided from the frame header alone.

/small has WebSocketMaxFrameSize 1K, WebSocketMaxMessageSize 4K and
WebSocketMaxFragments 8; /echo has the defaults (1 MiB, 1 MiB, 1024).
"""

import time

import pytest

import wsproto
from wsproto import BINARY, CLOSE, CONT, PING, PONG, TEXT

KiB = 1024

# How long the server may take to answer a header that breaks a limit.
# It has the header and nothing else: waiting for the payload would wait
# forever, so anything slower than this counts as waiting.
HEADER_VERDICT_SECONDS = 3.0


def expect_fail(conn, code, timeout=None):
    """The server fails the connection: a close with `code`, then it
    closes TCP itself (§7.1.7) without waiting for the client."""
    conn.expect_close(code, timeout)
    assert conn.wait_eof(10), "server kept TCP open after failing it"


def expect_close_from_header(conn, code):
    """A close with `code` arrives while the announced payload is still
    unsent: the verdict came from the header."""
    start = time.monotonic()
    try:
        f = conn.recv_close(timeout=HEADER_VERDICT_SECONDS)
    except wsproto.Timeout:
        pytest.fail("no close within %.0f s of a header over the limit: "
                    "the server seems to wait for the payload"
                    % HEADER_VERDICT_SECONDS)
    assert f.close_code == code, "expected %d, got %r" % (code, f)
    return time.monotonic() - start


# ---------------------------------------------------------- protocol: 1002

def test_unmasked_client_frame_is_1002(client):
    conn = client.open("/echo")
    conn.send_frame(TEXT, b"hello", mask=False)
    expect_fail(conn, 1002)


def test_unmasked_empty_frame_is_1002(client):
    conn = client.open("/echo")
    conn.send_frame(BINARY, b"", mask=False)
    expect_fail(conn, 1002)


@pytest.mark.parametrize("rsv", [4, 2, 1, 7], ids=["rsv1", "rsv2", "rsv3",
                                                    "all"])
def test_rsv_bits_without_extension_are_1002(client, rsv):
    conn = client.open("/echo")
    conn.send_frame(TEXT, b"hello", rsv=rsv)
    expect_fail(conn, 1002)


def test_rsv_bit_on_control_frame_is_1002(client):
    conn = client.open("/echo")
    conn.send_frame(PING, b"x", rsv=4)
    expect_fail(conn, 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF],
                         ids=lambda o: "op%X" % o)
def test_reserved_opcode_is_1002(client, opcode):
    conn = client.open("/echo")
    conn.send_frame(opcode, b"x")
    expect_fail(conn, 1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE],
                         ids=["ping", "pong", "close"])
def test_control_frame_over_125_is_1002(client, opcode):
    conn = client.open("/echo")
    body = wsproto.close_payload(1000, "r" * 124) if opcode == CLOSE \
        else b"p" * 126
    assert len(body) == 126
    conn.send_frame(opcode, body)
    expect_fail(conn, 1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE],
                         ids=["ping", "pong", "close"])
def test_fragmented_control_frame_is_1002(client, opcode):
    conn = client.open("/echo")
    body = wsproto.close_payload(1000) if opcode == CLOSE else b"p"
    conn.send_frame(opcode, body, fin=False)
    expect_fail(conn, 1002)


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "nofin"])
def test_continuation_without_message_is_1002(client, fin):
    conn = client.open("/echo")
    conn.send_frame(CONT, b"orphan", fin=fin)
    expect_fail(conn, 1002)


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_new_message_inside_fragmented_one_is_1002(client, opcode):
    conn = client.open("/echo")
    conn.send_frame(TEXT, b"part one", fin=False)
    conn.send_frame(opcode, b"not a continuation")
    expect_fail(conn, 1002)


def test_continuation_after_finished_message_is_1002(client):
    conn = client.open("/echo")
    conn.send_frame(TEXT, b"whole")
    assert conn.recv_message() == (TEXT, b"whole")
    conn.send_frame(CONT, b"extra")
    expect_fail(conn, 1002)


def test_64bit_length_with_top_bit_is_1002(client):
    conn = client.open("/echo")
    conn.send(wsproto.encode_frame(BINARY, b"", length=1 << 63))
    conn.expect_close(1002, HEADER_VERDICT_SECONDS)


# ------------------------------------------------------------- UTF-8: 1007

@pytest.mark.parametrize("data", [
    b"\xff",
    b"caf\xc3",                     # ends inside a character
    b"\xc0\xaf",                    # overlong '/'
    b"\xe0\x80\xaf",                # overlong, 3 bytes
    b"\xed\xa0\x80",                # UTF-16 surrogate
    b"\xf4\x90\x80\x80",            # above U+10FFFF
    b"ok \x80 continuation alone",
], ids=["ff", "truncated", "overlong2", "overlong3", "surrogate",
        "too-big", "lone-continuation"])
def test_invalid_utf8_text_is_1007(client, data):
    conn = client.open("/echo")
    conn.send_frame(TEXT, data)
    expect_fail(conn, 1007)


def test_invalid_utf8_across_fragments_is_1007(client):
    # The first fragment ends inside a 3-byte character; '(' cannot
    # continue it.
    conn = client.open("/echo")
    conn.send_frame(TEXT, b"ok \xe2\x82", fin=False)
    conn.send_frame(CONT, b"(")
    expect_fail(conn, 1007)


def test_message_ending_inside_character_is_1007(client):
    conn = client.open("/echo")
    conn.send_frame(TEXT, b"ok \xf0\x9f", fin=False)
    conn.send_frame(CONT, b"\x98", fin=True)
    expect_fail(conn, 1007)


def test_invalid_utf8_fails_before_message_ends(client):
    # The module validates text as it arrives (README: "fails with 1007 at
    # the first byte that cannot be UTF-8"), so an unfinished message with
    # a bad byte is failed without waiting for its last fragment.
    conn = client.open("/echo")
    conn.send_frame(TEXT, b"fine so far \xff", fin=False)
    conn.expect_close(1007, HEADER_VERDICT_SECONDS)


def test_valid_utf8_split_inside_characters_is_echoed(client):
    text = "\u00e9\u20ac\U0001F600".encode("utf-8")   # 2+3+4 bytes
    conn = client.open("/echo")
    for i in range(len(text)):                        # one byte a fragment
        conn.send_frame(TEXT if i == 0 else CONT, text[i:i + 1],
                        fin=(i == len(text) - 1))
    assert conn.recv_message() == (TEXT, text)


def test_binary_is_not_utf8_checked(client):
    conn = client.open("/echo")
    conn.send_frame(BINARY, b"\xff\xfe\xc0\xaf")
    assert conn.recv_message() == (BINARY, b"\xff\xfe\xc0\xaf")


# ------------------------------------------------------------- limits: 1009

def test_frame_at_limit_is_echoed(client):
    conn = client.open("/small")
    data = wsproto.mask_bytes(b"\x00" * KiB, b"abcd")     # 1 KiB, any bytes
    conn.send_frame(BINARY, data)
    assert conn.recv_message() == (BINARY, data)


@pytest.mark.parametrize("length", [KiB + 1, 65536, 1 << 40],
                         ids=["1K+1", "64K", "1T"])
def test_frame_over_limit_is_1009_from_header(client, length):
    conn = client.open("/small")
    # Header (and mask key) only: the payload is never sent.
    conn.send(wsproto.encode_frame(BINARY, b"", length=length))
    expect_close_from_header(conn, 1009)
    assert conn.wait_eof(10)


def test_frame_over_default_limit_is_1009_from_header(client):
    conn = client.open("/echo")
    conn.send(wsproto.encode_frame(TEXT, b"", length=(1 << 20) + 1))
    expect_close_from_header(conn, 1009)


def test_message_at_limit_is_echoed(client):
    conn = client.open("/small")
    data = bytes(i % 251 for i in range(4 * KiB))
    for i in range(4):
        conn.send_frame(BINARY if i == 0 else CONT,
                        data[i * KiB:(i + 1) * KiB], fin=(i == 3))
    assert conn.recv_message(timeout=15) == (BINARY, data)


def test_message_over_limit_is_1009_from_header(client):
    # Four 1 KiB fragments reach the 4 KiB message limit; the fifth's
    # header promises one byte more, which decides it.
    conn = client.open("/small")
    for i in range(4):
        conn.send_frame(BINARY if i == 0 else CONT, b"m" * KiB, fin=False)
    conn.send(wsproto.encode_frame(CONT, b"", length=1, fin=True))
    expect_close_from_header(conn, 1009)


# --------------------------------------------------------- fragments: 1008

def test_fragments_at_limit_are_echoed(client):
    conn = client.open("/small")
    parts = [b"f%d." % i for i in range(8)]
    for i, p in enumerate(parts):
        conn.send_frame(TEXT if i == 0 else CONT, p, fin=(i == 7))
    assert conn.recv_message() == (TEXT, b"".join(parts))


def test_control_frames_do_not_count_as_fragments(client):
    conn = client.open("/small")
    parts = [b"f%d." % i for i in range(8)]
    for i, p in enumerate(parts):
        conn.send_frame(TEXT if i == 0 else CONT, p, fin=(i == 7))
        if i < 7:
            conn.send_frame(PING, b"%d" % i)
    pongs = 0
    while True:
        f = conn.recv_frame()
        if f.opcode == PONG:
            pongs += 1
            continue
        assert f.opcode == TEXT and f.fin, f
        assert f.payload == b"".join(parts)
        break
    # §5.5.3 lets a server answer only the latest of several pings.
    assert pongs >= 1


def test_too_many_fragments_is_1008(client):
    conn = client.open("/small")
    for i in range(8):
        conn.send_frame(TEXT if i == 0 else CONT, b"x", fin=False)
    conn.send_frame(CONT, b"y", fin=True)          # the ninth
    expect_fail(conn, 1008)


def test_limits_reset_between_messages(client):
    # Each message gets the full allowance: two 4 KiB messages in a row.
    conn = client.open("/small")
    for n in range(2):
        for i in range(4):
            conn.send_frame(BINARY if i == 0 else CONT, b"%d" % n * KiB,
                            fin=(i == 3))
        assert conn.recv_message() == (BINARY, b"%d" % n * 4 * KiB)
