//! Conformance cases organised like the Autobahn TestSuite's groups
//! (1 framing, 2 pings/pongs, 3 reserved bits, 4 opcodes, 5 fragmentation,
//! 6 UTF-8, 7 close handling, 9 limits, 10 misc), run over raw TCP against
//! the real server (`Application` + `WebSocketRoute` + the echo handler).
//!
//! Autobahn itself only runs on Python 2 and cannot run here (see
//! docs/websocket.md); these tests re-express its cases. Each test names
//! the Autobahn case ids it covers; docs/websocket.md lists them with their
//! result. "Chopped" means the bytes are written in small pieces, each its
//! own `write` on a `TCP_NODELAY` socket.
//!
//! Every test also checks that each connection got exactly one `on_close`
//! and that the server released everything (no connection, timer or socket
//! left behind).

mod websocket_support;

use websocket_support::{close_body, frame, masked, Ev, RawClient, TestServer};

const FIN: u8 = 0x80;
const CONT: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// "Hello-µ@ßöäüàá-UTF-8!!" (Autobahn 6.2.x).
const HELLO_UTF8: &str = "Hello-µ@ßöäüàá-UTF-8!!";

/// "κόσμε" followed by a UTF-16 surrogate, then "edited" (Autobahn 6.3.1).
const INVALID_UTF8: &[u8] =
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";

/// Run `case` against a fresh echo server, then check the on_close and
/// release invariants.
fn with_server(case: impl FnOnce(&TestServer)) {
    let server = TestServer::echo();
    case(&server);
    server.events.assert_each_closed_once();
    server.assert_released();
}

/// One connection to `/echo` on a fresh server.
fn with_client(case: impl FnOnce(&mut RawClient)) {
    with_server(|server| {
        let mut client = RawClient::connect(server.addr, "/echo");
        case(&mut client);
    });
}

fn send_chopped(c: &mut RawClient, bytes: &[u8], chop: usize) {
    for piece in bytes.chunks(chop) {
        c.send(piece);
    }
}

fn expect(c: &mut RawClient, b0: u8, payload: &[u8]) {
    let f = c.recv_frame();
    assert!(!f.masked, "server frames must not be masked: {f:?}");
    assert_eq!(f.b0, b0, "first byte of {f:?}");
    assert!(
        f.payload == payload,
        "payload of {} bytes differs",
        f.payload.len()
    );
}

fn expect_text(c: &mut RawClient, text: &str) {
    expect(c, FIN | TEXT, text.as_bytes());
}

fn expect_pong(c: &mut RawClient, data: &[u8]) {
    expect(c, FIN | PONG, data);
}

/// The normal end: we close with 1000, the server echoes it and ends the
/// TCP connection.
fn close_normally(c: &mut RawClient) {
    c.send(&masked(FIN | CLOSE, &close_body(1000, b"")));
    c.expect_close(Some(1000));
}

/// The server must fail the connection with `code`, after nothing else.
fn fails_with(c: &mut RawClient, code: u16) {
    c.expect_close(Some(code));
}

fn text_of(size: usize) -> String {
    (0..size).map(|i| (b'*' + (i % 64) as u8) as char).collect()
}

// ===== 1. Framing =========================================================

#[test]
fn case_1_1_text_messages_of_boundary_sizes() {
    with_client(|c| {
        // 1.1.1-1.1.7: 0, 125, 126, 127, 128, 65535, 65536 bytes.
        for size in [0, 125, 126, 127, 128, 65535, 65536] {
            let text = text_of(size);
            c.send(&masked(FIN | TEXT, text.as_bytes()));
            expect_text(c, &text);
        }
        // 1.1.8: 65536 bytes sent in chops of 997 bytes.
        let text = text_of(65536);
        send_chopped(c, &masked(FIN | TEXT, text.as_bytes()), 997);
        expect_text(c, &text);
        close_normally(c);
    });
}

#[test]
fn case_1_2_binary_messages_of_boundary_sizes() {
    with_client(|c| {
        for size in [0, 125, 126, 127, 128, 65535, 65536] {
            let data = vec![0xFEu8; size];
            c.send(&masked(FIN | BINARY, &data));
            expect(c, FIN | BINARY, &data);
        }
        let data = vec![0xFEu8; 65536];
        send_chopped(c, &masked(FIN | BINARY, &data), 997);
        expect(c, FIN | BINARY, &data);
        close_normally(c);
    });
}

