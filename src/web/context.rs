//! [`Ctx`]: one request in progress — what `self` is inside a Tornado
//! `RequestHandler.get()`: arguments, cookies, the response being built, and
//! `finish`.
//!
//! Mirrors the per-request half of Tornado's `tornado/web.py`
//! `RequestHandler`. A `Ctx` is a cheap `Rc` handle; see
//! [`handler`](super::handler) for the rule that makes callback-style
//! handlers work: while any clone is alive the response stays open.
//!
//! Invariant: no method of `Ctx` calls application code. `finish` hands the
//! bytes to the HTTP layer, which queues them or writes them to the socket
//! and calls nobody back; so a `Ctx` may be finished from anywhere — a
//! timer, a waiter list being walked, another request's handler — without
//! re-entrancy.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use super::application::AppInner;
use super::handler::HTTPError;
use crate::escape::xhtml_escape;
use crate::http::{reason_phrase, HTTPResponder, HTTPServerRequest};
use crate::httputil::{
    format_set_cookie, parse_body_arguments, parse_cookie, url_escape, Arguments, CookieOptions,
    Files, HTTPHeaders,
};

/// The response under construction.
struct Response {
    /// Hands bytes to the connection; `None` once finished.
    responder: Option<HTTPResponder>,
    /// Status to send.
    status: u16,
    /// Headers to send.
    headers: HTTPHeaders,
    /// Body written and not yet flushed.
    buffer: Vec<u8>,
    /// Headers already went out (after `flush`).
    headers_flushed: bool,
    /// `finish` ran (or the response was otherwise completed).
    finished: bool,
    /// The `Content-Type` sent beside `headers` when they go out: Tornado's
    /// default (`text/html; charset=UTF-8`), JSON after `write_json` /
    /// `finish_json_bytes`, or a well-known type the application set
    /// (`WELL_KNOWN_CONTENT_TYPES`); `None` once it sets another, adds or
    /// clears one (then `headers` decides). Kept out of the map so a
    /// response that sets no other header never builds one (a long-poll
    /// fan-out answers thousands of waiters with no map at all).
    ///
    /// Invariant: `Some` only while `headers` has no `Content-Type`.
    implied_type: Option<&'static str>,
}

/// Tornado's default `Content-Type` (`RequestHandler.clear`).
const DEFAULT_CONTENT_TYPE: &str = "text/html; charset=UTF-8";

/// The `Content-Type` of `write_json` and `finish_json_bytes`.
const JSON_CONTENT_TYPE: &str = "application/json; charset=UTF-8";

/// Values of `Content-Type` that `set_header` keeps as an implied type
/// rather than in a header map: the ones handlers set most (plain text,
/// HTML, JSON, each with Tornado's spelling of the charset). Each is a
/// valid field value, so the responder need not check it.
const WELL_KNOWN_CONTENT_TYPES: [&str; 3] = [
    "text/plain; charset=UTF-8",
    DEFAULT_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
];

/// `value` as one of [`WELL_KNOWN_CONTENT_TYPES`], if it is one (exact
/// spelling: anything else goes to the map as written).
fn well_known_content_type(value: &str) -> Option<&'static str> {
    WELL_KNOWN_CONTENT_TYPES
        .into_iter()
        .find(|known| *known == value)
}

/// Is `name` `Content-Type`, in any case?
fn is_content_type(name: &str) -> bool {
    // Exact spelling first: the usual case, and a plain compare.
    name == "Content-Type" || name.eq_ignore_ascii_case("Content-Type")
}

impl Response {
    /// A fresh 200 response with nothing set; `None` makes an inert one
    /// (nothing to answer through).
    fn new(responder: Option<HTTPResponder>) -> Response {
        Response {
            responder,
            status: 200,
            headers: HTTPHeaders::new(),
            buffer: Vec::new(),
            headers_flushed: false,
            finished: false,
            implied_type: Some(DEFAULT_CONTENT_TYPE),
        }
    }

    /// Make `content_type` the response's type, replacing any the
    /// application set (as `set_header` would), without building a map.
    fn imply_type(&mut self, content_type: &'static str) {
        if !self.headers.is_unallocated() {
            self.headers.remove("Content-Type");
        }
        self.implied_type = Some(content_type);
    }

    /// Send the head through `responder` (status, `headers`, and the
    /// implied `Content-Type`, if any).
    fn send_head(&self, responder: &mut HTTPResponder, status: u16, chunk: &[u8], finishing: bool) {
        responder.write_headers_typed(status, &self.headers, self.implied_type, chunk, finishing);
    }

