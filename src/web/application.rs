//! [`Application`]: routes, settings, and the request lifecycle.
//!
//! Mirrors Tornado's `tornado/web.py` `Application` and
//! `RequestHandler._execute`. For each request:
//!
//! ```text
//!  match route ──no──▶ 404
//!      │
//!  method known? ──no──▶ 405 (every 405 gets `Allow`, from the
//!      │                      handler's `allowed_methods()`)
//!      │
//!  POST/PUT/PATCH/DELETE and xsrf_cookies: _xsrf matches cookie? ──no──▶ 403
//!      │
//!  route needs a user: current_user? ──no──▶ page: 302 to login_url?next=…
//!      │                                      API:  403
//!  prepare() ──▶ get()/post()/…
//!      │
//!  Err(e) ──▶ error page      Ok & finished ──▶ done
//!  Ok & not finished & no clone kept ──▶ finish() now (Tornado's auto-finish)
//!  Ok & a clone of the Ctx kept ──▶ the response stays open (callback style)
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::bundle::{AssetSource, Bundle};
use super::context::Ctx;
use super::handler::{HTTPError, HandlerResult, RequestHandler};
use super::routing::{BuildPathHasher, PathPattern};
use super::static_files::{StaticFileHandler, StaticFiles};
use super::template::Templates;
use crate::http::{HTTPResponder, HTTPServer, HTTPServerOptions, HTTPServerRequest};

/// Application settings (Tornado's `Application(**settings)`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Key for signed cookies. Keep it secret and stable: changing it logs
    /// everybody out.
    pub cookie_secret: Vec<u8>,
    /// Check XSRF tokens on POST/PUT/PATCH/DELETE.
    pub xsrf_cookies: bool,
    /// Where `authenticated` routes send visitors without a user.
    pub login_url: String,
    /// Name of the signed cookie that holds the user name.
    pub user_cookie: String,
    /// Oldest accepted signed cookie, in days (Tornado: 31).
    pub cookie_max_age_days: u32,
    /// Directory of templates, if any.
    pub template_path: Option<PathBuf>,
    /// Templates built into the program, used when `template_path` is
    /// `None` (see [`bundle`](super::bundle)).
    pub template_bundle: Option<Bundle>,
    /// Directory served under `static_url_prefix`, if any.
    pub static_path: Option<PathBuf>,
    /// Static files built into the program, served like `static_path`
    /// when it is `None`.
    pub static_bundle: Option<Bundle>,
    /// URL prefix of static files.
    pub static_url_prefix: String,
    /// gzip text responses for clients that accept it.
    pub compress_response: bool,
    /// Re-read templates and static files on every request.
    pub debug: bool,
    // The three `websocket_*` settings are read by the WebSocket layer
    // (`WebSocketOptions::from_settings`, at each handshake); this layer
    // only carries them, so it imports nothing from that higher one.
    /// Send every server-side WebSocket a Ping this often (`None`: never,
    /// Tornado's default). Tornado's `websocket_ping_interval`: each
    /// `WebSocketRoute` hands it to its handler's `options`, which keeps it
    /// unless it says otherwise.
    pub websocket_ping_interval: Option<Duration>,
    /// After a Ping, close (1001) if the peer sent nothing within this time
    /// (`None`: the ping interval, as in Tornado). Tornado's
    /// `websocket_ping_timeout`.
    pub websocket_ping_timeout: Option<Duration>,
    /// Largest WebSocket message accepted, summed over its fragments
    /// (`None`: the WebSocket layer's default, 1 MiB; Tornado's
    /// `websocket_max_message_size` defaults to 10 MiB).
    pub websocket_max_message_size: Option<usize>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            cookie_secret: Vec::new(),
            xsrf_cookies: true,
            login_url: "/auth/login".to_string(),
            user_cookie: "user".to_string(),
            cookie_max_age_days: 31,
            template_path: None,
            template_bundle: None,
            static_path: None,
            static_bundle: None,
            static_url_prefix: "/static/".to_string(),
            compress_response: true,
            debug: false,
            websocket_ping_interval: None,
            websocket_ping_timeout: None,
            websocket_max_message_size: None,
        }
    }
}

/// One route: a pattern, its handler, and how it is guarded.
pub struct Route {
    /// What paths it matches.
    pattern: PathPattern,
    /// Who answers.
    handler: Rc<dyn RequestHandler>,
    /// Needs a logged-in user.
    authenticated: bool,
    /// An API: JSON errors, 403 instead of a login redirect.
    api: bool,
    /// Check XSRF on unsafe methods (when the application does).
    xsrf: bool,
}

impl Route {
    /// Require a logged-in user (Tornado's `@authenticated`): pages
    /// redirect to the login URL, API routes answer 403.
    pub fn authenticated(&mut self) -> &mut Route {
        self.authenticated = true;
        self
    }

    /// Mark as an API: errors are JSON.
    pub fn api(&mut self) -> &mut Route {
        self.api = true;
        self
    }