#[test]
fn case_1_x_squall_length_encoding_rules() {
    // Not in Autobahn: lengths must be minimally encoded and the 64-bit
    // form must have its top bit clear (RFC 6455 §5.2).
    with_server(|server| {
        let mut c = RawClient::connect(server.addr, "/echo");
        c.send(&[0x81, 0x80 | 126, 0x00, 0x05, 1, 2, 3, 4]);
        fails_with(&mut c, 1002);
        let mut c = RawClient::connect(server.addr, "/echo");
        let mut bad = vec![0x82, 0x80 | 127];
        bad.extend_from_slice(&(1u64 << 63).to_be_bytes());
        c.send(&bad);
        fails_with(&mut c, 1002);
    });
}

#[test]
fn case_1_x_squall_unmasked_client_frame_is_1002() {
    with_client(|c| {
        c.send(&frame(FIN | TEXT, b"unmasked", None));
        fails_with(c, 1002);
    });
}

// ===== 2. Pings/Pongs =====================================================

#[test]
fn case_2_1_to_2_4_pings_are_answered_with_the_same_payload() {
    with_client(|c| {
        // 2.1 empty, 2.2 text, 2.3 binary, 2.4 125 bytes.
        for payload in [
            &b""[..],
            b"Hello, world!",
            &[0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff][..],
            &[0xfe; 125][..],
        ] {
            c.send(&masked(FIN | PING, payload));
            expect_pong(c, payload);
        }
        close_normally(c);
    });
}

#[test]
fn case_2_5_ping_with_126_bytes_is_1002() {
    with_client(|c| {
        c.send(&masked(FIN | PING, &[0xfe; 126]));
        fails_with(c, 1002);
    });
}

#[test]
fn case_2_6_ping_sent_in_one_byte_chops() {
    with_client(|c| {
        send_chopped(c, &masked(FIN | PING, &[0xfe; 125]), 1);
        expect_pong(c, &[0xfe; 125]);
        close_normally(c);
    });
}

#[test]
fn case_2_7_to_2_9_unsolicited_pongs_are_ignored() {
    with_client(|c| {
        // 2.7 empty pong, 2.8 pong with payload: no answer. 2.9: then a
        // ping is answered (and only the ping).
        c.send(&masked(FIN | PONG, b""));
        c.send(&masked(FIN | PONG, b"unsolicited pong payload"));
        c.send(&masked(FIN | PING, b"ping payload"));
        expect_pong(c, b"ping payload");
        close_normally(c);
    });
}

#[test]
fn case_2_10_and_2_11_ten_pings_answered_in_order() {
    with_client(|c| {
        let pings: Vec<Vec<u8>> = (0..10)
            .map(|i| format!("payload-{i}").into_bytes())
            .collect();
        // 2.10: all in one write.
        let wire: Vec<u8> = pings.iter().flat_map(|p| masked(FIN | PING, p)).collect();
        c.send(&wire);
        for p in &pings {
            expect_pong(c, p);
        }
        // 2.11: chopped into single bytes.
        send_chopped(c, &wire, 1);
        for p in &pings {
            expect_pong(c, p);
        }
        close_normally(c);
    });
}

// ===== 3. Reserved bits ===================================================

#[test]
fn case_3_1_text_with_rsv1_is_1002() {
    with_client(|c| {
        c.send(&masked(FIN | 0x40 | TEXT, b"Hello, world!"));
        fails_with(c, 1002);
    });
}

#[test]
fn case_3_2_to_3_4_rsv_after_a_good_message_fails_before_the_ping() {
    // 3.2 sent frame by frame, 3.3 in one write, 3.4 chopped.
    with_server(|server| {
        for chop in [None, Some(usize::MAX), Some(1)] {
            let mut c = RawClient::connect(server.addr, "/echo");
            let good = masked(FIN | TEXT, b"Hello, world!");
            let bad = masked(FIN | 0x20 | TEXT, b"Hello, world!");
            let ping = masked(FIN | PING, b"");
            match chop {
                None => {
                    c.send(&good);
                    expect_text(&mut c, "Hello, world!");
                    c.send(&bad);
                    c.send(&ping);
                }
                Some(n) => {
                    let all = [good, bad, ping].concat();
                    send_chopped(&mut c, &all, n.min(all.len()));
                    expect_text(&mut c, "Hello, world!");
                }
            }
            // No pong: the connection failed on the RSV bit.
            fails_with(&mut c, 1002);
        }
    });
}