    /// The headers, to change: a spare map from an earlier response on the
    /// first change (see [`super::recycle`]).
    fn headers_mut(&mut self) -> &mut HTTPHeaders {
        if self.headers.is_unallocated() {
            self.headers = super::recycle::take_headers();
        }
        &mut self.headers
    }

    /// The body buffer, to append to: a spare one on the first write.
    fn buffer_mut(&mut self) -> &mut Vec<u8> {
        if self.buffer.capacity() == 0 {
            self.buffer = super::recycle::take_body();
        }
        &mut self.buffer
    }

    /// Note a header change by the application.
    fn touched(&mut self, name: &str) {
        if is_content_type(name) {
            self.implied_type = None;
        }
    }
}

/// What finishing a response needs, shared by the [`Ctx`] and every
/// [`ResponseHandle`]. It lives inside the request's own allocation until a
/// handle (or a close callback) needs it apart; then it moves into an `Rc`
/// of its own, so that a response waiting for an event (a parked
/// long-poll) holds only this: the request, its parsed arguments and
/// cookies are freed when the handler returns.
pub(crate) struct Shared {
    /// The response.
    response: RefCell<Response>,
    /// Run if the client disconnects before the response is finished.
    close_callbacks: RefCell<Vec<Box<dyn FnOnce()>>>,
}

/// State of one request. Fields set once are in `OnceCell`s: parsed
/// lazily, on first use, because most handlers read few of them.
pub(crate) struct CtxInner {
    /// The application (settings, templates, static files).
    pub(crate) app: Rc<AppInner>,
    /// The request.
    request: HTTPServerRequest,
    /// The index of the route that matched, whose handler names the
    /// methods a 405 lists in `Allow`; `None` for the 404 of a path no
    /// route matches.
    route: Option<usize>,
    /// Captures of the route pattern, in order.
    path_args: Vec<(String, String)>,
    /// Route serves an API: errors are JSON, unauthenticated is 403.
    pub(crate) api: bool,
    /// The response, kept in this allocation while only the `Ctx` uses it
    /// (the usual, synchronous handler): one allocation per request, not
    /// two. See [`CtxInner::shared`].
    local: Shared,
    /// The response once something must hold it apart from the request (a
    /// [`ResponseHandle`], or a close callback's weak reference): `local`'s
    /// contents move here on first need, and `local` is left inert.
    shared_rc: OnceCell<Rc<Shared>>,
    /// Query-string arguments.
    query_args: OnceCell<Arguments>,
    /// Body arguments and files, or why the body could not be parsed.
    body_args: OnceCell<Result<(Arguments, Files), String>>,
    /// Request cookies.
    cookies: OnceCell<HashMap<String, String>>,
    /// The logged-in user's name, from the signed `user` cookie.
    current_user: OnceCell<Option<String>>,
    /// The XSRF token for this request (from the cookie, or new).
    xsrf: OnceCell<super::xsrf::XsrfToken>,
}

impl CtxInner {
    /// The response, wherever it lives now.
    pub(crate) fn shared(&self) -> &Shared {
        self.shared_rc.get().map_or(&self.local, |rc| rc)
    }

    /// The response in its own `Rc`, moving it there on first call. Never
    /// called while the response is borrowed (only from `Ctx` methods that
    /// hold no borrow of it).
    fn shared_rc(&self) -> &Rc<Shared> {
        self.shared_rc
            .get_or_init(|| Rc::new(self.local.take_out()))
    }

    /// Nobody but the `Ctx` holds the response (no [`ResponseHandle`]).
    pub(crate) fn response_unshared(&self) -> bool {
        self.shared_rc
            .get()
            .is_none_or(|rc| Rc::strong_count(rc) == 1)
    }
}

/// A request in progress. Clone it to answer later (see the module docs).
#[derive(Clone)]
pub struct Ctx {
    pub(crate) inner: Rc<CtxInner>,
}

impl Ctx {
    pub(crate) fn new(
        app: Rc<AppInner>,
        request: HTTPServerRequest,
        responder: HTTPResponder,
        route: Option<usize>,
        path_args: Vec<(String, String)>,
        api: bool,
    ) -> Ctx {
        Ctx {
            inner: Rc::new(CtxInner {
                app,
                request,
                route,
                path_args,
                api,
                local: Shared {
                    response: RefCell::new(Response::new(Some(responder))),
                    close_callbacks: RefCell::new(Vec::new()),
                },
                shared_rc: OnceCell::new(),
                query_args: OnceCell::new(),
                body_args: OnceCell::new(),
                cookies: OnceCell::new(),
                current_user: OnceCell::new(),
                xsrf: OnceCell::new(),
            }),
        }
    }

