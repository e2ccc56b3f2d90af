//! The opening handshake (RFC 6455 §1.3, §4): the `Sec-WebSocket-Accept`
//! value, the server's check of an upgrade request, the client's check of
//! the `101` response, and the same-origin rule.
//!
//! Mirrors Tornado's `websocket.py`: `WebSocketHandler.get` (the `Upgrade`
//! and `Connection` checks and their error texts), `check_origin`,
//! `WebSocketProtocol13._handle_websocket_headers`, `compute_accept_value`,
//! `_accept_connection`, and `WebSocketClientConnection` (request headers,
//! `headers_received`).
//!
//! Headers are read through a lookup closure, `Fn(&str) -> Option<&str>`,
//! that the HTTP layer implements over its own header map: it must match
//! names case-insensitively and may return repeated headers joined with
//! `", "`. Nothing here depends on a particular request type.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::{alphabet, Engine};
use sha1::{Digest, Sha1};

/// "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", the GUID of §1.3 that the server
/// appends to the client's key before hashing.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version spoken: "The value of this header field MUST
/// be 13." (§4.1). Tornado also accepts the drafts 7 and 8.
pub const VERSION: &str = "13";

/// Decodes keys without insisting that unused trailing bits are zero (any
/// correct client produces zeros; tolerating others costs nothing).
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`:
///
/// > the server has to take the value (as present in the header field, e.g.,
/// > the base64-encoded \[RFC4648\] version minus any leading and trailing
/// > whitespace) and concatenate this with the Globally Unique Identifier
/// > (GUID, \[RFC4122\]) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" ... A SHA-1
/// > hash (160 bits) \[FIPS.180-3\], base64-encoded (see Section 4 of
/// > \[RFC4648\]), of this concatenation is then returned (§1.3)
///
/// ```
/// use squall::websocket::handshake::accept_key;
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.trim().as_bytes());
    sha1.update(GUID.as_bytes());
    STANDARD.encode(sha1.finalize())
}

/// A request the server refuses, and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeError {
    /// HTTP status to answer with (400, 405 or 426).
    pub status: u16,
    /// Body / reason text (Tornado's wording where Tornado has one).
    pub message: &'static str,
    /// Headers the response must carry (`Allow` for 405,
    /// `Sec-WebSocket-Version` and `Upgrade` for 426).
    pub headers: &'static [(&'static str, &'static str)],
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HandshakeError {}

const fn refuse(status: u16, message: &'static str) -> HandshakeError {
    HandshakeError {
        status,
        message,
        headers: &[],
    }
}

/// A valid upgrade request, as seen by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Value for the response's `Sec-WebSocket-Accept` header.
    pub accept: String,
    /// Subprotocols the client offered in `Sec-WebSocket-Protocol`, in its
    /// order of preference (empty if none); the application picks one or
    /// none (Tornado's `select_subprotocol`).
    pub subprotocols: Vec<String>,
}

impl Accepted {
    /// Headers for the `101 Switching Protocols` response (§4.2.2), with the
    /// chosen subprotocol if any. A choice that is not among
    /// [`Accepted::subprotocols`] is left out, because "the client MUST
    /// _Fail the WebSocket Connection_" if the server selects a subprotocol
    /// it did not offer (§4.1). No extensions are ever accepted.
    pub fn response_headers(&self, subprotocol: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("Upgrade", "websocket".to_owned()),
            ("Connection", "Upgrade".to_owned()),
            ("Sec-WebSocket-Accept", self.accept.clone()),
        ];
        if let Some(chosen) = subprotocol.filter(|p| self.subprotocols.iter().any(|o| o == p)) {
            headers.push(("Sec-WebSocket-Protocol", chosen.to_owned()));
        }
        headers
    }
}

/// Split a comma-separated header value into trimmed, non-empty elements.
fn elements(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Does the comma-separated header `value` contain `token` (ASCII
/// case-insensitive)?
fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| elements(v).any(|e| e.eq_ignore_ascii_case(token)))
}

