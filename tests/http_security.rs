//! XSRF protection, signed cookies and the `authenticated` guard, driven
//! by ureq (an HTTP client we did not write) with cookies handled by hand
//! so each test says exactly what the browser would send.
#[path = "http_common/mod.rs"]
mod common;

use std::sync::mpsc;
use std::time::SystemTime;

use common::webapp::{self, SECRET};
use common::{agent, TestServer};
use squall::web::signed::create_signed_value;

/// What a test needs of a response.
struct Page {
    status: u16,
    body: String,
    set_cookies: Vec<String>,
    location: Option<String>,
    content_type: Option<String>,
}

impl Page {
    fn read(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Page {
        let mut r = result.expect("request");
        let headers = r.headers();
        let set_cookies = headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_string())
            .collect();
        let text = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().expect("ascii").to_string())
        };
        let location = text("location");
        let content_type = text("content-type");
        Page {
            status: r.status().as_u16(),
            body: r.body_mut().read_to_string().expect("body"),
            set_cookies,
            location,
            content_type,
        }
    }

    /// `name=value` of the Set-Cookie for `name`, ready for a Cookie header.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap_or("").to_string())
    }

    /// The `_xsrf` hidden field's value in a form page.
    fn xsrf_field(&self) -> String {
        let marker = "name=\"_xsrf\" value=\"";
        let start = self.body.find(marker).expect("xsrf field") + marker.len();
        let len = self.body[start..].find('"').expect("closing quote");
        self.body[start..start + len].to_string()
    }
}

fn start() -> TestServer {
    let (tx, _rx) = mpsc::channel();
    webapp::start(tx)
}

/// GET `/form` with an optional cookie: the page and its `_xsrf` cookie.
fn form_page(server: &TestServer, cookie: Option<&str>) -> Page {
    let mut req = agent().get(server.url("/form"));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    let page = Page::read(req.call());
    assert_eq!(page.status, 200);
    page
}

fn post_form(server: &TestServer, cookie: Option<&str>, fields: &[(&str, &str)]) -> Page {
    let mut req = agent().post(server.url("/form"));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    Page::read(req.send_form(fields.iter().copied()))
}

#[test]
fn post_without_any_token_is_403() {
    let server = start();
    let r = post_form(&server, None, &[("name", "x")]);
    assert_eq!(r.status, 403);
    assert!(r.body.contains("_xsrf"), "{}", r.body);
}

