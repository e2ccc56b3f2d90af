//! squall's WebSocket server against an independent client: the
//! `tungstenite` crate (plain TCP), driven from the test thread while the
//! server runs its own loop.
//!
//! Each test ends by checking that every connection got exactly one
//! `on_close` and that the server let go of everything it held.

mod websocket_support;

use std::net::TcpStream;

use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Error, Message, WebSocket};

use websocket_support::{Ev, RawClient, TestServer, GUARD};

type Client = WebSocket<TcpStream>;

fn connect(server: &TestServer, path: &str) -> Client {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    let (ws, response) = tungstenite::client(server.url(path), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Read until the server's Close arrives; return its code (tungstenite
/// answers it), then the end of the stream; then drop the socket, as a
/// browser does. (A client that kept its socket open after the server's
/// FIN would make the server linger until its close timeout.)
fn read_close(mut ws: Client) -> Option<(u16, String)> {
    let frame = match ws.read() {
        Ok(Message::Close(frame)) => frame,
        other => panic!("expected Close, got {other:?}"),
    };
    // tungstenite sends its reply on the next call, then sees EOF.
    match ws.read() {
        Err(Error::ConnectionClosed) => {}
        other => panic!("expected the end of the connection, got {other:?}"),
    }
    frame.map(|f| (u16::from(f.code), f.reason.to_string()))
}

fn finish(server: &TestServer) {
    server.events.assert_each_closed_once();
    server.assert_released();
}

#[test]
fn handshake_negotiates_a_subprotocol() {
    let server = TestServer::echo();
    let stream = TcpStream::connect(server.addr).unwrap();
    let request = tungstenite::http::Request::builder()
        .uri(server.url("/echo"))
        .header("Host", server.addr.to_string())
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .header("Sec-WebSocket-Protocol", "superchat, chat")
        .body(())
        .unwrap();
    let (mut ws, response) = tungstenite::client(request, stream).expect("handshake");
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "chat"
    );
    assert!(response.headers().get("Server").is_some());
    ws.close(None).unwrap();
    assert!(matches!(ws.read(), Ok(Message::Close(None))));
    assert!(matches!(ws.read(), Err(Error::ConnectionClosed)));
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id), (1005, String::new()));
    finish(&server);
}

#[test]
fn echo_text_and_binary_at_boundary_sizes() {
    let server = TestServer::echo();
    let mut ws = connect(&server, "/echo");
    for size in [0usize, 125, 126, 65535, 65536, 1 << 20] {
        let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        ws.send(Message::text(text.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Text(got) => assert!(got.as_str() == text, "text of {size} bytes"),
            other => panic!("size {size}: {other:?}"),
        }
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        ws.send(Message::binary(data.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Binary(got) => assert!(got[..] == data[..], "binary of {size} bytes"),
            other => panic!("size {size}: {other:?}"),
        }
    }
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .unwrap();
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id), (1000, "done".into()));
    finish(&server);
}

#[test]
fn fragmented_messages_are_reassembled() {
    let server = TestServer::echo();
    let mut ws = connect(&server, "/echo");
    let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε";
    let bytes = text.as_bytes();
    // Cut inside a multi-byte character on purpose (byte 8 is inside 'µ').
    ws.send(Message::Frame(Frame::message(
        bytes[..8].to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        bytes[8..20].to_vec(),
        OpCode::Data(Data::Continue),
        false,
    )))
    .unwrap();
    // A ping between fragments is answered first.
    ws.send(Message::Ping(b"between".to_vec().into())).unwrap();
    ws.send(Message::Frame(Frame::message(
        bytes[20..].to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Pong(b"between".to_vec().into())
    );
    assert_eq!(ws.read().unwrap(), Message::text(text));
    // A binary message in 100 fragments of 1000 bytes.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    for (i, chunk) in data.chunks(1000).enumerate() {
        let opcode = if i == 0 { Data::Binary } else { Data::Continue };
        let last = (i + 1) * 1000 >= data.len();
        ws.send(Message::Frame(Frame::message(
            chunk.to_vec(),
            OpCode::Data(opcode),
            last,
        )))
        .unwrap();
    }
    assert_eq!(ws.read().unwrap(), Message::binary(data));
    ws.close(None).unwrap();
    let id = server.events.wait_open(1);
    server.events.wait_close(id);
    finish(&server);
}

#[test]
fn pings_are_answered_and_server_pings_arrive() {
    let server = TestServer::echo();
    let mut ws = connect(&server, "/echo");
    ws.send(Message::Ping(b"client ping".to_vec().into()))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Pong(b"client ping".to_vec().into())
    );
    ws.send(Message::Ping(Vec::new().into())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(Vec::new().into()));
    // Ask the server to ping us; tungstenite answers with a Pong.
    ws.send(Message::text("ping hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Ping(b"hello".to_vec().into()));
    ws.flush().unwrap();
    let id = server.events.wait_open(1);
    server.events.wait_for("the pong", |evs| {
        evs.contains(&Ev::Pong(id, b"hello".to_vec()))
    });
    let events = server.events.all();
    assert!(events.contains(&Ev::Ping(id, b"client ping".to_vec())));
    ws.close(None).unwrap();
    server.events.wait_close(id);
    finish(&server);
}

#[test]
fn close_codes_are_echoed_both_ways() {
    let server = TestServer::echo();
    // The client closes: the server echoes the code, on_close sees it.
    let mut ws = connect(&server, "/echo");
    ws.close(Some(CloseFrame {
        code: CloseCode::from(4000),
        reason: "client bye".into(),
    }))
    .unwrap();
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4000),
        other => panic!("{other:?}"),
    }
    assert!(matches!(ws.read(), Err(Error::ConnectionClosed)));
    let first = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(first), (4000, "client bye".into()));

    // The server closes: the client receives the code and reason.
    let mut ws = connect(&server, "/echo");
    ws.send(Message::text("close 3001 server says bye"))
        .unwrap();
    assert_eq!(read_close(ws), Some((3001, "server says bye".into())));
    let second = server.events.wait_open(2);
    let (code, _) = server.events.wait_close(second);
    assert_eq!(code, 3001, "tungstenite echoes the code");
    finish(&server);
}

