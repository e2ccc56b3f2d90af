//! What the HTTP layer refuses, and how: 400 for malformed heads and the
//! request-smuggling vectors, 413 for bodies over the limit (before the
//! body is sent when Content-Length says so), 431 for oversize heads, 501
//! for unknown transfer codings, 505 for other HTTP versions. Every refusal
//! is a complete response with `Connection: close`, then the server closes.
#[path = "http_common/mod.rs"]
mod common;

use common::plain::{self, HELLO};
use common::{get, RawClient, Response, TestServer};
use squall::http::HTTPServerOptions;

/// Send `request` on a fresh connection; expect `status`, then a close.
/// Returns the refusal, whose body says why.
fn expect_refusal(server: &TestServer, name: &str, request: &[u8], status: u16) -> Response {
    let mut client = server.raw();
    client.send_lossy(request);
    let r = client.read_response();
    assert_eq!(
        r.status,
        status,
        "{name}: {:?} answered {} {:?}",
        String::from_utf8_lossy(request),
        r.status,
        r.text()
    );
    assert_eq!(r.header("Connection"), Some("close"), "{name}");
    assert!(client.closed_cleanly(), "{name}: not closed after refusal");
    r
}

const POST: &str = "POST /echo HTTP/1.1\r\nHost: t\r\n";

