//! Pure (sans-IO) HTTP building blocks shared by the HTTP server, the client
//! and the web layer. Mirrors Tornado's `httputil.py`.
//!
//! Nothing here touches a socket or the clock on its own: callers pass bytes
//! and times in, and get values or typed errors back. No function panics on
//! any input, and memory use is bounded by the size of the input.
//!
//! | file          | what it holds                                        |
//! |---------------|------------------------------------------------------|
//! | [`headers`]   | [`HTTPHeaders`], [`is_token`], [`is_field_value`]    |

pub mod headers;

pub use headers::{is_field_value, is_tchar, is_token, HTTPHeaders};