    // ----- the request --------------------------------------------------

    /// The application's settings (Tornado's `self.settings`).
    pub fn settings(&self) -> &super::Settings {
        &self.inner.app.settings
    }

    /// The request.
    pub fn request(&self) -> &HTTPServerRequest {
        &self.inner.request
    }

    /// A capture of the route pattern by name (`/room/{name}` → `"name"`).
    pub fn path_arg(&self, name: &str) -> Option<&str> {
        self.inner
            .path_args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every capture of the route pattern, `(name, value)` in pattern order
    /// (for code that must copy them out, e.g. a WebSocket upgrade).
    pub fn path_args(&self) -> &[(String, String)] {
        &self.inner.path_args
    }

    fn query_arguments(&self) -> &Arguments {
        self.inner
            .query_args
            .get_or_init(|| Arguments::from_query(self.inner.request.query()))
    }

    fn body_arguments(&self) -> Result<&(Arguments, Files), HTTPError> {
        let parsed = self.inner.body_args.get_or_init(|| {
            let req = &self.inner.request;
            let mut args = Arguments::new();
            let mut files = Files::new();
            match req.headers().get("Content-Type") {
                Some(ct) if !req.body.is_empty() => {
                    parse_body_arguments(ct, &req.body, &mut args, &mut files)
                        .map(|()| (args, files))
                        .map_err(|e| e.message().to_string())
                }
                _ => Ok((args, files)),
            }
        });
        parsed
            .as_ref()
            .map_err(|e| HTTPError::bad_request(format!("invalid request body: {e}")))
    }

    /// The last value of argument `name` from the query or the body,
    /// stripped of surrounding whitespace and control characters (Tornado's
    /// `get_argument`). Missing: 400 naming the argument.
    pub fn get_argument(&self, name: &str) -> Result<String, HTTPError> {
        self.get_argument_opt(name)?
            .ok_or_else(|| HTTPError::bad_request(format!("Missing argument {name}")))
    }

    /// Like [`get_argument`](Self::get_argument), but `None` when missing.
    /// Still an error if the body cannot be parsed.
    pub fn get_argument_opt(&self, name: &str) -> Result<Option<String>, HTTPError> {
        let body = self.body_arguments()?;
        let value = body
            .0
            .get_last(name)
            .or_else(|| self.query_arguments().get_last(name));
        Ok(value.map(|v| clean_argument(v)))
    }

    /// Every value of argument `name` (query first, then body).
    pub fn get_arguments(&self, name: &str) -> Result<Vec<String>, HTTPError> {
        let mut values: Vec<String> = self
            .query_arguments()
            .get_all(name)
            .map(|v| clean_argument(v))
            .collect();
        values.extend(
            self.body_arguments()?
                .0
                .get_all(name)
                .map(|v| clean_argument(v)),
        );
        Ok(values)
    }

    /// Argument `name` from the query string only. Missing: 400.
    pub fn get_query_argument(&self, name: &str) -> Result<String, HTTPError> {
        self.query_arguments()
            .get_last(name)
            .map(|v| clean_argument(v))
            .ok_or_else(|| HTTPError::bad_request(format!("Missing argument {name}")))
    }

    /// Argument `name` from the body only. Missing: 400.
    pub fn get_body_argument(&self, name: &str) -> Result<String, HTTPError> {
        self.body_arguments()?
            .0
            .get_last(name)
            .map(|v| clean_argument(v))
            .ok_or_else(|| HTTPError::bad_request(format!("Missing argument {name}")))
    }

    /// Uploaded files of a `multipart/form-data` body, by field name.
    pub fn files(&self) -> Result<&Files, HTTPError> {
        Ok(&self.body_arguments()?.1)
    }

    /// A request cookie.
    pub fn get_cookie(&self, name: &str) -> Option<&str> {
        self.inner
            .cookies
            .get_or_init(|| {
                self.inner
                    .request
                    .headers()
                    .get_all("Cookie")
                    .flat_map(|h| parse_cookie(h).into_iter())
                    .collect()
            })
            .get(name)
            .map(String::as_str)
    }

    // ----- the response -------------------------------------------------

    /// Set the response status.
    pub fn set_status(&self, status: u16) {
        self.inner.shared().response.borrow_mut().status = status;
    }

    /// The status set so far.
    pub fn get_status(&self) -> u16 {
        self.inner.shared().response.borrow().status
    }

    /// Set a response header, replacing earlier values.
    pub fn set_header(&self, name: &str, value: impl AsRef<str>) {
        self.inner.shared().set_header(name, value.as_ref());
    }

    /// Add a response header (keeps earlier values).
    pub fn add_header(&self, name: &str, value: impl AsRef<str>) {
        let mut resp = self.inner.shared().response.borrow_mut();
        if is_content_type(name) {
            // Another value beside the one in force, as Tornado keeps its
            // default in the map: the implied type joins the map first.
            if let Some(implied) = resp.implied_type.take() {
                resp.headers_mut().add("Content-Type", implied);
            }
        }
        resp.headers_mut().add(name, value);
    }

    /// Remove a response header.
    pub fn clear_header(&self, name: &str) {
        let mut resp = self.inner.shared().response.borrow_mut();
        resp.touched(name);
        resp.headers_mut().remove(name);
    }

    /// Append to the response body (sent at `finish` or `flush`).
    pub fn write(&self, chunk: impl AsRef<[u8]>) {
        self.inner.shared().write(chunk.as_ref());
    }

    /// Write `value` as JSON and set `Content-Type: application/json`.
    pub fn write_json(&self, value: &serde_json::Value) {
        self.inner.shared().write_json(value);
    }

    /// Send headers and what was written so far now; later writes stream
    /// (chunked on HTTP/1.1).
    pub fn flush(&self) {
        let mut resp = self.inner.shared().response.borrow_mut();
        let resp = &mut *resp;
        if resp.finished {
            return;
        }
        if resp.responder.is_none() {
            return;
        }
        let Some(mut responder) = resp.responder.take() else {
            return;
        };
        let chunk = std::mem::take(&mut resp.buffer);
        if resp.headers_flushed {
            responder.write(&chunk);
        } else {
            resp.headers_flushed = true;
            resp.send_head(&mut responder, resp.status, &chunk, false);
        }
        resp.responder = Some(responder);
    }

    /// Finish the response: send status, headers and body. Calling it twice
    /// is a logged no-op (Tornado raises).
    pub fn finish(&self) {
        self.finish_inner(None);
    }

    /// See [`Shared::finish`].
    fn finish_inner(&self, prebuilt: Option<&[u8]>) {
        self.inner.shared().finish(prebuilt, Some(self));
    }

    /// Write `value` as JSON and finish.
    pub fn finish_json(&self, value: &serde_json::Value) {
        self.write_json(value);
        self.finish();
    }

    /// Finish with a JSON body serialized beforehand, sent as it is: no
    /// serializing, no ETag, no gzip. For fan-out — one long-poll answer
    /// built once and written to thousands of waiters — where per-response
    /// work would cost N encodings instead of N copies. Anything already
    /// written with [`write`](Self::write) is discarded.
    pub fn finish_json_bytes(&self, json: &[u8]) {
        self.inner.shared().finish_json_bytes(json);
    }

    /// A handle that can finish this response later without keeping the
    /// request alive: for a handler that parks the response until an event
    /// (a long-poll), where holding a [`Ctx`] clone would keep the request,
    /// its arguments and cookies in memory for the whole wait. While a
    /// handle exists the response stays open, as with a clone.
    pub fn response_handle(&self) -> ResponseHandle {
        ResponseHandle {
            shared: Rc::clone(self.inner.shared_rc()),
        }
    }

    /// True once the response is finished.
    pub fn finished(&self) -> bool {
        self.inner.shared().response.borrow().finished
    }

    /// Redirect to `url` (302, or 301 if `permanent`) and finish.
    pub fn redirect(&self, url: &str, permanent: bool) {
        if self.inner.shared().response.borrow().headers_flushed {
            log::error!("cannot redirect after headers were sent");
            return;
        }
        self.set_status(if permanent { 301 } else { 302 });
        self.set_header("Location", url);
        self.finish();
    }

    /// Redirect (302) to the application's `login_url` with `next=` the
    /// current path and query, form-encoded like Tornado's
    /// `urlencode(dict(next=uri))` (`/` and `?` become `%2F` and `%3F`), and
    /// finish: what an authenticated page does for a visitor who is not
    /// logged in. An absolute-form target (`GET http://host/room/x`) gives
    /// its path too: a `next` that names a host would be refused as not
    /// local after the login.
    pub fn redirect_to_login(&self) {
        let login_url = &self.inner.app.settings.login_url;
        let request = self.request();
        let next = match request.query() {
            "" => url_escape(request.path(), true),
            query => url_escape(&format!("{}?{query}", request.path()), true),
        };
        let sep = if login_url.contains('?') { '&' } else { '?' };
        self.redirect(&format!("{login_url}{sep}next={next}"), false);
    }

    /// Answer with an error page for `status` (Tornado's `send_error`):
    /// HTML for pages, JSON `{"error": {"code", "message"}}` for API routes.
    /// Headers set so far are dropped (Tornado's `clear()`), except
    /// `Set-Cookie`. A 405 gets the `Allow` header from the route's
    /// [`allowed_methods`](super::RequestHandler::allowed_methods).
    pub fn send_error(&self, status: u16, message: &str) {
        self.send_error_with_headers(status, message, &[]);
    }

    /// [`Ctx::send_error`], the answer carrying `headers` as well.
    fn send_error_with_headers(&self, status: u16, message: &str, headers: &[(String, String)]) {
        {
            let mut resp = self.inner.shared().response.borrow_mut();
            if resp.finished {
                return;
            }
            if resp.headers_flushed {
                // Too late for an error page: cut the response short.
                log::error!("error {status} after headers were sent; closing the connection");
                resp.finished = true;
                drop(resp.responder.take());
                return;
            }
            resp.buffer.clear();
            let keep: Vec<(String, String)> = resp
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            resp.headers = HTTPHeaders::new();
            for (n, v) in keep {
                resp.headers.add(n, v);
            }
            resp.status = status;
        }
        // Every 405 carries `Allow` (RFC 9110 §15.5.6, see
        // `AppInner::allow_header`), whether it came from a handler's
        // `Err`, the method check, or a handler's own `send_error`. Set
        // before the caller's headers, so that an `Allow` among them
        // replaces it.
        if status == 405 {
            let allow = self
                .inner
                .route
                .and_then(|index| self.inner.app.allow_header(index, self.request().method()));
            if let Some(allow) = allow {
                self.set_header("Allow", &allow);
            }
        }
        for (name, value) in headers {
            self.set_header(name, value);
        }
        let reason = reason_phrase(status);
        if self.inner.api {
            self.write_json(&serde_json::json!({"error": {"code": status, "message": message}}));
        } else {
            self.inner.shared().imply_type(DEFAULT_CONTENT_TYPE);
            let msg = xhtml_escape(message);
            self.write(format!(
                "<!DOCTYPE html>\n<html><head><title>{status}: {reason}</title></head>\
                 <body><h1>{status}: {reason}</h1><p>{msg}</p></body></html>\n"
            ));
        }
        self.finish();
    }

    /// Answer with `error`.
    pub fn send_http_error(&self, error: &HTTPError) {
        if error.status >= 500 {
            log::error!(
                "{} {}: {}",
                self.inner.request.method(),
                self.inner.request.uri(),
                error.message
            );
        }
        self.send_error_with_headers(error.status, &error.message, &error.headers);
    }

    /// Run `callback` if the client disconnects before the response is
    /// finished (Tornado's `on_connection_close`): cancel a wait, free a
    /// slot. Several may be registered; they run in order.
    pub fn on_connection_close(&self, callback: impl FnOnce() + 'static) {
        let first = {
            let mut callbacks = self.inner.shared().close_callbacks.borrow_mut();
            callbacks.push(Box::new(callback));
            callbacks.len() == 1
        };
        if !first {
            return;
        }
        // Ask the HTTP layer to tell us when the client leaves — only now,
        // so requests that never wait pay nothing. Weak: the connection must
        // not keep the response alive.
        let weak = Rc::downgrade(self.inner.shared_rc());
        if let Some(r) = self.inner.shared().response.borrow().responder.as_ref() {
            r.set_close_callback(move || {
                if let Some(inner) = weak.upgrade() {
                    let callbacks = std::mem::take(&mut *inner.close_callbacks.borrow_mut());
                    for cb in callbacks {
                        cb();
                    }
                }
            });
        }
    }

    /// True if the client has gone away.
    pub fn connection_closed(&self) -> bool {
        match &self.inner.shared().response.borrow().responder {
            Some(r) => r.connection_closed(),
            None => false,
        }
    }

    /// Take the raw connection out of HTTP (for WebSocket): the response is
    /// considered finished. `None` if the response already started.
    pub fn detach(&self) -> Option<(HTTPResponder, HTTPHeaders)> {
        let mut resp = self.inner.shared().response.borrow_mut();
        if resp.finished || resp.headers_flushed {
            return None;
        }
        resp.finished = true;
        let headers = std::mem::take(&mut resp.headers);
        resp.responder.take().map(|r| (r, headers))
    }

    // ----- cookies ------------------------------------------------------

    /// Add a `Set-Cookie` header. Invalid characters in the name, value or
    /// attributes are refused (header injection).
    pub fn set_cookie(
        &self,
        name: &str,
        value: &str,
        options: &CookieOptions,
    ) -> Result<(), HTTPError> {
        let header = format_set_cookie(name, value, options).map_err(|e| {
            log::error!("refusing cookie {name:?}: {e}");
            HTTPError::new(500, "invalid cookie")
        })?;
        self.add_header("Set-Cookie", header);
        Ok(())
    }

    /// Delete a cookie in the browser.
    pub fn clear_cookie(&self, name: &str) {
        let options = CookieOptions {
            max_age: Some(0),
            expires: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(86400)),
            ..CookieOptions::default()
        };
        let _ = self.set_cookie(name, "", &options);
    }

