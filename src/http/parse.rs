//! From a header block to a validated request head, without I/O.
//!
//! Mirrors the parsing half of Tornado's `tornado/http1connection.py`
//! (`_read_message`, `_parse_headers`, `_read_body`) and the checks of
//! `httputil.parse_request_start_line`. httparse does the RFC 9112 grammar
//! (request line, `field-name ":" OWS field-value OWS`); what httparse does not
//! know — the request-target's form, the Host value's grammar, a version it
//! cannot read, message framing, trailer lines, keep-alive — is here, and
//! strict, because
//! lenient framing is how request smuggling happens (Tornado's own advisories
//! GHSA-qppv-j76h-2rpx, GHSA-753j-mpmx-qq6g were exactly these rules).

use crate::httputil::headers::FieldSpan;
use crate::httputil::HTTPHeaders;

/// Most header lines in one request (more: 431).
pub const MAX_HEADERS: usize = 100;

/// Longest accepted chunk-size line (Tornado: 64 bytes).
pub const MAX_CHUNK_LINE: usize = 64;

/// HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: close after each response unless `Connection: keep-alive`.
    Http10,
    /// HTTP/1.1: persistent unless `Connection: close`.
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is framed (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The form of a request-target the server accepts (RFC 9112 §3.2).
/// The fourth form, authority-form, is only for `CONNECT`, which squall
/// refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetForm {
    /// `origin-form = absolute-path [ "?" query ]`, e.g. `/room?x=1`.
    Origin,
    /// `absolute-form = absolute-URI` with an `http` or `https` scheme,
    /// e.g. `http://host:8080/room?x=1`.
    Absolute,
    /// `asterisk-form = "*"`, only with `OPTIONS`: the server as a whole.
    Asterisk,
}

/// A parsed and validated request line plus headers.
///
/// The received head block is kept whole as the text of `headers` (its
/// request line pinned in front); `method` and `uri` are offsets into it.
/// So parsing a request allocates twice however many fields it has: the
/// block and the field index.
#[derive(Debug)]
pub struct RequestHead {
    /// Method token, e.g. `GET`: a span of `headers`' text.
    pub method: (u32, u32),
    /// The request-target as sent, e.g. `/room/lobby?x=1`: a span of
    /// `headers`' text.
    pub uri: (u32, u32),
    /// Which form the target has.
    pub form: TargetForm,
    /// The target's path, a span of `uri` ending at the `?` or at its end:
    /// for absolute-form what follows the authority, which may be empty
    /// (standing for `/`); for asterisk-form the `*`.
    pub path: (u32, u32),
    /// The authority (`host[:port]`) of an absolute-form target, a span of
    /// `uri`: it, not the `Host` header, is the request's host (RFC 9112
    /// §3.2.2).
    pub authority: Option<(u32, u32)>,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// All header fields, in order.
    pub headers: HTTPHeaders,
    /// How the body is framed.
    pub body: BodyFraming,
    /// The connection may carry another request after this one.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl RequestHead {
    /// The method token.
    pub fn method(&self) -> &str {
        self.headers.raw(self.method)
    }

    /// The request-target.
    pub fn uri(&self) -> &str {
        self.headers.raw(self.uri)
    }
}

/// A request the server refuses, with the status to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// HTTP status code (400, 413, 431, 501, 505).
    pub status: u16,
    /// Why, for the log and the error page.
    pub reason: String,
}

impl ParseError {
    fn new(status: u16, reason: impl Into<String>) -> ParseError {
        ParseError {
            status,
            reason: reason.into(),
        }
    }
}

/// Fields of a request head whose presence changes how it is read.
#[derive(Default)]
struct Seen {
    /// How many `Host` fields.
    hosts: u32,
    /// Some `Host` value holds a comma (a list, as several `Host` lines
    /// would be combined: RFC 9110 §5.3).
    host_is_list: bool,
    /// Why the (first) `Host` value is not `uri-host [ ":" port ]`.
    host_invalid: Option<&'static str>,
    /// `Content-Length` or `Transfer-Encoding`.
    framing: bool,
    /// `Connection`.
    connection: bool,
    /// `Expect`.
    expect: bool,
}

/// The head block as text. Nearly every head is pure ASCII, which a
/// word-at-a-time `is_ascii` confirms faster than full UTF-8 validation;
/// anything else goes through `String::from_utf8`.
fn head_text(block: Vec<u8>) -> Result<String, std::string::FromUtf8Error> {
    if block.is_ascii() {
        // SAFETY: every byte is ASCII, and ASCII is valid UTF-8.
        return Ok(unsafe { String::from_utf8_unchecked(block) });
    }
    String::from_utf8(block)
}