#[test]
fn a_form_of_too_many_fields_is_400_before_it_is_parsed() {
    let server = start();
    let page = form_page(&server, None);
    let cookie = page.cookie("_xsrf").expect("_xsrf cookie");
    let token = page.xsrf_field();
    // The limit itself passes: the token and 999 more fields.
    let mut fields: Vec<(String, String)> =
        vec![("_xsrf".into(), token), ("name".into(), "x".into())];
    fields.extend((2..squall::httputil::MAX_FORM_FIELDS).map(|i| (format!("f{i}"), "v".into())));
    let r = Page::read(
        agent()
            .post(server.url("/form"))
            .header("Cookie", &cookie)
            .send_form(fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
    );
    assert_eq!((r.status, r.body.as_str()), (200, "posted x"));
    // One more is refused, with the reason, before any field is built:
    // the XSRF check, which reads the body, gets the error first.
    fields.push(("one".into(), "more".into()));
    let r = Page::read(
        agent()
            .post(server.url("/form"))
            .header("Cookie", &cookie)
            .send_form(fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("more than 1000 form fields"), "{}", r.body);
}

#[test]
fn post_with_cookie_and_form_field_is_200() {
    let server = start();
    let page = form_page(&server, None);
    let cookie = page
        .cookie("_xsrf")
        .expect("_xsrf cookie set by the form page");
    let token = page.xsrf_field();
    let r = post_form(&server, Some(&cookie), &[("_xsrf", &token), ("name", "x")]);
    assert_eq!((r.status, r.body.as_str()), (200, "posted x"));
}

#[test]
fn post_with_cookie_and_header_is_200() {
    let server = start();
    let page = form_page(&server, None);
    let cookie = page.cookie("_xsrf").expect("_xsrf cookie");
    let r = Page::read(
        agent()
            .post(server.url("/form"))
            .header("Cookie", &cookie)
            .header("X-XSRFToken", page.xsrf_field())
            .send_form([("name", "y")]),
    );
    assert_eq!((r.status, r.body.as_str()), (200, "posted y"));
    // The cookie's own value works as the header too (what scripts send).
    let raw = cookie.trim_start_matches("_xsrf=");
    let r = Page::read(
        agent()
            .post(server.url("/a/fast"))
            .header("Cookie", &cookie)
            .header("X-XSRFToken", raw)
            .send_empty(),
    );
    assert_eq!((r.status, r.body.as_str()), (200, "{\"ok\":true}"));
}

#[test]
fn cookie_without_token_or_token_without_cookie_is_403() {
    let server = start();
    let page = form_page(&server, None);
    let cookie = page.cookie("_xsrf").expect("_xsrf cookie");
    let r = post_form(&server, Some(&cookie), &[("name", "x")]);
    assert_eq!(r.status, 403);
    let r = post_form(
        &server,
        None,
        &[("_xsrf", &page.xsrf_field()), ("name", "x")],
    );
    assert_eq!(r.status, 403);
}

#[test]
fn token_from_another_cookie_is_403() {
    let server = start();
    let first = form_page(&server, None);
    let second = form_page(&server, None);
    let cookie_a = first.cookie("_xsrf").expect("cookie A");
    let token_b = second.xsrf_field();
    let r = post_form(
        &server,
        Some(&cookie_a),
        &[("_xsrf", &token_b), ("name", "x")],
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("does not match"), "{}", r.body);
}

#[test]
fn masked_tokens_differ_per_page_and_all_match_their_cookie() {
    let server = start();
    let first = form_page(&server, None);
    let cookie = first.cookie("_xsrf").expect("cookie");
    let again = form_page(&server, Some(&cookie));
    assert!(
        again.cookie("_xsrf").is_none(),
        "cookie must not be re-issued"
    );
    assert_ne!(first.xsrf_field(), again.xsrf_field(), "masking");
    for token in [first.xsrf_field(), again.xsrf_field()] {
        let r = post_form(&server, Some(&cookie), &[("_xsrf", &token), ("name", "m")]);
        assert_eq!(r.status, 200);
    }
}

#[test]
fn every_unsafe_method_is_checked() {
    let server = start();
    for method in ["PUT", "PATCH", "DELETE"] {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(server.url("/form"))
            .body(())
            .expect("request");
        let r = Page::read(agent().run(req));
        assert_eq!(r.status, 403, "{method}");
    }
    // On an API route the refusal is JSON.
    let r = Page::read(agent().post(server.url("/a/fast")).send_empty());
    assert_eq!(r.status, 403);
    assert!(r
        .content_type
        .as_deref()
        .unwrap_or("")
        .starts_with("application/json"));
    let json: serde_json::Value = serde_json::from_str(&r.body).expect("JSON error");
    assert_eq!(json["error"]["code"], 403);
}

/// `user=<signed>` for `/login?name=alice`.
fn login(server: &TestServer, name: &str) -> String {
    let r = Page::read(
        agent()
            .get(server.url(&format!("/login?name={name}")))
            .call(),
    );
    assert_eq!(r.status, 200);
    let set = r
        .set_cookies
        .iter()
        .find(|c| c.starts_with("user="))
        .expect("user cookie");
    assert!(set.contains("HttpOnly"), "{set}");
    r.cookie("user").expect("user cookie")
}

fn private(server: &TestServer, path: &str, cookie: Option<&str>) -> Page {
    let mut req = agent().get(server.url(path));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    Page::read(req.call())
}

/// The decoded `next` of a `/auth/login?next=...` redirect.
fn next_of(location: Option<&str>) -> String {
    let next = location
        .and_then(|l| l.strip_prefix("/auth/login?next="))
        .unwrap_or_else(|| panic!("not a login redirect: {location:?}"));
    squall::httputil::url_unescape(next, true).into_owned()
}

/// The private page answers as for nobody: login redirect, API 403.
fn assert_anonymous(server: &TestServer, cookie: Option<&str>) {
    let page = private(server, "/private", cookie);
    assert_eq!(page.status, 302, "{cookie:?}");
    assert_eq!(next_of(page.location.as_deref()), "/private");
    let api = private(server, "/a/private", cookie);
    assert_eq!(api.status, 403, "{cookie:?}");
    let json: serde_json::Value = serde_json::from_str(&api.body).expect("JSON error");
    assert_eq!(json["error"]["code"], 403);
}

#[test]
fn signed_cookie_logs_in() {
    let server = start();
    let cookie = login(&server, "alice");
    let page = private(&server, "/private", Some(&cookie));
    assert_eq!((page.status, page.body.as_str()), (200, "hello alice"));
    let api = private(&server, "/a/private", Some(&cookie));
    assert_eq!(api.body, "{\"user\":\"alice\"}");
    // A cookie the test signs itself with the application's secret is just
    // as good: so the rejections below are about tampering, nothing else.
    let forged = create_signed_value(SECRET, "user", b"bob", SystemTime::now());
    let page = private(&server, "/private", Some(&format!("user={forged}")));
    assert_eq!(page.body, "hello bob");
}

#[test]
fn tampered_signed_cookie_is_rejected() {
    let server = start();
    let cookie = login(&server, "alice");
    assert!(cookie.contains("|8:YWxpY2U=|"), "{cookie}");
    // Value changed to "admin" (same length), signature kept.
    let value_swapped = cookie.replace("|8:YWxpY2U=|", "|8:YWRtaW4=|");
    // Signature's last hex digit flipped.
    let mut sig_flipped = cookie.clone();
    let last = sig_flipped.pop().expect("non-empty");
    sig_flipped.push(if last == '0' { '1' } else { '0' });
    // Signed with another secret; signed for another cookie name.
    let other_secret = format!(
        "user={}",
        create_signed_value(b"another secret", "user", b"alice", SystemTime::now())
    );
    let other_name = format!(
        "user={}",
        create_signed_value(SECRET, "session", b"alice", SystemTime::now())
    );
    for bad in [value_swapped, sig_flipped, other_secret, other_name] {
        assert_anonymous(&server, Some(&bad));
    }
    assert_anonymous(&server, None);
}

#[test]
fn login_redirect_keeps_the_query() {
    let server = start();
    let page = private(&server, "/private?tab=2&x=a%20b", None);
    assert_eq!(page.status, 302);
    assert_eq!(next_of(page.location.as_deref()), "/private?tab=2&x=a%20b");
}