    /// Set a cookie signed with the application's `cookie_secret` (Tornado's
    /// v2 format), expiring in `expires_days` (Tornado default: 30).
    pub fn set_signed_cookie(
        &self,
        name: &str,
        value: &str,
        expires_days: u32,
    ) -> Result<(), HTTPError> {
        let now = SystemTime::now();
        let signed = super::signed::create_signed_value(
            &self.inner.app.settings.cookie_secret,
            name,
            value.as_bytes(),
            now,
        );
        let options = CookieOptions {
            expires: Some(now + Duration::from_secs(u64::from(expires_days) * 86400)),
            httponly: true,
            samesite: Some(crate::httputil::SameSite::Lax),
            ..CookieOptions::default()
        };
        self.set_cookie(name, &signed, &options)
    }

    /// The value of a signed cookie, if present, authentic and younger than
    /// `max_age_days` (Tornado default: 31).
    pub fn get_signed_cookie(&self, name: &str, max_age_days: u32) -> Option<String> {
        let raw = self.get_cookie(name)?;
        let value = super::signed::decode_signed_value(
            &self.inner.app.settings.cookie_secret,
            name,
            raw,
            max_age_days,
            SystemTime::now(),
        )?;
        String::from_utf8(value).ok()
    }

    /// The logged-in user: the signed `user` cookie (Tornado apps override
    /// `get_current_user` to do exactly this).
    pub fn current_user(&self) -> Option<&str> {
        self.inner
            .current_user
            .get_or_init(|| {
                let cookie = self.inner.app.settings.user_cookie.clone();
                self.get_signed_cookie(&cookie, self.inner.app.settings.cookie_max_age_days)
            })
            .as_deref()
    }