/// Parse `block` (a complete header block ending in an empty line, CRLF or
/// bare LF), keeping it
/// as the request's header text (see [`RequestHead`]).
///
/// `max_body_size` lets a too-large `Content-Length` be refused (413) before
/// a single body byte is read.
pub fn parse_request_head(block: Vec<u8>, max_body_size: u64) -> Result<RequestHead, ParseError> {
    if u32::try_from(block.len()).is_err() {
        return Err(ParseError::new(431, "request head too large"));
    }
    // RFC 9112 §2.2: "a server that is expecting to receive and parse a
    // request-line SHOULD ignore at least one empty line (CRLF) received
    // prior to the request-line."
    // A bare LF counts as a line end too (§2.2 "MAY", as Tornado does).
    let mut skip = 0;
    loop {
        match block.get(skip..) {
            Some([b'\n', ..]) => skip += 1,
            Some([b'\r', b'\n', ..]) => skip += 2,
            _ => break,
        }
    }
    // Uninitialised slots: zeroing 100 headers (3.2 KB) for every request
    // cost more than parsing a small one. httparse initialises what it uses.
    let mut raw_headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(&block[skip..], &mut raw_headers) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(ParseError::new(400, "incomplete request head"))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ParseError::new(
                431,
                format!("more than {MAX_HEADERS} header fields"),
            ))
        }
        Err(httparse::Error::Version) => {
            // httparse reads only `HTTP/1.0` and `HTTP/1.1`, and says
            // "version" for any line it cannot read past the target.
            return match other_version(&block[skip..]) {
                OtherVersion::Malformed => Err(ParseError::new(400, "malformed request line")),
                OtherVersion::OtherMajor => Err(ParseError::new(
                    505,
                    "only HTTP/1.0 and HTTP/1.1 are supported",
                )),
                OtherVersion::LaterMinor(at) => {
                    // Served as HTTP/1.1: parse again with the minor digit
                    // made `1` (nothing reads the version from the text).
                    let mut again = block.clone();
                    again[skip + at] = b'1';
                    parse_request_head(again, max_body_size)
                }
            };
        }
        Err(e) => return Err(ParseError::new(400, format!("malformed request: {e}"))),
    }
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ParseError::new(400, "malformed request line"));
    };
    let version = if minor == 1 {
        Version::Http11
    } else {
        Version::Http10
    };
    // httparse hands out sub-slices of `block`: turn them into offsets so
    // the block itself can become the header text.
    let at = |part: &[u8]| (part.as_ptr() as usize - block.as_ptr() as usize) as u32;
    let span = |part: &[u8]| (at(part), at(part) + part.len() as u32);
    // RFC 9110 §9.3.6: CONNECT asks for a tunnel, which only a proxy makes.
    // 501: the server "is not capable of supporting it for any resource"
    // (§15.6.2). (405 would need an Allow for a resource that CONNECT does
    // not name.) Refused at once, as the client may start its tunnel.
    if method == "CONNECT" {
        return Err(ParseError::new(
            501,
            "CONNECT is not supported: squall is an origin server, not a proxy",
        ));
    }
    let target = split_target(method, path.as_bytes())?;
    let uri = span(path.as_bytes());
    let in_uri = |(from, to): (usize, usize)| (uri.0 + from as u32, uri.0 + to as u32);
    let method = span(method.as_bytes());
    let mut fields = crate::httputil::headers::take_fields();
    fields.reserve(req.headers.len());
    // Which of the fields this function must interpret are present, noted
    // in the one pass over them so the rules below only look up what is
    // there (most requests have no framing, Connection or Expect field).
    let mut seen = Seen::default();
    for h in req.headers.iter() {
        let name = h.name;
        // Set when a check below already proved the value free of NUL.
        let mut no_nul = false;
        match name.len() {
            4 if name.eq_ignore_ascii_case("Host") => {
                seen.hosts += 1;
                // The Host nearly every request sends passes this one-pass
                // check, which also proves it holds no comma (not a list)
                // and no NUL: the two scans for those are for the rest.
                if is_plain_host(h.value) {
                    no_nul = true;
                } else {
                    seen.host_is_list |= h.value.contains(&b',');
                    if seen.host_invalid.is_none() {
                        seen.host_invalid = check_host(h.value).err();
                    }
                }
            }
            6 if name.eq_ignore_ascii_case("Expect") => seen.expect = true,
            10 if name.eq_ignore_ascii_case("Connection") => seen.connection = true,
            14 if name.eq_ignore_ascii_case("Content-Length") => seen.framing = true,
            17 if name.eq_ignore_ascii_case("Transfer-Encoding") => seen.framing = true,
            _ => {}
        }
        // httparse refuses control bytes in values, NUL included; checked
        // again because smuggling defences should not rest on one parser.
        if !no_nul && h.value.contains(&0) {
            return Err(ParseError::new(400, "NUL in header value"));
        }
        fields.push(FieldSpan {
            name: span(h.name.as_bytes()),
            value: span(h.value),
        });
    }
    let pinned = fields.first().map_or(block.len() as u32, |f| f.name.0);
    // httparse allows obs-text (bytes ≥ 0x80) in values; we require UTF-8 so
    // callers see `&str`. Anything else is refused (400), not guessed. Every
    // span starts and ends next to an ASCII delimiter, so on valid UTF-8
    // they fall on char boundaries.
    let text = match head_text(block) {
        Ok(text) => text,
        Err(e) => {
            let bad = e.utf8_error().valid_up_to() as u32;
            let what = fields
                .iter()
                .find(|f| f.value.0 <= bad && bad < f.value.1)
                .map_or("request line".to_string(), |f| {
                    let name = String::from_utf8_lossy(
                        &e.as_bytes()[f.name.0 as usize..f.name.1 as usize],
                    );
                    format!("header {name}")
                });
            return Err(ParseError::new(400, format!("{what} is not valid UTF-8")));
        }
    };
    let headers = HTTPHeaders::from_block(text, fields, pinned);

    // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
    // code to any HTTP/1.1 request message that lacks a Host header field and
    // to any request message that contains more than one Host header field
    // line or a Host header field with an invalid field value."
    // (Counted and checked in the pass over the fields above.)
    if seen.hosts > 1 || seen.host_is_list {
        return Err(ParseError::new(400, "more than one Host header"));
    }
    if let Some(why) = seen.host_invalid {
        return Err(ParseError::new(
            400,
            format!("invalid Host header value: {why}"),
        ));
    }
    if version == Version::Http11 && seen.hosts == 0 {
        return Err(ParseError::new(400, "Missing Host header"));
    }

    let body = if seen.framing {
        body_framing(&headers, version, max_body_size)?
    } else {
        BodyFraming::None
    };
    let keep_alive = if seen.connection {
        keep_alive(&headers, version)
    } else {
        version == Version::Http11
    };
    let expect_continue = seen.expect
        && headers
            .get("Expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    Ok(RequestHead {
        method,
        uri,
        form: target.form,
        path: in_uri(target.path),
        authority: target.authority.map(in_uri),
        version,
        headers,
        body,
        keep_alive,
        expect_continue,
    })
}

