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
//!
//! A cart holds its book for [`CART_HOLD`] (15 minutes) after its last
//! add, then gives it back (a sweep every 30 s): in the book a cart holds
//! it for ever, so a client that added eleven times with made-up session
//! ids sold out the shop for good.

mod handlers;
mod inventory;
pub mod socket;

pub use handlers::mount;
pub use inventory::{Inventory, Refusal, WaitKey, CART_HOLD, TOTAL_INVENTORY};