    /// Log `user` in: set the signed user cookie.
    pub fn set_current_user(&self, user: &str) -> Result<(), HTTPError> {
        let cookie = self.inner.app.settings.user_cookie.clone();
        self.set_signed_cookie(&cookie, user, 30)?;
        let _ = self.inner.current_user.set(Some(user.to_string()));
        Ok(())
    }

    // ----- XSRF ---------------------------------------------------------

    /// This request's XSRF token, masked afresh (Tornado v2 format). Sets
    /// the `_xsrf` cookie if the browser has none — so any page that shows
    /// a form (via `xsrf_form_html`) arms the browser for its POSTs.
    pub fn xsrf_token(&self) -> String {
        let now = SystemTime::now();
        let token = self.inner.xsrf.get_or_init(|| {
            if let Some(token) = self
                .get_cookie("_xsrf")
                .and_then(super::xsrf::decode_xsrf_token)
            {
                return token;
            }
            let token = match super::xsrf::XsrfToken::generate(now) {
                Ok(t) => t,
                Err(e) => {
                    // No randomness: set no cookie (so every POST fails the
                    // check) rather than hand out a guessable token.
                    log::error!("cannot generate an XSRF token: {e}");
                    return super::xsrf::XsrfToken {
                        version: 2,
                        token: [0; super::xsrf::XSRF_TOKEN_LEN],
                        timestamp: None,
                    };
                }
            };
            if let Ok(cookie) = token.masked(now) {
                let options = CookieOptions {
                    samesite: Some(crate::httputil::SameSite::Lax),
                    ..CookieOptions::default()
                };
                let _ = self.set_cookie("_xsrf", &cookie, &options);
            }
            token
        });
        token.masked(now).unwrap_or_default()
    }

