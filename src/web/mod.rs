//! The web layer: Tornado's `tornado/web.py`, callback style.
//!
//! | file                | what it holds                                          |
//! |---------------------|--------------------------------------------------------|
//! | [`application`]     | `Application`, settings, routes, the request lifecycle |
//! | [`handler`]         | `RequestHandler` trait, `HTTPError`, callback style    |
//! | [`context`]         | `Ctx`: arguments, cookies, write/finish, render         |
//! | [`routing`]         | path patterns `/room/{name}`, `/static/{*path}`        |
//! | `transform`         | ETag/304 and gzip at finish                             |
//! | `recycle`           | finished responses' buffers, reused by the next ones    |
//! | [`template`]        | minijinja templates from `templates/`                   |
//! | [`static_files`]    | `StaticFileHandler`: ETag, ranges, versioned URLs      |
//! | [`bundle`]          | templates and static files built into the program      |
//! | [`signed`]          | signed values for secure cookies (v2, HMAC-SHA256)     |
//! | [`xsrf`]            | masked XSRF tokens (v2) and their comparison           |
pub mod application;
pub mod bundle;
pub mod context;
pub mod handler;
mod recycle;
pub mod routing;
pub mod signed;
pub mod static_files;
pub mod template;
mod transform;
pub mod xsrf;

pub use application::{Application, Route, Settings};
pub use bundle::{AssetSource, Bundle};
pub use context::{Ctx, ResponseHandle};
pub use handler::{HTTPError, HandlerResult, RequestHandler};
pub(crate) use recycle::release_all as release_spare_buffers;

/// Wrap an I/O error so its message says what was being done to which
/// path (`static_path /srv/x: No such file or directory`, `cannot create
/// /data: ...`): start-up fails on these, and the error alone does not
/// tell an operator which of the paths to fix. The kind is kept. Shared
/// by [`Application::new`] and the apps' store.
pub(crate) fn naming<'a>(
    doing: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> std::io::Error + 'a {
    move |e| std::io::Error::new(e.kind(), format!("{doing} {}: {e}", path.display()))
}
