//! The chat's state: rooms, each with its last 200 messages, its parked
//! long-poll waiters and its WebSocket members, plus the broadcasts made
//! while one connection was being handled.
//!
//! Connections are named by their slab index. A waiter or member knows its
//! slot in the room's list, so leaving is a `swap_remove`; the connection
//! moved into the freed slot is returned for the caller to update (the
//! caller owns the connections).

use crate::message::{Ids, Message};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// Messages kept per room (Tornado's chat demo keeps 200 too).
pub const HISTORY: usize = 200;
/// Most rooms; a new room past this is refused (503), which bounds the
/// history's memory.
pub const MAX_ROOMS: usize = 1024;
/// Longest message body in characters (squall's and the Tornado peer's).
pub const MAX_MESSAGE_BODY: usize = 4096;

/// Why a room cannot be used.
pub enum RoomError {
    /// Not `[A-Za-z0-9_-]{1,64}`.
    BadName,
    /// [`MAX_ROOMS`] reached.
    Full,
}

/// One room.
#[derive(Default)]
pub struct Room {
    /// The last [`HISTORY`] messages, oldest first: answers a cursor.
    history: VecDeque<Rc<Message>>,
    /// Parked long-poll connections, answered by the next message.
    pub waiters: Vec<usize>,
    /// WebSocket connections, sent every message.
    pub members: Vec<usize>,
}

/// A message to deliver to its room's waiters and members.
pub struct Broadcast {
    /// Whose waiters and members get it.
    pub room: u32,
    /// Shared with the history: serialized once, never copied.
    pub message: Rc<Message>,
}

/// All rooms and the gauges `/metrics` shows.
pub struct Chat {
    /// Rooms by index: waiters and members hold a `u32`, not a name.
    rooms: Vec<Room>,
    /// Name to index, for the `room` field of each request.
    by_name: HashMap<Box<str>, u32>,
    /// Message ids and `_xsrf` tokens.
    ids: Ids,
    /// Posted while handling one connection; the server delivers them right
    /// after, since delivering needs the other connections.
    pub pending: VecDeque<Broadcast>,
    /// Parked long-poll waiters in all rooms (`squall_chat_waiters`).
    pub waiters: usize,
    /// Open WebSocket members in all rooms.
    pub websockets: usize,
    /// Open connections, kept by the server (`squall_http_connections`).
    pub connections: usize,
}

impl Chat {
    /// No rooms yet.
    pub fn new() -> Chat {
        Chat {
            rooms: Vec::new(),
            by_name: HashMap::new(),
            ids: Ids::new(),
            pending: VecDeque::new(),
            waiters: 0,
            websockets: 0,
            connections: 0,
        }
    }