#[test]
fn case_3_5_to_3_7_rsv_on_binary_ping_and_close_is_1002() {
    with_server(|server| {
        for b0 in [
            FIN | 0x40 | BINARY, // 3.5: RSV = 4
            FIN | 0x50 | PING,   // 3.6: RSV = 5
            FIN | 0x60 | CLOSE,  // 3.7: RSV = 6
            FIN | 0x70 | TEXT,   // all three
        ] {
            let mut c = RawClient::connect(server.addr, "/echo");
            c.send(&masked(b0, &close_body(1000, b"")));
            fails_with(&mut c, 1002);
        }
    });
}

// ===== 4. Opcodes =========================================================

#[test]
fn case_4_1_reserved_non_control_opcodes_are_1002() {
    // 4.1.1-4.1.5: opcodes 3-7, alone or after a good message and
    // followed by a ping that must not be answered.
    with_server(|server| {
        for opcode in 3u8..=7 {
            let mut c = RawClient::connect(server.addr, "/echo");
            c.send(&masked(FIN | TEXT, b"Hello, world!"));
            expect_text(&mut c, "Hello, world!");
            let payload: &[u8] = if opcode % 2 == 0 { b"reserved" } else { b"" };
            let wire = [masked(FIN | opcode, payload), masked(FIN | PING, b"")].concat();
            c.send(&wire);
            fails_with(&mut c, 1002);
        }
    });
}

#[test]
fn case_4_2_reserved_control_opcodes_are_1002() {
    // 4.2.1-4.2.5: opcodes 11-15.
    with_server(|server| {
        for opcode in 11u8..=15 {
            let mut c = RawClient::connect(server.addr, "/echo");
            c.send(&masked(FIN | TEXT, b"Hello, world!"));
            expect_text(&mut c, "Hello, world!");
            let wire = [masked(FIN | opcode, b"x"), masked(FIN | PING, b"")].concat();
            c.send(&wire);
            fails_with(&mut c, 1002);
        }
    });
}

// ===== 5. Fragmentation ===================================================

#[test]
fn case_5_1_and_5_2_fragmented_control_frames_are_1002() {
    with_server(|server| {
        for opcode in [PING, PONG] {
            let mut c = RawClient::connect(server.addr, "/echo");
            let wire = [masked(opcode, b"frag"), masked(FIN | CONT, b"ment")].concat();
            c.send(&wire);
            fails_with(&mut c, 1002);
        }
    });
}

#[test]
fn case_5_3_to_5_5_text_in_two_fragments() {
    with_client(|c| {
        let wire = [masked(TEXT, b"fragment1"), masked(FIN | CONT, b"fragment2")].concat();
        c.send(&wire); // 5.3: one write
        expect_text(c, "fragment1fragment2");
        send_chopped(c, &wire, 1); // 5.4: chopped
        expect_text(c, "fragment1fragment2");
        c.send(&masked(TEXT, b"fragment1")); // 5.5: frame by frame
        c.send(&masked(FIN | CONT, b"fragment2"));
        expect_text(c, "fragment1fragment2");
        close_normally(c);
    });
}

#[test]
fn case_5_6_to_5_8_ping_between_fragments_is_answered_in_order() {
    with_client(|c| {
        let parts = [
            masked(TEXT, b"fragment1"),
            masked(FIN | PING, b"ping payload"),
            masked(FIN | CONT, b"fragment2"),
        ];
        let wire = parts.concat();
        c.send(&wire); // 5.6
        expect_pong(c, b"ping payload");
        expect_text(c, "fragment1fragment2");
        send_chopped(c, &wire, 1); // 5.7
        expect_pong(c, b"ping payload");
        expect_text(c, "fragment1fragment2");
        for part in &parts {
            c.send(part); // 5.8
        }
        expect_pong(c, b"ping payload");
        expect_text(c, "fragment1fragment2");
        close_normally(c);
    });
}