    /// `<input type="hidden" name="_xsrf" value="...">` for forms.
    pub fn xsrf_form_html(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"_xsrf\" value=\"{}\">",
            xhtml_escape(&self.xsrf_token())
        )
    }

    /// Check the submitted XSRF token against the cookie (Tornado's
    /// `check_xsrf_cookie`): `_xsrf` argument, or `X-XSRFToken` /
    /// `X-CSRFToken` header. 403 otherwise.
    pub fn check_xsrf_cookie(&self) -> Result<(), HTTPError> {
        let headers = &self.inner.request.headers();
        let submitted = match self.get_argument_opt("_xsrf")? {
            Some(v) => v,
            None => match headers
                .get("X-XSRFToken")
                .or_else(|| headers.get("X-CSRFToken"))
            {
                Some(v) => v.to_string(),
                None => return Err(HTTPError::forbidden("'_xsrf' argument missing from POST")),
            },
        };
        let Some(cookie) = self.get_cookie("_xsrf") else {
            return Err(HTTPError::forbidden("'_xsrf' argument missing from POST"));
        };
        if !super::xsrf::xsrf_tokens_match(cookie, &submitted) {
            return Err(HTTPError::forbidden(
                "XSRF cookie does not match POST argument",
            ));
        }
        Ok(())
    }

    // ----- templates and static files ------------------------------------

    /// Render `template` from the template directory with `context` (plus
    /// `current_user`, `xsrf_form_html`, `xsrf_token`, `request_path` and the
    /// `static_url()` function), write it, and finish.
    pub fn render(&self, template: &str, context: serde_json::Value) -> Result<(), HTTPError> {
        let html = self.render_string(template, context)?;
        self.write(html);
        self.finish();
        Ok(())
    }

    /// Render a template to a string (Tornado's `render_string`).
    pub fn render_string(
        &self,
        template: &str,
        context: serde_json::Value,
    ) -> Result<String, HTTPError> {
        let Some(templates) = &self.inner.app.templates else {
            return Err(HTTPError::new(500, "no template_path configured"));
        };
        templates.render(self, template, context)
    }

    /// `/static/<path>?v=<content hash>` (Tornado's `static_url`), so the
    /// file can be cached for a year and still change when it changes.
    pub fn static_url(&self, path: &str) -> String {
        self.inner.app.static_url(path)
    }
}