/// Check a client's opening handshake (§4.2.1) on the server.
///
/// `method` is the request method, `http_version` is `(major, minor)`
/// (httparse's `Some(1)` is `(1, 1)`), and `header` looks up a request
/// header by name. Checks, in order:
///
/// 1. "The method of the request MUST be GET" → 405 with `Allow: GET`. In
///    Tornado this falls out of `WebSocketHandler` defining only `get`.
/// 2. "the HTTP version MUST be at least 1.1" → 400.
/// 3. `Upgrade` must contain `websocket` → 400 `Can "Upgrade" only to
///    "WebSocket".` (Tornado compares the whole value; squall accepts it as
///    one element of a list, since the lookup may join repeated headers).
/// 4. `Connection` must contain the `upgrade` token → 400 `"Connection" must
///    be "Upgrade".`
/// 5. `Sec-WebSocket-Version` must be 13 → 426 `Upgrade Required` with
///    `Sec-WebSocket-Version: 13` and `Upgrade: websocket` (RFC 9110
///    §15.5.22: "The server MUST send an Upgrade header field in a 426
///    response"; Tornado sends none): "If this version does not match a version
///    understood by the server, the server MUST abort the WebSocket
///    handshake described in this section and instead send an appropriate
///    HTTP error code (such as 426 Upgrade Required) and a
///    |Sec-WebSocket-Version| header field indicating the version(s) the
///    server is capable of understanding." (§4.4). A missing header gets
///    the same answer, as in Tornado.
/// 6. `Host` present and `Sec-WebSocket-Key` the base64 of 16 bytes ("a
///    randomly selected 16-byte value that has been base64-encoded",
///    §4.1) → else 400 `Missing/Invalid WebSocket headers` (Tornado's text;
///    Tornado only checks that the key is present).
///
/// The origin check is separate ([`same_origin`]; Tornado answers 403) so
/// that applications can replace it, as they override `check_origin`.
/// `Sec-WebSocket-Extensions` is ignored: no extension is negotiated.
pub fn validate_request<'h>(
    method: &str,
    http_version: (u8, u8),
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<Accepted, HandshakeError> {
    if method != "GET" {
        return Err(HandshakeError {
            status: 405,
            message: "Method Not Allowed",
            headers: &[("Allow", "GET")],
        });
    }
    if http_version < (1, 1) {
        return Err(refuse(400, "WebSocket requires HTTP/1.1 or later."));
    }
    if !has_token(header("Upgrade"), "websocket") {
        return Err(refuse(400, "Can \"Upgrade\" only to \"WebSocket\"."));
    }
    if !has_token(header("Connection"), "upgrade") {
        return Err(refuse(400, "\"Connection\" must be \"Upgrade\"."));
    }
    if header("Sec-WebSocket-Version").map(str::trim) != Some(VERSION) {
        // RFC 9110 §15.5.22: "The server MUST send an Upgrade header field
        // in a 426 response to indicate the required protocol(s)". The
        // `Connection: Upgrade` that §7.8 requires beside it is the HTTP
        // responder's to add (the application may not set `Connection`).
        return Err(HandshakeError {
            status: 426,
            message: "Upgrade Required",
            headers: &[("Sec-WebSocket-Version", VERSION), ("Upgrade", "websocket")],
        });
    }
    let key = header("Sec-WebSocket-Key").map(str::trim).unwrap_or("");
    // 16 bytes are always 24 base64 characters; checking the length first
    // also bounds the work done on hostile input.
    let key_ok = key.len() == 24 && KEY_ENGINE.decode(key).is_ok_and(|k| k.len() == 16);
    if header("Host").is_none() || !key_ok {
        return Err(refuse(400, "Missing/Invalid WebSocket headers"));
    }
    let subprotocols = header("Sec-WebSocket-Protocol")
        .map(|v| elements(v).map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(Accepted {
        accept: accept_key(key),
        subprotocols,
    })
}

/// Tornado's default `check_origin`: a browser request is accepted only if
/// its `Origin` names the host it was sent to.
///
/// No `Origin` header (a non-browser client) is allowed. Otherwise the
/// authority of the origin (`https://Example.com:8888` → `example.com:8888`)
/// must equal the `Host` header; like Tornado, ports are compared as
/// written (`http://h:80` does not match `h`), so `null` or unparsable
/// origins never match. Unlike Tornado, `Host` is compared
/// case-insensitively too (host names are case-insensitive, RFC 3986
/// §3.2.2).
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    // RFC 6454 serializes an origin as scheme "://" host [ ":" port ].
    let Some((_scheme, rest)) = origin.trim().split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    !authority.is_empty() && authority.eq_ignore_ascii_case(host.trim())
}