#[test]
fn case_5_9_to_5_14_continuation_without_a_message_is_1002() {
    // 5.9-5.11: FIN continuation first; 5.12-5.14: non-FIN continuation
    // first. Each in one write, chopped, and frame by frame.
    with_server(|server| {
        for cont_b0 in [FIN | CONT, CONT] {
            for chop in [usize::MAX, 1, 0] {
                let mut c = RawClient::connect(server.addr, "/echo");
                let parts = [
                    masked(cont_b0, b"non-continuation payload"),
                    masked(FIN | TEXT, b"Hello, world!"),
                ];
                if chop == 0 {
                    for p in &parts {
                        c.send(p);
                    }
                } else {
                    let all = parts.concat();
                    send_chopped(&mut c, &all, chop.min(all.len()));
                }
                fails_with(&mut c, 1002);
            }
        }
    });
}

#[test]
fn case_5_15_a_stray_continuation_after_a_complete_message() {
    with_client(|c| {
        let wire = [
            masked(TEXT, b"fragment1"),
            masked(FIN | CONT, b"fragment2"),
            masked(CONT, b"fragment3"),
            masked(FIN | TEXT, b"fragment4"),
        ]
        .concat();
        c.send(&wire);
        expect_text(c, "fragment1fragment2");
        fails_with(c, 1002);
    });
}

#[test]
fn case_5_16_and_5_17_continuations_then_a_message_are_1002() {
    with_server(|server| {
        for first in [CONT, FIN | CONT] {
            let mut c = RawClient::connect(server.addr, "/echo");
            let wire = [
                masked(first, b"fragment1"),
                masked(TEXT, b"fragment2"),
                masked(FIN | CONT, b"fragment3"),
            ]
            .concat();
            c.send(&wire);
            fails_with(&mut c, 1002);
        }
    });
}

#[test]
fn case_5_18_a_new_message_inside_a_fragmented_one_is_1002() {
    with_client(|c| {
        let wire = [masked(TEXT, b"fragment1"), masked(FIN | TEXT, b"fragment2")].concat();
        c.send(&wire);
        fails_with(c, 1002);
    });
}

#[test]
fn case_5_19_and_5_20_pings_between_many_fragments() {
    with_client(|c| {
        // Five fragments, a ping after the 1st and the 4th, sent one frame
        // at a time: the pongs come first, each as soon as its ping is read.
        c.send(&masked(TEXT, b"fragment1"));
        c.send(&masked(FIN | PING, b"pongme 1!"));
        expect_pong(c, b"pongme 1!");
        c.send(&masked(CONT, b"fragment2"));
        c.send(&masked(CONT, b"fragment3"));
        c.send(&masked(CONT, b"fragment4"));
        c.send(&masked(FIN | PING, b"pongme 2!"));
        expect_pong(c, b"pongme 2!");
        c.send(&masked(FIN | CONT, b"fragment5"));
        expect_text(c, "fragment1fragment2fragment3fragment4fragment5");
        close_normally(c);
    });
}

// ===== 6. UTF-8 handling ==================================================

#[test]
fn case_6_1_empty_text_messages() {
    with_client(|c| {
        c.send(&masked(FIN | TEXT, b"")); // 6.1.1
        expect_text(c, "");
        let wire = [
            masked(TEXT, b""),
            masked(CONT, b""),
            masked(FIN | CONT, b""),
        ]
        .concat();
        c.send(&wire); // 6.1.2
        expect_text(c, "");
        let wire = [
            masked(TEXT, b""),
            masked(CONT, b"middle"),
            masked(FIN | CONT, b""),
        ]
        .concat();
        c.send(&wire); // 6.1.3
        expect_text(c, "middle");
        close_normally(c);
    });
}