    /// The room called `name`, created on first use.
    pub fn room(&mut self, name: &str) -> Result<u32, RoomError> {
        if let Some(r) = self.by_name.get(name) {
            return Ok(*r);
        }
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(RoomError::BadName);
        }
        if self.rooms.len() >= MAX_ROOMS {
            return Err(RoomError::Full);
        }
        let r = self.rooms.len() as u32;
        self.rooms.push(Room::default());
        self.by_name.insert(name.into(), r);
        Ok(r)
    }

    /// Room `r` (an index [`Chat::room`] handed out).
    pub fn get(&self, r: u32) -> &Room {
        &self.rooms[r as usize]
    }

    /// The messages after the one with id `cursor`; an unknown or missing
    /// cursor gets the whole history (the rule squall and Tornado share).
    pub fn since(&self, r: u32, cursor: Option<&str>) -> impl Iterator<Item = &Rc<Message>> {
        let h = &self.rooms[r as usize].history;
        let start = cursor
            .and_then(|c| h.iter().rposition(|m| m.id == c))
            .map_or(0, |i| i + 1);
        h.range(start..)
    }

    /// A fresh `_xsrf` token (32 hex digits, unique within the process).
    pub fn token(&mut self) -> String {
        self.ids.next_id().replace('-', "")
    }

    /// Post a message: into the history, and queued for delivery.
    pub fn post(&mut self, r: u32, from: &str, body: &str) -> Rc<Message> {
        let m = Rc::new(Message::new(self.ids.next_id(), from, body));
        let h = &mut self.rooms[r as usize].history;
        if h.len() >= HISTORY {
            h.pop_front();
        }
        h.push_back(Rc::clone(&m));
        self.pending.push_back(Broadcast {
            room: r,
            message: Rc::clone(&m),
        });
        m
    }

    /// Park connection `conn` in room `r`; returns its slot.
    pub fn park(&mut self, r: u32, conn: usize) -> u32 {
        self.waiters += 1;
        push(&mut self.rooms[r as usize].waiters, conn)
    }

    /// Remove the waiter in `slot`; returns the connection moved into it.
    pub fn unpark(&mut self, r: u32, slot: u32) -> Option<usize> {
        self.waiters -= 1;
        remove(&mut self.rooms[r as usize].waiters, slot)
    }

    /// Every waiter of room `r`, unparked at once (a message arrived).
    pub fn take_waiters(&mut self, r: u32) -> Vec<usize> {
        let w = std::mem::take(&mut self.rooms[r as usize].waiters);
        self.waiters -= w.len();
        w
    }

    /// Hand back the list [`Chat::take_waiters`] took, emptied, so its
    /// allocation serves the next round (unless new waiters came meanwhile).
    pub fn recycle_waiters(&mut self, r: u32, mut list: Vec<usize>) {
        let w = &mut self.rooms[r as usize].waiters;
        if w.is_empty() {
            list.clear();
            *w = list;
        }
    }

    /// Add WebSocket connection `conn` to room `r`; returns its slot.
    pub fn join(&mut self, r: u32, conn: usize) -> u32 {
        self.websockets += 1;
        push(&mut self.rooms[r as usize].members, conn)
    }

    /// Remove the member in `slot`; returns the connection moved into it.
    pub fn leave(&mut self, r: u32, slot: u32) -> Option<usize> {
        self.websockets -= 1;
        remove(&mut self.rooms[r as usize].members, slot)
    }

    /// The Prometheus text of `GET /metrics`.
    pub fn metrics(&self) -> String {
        format!(
            "# TYPE squall_chat_waiters gauge\nsquall_chat_waiters {}\n\
             # TYPE squall_chat_websockets gauge\nsquall_chat_websockets {}\n\
             # TYPE squall_chat_rooms gauge\nsquall_chat_rooms {}\n\
             # TYPE squall_http_connections gauge\nsquall_http_connections {}\n",
            self.waiters,
            self.websockets,
            self.rooms.len(),
            self.connections
        )
    }
}

/// Append `conn`; its slot is the old length.
fn push(list: &mut Vec<usize>, conn: usize) -> u32 {
    list.push(conn);
    (list.len() - 1) as u32
}

/// `swap_remove` slot `slot`; the connection that took its place, if any.
fn remove(list: &mut Vec<usize>, slot: u32) -> Option<usize> {
    let slot = slot as usize;
    if slot >= list.len() {
        return None;
    }
    list.swap_remove(slot);
    list.get(slot).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_history_and_slots() {
        let mut c = Chat::new();
        let r = c.room("room1").ok().unwrap();
        assert!(c.room("bad room").is_err());
        assert_eq!(c.since(r, None).count(), 0);
        let a = c.post(r, "bob", "one");
        let b = c.post(r, "bob", "two");
        assert_eq!(c.since(r, Some(&a.id)).count(), 1);
        assert_eq!(c.since(r, Some(&b.id)).count(), 0);
        assert_eq!(c.since(r, Some("unknown")).count(), 2);
        for i in 0..HISTORY {
            c.post(r, "bob", &i.to_string());
        }
        assert_eq!(c.since(r, None).count(), HISTORY);
        assert_eq!(c.pending.len(), HISTORY + 2);

        assert_eq!(c.park(r, 10), 0);
        assert_eq!(c.park(r, 11), 1);
        assert_eq!(c.park(r, 12), 2);
        // Slot 0 leaves: connection 12 moves into it.
        assert_eq!(c.unpark(r, 0), Some(12));
        assert_eq!(c.unpark(r, 1), None);
        assert_eq!(c.waiters, 1);
        assert_eq!(c.take_waiters(r), vec![12]);
        assert_eq!(c.waiters, 0);
        assert!(c.metrics().contains("squall_chat_waiters 0\n"));
    }
}