    /// Skip the XSRF check on this route (for non-browser endpoints).
    pub fn no_xsrf(&mut self) -> &mut Route {
        self.xsrf = false;
        self
    }
}

/// What every request of an application shares.
pub(crate) struct AppInner {
    /// The settings.
    pub(crate) settings: Settings,
    /// Routes, tried in order; the first match wins.
    routes: Vec<Route>,
    /// Routes without captures, by their path: the first route added for a
    /// path (a later duplicate could never win).
    exact: HashMap<String, usize, BuildPathHasher>,
    /// Indexes of the routes with captures, ascending. Only those before
    /// the exact match (if any) can take precedence over it, so a lookup
    /// is one hash plus the few pattern routes in front.
    patterned: Vec<usize>,
    /// Loaded templates, if `template_path` is set.
    pub(crate) templates: Option<Templates>,
    /// The static directory, if `static_path` is set.
    static_files: Option<Arc<StaticFiles>>,
}

impl AppInner {
    /// The `Allow` header of a 405 from route `index`, which RFC 9110
    /// §15.5.6 requires: "The origin server MUST generate an Allow header
    /// field in a 405 response containing a list of the target resource's
    /// currently supported methods." The list is the handler's
    /// [`allowed_methods`](RequestHandler::allowed_methods) without the
    /// method just refused.
    pub(crate) fn allow_header(&self, index: usize, refused: &str) -> Option<String> {
        let route = self.routes.get(index)?;
        let allow: Vec<&str> = route
            .handler
            .allowed_methods()
            .iter()
            .copied()
            .filter(|m| *m != refused)
            .collect();
        Some(allow.join(", "))
    }

    /// The first route (in the order added) that matches `path`, with its
    /// captures.
    fn find_route(&self, path: &str) -> Option<(usize, Vec<(String, String)>)> {
        let exact = self.exact.get(path).copied();
        for &index in &self.patterned {
            if exact.is_some_and(|e| e < index) {
                break;
            }
            if let Some(args) = self.routes[index].pattern.matches(path) {
                return Some((index, args));
            }
        }
        exact.map(|index| (index, Vec::new()))
    }

    pub(crate) fn static_url(&self, path: &str) -> String {
        let prefix = &self.settings.static_url_prefix;
        match &self.static_files {
            Some(files) => files.static_url(prefix, path),
            None => format!("{prefix}{path}"),
        }
    }
}

/// A web application: routes and settings. Build it, then serve it with
/// [`Application::listen`] or [`Application::into_callback`].
pub struct Application {
    inner: AppInner,
}

impl Application {
    /// An application with `settings`. With a `static_path` (or a
    /// `static_bundle`), it serves `/static/{*path}`, `/favicon.ico` and
    /// `/robots.txt` from it.
    ///
    /// # Errors
    /// If `static_path` or `template_path` is not a directory that can be
    /// read; the message names the setting and the path. (Tornado finds a
    /// missing template directory only when a page is rendered: one
    /// mistyped path would turn every page into a 500 while the server
    /// looks healthy.)
    pub fn new(settings: Settings) -> io::Result<Application> {
        let static_files = match (&settings.static_path, settings.static_bundle) {
            (Some(dir), _) => Some(Arc::new(
                StaticFiles::new(dir, settings.debug).map_err(super::naming("static_path", dir))?,
            )),
            (None, Some(files)) => Some(Arc::new(StaticFiles::bundled(files))),
            (None, None) => None,
        };
        let template_source = match (&settings.template_path, settings.template_bundle) {
            (Some(dir), _) => {
                std::fs::read_dir(dir).map_err(super::naming("template_path", dir))?;
                Some(AssetSource::Dir(dir.clone()))
            }
            (None, Some(files)) => Some(AssetSource::Bundled(files)),
            (None, None) => None,
        };
        let templates = template_source.map(|source| {
            Templates::new(
                source,
                settings.debug,
                static_files.clone(),
                settings.static_url_prefix.clone(),
            )
        });
        let mut app = Application {
            inner: AppInner {
                settings,
                routes: Vec::new(),
                exact: HashMap::default(),
                patterned: Vec::new(),
                templates,
                static_files: static_files.clone(),
            },
        };
        if let Some(files) = static_files {
            let prefix = app.inner.settings.static_url_prefix.clone();
            app.route(
                &format!("{prefix}{{*path}}"),
                StaticFileHandler::new(Arc::clone(&files)),
            );
            app.route(
                "/favicon.ico",
                StaticFileHandler::fixed(Arc::clone(&files), "favicon.ico"),
            );
            app.route("/robots.txt", StaticFileHandler::fixed(files, "robots.txt"));
        }
        Ok(app)
    }

