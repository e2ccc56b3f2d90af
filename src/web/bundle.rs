//! Files built into the program: templates and static files that need no
//! directory at run time.
//!
//! Tornado always reads `template_path` and `static_path` from disk; a
//! Python program ships with its files anyway. A Rust binary is copied
//! alone, so the web layer also accepts a [`Bundle`], a table of
//! `(name, bytes)` the program makes with `include_bytes!`, wherever it
//! takes a directory ([`Settings::template_bundle`],
//! [`Settings::static_bundle`]). A bundle is looked up by exact name: no
//! path is resolved, so nothing outside it can be reached.
//!
//! [`Settings::template_bundle`]: super::Settings::template_bundle
//! [`Settings::static_bundle`]: super::Settings::static_bundle

use std::fmt;
use std::path::PathBuf;

/// Files built into the program: each a name relative to the directory
/// they came from (`"chat.js"`, `"css/site.css"`) and its bytes.
#[derive(Clone, Copy)]
pub struct Bundle(pub &'static [(&'static str, &'static [u8])]);

impl Bundle {
    /// The bytes of `name`, if the bundle holds that name.
    pub fn find(self, name: &str) -> Option<&'static [u8]> {
        self.0
            .iter()
            .find(|(entry, _)| *entry == name)
            .map(|(_, bytes)| *bytes)
    }

    /// The names it holds, in order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.0.iter().map(|(name, _)| *name)
    }
}

/// The names only: settings are printed in logs, the bytes would drown them.
impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Where an application's templates (or static files) come from.
#[derive(Clone, Debug)]
pub enum AssetSource {
    /// A directory, read as files are first needed (and re-read in debug
    /// mode, so an edit shows on the next request).
    Dir(PathBuf),
    /// Files built into the program; they never change while it runs.
    Bundled(Bundle),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_answers_only_its_own_names() {
        const FILES: Bundle = Bundle(&[("a.txt", b"A"), ("d/b.txt", b"B")]);
        assert_eq!(FILES.find("a.txt"), Some(&b"A"[..]));
        assert_eq!(FILES.find("d/b.txt"), Some(&b"B"[..]));
        for name in ["", "b.txt", "./a.txt", "d/../a.txt", "/a.txt", "A.TXT"] {
            assert_eq!(FILES.find(name), None, "{name:?}");
        }
        assert_eq!(format!("{FILES:?}"), r#"["a.txt", "d/b.txt"]"#);
    }
}
