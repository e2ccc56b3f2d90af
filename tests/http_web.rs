//! The web layer's request lifecycle on real sockets: callback-style
//! handlers (a response finished from a timer while hundreds of others are
//! served, a dropped response answered 500, on_connection_close), flush →
//! chunked, argument errors, JSON errors on API routes, template
//! autoescaping, multipart uploads (curl -F), ETag/304 and gzip.
#[path = "http_common/mod.rs"]
mod common;

use std::io::Read;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::webapp;
use common::{agent, curl, get, have_curl, RawClient, TestServer, GUARD};

fn start() -> (TestServer, Receiver<&'static str>) {
    let (tx, rx) = mpsc::channel();
    (webapp::start(tx), rx)
}

fn expect_event(events: &Receiver<&'static str>, want: &str) {
    let got = events
        .recv_timeout(GUARD)
        .expect("an event from the handler");
    assert_eq!(got, want);
}

#[test]
fn timer_finished_response_while_500_others_are_served() {
    let (server, events) = start();
    let slow_url = server.url("/slow");
    let slow = std::thread::spawn(move || {
        let started = Instant::now();
        let mut r = agent().get(&slow_url).call().expect("slow request");
        let body = r.body_mut().read_to_string().expect("body");
        (r.status().as_u16(), body, started.elapsed())
    });
    // The slow handler has run and returned; its response is open.
    expect_event(&events, "slow-pending");
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let url = server.url("/fast");
            std::thread::spawn(move || {
                let agent = agent();
                for _ in 0..50 {
                    let mut r = agent.get(&url).call().expect("fast request");
                    assert_eq!(r.status().as_u16(), 200);
                    assert_eq!(r.body_mut().read_to_string().expect("body"), "fast");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    assert!(
        !slow.is_finished(),
        "the slow response arrived before the 500 others were served"
    );
    let (status, body, elapsed) = slow.join().expect("slow thread");
    assert_eq!((status, body.as_str()), (200, "slow"));
    assert!(
        elapsed >= Duration::from_secs(1),
        "finished early: {elapsed:?}"
    );
}

#[test]
fn handler_that_drops_its_ctx_unfinished_answers_500() {
    let (server, _events) = start();
    let mut client = server.raw();
    let r = client.request(get("/dropped"));
    assert_eq!(r.status, 500);
    assert!(r.text().contains("Internal Server Error"), "{}", r.text());
    // A complete response: the connection goes on.
    assert_eq!(client.request(get("/fast")).text(), "fast");
}

#[test]
fn flushed_response_dropped_unfinished_is_cut_short() {
    let (server, _events) = start();
    let mut client = server.raw();
    client.send(get("/dropped-flushed"));
    let head = client.read_head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Transfer-Encoding"), Some("chunked"));
    let rest = client.read_to_end();
    assert_eq!(
        rest, b"7\r\npartial\r\n",
        "no terminating chunk, then close"
    );
    server.wait_open_connections(0);
}

#[test]
fn on_connection_close_fires_and_the_connection_is_released() {
    let (server, events) = start();
    let mut client = server.raw();
    client.send(get("/pending"));
    expect_event(&events, "pending");
    assert_eq!(server.open_connections(), 1);
    drop(client);
    expect_event(&events, "closed");
    server.wait_open_connections(0);
}

#[test]
fn a_response_handle_finishes_after_the_ctx_is_gone() {
    let (server, events) = start();
    let mut client = server.raw();
    client.send(get("/handle/finish"));
    expect_event(&events, "handle-pending");
    let r = client.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "from a handle"));
    // The default content type is still added when the headers go out.
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=UTF-8"));
    assert_eq!(client.request(get("/fast")).text(), "fast");
}

#[test]
fn a_response_handle_dropped_unfinished_answers_500() {
    let (server, events) = start();
    let mut client = server.raw();
    let r = client.request(get("/handle/drop"));
    expect_event(&events, "handle-pending");
    assert_eq!(r.status, 500);
    assert_eq!(client.request(get("/fast")).text(), "fast");
}

#[test]
fn on_connection_close_fires_for_a_response_held_by_a_handle() {
    let (server, events) = start();
    let mut client = server.raw();
    client.send(get("/handle/park"));
    expect_event(&events, "handle-pending");
    assert_eq!(server.open_connections(), 1);
    drop(client);
    expect_event(&events, "handle-closed");
    server.wait_open_connections(0);
}

#[test]
fn flush_streams_a_chunked_response() {
    let (server, _events) = start();
    let mut client = server.raw();
    let r = client.request(get("/stream"));
    assert!(r.chunked);
    assert_eq!(r.text(), "abc");
    assert_eq!(client.request(get("/fast")).text(), "fast");
    // HTTP/1.0 has no chunked coding: the body ends with the connection.
    let mut old = server.raw();
    old.send("GET /stream HTTP/1.0\r\n\r\n");
    let head = old.read_head();
    assert_eq!(head.header("Transfer-Encoding"), None);
    assert_eq!(old.read_to_end(), b"abc");
}

#[test]
fn missing_argument_is_400_naming_it() {
    let (server, _events) = start();
    let mut r = agent().get(server.url("/arg")).call().expect("request");
    assert_eq!(r.status().as_u16(), 400);
    let body = r.body_mut().read_to_string().expect("body");
    assert!(body.contains("Missing argument name"), "{body}");
    assert!(body.contains("<html>"), "pages get HTML errors: {body}");
    let mut r = agent()
        .get(server.url("/arg?name=%20spaced%20"))
        .call()
        .expect("request");
    assert_eq!(r.body_mut().read_to_string().expect("body"), "name=spaced");
}

fn json_error(server: &TestServer, method: &str, path: &str) -> (u16, serde_json::Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(server.url(path))
        .body(())
        .expect("request");
    let mut r = agent().run(req).expect("request");
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{method} {path}: {content_type}"
    );
    let body = r.body_mut().read_to_string().expect("body");
    (
        r.status().as_u16(),
        serde_json::from_str(&body).expect("JSON body"),
    )
}

