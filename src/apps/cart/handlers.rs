//! HTTP handlers of the cart (the book's `DetailHandler`, `CartHandler`,
//! `StatusHandler`); [`mount`] also adds the WebSocket (`socket.rs`).

use std::rc::Rc;
use std::time::Duration;

use serde_json::json;

use super::inventory::{Inventory, Refusal, CART_HOLD, TOTAL_INVENTORY};
use crate::web::{Application, Ctx, HTTPError, HandlerResult, RequestHandler};
use crate::websocket::WebSocketRoute;

/// Longest session id accepted (a uuid is 36).
const MAX_SESSION_LEN: usize = 64;

/// Mount the cart's routes on `app` (its WebSocket pings as the
/// application's `websocket_ping_interval` says); returns the shared
/// inventory.
pub fn mount(app: &mut Application) -> Rc<Inventory> {
    let inventory = Rc::new(Inventory::default());
    inventory.expire_abandoned_carts(CART_HOLD, Duration::from_secs(30));
    app.route(
        "/cart",
        CartPage {
            inventory: Rc::clone(&inventory),
        },
    )
    .api();
    app.route(
        "/cart/status",
        CartStatus {
            inventory: Rc::clone(&inventory),
        },
    )
    .api();
    let socket = super::socket::CartSocket::new(Rc::clone(&inventory));
    app.route("/cart/socket", WebSocketRoute::new(socket));
    inventory
}

/// `GET /cart`: the product page; `POST /cart`: add or remove.
struct CartPage {
    inventory: Rc<Inventory>,
}

impl RequestHandler for CartPage {
    fn allowed_methods(&self) -> &[&str] {
        &["GET", "HEAD", "POST"]
    }

    fn get(&self, cx: &Ctx) -> HandlerResult {
        let session = uuid::Uuid::new_v4().to_string();
        cx.render(
            "cart.html",
            json!({"session": session, "count": self.inventory.count(), "total": TOTAL_INVENTORY}),
        )
    }

    fn post(&self, cx: &Ctx) -> HandlerResult {
        let session = cx.get_argument("session")?;
        if session.is_empty()
            || session.len() > MAX_SESSION_LEN
            || !session
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(HTTPError::bad_request(
                "session must be 1-64 letters, digits or '-'",
            ));
        }
        match cx.get_argument("action")?.as_str() {
            "add" => {
                if let Err(Refusal::SoldOut) = self.inventory.add(&session) {
                    cx.set_status(409);
                    cx.finish_json(&json!({
                        "error": {"code": 409, "message": "sold out"},
                        "inventoryCount": 0,
                        "inCart": false,
                    }));
                    return Ok(());
                }
            }
            "remove" => self.inventory.remove(&session),
            other => {
                return Err(HTTPError::bad_request(format!(
                    "action must be add or remove, not {other:?}"
                )))
            }
        }
        cx.finish_json(&json!({
            "inventoryCount": self.inventory.count(),
            "inCart": self.inventory.in_cart(&session),
        }));
        Ok(())
    }
}

/// `GET /cart/status?count=N`: answer when the count is not N.
struct CartStatus {
    inventory: Rc<Inventory>,
}

impl RequestHandler for CartStatus {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let seen = match cx.get_argument_opt("count")? {
            None => None,
            Some(s) => Some(
                s.parse::<i64>()
                    .map_err(|_| HTTPError::bad_request("count must be an integer"))?,
            ),
        };
        let now = self.inventory.count();
        if seen != Some(i64::from(now)) {
            cx.finish_json(&json!({"inventoryCount": now}));
            return Ok(());
        }
        // A response handle, not a Ctx clone: the request is freed while
        // the waiter is parked.
        let waiter = cx.response_handle();
        let key = self
            .inventory
            .wait_for_change(move |count| waiter.finish_json(&json!({"inventoryCount": count})));
        let inventory = Rc::clone(&self.inventory);
        cx.on_connection_close(move || inventory.cancel_wait(key));
        Ok(())
    }
}
