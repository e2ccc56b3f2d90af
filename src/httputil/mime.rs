//! Content types of static files, by file extension. Plays the part Python's
//! `mimetypes.guess_type` plays in Tornado's `StaticFileHandler` (`web.py`),
//! with a fixed table so the answer never depends on the host's
//! `/etc/mime.types`.

use std::path::Path;

/// Answer for an unknown or missing extension.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// Extension (lower case) → content type. Every `text/*` type carries
/// `; charset=utf-8`, since squall's static text files are UTF-8.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("xml", "text/xml; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("svg", "image/svg+xml"),
    ("ico", "image/x-icon"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
];

/// The content type for `path`, from its extension (ASCII
/// case-insensitive), or [`DEFAULT_TYPE`].
///
/// ```
/// use squall::httputil::mime::guess_type;
/// assert_eq!(guess_type("static/app.JS"), "text/javascript; charset=utf-8");
/// assert_eq!(guess_type("logo.png"), "image/png");
/// assert_eq!(guess_type("README"), "application/octet-stream");
/// ```
pub fn guess_type(path: impl AsRef<Path>) -> &'static str {
    let Some(extension) = path.as_ref().extension().and_then(|e| e.to_str()) else {
        return DEFAULT_TYPE;
    };
    TYPES
        .iter()
        .find(|(ext, _)| ext.eq_ignore_ascii_case(extension))
        .map_or(DEFAULT_TYPE, |(_, content_type)| content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_type() {
        for (file, want) in [
            ("index.html", "text/html; charset=utf-8"),
            ("site.css", "text/css; charset=utf-8"),
            ("chat.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("data.json", "application/json"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.jpeg", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("a.svg", "image/svg+xml"),
            ("favicon.ico", "image/x-icon"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("f.woff", "font/woff"),
            ("f.woff2", "font/woff2"),
            ("m.wasm", "application/wasm"),
            ("chat.js.map", "application/json"),
            ("feed.xml", "text/xml; charset=utf-8"),
            ("doc.pdf", "application/pdf"),
        ] {
            assert_eq!(guess_type(file), want, "{file}");
        }
    }

    #[test]
    fn case_paths_and_fallbacks() {
        assert_eq!(guess_type("A/B/INDEX.HTML"), "text/html; charset=utf-8");
        assert_eq!(guess_type(Path::new("/srv/static/x.Png")), "image/png");
        for unknown in ["", "noext", ".html", "archive.tar.gz", "x.", "x.exe"] {
            assert_eq!(guess_type(unknown), DEFAULT_TYPE, "{unknown:?}");
        }
    }
}
