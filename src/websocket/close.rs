//! Close codes (RFC 6455 §7.4), the Close frame body (§5.5.1), and
//! [`ProtocolError`], the "fail the connection with this code" error.
//!
//! Mirrors the close-code handling in Tornado's `websocket.py`
//! (`WebSocketProtocol13._handle_message`, opcode `0x8`, and `close()`),
//! but is stricter: Tornado accepts any close code a peer sends, while this
//! module rejects the codes §7.4 forbids on the wire (Autobahn case 7.9).
//!
//! Every error the receive side can find maps to exactly one close code, so
//! the error type *is* a close code plus a human-readable reason:
//!
//! > _Fail the WebSocket Connection_ ... the endpoint MAY send a Close frame
//! > with an appropriate status code (RFC 6455 §7.1.7)

use std::borrow::Cow;
use std::fmt;

/// 1000: "indicates a normal closure, meaning that the purpose for which the
/// connection was established has been fulfilled." (RFC 6455 §7.4.1)
pub const NORMAL: u16 = 1000;

/// 1001: "indicates that an endpoint is "going away", such as a server going
/// down or a browser having navigated away from a page." (§7.4.1)
pub const GOING_AWAY: u16 = 1001;

/// 1002: "indicates that an endpoint is terminating the connection due to a
/// protocol error." (§7.4.1)
pub const PROTOCOL_ERROR: u16 = 1002;

/// 1003: "indicates that an endpoint is terminating the connection because
/// it has received a type of data it cannot accept (e.g., an endpoint that
/// understands only text data MAY send this if it receives a binary
/// message)." (§7.4.1)
pub const UNSUPPORTED_DATA: u16 = 1003;

/// 1004: "Reserved. The specific meaning might be defined in the future."
/// (§7.4.1) Never valid on the wire.
pub const RESERVED: u16 = 1004;

/// 1005: "is a reserved value and MUST NOT be set as a status code in a Close
/// control frame by an endpoint. It is designated for use in applications
/// expecting a status code to indicate that no status code was actually
/// present." (§7.4.1)
pub const NO_STATUS_RECEIVED: u16 = 1005;

/// 1006: "is a reserved value and MUST NOT be set as a status code in a Close
/// control frame by an endpoint. It is designated for use in applications
/// expecting a status code to indicate that the connection was closed
/// abnormally, e.g., without sending or receiving a Close control frame."
/// (§7.4.1)
pub const ABNORMAL_CLOSURE: u16 = 1006;

/// 1007: "indicates that an endpoint is terminating the connection because it
/// has received data within a message that was not consistent with the type
/// of the message (e.g., non-UTF-8 \[RFC3629\] data within a text message)."
/// (§7.4.1)
pub const INVALID_PAYLOAD: u16 = 1007;

/// 1008: "indicates that an endpoint is terminating the connection because it
/// has received a message that violates its policy." (§7.4.1)
pub const POLICY_VIOLATION: u16 = 1008;

/// 1009: "indicates that an endpoint is terminating the connection because it
/// has received a message that is too big for it to process." (§7.4.1)
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// 1010: "indicates that an endpoint (client) is terminating the connection
/// because it has expected the server to negotiate one or more extension, but
/// the server didn't return them in the response message of the WebSocket
/// handshake." (§7.4.1)
pub const MANDATORY_EXTENSION: u16 = 1010;

/// 1011: "indicates that a server is terminating the connection because it
/// encountered an unexpected condition that prevented it from fulfilling the
/// request." (§7.4.1)
pub const INTERNAL_ERROR: u16 = 1011;

/// 1015: "is a reserved value and MUST NOT be set as a status code in a Close
/// control frame by an endpoint. It is designated for use in applications
/// expecting a status code to indicate that the connection was closed due to
/// a failure to perform a TLS handshake" (§7.4.1)
pub const TLS_HANDSHAKE: u16 = 1015;

/// Longest reason that fits a Close frame: control payloads are at most 125
/// bytes (§5.5) and the code takes two of them.
pub const MAX_REASON_LEN: usize = 123;

