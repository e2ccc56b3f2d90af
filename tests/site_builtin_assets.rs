//! `squall --builtin-assets` serves every page and static file from the
//! copies built into the binary, as a binary copied without its checkout
//! does: each template renders (with the `?v=` URLs of the static files
//! it links), each static file arrives byte for byte as in `static/`,
//! with its validators, and a chat message is rendered by the built-in
//! `message.html`.
//!
//! On a binary without the bundle, `--builtin-assets` is refused as an
//! unknown option and the server never starts.

mod chat_support;

use std::io::Write;
use std::net::TcpStream;

use chat_support::{read_response, Client, Response, Server};

const STATIC_FILES: [&str; 5] = ["cart.css", "cart.js", "chat.css", "chat.js", "site.css"];

#[test]
fn every_page_and_static_file_is_served_from_the_binary() {
    let server = Server::start(&["--builtin-assets"]);
    server.wait_log("the asset line", |line| {
        line.contains("templates: built into the binary; static files: built into the binary")
    });
    let mut visitor = server.client();
    for page in ["/auth/login", "/auth/register", "/rate"] {
        let r = visitor.get(page);
        assert_eq!(r.status, 200, "{page}: {}", r.text());
        assert!(r.text().contains(".css?v="), "{page}: {}", r.text());
    }
    let mut alice = Client::user(&server, "alice");
    for page in ["/", "/room/builtin", "/cart"] {
        let r = alice.get(page);
        assert_eq!(r.status, 200, "{page}: {}", r.text());
        assert!(r.text().contains("?v="), "{page}: no versioned static URL");
    }

    for name in STATIC_FILES {
        let path = format!("{}/static/{name}", env!("CARGO_MANIFEST_DIR"));
        let on_disk = std::fs::read(&path).expect("read the checkout's file");
        let r = visitor.get(&format!("/static/{name}"));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.body, on_disk, "{name}: not the bytes of {path}");
        assert!(r.header("Last-Modified").is_some(), "{name}");
        let etag = r.header("Etag").expect("Etag").to_string();
        let again = revalidate(&server, name, &etag);
        assert_eq!(again.status, 304, "{name}: revalidation with {etag}");
    }
    assert_eq!(visitor.get("/static/../Cargo.toml").status, 404);
    assert_eq!(visitor.get("/static/nothing.js").status, 404);

    let r = alice.post(
        "/a/message/new",
        &[("body", "see http://example.org <b>"), ("room", "builtin")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.json()["html"].as_str().expect("html").to_string();
    assert!(
        html.contains("<a href=\"http://example.org\">") && html.contains("&lt;b&gt;"),
        "message.html did not render it: {html}"
    );
}

/// `GET /static/name` with `If-None-Match: etag`.
fn revalidate(server: &Server, name: &str, etag: &str) -> Response {
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    write!(
        stream,
        "GET /static/{name} HTTP/1.1\r\nHost: test\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    read_response(&mut stream)
}
