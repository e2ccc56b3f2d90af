//! Accounts: register, log in, log out — names unique case-insensitively,
//! passwords hashed with Argon2id on the worker pool, the signed `user`
//! cookie as the session.
//!
//! Tornado's chat demo had no accounts of its own (3.2 used Google OpenID,
//! later versions none); this is the small account system a Tornado app
//! would write around `set_secure_cookie("user", name)` and
//! `@tornado.web.authenticated`. The one reactor lesson in it: the
//! password hash takes tens of milliseconds of CPU and 19 MiB of memory,
//! so it runs on the worker pool, and the request waits for it the
//! callback way — the handler keeps a clone of its `Ctx` and answers when
//! the result comes back to the loop. It goes in ahead of queued jobs
//! ([`IOLoop::run_in_executor_first`]): the pool is shared with the `/rate`
//! demo's blocking fetches, which hold a thread for up to 11 s each, and a
//! login queued behind them waited 30 s.
//!
//! ```text
//!  POST /auth/login ─▶ Login::post ─▶ Accounts::login ──run_in_executor_first──▶ worker: verify
//!        (handler returns; the response stays open)                                  │
//!  302 + Set-Cookie ◀── finish_auth(cx, Ok(name)) ◀── done, on the loop ◀────────────┘
//! ```
//!
//! | file            | what it holds                                  |
//! |-----------------|------------------------------------------------|
//! | this file       | [`Accounts`]: the table, registration, login   |
//! | [`password`]    | Argon2id hash and verify (worker-pool only)    |
//! | [`handlers`]    | `/auth/register`, `/auth/login`, `/auth/logout` |

pub mod handlers;
pub mod password;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::rc::Rc;

use super::site::{write_metric, Metrics};
use super::store::{self, AppendLog};
use crate::ioloop::IOLoop;
use crate::web::{Ctx, HTTPError, HandlerResult};

/// Longest user name, in characters.
pub const MAX_NAME_LEN: usize = 32;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest accepted password, in bytes (bounds the hashing input).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Most accounts kept; registration is refused beyond (bounded memory).
pub const MAX_ACCOUNTS: usize = 100_000;
/// Most password hashes queued or running on the worker pool at once.
/// Each holds 19 MiB while it runs; beyond this the server answers 503
/// instead of queueing without end.
pub const MAX_PENDING_HASHES: usize = 64;
/// File of accounts in the data directory (one JSON object per line).
pub const ACCOUNTS_FILE: &str = "accounts.jsonl";

/// Why a registration or login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountError {
    /// The name is not 1-32 of letters, digits, `_`, `-`, `.`.
    BadName,
    /// The password is too short or too long.
    BadPassword,
    /// Someone has that name (compared case-insensitively).
    NameTaken,
    /// Unknown name or wrong password (the same answer for both).
    WrongPassword,
    /// [`MAX_ACCOUNTS`] reached.
    Full,
    /// [`MAX_PENDING_HASHES`] reached.
    Busy,
    /// Hashing failed (no randomness for the salt).
    Internal,
}

impl AccountError {
    /// The HTTP status the form is shown again with.
    pub fn status(self) -> u16 {
        match self {
            AccountError::BadName | AccountError::BadPassword => 400,
            AccountError::WrongPassword => 403,
            AccountError::NameTaken => 409,
            AccountError::Full | AccountError::Busy => 503,
            AccountError::Internal => 500,
        }
    }

    /// What the user is told.
    pub fn message(self) -> &'static str {
        match self {
            AccountError::BadName => {
                "Names are 1 to 32 characters: letters, digits, '_', '-' or '.'."
            }
            AccountError::BadPassword => "Passwords are 8 to 1024 characters (at most 1024 bytes).",
            AccountError::NameTaken => "That name is taken.",
            AccountError::WrongPassword => "Wrong name or password.",
            AccountError::Full => "This server accepts no more accounts.",
            AccountError::Busy => "The server is busy; try again in a moment.",
            AccountError::Internal => "Something went wrong; try again.",
        }
    }
}

/// One account.
struct Account {
    /// The name as registered (its case is kept for display).
    name: String,
    /// Argon2id PHC string.
    hash: String,
}

/// The accounts of this server. Cheap to clone: every clone is the same
/// table. Belongs to the loop's thread.
#[derive(Clone)]
pub struct Accounts {
    inner: Rc<Inner>,
}

struct Inner {
    /// Accounts by lower-cased name: the key makes names unique
    /// case-insensitively.
    users: RefCell<HashMap<String, Account>>,
    /// Lower-cased names whose registration is hashing right now, so two
    /// concurrent registrations of one name cannot both succeed.
    reserved: RefCell<HashSet<String>>,
    /// Hashing jobs queued or running on the worker pool.
    hashing: Cell<usize>,
    /// Where new accounts are appended; `None` keeps them in memory only.
    log: Option<AppendLog>,
}