/// May `code` appear in a Close frame received from the peer?
///
/// Valid: 1000-1003, 1007-1011 (§7.4.1), 1012-1014 (registered with IANA
/// after RFC 6455: Service Restart, Try Again Later, Bad Gateway) and
/// 3000-4999 (§7.4.2: "3000-3999 ... registered directly with IANA",
/// "4000-4999 ... reserved for private use"). Everything else is refused:
/// "0-999 ... are not used", 1004-1006 and 1015 "MUST NOT be set ... by an
/// endpoint", and the rest of 1000-2999 is reserved for future revisions and
/// extensions we don't speak. Autobahn 7.7 lists the valid codes it sends,
/// 7.9 the invalid ones; 1012-1014 are in neither list.
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parse the body of a received Close frame (already unmasked).
///
/// > If there is a body, the first two bytes of the body MUST be a 2-byte
/// > unsigned integer (in network byte order) representing a status code
/// > with value /code/ defined in Section 7.4. Following the 2-byte integer,
/// > the body MAY contain UTF-8-encoded data with value /reason/
/// > (RFC 6455 §5.5.1)
///
/// An empty body gives `None` (the application sees "no status", 1005).
/// A 1-byte body or a code [`is_valid_code`] rejects is a protocol error
/// (1002); a reason that is not UTF-8 is 1007.
pub fn parse_payload(payload: &[u8]) -> Result<Option<(u16, String)>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::new(
            PROTOCOL_ERROR,
            "close frame payload of 1 byte",
        )),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_code(code) {
                return Err(ProtocolError::new(
                    PROTOCOL_ERROR,
                    format!("invalid close code {code}"),
                ));
            }
            match std::str::from_utf8(reason) {
                Ok(reason) => Ok(Some((code, reason.to_owned()))),
                Err(_) => Err(ProtocolError::new(
                    INVALID_PAYLOAD,
                    "close reason is not valid UTF-8",
                )),
            }
        }
    }
}

/// Build the body of a Close frame to send: empty when `code` is `None`,
/// else the code in network byte order followed by `reason`, cut at a
/// character boundary to [`MAX_REASON_LEN`] bytes so the frame stays a
/// legal control frame.
///
/// A reason without a code is dropped (§5.5.1 only allows a reason after a
/// code). The caller picks the code; sending 1005/1006/1015 would violate
/// §7.4.1, and [`is_valid_code`] tells which codes the peer will accept.
pub fn payload(code: Option<u16>, reason: &str) -> Vec<u8> {
    let Some(code) = code else {
        return Vec::new();
    };
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

/// The peer broke the protocol: the connection must be failed, and `code`
/// is the close code to send while doing so (RFC 6455 §7.1.7).
///
/// `reason` is short human-readable text (always under
/// [`MAX_REASON_LEN`] bytes for the errors this module creates), suitable
/// both for logs and for the reason field of the Close frame:
/// `close::payload(Some(err.code), &err.reason)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// Close code to send: [`PROTOCOL_ERROR`], [`INVALID_PAYLOAD`] or
    /// [`MESSAGE_TOO_BIG`] for the errors found by this crate.
    pub code: u16,
    /// What was wrong, in words.
    pub reason: Cow<'static, str>,
}

impl ProtocolError {
    /// An error with close code `code` and the given reason.
    pub fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        ProtocolError {
            code,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut b = code.to_be_bytes().to_vec();
        b.extend_from_slice(reason);
        b
    }

    // Autobahn 7.7.x: close codes a peer may send.
    #[test]
    fn autobahn_7_7_valid_codes_accepted() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert_eq!(
                parse_payload(&body(code, b"ok")),
                Ok(Some((code, "ok".to_owned()))),
                "code {code}"
            );
        }
    }

    // Autobahn 7.9.x: close codes a peer must not send.
    #[test]
    fn autobahn_7_9_invalid_codes_rejected_1002() {
        for code in [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999] {
            let err = parse_payload(&body(code, b"")).unwrap_err();
            assert_eq!(err.code, PROTOCOL_ERROR, "code {code}");
        }
    }

    #[test]
    fn codes_outside_ranges_rejected() {
        for code in [1015, 2999, 5000, 65535] {
            assert!(!is_valid_code(code), "{code}");
        }
        // Registered with IANA after RFC 6455; accepted (documented choice).
        for code in [1012, 1013, 1014] {
            assert!(is_valid_code(code), "{code}");
        }
    }

    // Autobahn 7.1.5 / 7.3.1: empty close body is fine.
    #[test]
    fn empty_body_is_no_status() {
        assert_eq!(parse_payload(b""), Ok(None));
    }

    // Autobahn 7.3.2: a 1-byte close body.
    #[test]
    fn one_byte_body_is_1002() {
        assert_eq!(parse_payload(&[0x03]).unwrap_err().code, PROTOCOL_ERROR);
    }

    // Autobahn 7.5.1: invalid UTF-8 in the reason.
    #[test]
    fn invalid_utf8_reason_is_1007() {
        let raw = body(
            1000,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        );
        assert_eq!(parse_payload(&raw).unwrap_err().code, INVALID_PAYLOAD);
    }

    #[test]
    fn payload_builds_and_truncates_at_char_boundary() {
        assert_eq!(payload(None, "ignored"), Vec::<u8>::new());
        assert_eq!(payload(Some(1000), "bye"), b"\x03\xe8bye");
        // 62 two-byte characters = 124 bytes: must cut to 122, not 123.
        let long = "é".repeat(62);
        let p = payload(Some(NORMAL), &long);
        assert_eq!(p.len(), 2 + 122);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        assert_eq!(parse_payload(&p).unwrap().unwrap().1, "é".repeat(61));
    }

    #[test]
    fn error_displays_code_and_reason() {
        let e = ProtocolError::new(MESSAGE_TOO_BIG, "message too big");
        assert_eq!(e.to_string(), "websocket error 1009: message too big");
    }
}