/// Where the parts of a request-target are, as offsets into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TargetParts {
    /// Which form it has.
    pub(crate) form: TargetForm,
    /// The path, up to the `?` or the end; empty stands for `/`.
    pub(crate) path: (usize, usize),
    /// The authority of an absolute-form target.
    pub(crate) authority: Option<(usize, usize)>,
}

/// Split a request-target into its parts (RFC 9112 §3.2), refusing the
/// forms squall does not serve with a 400:
///
/// ```text
/// request-target = origin-form / absolute-form / authority-form / asterisk-form
/// origin-form    = absolute-path [ "?" query ]
/// absolute-form  = absolute-URI
/// absolute-URI   = scheme ":" hier-part [ "?" query ]      ; RFC 3986 §4.3
/// hier-part      = "//" authority path-abempty / ...
/// authority      = [ userinfo "@" ] host [ ":" port ]
/// asterisk-form  = "*"
/// ```
///
/// * No form has a fragment: a `#` anywhere is 400.
/// * absolute-form: "A server MUST accept the absolute-form in requests"
///   (§3.2.2), for the schemes squall serves, `http` and `https`
///   (case-insensitive, RFC 3986 §3.1). The authority is checked like a
///   `Host` value, and must not be empty nor carry userinfo (RFC 9110
///   §4.2.1: a recipient "MUST reject" an empty host; §4.2.4: userinfo
///   SHOULD be treated as an error). An empty path means `/` (§3.3).
/// * asterisk-form "is only used for a server-wide OPTIONS request"
///   (§3.2.4).
/// * authority-form "is only used for CONNECT requests" (§3.2.3), which
///   the caller refused already: here it is just not a valid target.
///
/// httparse has already limited the target to visible ASCII and obs-text.
pub(crate) fn split_target(method: &str, target: &[u8]) -> Result<TargetParts, ParseError> {
    let bad = |why: &str| {
        Err(ParseError::new(
            400,
            format!("invalid request-target: {why}"),
        ))
    };
    if target.contains(&b'#') {
        return bad("a fragment (\"#...\") is not allowed");
    }
    let path_from = |start: usize| {
        let end = target[start..]
            .iter()
            .position(|&b| b == b'?')
            .map_or(target.len(), |i| start + i);
        (start, end)
    };
    if target.first() == Some(&b'/') {
        return Ok(TargetParts {
            form: TargetForm::Origin,
            path: path_from(0),
            authority: None,
        });
    }
    if target == b"*" {
        if method != "OPTIONS" {
            return bad("\"*\" is only for OPTIONS");
        }
        return Ok(TargetParts {
            form: TargetForm::Asterisk,
            path: (0, 1),
            authority: None,
        });
    }
    let has_prefix = |prefix: &[u8]| {
        target.len() >= prefix.len() && target[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let start = if has_prefix(b"http://") {
        7
    } else if has_prefix(b"https://") {
        8
    } else {
        return bad("not a path (\"/...\") nor an http(s) URI");
    };
    let end = target[start..]
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .map_or(target.len(), |i| start + i);
    let authority = &target[start..end];
    if authority.is_empty() || authority[0] == b':' {
        return bad("the URI has an empty host");
    }
    if let Err(why) = check_host(authority) {
        return Err(ParseError::new(
            400,
            format!("invalid request-target: the URI's authority: {why}"),
        ));
    }
    Ok(TargetParts {
        form: TargetForm::Absolute,
        path: path_from(end),
        authority: Some((start, end)),
    })
}

/// Check a `Host` field value (RFC 9112 §3.2; RFC 3986 §3.2.2, §3.2.3):
///
/// ```text
/// Host        = uri-host [ ":" port ]
/// uri-host    = IP-literal / IPv4address / reg-name
/// IP-literal  = "[" ( IPv6address / IPvFuture  ) "]"
/// IPvFuture   = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
/// reg-name    = *( unreserved / pct-encoded / sub-delims )
/// port        = *DIGIT
/// ```
///
/// IPv4address is made of digits and dots, so it is also a reg-name; an
/// empty value is an empty reg-name, which §3.2 prescribes for a target
/// without an authority. A port must also fit in 16 bits (RFC 9110 §4.2.1
/// uses it as a TCP port). `Err` says what is wrong, for the 400.
fn check_host(value: &[u8]) -> Result<(), &'static str> {
    if is_plain_host(value) {
        return Ok(());
    }
    let port = if let Some(literal) = value.strip_prefix(b"[") {
        let Some(close) = literal.iter().position(|&b| b == b']') else {
            return Err("IP literal without a closing \"]\"");
        };
        check_ip_literal(&literal[..close])?;
        match &literal[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return Err("text after the IP literal's \"]\""),
        }
    } else {
        let (name, port) = match value.iter().position(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        };
        check_reg_name(name)?;
        port
    };
    port.map_or(Ok(()), check_port)
}

/// `port = *DIGIT`, and at most 65535 (RFC 9110 §4.2.1 uses it as a TCP
/// port).
fn check_port(port: &[u8]) -> Result<(), &'static str> {
    if !port.iter().all(u8::is_ascii_digit) {
        return Err("the port is not a number");
    }
    let fits = port.iter().try_fold(0u32, |n, &d| {
        let n = n * 10 + u32::from(d - b'0');
        (n <= 65535).then_some(n)
    });
    fits.map(drop).ok_or("the port is over 65535")
}