    /// Add a route. Routes are tried in the order added.
    pub fn route(&mut self, pattern: &str, handler: impl RequestHandler) -> &mut Route {
        let pattern = PathPattern::new(pattern);
        let last = self.inner.routes.len();
        match pattern.literal() {
            Some(path) => {
                self.inner.exact.entry(path.to_string()).or_insert(last);
            }
            None => self.inner.patterned.push(last),
        }
        self.inner.routes.push(Route {
            pattern,
            handler: Rc::new(handler),
            authenticated: false,
            api: false,
            xsrf: true,
        });
        &mut self.inner.routes[last]
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The function an [`HTTPServer`] calls for each request.
    pub fn into_callback(self) -> impl Fn(HTTPServerRequest, HTTPResponder) + 'static {
        let app = Rc::new(self.inner);
        move |request, responder| execute(&app, request, responder)
    }

    /// Serve on `addr` with `options`; returns the server and bound address.
    pub fn listen(
        self,
        addr: SocketAddr,
        options: HTTPServerOptions,
    ) -> io::Result<(HTTPServer, SocketAddr)> {
        let server = HTTPServer::new(options, self.into_callback());
        let bound = server.listen(addr)?;
        Ok((server, bound))
    }
}

/// Run one request through the lifecycle in the module docs.
fn execute(app: &Rc<AppInner>, request: HTTPServerRequest, responder: HTTPResponder) {
    let found = app.find_route(request.path());
    let Some((index, path_args)) = found else {
        let api = request.path().starts_with("/a/");
        let cx = Ctx::new(Rc::clone(app), request, responder, None, Vec::new(), api);
        cx.send_error(404, "Not Found");
        return;
    };
    let route = &app.routes[index];
    let cx = Ctx::new(
        Rc::clone(app),
        request,
        responder,
        Some(index),
        path_args,
        route.api,
    );
    let result = run_handler(app, route, &cx);
    match result {
        // A 405 gets its `Allow` in `Ctx::send_error_with_headers`.
        Err(e) => cx.send_http_error(&e),
        Ok(()) => {
            // Nobody kept a clone or a response handle: the handler is done
            // (Tornado's auto-finish).
            if !cx.finished() && Rc::strong_count(&cx.inner) == 1 && cx.inner.response_unshared() {
                cx.finish();
            }
        }
    }
}

fn run_handler(app: &AppInner, route: &Route, cx: &Ctx) -> HandlerResult {
    let method = cx.request().method();
    let safe = matches!(method, "GET" | "HEAD" | "OPTIONS");
    // RFC 9110 §9.1: "An origin server that receives a request method that
    // is unrecognized or not implemented SHOULD respond with the 501 (Not
    // Implemented) status code." squall answers 405 like Tornado (its
    // `SUPPORTED_METHODS` check), a conscious choice: the answer is the
    // same for every method the route does not serve, and `execute` adds
    // the `Allow` header that tells the client what it does serve.
    if !matches!(
        method,
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
    ) {
        return Err(HTTPError::new(
            405,
            format!("method {method} not supported"),
        ));
    }
    if !safe && app.settings.xsrf_cookies && route.xsrf {
        cx.check_xsrf_cookie()?;
    }
    if route.authenticated && cx.current_user().is_none() {
        if matches!(method, "GET" | "HEAD") && !route.api {
            cx.redirect_to_login();
            return Ok(());
        }
        return Err(HTTPError::forbidden("login required"));
    }
    let handler = &route.handler;
    handler.prepare(cx)?;
    if cx.finished() {
        return Ok(());
    }
    match method {
        "GET" => handler.get(cx),
        "HEAD" => handler.head(cx),
        "POST" => handler.post(cx),
        "PUT" => handler.put(cx),
        "PATCH" => handler.patch(cx),
        "DELETE" => handler.delete(cx),
        _ => handler.options(cx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nobody;
    impl RequestHandler for Nobody {}

    fn settings() -> Settings {
        Settings {
            cookie_secret: b"test".to_vec(),
            ..Settings::default()
        }
    }

    #[test]
    fn the_first_route_added_wins_whether_exact_or_patterned() {
        let mut app = Application::new(settings()).expect("no static path");
        app.route("/a/{x}", Nobody); // 0
        app.route("/a/b", Nobody); // 1: shadowed by 0
        app.route("/c", Nobody); // 2
        app.route("/{y}", Nobody); // 3: only for what 2 does not take
        app.route("/c", Nobody); // 4: duplicate, never wins
        app.route("/d/{*rest}", Nobody); // 5
        let inner = &app.inner;
        let index = |path: &str| inner.find_route(path).map(|(i, _)| i);
        assert_eq!(index("/a/b"), Some(0));
        assert_eq!(
            inner.find_route("/a/b").map(|(_, a)| a[0].1.clone()),
            Some("b".into())
        );
        assert_eq!(index("/c"), Some(2));
        assert_eq!(index("/e"), Some(3));
        assert_eq!(index("/d/"), Some(5));
        assert_eq!(index("/nothing/here"), None);
    }
}
