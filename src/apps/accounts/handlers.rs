//! `/auth/register`, `/auth/login`, `/auth/logout`.
//!
//! The shape of a Tornado login handler (`get` shows the form, `post`
//! checks and calls `set_secure_cookie("user", name)`, then
//! `redirect(self.get_argument("next", "/"))`), with two differences: the
//! password check runs on the worker pool, so `post` returns at once and
//! answers from the callback; and `next` is followed only when it is a
//! local path ([`safe_next`]).
//!
//! A refused form is shown again with its error and a status saying why:
//! 400 (bad name or password format), 403 (wrong name or password), 409
//! (name taken), 503 (too busy) — never a bare error page.

use super::{safe_next, AccountError, Accounts};
use crate::web::{Application, Ctx, HandlerResult, RequestHandler};

/// Add the account routes to `app`.
pub fn mount(app: &mut Application, accounts: &Accounts) {
    app.route("/auth/register", Register(accounts.clone()));
    app.route("/auth/login", Login(accounts.clone()));
    app.route("/auth/logout", Logout);
}

/// `GET /auth/register`: the form. `POST`: create the account, log in.
struct Register(Accounts);

impl RequestHandler for Register {
    fn allowed_methods(&self) -> &[&str] {
        &["GET", "HEAD", "POST"]
    }

    fn get(&self, cx: &Ctx) -> HandlerResult {
        show_form(cx, "register.html", 200, None)
    }

    fn post(&self, cx: &Ctx) -> HandlerResult {
        let (name, password) = credentials(cx)?;
        let waiting = cx.clone();
        let started = self.0.register(&name, &password, move |result| {
            finish_auth(&waiting, "register.html", result)
        });
        started.or_else(|e| show_form(cx, "register.html", e.status(), Some(e)))
    }
}

/// `GET /auth/login`: the form. `POST`: check the password, log in.
struct Login(Accounts);

impl RequestHandler for Login {
    fn allowed_methods(&self) -> &[&str] {
        &["GET", "HEAD", "POST"]
    }

    fn get(&self, cx: &Ctx) -> HandlerResult {
        show_form(cx, "login.html", 200, None)
    }

    fn post(&self, cx: &Ctx) -> HandlerResult {
        let (name, password) = credentials(cx)?;
        let waiting = cx.clone();
        let started = self.0.login(&name, &password, move |result| {
            finish_auth(&waiting, "login.html", result)
        });
        started.or_else(|e| show_form(cx, "login.html", e.status(), Some(e)))
    }
}

/// `GET /auth/logout`: forget the user cookie, back to the login page.
struct Logout;

impl RequestHandler for Logout {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.clear_cookie("user");
        cx.redirect("/auth/login", false);
        Ok(())
    }
}

/// The form fields `name` and `password` (missing = empty, refused later
/// with the form shown again rather than a bare 400).
fn credentials(cx: &Ctx) -> Result<(String, String), crate::web::HTTPError> {
    Ok((
        cx.get_argument_opt("name")?.unwrap_or_default(),
        cx.get_argument_opt("password")?.unwrap_or_default(),
    ))
}

/// The hash came back: log in and go to `next`, or show the form again.
fn finish_auth(cx: &Ctx, template: &str, result: Result<String, AccountError>) {
    let outcome = match result {
        Ok(user) => cx.set_current_user(&user).map(|()| {
            let next = cx
                .get_argument_opt("next")
                .ok()
                .flatten()
                .unwrap_or_default();
            cx.redirect(safe_next(&next), false);
        }),
        Err(e) => show_form(cx, template, e.status(), Some(e)),
    };
    if let Err(e) = outcome {
        cx.send_http_error(&e);
    }
}

/// Render the login or register form, with `error` if any; the `name` and
/// `next` the user sent are kept in the form.
fn show_form(cx: &Ctx, template: &str, status: u16, error: Option<AccountError>) -> HandlerResult {
    let next = cx.get_argument_opt("next")?.unwrap_or_default();
    let next = safe_next(&next);
    let name = cx.get_argument_opt("name")?.unwrap_or_default();
    cx.set_status(status);
    cx.render(
        template,
        serde_json::json!({
            "error": error.map(AccountError::message),
            "next": next,
            "next_query": crate::httputil::url_escape(next, true),
            "name": name,
        }),
    )
}
