//! From a response header block to a validated head and its framing,
//! without I/O.
//!
//! Mirrors the client half of Tornado's `tornado/http1connection.py`
//! (`_read_message` with `is_client=True`, `_read_body`). httparse does the
//! status-line and header grammar; the framing rules are RFC 9112 §6.3 and
//! reuse the server's strict helpers in [`crate::http::parse`], so a
//! response is held to the same standard as a request.

use crate::http::parse::{collect_headers, content_length, is_chunked, keep_alive, MAX_HEADERS};
use crate::http::Version;
use crate::httputil::HTTPHeaders;

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: a response to HEAD, or 1xx/204/304.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body is everything until the server closes.
    UntilClose,
}

/// A parsed and validated status line plus headers.
#[derive(Debug)]
pub struct ResponseHead {
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Status code (100..=999).
    pub code: u16,
    /// Reason phrase (may be empty).
    pub reason: String,
    /// Header fields, in order.
    pub headers: HTTPHeaders,
    /// How the body is framed.
    pub framing: ResponseFraming,
    /// The server lets the connection carry another request.
    pub keep_alive: bool,
}

/// Parse `block` (a complete head ending in CRLF CRLF), the response to a
/// request with method `method`. Errors are messages for
/// [`HTTPClientError::MalformedResponse`](super::HTTPClientError::MalformedResponse).
pub fn parse_response_head(block: &[u8], method: &str) -> Result<ResponseHead, String> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    match resp.parse(block) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete response head".into()),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!("more than {MAX_HEADERS} header fields"))
        }
        Err(e) => return Err(format!("bad status line or headers: {e}")),
    }
    let (Some(minor), Some(code)) = (resp.version, resp.code) else {
        return Err("bad status line".into());
    };
    if !(100..=999).contains(&code) {
        return Err(format!("bad status code {code}"));
    }
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    let reason = resp.reason.unwrap_or("").to_string();
    let headers = collect_headers(resp.headers).map_err(|e| e.reason)?;
    let framing = if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&code)
        || code == 204
        || code == 304
    {
        // RFC 9112 §6.3 rule 1: whatever the headers say, no body.
        ResponseFraming::None
    } else if is_chunked(&headers, version).map_err(|e| e.reason)? {
        ResponseFraming::Chunked
    } else {
        match content_length(&headers).map_err(|e| e.reason)? {
            Some(0) => ResponseFraming::None,
            Some(n) => ResponseFraming::Length(n),
            None => ResponseFraming::UntilClose,
        }
    };
    let keep_alive = keep_alive(&headers, version);
    Ok(ResponseHead {
        version,
        code,
        reason,
        headers,
        framing,
        keep_alive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ResponseHead, String> {
        parse_response_head(s.as_bytes(), "GET")
    }

    #[test]
    fn framings() {
        let h = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").expect("valid");
        assert_eq!((h.code, h.reason.as_str()), (200, "OK"));
        assert_eq!(h.framing, ResponseFraming::Length(5));
        assert!(h.keep_alive);
        let h = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").expect("valid");
        assert_eq!(h.framing, ResponseFraming::Chunked);
        let h = parse("HTTP/1.0 200 OK\r\n\r\n").expect("valid");
        assert_eq!(h.framing, ResponseFraming::UntilClose);
        assert!(!h.keep_alive);
        let h = parse("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").expect("valid");
        assert_eq!(h.framing, ResponseFraming::None);
        let h = parse("HTTP/1.1 304 Not Modified\r\n\r\n").expect("valid");
        assert_eq!(h.framing, ResponseFraming::None);
        let h = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD")
            .expect("valid");
        assert_eq!(h.framing, ResponseFraming::None);
        let h = parse("HTTP/1.1 200\r\n\r\n").expect("reason phrase may be missing");
        assert_eq!(h.reason, "");
    }

    #[test]
    fn malformed() {
        for bad in [
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 OK\r\n\r\n",
            "HTTP/2.0 200 OK\r\n\r\n",
            "ICY 200 OK\r\n\r\n",
            "HTTP/1.1 099 Low\r\n\r\n",
            "garbage\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