#[test]
fn api_routes_answer_errors_in_json() {
    let (server, _events) = start();
    let (status, json) = json_error(&server, "GET", "/a/arg");
    assert_eq!(status, 400);
    assert_eq!(json["error"]["code"], 400);
    assert_eq!(json["error"]["message"], "Missing argument name");
    let (status, json) = json_error(&server, "GET", "/a/no-such-route");
    assert_eq!((status, json["error"]["code"].as_u64()), (404, Some(404)));
    let (status, _) = json_error(&server, "OPTIONS", "/a/arg");
    assert_eq!(status, 405);
    let (status, _) = json_error(&server, "GET", "/a/private");
    assert_eq!(status, 403);
}

/// Tornado answers a method it does not know with 405, and so does squall
/// (RFC 9110 §9.1 would rather have 501; see docs/http.md §6), with the
/// `Allow` header every 405 must carry.
#[test]
fn unknown_method_is_405() {
    let (server, _events) = start();
    let r = common::one_request(server.addr, "BREW /fast HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.headers_named("Allow"), ["GET, HEAD, POST"]);
}

/// RFC 9110 §15.5.6: "The origin server MUST generate an Allow header
/// field in a 405 response containing a list of the target resource's
/// currently supported methods." The list is the handler's
/// `allowed_methods()`: by default GET and HEAD, or what it declares.
#[test]
fn a_405_lists_the_methods_the_handler_allows() {
    let (server, _events) = start();
    let mut client = server.raw();
    for (request, allow) in [
        // Default: a handler that implements only `get`.
        ("OPTIONS /big", "GET, HEAD"),
        // Declared: `post` only (the route skips XSRF, so PUT reaches it).
        ("GET /upload", "POST"),
        ("HEAD /upload", "POST"),
        ("PUT /upload", "POST"),
        ("OPTIONS /upload", "POST"),
        // Declared: `get` and `post`.
        ("OPTIONS /fast", "GET, HEAD, POST"),
    ] {
        let r = client.request(format!("{request} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(r.status, 405, "{request}");
        assert_eq!(r.headers_named("Allow"), [allow], "{request}");
    }
    // API routes too, with their JSON error.
    let r = client.request("OPTIONS /a/fast HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.headers_named("Allow"), ["GET, HEAD, POST"]);
    assert!(r.text().contains("\"code\":405"), "{}", r.text());
}

/// The login redirect's `next` is the path and query, also when the
/// target came in absolute-form (which a proxy-minded client may send):
/// a full URI would be refused as not local after the login.
#[test]
fn the_login_redirect_names_the_path_for_any_target_form() {
    let (server, _events) = start();
    let mut client = server.raw();
    for target in ["/private?a=1", "http://t/private?a=1"] {
        let r = client.request(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(r.status, 302, "{target}");
        assert_eq!(
            r.header("Location"),
            Some("/auth/login?next=%2Fprivate%3Fa%3D1"),
            "{target}"
        );
    }
}

/// A handler's own `send_error(405, …)` carries `Allow` as well, without
/// the method it refused, and without the headers set before it (Tornado's
/// `clear()`).
#[test]
fn a_405_sent_by_hand_carries_allow_too() {
    let (server, _events) = start();
    let mut client = server.raw();
    let r = client.request("POST /frozen HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.headers_named("Allow"), ["GET, HEAD"]);
    assert!(r.headers_named("Allow-Later").is_empty());
    assert!(
        r.text().contains("read-only until the migration ends"),
        "{}",
        r.text()
    );
    // The connection goes on.
    assert_eq!(client.request(get("/frozen")).text(), "frozen");
}

#[test]
fn render_autoescapes() {
    let (server, _events) = start();
    let mut r = agent().get(server.url("/render")).call().expect("request");
    let body = r.body_mut().read_to_string().expect("body");
    assert!(!body.contains("<script>"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;&#x2f;script&gt; &amp; &#x27;q&#x27;"),
        "{body}"
    );
    assert!(body.contains("<b>bold</b>"), "| safe opts out: {body}");
}

#[test]
fn head_through_the_web_layer() {
    let (server, _events) = start();
    let mut client = server.raw();
    client.send(format!(
        "HEAD /fast HTTP/1.1\r\nHost: t\r\n\r\n{}",
        get("/fast")
    ));
    let head = client.read_response_to(true);
    assert_eq!(head.header("Content-Length"), Some("4"));
    assert_eq!(client.read_response().text(), "fast");
}

#[test]
fn etag_and_if_none_match_give_304() {
    let (server, _events) = start();
    let mut r = agent().get(server.url("/big")).call().expect("request");
    let etag = r
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("Etag on a 4 KB page")
        .to_string();
    assert_eq!(
        r.body_mut().read_to_string().expect("body"),
        webapp::big_text()
    );
    let mut client = server.raw();
    let r = client.request(format!(
        "GET /big HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"
    ));
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    // The 304 had no body on the wire: the next response parses.
    assert_eq!(client.request(get("/fast")).text(), "fast");
}

#[test]
fn gzip_when_accepted() {
    let (server, _events) = start();
    let mut client = server.raw();
    let r = client.request("GET /big HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    assert!(r.headers_named("Vary").contains(&"Accept-Encoding"));
    assert!(r.body.len() < webapp::big_text().len());
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert_eq!(text, webapp::big_text());
    let plain = client.request(get("/big"));
    assert_eq!(plain.header("Content-Encoding"), None);
    assert_eq!(plain.text(), webapp::big_text());
}

/// The ETag the web layer computes is the identity body's; a gzipped
/// answer is another representation (RFC 9110 §8.8.3), so it carries its
/// own strong tag, and a client holding either revalidates to a 304.
#[test]
fn gzip_has_its_own_etag_and_revalidates() {
    let (server, _events) = start();
    let mut client = server.raw();
    let gzip = "Accept-Encoding: gzip\r\n";
    let ask = |client: &mut RawClient, extra: &str| {
        client.request(format!("GET /big HTTP/1.1\r\nHost: t\r\n{extra}\r\n"))
    };
    let plain = ask(&mut client, "");
    let zipped = ask(&mut client, gzip);
    assert_eq!(zipped.header("Content-Encoding"), Some("gzip"));
    let plain_tag = plain.header("Etag").expect("Etag").to_string();
    let gzip_tag = zipped.header("Etag").expect("Etag").to_string();
    assert_ne!(plain_tag, gzip_tag);
    assert!(
        gzip_tag.starts_with('"') && gzip_tag.ends_with('"'),
        "strong: {gzip_tag}"
    );
    for (accept, tag) in [("", &plain_tag), (gzip, &gzip_tag)] {
        let r = ask(&mut client, &format!("{accept}If-None-Match: {tag}\r\n"));
        assert_eq!(r.status, 304, "{accept:?} {tag}");
        assert_eq!(r.header("Etag"), Some(tag.as_str()));
        assert!(r.headers_named("Vary").contains(&"Accept-Encoding"));
        assert!(r.body.is_empty());
    }
    // The other variant's tag does not revalidate this one.
    let r = ask(
        &mut client,
        &format!("{gzip}If-None-Match: {plain_tag}\r\n"),
    );
    assert_eq!(
        (r.status, r.header("Content-Encoding")),
        (200, Some("gzip"))
    );
    let r = ask(&mut client, &format!("If-None-Match: {gzip_tag}\r\n"));
    assert_eq!((r.status, r.text()), (200, webapp::big_text()));
    // A weak tag set by the handler stays: it may be shared by
    // semantically equivalent representations (RFC 9110 §8.8.1).
    let weak = ask(&mut client, &format!("X-Weak: 1\r\n{gzip}"));
    assert_eq!(weak.header("Content-Encoding"), Some("gzip"));
    assert_eq!(weak.header("Etag"), Some("W/\"big-weak\""));
}

/// The implied types (Tornado's default `text/html`, and JSON from
/// `write_json`) count as compressible, are sent once, and `set_header`
/// after `write_json` still wins.
#[test]
fn implied_content_types_are_sent_once_and_gzipped() {
    let (server, _events) = start();
    let mut client = server.raw();
    for (path, content_type) in [
        ("/big-json", "application/json; charset=UTF-8"),
        ("/big-html", "text/html; charset=UTF-8"),
    ] {
        let r = client.request(format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n"
        ));
        assert_eq!(
            r.headers_named("Content-Type"),
            vec![content_type],
            "{path}"
        );
        assert_eq!(r.header("Content-Encoding"), Some("gzip"), "{path}");
        let plain = client.request(get(path));
        assert_eq!(
            plain.headers_named("Content-Type"),
            vec![content_type],
            "{path}"
        );
        assert!(plain
            .text()
            .contains("line 099 of a compressible text body"));
    }
}

/// Every way of setting `Content-Type` puts on the wire what the calls
/// say, whether the type is kept in the header map or (for a well-known
/// value) beside it: `set_header` replaces, `add_header` keeps the value in
/// force beside the new one (Tornado keeps its default in the map, so it
/// does too), `clear_header` removes.
#[test]
fn content_type_calls_are_honoured_with_or_without_a_header_map() {
    let (server, _events) = start();
    let mut client = server.raw();
    let plain = "text/plain; charset=UTF-8";
    let html = "text/html; charset=UTF-8";
    let custom = "text/x-custom";
    for (case, expected) in [
        ("set-known", vec![plain]),
        ("custom-then-known", vec![plain]),
        ("known-then-custom", vec![custom]),
        ("known-then-add", vec![plain, custom]),
        ("add-to-default", vec![html, custom]),
        ("known-then-clear", vec![]),
        ("json-then-known", vec![plain]),
    ] {
        let r = client.request(get(&format!("/ctype?case={case}")));
        assert_eq!(r.status, 200, "{case}");
        assert_eq!(r.headers_named("Content-Type"), expected, "{case}");
    }
}

/// An `HTTPError`'s own headers reach its error answer; what the handler
/// set before failing does not.
#[test]
fn an_error_answer_carries_the_errors_headers_only() {
    let (server, _events) = start();
    let mut client = server.raw();
    let r = client.request(get("/busy"));
    assert_eq!(r.status, 503);
    assert_eq!(r.headers_named("Retry-After"), ["7"]);
    assert!(r.headers_named("X-Half-Done").is_empty());
}

#[test]
fn multipart_upload_with_curl() {
    if !have_curl() {
        return;
    }
    let (server, _events) = start();
    let dir = common::temp_dir("upload");
    let file = dir.join("notes.txt");
    std::fs::write(&file, "first line\nsecond line\n").expect("write");
    let (ok, out, err) = curl(&[
        "-F",
        "title=My notes",
        "-F",
        &format!("file=@{};type=text/plain", file.display()),
        &server.url("/upload"),
    ]);
    assert!(ok, "curl: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["title"], "My notes");
    assert_eq!(json["filename"], "notes.txt");
    assert_eq!(json["content_type"], "text/plain");
    assert_eq!(json["body"], "first line\nsecond line\n");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn raw_pipelined_requests_through_the_application() {
    let (server, _events) = start();
    let mut client = RawClient::connect(server.addr);
    let batch: String = (0..20).map(|i| get(&format!("/arg?name=n{i}"))).collect();
    client.send(batch);
    for i in 0..20 {
        assert_eq!(client.read_response().text(), format!("name=n{i}"));
    }
}
