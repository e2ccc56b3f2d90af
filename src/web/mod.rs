//! The web layer: Tornado's `web.py`. For now only its pure pieces, which
//! `RequestHandler` will build on:
//!
//! | file         | what it holds                                               |
//! |--------------|-------------------------------------------------------------|
//! | [`signed`]   | signed values for secure cookies (v2 format, HMAC-SHA256)   |
//! | [`xsrf`]     | masked XSRF tokens (v2 format) and their comparison         |

pub mod signed;
pub mod xsrf;
