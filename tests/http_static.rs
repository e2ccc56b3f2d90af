//! Static files through the web layer: validators (ETag, Last-Modified →
//! 304), byte ranges (206, 416) and If-Range, versioned URLs (immutable
//! caching), gzip with its own ETag, and path traversal in every spelling
//! (404, never the file outside).
//!
//! Requests go as raw bytes, because polite clients normalise `..` away
//! before sending — which is exactly what an attacker does not do.
#[path = "http_common/mod.rs"]
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{get, one_request, RawClient, Response, TestServer};
use squall::http::{HTTPServer, HTTPServerOptions};
use squall::web::{Application, Ctx, HandlerResult, RequestHandler, Settings};

/// What is outside the static root: must never be served.
const SECRET: &str = "outside the static root: never serve me\n";

/// A text file over the gzip threshold (1 KiB).
fn big_text() -> String {
    (0..60)
        .map(|i| format!("static line {i:02}: lorem ipsum dolor sit amet\n"))
        .collect()
}

struct Fixture {
    server: TestServer,
    root: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The mtime given to `big.txt`: long past, so its `Last-Modified` is a
/// strong validator (RFC 9110 §8.8.2.2) whenever a test runs.
fn old_mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
}

/// Set `path`'s mtime.
fn set_mtime(path: &Path, time: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(time))
        .expect("set mtime");
}

/// `root/static/{big.txt, fresh.txt, small.txt, data.bin, sub/nested.css}`,
/// `root/secret.txt`, `root/Cargo.toml`, and a symlink leading out.
/// `big.txt` was modified long ago; `fresh.txt` (the same text) an hour
/// from now, so its `Last-Modified` is never a second older than `Date`.
fn make_tree(root: &Path) -> PathBuf {
    let dir = root.join("static");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("big.txt"), big_text()).expect("write");
    set_mtime(&dir.join("big.txt"), old_mtime());
    std::fs::write(dir.join("fresh.txt"), big_text()).expect("write");
    set_mtime(
        &dir.join("fresh.txt"),
        SystemTime::now() + Duration::from_secs(3600),
    );
    std::fs::write(dir.join("small.txt"), "small\n").expect("write");
    let binary: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(dir.join("data.bin"), binary).expect("write");
    std::fs::write(dir.join("sub/nested.css"), "body { color: red }\n").expect("write");
    std::fs::write(root.join("secret.txt"), SECRET).expect("write");
    std::fs::write(root.join("Cargo.toml"), SECRET).expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("secret.txt"), dir.join("link.txt")).expect("symlink");
    let templates = root.join("templates");
    std::fs::create_dir_all(&templates).expect("mkdir");
    std::fs::write(templates.join("urls.html"), "{{ static_url(\"big.txt\") }}").expect("write");
    dir
}

/// Renders the versioned URL of `big.txt`.
struct Urls;
impl RequestHandler for Urls {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.render("urls.html", serde_json::json!({}))
    }
}

fn start() -> Fixture {
    let root = common::temp_dir("static");
    let static_dir = make_tree(&root);
    let templates = root.join("templates");
    let server = TestServer::start(move || {
        let settings = Settings {
            cookie_secret: b"secret".to_vec(),
            static_path: Some(static_dir),
            template_path: Some(templates),
            ..Settings::default()
        };
        let mut app = Application::new(settings).expect("application");
        app.route("/urls", Urls);
        HTTPServer::new(HTTPServerOptions::default(), app.into_callback())
    });
    Fixture { server, root }
}

fn request(f: &Fixture, path: &str, headers: &str) -> Response {
    one_request(
        f.server.addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n"),
    )
}

#[test]
fn serves_a_file_with_validators() {
    let f = start();
    let r = request(&f, "/static/big.txt", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), big_text());
    assert!(r
        .header("Content-Type")
        .unwrap_or("")
        .starts_with("text/plain"));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    let etag = r.header("Etag").expect("Etag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let modified = r.header("Last-Modified").expect("Last-Modified");
    assert!(httpdate::parse_http_date(modified).is_ok(), "{modified}");
    let css = request(&f, "/static/sub/nested.css", "");
    assert!(css
        .header("Content-Type")
        .unwrap_or("")
        .starts_with("text/css"));
}

