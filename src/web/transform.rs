//! What `finish` does to a complete body before it leaves: the `ETag` /
//! `If-None-Match` → 304 check and gzip, whose variant gets its own strong
//! `ETag` ([`gzip_etag`]).
//!
//! Mirrors `RequestHandler.finish`'s etag logic and `GZipContentEncoding` in
//! Tornado's `tornado/web.py`.

use std::io::Write;

use super::context::Ctx;
use crate::httputil::HTTPHeaders;

/// Bodies shorter than this get no computed `ETag`: hashing costs more than
/// resending them (Tornado hashes every body; a deliberate difference).
const ETAG_MIN_BYTES: usize = 256;

/// Bodies shorter than this are not compressed (Tornado: 1024).
pub(crate) const GZIP_MIN_BYTES: usize = 1024;

/// Turn the finished body into what is sent. `None` means "304 Not
/// Modified" (the client's copy is current). `implied_type` is the
/// `Content-Type` sent beside `headers` when they hold none.
///
/// The steps, in order: compute an `ETag` from the identity body (unless
/// the handler set one); decide whether the body is gzipped (then `Vary:
/// Accept-Encoding`, and a strong `ETag` becomes the gzip variant's, see
/// [`gzip_etag`]); compare `If-None-Match` with the `ETag` of what would
/// be sent, so a client holding either variant's tag gets a 304 carrying
/// that tag and the `Vary`; only then compress.
pub(crate) fn finish_body(
    cx: &Ctx,
    status: u16,
    headers: &mut HTTPHeaders,
    implied_type: Option<&str>,
    body: Vec<u8>,
) -> Option<Vec<u8>> {
    let request = cx.request();
    let cacheable = status == 200 && (request.method() == "GET" || request.method() == "HEAD");
    if cacheable && body.len() >= ETAG_MIN_BYTES && !headers.contains("Etag") {
        headers.set("Etag", format!("\"{}\"", sha1_hex(&body)));
    }
    let compressible_answer = status == 200
        && cx.inner.app.settings.compress_response
        && body.len() >= GZIP_MIN_BYTES
        && !headers.contains("Content-Encoding")
        && !headers.contains("Content-Range")
        && headers
            .get("Content-Type")
            .or(implied_type)
            .is_some_and(compressible);
    let gzipping = compressible_answer && accepts_gzip(request.headers());
    if compressible_answer {
        if !varies_on_accept_encoding(headers) {
            headers.add("Vary", "Accept-Encoding");
        }
        if gzipping {
            if let Some(tag) = headers.get("Etag").and_then(gzip_etag) {
                headers.set("Etag", tag);
            }
        }
    }
    if cacheable {
        // The request's If-None-Match first: most requests have none, and
        // then the response's headers need no search.
        if let Some((inm, etag)) = request
            .headers()
            .get("If-None-Match")
            .and_then(|inm| Some((inm, headers.get("Etag")?)))
        {
            if etag_matches(inm, etag) {
                headers.remove("Content-Length");
                return None;
            }
        }
    }
    if gzipping {
        headers.set("Content-Encoding", "gzip");
        headers.remove("Content-Length");
        return Some(gzip(&body));
    }
    Some(body)
}

/// The `ETag` of the gzip-coded variant of a representation tagged `etag`,
/// or `None` if the tag may stay as it is.
///
/// RFC 9110 §8.8.3.3: "Content codings are a property of the
/// representation data, so a strong entity tag for a content-encoded
/// representation has to be distinct from the entity tag of an unencoded
/// representation to prevent potential conflicts during cache updates and
/// range requests." So a strong tag gets `-gzip` inside its quotes:
/// `"abc"` → `"abc-gzip"`. A weak tag (`W/"…"`) is left alone: §8.8.1
/// expects exactly that sharing of weak validators ("if the origin server
/// sends the same validator for a representation with a gzip content
/// coding applied as it does for a representation with no content
/// coding, then that validator is weak"). A value that is not a quoted
/// tag at all is left alone too.
pub(crate) fn gzip_etag(etag: &str) -> Option<String> {
    let etag = etag.trim();
    let opaque = etag.strip_prefix('"')?.strip_suffix('"')?;
    Some(format!("\"{opaque}-gzip\""))
}

/// `headers` already carry `Vary: Accept-Encoding` (or `Vary: *`), e.g.
/// from the static file handler.
fn varies_on_accept_encoding(headers: &HTTPHeaders) -> bool {
    headers
        .get_all("Vary")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|f| f == "*" || f.eq_ignore_ascii_case("Accept-Encoding"))
}

/// `If-None-Match` against our `ETag`, by weak comparison (RFC 9110 §13.1.2):
/// `*` matches anything; `W/` prefixes are ignored.
pub(crate) fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == ours)
}

/// The client sent `Accept-Encoding` with `gzip` (and not `gzip;q=0`).
pub(crate) fn accepts_gzip(headers: &HTTPHeaders) -> bool {
    headers
        .get_all("Accept-Encoding")
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let q_zero =
                parts.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
}

/// Worth compressing: text, JSON, JavaScript, XML, SVG (Tornado's list).
pub(crate) fn compressible(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || matches!(
            ct.as_str(),
            "application/javascript"
                | "application/x-javascript"
                | "application/json"
                | "application/xml"
                | "application/atom+xml"
                | "application/xhtml+xml"
                | "image/svg+xml"
        )
}

/// gzip at level 6 (Tornado's default).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        flate2::Compression::new(6),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// Lower-case hex SHA-1.
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(data);
    super::signed::hex_encode(&digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_comparison() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }

    #[test]
    fn gzip_variant_tags() {
        assert_eq!(gzip_etag("\"abc\"").as_deref(), Some("\"abc-gzip\""));
        assert_eq!(gzip_etag(" \"\" ").as_deref(), Some("\"-gzip\""));
        assert_eq!(gzip_etag("W/\"abc\""), None);
        assert_eq!(gzip_etag("abc"), None);
        assert_eq!(gzip_etag("\""), None);
    }

    #[test]
    fn gzip_acceptance() {
        let mut h = HTTPHeaders::new();
        h.add("Accept-Encoding", "deflate, gzip;q=1.0, br");
        assert!(accepts_gzip(&h));
        let mut h = HTTPHeaders::new();
        h.add("Accept-Encoding", "gzip;q=0");
        assert!(!accepts_gzip(&h));
        assert!(!accepts_gzip(&HTTPHeaders::new()));
    }

    #[test]
    fn compressible_types() {
        assert!(compressible("text/html; charset=UTF-8"));
        assert!(compressible("application/json"));
        assert!(!compressible("image/png"));
    }
}
