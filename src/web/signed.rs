//! Signed values (the payload of "secure cookies"): a value, its name and a
//! timestamp, authenticated with HMAC-SHA256 so the client can read but not
//! forge it. Mirrors `create_signed_value` / `decode_signed_value` in
//! Tornado's `web.py`, version 2 of the format only, byte for byte:
//!
//! ```text
//! signed    = "2|" field(key-version) field(timestamp) field(name)
//!             field(base64(value)) signature
//! field(x)  = len(x) ":" x "|"         ; len in decimal, no leading zeros
//! signature = 64 lowercase hex digits  ; HMAC-SHA256(secret, all before it)
//! ```
//!
//! e.g. `2|1:0|10:1300000000|4:user|8:YWxpY2U=|<64 hex digits>`.
//!
//! Legacy version-1 values (HMAC-SHA1) are not accepted. Time is always
//! passed in, so callers (and tests) own the clock.
//!
//! Key rotation (Tornado's `cookie_secret` dict plus `key_version`) is
//! supported by signing with [`create_signed_value_with_key_version`] and,
//! when decoding, reading [`get_signature_key_version`] to pick the secret
//! before calling [`decode_signed_value`]. The key version is covered by
//! the signature.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far in the future a timestamp may be before the value is refused:
/// five minutes of clock difference between the servers that share the
/// secret. (Tornado's v2 check has no such bound; its v1 allowed 31 days.)
pub const MAX_FUTURE_SKEW_SECS: u64 = 300;

/// Longest decimal number accepted for a length, key version or timestamp.
const MAX_DIGITS: usize = 19;

/// Signs `value` under `name` with key version 0 (Tornado's default).
///
/// `name` should be ASCII: Tornado measures the name field in characters,
/// squall (correctly for the format) in bytes, and the two only agree on
/// ASCII.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use squall::web::signed::{create_signed_value, decode_signed_value};
/// let now = UNIX_EPOCH + Duration::from_secs(1_300_000_000);
/// let signed = create_signed_value(b"secret", "user", b"alice", now);
/// assert!(signed.starts_with("2|1:0|10:1300000000|4:user|8:YWxpY2U=|"));
/// assert_eq!(decode_signed_value(b"secret", "user", &signed, 31, now).as_deref(), Some(&b"alice"[..]));
/// ```
pub fn create_signed_value(secret: &[u8], name: &str, value: &[u8], now: SystemTime) -> String {
    create_signed_value_with_key_version(secret, 0, name, value, now)
}

/// Signs `value` under `name`, recording `key_version` so that the
/// matching secret can be chosen when it is read back (key rotation).
pub fn create_signed_value_with_key_version(
    secret: &[u8],
    key_version: u32,
    name: &str,
    value: &[u8],
    now: SystemTime,
) -> String {
    let mut signed = String::from("2|");
    for field in [
        key_version.to_string().as_str(),
        unix_seconds(now).to_string().as_str(),
        name,
        BASE64.encode(value).as_str(),
    ] {
        signed.push_str(&format!("{}:{field}|", field.len()));
    }
    let tag = mac(secret, signed.as_bytes()).finalize().into_bytes();
    signed.push_str(&hex_encode(&tag));
    signed
}

/// Checks a signed value and returns the value it carries, or `None` if
/// anything is wrong: not the v2 format, a malformed or inconsistent
/// length, a bad signature (compared in constant time), another `name`,
/// a timestamp older than `max_age_days` days before `now` or more than
/// [`MAX_FUTURE_SKEW_SECS`] after it, or a value that is not base64.
///
/// Never panics; allocates at most the size of the decoded value.
pub fn decode_signed_value(
    secret: &[u8],
    name: &str,
    signed: &str,
    max_age_days: u32,
    now: SystemTime,
) -> Option<Vec<u8>> {
    let fields = decode_fields(signed.as_bytes())?;
    let tag: [u8; 32] = hex_decode(fields.signature)?;
    mac(secret, fields.signed_part).verify_slice(&tag).ok()?;
    if fields.name != name.as_bytes() {
        return None;
    }
    let timestamp = parse_decimal(fields.timestamp)?;
    let now = unix_seconds(now);
    let oldest = now.saturating_sub(u64::from(max_age_days) * 86_400);
    if timestamp < oldest || timestamp > now.saturating_add(MAX_FUTURE_SKEW_SECS) {
        return None;
    }
    BASE64.decode(fields.value).ok()
}

