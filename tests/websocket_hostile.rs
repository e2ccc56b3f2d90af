//! The server side against hostile clients: what a peer that does not play
//! along can make the server hold or do. Each test here came from a probe
//! of the running server (session 11) and failed before the fix it names.
//! The protocol rules themselves (bad frames, close codes, UTF-8) are in
//! `websocket_conformance.rs`; the usual write bound in
//! `websocket_lifecycle.rs`.

mod websocket_support;

use std::rc::Rc;

use squall::websocket::{
    Message, PreparedMessage, WebSocket, WebSocketHandler, WebSocketOptions, WebSocketRoute,
};

use websocket_support::{masked, Ev, Events, RawClient, TestServer};

fn finish(server: &TestServer) {
    server.events.assert_each_closed_once();
    server.assert_released();
}

// ----- the write bound and tiny frames ---------------------------------------

/// Bound of the `/tiny` route: small, so the test queues little, and below
/// the size at which a stream flushes in the middle of a loop iteration
/// (64 KiB), so the kernel takes none of the flood before the bound trips.
const TINY_BOUND: usize = 16 * 1024;

/// `/tiny`: on the text `flood`, queues empty broadcast frames (2 bytes on
/// the wire) on this connection until a write is refused, and records how
/// many were still queued then, and how many were accepted in all, as the
/// text `queued <q> of <n>`.
struct TinyFlood {
    events: Events,
}

impl WebSocketHandler for TinyFlood {
    fn options(&self, _inherited: WebSocketOptions) -> WebSocketOptions {
        WebSocketOptions {
            max_write_buffer: TINY_BOUND,
            ..WebSocketOptions::default()
        }
    }
    fn open(&self, ws: &WebSocket) {
        self.events.push(Ev::Open(ws.id()));
    }
    fn on_message(&self, ws: &WebSocket, message: Message) {
        if message != Message::Text("flood".into()) {
            return;
        }
        // The smallest frame there is: how a room's join/leave notices or
        // one-word messages look next to a 4 MiB bound.
        let frame = PreparedMessage::text("");
        let mut accepted = 0usize;
        let mut queued = 0;
        // Bounded: without any bound at all this stops at a million.
        while accepted < 1_000_000 {
            // Counted before each write: what sits in this connection's
            // queue when the refusal comes (the kernel may have taken the
            // rest).
            queued = ws.buffered_amount() / frame.frame().len();
            if ws.write_prepared(&frame).is_err() {
                break;
            }
            accepted += 1;
        }
        self.events
            .push(Ev::Text(ws.id(), format!("queued {queued} of {accepted}")));
    }
    fn on_close(&self, ws: &WebSocket, code: u16, reason: &str) {
        self.events.push(Ev::Close(ws.id(), code, reason.into()));
    }
}

/// Probe: a `/chatsocket` client that never reads, in a room flooded with
/// small messages. Before the fix the bound counted only the frames'
/// bytes, but a broadcast frame is queued by reference, one queue slot per
/// frame: 300 such clients took the server from 10 to 113 MB (≈ 340 KB
/// each for 323-byte messages and a 4 MiB bound), and with 2-byte frames a
/// 64 KiB bound let 32 767 slots (≥ 512 KiB) pile up per client. The slots
/// now count against the bound, so what a connection holds for a peer
/// that does not read stays within it, whatever the frames' size.
#[test]
fn a_flood_of_tiny_shared_frames_is_bounded_by_what_the_queue_holds() {
    let server = TestServer::start(|app, events| {
        app.route("/tiny", WebSocketRoute::new(TinyFlood { events }));
    });
    // Asks for the flood, then never reads; a small receive buffer, so
    // that the kernel soon takes no more.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&server.addr.into()).expect("connect");
    let request = RawClient::upgrade_request(server.addr, "/tiny", "");
    let (mut c, head) = RawClient::request_over(socket.into(), request.as_bytes());
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let id = server.events.wait_open(1);
    c.send(&masked(0x81, b"flood"));
    let events = server.events.wait_for("the flood to stop", |events| {
        events
            .iter()
            .any(|e| matches!(e, Ev::Text(i, t) if *i == id && t.starts_with("queued ")))
    });
    let (queued, accepted) = events
        .iter()
        .find_map(|e| match e {
            Ev::Text(i, t) if *i == id => {
                let (q, n) = t.strip_prefix("queued ")?.split_once(" of ")?;
                Some((q.parse::<usize>().ok()?, n.parse::<usize>().ok()?))
            }
            _ => None,
        })
        .expect("the counts");
    assert!(
        queued > 0 && accepted < 1_000_000,
        "queued {queued} of {accepted}: the bound never tripped"
    );
    // Each queued frame costs at least the pointer to its shared bytes.
    let slot = std::mem::size_of::<Rc<[u8]>>();
    assert!(
        queued * slot <= TINY_BOUND,
        "{queued} frames queued: at least {} bytes of queue for a {TINY_BOUND}-byte bound",
        queued * slot
    );
    assert_eq!(
        server.events.wait_close(id),
        (1008, "write buffer full".into())
    );
    drop(c);
    finish(&server);
}

// ----- announced lengths -----------------------------------------------------

/// Address space of this process (the test and its server), from
/// `/proc/self/status`, in KiB.
fn vm_size_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize")
}

/// Probe: 500 clients each sent the 14-byte header of a 1 MiB binary frame
/// (the limit of `/ws/echo`) and 10 bytes of it, then nothing. Before the
/// fix the server reserved the whole announced length at the header: its
/// address space grew by 490 MB (committed memory under strict
/// overcommit) for 12 KB received. Now a header reserves at most one
/// read's worth (64 KiB); the rest grows as bytes arrive.
#[test]
fn a_frame_header_alone_does_not_reserve_its_announced_length() {
    const ROUNDS: usize = 3;
    const PER_ROUND: usize = 48;
    const ANNOUNCED: u64 = 1024 * 1024;
    let server = TestServer::echo();
    let mut clients = Vec::new();
    // Address space is also taken by one-time mappings of this process (a
    // thread's malloc arena is 64 MiB), which may land in any one round:
    // the round that grew least is the one that measures the headers.
    let mut least_mib = usize::MAX;
    for _ in 0..ROUNDS {
        let before = vm_size_kib();
        for _ in 0..PER_ROUND {
            let mut c = RawClient::connect(server.addr, "/echo");
            // A ping, then the header (64-bit length, zero mask) and a
            // little of the payload, in one write.
            let mut wire = masked(0x89, b"p");
            wire.extend_from_slice(&[0x82, 0xFF]);
            wire.extend_from_slice(&ANNOUNCED.to_be_bytes());
            wire.extend_from_slice(&[0; 4]);
            wire.extend_from_slice(&[0; 10]);
            c.send(&wire);
            // The pong is flushed at the end of the loop iteration that
            // read the ping, and with it the header behind it.
            let pong = c.recv_frame();
            assert_eq!((pong.opcode(), &pong.payload[..]), (0xA, &b"p"[..]));
            clients.push(c);
        }
        least_mib = least_mib.min(vm_size_kib().saturating_sub(before) / 1024);
    }
    // Reserving the announced length costs PER_ROUND MiB a round; a read's
    // worth at most PER_ROUND / 16.
    assert!(
        least_mib < PER_ROUND / 3,
        "address space grew by {least_mib} MiB for {PER_ROUND} announced, unsent MiB"
    );
    drop(clients);
    for id in 1..=(ROUNDS * PER_ROUND) as u64 {
        assert_eq!(server.events.wait_close(id).0, 1006);
    }
    finish(&server);
}