/// A client's `Sec-WebSocket-Key` from 16 bytes that the caller draws from
/// a random source ("The nonce MUST be selected randomly for each
/// connection", §4.1). Taking them as a parameter keeps this module free
/// of any RNG.
pub fn client_key(nonce: [u8; 16]) -> String {
    STANDARD.encode(nonce)
}

/// Headers for a client's upgrade request (§4.1), besides `Host` and the
/// request line (`GET /path HTTP/1.1`), which belong to the HTTP layer.
/// `subprotocols` are offered in order of preference.
pub fn request_headers(key: &str, subprotocols: &[&str]) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("Upgrade", "websocket".to_owned()),
        ("Connection", "Upgrade".to_owned()),
        ("Sec-WebSocket-Key", key.to_owned()),
        ("Sec-WebSocket-Version", VERSION.to_owned()),
    ];
    if !subprotocols.is_empty() {
        headers.push(("Sec-WebSocket-Protocol", subprotocols.join(", ")));
    }
    headers
}

/// Why a client refuses the server's handshake response (§4.1: "the client
/// MUST _Fail the WebSocket Connection_").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseError {
    /// What was wrong with the response.
    pub reason: &'static str,
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "websocket handshake refused: {}", self.reason)
    }
}

impl std::error::Error for ResponseError {}