#[test]
fn if_none_match_gives_304() {
    let f = start();
    let etag = request(&f, "/static/big.txt", "")
        .header("Etag")
        .expect("Etag")
        .to_string();
    let mut client = RawClient::connect(f.server.addr);
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let r = client.request(format!(
            "GET /static/big.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {inm}\r\n\r\n"
        ));
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert_eq!(r.header("Etag"), Some(etag.as_str()));
    }
    // No body crossed the wire: the connection is still in step.
    assert_eq!(client.request(get("/static/small.txt")).text(), "small\n");
    let r = request(&f, "/static/big.txt", "If-None-Match: \"stale\"\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn if_modified_since_gives_304() {
    let f = start();
    let first = request(&f, "/static/big.txt", "");
    let modified = first.header("Last-Modified").expect("Last-Modified");
    let r = request(
        &f,
        "/static/big.txt",
        &format!("If-Modified-Since: {modified}\r\n"),
    );
    assert_eq!(r.status, 304);
    let r = request(
        &f,
        "/static/big.txt",
        "If-Modified-Since: Thu, 01 Jan 1998 00:00:00 GMT\r\n",
    );
    assert_eq!(r.status, 200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let r = request(
        &f,
        "/static/big.txt",
        &format!("If-None-Match: \"stale\"\r\nIf-Modified-Since: {modified}\r\n"),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn ranges() {
    let f = start();
    let full = big_text();
    let size = full.len();
    let r = request(&f, "/static/big.txt", "Range: bytes=0-9\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 0-9/{size}").as_str())
    );
    assert_eq!(r.text(), full[..10]);
    let r = request(&f, "/static/big.txt", "Range: bytes=-5\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), full[size - 5..]);
    let r = request(&f, "/static/big.txt", "Range: bytes=100-\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.text(), full[100..]);
    // A range is never gzipped, even when the client accepts it.
    let r = request(
        &f,
        "/static/big.txt",
        "Range: bytes=0-99\r\nAccept-Encoding: gzip\r\n",
    );
    assert_eq!((r.status, r.header("Content-Encoding")), (206, None));
    assert_eq!(r.text(), full[..100]);
    // The whole file as a range is just the file.
    let r = request(&f, "/static/big.txt", "Range: bytes=0-\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), full);
    let r = request(&f, "/static/big.txt", &format!("Range: bytes={size}-\r\n"));
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes */{size}").as_str())
    );
}

#[test]
fn path_traversal_is_404_in_every_spelling() {
    let f = start();
    let attempts = [
        "/static/../Cargo.toml",
        "/static/../secret.txt",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2E%2E/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/sub/../../secret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
        "/static//etc/passwd",
        "/static/%2fetc/passwd",
        "/static/..\\secret.txt",
        "/static/..%5csecret.txt",
        "/static/%5c..%5csecret.txt",
        "/static/secret.txt%00.txt",
        "/static/link.txt",
        "/static/sub",
        "/static/",
        "/static/missing.txt",
    ];
    for path in attempts {
        let r = request(&f, path, "");
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(
            !r.text().contains("never serve me"),
            "{path} leaked the file"
        );
    }
}

#[test]
fn curl_path_as_is_traversal_is_404() {
    if !common::have_curl() {
        return;
    }
    let f = start();
    let (ok, out, err) = common::curl(&[
        "--path-as-is",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &f.server.url("/static/../secret.txt"),
    ]);
    assert!(ok, "curl: {err}");
    assert_eq!(out, "404");
}

#[test]
fn versioned_url_is_cached_for_a_year() {
    let f = start();
    let url = request(&f, "/urls", "").text();
    let version = url
        .strip_prefix("/static/big.txt?v=")
        .unwrap_or_else(|| panic!("static_url gave {url:?}"));
    assert!(version.len() >= 8 && version.bytes().all(|b| b.is_ascii_hexdigit()));
    let r = request(&f, &url, "");
    assert_eq!(r.status, 200);
    let cache = r.header("Cache-Control").expect("Cache-Control");
    assert!(
        cache.contains("immutable") && cache.contains("max-age=31536000"),
        "{cache}"
    );
}

#[test]
fn gzip_for_text_over_1_kib_when_accepted() {
    let f = start();
    let r = request(&f, "/static/big.txt", "Accept-Encoding: gzip, deflate\r\n");
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    assert!(r.headers_named("Vary").contains(&"Accept-Encoding"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert_eq!(text, big_text());
    // Not accepted, too small, not text: identity.
    let r = request(&f, "/static/big.txt", "Accept-Encoding: gzip;q=0\r\n");
    assert_eq!((r.header("Content-Encoding"), r.text()), (None, big_text()));
    let r = request(&f, "/static/small.txt", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("Content-Encoding"), None);
    let r = request(&f, "/static/data.bin", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("Content-Encoding"), None);
    assert_eq!(r.body.len(), 3000);
}

#[test]
fn head_of_a_static_file() {
    let f = start();
    let mut client = RawClient::connect(f.server.addr);
    client.send(format!(
        "HEAD /static/big.txt HTTP/1.1\r\nHost: t\r\n\r\n{}",
        get("/static/small.txt")
    ));
    let head = client.read_response_to(true);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(big_text().len().to_string().as_str())
    );
    assert_eq!(client.read_response().text(), "small\n");
}

/// RFC 9110 §13.1.5: with `Range`, `If-Range` makes the range conditional.
/// An entity-tag matches only by strong comparison with the current
/// `ETag`; a date only if it is exactly the (strong) `Last-Modified`.
/// Anything else — another tag, a weak tag, another date, garbage — means
/// "send me the whole thing": 200 with the full body.
#[test]
fn if_range_that_does_not_match_sends_the_whole_file() {
    let f = start();
    let full = big_text();
    let first = request(&f, "/static/big.txt", "");
    let etag = first.header("Etag").expect("Etag").to_string();
    let modified = first
        .header("Last-Modified")
        .expect("Last-Modified")
        .to_string();
    assert_eq!(
        httpdate::parse_http_date(&modified).ok(),
        Some(old_mtime()),
        "Last-Modified is the file's mtime"
    );
    let mut client = RawClient::connect(f.server.addr);
    let mut ask = |if_range: &str| {
        client.request(format!(
            "GET /static/big.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\nIf-Range: {if_range}\r\n\r\n"
        ))
    };
    for matching in [etag.clone(), modified.clone()] {
        let r = ask(&matching);
        assert_eq!(r.status, 206, "If-Range: {matching}");
        assert_eq!(r.text(), full[..2], "If-Range: {matching}");
    }
    for not_matching in [
        "\"other\"".to_string(),
        format!("W/{etag}"),
        format!("{etag}, \"other\""),
        etag.trim_matches('"').to_string(),
        "Thu, 01 Jan 1998 00:00:00 GMT".to_string(),
        httpdate::fmt_http_date(old_mtime() + Duration::from_secs(1)),
        "yesterday".to_string(),
        String::new(),
    ] {
        let r = ask(&not_matching);
        assert_eq!(r.status, 200, "If-Range: {not_matching:?}");
        assert_eq!(
            r.header("Content-Range"),
            None,
            "If-Range: {not_matching:?}"
        );
        assert_eq!(r.text(), full, "If-Range: {not_matching:?}");
    }
    // Not matching also skips the 416 an unsatisfiable range would get.
    let r = request(
        &f,
        "/static/big.txt",
        &format!("Range: bytes={}-\r\nIf-Range: \"other\"\r\n", full.len()),
    );
    assert_eq!((r.status, r.text()), (200, full.clone()));
    // Without Range, If-Range is ignored.
    let r = request(&f, "/static/big.txt", "If-Range: \"other\"\r\n");
    assert_eq!((r.status, r.text()), (200, full));
}

/// A `Last-Modified` that is not at least a second older than `Date` is a
/// weak validator (RFC 9110 §8.8.2.2), and If-Range needs a strong one.
#[test]
fn if_range_date_of_a_file_modified_too_recently_does_not_match() {
    let f = start();
    let first = request(&f, "/static/fresh.txt", "");
    let modified = first.header("Last-Modified").expect("Last-Modified");
    let r = request(
        &f,
        "/static/fresh.txt",
        &format!("Range: bytes=0-1\r\nIf-Range: {modified}\r\n"),
    );
    assert_eq!((r.status, r.text()), (200, big_text()));
    // Its entity-tag still works.
    let etag = first.header("Etag").expect("Etag");
    let r = request(
        &f,
        "/static/fresh.txt",
        &format!("Range: bytes=0-1\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!((r.status, r.text()), (206, big_text()[..2].to_string()));
}

/// The same probe with curl, as the finding was reported.
#[test]
fn curl_if_range_with_another_etag_is_200() {
    if !common::have_curl() {
        return;
    }
    let f = start();
    let (ok, out, err) = common::curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        "-H",
        "Range: bytes=0-1",
        "-H",
        "If-Range: \"other\"",
        &f.server.url("/static/big.txt"),
    ]);
    assert!(ok, "curl: {err}");
    assert_eq!(out, format!("200 {}", big_text().len()));
}

/// Decode a gzip body.
fn gunzip(body: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .expect("valid gzip");
    text
}

/// RFC 9110 §8.8.3: a strong validator changes with the representation's
/// bytes, and the gzip-coded file is another representation. Each variant
/// has its own tag; revalidating either gets a 304 carrying it.
#[test]
fn gzip_and_identity_variants_have_their_own_etags() {
    let f = start();
    let plain = request(&f, "/static/big.txt", "");
    let zipped = request(&f, "/static/big.txt", "Accept-Encoding: gzip\r\n");
    assert_eq!(zipped.header("Content-Encoding"), Some("gzip"));
    assert_eq!(gunzip(&zipped.body), big_text());
    let plain_tag = plain.header("Etag").expect("Etag").to_string();
    let gzip_tag = zipped.header("Etag").expect("Etag").to_string();
    assert_ne!(plain_tag, gzip_tag);
    for tag in [&plain_tag, &gzip_tag] {
        assert!(
            tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2,
            "a strong entity-tag: {tag}"
        );
    }
    for r in [&plain, &zipped] {
        assert_eq!(r.headers_named("Vary"), ["Accept-Encoding"], "sent once");
    }
    let mut client = RawClient::connect(f.server.addr);
    // Each variant revalidates under its own tag.
    for (accept, tag) in [("", &plain_tag), ("Accept-Encoding: gzip\r\n", &gzip_tag)] {
        let r = client.request(format!(
            "GET /static/big.txt HTTP/1.1\r\nHost: t\r\n{accept}If-None-Match: {tag}\r\n\r\n"
        ));
        assert_eq!(r.status, 304, "{accept:?} If-None-Match: {tag}");
        assert_eq!(r.header("Etag"), Some(tag.as_str()));
        assert!(r.headers_named("Vary").contains(&"Accept-Encoding"));
        assert!(r.body.is_empty());
    }
    // A tag of the other variant is not the selected representation's.
    let r = client.request(format!(
        "GET /static/big.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {gzip_tag}\r\n\r\n"
    ));
    assert_eq!((r.status, r.text()), (200, big_text()));
    assert_eq!(r.header("Etag"), Some(plain_tag.as_str()));
    let r = client.request(format!(
        "GET /static/big.txt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nIf-None-Match: {plain_tag}\r\n\r\n"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Etag"), Some(gzip_tag.as_str()));
    assert_eq!(gunzip(&r.body), big_text());
    // HEAD tells the tag the GET would have.
    client.send("HEAD /static/big.txt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    let head = client.read_response_to(true);
    assert_eq!(head.header("Etag"), Some(gzip_tag.as_str()));
}

/// Ranges are served from the identity bytes even when gzip is accepted,
/// so a 206 carries the identity tag, and If-Range holding the gzip tag
/// (a client resuming a gzip download) gets the whole gzip body instead
/// of identity bytes to splice into it.
#[test]
fn a_range_carries_the_tag_of_the_bytes_it_sends() {
    let f = start();
    let full = big_text();
    let plain_tag = request(&f, "/static/big.txt", "")
        .header("Etag")
        .expect("Etag")
        .to_string();
    let gzip_tag = request(&f, "/static/big.txt", "Accept-Encoding: gzip\r\n")
        .header("Etag")
        .expect("Etag")
        .to_string();
    let r = request(
        &f,
        "/static/big.txt",
        "Range: bytes=0-9\r\nAccept-Encoding: gzip\r\n",
    );
    assert_eq!((r.status, r.header("Content-Encoding")), (206, None));
    assert_eq!(r.text(), full[..10]);
    assert_eq!(r.header("Etag"), Some(plain_tag.as_str()));
    let r = request(
        &f,
        "/static/big.txt",
        &format!("Range: bytes=0-9\r\nAccept-Encoding: gzip\r\nIf-Range: {plain_tag}\r\n"),
    );
    assert_eq!((r.status, r.text()), (206, full[..10].to_string()));
    let r = request(
        &f,
        "/static/big.txt",
        &format!("Range: bytes=0-9\r\nAccept-Encoding: gzip\r\nIf-Range: {gzip_tag}\r\n"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    assert_eq!(r.header("Etag"), Some(gzip_tag.as_str()));
    assert_eq!(gunzip(&r.body), full);
}
