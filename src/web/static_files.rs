//! Files from `static/`: content types, ETag/304, Last-Modified, ranges,
//! versioned URLs, gzip.
//!
//! Mirrors Tornado's `StaticFileHandler` (in `tornado/web.py`):
//!
//! * `static_url("chat.js")` → `/static/chat.js?v=<hash of the content>`;
//!   with `?v=` the answer may be cached for a year (`immutable`), without
//!   it the browser revalidates (`no-cache`) and gets a 304 when unchanged.
//! * `If-None-Match` wins over `If-Modified-Since`; one `Range` → 206,
//!   unsatisfiable → 416 with `Content-Range: bytes */size`.
//! * The gzip variant is another representation with its own strong
//!   `ETag` (`"<hash>-gzip"`, RFC 9110 §8.8.3.3); a range is always cut
//!   from the identity bytes and carries the identity tag.
//! * `If-Range` (RFC 9110 §13.1.5) makes the range conditional: unless it
//!   holds the current strong `ETag` or exactly a strong `Last-Modified`,
//!   the range is ignored and the whole file is sent with 200 (Tornado
//!   ignores `If-Range`).
//! * A path that leaves the root (`..`, absolute, symlink out) is a 404 —
//!   indistinguishable from a missing file.
//!
//! Files are read whole and kept in memory with their hash and gzipped form
//! (the static directory is the application's own, small, and read-mostly).
//! Reading a small local file briefly blocks the loop, as it does in
//! Tornado; in debug mode each request re-checks the file's mtime.
//!
//! The files may also be a [`Bundle`] built into the program
//! ([`StaticFiles::bundled`]): looked up by exact name, never changing,
//! and `Last-Modified` is when the program file was written (its build).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::bundle::Bundle;
use super::context::Ctx;
use super::handler::{HTTPError, HandlerResult, RequestHandler};
use super::transform::{
    accepts_gzip, compressible, etag_matches, gzip, gzip_etag, sha1_hex, GZIP_MIN_BYTES,
};
use crate::httputil::{
    format_http_date, mime::guess_type, parse_http_date, parse_range, ByteRange,
};

/// Files larger than this are refused (404) rather than read into memory.
const MAX_STATIC_FILE: u64 = 32 * 1024 * 1024;

/// One file as served.
struct CachedFile {
    /// The bytes.
    content: Vec<u8>,
    /// The gzip-coded variant, if the type is compressible and big enough.
    gzipped: Option<Gzipped>,
    /// Strong validator of the identity bytes: `"<sha1 hex>"`.
    etag: String,
    /// Short content hash for `?v=`.
    version: String,
    /// File mtime (Last-Modified, and cache invalidation in debug).
    modified: SystemTime,
    /// Content-Type.
    content_type: &'static str,
}

/// The gzip-coded variant of a file: another representation, with its own
/// strong validator (RFC 9110 §8.8.3.3, see [`gzip_etag`]).
struct Gzipped {
    /// The gzipped bytes.
    bytes: Vec<u8>,
    /// `"<sha1 hex of the identity bytes>-gzip"`.
    etag: String,
}

/// Where the files are.
enum Source {
    /// Under this canonical root directory.
    Dir(PathBuf),
    /// Built into the program.
    Bundled {
        /// The files.
        files: Bundle,
        /// Their `Last-Modified`: the program file's mtime.
        modified: SystemTime,
    },
}

/// The static directory of an application. `Sync` because templates call
/// `static_url` through minijinja, which requires it.
pub struct StaticFiles {
    /// Where the files are.
    source: Source,
    /// Re-check mtimes on every request (a directory only: a bundle
    /// cannot change).
    debug: bool,
    /// Files read so far, by path relative to the root.
    cache: Mutex<HashMap<String, Arc<CachedFile>>>,
}

