//! The request a handler receives (Tornado's `HTTPServerRequest`).

use std::net::IpAddr;
use std::time::Instant;

use super::parse::{split_target, RequestHead, TargetForm, TargetParts, Version};
use crate::httputil::HTTPHeaders;

/// One complete HTTP request: head and body, read before the handler runs.
///
/// The method, target, path and query are read from the received head
/// block, which the headers keep (see [`RequestHead`]):
/// a request costs no allocation per field.
#[derive(Debug)]
pub struct HTTPServerRequest {
    /// Method: a span of the head text.
    method: (u32, u32),
    /// Request-target: a span of the head text.
    uri: (u32, u32),
    /// The path inside the target, up to the `?` or the end; empty (an
    /// absolute-form target with no path) stands for `/`.
    path: (u32, u32),
    /// The authority of an absolute-form target, which is the request's
    /// host instead of the `Host` header.
    authority: Option<(u32, u32)>,
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
        HTTPServerRequest {
            method: head.method,
            uri: head.uri,
            path: head.path,
            authority: head.authority,
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
        // A target the server would refuse is taken as a path up to its `?`.
        let target = split_target(method, uri.as_bytes()).unwrap_or_else(|_| TargetParts {
            form: TargetForm::Origin,
            path: (0, uri.find('?').unwrap_or(uri.len())),
            authority: None,
        });
        let in_uri =
            |(from, to): (usize, usize)| (uri_span.0 + from as u32, uri_span.0 + to as u32);
        let mut fields = HTTPHeaders::from_block(line, Vec::new(), uri_span.1);
        for (name, value) in headers {
            fields.add(name, value);
        }
        let head = RequestHead {
            method: method_span,
            uri: uri_span,
            form: target.form,
            path: in_uri(target.path),
            authority: target.authority.map(in_uri),
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

    /// The request-target as sent, e.g. `/a?b=1`, or
    /// `http://host/a?b=1` in absolute-form.
    pub fn uri(&self) -> &str {
        self.headers.raw(self.uri)
    }

    /// `GET /a?b=1`: the method, one space and the target, as one slice of
    /// the head (the access log copies it).
    ///
    /// Invariant: the target's span starts one byte after the method's.
    /// A parsed head has them so (httparse takes exactly one SP between
    /// them, RFC 9112 §3), and [`HTTPServerRequest::new`] lays them out the
    /// same way.
    pub(crate) fn method_and_target(&self) -> &str {
        debug_assert_eq!(self.uri.0, self.method.1 + 1, "method SP target");
        self.headers.raw((self.method.0, self.uri.1))
    }

    /// The target's path, before the `?`, not percent-decoded (as in
    /// Tornado). In absolute-form, the path after the authority (`/` if
    /// there is none), so a request is routed alike in either form.
    pub fn path(&self) -> &str {
        if self.path.0 == self.path.1 {
            return "/";
        }
        self.headers.raw(self.path)
    }

    /// The target after the `?` (empty if none).
    pub fn query(&self) -> &str {
        if self.path.1 >= self.uri.1 {
            return "";
        }
        self.headers.raw((self.path.1 + 1, self.uri.1))
    }

    /// The host the request is for (Tornado's `request.host`), as sent,
    /// port included: the authority of an absolute-form target, which
    /// replaces the `Host` header (RFC 9112 §3.2.2), else the `Host`
    /// header; empty if neither (an HTTP/1.0 request may omit `Host`).
    pub fn host(&self) -> &str {
        match self.authority {
            Some(authority) => self.headers.raw(authority),
            None => self.headers.get("Host").unwrap_or(""),
        }
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

    /// [`host`](Self::host) without any port (Tornado's
    /// `request.host_name`).
    pub fn host_name(&self) -> &str {
        let host = self.host();
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
    fn absolute_form_routes_by_path_and_names_the_host() {
        let mut h = HTTPHeaders::new();
        h.add("Host", "ignored:1");
        let r = HTTPServerRequest::new(
            "GET",
            "HTTP://Example.com:8080/a/b?x=1",
            Version::Http11,
            &h,
            Vec::new(),
        );
        assert_eq!(
            (r.uri(), r.path(), r.query()),
            ("HTTP://Example.com:8080/a/b?x=1", "/a/b", "x=1")
        );
        assert_eq!(
            (r.host(), r.host_name()),
            ("Example.com:8080", "Example.com")
        );
        let r = HTTPServerRequest::new("GET", "http://[::1]:80?q", Version::Http11, &h, Vec::new());
        assert_eq!((r.path(), r.query(), r.host_name()), ("/", "q", "::1"));
        let r = HTTPServerRequest::new("GET", "/p", Version::Http11, &h, Vec::new());
        assert_eq!((r.host(), r.host_name()), ("ignored:1", "ignored"));
        let r = HTTPServerRequest::new(
            "GET",
            "/p",
            Version::Http10,
            &HTTPHeaders::new(),
            Vec::new(),
        );
        assert_eq!((r.host(), r.host_name()), ("", ""));
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
