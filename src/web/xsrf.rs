//! XSRF tokens: a random secret kept in the `_xsrf` cookie and echoed by
//! forms (`_xsrf` field) or scripts (`X-XSRFToken` header). Mirrors the
//! token handling of `RequestHandler` in Tornado's `web.py`
//! (`xsrf_token`, `_decode_xsrf_token`, `check_xsrf_cookie`), v2 format:
//!
//! ```text
//! token-v2 = "2|" hex(mask) "|" hex(token XOR mask) "|" timestamp
//!            ; mask: 4 fresh random bytes each time the token is written,
//!            ; repeated over the 16 token bytes (RFC 6455 masking)
//! token-v1 = hex(token)       ; legacy, still accepted when reading
//! ```
//!
//! Masking makes the string differ on every page while the secret stays
//! the same, so compression side channels (BREACH) cannot recover it;
//! comparison always unmasks first and compares the raw bytes in constant
//! time.

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use super::signed::{hex_decode, hex_encode};

/// Bytes of secret in a token.
pub const XSRF_TOKEN_LEN: usize = 16;

/// A decoded (unmasked) XSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XsrfToken {
    /// Format it was read in: 2, or 1 for a legacy plain-hex token (which
    /// the web layer should re-issue in v2, as Tornado does).
    pub version: u8,
    /// The raw secret.
    pub token: [u8; XSRF_TOKEN_LEN],
    /// Seconds since the epoch when the token was created; `None` for a v1
    /// token, which did not record it.
    pub timestamp: Option<u64>,
}

impl XsrfToken {
    /// A new token: 16 bytes from the operating system's random source,
    /// stamped with `now`.
    ///
    /// Errors only if the OS cannot provide randomness, in which case the
    /// request should fail rather than use a guessable token.
    pub fn generate(now: SystemTime) -> Result<Self, getrandom::Error> {
        let mut token = [0; XSRF_TOKEN_LEN];
        getrandom::fill(&mut token)?;
        Ok(Self {
            version: 2,
            token,
            timestamp: Some(unix_seconds(now)),
        })
    }

    /// The token as a v2 string with a fresh random mask: what goes into
    /// the `_xsrf` cookie and into each form. `now` stands in for the
    /// timestamp of a v1 token, as in Tornado.
    pub fn masked(&self, now: SystemTime) -> Result<String, getrandom::Error> {
        let mut mask = [0; 4];
        getrandom::fill(&mut mask)?;
        let timestamp = self.timestamp.unwrap_or_else(|| unix_seconds(now));
        Ok(mask_token(&self.token, mask, timestamp))
    }
}

/// Formats `2|mask|token^mask|timestamp`.
fn mask_token(token: &[u8; XSRF_TOKEN_LEN], mask: [u8; 4], timestamp: u64) -> String {
    format!(
        "2|{}|{}|{timestamp}",
        hex_encode(&mask),
        hex_encode(&apply_mask(token, mask)),
    )
}

/// XORs `data` with `mask` repeated (RFC 6455 §5.3); its own inverse.
fn apply_mask(data: &[u8; XSRF_TOKEN_LEN], mask: [u8; 4]) -> [u8; XSRF_TOKEN_LEN] {
    let mut out = *data;
    for (i, b) in out.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    out
}

/// Reads a token in either format (from the cookie or from the submitted
/// form field/header). `None` for anything else: another version, a mask
/// that is not 4 bytes, a token that is not 16 bytes, non-lowercase-hex,
/// a bad timestamp. Never panics.
///
/// Stricter than Tornado, which takes any non-hex string as a raw v1 token.
///
/// ```
/// use squall::web::xsrf::decode_xsrf_token;
/// let t = decode_xsrf_token("2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|1300000000").unwrap();
/// assert_eq!(t.token, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
/// assert_eq!(t.timestamp, Some(1_300_000_000));
/// ```
pub fn decode_xsrf_token(s: &str) -> Option<XsrfToken> {
    let Some(rest) = s.strip_prefix("2|") else {
        return Some(XsrfToken {
            version: 1,
            token: hex_decode(s.as_bytes())?,
            timestamp: None,
        });
    };
    let mut fields = rest.split('|');
    let (Some(mask), Some(masked), Some(timestamp), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let mask: [u8; 4] = hex_decode(mask.as_bytes())?;
    let masked: [u8; XSRF_TOKEN_LEN] = hex_decode(masked.as_bytes())?;
    Some(XsrfToken {
        version: 2,
        token: apply_mask(&masked, mask),
        timestamp: Some(parse_timestamp(timestamp)?),
    })
}

/// Whether the submitted token (form field `_xsrf` or header
/// `X-XSRFToken`) carries the same secret as the `_xsrf` cookie. Both are
/// unmasked first, so two differently masked strings of one token match;
/// the secrets are compared in constant time. A value that cannot be
/// decoded never matches.
pub fn xsrf_tokens_match(cookie_value: &str, submitted: &str) -> bool {
    match (
        decode_xsrf_token(cookie_value),
        decode_xsrf_token(submitted),
    ) {
        (Some(expected), Some(given)) => constant_time_eq(&expected.token, &given.token),
        _ => false,
    }
}

/// Compares two equal-length secrets without an early exit, so the time
/// taken does not tell how many leading bytes were right.
fn constant_time_eq(a: &[u8; XSRF_TOKEN_LEN], b: &[u8; XSRF_TOKEN_LEN]) -> bool {
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= black_box(x ^ y);
    }
    black_box(difference) == 0
}

