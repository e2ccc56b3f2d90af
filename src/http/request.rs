//! The request a handler receives (Tornado's `HTTPServerRequest`).

use std::net::IpAddr;
use std::time::Instant;

use super::parse::{RequestHead, Version};
use crate::httputil::HTTPHeaders;

/// One complete HTTP request: head and body, read before the handler runs.
///
/// The method, target, path and query are read from the received head
/// block, which the headers keep (see [`RequestHead`](super::parse::RequestHead)):
/// a request costs no allocation per field.
#[derive(Debug)]
pub struct HTTPServerRequest {
    /// Method: a span of the head text.
    method: (u32, u32),
    /// Request-target: a span of the head text.
    uri: (u32, u32),
    /// Where the path ends inside the target (the `?`, or the end).
    path_end: u32,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Request headers; their text also holds the request line. Private so
    /// that the spans above always point into it.
    headers: HTTPHeaders,
    /// The body (de-chunked), empty if none.
    pub body: Vec<u8>,
    /// The client's address (with `xheaders`, from `X-Real-Ip` /
    /// `X-Forwarded-For`).
    pub remote_ip: Option<IpAddr>,
    /// When the request head was complete: the access log measures from here.
    pub start_time: Instant,
}

/// The head's buffers go back to the per-thread spares for the next
/// request on this thread (see `iostream/spare.rs`).
impl Drop for HTTPServerRequest {
    fn drop(&mut self) {
        std::mem::take(&mut self.headers).recycle();
    }
}

impl HTTPServerRequest {
    /// A request from a parsed head and its body.
    pub(crate) fn from_head(
        head: RequestHead,
        body: Vec<u8>,
        remote_ip: Option<IpAddr>,
        start_time: Instant,
    ) -> HTTPServerRequest {
        // A byte scan: targets are short, and a char-pattern search costs
        // more to set up than to run here.
        let path_end = match head.uri().bytes().position(|b| b == b'?') {
            Some(i) => head.uri.0 + i as u32,
            None => head.uri.1,
        };
        HTTPServerRequest {
            method: head.method,
            uri: head.uri,
            path_end,
            version: head.version,
            headers: head.headers,
            body,
            remote_ip,
            start_time,
        }
    }

    /// A request built by hand (for tests and for embedding code that feeds
    /// requests to an application without a socket).
    pub fn new(
        method: &str,
        uri: &str,
        version: Version,
        headers: &HTTPHeaders,
        body: Vec<u8>,
    ) -> HTTPServerRequest {
        let line = format!("{method} {uri}");
        let method_span = (0, method.len() as u32);
        let uri_span = (method.len() as u32 + 1, line.len() as u32);
        let mut fields = HTTPHeaders::from_block(line, Vec::new(), uri_span.1);
        for (name, value) in headers {
            fields.add(name, value);
        }
        let head = RequestHead {
            method: method_span,
            uri: uri_span,
            version,
            headers: fields,
            body: super::parse::BodyFraming::None,
            keep_alive: true,
            expect_continue: false,
        };
        HTTPServerRequest::from_head(head, body, None, Instant::now())
    }

    /// Method, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.headers.raw(self.method)
    }

    /// The request-target as sent (path and query), e.g. `/a?b=1`.
    pub fn uri(&self) -> &str {
        self.headers.raw(self.uri)
    }

    /// The target before the `?`, not percent-decoded (as in Tornado).
    pub fn path(&self) -> &str {
        self.headers.raw((self.uri.0, self.path_end))
    }

    /// The target after the `?` (empty if none).
    pub fn query(&self) -> &str {
        if self.path_end >= self.uri.1 {
            return "";
        }
        self.headers.raw((self.path_end + 1, self.uri.1))
    }

    /// Request headers, in order, looked up case-insensitively.
    pub fn headers(&self) -> &HTTPHeaders {
        &self.headers
    }

    /// The headers, to change (e.g. a proxy rewriting them).
    pub fn headers_mut(&mut self) -> &mut HTTPHeaders {
        &mut self.headers
    }

    /// Give back spare capacity of a request that will be kept a long time
    /// (a parked long-poll).
    pub fn shrink_to_fit(&mut self) {
        self.headers.shrink_to_fit();
        self.body.shrink_to_fit();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_splits_into_path_and_query() {
        let mut h = HTTPHeaders::new();
        h.add("Host", "example.com:8080");
        let r = HTTPServerRequest::new("GET", "/a/b?x=1&y", Version::Http11, &h, Vec::new());
        assert_eq!(
            (r.method(), r.uri(), r.path(), r.query()),
            ("GET", "/a/b?x=1&y", "/a/b", "x=1&y")
        );
        assert_eq!(r.host_name(), "example.com");
        let r = HTTPServerRequest::new("POST", "/plain", Version::Http10, &h, Vec::new());
        assert_eq!((r.path(), r.query()), ("/plain", ""));
        let r = HTTPServerRequest::new("GET", "/q?", Version::Http11, &h, Vec::new());
        assert_eq!((r.path(), r.query()), ("/q", ""));
    }

    #[test]
    fn request_line_survives_header_edits() {
        let mut h = HTTPHeaders::new();
        h.add("Host", "x");
        let mut r = HTTPServerRequest::new("GET", "/p?q=1", Version::Http11, &h, Vec::new());
        for i in 0..5_000 {
            r.headers_mut().set("X-Big", "v".repeat(i % 300));
        }
        r.headers_mut().clear();
        r.shrink_to_fit();
        assert_eq!((r.method(), r.path(), r.query()), ("GET", "/p", "q=1"));
    }
}
