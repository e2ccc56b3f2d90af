//! The demo apps' `templates/` and `static/`, built into the binary, so a
//! `squall` copied without its checkout still serves every page.
//!
//! The binary's default (`config`): the checkout's directories while they
//! exist (so `cargo run -- --debug` shows an edit at once), these copies
//! otherwise, or always with `--builtin-assets`. Tornado has no such
//! thing: a Python app ships with its files.
//!
//! The lists are written out (no build script); the test below fails if a
//! file is added to either directory and not here.

use crate::web::Bundle;

/// `(name, bytes)` of each file of the crate directory `$dir`.
macro_rules! bundle {
    ($dir:literal: $($name:literal),* $(,)?) => {
        Bundle(&[$((
            $name,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $dir, "/", $name)),
        )),*])
    };
}

/// `templates/`.
pub const TEMPLATES: Bundle = bundle!("templates":
    "base.html",
    "cart.html",
    "index.html",
    "login.html",
    "message.html",
    "register.html",
    "room.html",
    "upstream.html",
);

/// `static/`.
pub const STATIC: Bundle = bundle!("static":
    "cart.css",
    "cart.js",
    "chat.css",
    "chat.js",
    "site.css",
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every file under `dir`, relative to it, sorted.
    fn files_under(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(at) = pending.pop() {
            for entry in std::fs::read_dir(&at).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let rel = path.strip_prefix(dir).expect("under dir");
                    found.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn the_bundles_hold_exactly_the_files_of_their_directories() {
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (dir, bundle) in [("templates", TEMPLATES), ("static", STATIC)] {
            let on_disk = files_under(&crate_dir.join(dir));
            let mut bundled: Vec<String> = bundle.names().map(String::from).collect();
            bundled.sort();
            assert_eq!(bundled, on_disk, "src/apps/assets.rs lists {dir}/ wrongly");
        }
    }
}
