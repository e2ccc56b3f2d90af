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
//! * A path that leaves the root (`..`, absolute, symlink out) is a 404 —
//!   indistinguishable from a missing file.
//!
//! Files are read whole and kept in memory with their hash and gzipped form
//! (the static directory is the application's own, small, and read-mostly).
//! Reading a small local file briefly blocks the loop, as it does in
//! Tornado; in debug mode each request re-checks the file's mtime.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::context::Ctx;
use super::handler::{HTTPError, HandlerResult, RequestHandler};
use super::transform::{accepts_gzip, compressible, etag_matches, gzip, sha1_hex, GZIP_MIN_BYTES};
use crate::httputil::{
    format_http_date, mime::guess_type, parse_http_date, parse_range, ByteRange,
};

/// Files larger than this are refused (404) rather than read into memory.
const MAX_STATIC_FILE: u64 = 32 * 1024 * 1024;

/// One file as served.
struct CachedFile {
    /// The bytes.
    content: Vec<u8>,
    /// Gzipped bytes, if the type is compressible and big enough.
    gzipped: Option<Vec<u8>>,
    /// Strong validator: `"<sha1 hex>"`.
    etag: String,
    /// Short content hash for `?v=`.
    version: String,
    /// File mtime (Last-Modified, and cache invalidation in debug).
    modified: SystemTime,
    /// Content-Type.
    content_type: &'static str,
}

/// The static directory of an application. `Sync` because templates call
/// `static_url` through minijinja, which requires it.
pub struct StaticFiles {
    /// Canonical root directory.
    root: PathBuf,
    /// Re-check mtimes on every request.
    debug: bool,
    /// Files read so far, by path relative to the root.
    cache: Mutex<HashMap<String, Arc<CachedFile>>>,
}

impl StaticFiles {
    /// Serve files under `root`.
    pub fn new(root: &Path, debug: bool) -> std::io::Result<StaticFiles> {
        Ok(StaticFiles {
            root: root.canonicalize()?,
            debug,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The versioned URL of `path` under `prefix` (e.g. `/static/`).
    pub fn static_url(&self, prefix: &str, path: &str) -> String {
        match self.load(path) {
            Some(file) => format!("{prefix}{path}?v={}", file.version),
            None => format!("{prefix}{path}"),
        }
    }

    /// Resolve `rel` safely under the root, or `None`.
    fn resolve(&self, rel: &str) -> Option<PathBuf> {
        if rel.is_empty() || rel.contains('\0') || rel.contains('\\') {
            return None;
        }
        let rel_path = Path::new(rel);
        if rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return None;
        }
        let full = self.root.join(rel_path).canonicalize().ok()?;
        // Symlinks may still point out of the root.
        full.starts_with(&self.root).then_some(full)
    }

    /// The file for `rel`, from the cache or disk.
    fn load(&self, rel: &str) -> Option<Arc<CachedFile>> {
        let cached = self.cache.lock().ok()?.get(rel).cloned();
        if let Some(file) = &cached {
            if !self.debug {
                return cached;
            }
            let path = self.resolve(rel)?;
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
            if modified == file.modified {
                return cached;
            }
        }
        let path = self.resolve(rel)?;
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > MAX_STATIC_FILE {
            return None;
        }
        let content = std::fs::read(&path).ok()?;
        let content_type = guess_type(&path);
        let hash = sha1_hex(&content);
        let gzipped =
            (content.len() >= GZIP_MIN_BYTES && compressible(content_type)).then(|| gzip(&content));
        let file = Arc::new(CachedFile {
            etag: format!("\"{hash}\""),
            version: hash[..16].to_string(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
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
            return Err(HTTPError::not_found(format!("{rel} not found")));
        };
        let req = cx.request();
        cx.set_header("Content-Type", file.content_type);
        cx.set_header("Accept-Ranges", "bytes");
        cx.set_header("Etag", file.etag.clone());
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
        let not_modified = match req.headers().get("If-None-Match") {
            Some(inm) => etag_matches(inm, &file.etag),
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

        let size = file.content.len() as u64;
        let range = req.headers().get("Range").map(|r| parse_range(r, size));
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
                match (&file.gzipped, accepts_gzip(req.headers())) {
                    (Some(gz), true) => {
                        cx.set_header("Content-Encoding", "gzip");
                        cx.write(gz);
                    }
                    _ => cx.write(&file.content),
                }
                cx.finish();
            }
        }
        Ok(())
    }
}

/// HTTP dates have whole seconds; compare mtimes at that precision.
fn truncate_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}
