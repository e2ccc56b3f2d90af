//! `GET /cart/socket`: the stock count pushed over a WebSocket —
//! `{"inventoryCount": N}` once at open, then at every change.
//!
//! The book's chapter 5 ends with this version of the status handler
//! (`tornado.websocket.WebSocketHandler`: `open` registers a callback with
//! the shopping cart, `on_close` unregisters it). Each connection is one
//! [`Inventory::subscribe`]; `on_close` unsubscribes it, so a page that
//! left costs nothing at the next change. No login (the cart has none);
//! the default same-origin check stays on. Anything the client sends is
//! ignored (frames over [`MAX_FRAME`] close it with 1009).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::json;

use super::inventory::Inventory;
use crate::websocket::{Message, WebSocket, WebSocketHandler, WebSocketOptions};

/// Largest frame accepted from a client (it has nothing to say).
pub const MAX_FRAME: usize = 1024;

/// The `/cart/socket` handler.
pub struct CartSocket {
    /// The stock (shared with the HTTP handlers).
    inventory: Rc<Inventory>,
    /// Subscription key per open connection, for `on_close`.
    subscriptions: RefCell<HashMap<WebSocket, usize>>,
}

impl CartSocket {
    /// A handler pushing `inventory`'s count.
    pub fn new(inventory: Rc<Inventory>) -> CartSocket {
        CartSocket {
            inventory,
            subscriptions: RefCell::new(HashMap::new()),
        }
    }
}

/// The one frame this socket sends.
fn count_frame(count: u32) -> String {
    json!({ "inventoryCount": count }).to_string()
}

impl WebSocketHandler for CartSocket {
    /// The application's pings stay: the page says nothing, so without
    /// them a vanished one would hold its subscription for as long as its
    /// idle connection lasts (for ever, without TCP keep-alive).
    fn options(&self, inherited: WebSocketOptions) -> WebSocketOptions {
        WebSocketOptions {
            max_message_size: MAX_FRAME,
            ..inherited
        }
    }

    fn open(&self, ws: &WebSocket) {
        let _ = ws.write_message(&count_frame(self.inventory.count()));
        let socket = ws.clone();
        // Runs inside Inventory::notify with its table borrowed: it only
        // queues bytes (a write past the bound closes the socket, and
        // on_close runs later, from the loop), never touches the inventory.
        let key = self.inventory.subscribe(move |count| {
            let _ = socket.write_message(&count_frame(count));
        });
        self.subscriptions.borrow_mut().insert(ws.clone(), key);
    }

    fn on_message(&self, _ws: &WebSocket, _message: Message) {}

    fn on_close(&self, ws: &WebSocket, _code: u16, _reason: &str) {
        let key = self.subscriptions.borrow_mut().remove(ws);
        if let Some(key) = key {
            self.inventory.unsubscribe(key);
        }
    }
}
