//! Broadcasting with [`PreparedMessage`]: one frame encoded once and
//! written to every member of a room reaches each of them intact and in
//! order, over real sockets, while members that left are skipped.

mod websocket_support;

use std::cell::RefCell;
use std::net::TcpStream;

use squall::websocket::{Message, PreparedMessage, WebSocket, WebSocketHandler, WebSocketRoute};

use websocket_support::{Ev, Events, TestServer, GUARD};

/// A room: "go" from anyone sends every member a text and a binary
/// message, each prepared once.
struct Room {
    events: Events,
    members: RefCell<Vec<WebSocket>>,
}

impl WebSocketHandler for Room {
    fn open(&self, ws: &WebSocket) {
        self.members.borrow_mut().push(ws.clone());
        self.events.push(Ev::Open(ws.id()));
    }
    fn on_message(&self, ws: &WebSocket, message: Message) {
        let Message::Text(text) = message else { return };
        let Some(round) = text.strip_prefix("go ") else {
            return;
        };
        let text = PreparedMessage::text(&format!("round {round} from #{}", ws.id()));
        let binary = PreparedMessage::binary(round.as_bytes());
        // A copy of the list: no borrow of our own is held while writing.
        let members = self.members.borrow().clone();
        let mut sent = 0;
        for member in &members {
            if member.write_prepared(&text).is_ok() && member.write_prepared(&binary).is_ok() {
                sent += 1;
            }
        }
        self.events
            .push(Ev::Text(ws.id(), format!("sent to {sent}")));
    }
    fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
        self.members.borrow_mut().retain(|m| m != ws);
        self.events.push(Ev::Close(ws.id(), code, reason.into()));
    }
}

type Client = tungstenite::WebSocket<TcpStream>;

fn connect(server: &TestServer) -> Client {
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    let (client, _) = tungstenite::client(server.url("/room"), stream).expect("handshake");
    client
}

fn read_data(client: &mut Client) -> tungstenite::Message {
    loop {
        let message = client.read().expect("read");
        if message.is_text() || message.is_binary() {
            return message;
        }
    }
}

#[test]
fn a_prepared_broadcast_reaches_every_member_in_order() {
    const N: usize = 40;
    let server = TestServer::start(|app, events| {
        app.route(
            "/room",
            WebSocketRoute::new(Room {
                events,
                members: RefCell::new(Vec::new()),
            }),
        );
    });
    let mut clients: Vec<Client> = (0..N).map(|_| connect(&server)).collect();
    let sender = server.events.wait_open(N);
    // One member leaves before the broadcasts: it must be skipped, not
    // written to, and must not stop the others from getting theirs.
    let mut leaver = clients.remove(0);
    leaver.close(None).expect("close");
    while leaver.read().is_ok() {}
    server.events.wait_for("the leaver's on_close", |evs| {
        evs.iter().any(|e| matches!(e, Ev::Close(..)))
    });

    for round in 0..3 {
        clients[N - 2]
            .send(tungstenite::Message::text(format!("go {round}")))
            .expect("send");
        for (i, client) in clients.iter_mut().enumerate() {
            let expected_text = format!("round {round} from #{sender}");
            match read_data(client) {
                tungstenite::Message::Text(t) => {
                    assert_eq!(t.as_str(), expected_text, "client {i}")
                }
                other => panic!("client {i}: {other:?}"),
            }
            match read_data(client) {
                tungstenite::Message::Binary(b) => {
                    assert_eq!(&b[..], round.to_string().as_bytes(), "client {i}")
                }
                other => panic!("client {i}: {other:?}"),
            }
        }
    }
    let sent: Vec<Ev> = server
        .events
        .all()
        .into_iter()
        .filter(|e| matches!(e, Ev::Text(..)))
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(sent
        .iter()
        .all(|e| matches!(e, Ev::Text(_, t) if *t == format!("sent to {}", N - 1))));

    for mut client in clients {
        client.close(None).expect("close");
        while client.read().is_ok() {}
    }
    server.events.assert_each_closed_once();
    server.assert_released();
}
