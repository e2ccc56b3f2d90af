//! Checking a request and putting it on the wire.
//!
//! Mirrors `_HTTPConnection.run` in Tornado's `tornado/simple_httpclient.py`
//! (the body-per-method rule, `Host`, `User-Agent`, `Connection: close`,
//! `Content-Length`) and `HTTP1Connection.write_headers` (the request line).
//! Everything that reaches the socket is checked here first: a method or
//! header name that is not a token, or a value with CR/LF, is refused, so a
//! caller cannot inject headers or a second request.

use super::request::{HTTPClientError, HTTPRequest};
use super::url::Url;
use crate::httputil::{is_field_value, is_token};

/// `User-Agent` sent when the request has none (Tornado: `Tornado/<ver>`).
pub const DEFAULT_USER_AGENT: &str = concat!("squall/", env!("CARGO_PKG_VERSION"));

/// Methods that must carry a body, as in Tornado.
const BODY_REQUIRED: [&str; 3] = ["POST", "PATCH", "PUT"];

/// Headers the client frames itself and does not take from the caller.
const FRAMING_HEADERS: [&str; 2] = ["Content-Length", "Transfer-Encoding"];

/// Check `request` against the rules above (before it is queued, so a bad
/// request fails at once).
pub(crate) fn validate(request: &HTTPRequest) -> Result<(), HTTPClientError> {
    let invalid = |m: String| Err(HTTPClientError::InvalidRequest(m));
    if !is_token(&request.method) {
        return invalid(format!("invalid method {:?}", request.method));
    }
    for (name, value) in request.headers.iter() {
        if !is_token(name) {
            return invalid(format!("invalid header name {name:?}"));
        }
        if !is_field_value(value.as_bytes()) {
            return invalid(format!("invalid value for header {name}"));
        }
    }
    if request.headers.contains("Transfer-Encoding") {
        return invalid("chunked request bodies are not supported; send the body whole".into());
    }
    if let Some(ua) = &request.user_agent {
        if !is_field_value(ua.as_bytes()) {
            return invalid("invalid User-Agent".into());
        }
    }
    if !request.allow_nonstandard_methods {
        let needs_body = BODY_REQUIRED.contains(&request.method.as_str());
        match (&request.body, needs_body) {
            (None, true) => {
                return invalid(format!(
                    "body must not be None for method {}",
                    request.method
                ))
            }
            (Some(_), false) => {
                return invalid(format!("body must be None for method {}", request.method))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The request head and body as bytes, for `url` (the current hop, which
/// after a redirect differs from `request.url`).
pub(crate) fn encode(request: &HTTPRequest, url: &Url, keep_alive: bool) -> Vec<u8> {
    let body = request.body.as_deref().unwrap_or(&[]);
    let mut head = String::with_capacity(256);
    head.push_str(&request.method);
    head.push(' ');
    head.push_str(&url.target);
    head.push_str(" HTTP/1.1\r\n");
    if !request.headers.contains("Host") {
        push_header(&mut head, "Host", &url.host_header());
    }
    if !request.headers.contains("User-Agent") {
        let ua = request.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        push_header(&mut head, "User-Agent", ua);
    }
    if !keep_alive && !request.headers.contains("Connection") {
        push_header(&mut head, "Connection", "close");
    }
    for (name, value) in request.headers.iter() {
        if !FRAMING_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            push_header(&mut head, name, value);
        }
    }
    if request.body.is_some() {
        push_header(&mut head, "Content-Length", &body.len().to_string());
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_request() {
        let req = HTTPRequest::new("http://h:81/p?q")
            .method("POST")
            .header("X-A", "1")
            .header("Content-Length", "999")
            .body("abc");
        let url = Url::parse(&req.url).expect("url");
        let text = String::from_utf8(encode(&req, &url, false)).expect("ascii");
        assert!(
            text.starts_with("POST /p?q HTTP/1.1\r\nHost: h:81\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.contains("\r\nX-A: 1\r\n"));
        assert!(text.ends_with("\r\nContent-Length: 3\r\n\r\nabc"), "{text}");
        assert!(!text.contains("999"));
        let kept = String::from_utf8(encode(&req, &url, true)).expect("ascii");
        assert!(!kept.contains("Connection:"));
    }

    #[test]
    fn refuses_bad_requests() {
        let ok = HTTPRequest::new("http://h/");
        assert!(validate(&ok).is_ok());
        for bad in [
            ok.clone().method("GE T"),
            ok.clone().header("X\r\nY", "1"),
            ok.clone().header("X", "a\r\nSet-Cookie: x"),
            ok.clone().header("Transfer-Encoding", "chunked"),
            ok.clone().method("POST"),
            ok.clone().body("x"),
        ] {
            assert!(validate(&bad).is_err(), "{bad:?}");
        }
        let mut odd = ok.clone().body("x");
        odd.allow_nonstandard_methods = true;
        assert!(validate(&odd).is_ok());
    }
}