impl Accounts {
    /// Accounts kept in memory only.
    pub fn in_memory() -> Accounts {
        Accounts::with_log(HashMap::new(), None)
    }

    /// Accounts kept in `data_dir/accounts.jsonl` (read now, appended to
    /// later by a writer thread), or in memory if `data_dir` is `None`.
    pub fn open(data_dir: Option<&Path>) -> io::Result<Accounts> {
        let Some(dir) = data_dir else {
            return Ok(Accounts::in_memory());
        };
        let path = dir.join(ACCOUNTS_FILE);
        let mut users = HashMap::new();
        store::for_each_line(&path, |line| {
            let record: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => return log::warn!("{}: skipping a bad line: {e}", path.display()),
            };
            let (Some(name), Some(hash)) = (record["name"].as_str(), record["hash"].as_str())
            else {
                return log::warn!("{}: skipping a line without name/hash", path.display());
            };
            if valid_name(name) && users.len() < MAX_ACCOUNTS {
                users
                    .entry(name.to_ascii_lowercase())
                    .or_insert_with(|| Account {
                        name: name.to_string(),
                        hash: hash.to_string(),
                    });
            }
        })?;
        log::info!("{} accounts loaded from {}", users.len(), path.display());
        Ok(Accounts::with_log(users, Some(AppendLog::open(&path)?)))
    }

    fn with_log(users: HashMap<String, Account>, log: Option<AppendLog>) -> Accounts {
        Accounts {
            inner: Rc::new(Inner {
                users: RefCell::new(users),
                reserved: RefCell::new(HashSet::new()),
                hashing: Cell::new(0),
                log,
            }),
        }
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.inner.users.borrow().len()
    }

    /// True if there are no accounts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if an account has this name (case-insensitively).
    ///
    /// Every chat request asks this of its signed-in user, and the name in
    /// the cookie is usually lowercase already: then it is looked up as is,
    /// without a lowercased copy.
    pub fn exists(&self, name: &str) -> bool {
        let users = self.inner.users.borrow();
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            users.contains_key(&name.to_ascii_lowercase())
        } else {
            users.contains_key(name)
        }
    }

    /// Password hashes queued or running on the worker pool.
    pub fn pending_hashes(&self) -> usize {
        self.inner.hashing.get()
    }

    /// Create the account `name` with `password`. The hash runs on the
    /// worker pool; `done` is then called on the loop with the name, or why
    /// it failed. An `Err` here means the request was refused at once and
    /// `done` will never be called.
    pub fn register(
        &self,
        name: &str,
        password: &str,
        done: impl FnOnce(Result<String, AccountError>) + 'static,
    ) -> Result<(), AccountError> {
        if !valid_name(name) {
            return Err(AccountError::BadName);
        }
        if password.chars().count() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
            return Err(AccountError::BadPassword);
        }
        let key = name.to_ascii_lowercase();
        if self.inner.users.borrow().contains_key(&key)
            || self.inner.reserved.borrow().contains(&key)
        {
            return Err(AccountError::NameTaken);
        }
        if self.len() + self.inner.reserved.borrow().len() >= MAX_ACCOUNTS {
            return Err(AccountError::Full);
        }
        let job = self.start_job(Some(key.clone()))?;
        let password = password.to_string();
        let name = name.to_string();
        let accounts = self.clone();
        IOLoop::current().run_in_executor_first(
            move || password::hash_password(&password),
            move |hashed| {
                drop(job); // frees the slot and the reserved name
                done(match hashed {
                    Ok(hash) => accounts.insert(&key, &name, hash).map(|()| name),
                    Err(e) => {
                        log::error!("{e}");
                        Err(AccountError::Internal)
                    }
                });
            },
        );
        Ok(())
    }

    /// Check `password` for `name`. The verification runs on the worker
    /// pool; `done` gets the name as registered (its case), or
    /// [`AccountError::WrongPassword`]. An unknown name is refused at once,
    /// without hashing: registration already tells whether a name exists,
    /// so equalizing the timing would hide nothing.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        done: impl FnOnce(Result<String, AccountError>) + 'static,
    ) -> Result<(), AccountError> {
        let (canonical, stored) = match self.inner.users.borrow().get(&name.to_ascii_lowercase()) {
            Some(account) => (account.name.clone(), account.hash.clone()),
            None => return Err(AccountError::WrongPassword),
        };
        if password.len() > MAX_PASSWORD_LEN {
            return Err(AccountError::WrongPassword);
        }
        let job = self.start_job(None)?;
        let password = password.to_string();
        IOLoop::current().run_in_executor_first(
            move || password::verify_password(&password, &stored),
            move |ok| {
                drop(job);
                done(if ok {
                    Ok(canonical)
                } else {
                    Err(AccountError::WrongPassword)
                });
            },
        );
        Ok(())
    }

    /// For a `prepare` of a route that needs a user: refuse a signed cookie
    /// whose account does not exist (a memory-only server restarted with the
    /// same `--cookie-secret`). Pages go to the login page, APIs get 403.
    pub fn require_known_user(&self, cx: &Ctx, api: bool) -> HandlerResult {
        match cx.current_user() {
            Some(name) if self.exists(name) => Ok(()),
            _ if api => Err(HTTPError::forbidden("login required")),
            _ => {
                cx.clear_cookie("user");
                cx.redirect_to_login();
                Ok(())
            }
        }
    }

    /// Add this table's gauges to `/metrics`.
    pub fn register_metrics(&self, metrics: &Metrics) {
        let accounts = self.clone();
        metrics.register(move |out| {
            write_metric(
                out,
                "squall_accounts",
                "gauge",
                "Registered accounts.",
                accounts.len(),
            );
            write_metric(
                out,
                "squall_password_hashes_pending",
                "gauge",
                "Password hashes queued or running on the worker pool.",
                accounts.pending_hashes(),
            );
        });
    }

    /// Take a worker-pool slot (and reserve `name`) until the job drops.
    fn start_job(&self, reserve: Option<String>) -> Result<HashJob, AccountError> {
        if self.inner.hashing.get() >= MAX_PENDING_HASHES {
            return Err(AccountError::Busy);
        }
        self.inner.hashing.set(self.inner.hashing.get() + 1);
        if let Some(name) = &reserve {
            self.inner.reserved.borrow_mut().insert(name.clone());
        }
        Ok(HashJob {
            accounts: self.clone(),
            reserved: reserve,
        })
    }

    /// Add the account, saved first: one the log cannot take is refused
    /// ([`AccountError::Busy`]), not kept in memory to vanish at restart.
    fn insert(&self, key: &str, name: &str, hash: String) -> Result<(), AccountError> {
        if let Some(log) = &self.inner.log {
            let record = serde_json::json!({"name": name, "hash": hash});
            if log.append(record.to_string()).is_err() {
                return Err(AccountError::Busy);
            }
        }
        self.inner.users.borrow_mut().insert(
            key.to_string(),
            Account {
                name: name.to_string(),
                hash,
            },
        );
        Ok(())
    }
}