#[test]
fn case_6_2_valid_utf8_in_one_or_many_pieces() {
    with_client(|c| {
        let bytes = HELLO_UTF8.as_bytes();
        c.send(&masked(FIN | TEXT, bytes)); // 6.2.1
        expect_text(c, HELLO_UTF8);
        // 6.2.2: two fragments, cut at every byte (inside code points too).
        for cut in 1..bytes.len() {
            let wire = [
                masked(TEXT, &bytes[..cut]),
                masked(FIN | CONT, &bytes[cut..]),
            ]
            .concat();
            c.send(&wire);
            expect_text(c, HELLO_UTF8);
        }
        // 6.2.3: one frame, chopped into single bytes.
        send_chopped(c, &masked(FIN | TEXT, bytes), 1);
        expect_text(c, HELLO_UTF8);
        // 6.2.4: one fragment per byte.
        let mut wire = masked(TEXT, &bytes[..1]);
        for b in &bytes[1..bytes.len() - 1] {
            wire.extend(masked(CONT, &[*b]));
        }
        wire.extend(masked(FIN | CONT, &bytes[bytes.len() - 1..]));
        c.send(&wire);
        expect_text(c, HELLO_UTF8);
        close_normally(c);
    });
}

#[test]
fn case_6_3_invalid_utf8_is_1007() {
    with_server(|server| {
        // 6.3.1: one frame; 6.3.2: chopped into single bytes.
        for chop in [usize::MAX, 1] {
            let mut c = RawClient::connect(server.addr, "/echo");
            let wire = masked(FIN | TEXT, INVALID_UTF8);
            send_chopped(&mut c, &wire, chop.min(wire.len()));
            fails_with(&mut c, 1007);
        }
    });
}

#[test]
fn case_6_4_fail_fast_on_invalid_utf8() {
    with_server(|server| {
        // 6.4.1: fragment 1 valid, fragment 2 invalid; fragment 3 is never
        // sent: the server must fail on fragment 2.
        let mut c = RawClient::connect(server.addr, "/echo");
        c.send(&masked(TEXT, "κόσμε".as_bytes()));
        c.send(&masked(CONT, b"\xf4\x90\x80\x80"));
        fails_with(&mut c, 1007);
        // 6.4.2: the invalid sequence starts at the end of fragment 1.
        let mut c = RawClient::connect(server.addr, "/echo");
        c.send(&masked(
            TEXT,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4",
        ));
        c.send(&masked(CONT, b"\x90"));
        fails_with(&mut c, 1007);
        // 6.4.3 / 6.4.4: one frame whose bytes arrive in pieces; the server
        // fails as soon as the bad bytes arrive, before the frame is complete.
        for pieces in [&[4usize][..], &[1, 1][..]] {
            let mut c = RawClient::connect(server.addr, "/echo");
            let mut payload = "κόσμε".as_bytes().to_vec();
            payload.extend_from_slice(b"\xf4\x90\x80\x80");
            payload.extend_from_slice(b"edited");
            let wire = masked(FIN | TEXT, &payload);
            let mut at = 6 + "κόσμε".len(); // 6-byte header
            c.send(&wire[..at]);
            for n in pieces {
                c.send(&wire[at..at + n]);
                at += n;
            }
            fails_with(&mut c, 1007);
        }
    });
}

/// Valid sequences from Markus Kuhn's UTF-8 stress test (Autobahn 6.5-6.23
/// pick theirs from it): each is echoed.
const VALID_SEQUENCES: &[&[u8]] = &[
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", // 6.5.1 κόσμε
    b"\x00",                                         // 6.7.1 first 1-byte
    b"\xc2\x80",                                     // 6.7.2 first 2-byte
    b"\xe0\xa0\x80",                                 // 6.7.3 first 3-byte
    b"\xf0\x90\x80\x80",                             // 6.7.4 first 4-byte
    b"\x7f",                                         // 6.9.1 last 1-byte
    b"\xdf\xbf",                                     // 6.9.2 last 2-byte
    b"\xef\xbf\xbf",                                 // 6.9.3 last 3-byte (U+FFFF)
    b"\xf4\x8f\xbf\xbf",                             // 6.9.4 U+10FFFF
    b"\xed\x9f\xbf",                                 // 6.11.1 U+D7FF
    b"\xee\x80\x80",                                 // 6.11.2 U+E000
    b"\xef\xbf\xbd",                                 // 6.11.3 U+FFFD
    b"\xef\xbf\xbe",                                 // 6.22.x noncharacter U+FFFE
    b"\xf0\x9f\xbf\xbe",                             // 6.22.x U+1FFFE
    b"\xf4\x8f\xbf\xbe",                             // 6.22.x U+10FFFE
];