/// The key version recorded in a v2 signed value, or `None` if it is not
/// one. The value is *not* verified: use this only to choose which secret
/// to pass to [`decode_signed_value`].
pub fn get_signature_key_version(signed: &str) -> Option<u32> {
    decode_fields(signed.as_bytes()).map(|f| f.key_version)
}

/// The parts of a v2 signed value, before any verification.
struct Fields<'a> {
    key_version: u32,
    timestamp: &'a [u8],
    name: &'a [u8],
    value: &'a [u8],
    /// Everything the signature covers (up to and including the last `|`).
    signed_part: &'a [u8],
    signature: &'a [u8],
}

fn decode_fields(signed: &[u8]) -> Option<Fields<'_>> {
    let rest = signed.strip_prefix(b"2|")?;
    let (key_version, rest) = consume_field(rest)?;
    let (timestamp, rest) = consume_field(rest)?;
    let (name, rest) = consume_field(rest)?;
    let (value, signature) = consume_field(rest)?;
    Some(Fields {
        key_version: u32::try_from(parse_decimal(key_version)?).ok()?,
        timestamp,
        name,
        value,
        signed_part: &signed[..signed.len() - signature.len()],
        signature,
    })
}

/// `field = len ":" bytes "|"`; returns the bytes and what follows the `|`.
fn consume_field(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = s.iter().take(MAX_DIGITS + 1).position(|&b| b == b':')?;
    let len = usize::try_from(parse_decimal(&s[..colon])?).ok()?;
    let rest = &s[colon + 1..];
    if rest.len() <= len || rest[len] != b'|' {
        return None;
    }
    Some((&rest[..len], &rest[len + 1..]))
}

/// `1*DIGIT` without leading zeros (except "0" itself), at most
/// [`MAX_DIGITS`] digits.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    let well_formed = !digits.is_empty()
        && digits.len() <= MAX_DIGITS
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1);
    well_formed.then(|| {
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
    })
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn mac(secret: &[u8], message: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (longer ones are hashed), so this
    // constructor cannot fail; the Result is only the KeyInit trait's shape.
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac
}

