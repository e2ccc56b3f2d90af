//! [`PreparedMessage`]: a message encoded once and sent, byte for byte, to
//! many connections (a broadcast).
//!
//! Tornado has no counterpart: its `write_message` builds the frame for
//! each connection again (`WebSocketProtocol13._write_frame`), and so did
//! squall's. The idea is Go's `websocket.PreparedMessage`
//! (gorilla/websocket) and the "prepared message" of uWebSockets: a server
//! never masks its frames (RFC 6455 §5.1), so the frame for a given message
//! is the same bytes on every server connection and can be built once.
//!
//! Sans-IO like the rest of the codec: no sockets, no clock. Sending is
//! [`WebSocket::write_prepared`](super::WebSocket::write_prepared).
//!
//! ```
//! use squall::websocket::PreparedMessage;
//!
//! let hello = PreparedMessage::text("Hello");
//! // RFC 6455 §5.7: "A single-frame unmasked text message".
//! assert_eq!(hello.frame(), [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
//! assert_eq!(hello.payload(), b"Hello");
//! let copy = hello.clone(); // shares the bytes: no copy, no re-encoding
//! assert!(std::ptr::eq(copy.frame(), hello.frame()));
//! ```

use std::fmt;
use std::rc::Rc;

use super::frame::{encode_frame, OpCode};

/// A complete, unmasked, unfragmented data frame, encoded once. Cheap to
/// clone (an `Rc`); every clone shares the same bytes.
///
/// Write it to any number of connections with
/// [`WebSocket::write_prepared`](super::WebSocket::write_prepared). Server
/// connections send [`frame`](Self::frame) as it is; a client connection
/// (whose frames must each be masked with a fresh key) encodes
/// [`payload`](Self::payload) again, so the same value works on both.
#[derive(Clone)]
pub struct PreparedMessage {
    /// Header followed by the payload, as a server sends it.
    frame: Rc<[u8]>,
    /// Length of the header in `frame` (2, 4 or 10 bytes); the payload
    /// starts here.
    header_len: u8,
    /// `Text` or `Binary`.
    opcode: OpCode,
}

impl PreparedMessage {
    /// A text message (what [`WebSocket::write_message`] sends).
    ///
    /// [`WebSocket::write_message`]: super::WebSocket::write_message
    pub fn text(text: &str) -> PreparedMessage {
        PreparedMessage::new(OpCode::Text, text.as_bytes())
    }

    /// A binary message (what [`WebSocket::write_binary`] sends).
    ///
    /// [`WebSocket::write_binary`]: super::WebSocket::write_binary
    pub fn binary(data: &[u8]) -> PreparedMessage {
        PreparedMessage::new(OpCode::Binary, data)
    }

    /// `value` serialized as a JSON text message (what
    /// [`WebSocket::write_json`] sends): serialized once, however many
    /// connections it goes to.
    ///
    /// [`WebSocket::write_json`]: super::WebSocket::write_json
    pub fn json(value: &serde_json::Value) -> PreparedMessage {
        PreparedMessage::text(&value.to_string())
    }

    fn new(opcode: OpCode, payload: &[u8]) -> PreparedMessage {
        let mut frame = Vec::new();
        encode_frame(&mut frame, true, opcode, payload, None);
        let header_len = frame.len() - payload.len();
        PreparedMessage {
            frame: frame.into(),
            // At most 10 (a 64-bit length, no mask: §5.2).
            header_len: header_len as u8,
            opcode,
        }
    }

    /// The frame as a server sends it: header and payload, unmasked.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// The same frame as a shared handle, for queuing it on many streams
    /// without copying it (`IOStream::write_shared`).
    pub(crate) fn shared_frame(&self) -> Rc<[u8]> {
        Rc::clone(&self.frame)
    }

    /// The message's payload (the text's UTF-8 bytes, or the binary data).
    pub fn payload(&self) -> &[u8] {
        &self.frame[usize::from(self.header_len)..]
    }

    /// `OpCode::Text` or `OpCode::Binary`.
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }
}

impl fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PreparedMessage({:?}, {} payload bytes)",
            self.opcode,
            self.payload().len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::{Message, MessageReader, Role};

    /// What the reader on the other end makes of `frame`.
    fn decode(frame: &[u8]) -> Vec<Message> {
        let mut reader = MessageReader::new(Role::Client).with_max_message_size(1 << 20);
        let mut input = frame;
        let mut out = Vec::new();
        while let Some(m) = reader.read_message(&mut input).expect("valid frame") {
            out.push(m);
        }
        assert!(input.is_empty(), "trailing bytes");
        out
    }

    #[test]
    fn frames_match_what_write_message_encodes_at_every_length_boundary() {
        // 7-bit, 16-bit and 64-bit payload lengths (§5.2), at their edges.
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let prepared = PreparedMessage::text(&text);
            let mut expected = Vec::new();
            Message::Text(text.clone()).encode(&mut expected, None);
            assert_eq!(prepared.frame(), &expected[..], "len {len}");
            assert_eq!(prepared.payload(), text.as_bytes(), "len {len}");
            assert_eq!(decode(prepared.frame()), [Message::Text(text)]);
        }
    }

    #[test]
    fn binary_and_json() {
        let data: Vec<u8> = (0..=255).collect();
        let b = PreparedMessage::binary(&data);
        assert_eq!(b.opcode(), OpCode::Binary);
        assert_eq!(decode(b.frame()), [Message::Binary(data)]);
        let j = PreparedMessage::json(&serde_json::json!({"a": [1, "<"]}));
        assert_eq!(j.opcode(), OpCode::Text);
        assert_eq!(
            decode(j.frame()),
            [Message::Text(r#"{"a":[1,"<"]}"#.into())]
        );
    }
}