/// The bytes a reg-name holds as they are, `unreserved / sub-delims`,
/// less the comma, as a table: one load per byte of the Host value every
/// request carries. (A comma is a sub-delim, so [`check_host`] accepts
/// it, but in a Host value it is also what a list of values looks like;
/// leaving it out lets a plain host prove it is not a list.)
const REG_NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (is_unreserved(b as u8) || is_sub_delim(b as u8)) && b != b',' as usize;
        b += 1;
    }
    table
};

/// The Host nearly every request sends, `name` or `name:port` of plain
/// reg-name bytes (no comma) and a port up to 65535, recognised in one
/// pass; such a value holds no NUL and is not a list either. `false` only
/// means "not this simple form": [`check_host`] then applies the whole
/// grammar, which accepts everything this accepts.
fn is_plain_host(value: &[u8]) -> bool {
    let name_len = value
        .iter()
        .position(|&b| !REG_NAME_BYTES[usize::from(b)])
        .unwrap_or(value.len());
    let Some(rest) = value.get(name_len..) else {
        return false;
    };
    let port = match rest {
        [] => return true,
        [b':', port @ ..] => port,
        _ => return false,
    };
    port.len() <= 5 && check_port(port).is_ok()
}

/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"` (RFC 3986 §2.3).
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" /
/// "="` (RFC 3986 §2.2).
const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`, with
/// `pct-encoded = "%" HEXDIG HEXDIG` (RFC 3986 §3.2.2, §2.1).
fn check_reg_name(name: &[u8]) -> Result<(), &'static str> {
    let mut i = 0;
    while let Some(&b) = name.get(i) {
        match b {
            b'%' => {
                let hex = name.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err("\"%\" not followed by two hex digits");
                }
                i += 3;
                continue;
            }
            _ if is_unreserved(b) || is_sub_delim(b) => {}
            b'@' => return Err("userinfo (\"@\") is not allowed"),
            b'/' | b'?' | b'#' => return Err("a path, query or fragment is not allowed"),
            b'[' | b']' => return Err("\"[\" or \"]\" outside an IP literal"),
            _ => return Err("a character not allowed in a host name"),
        }
        i += 1;
    }
    Ok(())
}

/// What is between the brackets of an IP-literal (RFC 3986 §3.2.2):
/// `IPv6address / IPvFuture`. IPv6 is checked by `std`'s parser, which
/// takes exactly RFC 4291's text forms (no zone identifier, as in RFC 3986).
fn check_ip_literal(inner: &[u8]) -> Result<(), &'static str> {
    if let [b'v' | b'V', future @ ..] = inner {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        let dot = future.iter().position(|&b| b == b'.');
        let ok = dot.is_some_and(|d| {
            d > 0
                && future[..d].iter().all(u8::is_ascii_hexdigit)
                && d + 1 < future.len()
                && future[d + 1..]
                    .iter()
                    .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':')
        });
        return if ok {
            Ok(())
        } else {
            Err("invalid IPvFuture literal")
        };
    }
    let ipv6 = std::str::from_utf8(inner)
        .ok()
        .and_then(|text| text.parse::<std::net::Ipv6Addr>().ok());
    ipv6.map(drop).ok_or("invalid IPv6 address in \"[...]\"")
}

/// What a request line that httparse refused for its version is.
#[derive(Debug, PartialEq, Eq)]
enum OtherVersion {
    /// Not `method SP request-target SP HTTP-version` at all: a space in
    /// the target, a lower-case `http/1.1`, a two-digit version. 400.
    Malformed,
    /// A well-formed version of another major (`HTTP/2.0`, `HTTP/0.9`):
    /// 505 (RFC 9110 §15.6.6).
    OtherMajor,
    /// `HTTP/1.2` to `HTTP/1.9`, whose minor digit is at this offset of the
    /// line: served as HTTP/1.1 (RFC 9110 §2.5).
    LaterMinor(usize),
}

/// Classify the first line of `head`, which httparse refused with
/// `Error::Version` (RFC 9112 §3, §2.3):
///
/// ```text
/// request-line = method SP request-target SP HTTP-version
/// HTTP-version = HTTP-name "/" DIGIT "." DIGIT
/// HTTP-name    = %s"HTTP"        ; case-sensitive
/// ```
///
/// httparse stops at the first space after the target and expects exactly
/// `HTTP/1.0` or `HTTP/1.1`, so a second space inside the target or a
/// lower-case `http` reaches it as a bad version too: only a line of the
/// shape above is a question of version. RFC 9110 §2.5: a recipient of a
/// later minor version of a major it implements "SHOULD process the message
/// as if it were in the highest minor version within that major version to
/// which the recipient is conformant"; 505 is for refusing "the major
/// version of HTTP that was used in the request message" (§15.6.6).
fn other_version(head: &[u8]) -> OtherVersion {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return OtherVersion::Malformed;
    };
    let method_ok = std::str::from_utf8(method).is_ok_and(crate::httputil::is_token);
    if !method_ok || target.is_empty() {
        return OtherVersion::Malformed;
    }
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match (major, minor) {
                // httparse accepts these: something else in the line is wrong.
                (b'1', b'0' | b'1') => OtherVersion::Malformed,
                (b'1', _) => OtherVersion::LaterMinor(line.len() - 1),
                _ => OtherVersion::OtherMajor,
            }
        }
        _ => OtherVersion::Malformed,
    }
}