/// Invalid sequences (Autobahn 6.6, 6.8, 6.10, 6.12-6.21): each is 1007.
const INVALID_SEQUENCES: &[&[u8]] = &[
    b"\xce",                     // 6.6.1 truncated κ
    b"\xce\xba\xe1",             // 6.6.3
    b"\xce\xba\xe1\xbd",         // 6.6.4
    b"\xf8\x88\x80\x80\x80",     // 6.8.1 5-byte form
    b"\xfc\x84\x80\x80\x80\x80", // 6.8.2 6-byte form
    b"\xf7\xbf\xbf\xbf",         // 6.10.1 above U+10FFFF
    b"\xf4\x90\x80\x80",         // 6.10.3 U+110000
    b"\x80",                     // 6.12.1 lone continuation
    b"\xbf",                     // 6.12.2
    b"\x80\xbf\x80\xbf",         // 6.12.8
    b"\xc0\x20",                 // 6.13.1 lonely start + space
    b"\xe0\x80\x20",             // 6.13.x
    b"\xc0",                     // 6.14.1 last byte missing
    b"\xe0\x80",                 // 6.14.2
    b"\xdf",                     // 6.14.6
    b"\xef\xbf",                 // 6.14.7
    b"\xfe",                     // 6.16.1 impossible byte
    b"\xff",                     // 6.16.2
    b"\xfe\xfe\xff\xff",         // 6.16.3
    b"\xc0\xaf",                 // 6.17.1 overlong '/'
    b"\xe0\x80\xaf",             // 6.17.2
    b"\xf0\x80\x80\xaf",         // 6.17.3
    b"\xc1\xbf",                 // 6.18.1 max overlong 2-byte
    b"\xe0\x9f\xbf",             // 6.18.2
    b"\xf0\x8f\xbf\xbf",         // 6.18.3
    b"\xc0\x80",                 // 6.19.1 overlong NUL
    b"\xe0\x80\x80",             // 6.19.2
    b"\xed\xa0\x80",             // 6.20.1 surrogate U+D800
    b"\xed\xad\xbf",             // 6.20.2 U+DB7F
    b"\xed\xbf\xbf",             // 6.20.7 U+DFFF
    b"\xed\xa0\x80\xed\xb0\x80", // 6.21.1 surrogate pair
    b"\xed\xaf\xbf\xed\xbf\xbf", // 6.21.8
];

#[test]
fn case_6_5_to_6_22_valid_sequences_are_echoed() {
    with_client(|c| {
        for seq in VALID_SEQUENCES {
            let text = std::str::from_utf8(seq).unwrap();
            c.send(&masked(FIN | TEXT, seq));
            expect_text(c, text);
            // The same split into one fragment per byte.
            let mut wire = Vec::new();
            for (i, b) in seq.iter().enumerate() {
                let op = if i == 0 { TEXT } else { CONT };
                let fin = if i + 1 == seq.len() { FIN } else { 0 };
                wire.extend(masked(fin | op, &[*b]));
            }
            c.send(&wire);
            expect_text(c, text);
        }
        close_normally(c);
    });
}

#[test]
fn case_6_6_to_6_21_invalid_sequences_are_1007() {
    with_server(|server| {
        for seq in INVALID_SEQUENCES {
            let mut c = RawClient::connect(server.addr, "/echo");
            c.send(&masked(FIN | TEXT, seq));
            let f = c.recv_frame();
            assert_eq!(
                (f.opcode(), f.close_code()),
                (CLOSE, Some(1007)),
                "sequence {seq:x?}"
            );
            c.expect_eof();
        }
    });
}

// ===== 7. Close handling ==================================================

#[test]
fn case_7_1_1_close_after_a_message() {
    with_client(|c| {
        c.send(&masked(FIN | TEXT, b"Hello World!"));
        expect_text(c, "Hello World!");
        close_normally(c);
    });
}