#[test]
fn malformed_heads_and_smuggling_vectors_get_400() {
    let server = plain::start_default();
    let chunked = format!("{POST}Transfer-Encoding: chunked\r\n\r\n");
    let mut cases: Vec<(&str, String)> = vec![
        ("garbage request line", "HELLO\r\n\r\n".into()),
        ("no version", "GET /\r\nHost: t\r\n\r\n".into()),
        (
            "bad method token",
            "G@T / HTTP/1.1\r\nHost: t\r\n\r\n".into(),
        ),
        ("NUL in method", "G\0T / HTTP/1.1\r\nHost: t\r\n\r\n".into()),
        (
            "CL + TE",
            format!("{POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "TE + CL",
            format!("{POST}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
        ),
        (
            "differing Content-Length lines",
            format!("{POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ),
        (
            "differing Content-Length list",
            format!("{POST}Content-Length: 5, 6\r\n\r\nhello!"),
        ),
        (
            "Content-Length +5",
            format!("{POST}Content-Length: +5\r\n\r\nhello"),
        ),
        (
            "Content-Length 0x5",
            format!("{POST}Content-Length: 0x5\r\n\r\nhello"),
        ),
        (
            "Content-Length -1",
            format!("{POST}Content-Length: -1\r\n\r\n"),
        ),
        (
            "Content-Length empty",
            format!("{POST}Content-Length: \r\n\r\n"),
        ),
        (
            "Content-Length overflow",
            format!("{POST}Content-Length: 99999999999999999999999\r\n\r\n"),
        ),
        (
            "duplicate Transfer-Encoding lines",
            format!(
                "{POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
        ),
        (
            "duplicate chunked in one line",
            format!("{POST}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "chunked not last",
            format!("{POST}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
        ),
        (
            "empty Transfer-Encoding",
            format!("{POST}Transfer-Encoding: ,\r\n\r\n0\r\n\r\n"),
        ),
        (
            "TE in HTTP/1.0",
            "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        ),
        ("NUL in header value", format!("{POST}X-A: a\0b\r\n\r\n")),
        (
            "CTL 0x01 in header value",
            format!("{POST}X-A: a\x01b\r\n\r\n"),
        ),
        ("DEL in header value", format!("{POST}X-A: a\x7fb\r\n\r\n")),
        (
            "bare CR in header value",
            format!("{POST}X-A: a\rb\r\n\r\n"),
        ),
        ("space before colon", format!("{POST}X-A : b\r\n\r\n")),
        (
            "space before colon (Host)",
            "GET / HTTP/1.1\r\nHost : t\r\n\r\n".into(),
        ),
        ("obs-fold", format!("{POST}X-A: a\r\n b\r\n\r\n")),
        ("empty header name", format!("{POST}: b\r\n\r\n")),
        ("missing Host", "GET / HTTP/1.1\r\n\r\n".into()),
        (
            "two Host lines",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
        ),
        ("Host list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n".into()),
        (
            "bare-LF chunk size line",
            format!("{chunked}5\nhello\r\n0\r\n\r\n"),
        ),
        (
            "bare-LF after chunk data",
            format!("{chunked}5\r\nhello\n0\r\n\r\n"),
        ),
        (
            "chunk data overruns its size",
            format!("{chunked}5\r\nhelloXX\r\n0\r\n\r\n"),
        ),
        (
            "chunk size 0x5",
            format!("{chunked}0x5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "chunk size +5",
            format!("{chunked}+5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "chunk size empty",
            format!("{chunked}\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "chunk size of 17 hex digits",
            format!("{chunked}10000000000000000\r\n"),
        ),
        (
            "chunk size line over 64 bytes",
            format!("{chunked}5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(100)),
        ),
    ];
    for (name, request) in cases.drain(..) {
        expect_refusal(&server, name, request.as_bytes(), 400);
    }
    // obs-text: a raw 0xE9 byte (Latin-1 é) is not UTF-8.
    let mut latin1 = format!("{POST}X-A: caf").into_bytes();
    latin1.extend_from_slice(b"\xe9\r\n\r\n");
    expect_refusal(&server, "non-UTF-8 header value", &latin1, 400);
    // The server is still fine after all that.
    assert_eq!(
        common::one_request(server.addr, get("/hello")).text(),
        HELLO
    );
}

#[test]
fn identical_content_lengths_are_accepted() {
    let server = plain::start_default();
    let r = common::one_request(
        server.addr,
        format!("{POST}Content-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello"),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

#[test]
fn unknown_transfer_coding_is_501() {
    let server = plain::start_default();
    // RFC 9112 §6.1: a coding the server does not understand is 501, also
    // when chunked is correctly the last (`gzip, chunked`).
    for coding in [
        "gzip",
        "identity",
        "x-custom",
        "gzip, chunked",
        "gzip,,chunked",
    ] {
        let request = format!("{POST}Transfer-Encoding: {coding}\r\n\r\n0\r\n\r\n");
        expect_refusal(&server, coding, request.as_bytes(), 501);
    }
    let two_lines =
        format!("{POST}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    expect_refusal(&server, "gzip, then chunked", two_lines.as_bytes(), 501);
}

#[test]
fn other_http_versions_are_505() {
    let server = plain::start_default();
    for version in ["HTTP/9.9", "HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
        let request = format!("GET / {version}\r\nHost: t\r\n\r\n");
        expect_refusal(&server, version, request.as_bytes(), 505);
    }
}

/// A request line that is not `method SP request-target SP HTTP/D.D` is
/// malformed (400), not a request for another HTTP version (505).
#[test]
fn malformed_request_lines_are_400_not_505() {
    let server = plain::start_default();
    for (name, line) in [
        ("space in the target", "GET /hel lo HTTP/1.1"),
        ("lower-case HTTP-name", "GET /hello http/1.1"),
        ("mixed-case HTTP-name", "GET /hello Http/1.1"),
        ("two spaces before the version", "GET /hello  HTTP/1.1"),
        ("two-digit major version", "GET /hello HTTP/11.1"),
        ("version without minor", "GET /hello HTTP/1"),
        ("space in the target, other version", "GET /a b HTTP/2.0"),
    ] {
        let request = format!("{line}\r\nHost: t\r\n\r\n");
        let r = expect_refusal(&server, name, request.as_bytes(), 400);
        assert!(
            r.text().contains("request line"),
            "{name}: says {:?}",
            r.text()
        );
    }
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) ... to
/// any request message that ... contains ... a Host header field with an
/// invalid field value." Host = uri-host [ ":" port ] (RFC 3986 §3.2.2).
#[test]
fn invalid_host_values_are_400() {
    let server = plain::start_default();
    for (name, host) in [
        ("userinfo", "u@x"),
        ("port not a number", "x:abc"),
        ("port far over 65535", "x:99999999"),
        ("port 65536", "x:65536"),
        ("two colons", "x:1:2"),
        ("unclosed IP literal", "[::1"),
        ("IP literal that is not IPv6", "[zz]"),
        ("text after the IP literal", "[::1]x"),
        ("path", "x/y"),
        ("query", "x?y"),
        ("fragment", "x#y"),
        ("space", "a b"),
        ("bad percent-encoding", "a%zz"),
    ] {
        let request = format!("GET /hello HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let r = expect_refusal(&server, name, request.as_bytes(), 400);
        assert!(
            r.text().contains("invalid Host header value"),
            "{name}: says {:?}",
            r.text()
        );
    }
    // The rule is not only for HTTP/1.1, which must send a Host.
    expect_refusal(
        &server,
        "HTTP/1.0 with an invalid Host",
        b"GET /hello HTTP/1.0\r\nHost: u@x\r\n\r\n",
        400,
    );
}

/// RFC 9112 §3.2: the request-target is origin-form, absolute-form (no
/// fragment in either), authority-form (only for CONNECT) or `*` (only for
/// OPTIONS).
#[test]
fn bad_request_targets_are_400() {
    let server = plain::start_default();
    for (name, target) in [
        ("fragment in origin-form", "/hello#top"),
        ("fragment after the query", "/hello?x=1#top"),
        ("fragment in absolute-form", "http://t/hello#top"),
        ("userinfo in absolute-form", "http://u@t/hello"),
        ("empty host in absolute-form", "http:///hello"),
        ("port over 65535 in absolute-form", "http://t:99999/hello"),
        ("IP literal without ] in absolute-form", "http://[::1/hello"),
        ("scheme other than http(s)", "ftp://t/hello"),
        ("http without //", "http:/hello"),
        ("authority-form outside CONNECT", "t:80"),
        ("asterisk-form outside OPTIONS", "*"),
        ("relative path", "hello"),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = expect_refusal(&server, name, request.as_bytes(), 400);
        assert!(
            r.text().contains("request-target"),
            "{name}: says {:?}",
            r.text()
        );
    }
}

/// squall is an origin server, not a proxy: CONNECT (RFC 9110 §9.3.6) is a
/// method it cannot support for any resource.
#[test]
fn connect_is_501() {
    let server = plain::start_default();
    let r = expect_refusal(
        &server,
        "CONNECT",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        501,
    );
    assert!(r.text().contains("CONNECT"), "says {:?}", r.text());
}

/// RFC 9112 §7.1.2: the trailer section is field lines, as in the head.
#[test]
fn malformed_trailer_lines_are_400() {
    let server = plain::start_default();
    let chunked = format!("{POST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n");
    for (name, trailer) in [
        ("no colon", "bad trailer"),
        ("empty name", ": v"),
        ("space before the colon", "X-T : v"),
        ("name not a token", "X@T: v"),
        ("obs-fold", "X-T: a\r\n folded"),
        ("control byte in the value", "X-T: a\x01b"),
        ("bare LF in the line", "X-T: a\nb"),
    ] {
        let request = format!("{chunked}{trailer}\r\n\r\n");
        let r = expect_refusal(&server, name, request.as_bytes(), 400);
        assert!(r.text().contains("trailer"), "{name}: says {:?}", r.text());
    }
    // Valid trailers (an empty value, tabs) are still read and dropped.
    let r = common::one_request(
        server.addr,
        format!("{chunked}X-A: one\r\nX-Empty:\r\nX-Tab:\tt\tv \r\n\r\n"),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
}

fn limited(max_body_size: u64, max_header_size: usize) -> TestServer {
    plain::start(HTTPServerOptions {
        max_body_size,
        max_header_size,
        ..HTTPServerOptions::default()
    })
}

#[test]
fn content_length_over_the_limit_is_413_before_the_body_is_sent() {
    let server = limited(1024, 64 * 1024);
    let mut client = server.raw();
    // Only the head: if the server waited for the 20 MiB, this would hang
    // until the guard timeout.
    client.send(format!("{POST}Content-Length: 20971520\r\n\r\n"));
    let r = client.read_response();
    assert_eq!(r.status, 413);
    assert!(client.closed_cleanly());
}

#[test]
fn body_exactly_at_the_limit_is_accepted() {
    let server = limited(1024, 64 * 1024);
    let body = "b".repeat(1024);
    let r = common::one_request(
        server.addr,
        format!("{POST}Content-Length: 1024\r\n\r\n{body}"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1024);
    let r = common::one_request(
        server.addr,
        format!("{POST}Transfer-Encoding: chunked\r\n\r\n400\r\n{body}\r\n0\r\n\r\n"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1024);
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let server = limited(1024, 64 * 1024);
    let body = "b".repeat(1024);
    // 1024 bytes are fine; the next chunk's size line tips it over.
    let request =
        format!("{POST}Transfer-Encoding: chunked\r\n\r\n400\r\n{body}\r\n1\r\nx\r\n0\r\n\r\n");
    expect_refusal(&server, "chunked over limit", request.as_bytes(), 413);
    // One huge chunk is refused from its size line alone.
    let mut client = server.raw();
    client.send(format!(
        "{POST}Transfer-Encoding: chunked\r\n\r\nfffffff\r\n"
    ));
    assert_eq!(client.read_response().status, 413);
    assert!(client.closed_cleanly());
}

#[test]
fn trailers_count_against_the_body_limit() {
    let server = limited(1024, 64 * 1024);
    let mut request = format!("{POST}Transfer-Encoding: chunked\r\n\r\n0\r\n");
    for i in 0..40 {
        request.push_str(&format!("X-Trailer-{i:02}: {}\r\n", "t".repeat(40)));
    }
    request.push_str("\r\n");
    expect_refusal(&server, "trailers", request.as_bytes(), 413);
}

/// A trailer line is a field line: it may be as long as a header line
/// (here 200 bytes, over the 64 a chunk-size line gets), and a longer one
/// than the header limit is a 431 that says so.
#[test]
fn trailer_lines_get_the_header_line_limit() {
    let server = limited(64 * 1024, 1024);
    let chunked = format!("{POST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n");
    let mut client = server.raw();
    let digest = "d".repeat(200);
    let r = client.request(format!("{chunked}X-Digest: {digest}\r\n\r\n"));
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    let too_long = "d".repeat(2048);
    let r = expect_refusal(
        &server,
        "2 KiB trailer line",
        format!("{chunked}X-Digest: {too_long}\r\n\r\n").as_bytes(),
        431,
    );
    assert!(r.text().contains("trailer line too large"), "{}", r.text());
}

#[test]
fn oversize_head_is_431() {
    let server = limited(1024, 4096);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "v".repeat(8192)
    );
    expect_refusal(&server, "8 KiB header", request.as_bytes(), 431);
    // A head just under the limit is fine.
    let filler = "v".repeat(4096 - 200);
    let r = common::one_request(
        server.addr,
        format!("GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: {filler}\r\n\r\n"),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn too_many_header_lines_is_431() {
    let server = plain::start_default();
    let mut request = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..150 {
        request.push_str(&format!("X-{i}: y\r\n"));
    }
    request.push_str("\r\n");
    expect_refusal(&server, "150 headers", request.as_bytes(), 431);
}

#[test]
fn refusal_after_a_good_request_on_the_same_connection() {
    let server = plain::start_default();
    let mut client = RawClient::connect(server.addr);
    assert_eq!(client.request(get("/hello")).text(), HELLO);
    client.send(format!(
        "{POST}Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx"
    ));
    assert_eq!(client.read_response().status, 400);
    assert!(client.closed_cleanly());
    server.wait_open_connections(0);
}