/// Copy httparse's header fields into [`HTTPHeaders`] (shared by the
/// server's request parser and the client's response parser).
///
/// httparse allows obs-text (bytes ≥ 0x80) in values; we require UTF-8 so
/// callers see `&str`. Anything else is refused (400), not guessed.
pub fn collect_headers(raw: &[httparse::Header<'_>]) -> Result<HTTPHeaders, ParseError> {
    let mut headers = HTTPHeaders::new();
    for h in raw {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Err(ParseError::new(
                400,
                format!("header {} is not valid UTF-8", h.name),
            ));
        };
        if h.value.contains(&0) {
            return Err(ParseError::new(400, "NUL in header value"));
        }
        headers.add(h.name, value);
    }
    Ok(headers)
}

/// RFC 9112 §6.3, strictly:
///
/// * `Transfer-Encoding` and `Content-Length` together: 400 ("ought to be
///   handled as an error" — the classic CL.TE smuggling vector).
/// * `Transfer-Encoding` must be exactly `chunked` (one coding, once): a
///   repeated `chunked` or one that is not the final coding is 400, any
///   other coding 501 (`gzip, chunked` too: chunked is final, gzip is not
///   understood), an empty value 400.
/// * `Content-Length = 1*DIGIT`; several values (lines or a comma list) are
///   accepted only if identical; `+5`, `0x5`, `5_0`, empty: 400.
/// * Over `max_body_size`: 413, before the body is read.
fn body_framing(
    headers: &HTTPHeaders,
    version: Version,
    max_body_size: u64,
) -> Result<BodyFraming, ParseError> {
    if is_chunked(headers, version)? {
        return Ok(BodyFraming::Chunked);
    }
    match content_length(headers)? {
        Some(n) if n > max_body_size => Err(ParseError::new(
            413,
            format!("Content-Length {n} exceeds the limit of {max_body_size} bytes"),
        )),
        Some(0) | None => Ok(BodyFraming::None),
        Some(n) => Ok(BodyFraming::Length(n)),
    }
}