/// `1*DIGIT`, at most 19 digits (fits in `u64`).
fn parse_timestamp(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const RAW: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    /// Built with Tornado 6.6.1: mask deadbeef, `_websocket_mask`, b2a_hex.
    const TORNADO_V2: &str = "2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|1300000000";
    const V1: &str = "000102030405060708090a0b0c0d0e0f";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn masking_matches_tornado() {
        assert_eq!(
            mask_token(&RAW, [0xde, 0xad, 0xbe, 0xef], 1_300_000_000),
            TORNADO_V2
        );
        let t = decode_xsrf_token(TORNADO_V2).unwrap();
        assert_eq!(
            (t.version, t.token, t.timestamp),
            (2, RAW, Some(1_300_000_000))
        );
    }

    #[test]
    fn v1_tokens_are_accepted() {
        let t = decode_xsrf_token(V1).unwrap();
        assert_eq!((t.version, t.token, t.timestamp), (1, RAW, None));
        assert!(xsrf_tokens_match(V1, TORNADO_V2));
        assert!(xsrf_tokens_match(TORNADO_V2, V1));
        // Re-issued in v2 with the current time.
        let reissued = t.masked(at(1_700_000_000)).unwrap();
        assert!(reissued.ends_with("|1700000000"));
        assert!(xsrf_tokens_match(V1, &reissued));
    }

    #[test]
    fn remasked_on_every_call_but_still_matching() {
        let token = XsrfToken::generate(at(1_700_000_000)).unwrap();
        assert_eq!(token.timestamp, Some(1_700_000_000));
        let cookie = token.masked(at(0)).unwrap();
        let strings: Vec<String> = (0..8).map(|_| token.masked(at(0)).unwrap()).collect();
        // 8 random 32-bit masks: a repeat is a 1-in-150-million event.
        for (i, a) in strings.iter().enumerate() {
            assert!(strings[i + 1..].iter().all(|b| a != b), "mask repeated");
            assert!(xsrf_tokens_match(&cookie, a));
            assert_eq!(decode_xsrf_token(a).unwrap(), token);
        }
        let other = XsrfToken::generate(at(1_700_000_000)).unwrap();
        assert_ne!(other.token, token.token);
        assert!(!xsrf_tokens_match(&cookie, &other.masked(at(0)).unwrap()));
    }

    #[test]
    fn different_tokens_do_not_match() {
        let mut other = RAW;
        other[15] ^= 1;
        let forged = mask_token(&other, [1, 2, 3, 4], 1_300_000_000);
        assert!(!xsrf_tokens_match(TORNADO_V2, &forged));
        assert!(!xsrf_tokens_match(TORNADO_V2, ""));
        assert!(!xsrf_tokens_match("", ""));
        assert!(
            !xsrf_tokens_match("garbage", "garbage"),
            "undecodable never matches"
        );
    }

    #[test]
    fn malformed_tokens_are_refused_without_panic() {
        for bad in [
            "",
            "2|",
            "2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0",
            "2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|",
            "2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|13x",
            "2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|1|extra",
            "2|deadbe|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|1",
            "2|deadbeef00|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|1",
            "2|deadbeef|de|1",
            "2|DEADBEEF|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|1",
            "2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|-1",
            "2|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|99999999999999999999",
            "3|deadbeef|deacbcecdaa8b8e8d6a4b4e4d2a0b0e0|1",
            "0001",
            "000102030405060708090a0b0c0d0e0",
            "000102030405060708090a0b0c0d0e0f00",
            "zz0102030405060708090a0b0c0d0e0f",
            "\u{e9}\u{e9}",
        ] {
            assert_eq!(decode_xsrf_token(bad), None, "{bad:?}");
        }
        for n in 0..TORNADO_V2.len() {
            let _ = decode_xsrf_token(&TORNADO_V2[..n]);
        }
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(&RAW, &RAW));
        for i in 0..16 {
            let mut other = RAW;
            other[i] ^= 0x80;
            assert!(!constant_time_eq(&RAW, &other));
        }
    }
}