impl Shared {
    fn set_header(&self, name: &str, value: &str) {
        let mut resp = self.response.borrow_mut();
        if is_content_type(name) {
            // A handler that sets only a common type (`/hello`, the health
            // check, JSON APIs) then builds no header map at all.
            if let Some(known) = well_known_content_type(value) {
                resp.imply_type(known);
                return;
            }
        }
        resp.touched(name);
        resp.headers_mut().set(name, value);
    }

    fn write(&self, chunk: &[u8]) {
        let mut resp = self.response.borrow_mut();
        if resp.finished {
            log::error!("write() after finish()");
            return;
        }
        resp.buffer_mut().extend_from_slice(chunk);
    }

    /// See [`Response::imply_type`].
    fn imply_type(&self, content_type: &'static str) {
        self.response.borrow_mut().imply_type(content_type);
    }

    fn write_json(&self, value: &serde_json::Value) {
        self.imply_type(JSON_CONTENT_TYPE);
        match serde_json::to_vec(value) {
            Ok(bytes) => self.write(&bytes),
            Err(e) => log::error!("cannot serialize JSON response: {e}"),
        }
    }

    fn finish_json_bytes(&self, json: &[u8]) {
        {
            let resp = self.response.borrow();
            if resp.finished || resp.headers_flushed {
                log::error!("finish_json_bytes() after finish() or flush()");
                return;
            }
        }
        self.imply_type(JSON_CONTENT_TYPE);
        self.finish(Some(json), None);
    }

    /// The one way a response ends. `prebuilt`: send these bytes as the
    /// whole body instead of what was written, and skip the ETag/gzip
    /// transforms (see [`Ctx::finish_json_bytes`]). `cx`: the request, for
    /// those transforms; a [`ResponseHandle`] has none and sends the body
    /// as written.
    fn finish(&self, prebuilt: Option<&[u8]>, cx: Option<&Ctx>) {
        // Once finished, the client leaving no longer concerns the handler.
        // Taken out (and dropped at the end) before the response is
        // borrowed: the closures may own clones of this Ctx.
        let _close_callbacks = std::mem::take(&mut *self.close_callbacks.borrow_mut());
        let mut resp = self.response.borrow_mut();
        let resp = &mut *resp;
        if resp.finished {
            log::error!("finish() called twice");
            return;
        }
        resp.finished = true;
        let Some(mut responder) = resp.responder.take() else {
            return;
        };
        let body = std::mem::take(&mut resp.buffer);
        if resp.headers_flushed {
            responder.write(&body);
            responder.finish();
            return;
        }
        let body = match (prebuilt, cx) {
            (Some(bytes), _) => {
                resp.send_head(&mut responder, resp.status, bytes, true);
                super::recycle::give_back(std::mem::take(&mut resp.headers), Some(body));
                return;
            }
            (None, Some(cx)) => super::transform::finish_body(
                cx,
                resp.status,
                &mut resp.headers,
                resp.implied_type,
                body,
            ),
            (None, None) => Some(body),
        };
        let status = if body.is_none() { 304 } else { resp.status };
        resp.send_head(&mut responder, status, body.as_deref().unwrap_or(&[]), true);
        super::recycle::give_back(std::mem::take(&mut resp.headers), body);
    }
}