/// The `Transfer-Encoding` rules of `body_framing`, for requests and
/// responses alike: `Ok(true)` if the message is chunked, `Ok(false)` if it
/// has no `Transfer-Encoding`; an error for `Transfer-Encoding` together with
/// `Content-Length`, in an HTTP/1.0 message, or other than exactly `chunked`.
pub fn is_chunked(headers: &HTTPHeaders, version: Version) -> Result<bool, ParseError> {
    let te: Vec<&str> = headers.get_all("Transfer-Encoding").collect();
    if te.is_empty() {
        return Ok(false);
    }
    if headers.contains("Content-Length") {
        return Err(ParseError::new(
            400,
            "both Transfer-Encoding and Content-Length",
        ));
    }
    if version == Version::Http10 {
        return Err(ParseError::new(
            400,
            "Transfer-Encoding in an HTTP/1.0 message",
        ));
    }
    // `#rule` lists: empty elements are allowed and mean nothing (§5.6.1).
    let codings: Vec<&str> = te
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let is_chunked = |c: &str| c.eq_ignore_ascii_case("chunked");
    let chunked = codings.iter().filter(|c| is_chunked(c)).count();
    if chunked > 1 {
        // §6.1: "A sender MUST NOT apply the chunked transfer coding more
        // than once to a message body."
        return Err(ParseError::new(400, "chunked applied more than once"));
    }
    if chunked == 1 && !codings.last().is_some_and(|c| is_chunked(c)) {
        // §6.3: chunked not final, so the length cannot be known: "MUST
        // respond with the 400 (Bad Request) status code".
        return Err(ParseError::new(
            400,
            "chunked must be the final transfer coding",
        ));
    }
    if let Some(other) = codings.iter().find(|c| !is_chunked(c)) {
        // §6.1: a transfer coding the server does not understand "SHOULD"
        // get 501; chunked is the only one we decode.
        return Err(ParseError::new(
            501,
            format!("unsupported transfer coding {other:?}"),
        ));
    }
    if codings.is_empty() {
        return Err(ParseError::new(400, "empty Transfer-Encoding"));
    }
    Ok(true)
}

/// The `Content-Length` rules of `body_framing`: `1*DIGIT`, several values
/// only if identical. `Ok(None)` if absent.
pub fn content_length(headers: &HTTPHeaders) -> Result<Option<u64>, ParseError> {
    let mut length: Option<u64> = None;
    for value in headers.get_all("Content-Length").flat_map(|v| v.split(',')) {
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new(
                400,
                format!("invalid Content-Length {value:?}"),
            ));
        }
        let Ok(n) = value.parse::<u64>() else {
            return Err(ParseError::new(400, "Content-Length out of range"));
        };
        match length {
            Some(prev) if prev != n => {
                return Err(ParseError::new(400, "differing Content-Length values"))
            }
            _ => length = Some(n),
        }
    }
    Ok(length)
}

/// RFC 9112 §9.3: HTTP/1.1 persists unless `Connection: close`; HTTP/1.0
/// only with `Connection: keep-alive`. (Same rule for responses.)
pub fn keep_alive(headers: &HTTPHeaders, version: Version) -> bool {
    let has_token = |token: &str| {
        headers
            .get_all("Connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match version {
        Version::Http11 => !has_token("close"),
        Version::Http10 => has_token("keep-alive"),
    }
}

/// Parse a chunk-size line (`chunk-size [ chunk-ext ] CRLF`, RFC 9112 §7.1).
///
/// ```text
/// chunked-body   = *chunk last-chunk trailer-section CRLF
/// chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-size     = 1*HEXDIG
/// ```
///
/// Extensions are ignored (RFC: "A recipient MUST ignore unrecognized chunk
/// extensions"), but must not carry bare CR/LF or NUL. Sizes are strict hex
/// (no `0x`, no sign, no underscores), at most 16 digits.
pub fn parse_chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(ParseError::new(400, "chunk size line must end in CRLF"));
    };
    let (size, ext) = match line.iter().position(|&b| b == b';') {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, &[][..]),
    };
    let size = trim_ows(size);
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(ParseError::new(400, "invalid chunk size"));
    }
    if ext.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ParseError::new(400, "invalid chunk extension"));
    }
    let text = std::str::from_utf8(size).map_err(|_| ParseError::new(400, "invalid chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| ParseError::new(400, "invalid chunk size"))
}

/// Check one line of a chunked body's trailer section, CRLF included
/// (RFC 9112 §7.1.2: "a trailer section, which consists of ... field
/// lines", the same grammar as the head's, §5):
///
/// ```text
/// trailer-section = *( field-line CRLF )
/// field-line      = field-name ":" OWS field-value OWS
/// field-name      = token
/// field-value     = *field-content      ; no CTL but HTAB
/// ```
///
/// A line that is not a field line is 400, as in the head: no colon, a
/// name that is not a token (a space before the colon, §5.1; a leading
/// space is obs-fold, §5.2), or a control byte (a bare LF or CR, NUL) in
/// the value. Valid trailers are then dropped by the caller.
pub fn check_trailer_line(line: &[u8]) -> Result<(), ParseError> {
    let bad = |why: &str| {
        Err(ParseError::new(
            400,
            format!("malformed trailer line: {why}"),
        ))
    };
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return bad("it must end in CRLF");
    };
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return bad("no \":\"");
    };
    let name = &line[..colon];
    if !std::str::from_utf8(name).is_ok_and(crate::httputil::is_token) {
        return bad("the field name is not a token");
    }
    if !crate::httputil::is_field_value(&line[colon + 1..]) {
        return bad("a control character in the field value");
    }
    Ok(())
}

