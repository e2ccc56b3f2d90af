//! The shopping cart of "Introduction to Tornado", chapter 5: one book,
//! ten in stock, every open page sees the count change live.
//!
//! | request | answer |
//! |---|---|
//! | `GET /cart` | product page with a fresh session id and the current count |
//! | `POST /cart` (`action=add\|remove`, `session`) | `{"inventoryCount": N, "inCart": bool}`; add when sold out: 409 |
//! | `GET /cart/status?count=<last seen>` | long-poll: `{"inventoryCount": N}` as soon as N ≠ count |
//! | `GET /cart/socket` (WebSocket) | `{"inventoryCount": N}` on open and on every change ([`socket`]) |
//!
//! The book's version has two bugs this one fixes: it sells 50 books out of
//! 10 when 50 clients add at once (the count is not checked), and parked
//! long-poll callbacks of departed clients pile up until the next change
//! (no `on_connection_close`). Here the count is checked and changed in one
//! step on the single loop thread (no race is possible), inventory never
//! goes below 0, and a departed waiter is removed at once.
//!
//! The `count` a client sends back closes the gap between two polls: a
//! change that happened while no request was parked is answered at once.

mod handlers;
mod inventory;
pub mod socket;

pub use handlers::mount;
pub use inventory::{Inventory, Refusal, WaitKey, TOTAL_INVENTORY};
