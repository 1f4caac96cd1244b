"""Request smuggling: malformed requests sent as raw bytes to kite-proxy.

Each one must be refused with the right status and `connection: close`,
the connection must end there (a valid request pipelined behind it is
never processed), and nothing of it may reach the backend. The backend is
a raw socket server that records every byte it receives, so "never
reached" is checked on the wire, not trusted to counters."""

import socket

import pytest

from conftest import (LOOPBACK, Procs, RawBackend, SockReader,
                      access_log_lines, http_request, proxy_bootstrap,
                      parse_raw_request, proxy_stats, read_response, start_proxy, wait_for)

HOST = b"Host: example.com"
CHUNKED = b"Transfer-Encoding: chunked"
# Pipelined after every malformed request: it must never be processed.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"


def smuggled(tag):
    return SMUGGLED.replace(b"/smuggled", b"/smuggled-" + tag.encode())


def req(fields, body=b"", start=b"POST / HTTP/1.1"):
    return (start + b"\r\n" + b"".join(f + b"\r\n" for f in fields) +
            b"\r\n" + body)


def get(fields, start=b"GET / HTTP/1.1"):
    return req(fields, start=start)


# (id, raw request, expected status, rejected in the body?)
# Head errors are refused before the proxy touches the upstream; body
# errors (bad chunk framing) are found while the body streams, after the
# head was accepted, so the proxy may already hold an upstream connection.
CASES = [
    # -- Content-Length / Transfer-Encoding ambiguity
    ("cl_then_te", req([HOST, b"Content-Length: 5", CHUNKED],
                       b"0\r\n\r\n"), 400),
    ("te_then_cl", req([HOST, CHUNKED, b"Content-Length: 5"],
                       b"0\r\n\r\n"), 400),
    ("cl_duplicate_equal", req([HOST, b"Content-Length: 5",
                                b"Content-Length: 5"], b"hello"), 400),
    ("cl_duplicate_different", req([HOST, b"Content-Length: 5",
                                    b"Content-Length: 6"], b"hello!"), 400),
    ("cl_list", req([HOST, b"Content-Length: 5, 5"], b"hello"), 400),
    ("cl_plus_sign", req([HOST, b"Content-Length: +5"], b"hello"), 400),
    ("cl_negative", req([HOST, b"Content-Length: -5"], b"hello"), 400),
    ("cl_hex", req([HOST, b"Content-Length: 0x5"], b"hello"), 400),
    ("cl_inner_space", req([HOST, b"Content-Length: 1 0"],
                           b"helloworld"), 400),
    ("cl_empty", req([HOST, b"Content-Length: "]), 400),
    ("cl_overflow", req([HOST, b"Content-Length: 99999999999999999999"],
                        b"x"), 400),
    ("cl_decimal_point", req([HOST, b"Content-Length: 5.0"], b"hello"), 400),
    ("te_chunked_then_identity", req([HOST, b"Transfer-Encoding: chunked, "
                                      b"identity"], b"0\r\n\r\n"), 400),
    ("te_identity", req([HOST, b"Transfer-Encoding: identity"],
                        b"0\r\n\r\n"), 501),
    ("te_gzip", req([HOST, b"Transfer-Encoding: gzip"], b"0\r\n\r\n"), 501),
    ("te_gzip_chunked", req([HOST, b"Transfer-Encoding: gzip, chunked"],
                            b"0\r\n\r\n"), 501),
    ("te_xchunked", req([HOST, b"Transfer-Encoding: xchunked"],
                        b"0\r\n\r\n"), 501),
    ("te_chunked_twice_in_list", req([HOST, b"Transfer-Encoding: chunked, "
                                      b"chunked"], b"0\r\n\r\n"), 400),
    ("te_chunked_two_fields", req([HOST, CHUNKED, CHUNKED], b"0\r\n\r\n"),
     400),
    ("te_obs_fold", req([HOST, b"Transfer-Encoding:", b" chunked"],
                        b"0\r\n\r\n"), 400),
    ("te_vertical_tab", req([HOST, b"Transfer-Encoding: \x0bchunked"],
                            b"0\r\n\r\n"), 400),
    ("te_in_http10", req([HOST, CHUNKED], b"0\r\n\r\n",
                         start=b"POST / HTTP/1.0"), 400),
    # -- field syntax
    ("te_space_before_colon", req([HOST, b"Transfer-Encoding : chunked"],
                                  b"0\r\n\r\n"), 400),
    ("cl_tab_before_colon", req([HOST, b"Content-Length\t: 5"], b"hello"),
     400),
    ("host_space_before_colon", get([b"Host : example.com"]), 400),
    ("bare_lf_everywhere", b"GET / HTTP/1.1\nHost: example.com\n\n", 400),
    ("bare_lf_after_field", b"GET / HTTP/1.1\r\nHost: example.com\n"
                            b"X-A: b\r\n\r\n", 400),
    ("bare_lf_after_request_line", b"GET / HTTP/1.1\nHost: example.com"
                                   b"\r\n\r\n", 400),
    ("bare_cr_in_field", b"GET / HTTP/1.1\r\nHost: example.com\rX-A: b"
                         b"\r\n\r\n", 400),
    ("bare_cr_before_end", b"GET / HTTP/1.1\r\nHost: example.com\r\n"
                           b"\r\r\n", 400),
    ("nul_in_value", get([HOST, b"X-A: a\x00b"]), 400),
    ("ctl_in_value", get([HOST, b"X-A: a\x01b"]), 400),
    ("del_in_value", get([HOST, b"X-A: a\x7fb"]), 400),
    ("escape_in_value", get([HOST, b"X-A: a\x1b[31mb"]), 400),
    ("non_token_name", get([HOST, b"X(A): b"]), 400),
    ("empty_name", get([HOST, b": b"]), 400),
    ("no_colon", get([HOST, b"X-A b"]), 400),
    ("obs_fold_value", get([HOST, b"X-A: a", b"\tb"]), 400),
    # -- request line
    ("two_spaces", get([HOST], start=b"GET  / HTTP/1.1"), 400),
    ("tab_separator", get([HOST], start=b"GET\t/ HTTP/1.1"), 400),
    ("trailing_space", get([HOST], start=b"GET / HTTP/1.1 "), 400),
    ("missing_version", b"GET /\r\n\r\n", 400),
    ("lowercase_version", get([HOST], start=b"GET / http/1.1"), 400),
    ("version_garbage", get([HOST], start=b"GET / HTTP/1.1x"), 400),
    ("version_1_2", get([HOST], start=b"GET / HTTP/1.2"), 505),
    ("version_2_0", get([HOST], start=b"GET / HTTP/2.0"), 505),
    ("version_0_9", get([HOST], start=b"GET / HTTP/0.9"), 505),
    ("control_in_target", get([HOST], start=b"GET /a\x01b HTTP/1.1"), 400),
    ("fragment_in_target", get([HOST], start=b"GET /a#b HTTP/1.1"), 400),
    ("non_token_method", get([HOST], start=b"G(T / HTTP/1.1"), 400),
    # -- Host
    ("missing_host", get([b"X-A: b"]), 400),
    ("two_hosts", get([HOST, b"Host: other.com"]), 400),
    ("host_list", get([b"Host: a.com, b.com"]), 400),
    ("host_userinfo", get([b"Host: user@a.com"]), 400),
    ("host_bad_port", get([b"Host: a.com:99x"]), 400),
    # -- limits (Envoy's defaults: 100 headers, 60 KiB)
    ("101_headers", get([HOST] + [b"X-H%d: v" % i for i in range(100)]),
     431),
    ("head_over_60k", get([HOST, b"X-Big: " + b"a" * (61 * 1024)]), 431),
    ("request_line_over_60k",
     get([HOST], start=b"GET /" + b"a" * (61 * 1024) + b" HTTP/1.1"), 431),
    # -- chunked framing
    ("chunk_size_overflow", req([HOST, CHUNKED],
                                b"1" + b"0" * 16 + b"\r\nx\r\n0\r\n\r\n"),
     400, True),
    ("chunk_size_0x", req([HOST, CHUNKED],
                          b"0x10\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"),
     400, True),
    ("chunk_size_negative", req([HOST, CHUNKED], b"-1\r\nx\r\n0\r\n\r\n"),
     400, True),
    ("chunk_size_empty", req([HOST, CHUNKED], b"\r\nx\r\n0\r\n\r\n"),
     400, True),
    ("chunk_size_leading_space", req([HOST, CHUNKED],
                                     b" 5\r\nhello\r\n0\r\n\r\n"), 400, True),
    ("chunk_data_missing_crlf", req([HOST, CHUNKED],
                                    b"5\r\nhelloXX0\r\n\r\n"), 400, True),
    ("chunk_data_longer_than_size", req([HOST, CHUNKED],
                                        b"3\r\nhello\r\n0\r\n\r\n"),
     400, True),
    ("chunk_size_bare_lf", req([HOST, CHUNKED],
                               b"5\nhello\r\n0\r\n\r\n"), 400, True),
    ("chunk_extension_ctl", req([HOST, CHUNKED],
                                b"5;a=\x01b\r\nhello\r\n0\r\n\r\n"),
     400, True),
    ("chunk_extension_bare_cr", req([HOST, CHUNKED],
                                    b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
     400, True),
    ("trailer_space_before_colon", req([HOST, CHUNKED],
                                       b"5\r\nhello\r\n0\r\nX-T : v\r\n\r\n"),
     400, True),
    ("trailer_nul", req([HOST, CHUNKED],
                        b"5\r\nhello\r\n0\r\nX-T: a\x00\r\n\r\n"), 400, True),
    ("chunk_line_over_4k", req([HOST, CHUNKED],
                               b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n"),
     400, True),
    ("trailer_over_100_fields", req([HOST, CHUNKED],
                                    b"5\r\nhello\r\n0\r\n" +
                                    b"".join(b"T%d: v\r\n" % i
                                             for i in range(101)) + b"\r\n"),
     431, True),
    ("trailer_over_60k", req([HOST, CHUNKED],
                             b"5\r\nhello\r\n0\r\nT: " + b"v" * (61 * 1024) +
                             b"\r\n\r\n"), 431, True),
    # -- targets the proxy must not forward
    ("absolute_form_https",
     b"GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
    ("absolute_form_ftp",
     b"GET ftp://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\n"
                b"Host: example.com:443\r\n\r\n", 501),
]


@pytest.fixture(scope="module")
def strict_proxy(tmp_path_factory):
    """One proxy and one recording backend for the whole table: every
    case leaves the backend untouched, so they can share it."""
    ps = Procs(tmp_path_factory.mktemp("smuggling"))
    backend = RawBackend()
    proxy = start_proxy(ps, proxy_bootstrap({"raw": [backend.port]}))
    yield proxy, backend
    backend.close()
    problems = ps.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def settle(proxy, backend, timeout=5.0):
    """Wait until the backend has seen every upstream connection the proxy
    opened, and seen each one end (a refused request's upstream
    connection, if any, is closed): then every byte the proxy sent for
    earlier cases has been recorded."""
    def quiet():
        n = proxy_stats(proxy)["cluster.raw.upstream_cx_total"]
        with backend.lock:
            conns = list(backend.conns)
        return len(conns) >= n and all(c.closed.is_set() for c in conns)
    wait_for(quiet, timeout, "every upstream connection to end")


def send_and_read(port, data):
    """Send data in one write; return (response, closed_after_it)."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as s:
        s.sendall(data)
        rd = SockReader(s)
        resp = read_response(rd)
        return resp, rd.at_eof(timeout=5)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_request_refused(strict_proxy, case):
    proxy, backend = strict_proxy
    name, data, status = case[:3]
    in_body = len(case) > 3 and case[3]
    settle(proxy, backend)
    before = len(backend.received)
    resp, closed = send_and_read(proxy.port, data + smuggled(name))
    assert resp.status == status, (name, resp.status,
                                   resp.header("x-kite-error"))
    assert (resp.header("connection") or "").lower() == "close", \
        resp.raw_head
    assert resp.header("x-kite-error"), "a reason in words"
    assert closed, "the connection must end after a refused request"
    # Nothing reached the backend: no bytes for head errors; for body
    # errors, never a complete request and never the pipelined one.
    settle(proxy, backend)
    got = backend.received[before:]
    if in_body:
        assert parse_raw_request(got)[0] is None, got
    else:
        assert got == b"", got
    assert b"smuggled-" + name.encode() not in backend.received


def test_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_rejection_counted_and_logged(strict_proxy):
    proxy, backend = strict_proxy
    st0 = proxy_stats(proxy)
    resp, closed = send_and_read(
        proxy.port, req([HOST, b"Content-Length: 3", CHUNKED,
                         b"User-Agent: smuggler"], b"0\r\n\r\n"))
    assert resp.status == 400 and closed
    st = proxy_stats(proxy)
    key = "http.ingress_http.downstream_cx_protocol_error"
    assert st[key] == st0.get(key, 0) + 1
    key = "http.ingress_http.downstream_rq_4xx"
    assert st[key] == st0.get(key, 0) + 1
    # As Envoy: the head was never parsed, so the line has no method or
    # path, and the flag says downstream protocol error.
    wait_for(lambda: [ln for ln in access_log_lines(proxy)
                      if '"- - HTTP/1.1" 400 DPE ' in ln], 5,
             "an access log line for the refused request")


def test_valid_then_bad_then_valid_in_one_write(procs, raw_backend):
    """A pipelined stream: the first request is forwarded exactly, the
    second is malformed (400, close), the third is never processed."""
    backend = raw_backend()
    p = start_proxy(procs, proxy_bootstrap({"raw": [backend.port]}))
    first = (b"POST /first HTTP/1.1\r\nHost: example.com\r\n"
             b"Content-Length: 5\r\n\r\nhello")
    bad = (b"POST /second HTTP/1.1\r\nHost: example.com\r\n"
           b"Content-Length: 5\r\nContent-Length: 50\r\n\r\n"
           b"world")
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as s:
        s.sendall(first + bad + SMUGGLED)
        rd = SockReader(s)
        r1 = read_response(rd)
        assert r1.status == 200 and r1.body == b"ok\n"
        r2 = read_response(rd)
        assert r2.status == 400
        assert r2.header("connection") == "close"
        assert rd.at_eof()
    reqs = backend.requests
    assert len(reqs) == 1
    (r,) = reqs
    assert r.request_line == "POST /first HTTP/1.1"
    assert r.body == b"hello" and r.header("content-length") == "5"
    # exactly one message on the wire, nothing after it
    assert backend.received == r.raw


def test_forwarded_framing_is_regenerated(procs, raw_backend):
    """What the backend receives has one unambiguous framing, whatever
    legal form the client used."""
    backend = raw_backend()
    p = start_proxy(procs, proxy_bootstrap({"raw": [backend.port]}))
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as s:
        rd = SockReader(s)
        # leading zeros are 1*DIGIT: legal, and forwarded as a plain 5
        s.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n"
                  b"\r\nhello")
        assert read_response(rd).status == 200
        # chunked with extensions and a trailer: re-chunked, extensions
        # and trailers dropped
        s.sendall(b"POST /b HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: Chunked\r\n\r\n"
                  b"3;ext=1\r\nabc\r\n2 ; x=\"y\"\r\nde\r\n0\r\n"
                  b"X-Trailer: t\r\n\r\n")
        assert read_response(rd).status == 200
    a, b = backend.requests
    assert a.header("content-length") == "5" and a.body == b"hello"
    assert b.header("transfer-encoding") == "chunked"
    assert b.header("content-length") is None
    assert b.body == b"abcde"
    assert b"ext" not in b.raw and b"X-Trailer" not in b.raw
    assert backend.received == a.raw + b.raw


@pytest.mark.parametrize("kb,head_bytes,status", [
    (2, 3 * 1024, 431),
    (2, 1536, 200),
])
def test_max_request_headers_kb(procs, raw_backend, kb, head_bytes, status):
    backend = raw_backend()
    p = start_proxy(procs, proxy_bootstrap(
        {"raw": [backend.port]}, hcm={"max_request_headers_kb": kb}))
    base = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n"
    data = base.replace(b"X-Pad: ", b"X-Pad: " +
                        b"p" * (head_bytes - len(base)))
    assert len(data) == head_bytes
    with socket.create_connection((LOOPBACK, p.port), timeout=10) as s:
        s.sendall(data)
        r = read_response(SockReader(s))
    assert r.status == status
    assert len(backend.requests) == (1 if status == 200 else 0)


def test_max_headers_count_configurable(procs, raw_backend):
    backend = raw_backend()
    p = start_proxy(procs, proxy_bootstrap(
        {"raw": [backend.port]},
        hcm={"common_http_protocol_options": {"max_headers_count": 10}}))
    fields = {f"X-H{i}": "v" for i in range(8)}  # + Host, Connection = 10
    assert http_request(p.port, "/", headers=fields).status == 200
    fields["X-H8"] = "v"
    r = http_request(p.port, "/", headers=fields)
    assert r.status == 431
    assert len(backend.requests) == 1