#[test]
fn case_7_1_2_to_7_1_4_nothing_counts_after_the_peers_close() {
    with_server(|server| {
        for after in [
            masked(FIN | CLOSE, &close_body(1000, b"")), // 7.1.2: a 2nd close
            masked(FIN | PING, b"ping"),                 // 7.1.3: a ping
            masked(FIN | TEXT, b"text"),                 // 7.1.4: a message
        ] {
            let mut c = RawClient::connect(server.addr, "/echo");
            let wire = [masked(FIN | CLOSE, &close_body(1000, b"")), after].concat();
            c.send(&wire);
            // One Close back, then the end: no pong, no echo.
            c.expect_close(Some(1000));
        }
        // Nothing reached the application.
        assert!(!server
            .events
            .all()
            .iter()
            .any(|e| matches!(e, Ev::Text(..) | Ev::Ping(..))));
    });
}

#[test]
fn case_7_1_5_close_inside_a_fragmented_message() {
    with_client(|c| {
        let wire = [
            masked(TEXT, b"fragment1"),
            masked(FIN | CLOSE, &close_body(1000, b"")),
            masked(FIN | CONT, b"fragment2"),
        ]
        .concat();
        c.send(&wire);
        c.expect_close(Some(1000));
    });
}

#[test]
fn case_7_1_6_close_after_a_large_message() {
    with_client(|c| {
        let text = text_of(256 * 1024);
        let wire = [
            masked(FIN | TEXT, text.as_bytes()),
            masked(FIN | CLOSE, &close_body(1000, b"")),
            masked(FIN | PING, b"after close"),
        ]
        .concat();
        c.send(&wire);
        expect_text(c, &text);
        c.expect_close(Some(1000));
    });
}

#[test]
fn case_7_3_close_payload_lengths() {
    with_server(|server| {
        let cases: Vec<(Vec<u8>, Option<u16>)> = vec![
            (vec![], None),                                  // 7.3.1
            (vec![0x03], Some(1002)),                        // 7.3.2
            (close_body(1000, b""), Some(1000)),             // 7.3.3
            (close_body(1000, b"Hello World!"), Some(1000)), // 7.3.4
            (close_body(1000, &[b'*'; 123]), Some(1000)),    // 7.3.5
            (close_body(1000, &[b'*'; 124]), Some(1002)),    // 7.3.6
        ];
        for (body, code) in cases {
            let mut c = RawClient::connect(server.addr, "/echo");
            c.send(&masked(FIN | CLOSE, &body));
            c.expect_close(code);
        }
    });
}

#[test]
fn case_7_5_1_invalid_utf8_close_reason_is_1007() {
    with_client(|c| {
        c.send(&masked(FIN | CLOSE, &close_body(1000, INVALID_UTF8)));
        fails_with(c, 1007);
    });
}

#[test]
fn case_7_7_valid_close_codes_are_echoed() {
    with_server(|server| {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let mut c = RawClient::connect(server.addr, "/echo");
            c.send(&masked(FIN | CLOSE, &close_body(code, b"Ok")));
            c.expect_close(Some(code));
        }
    });
}

#[test]
fn case_7_9_and_7_13_invalid_close_codes_are_1002() {
    with_server(|server| {
        for code in [
            0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let mut c = RawClient::connect(server.addr, "/echo");
            c.send(&masked(FIN | CLOSE, &close_body(code, b"")));
            let f = c.recv_frame();
            assert_eq!(
                (f.opcode(), f.close_code()),
                (CLOSE, Some(1002)),
                "code {code}"
            );
            c.expect_eof();
        }
    });
}

#[test]
fn case_7_x_squall_server_initiated_close() {
    with_server(|server| {
        let mut c = RawClient::connect(server.addr, "/echo");
        c.send(&masked(FIN | TEXT, b"close 4001 server bye"));
        let f = c.recv_frame();
        assert_eq!(f.opcode(), CLOSE);
        assert_eq!(&f.payload[..], &close_body(4001, b"server bye")[..]);
        // The server half-closed after its Close: we see EOF now, before
        // we answer...
        c.expect_eof();
        // ...and after our answer it closes its side too.
        c.send(&masked(FIN | CLOSE, &close_body(4001, b"")));
        let id = server.events.wait_open(1);
        assert_eq!(server.events.wait_close(id), (4001, String::new()));
    });
}

