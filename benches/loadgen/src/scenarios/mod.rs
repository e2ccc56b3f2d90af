//! One module per scenario; each exposes `FLAGS` and `run(argv) -> JSON`.

pub mod cart;
pub mod chat;
pub mod hello;
pub mod idle;
pub mod longpoll;
pub mod storm;
pub mod wsfanout;
