//! Pure (sans-IO) HTTP building blocks shared by the HTTP server, the client
//! and the web layer. Mirrors Tornado's `httputil.py`.
//!
//! Nothing here touches a socket or reads the clock on its own: callers pass
//! bytes and times in, and get values or typed errors back. No function
//! panics on any input, and memory use is bounded by the size of the input.
//!
//! | file            | what it holds                                                  |
//! |-----------------|----------------------------------------------------------------|
//! | [`headers`]     | [`HTTPHeaders`]; RFC 9110 checks [`is_token`], [`is_field_value`] |
//! | [`url`]         | [`url_escape`], [`url_unescape`], [`parse_query`]               |
//! | [`arguments`]   | [`MultiMap`] and its uses [`Arguments`], [`Files`]              |
//! | [`params`]      | [`parse_header`]: `value; name="param"` header values          |
//! | [`multipart`]   | [`parse_body_arguments`], [`parse_multipart_form_data`], [`HTTPFile`] |
//! | [`cookies`]     | [`parse_cookie`], [`format_set_cookie`] with [`CookieOptions`]  |
//! | [`date`]        | [`format_http_date`], [`parse_http_date`], [`DateCache`]       |
//! | [`mime`]        | [`mime::guess_type`]: content type of a static file            |
//! | [`range`]       | [`range::parse_range`]: one `Range: bytes=` → 200/206/416      |
//! | [`error`]       | [`HTTPInputError`]: malformed input from the peer (→ 400)      |

pub mod arguments;
pub mod cookies;
pub mod date;
pub mod error;
pub mod headers;
pub mod mime;
pub mod multipart;
pub mod params;
pub mod range;
pub mod url;

pub use arguments::{Arguments, Files, MultiMap};
pub use cookies::{format_set_cookie, parse_cookie, CookieOptions, InvalidCookie, SameSite};
pub use date::{format_http_date, parse_http_date, DateCache};
pub use error::HTTPInputError;
pub use headers::{is_field_value, is_tchar, is_token, HTTPHeaders};
pub use multipart::{
    parse_body_arguments, parse_multipart_form_data, HTTPFile, MultipartConfig, MAX_FORM_FIELDS,
};
pub use params::{parse_header, ParsedHeader};
pub use range::{parse_range, ByteRange};
pub use url::{parse_query, url_escape, url_unescape};