/// One hashing job in flight. Dropping it gives the slot back and frees the
/// reserved name — also when the job panicked and the executor dropped its
/// callback uncalled, so nothing leaks.
struct HashJob {
    /// The table whose counters this job holds.
    accounts: Accounts,
    /// Lower-cased name reserved by a registration.
    reserved: Option<String>,
}

impl Drop for HashJob {
    fn drop(&mut self) {
        let inner = &self.accounts.inner;
        inner.hashing.set(inner.hashing.get().saturating_sub(1));
        if let Some(name) = self.reserved.take() {
            inner.reserved.borrow_mut().remove(&name);
        }
    }
}

/// A user name: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `_`, `-`, `.`.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `next` if it is a local path, else `/` — the open-redirect rule of
/// Tornado's demos (PR #3551): it must start with `/`, not `//` (another
/// host, scheme-relative), contain no `\` (browsers read `/\` as `//`) and
/// no control characters or spaces.
pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace());
    if local {
        next
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("alice"));
        assert!(valid_name("A.b-c_9"));
        assert!(valid_name(&"x".repeat(32)));
        assert!(!valid_name(""));
        assert!(!valid_name(&"x".repeat(33)));
        assert!(!valid_name("a b"));
        assert!(!valid_name("<script>"));
        assert!(!valid_name("é"));
    }

    #[test]
    fn next_must_be_local() {
        assert_eq!(safe_next("/room/x?a=1"), "/room/x?a=1");
        assert_eq!(safe_next("/"), "/");
        for bad in [
            "",
            "//evil.com",
            "/\\evil.com",
            "http://evil.com",
            "https:/x",
            "javascript:alert(1)",
            "evil.com",
            "/a\r\nSet-Cookie: x=1",
            "/ x",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn exists_ignores_case_with_or_without_a_lowercased_copy() {
        let users = HashMap::from([(
            "alice".to_string(),
            Account {
                name: "Alice".to_string(),
                hash: String::new(),
            },
        )]);
        let accounts = Accounts::with_log(users, None);
        for name in ["alice", "Alice", "ALICE", "aLiCe"] {
            assert!(accounts.exists(name), "{name}");
        }
        for name in ["bob", "alic", "alice ", ""] {
            assert!(!accounts.exists(name), "{name:?}");
        }
    }

    #[test]
    fn refusals_that_need_no_hashing() {
        let accounts = Accounts::in_memory();
        let never = |_: Result<String, AccountError>| panic!("done must not run");
        assert_eq!(
            accounts.register("no spaces", "password1", never),
            Err(AccountError::BadName)
        );
        assert_eq!(
            accounts.register("bob", "short", never),
            Err(AccountError::BadPassword)
        );
        assert_eq!(
            accounts.login("nobody", "password1", never),
            Err(AccountError::WrongPassword)
        );
    }
}
