//! The `squall` binary refuses to start on a path it cannot use, and says
//! which one: a missing template or static directory, a data directory
//! that cannot be created. Exit status 1 and one readable line on stderr,
//! before it listens (so a supervisor sees the failure, not a server whose
//! every page is a 500).

mod chat_support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use chat_support::GUARD;

/// Run `squall --port 0` with `args` and wait (at most [`GUARD`]) for it
/// to exit: (exit code, stderr). Panics if it is still running, that is,
/// if it started serving instead of refusing. The end of its stderr is
/// the event waited for: the pipe closes when the process exits.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["--address", "127.0.0.1", "--port", "0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn squall");
    let mut pipe = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    let Ok(stderr) = rx.recv_timeout(GUARD) else {
        let _ = child.kill();
        panic!("squall started with {args:?} instead of refusing");
    };
    let status = child.wait().expect("wait");
    (status.code(), stderr)
}

/// A path that does not exist, in a temporary directory of this test's
/// own (the tests run in parallel, so each gets a fresh one).
fn missing(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("squall-startup-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join(name)
}

#[test]
fn a_missing_template_or_static_directory_is_named_at_start() {
    for (flag, setting) in [
        ("--template-path", "template_path"),
        ("--static-path", "static_path"),
    ] {
        let path = missing(setting);
        let shown = path.display().to_string();
        let (code, stderr) = refused(&["--cookie-secret", "s", flag, &shown]);
        assert_eq!(code, Some(1), "{flag}: stderr: {stderr}");
        assert!(
            stderr.contains(&format!("cannot start: {setting} {shown}: No such file")),
            "{flag}: stderr: {stderr}"
        );
    }
}

#[test]
fn a_data_directory_that_is_a_file_is_named_at_start() {
    let file = missing("a-file");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, "not a directory").expect("write");
    let shown = file.display().to_string();
    // Without --cookie-secret the secret is looked for in the data
    // directory first; with it, the accounts file is the first to fail.
    for args in [
        vec!["--data-dir", shown.as_str()],
        vec!["--data-dir", shown.as_str(), "--cookie-secret", "s"],
    ] {
        let (code, stderr) = refused(&args);
        assert_eq!(code, Some(1), "stderr: {stderr}");
        assert!(
            stderr.contains("cannot start: cannot ") && stderr.contains(&format!("{shown}/")),
            "stderr: {stderr}"
        );
        assert!(stderr.contains("Not a directory"), "stderr: {stderr}");
    }
    let _ = std::fs::remove_dir_all(file.parent().expect("parent"));
}