// ===== 9. Limits (lite) ===================================================

#[test]
fn case_9_1_and_9_2_large_messages_up_to_the_limit() {
    // Autobahn goes to 16 MiB; squall's default limit is 1 MiB.
    with_client(|c| {
        for size in [64 * 1024, 256 * 1024, 1024 * 1024] {
            let text = text_of(size);
            c.send(&masked(FIN | TEXT, text.as_bytes()));
            expect_text(c, &text);
            let data = vec![0x5Au8; size];
            c.send(&masked(FIN | BINARY, &data));
            expect(c, FIN | BINARY, &data);
        }
        close_normally(c);
    });
}

#[test]
fn case_9_3_and_9_4_one_mib_in_fragments_of_many_sizes() {
    with_client(|c| {
        let text = text_of(1024 * 1024);
        for frag in [64, 4 * 1024, 64 * 1024, 1024 * 1024] {
            let chunks: Vec<&[u8]> = text.as_bytes().chunks(frag).collect();
            let mut wire = Vec::new();
            for (i, chunk) in chunks.iter().enumerate() {
                let op = if i == 0 { BINARY } else { CONT };
                let fin = if i + 1 == chunks.len() { FIN } else { 0 };
                wire.extend(masked(fin | op, chunk));
            }
            c.send(&wire);
            expect(c, FIN | BINARY, text.as_bytes());
        }
        close_normally(c);
    });
}

#[test]
fn case_9_5_and_9_6_a_message_sent_in_small_chops() {
    with_client(|c| {
        let text = text_of(256 * 1024);
        for chop in [64, 1024, 16 * 1024] {
            send_chopped(c, &masked(FIN | TEXT, text.as_bytes()), chop);
            expect_text(c, &text);
        }
        close_normally(c);
    });
}

#[test]
fn case_9_7_and_9_8_many_small_messages_round_trip() {
    with_client(|c| {
        let wire: Vec<u8> = (0..1000)
            .flat_map(|i| masked(FIN | TEXT, format!("message {i}").as_bytes()))
            .collect();
        c.send(&wire);
        for i in 0..1000 {
            expect_text(c, &format!("message {i}"));
        }
        close_normally(c);
    });
}

#[test]
fn case_9_x_oversize_is_1009_before_the_payload_arrives() {
    with_server(|server| {
        // One frame over the 1 MiB limit: the header alone is enough.
        let mut c = RawClient::connect(server.addr, "/echo");
        let mut header = vec![FIN | BINARY, 0x80 | 127];
        header.extend_from_slice(&((1u64 << 20) + 1).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        c.send(&header);
        fails_with(&mut c, 1009);
        // Over the limit across fragments.
        let mut c = RawClient::connect(server.addr, "/echo-small");
        let wire = [masked(TEXT, &[b'a'; 600]), masked(FIN | CONT, &[b'a'; 401])].concat();
        c.send(&wire);
        fails_with(&mut c, 1009);
    });
}

// ===== 10. Misc ===========================================================

#[test]
fn case_10_1_1_auto_fragmented_message() {
    with_client(|c| {
        // 65536 bytes in fragments of 1300, as Autobahn's autoFragmentSize.
        let text = text_of(65536);
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(1300).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let op = if i == 0 { TEXT } else { CONT };
            let fin = if i + 1 == chunks.len() { FIN } else { 0 };
            c.send(&masked(fin | op, chunk));
        }
        expect_text(c, &text);
        close_normally(c);
    });
}

#[test]
fn case_10_x_squall_frames_pipelined_behind_the_handshake() {
    // Bytes sent right behind the upgrade request are already in the
    // stream's buffer when the WebSocket takes over: they must be read.
    with_server(|server| {
        let mut request = RawClient::upgrade_request(server.addr, "/echo", "").into_bytes();
        request.extend(masked(FIN | TEXT, b"early"));
        request.extend(masked(FIN | PING, b"early ping"));
        let (mut c, head) = RawClient::request(server.addr, &request);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        expect_text(&mut c, "early");
        expect_pong(&mut c, b"early ping");
        close_normally(&mut c);
    });
}
