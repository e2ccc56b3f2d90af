//! `HTTPInputError`: malformed input from the peer. Mirrors
//! `tornado.httputil.HTTPInputError`; the HTTP layer answers it with 400.

use std::fmt;

/// The peer sent something that cannot be parsed (a malformed body,
/// a broken multipart message, ...). The message is readable and safe to
/// log; it never contains the offending bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HTTPInputError {
    message: String,
}

impl HTTPInputError {
    /// An error with a human-readable `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HTTPInputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HTTPInputError {}