impl Shared {
    /// Move the response and its close callbacks out into a new `Shared`,
    /// leaving this one inert: no responder, so dropping it sends nothing.
    fn take_out(&self) -> Shared {
        let moved = std::mem::replace(&mut *self.response.borrow_mut(), Response::new(None));
        Shared {
            response: RefCell::new(moved),
            close_callbacks: RefCell::new(std::mem::take(&mut *self.close_callbacks.borrow_mut())),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let resp = self.response.get_mut();
        if resp.finished {
            return;
        }
        let Some(mut responder) = resp.responder.take() else {
            return;
        };
        if responder.connection_closed() {
            // The client left; nobody is waiting for an answer.
            return;
        }
        // The access log (when on) names the request this 500 answers.
        log::error!("a response was dropped without finish(); answering 500");
        let body = b"500: Internal Server Error\n";
        let mut headers = HTTPHeaders::new();
        headers.add("Content-Type", "text/plain; charset=UTF-8");
        responder.write_headers(500, &headers, body, true);
    }
}

/// Finishes a response whose [`Ctx`] is gone (see
/// [`Ctx::response_handle`]). Clone it freely; the response stays open while
/// any clone (or the `Ctx`) lives, and dropping the last one unfinished
/// answers 500.
///
/// It has no request, so [`finish`](Self::finish) sends the body as
/// written: no ETag/304 and no gzip.
#[derive(Clone)]
pub struct ResponseHandle {
    /// The response, shared with the `Ctx` while that lives.
    shared: Rc<Shared>,
}

impl ResponseHandle {
    /// Set the response status.
    pub fn set_status(&self, status: u16) {
        self.shared.response.borrow_mut().status = status;
    }

    /// Set a response header, replacing earlier values.
    pub fn set_header(&self, name: &str, value: impl AsRef<str>) {
        self.shared.set_header(name, value.as_ref());
    }

    /// Append to the response body.
    pub fn write(&self, chunk: impl AsRef<[u8]>) {
        self.shared.write(chunk.as_ref());
    }

    /// Send what was written and end the response.
    pub fn finish(&self) {
        self.shared.finish(None, None);
    }

    /// Write `value` as JSON and finish.
    pub fn finish_json(&self, value: &serde_json::Value) {
        self.shared.write_json(value);
        self.finish();
    }

    /// Finish with a JSON body serialized beforehand (see
    /// [`Ctx::finish_json_bytes`]).
    pub fn finish_json_bytes(&self, json: &[u8]) {
        self.shared.finish_json_bytes(json);
    }

    /// True once the response is finished.
    pub fn finished(&self) -> bool {
        self.shared.response.borrow().finished
    }

    /// True if the client has gone away.
    pub fn connection_closed(&self) -> bool {
        match &self.shared.response.borrow().responder {
            Some(r) => r.connection_closed(),
            None => false,
        }
    }
}

/// Tornado's argument cleaning: strip whitespace and control characters
/// `[\x00-\x08\x0e-\x1f]` (kept: tab, newline, CR — a textarea has them).
pub(crate) fn clean_argument(value: &str) -> String {
    if !value.bytes().any(|b| matches!(b, 0..=8 | 0x0e..=0x1f)) {
        // The usual case: nothing to filter, so no char-by-char rebuild.
        return value.trim().to_string();
    }
    value
        .chars()
        .filter(|&c| !matches!(c, '\u{0}'..='\u{8}' | '\u{e}'..='\u{1f}'))
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::clean_argument;

    #[test]
    fn arguments_lose_control_characters_and_outer_whitespace() {
        assert_eq!(clean_argument("  plain text \t"), "plain text");
        assert_eq!(clean_argument("a\u{1}b\u{1f}c"), "abc");
        assert_eq!(clean_argument(" \u{0}x\ny\r\u{8} "), "x\ny");
        assert_eq!(clean_argument("caf\u{e9}"), "caf\u{e9}");
    }
}
