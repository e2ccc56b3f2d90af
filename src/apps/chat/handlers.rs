//! The chat's routes: pages `/` and `/room/{name}`, the API
//! `/a/message/new` and `/a/message/updates`.
//!
//! Mirrors the handlers of Tornado 3.2's `demos/chat/chatdemo.py`
//! (`MainHandler`, `MessageNewHandler`, `MessageUpdatesHandler`). Every
//! route needs a logged-in user (`.authenticated()`: pages redirect to the
//! login page, the API answers 403), and the Application has checked
//! `_xsrf` on every POST before these run.

use super::{Chat, Room, LOBBY};
use crate::apps::accounts::{safe_next, Accounts};
use crate::web::{Application, Ctx, HTTPError, HandlerResult, RequestHandler};

/// Add the chat routes to `app`.
pub fn mount(app: &mut Application, chat: &Chat, accounts: &Accounts) {
    let (chat, accounts) = (chat.clone(), accounts.clone());
    let page = RoomPage {
        chat: chat.clone(),
        accounts: accounts.clone(),
    };
    app.route("/", page.clone()).authenticated();
    app.route("/room/{name}", page).authenticated();
    app.route("/room", JoinRoom).authenticated();
    let new = MessageNew {
        chat: chat.clone(),
        accounts: accounts.clone(),
    };
    app.route("/a/message/new", new).authenticated().api();
    let updates = MessageUpdates { chat, accounts };
    app.route("/a/message/updates", updates)
        .authenticated()
        .api();
}

/// `GET /` (the lobby) and `GET /room/{name}`: the chat page with the
/// room's cached messages.
#[derive(Clone)]
struct RoomPage {
    chat: Chat,
    accounts: Accounts,
}

impl RequestHandler for RoomPage {
    fn prepare(&self, cx: &Ctx) -> HandlerResult {
        self.accounts.require_known_user(cx, false)
    }

    fn get(&self, cx: &Ctx) -> HandlerResult {
        let (room, template) = match cx.path_arg("name") {
            Some(name) => (self.chat.room(name)?, "room.html"),
            None => (self.chat.room(LOBBY)?, "index.html"),
        };
        let messages: Vec<_> = room
            .page_messages()
            .iter()
            .map(|m| serde_json::json!({"id": m.id, "html": m.html}))
            .collect();
        let rooms: Vec<_> = self
            .chat
            .room_list(room.name())
            .into_iter()
            .map(|r| serde_json::json!({"name": r.name, "messages": r.messages}))
            .collect();
        cx.render(
            template,
            serde_json::json!({
                "room": room.name(),
                "messages": messages,
                "rooms": rooms,
                "max_body_bytes": self.chat.max_body_bytes(),
            }),
        )
    }
}

/// `GET /room?name=X`: the sidebar's "go to room" form (works without
/// JavaScript) — redirects to `/room/x`.
struct JoinRoom;

impl RequestHandler for JoinRoom {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let name = cx.get_argument("name")?.to_ascii_lowercase();
        if !super::valid_room_name(&name) {
            return Err(super::RoomError::BadName.into());
        }
        let url = if name == LOBBY {
            "/".to_string()
        } else {
            format!("/room/{name}")
        };
        cx.redirect(&url, false);
        Ok(())
    }
}

/// The `room` argument (default: the lobby) as a room; bad name → 404.
fn room_argument(chat: &Chat, cx: &Ctx) -> Result<Room, HTTPError> {
    let name = cx.get_argument_opt("room")?;
    Ok(chat.room(name.as_deref().unwrap_or(LOBBY))?)
}

/// `POST /a/message/new`: post a message; answer it as JSON, or redirect
/// to a local `next` (the form works without JavaScript).
struct MessageNew {
    chat: Chat,
    accounts: Accounts,
}

impl RequestHandler for MessageNew {
    fn allowed_methods(&self) -> &[&str] {
        &["POST"]
    }

    fn prepare(&self, cx: &Ctx) -> HandlerResult {
        self.accounts.require_known_user(cx, true)
    }

    fn post(&self, cx: &Ctx) -> HandlerResult {
        let room = room_argument(&self.chat, cx)?;
        let body = cx.get_argument_opt("body")?.unwrap_or_default();
        let from = cx.current_user().unwrap_or_default();
        let message = room.post_message(from, &body).map_err(|e| {
            let error = HTTPError::new(e.status(), e.to_string());
            match e.retry_after_secs() {
                Some(secs) => error.with_header("Retry-After", secs.to_string()),
                None => error,
            }
        })?;
        match cx.get_argument_opt("next")? {
            Some(next) => cx.redirect(safe_next(&next), false),
            None => cx.finish_json_bytes(message.json.as_bytes()),
        }
        Ok(())
    }
}

/// `POST /a/message/updates`: the long poll. Answers at once with the
/// messages after `cursor`, or parks the request until the next message;
/// a client that disconnects is forgotten at once.
struct MessageUpdates {
    chat: Chat,
    accounts: Accounts,
}

impl RequestHandler for MessageUpdates {
    fn allowed_methods(&self) -> &[&str] {
        &["POST"]
    }

    fn prepare(&self, cx: &Ctx) -> HandlerResult {
        self.accounts.require_known_user(cx, true)
    }

    fn post(&self, cx: &Ctx) -> HandlerResult {
        let room = room_argument(&self.chat, cx)?;
        let cursor = cx.get_argument_opt("cursor")?;
        // A response handle, not a Ctx clone: the request, its arguments
        // and cookies are freed while the waiter is parked.
        let waiter = cx.response_handle();
        let parked = room.wait_for_messages(cursor.as_deref(), move |body| {
            waiter.finish_json_bytes(body)
        });
        if let Some(id) = parked {
            cx.on_connection_close(move || room.cancel_wait(id));
        }
        Ok(())
    }
}
