//! The demo applications, kept apart from the framework so a reader can see
//! the framework without them.
//!
//! | module   | what it is                                  | Tornado original     |
//! |----------|---------------------------------------------|----------------------|
//! | [`echo`] | line echo server (telnet / nc)              | `demos/tcpecho`      |
pub mod echo;
