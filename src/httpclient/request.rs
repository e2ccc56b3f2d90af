//! What goes into a fetch and what comes out: [`HTTPRequest`],
//! [`HTTPResponse`], [`HTTPClientError`].
//!
//! Mirrors the value classes of Tornado's `tornado/httpclient.py`
//! (`HTTPRequest`, `HTTPResponse`, `HTTPClientError`), with Tornado's
//! defaults. Errors are values handed to the callback, never panics.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::http::Version;
use crate::httputil::HTTPHeaders;

/// Default time to resolve and connect (Tornado: 20 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Default time for the whole fetch, queue time included (Tornado: 20 s).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Default number of redirects followed (Tornado: 5).
pub const DEFAULT_MAX_REDIRECTS: u32 = 5;

/// One request to make. Build it with [`HTTPRequest::new`] and the
/// chainable setters:
///
/// ```
/// use squall::httpclient::HTTPRequest;
/// let req = HTTPRequest::new("http://127.0.0.1:8888/a/message/new")
///     .method("POST")
///     .header("Content-Type", "application/x-www-form-urlencoded")
///     .body("body=hello");
/// assert_eq!(req.method, "POST");
/// ```
#[derive(Clone, Debug)]
pub struct HTTPRequest {
    /// `http://host[:port]/path?query`. `https` is refused: plain HTTP only.
    pub url: String,
    /// Method token (default `GET`).
    pub method: String,
    /// Extra request headers. `Host`, `Content-Length` and (without
    /// keep-alive) `Connection: close` are added by the client.
    pub headers: HTTPHeaders,
    /// Request body. Required for POST/PUT/PATCH and refused for other
    /// methods, as in Tornado, unless `allow_nonstandard_methods`.
    pub body: Option<Vec<u8>>,
    /// Budget for resolving the host and connecting (capped by the
    /// request deadline).
    pub connect_timeout: Duration,
    /// Budget for the whole fetch, counted from the call to `fetch`: time
    /// spent waiting in the `max_clients` queue and following redirects
    /// counts against it.
    pub request_timeout: Duration,
    /// Follow 301/302/303/307/308 responses that carry a `Location`.
    pub follow_redirects: bool,
    /// Redirects followed at most; one more is [`HTTPClientError::TooManyRedirects`].
    pub max_redirects: u32,
    /// `User-Agent` to send if `headers` has none (default `squall/<ver>`).
    pub user_agent: Option<String>,
    /// A final status outside 200..=299 is an [`HTTPClientError::Http`]
    /// (Tornado's `raise_error=True`). Off: it is an `Ok` response.
    pub raise_error: bool,
    /// Skip the body-per-method check (Tornado's option of the same name).
    pub allow_nonstandard_methods: bool,
}

impl HTTPRequest {
    /// A `GET` of `url` with Tornado's defaults.
    pub fn new(url: impl Into<String>) -> HTTPRequest {
        HTTPRequest {
            url: url.into(),
            method: "GET".to_string(),
            headers: HTTPHeaders::new(),
            body: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            follow_redirects: true,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            user_agent: None,
            raise_error: true,
            allow_nonstandard_methods: false,
        }
    }

    /// Set the method.
    pub fn method(mut self, method: impl Into<String>) -> HTTPRequest {
        self.method = method.into();
        self
    }

    /// Add a header line.
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> HTTPRequest {
        self.headers.add(name, value);
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> HTTPRequest {
        self.body = Some(body.into());
        self
    }

    /// Set the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> HTTPRequest {
        self.connect_timeout = timeout;
        self
    }

    /// Set the request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> HTTPRequest {
        self.request_timeout = timeout;
        self
    }

    /// Follow redirects or not.
    pub fn follow_redirects(mut self, follow: bool) -> HTTPRequest {
        self.follow_redirects = follow;
        self
    }

    /// Set the redirect budget.
    pub fn max_redirects(mut self, max: u32) -> HTTPRequest {
        self.max_redirects = max;
        self
    }

    /// Turn non-2xx statuses into errors (default) or not.
    pub fn raise_error(mut self, raise: bool) -> HTTPRequest {
        self.raise_error = raise;
        self
    }
}

/// A complete response.
#[derive(Clone, Debug)]
pub struct HTTPResponse {
    /// Status code.
    pub code: u16,
    /// Reason phrase as sent (may be empty).
    pub reason: String,
    /// HTTP/1.0 or HTTP/1.1, as the server said.
    pub version: Version,
    /// Response headers, in order.
    pub headers: HTTPHeaders,
    /// The body, de-chunked (empty for HEAD, 204, 304).
    pub body: Vec<u8>,
    /// The URL that answered, after redirects.
    pub effective_url: String,
    /// From the call to `fetch` to the end of the body.
    pub request_time: Duration,
}

