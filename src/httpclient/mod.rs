//! The HTTP client: [`AsyncHTTPClient`] (callbacks on the loop) and
//! [`HTTPClient`] (blocking, for scripts and worker threads).
//!
//! Mirrors Tornado's `tornado/simple_httpclient.py` (the client itself) and
//! `tornado/httpclient.py` (the request/response values and the blocking
//! wrapper). **Plain HTTP only**: an `https://` URL fails with
//! [`HTTPClientError::InvalidUrl`] saying "https is not supported".
//!
//! | file          | what it holds                                              | Tornado |
//! |---------------|------------------------------------------------------------|---------|
//! | `request.rs`  | [`HTTPRequest`], [`HTTPResponse`], [`HTTPClientError`]      | `httpclient.py` |
//! | `url.rs`      | [`Url`]: `http://` parsing, redirect `Location` joining    | `urllib.parse` |
//! | `resolve.rs`  | [`resolve()`]: IP literals/localhost inline, else a worker    | `netutil.py` resolvers |
//! | `encode.rs`   | request checks and the request head on the wire             | `_HTTPConnection.run` |
//! | `response.rs` | [`parse_response_head`]: status line, headers, framing       | `http1connection.py` (client side) |
//! | `exchange.rs` | one request/response on one stream                         | `_HTTPConnection` I/O |
//! | `pool.rs`     | idle keep-alive connections (optional)                     | — (Tornado has none) |
//! | `client.rs`   | [`AsyncHTTPClient`]: queue, timeouts, redirects            | `SimpleAsyncHTTPClient` |
//! | `blocking.rs` | [`HTTPClient`]: the async client on a private loop          | `httpclient.HTTPClient` |
//!
//! Defaults are Tornado's: `max_clients` 10, 100 MiB bodies, 20 s connect
//! and request timeouts, 5 redirects, `Connection: close`. The docs chapter
//! is `docs/httpclient.md`.
mod blocking;
mod client;
mod encode;
mod exchange;
mod pool;
mod request;
mod resolve;
mod response;
mod url;

pub use blocking::HTTPClient;
pub use client::{AsyncHTTPClient, ClientOptions, FetchResult};
pub use encode::DEFAULT_USER_AGENT;
pub use request::{
    HTTPClientError, HTTPRequest, HTTPResponse, TimeoutPhase, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_REDIRECTS, DEFAULT_REQUEST_TIMEOUT,
};
pub use resolve::{resolve, resolve_inline, Resolved};
pub use response::{parse_response_head, ResponseFraming, ResponseHead};
pub use url::Url;
