//! The request a handler receives (Tornado's `HTTPServerRequest`).

use std::net::IpAddr;
use std::time::Instant;

use super::parse::Version;
use crate::httputil::HTTPHeaders;

/// One complete HTTP request: head and body, read before the handler runs.
#[derive(Debug)]
pub struct HTTPServerRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// The request-target as sent (path and query), e.g. `/a?b=1`.
    pub uri: String,
    /// `uri` before the `?`, not percent-decoded (as in Tornado).
    pub path: String,
    /// `uri` after the `?` (empty if none).
    pub query: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Request headers, in order, looked up case-insensitively.
    pub headers: HTTPHeaders,
    /// The body (de-chunked), empty if none.
    pub body: Vec<u8>,
    /// The client's address (with `xheaders`, from `X-Real-Ip` /
    /// `X-Forwarded-For`).
    pub remote_ip: Option<IpAddr>,
    /// When the request head was complete: the access log measures from here.
    pub start_time: Instant,
}

impl HTTPServerRequest {
    /// Split a request-target into path and query.
    pub(crate) fn split_uri(uri: &str) -> (String, String) {
        match uri.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (uri.to_string(), String::new()),
        }
    }

    /// Time since the request head arrived.
    pub fn request_time(&self) -> std::time::Duration {
        self.start_time.elapsed()
    }

    /// The `Host` header without any port (Tornado's `request.host_name`).
    pub fn host_name(&self) -> &str {
        let host = self.headers.get("Host").unwrap_or("");
        if let Some(rest) = host.strip_prefix('[') {
            // [v6]:port
            return rest.split(']').next().unwrap_or("");
        }
        host.split(':').next().unwrap_or("")
    }
}