/// Strip trailing spaces/tabs (BWS before a chunk extension).
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RequestHead, ParseError> {
        parse_request_head(s.as_bytes().to_vec(), 1000)
    }

    fn status(s: &str) -> u16 {
        match parse(s) {
            Ok(_) => 200,
            Err(e) => e.status,
        }
    }

    #[test]
    fn simple_get() {
        let h = parse("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n").expect("valid");
        assert_eq!(h.method(), "GET");
        assert_eq!(h.uri(), "/a?b=1");
        assert_eq!(h.version, Version::Http11);
        assert!(h.keep_alive);
        assert_eq!(h.body, BodyFraming::None);
    }

    #[test]
    fn leading_empty_lines_are_ignored() {
        assert_eq!(status("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
        assert_eq!(status("\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        let h = parse("GET /a HTTP/1.1\nHost: x\nX-Y: z\n\n").expect("valid");
        assert_eq!(h.uri(), "/a");
        assert_eq!(h.headers.get("Host"), Some("x"));
        assert_eq!(h.headers.get("X-Y"), Some("z"));
        let mixed = parse("POST / HTTP/1.1\r\nHost: x\nContent-Length: 3\r\n\n").expect("valid");
        assert_eq!(mixed.body, BodyFraming::Length(3));
    }

    #[test]
    fn host_rules() {
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.0\r\n\r\n"), 200);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 200);
        assert_eq!(status("GET / HTTP/1.0\r\nHost: u@x\r\n\r\n"), 400);
        let e = parse("GET / HTTP/1.1\r\nHost: a b\r\n\r\n").expect_err("space");
        assert!(e.reason.starts_with("invalid Host header value"), "{e:?}");
    }

    #[test]
    fn request_targets() {
        type Parts<'a> = (TargetForm, &'a str, Option<&'a str>);
        fn parts<'a>(method: &str, target: &'a str) -> Result<Parts<'a>, ParseError> {
            split_target(method, target.as_bytes()).map(|p| {
                let at = |(a, b): (usize, usize)| &target[a..b];
                (p.form, at(p.path), p.authority.map(at))
            })
        }
        use TargetForm::*;
        assert_eq!(
            parts("GET", "/a?b#"),
            Err(ParseError::new(
                400,
                "invalid request-target: a fragment (\"#...\") is not allowed"
            ))
        );
        assert_eq!(parts("GET", "/a/b?x=1"), Ok((Origin, "/a/b", None)));
        assert_eq!(parts("GET", "//a"), Ok((Origin, "//a", None)));
        assert_eq!(parts("OPTIONS", "*"), Ok((Asterisk, "*", None)));
        assert_eq!(
            parts("GET", "http://h:80/a?x=1"),
            Ok((Absolute, "/a", Some("h:80")))
        );
        assert_eq!(
            parts("GET", "HtTpS://[::1]"),
            Ok((Absolute, "", Some("[::1]")))
        );
        assert_eq!(parts("GET", "http://h?x"), Ok((Absolute, "", Some("h"))));
        for bad in [
            "*",
            "a",
            "h:80",
            "ftp://h/",
            "http:/h",
            "http://",
            "http://:80/",
            "http://u@h/",
            "http://h:x/",
            "http://h:65536/",
            "http://h/#f",
            "httpx://h/",
        ] {
            assert_eq!(parts("GET", bad).map_err(|e| e.status), Err(400), "{bad}");
        }
        assert_eq!(status("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"), 501);
        let h = parse("GET http://h:1/p?q HTTP/1.1\r\nHost: x\r\n\r\n").expect("valid");
        assert_eq!(
            (
                h.form,
                h.headers.raw(h.path),
                h.authority.map(|a| h.headers.raw(a))
            ),
            (Absolute, "/p", Some("h:1"))
        );
    }

    #[test]
    fn host_grammar() {
        for good in [
            "",
            "x",
            "x:",
            "x:0",
            "x:65535",
            "x:000080",
            "10.0.0.1:8080",
            "[::1]",
            "[::1]:80",
            "[2001:db8::ffff:10.0.0.1]",
            "[v1.a:b]",
            "[V1F.x]",
            "a%2Fb",
            "ex-am_ple.~com",
            "!$&'()*+,;=",
        ] {
            assert_eq!(check_host(good.as_bytes()), Ok(()), "{good:?}");
        }
        for bad in [
            "u@x",
            "x:abc",
            "x:-1",
            "x:65536",
            "x:99999999999999999999",
            "x:1:2",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[zz]",
            "[fe80::1%eth0]",
            "[v.x]",
            "[v1.]",
            "[vg.x]",
            "x/y",
            "x?y",
            "x#y",
            "a b",
            "a%zz",
            "a%2",
            "x]",
            "caf\u{e9}",
        ] {
            assert!(check_host(bad.as_bytes()).is_err(), "{bad:?}");
            assert!(!is_plain_host(bad.as_bytes()), "fast path took {bad:?}");
        }
        // The fast path takes the usual forms (and the grammar agrees).
        for plain in [
            "",
            "x",
            "x:",
            "localhost:8888",
            "10.0.0.1:65535",
            "!$&'()*+;=",
        ] {
            assert!(is_plain_host(plain.as_bytes()), "{plain:?}");
        }
        // Left to the grammar: literals, escapes, long ports, and a comma
        // (a sub-delim the grammar takes, but also how a list looks, which
        // the caller must see).
        for other in ["[::1]:80", "a%2Fb", "x:000080", "a,b"] {
            assert!(!is_plain_host(other.as_bytes()), "{other:?}");
            assert_eq!(check_host(other.as_bytes()), Ok(()), "{other:?}");
        }
    }

    #[test]
    fn content_length_rules() {
        let ok = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").expect("valid");
        assert_eq!(ok.body, BodyFraming::Length(5));
        let same = parse(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(same.expect("identical values").body, BodyFraming::Length(5));
        for bad in [
            "+5",
            "-5",
            "0x5",
            "5_0",
            "",
            "5 5",
            "99999999999999999999999",
        ] {
            let req = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(status(&req), 400, "Content-Length {bad:?}");
        }
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"),
            413
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        let ok = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .expect("valid");
        assert_eq!(ok.body, BodyFraming::Chunked);
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        // Chunked is final, gzip not understood: 501 (RFC 9112 §6.1).
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        // Chunked not final: the length cannot be known, 400 (§6.3).
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn keep_alive_rules() {
        let close = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("valid");
        assert!(!close.keep_alive);
        let old = parse("GET / HTTP/1.0\r\n\r\n").expect("valid");
        assert!(!old.keep_alive);
        let old_ka = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").expect("valid");
        assert!(old_ka.keep_alive);
    }

    #[test]
    fn malformed_and_versions() {
        assert_eq!(status("GARBAGE\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/9.9\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(status("GET /\r\n\r\n"), 400);
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n"),
            400
        );
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n"), 400);
        assert_eq!(status("G\0T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n"), 400);
    }

    #[test]
    fn request_line_versions() {
        // httparse's "version" error covers malformed lines too.
        for bad in [
            "GET /hel lo HTTP/1.1",
            "GET /hello http/1.1",
            "GET /hello HTTP/11.1",
            "GET /hello HTTP/1",
            "GET  /hello HTTP/2.0",
            "G@T /hello HTTP/2.0",
        ] {
            assert_eq!(status(&format!("{bad}\r\nHost: x\r\n\r\n")), 400, "{bad}");
        }
        for other in ["HTTP/2.0", "HTTP/0.9", "HTTP/9.9"] {
            assert_eq!(
                status(&format!("GET / {other}\r\nHost: x\r\n\r\n")),
                505,
                "{other}"
            );
        }
        let later = parse("\r\nGET /a HTTP/1.7\r\nHost: x\r\n\r\n").expect("served as 1.1");
        assert_eq!((later.version, later.uri()), (Version::Http11, "/a"));
        assert_eq!(status("GET /a HTTP/1.7\n\n"), 400, "HTTP/1.1 rules: Host");
    }

    #[test]
    fn too_many_headers() {
        let mut req = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..MAX_HEADERS {
            req.push_str(&format!("X-{i}: y\r\n"));
        }
        req.push_str("\r\n");
        assert_eq!(status(&req), 431);
    }

    #[test]
    fn expect_continue() {
        let h = parse(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        );
        assert!(h.expect("valid").expect_continue);
    }

    #[test]
    fn trailer_lines() {
        for good in [
            &b"X-T: v\r\n"[..],
            b"X-T:\r\n",
            b"X-T:\tv \t\r\n",
            b"X-T: caf\xc3\xa9\r\n",
        ] {
            assert_eq!(
                check_trailer_line(good),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        for bad in [
            &b"bad trailer\r\n"[..],
            b": v\r\n",
            b"X-T : v\r\n",
            b" folded\r\n",
            b"X@T: v\r\n",
            b"X-T: a\x01b\r\n",
            b"X-T: a\nb\r\n",
            b"X-T: a\rb\r\n",
            b"X-T: a\0b\r\n",
            b"X-T: v\n",
        ] {
            let e = check_trailer_line(bad).expect_err("malformed");
            assert_eq!(e.status, 400, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a\r\n"), Ok(26));
        assert_eq!(parse_chunk_size(b"0\r\n"), Ok(0));
        assert_eq!(parse_chunk_size(b"5;name=value\r\n"), Ok(5));
        assert_eq!(parse_chunk_size(b"5 ;ext\r\n"), Ok(5));
        for bad in [
            &b"0x5\r\n"[..],
            b"+5\r\n",
            b"-5\r\n",
            b"5_0\r\n",
            b"\r\n",
            b"5\n",
            b"5;a\rb\r\n",
            b"11111111111111111\r\n",
        ] {
            assert!(
                parse_chunk_size(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
