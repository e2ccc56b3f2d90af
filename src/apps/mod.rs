//! The demo applications and the `squall` server that mounts them, kept
//! apart from the framework so a reader can see the framework without them.
//!
//! | module       | what it is                                    | Tornado original       |
//! |--------------|-----------------------------------------------|------------------------|
//! | [`config`]   | command-line options of the binary            | `options.py`           |
//! | [`assets`]   | `templates/` and `static/` built into the binary | —                   |
//! | [`site`]     | the server: all apps, `/healthz`, `/metrics`  | —                      |
//! | [`chat`]     | long-polling + WebSocket chat with rooms      | `demos/chat`, `demos/websocket` |
//! | [`accounts`] | register / login / logout, Argon2id           | —                      |
//! | [`cart`]     | live shopping cart (long-poll, WebSocket)     | book ch. 5             |
//! | [`store`]    | append-only files written off the loop        | —                      |
//! | [`echo`]     | line echo server (telnet / nc)                | `demos/tcpecho`        |
//! | [`ws_echo`]  | `/ws/echo`: WebSocket echo endpoint           | `maint/test/websocket` |
//! | [`upstream`] | async-vs-blocking "tweet rate" demo           | book ch. 5             |
//! | [`shutdown`] | SIGINT/SIGTERM: stop accepting, drain, stop   | issue #1791            |
//! | [`memory`]   | give freed memory back after a mass close     | —                      |
//! | [`sparse`]   | shrink waiter/member tables that emptied      | —                      |
pub mod accounts;
pub mod assets;
pub mod cart;
pub mod chat;
pub mod config;
pub mod echo;
pub mod memory;
pub mod shutdown;
pub mod site;
pub mod sparse;
pub mod store;
pub mod upstream;
pub mod ws_echo;