impl HTTPResponse {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// Where a fetch was when its time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Waiting for a free `max_clients` slot.
    InQueue,
    /// Resolving the host or connecting (`connect_timeout`).
    Connecting,
    /// Sending the request or reading the response (`request_timeout`).
    Request,
}

impl TimeoutPhase {
    /// Tornado's wording.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::InQueue => "in request queue",
            TimeoutPhase::Connecting => "while connecting",
            TimeoutPhase::Request => "during request",
        }
    }
}

/// Why a fetch produced no (acceptable) response.
///
/// Every variant except `Http` and `TooManyRedirects` is what Tornado
/// reports as code 599: see [`HTTPClientError::code`].
#[derive(Clone, Debug)]
pub enum HTTPClientError {
    /// The URL cannot be fetched: malformed, not `http://`, or `https://`
    /// ("https is not supported").
    InvalidUrl(String),
    /// The request itself is wrong (bad method or header, body rules).
    InvalidRequest(String),
    /// The host name did not resolve.
    Resolve {
        /// The name.
        host: String,
        /// What the resolver said.
        message: String,
    },
    /// The TCP connection failed (refused, unreachable, reset while
    /// connecting).
    Connect {
        /// The OS error kind, e.g. `ConnectionRefused`.
        kind: io::ErrorKind,
        /// The OS message.
        message: String,
    },
    /// The deadline passed.
    Timeout(TimeoutPhase),
    /// The response broke HTTP/1.1 (status line, headers, framing).
    MalformedResponse(String),
    /// The response body exceeds the client's limit (`max_body_size`).
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The response head, or the trailer section of a chunked body, exceeds
    /// the client's limit (`max_header_size`).
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The server closed the connection before the response was complete.
    ClosedEarly,
    /// A socket error during the exchange.
    Io {
        /// The OS error kind.
        kind: io::ErrorKind,
        /// The OS message.
        message: String,
    },
    /// Redirects went on past `max_redirects`; the last redirect response.
    TooManyRedirects {
        /// The budget that ran out.
        max_redirects: u32,
        /// The redirect that was not followed.
        response: Box<HTTPResponse>,
    },
    /// A complete response with a non-2xx status (with `raise_error`).
    Http(Box<HTTPResponse>),
    /// The client was closed before the fetch finished.
    ClientClosed,
}

impl HTTPClientError {
    /// Tornado's numeric code: the HTTP status for `Http` and
    /// `TooManyRedirects`, 599 ("no HTTP response") for everything else.
    pub fn code(&self) -> u16 {
        match self {
            HTTPClientError::Http(r) => r.code,
            HTTPClientError::TooManyRedirects { response, .. } => response.code,
            _ => 599,
        }
    }

    /// The response, for errors that have one.
    pub fn response(&self) -> Option<&HTTPResponse> {
        match self {
            HTTPClientError::Http(r) => Some(r),
            HTTPClientError::TooManyRedirects { response, .. } => Some(response),
            _ => None,
        }
    }
}

impl fmt::Display for HTTPClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HTTPClientError::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            HTTPClientError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            HTTPClientError::Resolve { host, message } => {
                write!(f, "cannot resolve {host:?}: {message}")
            }
            HTTPClientError::Connect { message, .. } => write!(f, "cannot connect: {message}"),
            HTTPClientError::Timeout(phase) => write!(f, "Timeout {}", phase.as_str()),
            HTTPClientError::MalformedResponse(m) => write!(f, "malformed response: {m}"),
            HTTPClientError::TooLarge { limit } => {
                write!(f, "response body larger than the limit of {limit} bytes")
            }
            HTTPClientError::HeadTooLarge { limit } => {
                write!(f, "response head larger than the limit of {limit} bytes")
            }
            HTTPClientError::ClosedEarly => {
                write!(f, "connection closed before the response was complete")
            }
            HTTPClientError::Io { message, .. } => write!(f, "socket error: {message}"),
            HTTPClientError::TooManyRedirects { max_redirects, .. } => {
                write!(f, "more than {max_redirects} redirects")
            }
            HTTPClientError::Http(r) => write!(f, "HTTP {}: {}", r.code, r.reason),
            HTTPClientError::ClientClosed => write!(f, "the client was closed"),
        }
    }
}

impl std::error::Error for HTTPClientError {}