#[test]
fn invalid_utf8_is_1007() {
    let server = TestServer::echo();
    let mut ws = connect(&server, "/echo");
    let invalid =
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
    ws.send(Message::Frame(Frame::message(
        invalid.to_vec(),
        OpCode::Data(Data::Text),
        true,
    )))
    .unwrap();
    assert_eq!(read_close(ws).map(|c| c.0), Some(1007));
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id).0, 1007);
    finish(&server);
}

#[test]
fn oversize_messages_are_1009() {
    let server = TestServer::echo();
    // /echo-small allows 1000 bytes: 1000 pass, 1001 fail.
    let mut ws = connect(&server, "/echo-small");
    ws.send(Message::binary(vec![1u8; 1000])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![1u8; 1000]));
    ws.send(Message::binary(vec![1u8; 1001])).unwrap();
    assert_eq!(read_close(ws).map(|c| c.0), Some(1009));
    // The default limit is 1 MiB, counted across fragments.
    let mut ws = connect(&server, "/echo");
    ws.send(Message::Frame(Frame::message(
        vec![b'a'; 1 << 19],
        OpCode::Data(Data::Text),
        false,
    )))
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        vec![b'a'; (1 << 19) + 1],
        OpCode::Data(Data::Continue),
        true,
    )))
    .unwrap();
    assert_eq!(read_close(ws).map(|c| c.0), Some(1009));
    for n in 1..=2 {
        let id = server.events.wait_open(n);
        assert_eq!(server.events.wait_close(id).0, 1009);
    }
    finish(&server);
}

/// tungstenite in the *server* role after a raw handshake: it sends
/// unmasked frames, which a server must refuse (RFC 6455 §5.1).
#[test]
fn unmasked_client_frames_are_1002() {
    let server = TestServer::echo();
    let raw = RawClient::connect(server.addr, "/echo");
    let mut config = WebSocketConfig::default();
    config.accept_unmasked_frames = true;
    let mut ws = WebSocket::from_raw_socket(raw.stream, Role::Server, Some(config));
    ws.send(Message::text("not masked")).unwrap();
    assert_eq!(read_close(ws).map(|c| c.0), Some(1002));
    let id = server.events.wait_open(1);
    assert_eq!(server.events.wait_close(id).0, 1002);
    // Nothing reached the application.
    assert!(!server
        .events
        .all()
        .iter()
        .any(|e| matches!(e, Ev::Text(..))));
    finish(&server);
}

#[test]
fn reserved_bits_are_1002() {
    let server = TestServer::echo();
    for (n, rsv) in [(1, 1), (2, 2), (3, 3)] {
        let mut ws = connect(&server, "/echo");
        let mut frame = Frame::message(b"rsv".to_vec(), OpCode::Data(Data::Text), true);
        let header = frame.header_mut();
        match rsv {
            1 => header.rsv1 = true,
            2 => header.rsv2 = true,
            _ => header.rsv3 = true,
        }
        ws.send(Message::Frame(frame)).unwrap();
        assert_eq!(read_close(ws).map(|c| c.0), Some(1002), "RSV{rsv}");
        let id = server.events.wait_open(n);
        assert_eq!(server.events.wait_close(id).0, 1002);
    }
    finish(&server);
}

#[test]
fn many_clients_at_once() {
    let server = TestServer::echo();
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let url = server.url("/echo");
            let addr = server.addr;
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(GUARD)).unwrap();
                let (mut ws, _) = tungstenite::client(url, stream).unwrap();
                for i in 0..50 {
                    let text = format!("client {t} message {i}");
                    ws.send(Message::text(text.clone())).unwrap();
                    assert_eq!(ws.read().unwrap(), Message::text(text));
                }
                ws.close(None).unwrap();
                loop {
                    match ws.read() {
                        Ok(_) => {}
                        Err(Error::ConnectionClosed) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    server.events.wait_for("20 closes", |evs| {
        evs.iter().filter(|e| matches!(e, Ev::Close(..))).count() == 20
    });
    finish(&server);
}
