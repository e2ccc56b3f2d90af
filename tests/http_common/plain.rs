//! A server on the bare HTTP layer (no web layer), for protocol tests.
//!
//! | path      | answer                                                      |
//! |-----------|-------------------------------------------------------------|
//! | `/hello`  | `Hello, world!` in one `write_headers(.., finishing=true)`  |
//! | `/echo`   | the request body; `X-Method`, `X-Path`, `X-Query`, `X-Host`, `X-Version` headers |
//! | `/stream` | `one,` + `two,` now, `three` from a timer: length unknown   |
//! | `/later?ms=N` | `later` after N milliseconds (a long-poll's shape)     |
//! | `/overlong` | an application bug: `Content-Length: 3`, body `hello`   |
//! | other     | 404, with the path it saw in `X-Path`                       |

use std::time::Duration;

use squall::http::{HTTPResponder, HTTPServer, HTTPServerOptions, HTTPServerRequest};
use squall::httputil::HTTPHeaders;
use squall::ioloop::IOLoop;

use super::TestServer;

/// The body of `/hello`.
pub const HELLO: &str = "Hello, world!";

/// What `/stream` sends in total.
pub const STREAMED: &str = "one,two,three";

/// Start the plain server with `options`.
pub fn start(options: HTTPServerOptions) -> TestServer {
    TestServer::start(move || HTTPServer::new(options, answer))
}

/// Start the plain server with default options.
pub fn start_default() -> TestServer {
    start(HTTPServerOptions::default())
}

fn answer(request: HTTPServerRequest, mut responder: HTTPResponder) {
    let mut headers = HTTPHeaders::new();
    headers.add("Content-Type", "text/plain");
    match request.path() {
        "/hello" => responder.write_headers(200, &headers, HELLO.as_bytes(), true),
        "/echo" => {
            headers.add("X-Method", request.method());
            headers.add("X-Path", request.path());
            headers.add("X-Query", request.query());
            headers.add("X-Host", request.host());
            headers.add("X-Version", request.version.as_str());
            responder.write_headers(200, &headers, &request.body, true);
        }
        "/stream" => {
            responder.write_headers(200, &headers, b"one,", false);
            responder.write(b"two,");
            // The rest comes from a later loop iteration, as a long-poll's
            // answer would.
            IOLoop::current().call_later(Duration::from_millis(5), move || {
                responder.write(b"three");
                responder.finish();
            });
        }
        "/later" => {
            let ms = request
                .query()
                .strip_prefix("ms=")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            IOLoop::current().call_later(Duration::from_millis(ms), move || {
                responder.write_headers(200, &headers, b"later", true);
            });
        }
        "/overlong" => {
            headers.add("Content-Length", "3");
            responder.write_headers(200, &headers, b"hello", true);
        }
        _ => {
            headers.add("X-Path", request.path());
            responder.write_headers(404, &headers, b"not found", true);
        }
    }
}
