//! Accounts over real sockets: register, duplicate names, login, wrong
//! passwords, logout — against the real `squall` binary.

mod chat_support;

use chat_support::{Client, Server};

#[test]
fn register_login_logout() {
    let server = Server::start(&[]);
    let mut c = server.client();
    let page = c.get("/auth/register");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("name=\"_xsrf\""));
    c.register("Mallory.K", "password-123");
    // Logged in: the lobby greets the user by name.
    let lobby = c.get("/");
    assert_eq!(lobby.status, 200);
    assert!(lobby.text().contains("Mallory.K"));

    // Log out: the cookie is cleared and pages ask for a login again.
    let r = c.get("/auth/logout");
    assert_eq!((r.status, r.header("Location")), (302, Some("/auth/login")));
    assert!(!c.cookies.contains_key("user"));
    assert_eq!(c.get("/").status, 302);

    // Log in again, any case of the name; the cookie keeps the
    // registered spelling.
    let r = c.post(
        "/auth/login",
        &[
            ("name", "mallory.k"),
            ("password", "password-123"),
            ("next", "/room/x"),
        ],
    );
    assert_eq!((r.status, r.header("Location")), (302, Some("/room/x")));
    let m = c
        .post("/a/message/new", &[("body", "hi"), ("room", "x")])
        .json();
    assert_eq!(m["from"], "Mallory.K");
    assert_eq!(server.metric("squall_accounts"), 1.0);
    assert_eq!(server.metric("squall_password_hashes_pending"), 0.0);
}

#[test]
fn names_are_unique_case_insensitively() {
    let server = Server::start(&[]);
    Client::user(&server, "Oscar");
    let mut c = server.client();
    c.xsrf();
    for name in ["Oscar", "oscar", "OSCAR"] {
        let r = c.post(
            "/auth/register",
            &[("name", name), ("password", "another-password")],
        );
        assert_eq!(r.status, 409, "{name}");
        assert!(r.text().contains("That name is taken."));
        assert!(!c.cookies.contains_key("user"));
    }
    assert_eq!(server.metric("squall_accounts"), 1.0);
}

#[test]
fn bad_registrations_show_the_form_again() {
    let server = Server::start(&[]);
    let mut c = server.client();
    c.xsrf();
    for (name, password, status, text) in [
        ("", "password-123", 400, "Names are 1 to 32"),
        ("has space", "password-123", 400, "Names are 1 to 32"),
        ("<script>", "password-123", 400, "Names are 1 to 32"),
        (&"n".repeat(33), "password-123", 400, "Names are 1 to 32"),
        ("peggy", "short", 400, "Passwords are 8"),
    ] {
        let r = c.post("/auth/register", &[("name", name), ("password", password)]);
        assert_eq!(r.status, status, "{name:?}");
        let page = r.text();
        assert!(page.contains(text), "{name:?}: {page}");
        assert!(
            !page.contains("<script>"),
            "the name is escaped when shown again"
        );
    }
    // No XSRF token: refused before anything else.
    let r = c.post_raw(
        "/auth/register",
        &[("name", "peggy"), ("password", "password-123")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(server.metric("squall_accounts"), 0.0);
}

#[test]
fn wrong_password_or_unknown_user_is_403_with_the_form() {
    let server = Server::start(&[]);
    Client::user(&server, "trent");
    let mut c = server.client();
    c.xsrf();
    for (name, password) in [("trent", "wrong-password"), ("nobody", "password-123")] {
        let r = c.post(
            "/auth/login",
            &[("name", name), ("password", password), ("next", "/room/q")],
        );
        assert_eq!(r.status, 403, "{name}");
        let page = r.text();
        assert!(page.contains("Wrong name or password."));
        assert!(page.contains("<form"), "the login form again");
        assert!(page.contains("value=\"&#x2f;room&#x2f;q\""), "next is kept");
        assert!(!c.cookies.contains_key("user"));
    }
}
