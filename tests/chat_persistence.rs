//! With `--data-dir`, accounts, chat history and logins survive a restart
//! of the real `squall` binary; without it nothing is written.

mod chat_support;

use chat_support::{temp_dir, wait_file_contains, Client, Server};

#[test]
fn accounts_and_history_survive_a_restart() {
    let dir = temp_dir("persist");
    let data = dir.to_str().expect("utf-8 path");
    // No --cookie-secret: the secret is kept in the data directory too.
    let server = Server::start_raw(&["--data-dir", data]);
    let mut alice = Client::user(&server, "Alice");
    let r = alice.post(
        "/a/message/new",
        &[("body", "remember <me>"), ("room", "keep")],
    );
    let id = r.json()["id"].as_str().expect("id").to_string();
    let r = alice.post("/a/message/new", &[("body", "second"), ("room", "keep")]);
    let id2 = r.json()["id"].as_str().expect("id").to_string();
    // Writing is asynchronous (a writer thread): wait until it is on disk.
    wait_file_contains(&dir.join("chat.jsonl"), &id2);
    wait_file_contains(&dir.join("accounts.jsonl"), "Alice");
    let accounts = std::fs::read_to_string(dir.join("accounts.jsonl")).expect("read");
    assert!(accounts.contains("$argon2id$"));
    assert!(
        !accounts.contains("password-123"),
        "no plain password on disk"
    );
    server.kill();

    let server = Server::start_raw(&["--data-dir", data]);
    // The old cookie still works (same secret), and the history is back.
    alice.addr = server.addr;
    let page = alice.get("/room/keep");
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains(&format!("id=\"m{id}\"")));
    assert!(text.contains("remember &lt;me&gt;"));
    // The cursor of a message from before the restart is still known.
    let r = alice.post("/a/message/updates", &[("room", "keep"), ("cursor", &id)]);
    assert_eq!(r.message_ids(), std::slice::from_ref(&id2));
    // Logging in with the old password works; the name is still taken.
    let mut again = server.client();
    again.xsrf();
    let r = again.post(
        "/auth/login",
        &[("name", "alice"), ("password", "password-123")],
    );
    assert_eq!(r.status, 302);
    let r = again.post(
        "/auth/register",
        &[("name", "ALICE"), ("password", "password-123")],
    );
    assert_eq!(r.status, 409);
    assert_eq!(server.metric("squall_accounts"), 1.0);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn history_file_is_compacted_at_start_up() {
    let dir = temp_dir("compact");
    let path = dir.join("chat.jsonl");
    let mut lines = String::new();
    for i in 0..250 {
        lines.push_str(&format!(
            "{{\"room\":\"c\",\"id\":\"id{i}\",\"from\":\"x\",\"body\":\"m{i}\",\"time\":1.0}}\n"
        ));
    }
    lines.push_str("not json\n{\"room\":\"BAD NAME\",\"id\":\"z\",\"from\":\"x\",\"body\":\"b\",\"time\":1.0}\n");
    std::fs::write(&path, lines).expect("write");
    let server = Server::start_raw(&["--data-dir", dir.to_str().expect("utf-8")]);
    let kept = std::fs::read_to_string(&path).expect("read");
    assert_eq!(kept.lines().count(), 200);
    assert!(kept.starts_with("{\"room\":\"c\",\"id\":\"id50\""));
    let mut c = Client::user(&server, "reader");
    let r = c.post("/a/message/updates", &[("room", "c"), ("cursor", "id248")]);
    assert_eq!(r.message_ids(), ["id249"]);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_data_dir_nothing_survives() {
    let server = Server::start(&[]);
    let mut c = Client::user(&server, "temp");
    c.post("/a/message/new", &[("body", "gone soon"), ("room", "t")]);
    server.kill();
    let server = Server::start(&[]);
    let mut c2 = server.client();
    c2.xsrf();
    let r = c2.post(
        "/auth/login",
        &[("name", "temp"), ("password", "password-123")],
    );
    assert_eq!(r.status, 403);
    let mut c3 = Client::user(&server, "temp");
    let page = c3.get("/room/t");
    assert_eq!(page.status, 200);
    assert!(!page.text().contains("gone soon"));
}
