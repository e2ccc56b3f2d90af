//! The demo applications and the `squall` server that mounts them, kept
//! apart from the framework so a reader can see the framework without them.
//!
//! | module     | what it is                                  | Tornado original     |
//! |------------|---------------------------------------------|----------------------|
//! | [`config`] | command-line options of the binary          | `options.py`         |
//! | [`site`]   | the server: all apps, `/healthz`, `/metrics` | —                    |
//! | [`echo`]   | line echo server (telnet / nc)              | `demos/tcpecho`      |
//! | [`upstream`] | async-vs-blocking tweet-rate demo         | book ch. 5           |
pub mod config;
pub mod echo;
pub mod site;
pub mod upstream;