/// Lowercase hex, as Python's `hexdigest()` / `binascii.b2a_hex`.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes exactly `2 * N` lowercase hex digits into `N` bytes; anything
/// else (another length, uppercase, a non-hex byte) is `None`.
///
/// Every caller knows the size it expects (a 32-byte HMAC tag, a 4-byte
/// mask, a 16-byte token), so the result is an array on the stack: reading
/// a request's cookie and XSRF token allocates nothing here.
pub(crate) fn hex_decode<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECRET: &[u8] = b"It's a secret to everybody";
    const DAY: u64 = 86_400;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn decode(signed: &str, now: u64) -> Option<Vec<u8>> {
        decode_signed_value(SECRET, "key", signed, 31, at(now))
    }

    /// Known answers from Tornado's own `SignedValueTest` (secret, name,
    /// value and clock as there), re-checked with Tornado 6.6.1's
    /// `create_signed_value(..., version=2)`.
    const TORNADO_VALUE: &str = "2|1:0|10:1300000000|3:key|8:dmFsdWU=|\
        3d4e60b996ff9c5d5788e333a0cba6f238a22c6c0f94788870e1a9ecd482e152";
    const TORNADO_KEYVER: &str = "2|1:3|10:1300000000|3:key|8:dmFsdWU=|\
        88fbcc72bb70ca63f24ce210066ea86e6571857b686c8a5c6651120ade98efae";

    #[test]
    fn matches_tornado_byte_for_byte() {
        assert_eq!(
            create_signed_value(SECRET, "key", b"value", at(1_300_000_000)),
            TORNADO_VALUE
        );
        assert_eq!(
            decode(TORNADO_VALUE, 1_300_000_000).as_deref(),
            Some(&b"value"[..])
        );
    }

    #[test]
    fn format_by_hand() {
        // The same value assembled from the format description, with the
        // HMAC computed independently of create_signed_value.
        let unsigned = "2|1:0|10:1300000000|3:key|8:dmFsdWU=|";
        let mut check = <HmacSha256 as KeyInit>::new_from_slice(SECRET).unwrap();
        check.update(unsigned.as_bytes());
        let by_hand = format!("{unsigned}{}", hex_encode(&check.finalize().into_bytes()));
        assert_eq!(by_hand, TORNADO_VALUE);
    }

    #[test]
    fn key_versions() {
        let signed =
            create_signed_value_with_key_version(SECRET, 3, "key", b"value", at(1_300_000_000));
        assert_eq!(signed, TORNADO_KEYVER);
        assert_eq!(get_signature_key_version(&signed), Some(3));
        assert_eq!(get_signature_key_version(TORNADO_VALUE), Some(0));
        assert_eq!(get_signature_key_version("garbage"), None);
        assert!(decode(&signed, 1_300_000_000).is_some());
        let big = create_signed_value_with_key_version(SECRET, u32::MAX, "key", b"v", at(5));
        assert_eq!(get_signature_key_version(&big), Some(u32::MAX));
    }

    #[test]
    fn round_trips_binary_and_empty_values() {
        let now = at(1_700_000_000);
        for value in [
            &b""[..],
            b"\x00\xff|:",
            "caf\u{e9}".as_bytes(),
            &[7u8; 1000],
        ] {
            let signed = create_signed_value(SECRET, "key", value, now);
            assert_eq!(
                decode_signed_value(SECRET, "key", &signed, 31, now).as_deref(),
                Some(value)
            );
        }
        let odd_name = create_signed_value(SECRET, "a|b:c", b"v", now);
        assert!(decode_signed_value(SECRET, "a|b:c", &odd_name, 31, now).is_some());
    }

    #[test]
    fn wrong_secret_or_name_is_refused() {
        assert_eq!(
            decode_signed_value(b"other", "key", TORNADO_VALUE, 31, at(1_300_000_000)),
            None
        );
        assert_eq!(
            decode_signed_value(SECRET, "user", TORNADO_VALUE, 31, at(1_300_000_000)),
            None
        );
        assert_eq!(
            decode_signed_value(SECRET, "ke", TORNADO_VALUE, 31, at(1_300_000_000)),
            None
        );
    }

    #[test]
    fn tampering_is_refused() {
        let t = 1_300_000_000;
        // Change the value but keep the signature.
        let forged = TORNADO_VALUE.replace("dmFsdWU=", "dmFsdWF=");
        assert_eq!(decode(&forged, t), None);
        // Change the timestamp (e.g. to extend the lifetime).
        assert_eq!(
            decode(&TORNADO_VALUE.replace("1300000000", "1400000000"), t),
            None
        );
        // Flip each signature digit in turn.
        let sig_start = TORNADO_VALUE.len() - 64;
        for i in sig_start..TORNADO_VALUE.len() {
            let mut bytes = TORNADO_VALUE.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let s = String::from_utf8(bytes).unwrap();
            assert_eq!(decode(&s, t), None, "{s}");
        }
        // Uppercase hex, truncated and extended signatures.
        assert_eq!(decode(&TORNADO_VALUE.to_uppercase(), t), None);
        assert_eq!(decode(&TORNADO_VALUE[..TORNADO_VALUE.len() - 2], t), None);
        assert_eq!(decode(&format!("{TORNADO_VALUE}00"), t), None);
    }

    #[test]
    fn expiry_and_future_timestamps() {
        let t = 1_300_000_000;
        assert!(
            decode(TORNADO_VALUE, t + 31 * DAY).is_some(),
            "exactly max age"
        );
        assert_eq!(decode(TORNADO_VALUE, t + 31 * DAY + 1), None, "expired");
        assert_eq!(
            decode_signed_value(SECRET, "key", TORNADO_VALUE, 1, at(t + 2 * DAY)),
            None
        );
        assert!(
            decode(TORNADO_VALUE, t - MAX_FUTURE_SKEW_SECS).is_some(),
            "small skew ok"
        );
        assert_eq!(
            decode(TORNADO_VALUE, t - MAX_FUTURE_SKEW_SECS - 1),
            None,
            "future"
        );
        // A clock before 1970 cannot make the arithmetic wrap.
        assert_eq!(
            decode_signed_value(
                SECRET,
                "key",
                TORNADO_VALUE,
                31,
                UNIX_EPOCH - Duration::from_secs(1)
            ),
            None
        );
        assert!(decode_signed_value(SECRET, "key", TORNADO_VALUE, u32::MAX, at(t)).is_some());
    }

    #[test]
    fn malformed_lengths_are_refused() {
        let good_sig = &TORNADO_VALUE[TORNADO_VALUE.len() - 64..];
        for body in [
            "1|1:0|10:1300000000|3:key|8:dmFsdWU=|",
            "2|01:0|10:1300000000|3:key|8:dmFsdWU=|",
            "2|1:0|10:1300000000|03:key|8:dmFsdWU=|",
            "2|1:0|10:1300000000|4:key|8:dmFsdWU=|",
            "2|1:0|10:1300000000|2:key|8:dmFsdWU=|",
            "2|1:0|10:1300000000|+3:key|8:dmFsdWU=|",
            "2|1:0|10:1300000000|-3:key|8:dmFsdWU=|",
            "2|1:0|10:1300000000|3 :key|8:dmFsdWU=|",
            "2|1:0|10:1300000000|99999999999999999999:key|8:dmFsdWU=|",
            "2|1:0|10:1300000000|3:key|8:dmFsdWU=",
            "2|1:x|10:1300000000|3:key|8:dmFsdWU=|",
            "2|1:0|10:13000000xx|3:key|8:dmFsdWU=|",
        ] {
            assert_eq!(
                decode(&format!("{body}{good_sig}"), 1_300_000_000),
                None,
                "{body}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Every prefix, every single-byte deletion, and assorted junk.
        let t = 1_300_000_000;
        for n in 0..=TORNADO_VALUE.len() {
            let prefix = &TORNADO_VALUE[..n];
            let _ = decode(prefix, t);
            let _ = get_signature_key_version(prefix);
            let deleted = format!(
                "{}{}",
                &TORNADO_VALUE[..n],
                TORNADO_VALUE.get(n + 1..).unwrap_or("")
            );
            if n < TORNADO_VALUE.len() {
                assert_eq!(decode(&deleted, t), None);
            }
        }
        for junk in [
            "",
            "2",
            "2|",
            "2||||||",
            "2|:|:|:|:|",
            "2|0:|0:|0:|0:|",
            "2|1:0|",
            "\u{e9}|\u{e9}",
            "2|4:\u{e9}\u{e9}|",
        ] {
            assert_eq!(decode(junk, t), None, "{junk:?}");
        }
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(hex_encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(hex_decode(b"00abff"), Some([0x00, 0xab, 0xff]));
        assert_eq!(hex_decode::<0>(b""), Some([]));
        // Odd, short and long inputs: the length must be exactly 2 * N.
        assert_eq!(hex_decode::<2>(b"abc"), None);
        assert_eq!(hex_decode::<1>(b"abc"), None);
        assert_eq!(hex_decode::<2>(b"ab"), None);
        assert_eq!(hex_decode::<1>(b"abab"), None);
        assert_eq!(hex_decode::<1>(b"AB"), None);
        assert_eq!(hex_decode::<1>(b"zz"), None);
        assert_eq!(hex_decode::<2>(b"a0g0"), None);
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"1300000000"), Some(1_300_000_000));
        assert_eq!(
            parse_decimal(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b"00",
            b"01",
            b"1a",
            b"-1",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }
}
