//! Password hashing: Argon2id, memory-hard, deliberately slow.
//!
//! Tornado's chat demo of the 3.2 era logged users in through Google
//! OpenID and stored no password; a server with its own accounts must hash
//! them with a slow, memory-hard function so a stolen file is expensive to
//! attack. Parameters are the argon2 crate's defaults, which are OWASP's
//! recommendation for Argon2id: 19 MiB of memory, 2 passes, 1 lane — some
//! tens of milliseconds of CPU per hash.
//!
//! **Never call these on the IOLoop thread**: that would stop every other
//! connection for the duration. [`Accounts`](super::Accounts) runs them
//! through [`IOLoop::run_in_executor`](crate::ioloop::IOLoop::run_in_executor).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// Hash `password` with a fresh random salt; the result is a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) that carries its own
/// parameters, so they can be raised later without breaking old accounts.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| format!("cannot hash a password: {e}"))
}

/// True if `password` matches the PHC string `stored` (constant-time
/// comparison inside the argon2 crate). A malformed `stored` never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), stored)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let stored = hash_password("correct horse").expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &stored));
        assert!(!verify_password("wrong horse", &stored));
        assert!(!verify_password("correct horse", "not a hash"));
        // Salted: the same password hashes differently each time.
        assert_ne!(stored, hash_password("correct horse").expect("hash"));
    }
}