impl StaticFiles {
    /// Serve files under `root`.
    pub fn new(root: &Path, debug: bool) -> std::io::Result<StaticFiles> {
        Ok(StaticFiles {
            source: Source::Dir(root.canonicalize()?),
            debug,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Serve the files of `files`, built into the program. Their
    /// `Last-Modified` is the program file's mtime (when it was built or
    /// installed), or the start time if that cannot be read; the `ETag`,
    /// a hash of the bytes, is what revalidation relies on either way.
    pub fn bundled(files: Bundle) -> StaticFiles {
        let modified = std::env::current_exe()
            .and_then(std::fs::metadata)
            .and_then(|meta| meta.modified())
            .unwrap_or_else(|_| SystemTime::now());
        StaticFiles {
            source: Source::Bundled { files, modified },
            debug: false,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The versioned URL of `path` under `prefix` (e.g. `/static/`).
    pub fn static_url(&self, prefix: &str, path: &str) -> String {
        match self.load(path) {
            Some(file) => format!("{prefix}{path}?v={}", file.version),
            None => format!("{prefix}{path}"),
        }
    }

    /// The file `key` names under `root`, or `None`. `key` comes from
    /// [`canonical`](Self::canonical), so it is only normal components;
    /// what remains to check is where symlinks lead.
    fn resolve(root: &Path, key: &str) -> Option<PathBuf> {
        let full = root.join(key).canonicalize().ok()?;
        // Symlinks may still point out of the root.
        full.starts_with(root).then_some(full)
    }

    /// `rel` spelled one way: its normal components joined by `/`, or
    /// `None` if it has any other (`..`, a root, a prefix) or a NUL or
    /// backslash. `css//a.js` and `css/./a.js` are both `css/a.js`
    /// (`Path::components` already drops empty and interior `.` parts), so
    /// the cache holds one entry per file, not one per spelling: keyed by
    /// the bytes as sent, 3000 spellings of a 12 KB file held 70 MB.
    fn canonical(rel: &str) -> Option<String> {
        if rel.is_empty() || rel.contains('\0') || rel.contains('\\') {
            return None;
        }
        let mut key = String::with_capacity(rel.len());
        for part in Path::new(rel).components() {
            let Component::Normal(name) = part else {
                return None;
            };
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(name.to_str()?);
        }
        (!key.is_empty()).then_some(key)
    }

    /// The file for `rel`, from the cache, the disk or the bundle. Every
    /// path goes through [`canonical`](Self::canonical) first: it is the
    /// one check of what a client may name.
    fn load(&self, rel: &str) -> Option<Arc<CachedFile>> {
        let key = Self::canonical(rel)?;
        let rel = key.as_str();
        let cached = self.cache.lock().ok()?.get(rel).cloned();
        if let Some(file) = &cached {
            let Source::Dir(root) = &self.source else {
                return cached;
            };
            if !self.debug {
                return cached;
            }
            let path = Self::resolve(root, rel)?;
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
            if modified == file.modified {
                return cached;
            }
        }
        let (content, modified) = match &self.source {
            Source::Dir(root) => {
                let path = Self::resolve(root, rel)?;
                let meta = std::fs::metadata(&path).ok()?;
                if !meta.is_file() {
                    return None;
                }
                if meta.len() > MAX_STATIC_FILE {
                    // A 404 like a missing file, so say why to the operator.
                    log::warn!(
                        "static file {} not served: {} bytes, over the {MAX_STATIC_FILE}-byte limit",
                        path.display(),
                        meta.len()
                    );
                    return None;
                }
                let content = std::fs::read(&path).ok()?;
                (content, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH))
            }
            Source::Bundled { files, modified } => (files.find(rel)?.to_vec(), *modified),
        };
        let content_type = guess_type(Path::new(rel));
        let hash = sha1_hex(&content);
        let etag = format!("\"{hash}\"");
        let gzipped =
            (content.len() >= GZIP_MIN_BYTES && compressible(content_type)).then(|| Gzipped {
                bytes: gzip(&content),
                etag: gzip_etag(&etag).unwrap_or_else(|| etag.clone()),
            });
        let file = Arc::new(CachedFile {
            etag,
            version: hash[..16].to_string(),
            modified,
            content_type,
            gzipped,
            content,
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(rel.to_string(), Arc::clone(&file));
        }
        Some(file)
    }
}

/// Serves `/static/{*path}` (or one fixed file, for `/favicon.ico`).
pub struct StaticFileHandler {
    /// The directory.
    files: Arc<StaticFiles>,
    /// Serve this file whatever the path (for `/favicon.ico`, `/robots.txt`).
    fixed: Option<String>,
}

impl StaticFileHandler {
    /// Serve the `path` capture of the route from `files`.
    pub fn new(files: Arc<StaticFiles>) -> StaticFileHandler {
        StaticFileHandler { files, fixed: None }
    }

    /// Always serve `file`.
    pub fn fixed(files: Arc<StaticFiles>, file: &str) -> StaticFileHandler {
        StaticFileHandler {
            files,
            fixed: Some(file.to_string()),
        }
    }
}

impl RequestHandler for StaticFileHandler {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let rel = match &self.fixed {
            Some(f) => f.clone(),
            None => cx.path_arg("path").unwrap_or("").to_string(),
        };
        let Some(file) = self.files.load(&rel) else {
            // Debug-quoted: the name is the client's, control bytes and all.
            return Err(HTTPError::not_found(format!("{rel:?} not found")));
        };
        let req = cx.request();
        let size = file.content.len() as u64;
        let range = req
            .headers()
            .get("Range")
            .filter(|_| match req.headers().get("If-Range") {
                // RFC 9110 §13.1.5: "If the validator given in the If-Range
                // header field matches the current validator for the
                // selected representation of the target resource, then the
                // server SHOULD process the Range header field as requested.
                // If the validator does not match, then the server MUST
                // ignore the Range header field." A range is always cut
                // from the identity bytes, so that is the representation
                // whose validator counts.
                Some(if_range) => {
                    if_range_matches(if_range, &file.etag, file.modified, SystemTime::now())
                }
                None => true,
            })
            .map(|r| parse_range(r, size));
        // What will be sent: the gzip variant for a whole-file answer to a
        // client that accepts it; otherwise (and for every range, as in
        // Tornado) the identity bytes. The ETag is that representation's,
        // so it always names the bytes on the wire.
        let whole = matches!(range, Some(ByteRange::Whole) | None);
        let gzipped = file
            .gzipped
            .as_ref()
            .filter(|_| whole && accepts_gzip(req.headers()));
        let etag = gzipped.map_or(&file.etag, |gz| &gz.etag);

        cx.set_header("Content-Type", file.content_type);
        cx.set_header("Accept-Ranges", "bytes");
        cx.set_header("Etag", etag.clone());
        cx.set_header("Last-Modified", format_http_date(file.modified));
        if req.query().split('&').any(|kv| kv.starts_with("v=")) {
            cx.set_header("Cache-Control", "public, max-age=31536000, immutable");
        } else {
            cx.set_header("Cache-Control", "no-cache");
        }
        if compressible(file.content_type) {
            cx.set_header("Vary", "Accept-Encoding");
        }

        // Conditional GET: If-None-Match wins; else If-Modified-Since.
        // (RFC 9110 §13.2.2: both before Range.) The 304 carries the tag
        // of the representation it confirms.
        let not_modified = match req.headers().get("If-None-Match") {
            Some(inm) => etag_matches(inm, etag),
            None => req
                .headers()
                .get("If-Modified-Since")
                .and_then(parse_http_date)
                .is_some_and(|since| truncate_secs(file.modified) <= since),
        };
        if not_modified {
            cx.set_status(304);
            cx.finish();
            return Ok(());
        }

        match range {
            Some(ByteRange::Unsatisfiable) => {
                cx.set_status(416);
                cx.clear_header("Etag");
                cx.set_header("Content-Type", "text/plain; charset=UTF-8");
                cx.set_header("Content-Range", format!("bytes */{size}"));
                cx.finish();
            }
            Some(r @ ByteRange::Partial { start, end }) => {
                cx.set_status(206);
                if let Some(cr) = r.content_range(size) {
                    cx.set_header("Content-Range", cr);
                }
                let (s, e) = (
                    usize::try_from(start).unwrap_or(0),
                    usize::try_from(end).unwrap_or(0),
                );
                cx.write(&file.content[s.min(e)..e.min(file.content.len())]);
                cx.finish();
            }
            Some(ByteRange::Whole) | None => {
                match gzipped {
                    Some(gz) => {
                        cx.set_header("Content-Encoding", "gzip");
                        cx.write(&gz.bytes);
                    }
                    None => cx.write(&file.content),
                }
                cx.finish();
            }
        }
        Ok(())
    }
}

/// Does the `If-Range` value `if_range` match the file's current
/// validators, the entity-tag `etag` and the mtime `modified`, at `now`?
///
/// RFC 9110 §13.1.5 ("A server MUST ignore an If-Range header field
/// received in a request that does not contain a Range header field": the
/// caller only asks when there is one):
///
/// > To evaluate a received If-Range header field containing an HTTP-date:
/// > 1. If the HTTP-date validator provided is not a strong validator in
/// >    the sense defined by Section 8.8.2.2, the condition is false.
/// > 2. If the HTTP-date validator provided exactly matches the
/// >    Last-Modified field value for the selected representation, the
/// >    condition is true.
/// > 3. Otherwise, the condition is false.
/// >
/// > To evaluate a received If-Range header field containing an
/// > entity-tag:
/// > 1. If the entity-tag validator provided exactly matches the ETag
/// >    field value for the selected representation using the strong
/// >    comparison function (Section 8.8.3.2), the condition is true.
/// > 2. Otherwise, the condition is false.
///
/// So a weak tag (`W/"…"`) never matches (strong comparison: "both entity
/// tags are not weak"), a list of tags is not an entity-tag and does not
/// match, and neither does a value that is neither a tag nor a date.
///
/// A date is compared as a point in time with `Last-Modified`, which is
/// the file's mtime at whole seconds (so any of the three date forms a
/// recipient must accept works). §8.8.2.2 makes a `Last-Modified` strong
/// only if it "is at least one second before" the response's `Date` (the
/// file cannot then have changed twice within the second it names).
/// squall checks exactly that against the clock, `now`, rather than
/// treating every exact match as a match: a file modified within the
/// current second (or stamped in the future) gets the whole body.
fn if_range_matches(if_range: &str, etag: &str, modified: SystemTime, now: SystemTime) -> bool {
    let value = if_range.trim();
    if value.starts_with("W/") {
        return false;
    }
    if value.starts_with('"') {
        // Our tag is strong; character-by-character equality is the strong
        // comparison function.
        return value == etag;
    }
    let last_modified = truncate_secs(modified);
    parse_http_date(value)
        .is_some_and(|date| date == last_modified && truncate_secs(now) > last_modified)
}

/// HTTP dates have whole seconds; compare mtimes at that precision.
fn truncate_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TAG: &str = "\"abc\"";

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_bundled_file_is_served_like_a_file_on_disk_and_nothing_else_is() {
        let files = StaticFiles::bundled(Bundle(&[("a.css", b"body { margin: 0 }")]));
        let file = files.load("a.css").expect("bundled");
        assert_eq!(file.content, b"body { margin: 0 }");
        assert_eq!(file.content_type, "text/css; charset=utf-8");
        assert_eq!(file.etag, format!("\"{}\"", sha1_hex(&file.content)));
        assert!(file.modified > SystemTime::UNIX_EPOCH);
        assert!(files
            .static_url("/static/", "a.css")
            .starts_with("/static/a.css?v="));
        for other in ["", "b.css", "./a.css", "x/../a.css", "/a.css"] {
            assert!(files.load(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn every_spelling_of_a_path_shares_one_cache_entry() {
        let root = std::env::temp_dir().join(format!("squall-static-{}", std::process::id()));
        std::fs::create_dir_all(root.join("css")).expect("mkdir");
        std::fs::write(root.join("css").join("a.css"), "p {}").expect("write");
        let files = StaticFiles::new(&root, false).expect("root");
        for spelling in ["css/a.css", "css//a.css", "css/./a.css", "css///./a.css/"] {
            let file = files.load(spelling).expect(spelling);
            assert_eq!(file.content, b"p {}");
        }
        for refused in [
            "",
            ".",
            "./css/a.css",
            "css/../css/a.css",
            "/css/a.css",
            "css\\a.css",
        ] {
            assert!(files.load(refused).is_none(), "{refused:?}");
        }
        assert_eq!(files.cache.lock().expect("cache").len(), 1);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn if_range_entity_tags_match_only_strongly() {
        let (m, now) = (at(1_000_000_000), at(1_000_000_100));
        assert!(if_range_matches(TAG, TAG, m, now));
        assert!(if_range_matches(" \"abc\" ", TAG, m, now));
        for other in ["W/\"abc\"", "\"abd\"", "\"abc\", \"x\"", "abc", "*", ""] {
            assert!(!if_range_matches(other, TAG, m, now), "{other:?}");
        }
    }

    #[test]
    fn if_range_dates_match_a_strong_last_modified_exactly() {
        let m = at(1_000_000_000) + Duration::from_millis(700);
        let lm = format_http_date(m);
        // A second (or more) old: strong.
        assert!(if_range_matches(&lm, TAG, m, at(1_000_000_001)));
        assert!(if_range_matches(
            "Sunday, 09-Sep-01 01:46:40 GMT",
            TAG,
            m,
            at(1_000_000_100)
        ));
        // The same second as now, or in the future: weak, never a match.
        assert!(!if_range_matches(&lm, TAG, m, m));
        assert!(!if_range_matches(&lm, TAG, m, at(999_999_000)));
        // Another second, or not a date.
        let later = format_http_date(at(1_000_000_001));
        assert!(!if_range_matches(&later, TAG, m, at(1_000_000_100)));
        assert!(!if_range_matches("yesterday", TAG, m, at(1_000_000_100)));
    }
}