/// Check the server's response to our upgrade request (§4.1, "the client
/// MUST validate the server's response as follows"), given its status,
/// a header lookup, the key we sent and the subprotocols we offered.
///
/// Returns the subprotocol the server selected, if any. Refuses a status
/// other than 101, a missing `Upgrade: websocket` or `Connection: Upgrade`,
/// a `Sec-WebSocket-Accept` that is not [`accept_key`] of our key, any
/// extension (we offer none), and a subprotocol we did not offer.
pub fn validate_response<'h>(
    status: u16,
    header: impl Fn(&str) -> Option<&'h str>,
    key: &str,
    offered_subprotocols: &[&str],
) -> Result<Option<String>, ResponseError> {
    let refuse = |reason| Err(ResponseError { reason });
    if status != 101 {
        return refuse("status is not 101 Switching Protocols");
    }
    if !has_token(header("Upgrade"), "websocket") {
        return refuse("missing \"Upgrade: websocket\"");
    }
    if !has_token(header("Connection"), "upgrade") {
        return refuse("missing \"Connection: Upgrade\"");
    }
    if header("Sec-WebSocket-Accept").map(str::trim) != Some(accept_key(key).as_str()) {
        return refuse("Sec-WebSocket-Accept does not match the key");
    }
    if header("Sec-WebSocket-Extensions").is_some_and(|v| elements(v).next().is_some()) {
        return refuse("server selected an extension that was not offered");
    }
    match header("Sec-WebSocket-Protocol").map(str::trim) {
        None | Some("") => Ok(None),
        Some(p) if offered_subprotocols.contains(&p) => Ok(Some(p.to_owned())),
        Some(_) => refuse("server selected a subprotocol that was not offered"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Case-insensitive lookup over a fixed list, as the HTTP layer's
    /// header map would provide it.
    fn lookup<'a>(headers: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    /// The client handshake of RFC 6455 §1.3.
    const RFC_REQUEST: &[(&str, &str)] = &[
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Origin", "http://example.com"),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Version", "13"),
    ];

    /// RFC_REQUEST with one header replaced (or removed, if `value` is None).
    fn with(name: &str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
        let mut headers: Vec<_> = RFC_REQUEST
            .iter()
            .filter(|(n, _)| *n != name)
            .copied()
            .collect();
        if let Some(v) = value {
            let static_name = RFC_REQUEST
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("X", |(n, _)| n);
            headers.push((static_name, v));
        }
        headers
    }

    fn check(headers: &[(&str, &str)]) -> Result<Accepted, HandshakeError> {
        validate_request("GET", (1, 1), lookup(headers))
    }

    #[test]
    fn rfc_1_3_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            accept_key(" dGhlIHNhbXBsZSBub25jZQ== "),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn rfc_1_3_request_is_accepted() {
        let accepted = check(RFC_REQUEST).unwrap();
        assert_eq!(accepted.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(accepted.subprotocols, ["chat", "superchat"]);
        let headers = accepted.response_headers(Some("chat"));
        assert!(headers.contains(&(
            "Sec-WebSocket-Accept",
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
        )));
        assert!(headers.contains(&("Sec-WebSocket-Protocol", "chat".into())));
        assert!(headers.contains(&("Upgrade", "websocket".into())));
        assert!(headers.contains(&("Connection", "Upgrade".into())));
        // A subprotocol the client did not offer is left out.
        assert_eq!(accepted.response_headers(Some("other")).len(), 3);
        assert_eq!(accepted.response_headers(None).len(), 3);
    }

    #[test]
    fn header_values_are_case_insensitive_token_lists() {
        let mut headers = with("Upgrade", Some("WebSocket"));
        headers.retain(|(n, _)| *n != "Connection");
        headers.push(("connection", "keep-alive, Upgrade"));
        assert!(check(&headers).is_ok());
        assert!(check(&with("Upgrade", Some("h2c, websocket"))).is_ok());
        assert_eq!(
            check(&with("Sec-WebSocket-Protocol", None))
                .unwrap()
                .subprotocols,
            Vec::<String>::new()
        );
    }

    #[test]
    fn non_get_is_405_with_allow() {
        let err = validate_request("POST", (1, 1), lookup(RFC_REQUEST)).unwrap_err();
        assert_eq!((err.status, err.headers), (405, &[("Allow", "GET")][..]));
    }

    #[test]
    fn http_1_0_is_400() {
        assert_eq!(
            validate_request("GET", (1, 0), lookup(RFC_REQUEST))
                .unwrap_err()
                .status,
            400
        );
        assert!(validate_request("GET", (2, 0), lookup(RFC_REQUEST)).is_ok());
    }

    #[test]
    fn bad_upgrade_is_400() {
        for value in [None, Some("h2c"), Some("")] {
            let err = check(&with("Upgrade", value)).unwrap_err();
            assert_eq!(
                (err.status, err.message),
                (400, "Can \"Upgrade\" only to \"WebSocket\".")
            );
        }
    }

    #[test]
    fn bad_connection_is_400() {
        for value in [None, Some("keep-alive"), Some("upgraded")] {
            let err = check(&with("Connection", value)).unwrap_err();
            assert_eq!(
                (err.status, err.message),
                (400, "\"Connection\" must be \"Upgrade\".")
            );
        }
    }

    #[test]
    fn wrong_version_is_426_naming_13() {
        for value in [None, Some("8"), Some("14"), Some("13, 8")] {
            let err = check(&with("Sec-WebSocket-Version", value)).unwrap_err();
            assert_eq!(err.status, 426, "{value:?}");
            assert_eq!(
                err.headers,
                &[("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")]
            );
        }
    }

    #[test]
    fn bad_key_or_missing_host_is_400() {
        for value in [
            None,
            Some(""),
            Some("dGhlIHNhbXBsZSBub25jZQ"),   // no padding
            Some("AAAAAAAAAAAAAAAAAAAAAAAA"), // 18 bytes
            Some("dGhlIHNhbXBsZSBub25j"),     // 15 bytes
            Some("dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ=="), // two keys
            Some("!!!!!!!!!!!!!!!!!!!!!!=="),
        ] {
            let err = check(&with("Sec-WebSocket-Key", value)).unwrap_err();
            assert_eq!(
                (err.status, err.message),
                (400, "Missing/Invalid WebSocket headers"),
                "{value:?}"
            );
        }
        assert_eq!(check(&with("Host", None)).unwrap_err().status, 400);
    }

    #[test]
    fn same_origin_rules() {
        assert!(same_origin(None, Some("example.com")));
        assert!(same_origin(Some("http://example.com"), Some("example.com")));
        assert!(same_origin(
            Some("https://Example.COM:8888"),
            Some("example.com:8888")
        ));
        assert!(same_origin(
            Some("http://example.com/path"),
            Some("EXAMPLE.com")
        ));
        assert!(!same_origin(
            Some("http://example.com:80"),
            Some("example.com")
        ));
        assert!(!same_origin(Some("http://evil.com"), Some("example.com")));
        assert!(!same_origin(
            Some("http://example.com.evil.com"),
            Some("example.com")
        ));
        assert!(!same_origin(Some("null"), Some("example.com")));
        assert!(!same_origin(Some("http://"), Some("")));
        assert!(!same_origin(Some("http://example.com"), None));
    }

    #[test]
    fn client_key_is_base64_of_the_nonce() {
        assert_eq!(client_key(*b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn client_request_headers_pass_the_server_check() {
        let key = client_key([7; 16]);
        let owned = request_headers(&key, &["chat", "superchat"]);
        let mut headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push(("Host", "localhost:8888"));
        let accepted = check(&headers).unwrap();
        assert_eq!(accepted.accept, accept_key(&key));
        assert_eq!(accepted.subprotocols, ["chat", "superchat"]);
    }

    /// The server handshake of RFC 6455 §1.3.
    const RFC_RESPONSE: &[(&str, &str)] = &[
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ("Sec-WebSocket-Protocol", "chat"),
    ];
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    #[test]
    fn rfc_1_3_response_is_accepted() {
        let chosen = validate_response(101, lookup(RFC_RESPONSE), KEY, &["chat", "superchat"]);
        assert_eq!(chosen, Ok(Some("chat".into())));
        let no_protocol = &RFC_RESPONSE[..3];
        assert_eq!(
            validate_response(101, lookup(no_protocol), KEY, &[]),
            Ok(None)
        );
    }

    #[test]
    fn bad_responses_are_refused() {
        let ok = &RFC_RESPONSE[..3];
        assert!(validate_response(200, lookup(ok), KEY, &[]).is_err());
        assert!(validate_response(101, lookup(&ok[1..]), KEY, &[]).is_err());
        assert!(validate_response(101, lookup(&[ok[0], ok[2]]), KEY, &[]).is_err());
        assert!(validate_response(101, lookup(&ok[..2]), KEY, &[]).is_err());
        let wrong_accept = [
            ok[0],
            ok[1],
            ("Sec-WebSocket-Accept", "x3JJHMbDL1EzLkh9GBhXDw=="),
        ];
        assert!(validate_response(101, lookup(&wrong_accept), KEY, &[]).is_err());
        let extension = [
            ok[0],
            ok[1],
            ok[2],
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ];
        assert!(validate_response(101, lookup(&extension), KEY, &[]).is_err());
        // A subprotocol we did not offer.
        assert!(validate_response(101, lookup(RFC_RESPONSE), KEY, &["superchat"]).is_err());
    }
}
