//! Messages: frames reassembled into what the application sees.
//!
//! Mirrors the receive half of Tornado's `websocket.py`
//! (`WebSocketProtocol13._receive_frame` keeps `_fragmented_message_buffer`
//! and `_fragmented_message_opcode`; `_handle_message` turns a complete
//! message or control frame into `on_message` / `on_ping` / `on_pong` /
//! close). Here the same bookkeeping is the `State` enum of a
//! [`MessageReader`], fed bytes and returning [`Message`]s; it never touches
//! a socket.
//!
//! Rules enforced (each failure is a [`ProtocolError`] with its close code):
//!
//! * fragmentation (RFC 6455 §5.4): a message is a Text or Binary frame
//!   followed by Continuation frames until FIN; "control frames MAY be
//!   injected in the middle of a fragmented message"; a Continuation with
//!   no message to continue, or a new Text/Binary before the last one
//!   finished, is 1002;
//! * text must be UTF-8 (§8.1), checked chunk by chunk as it arrives
//!   (1007);
//! * a message may not exceed the reader's maximum size, checked at each
//!   frame header before any of that frame is buffered (1009);
//! * Close bodies (§5.5.1) are checked by [`close::parse_payload`].

use super::close::{self, ProtocolError};
use super::close::{INTERNAL_ERROR, INVALID_PAYLOAD, MESSAGE_TOO_BIG, PROTOCOL_ERROR};
use super::frame::{
    encode_frame, FrameDecoder, FrameEvent, FrameHeader, OpCode, PayloadChunk, Role,
};
use super::utf8::Utf8Validator;

/// Default largest message accepted: 1 MiB, counted across all fragments.
/// (Tornado's `websocket_max_message_size` default is 10 MiB; squall's
/// chat and cart messages are tiny, so it keeps a smaller bound.)
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// Most payload room reserved at a data frame's header, before its bytes
/// arrive: one read's worth (the connection reads 64 KiB at a time).
/// Larger frames grow their buffer as their bytes come.
pub const MAX_PREALLOCATION: usize = 64 * 1024;

/// One thing received from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A complete text message, valid UTF-8.
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// A Ping; "Upon receipt of a Ping frame, an endpoint MUST send a Pong
    /// frame in response, unless it already received a Close frame. ... A
    /// Pong frame sent in response to a Ping frame must have identical
    /// 'Application data'" (§5.5.2).
    Ping(Vec<u8>),
    /// A Pong, solicited or not ("A Pong frame MAY be sent unsolicited",
    /// §5.5.3).
    Pong(Vec<u8>),
    /// The peer started or answered the closing handshake: its close code
    /// and reason, or `None` if the frame had no body ("no status", 1005).
    /// The reader ignores everything after it.
    Close(Option<(u16, String)>),
}

impl Message {
    /// Append this message to `out` as one unfragmented frame, masked with
    /// `mask` (a client passes a fresh random key, a server `None`).
    ///
    /// Ping, Pong and Close are control frames: keep Ping/Pong data within
    /// 125 bytes (Close reasons are cut to fit by [`close::payload`]).
    pub fn encode(&self, out: &mut Vec<u8>, mask: Option<[u8; 4]>) {
        match self {
            Message::Text(text) => encode_frame(out, true, OpCode::Text, text.as_bytes(), mask),
            Message::Binary(data) => encode_frame(out, true, OpCode::Binary, data, mask),
            Message::Ping(data) => encode_frame(out, true, OpCode::Ping, data, mask),
            Message::Pong(data) => encode_frame(out, true, OpCode::Pong, data, mask),
            Message::Close(status) => {
                let body = match status {
                    Some((code, reason)) => close::payload(Some(*code), reason),
                    None => Vec::new(),
                };
                encode_frame(out, true, OpCode::Close, &body, mask)
            }
        }
    }
}

/// The data message being assembled, across however many frames it takes.
#[derive(Debug)]
struct Partial {
    /// Unmasked payload received so far. Never longer than the reader's
    /// maximum message size.
    buf: Vec<u8>,
    /// `Some` for a text message: how far `buf` is known to be UTF-8.
    text: Option<Utf8Validator>,
}

impl Partial {
    fn new(opcode: OpCode) -> Partial {
        let text = (opcode == OpCode::Text).then(Utf8Validator::default);
        Partial {
            buf: Vec::new(),
            text,
        }
    }

    /// Drop the payload received so far (see
    /// [`MessageReader::discard_data`]); the message will never be
    /// finished.
    fn drop_payload(&mut self) {
        self.buf = Vec::new();
        self.text = None;
    }

    fn invalid_utf8() -> ProtocolError {
        ProtocolError::new(INVALID_PAYLOAD, "invalid UTF-8 in text message")
    }

    /// Append a chunk of payload, failing as soon as text stops being UTF-8.
    fn append(&mut self, chunk: &PayloadChunk<'_>) -> Result<(), ProtocolError> {
        chunk.append_unmasked_to(&mut self.buf);
        let still_valid = match self.text.as_mut() {
            Some(utf8) => utf8.check(&self.buf),
            None => true,
        };
        if still_valid {
            Ok(())
        } else {
            Err(Self::invalid_utf8())
        }
    }

    /// The finished message.
    fn finish(self) -> Result<Message, ProtocolError> {
        match self.text {
            None => Ok(Message::Binary(self.buf)),
            Some(utf8) if !utf8.is_complete(&self.buf) => Err(Self::invalid_utf8()),
            // Validated already; `from_utf8` checks once more rather than
            // using `unsafe` to skip it.
            Some(_) => String::from_utf8(self.buf)
                .map(Message::Text)
                .map_err(|_| Self::invalid_utf8()),
        }
    }
}

/// Which control frame is arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Close,
    Ping,
    Pong,
}

/// Where the reader is. Headers arrive in `Idle` and `Fragmented`, payload
/// chunks in `Data` and `Control`:
///
/// ```text
/// state       event                      next                 yields
/// Idle        Text/Binary header         Data
/// Idle        Continuation header        Failed (1002)
/// Fragmented  Continuation header        Data
/// Fragmented  Text/Binary header         Failed (1002)
/// Idle, Frag. Ping/Pong/Close header     Control (resume = message, if any)
/// Data        chunk, not the last        Data
/// Data        last chunk, FIN clear      Fragmented
/// Data        last chunk, FIN set        Idle                 Text / Binary
///                                                             (none after discard_data)
/// Control     chunk, not the last        Control
/// Control     last chunk of Ping/Pong    Idle or Fragmented   Ping / Pong
/// Control     last chunk of Close        Closed               Close
/// any         a rule broken              Failed (its code)
/// ```
#[derive(Debug)]
enum State {
    /// Between messages; the decoder is reading a frame header.
    Idle,
    /// Payload of a data frame is arriving; `message` is everything so far
    /// and `fin` says whether this frame ends it.
    Data { message: Partial, fin: bool },
    /// Between the frames of a fragmented message.
    Fragmented { message: Partial },
    /// Payload of a control frame is arriving (at most 125 bytes); `resume`
    /// is the fragmented message it interrupted, if any.
    Control {
        kind: Control,
        payload: Vec<u8>,
        resume: Option<Partial>,
    },
    /// A Close frame was received; further input is discarded ("after
    /// receiving a control frame indicating the connection should be closed,
    /// a peer discards any further data received", §1.4).
    Closed,
    /// The peer broke the protocol; every later call reports this again.
    Failed(ProtocolError),
}

/// Turns the bytes received on one WebSocket connection into [`Message`]s.
///
/// Push-style and sans-IO: give it whatever bytes arrived, in any pieces.
/// Each payload byte is copied once (from the input into the message being
/// built, unmasked on the way; a frame over [`MAX_PREALLOCATION`] may be
/// moved again as its buffer grows); the reader holds at most one partial frame
/// header, one partial message (bounded by the maximum message size) and one
/// partial control frame (at most 125 bytes).
///
/// ```
/// use squall::websocket::{Message, MessageReader, Role};
///
/// let mut reader = MessageReader::new(Role::Client);
/// // RFC 6455 §5.7: "Hel" + "lo" as two unmasked fragments.
/// let wire = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
/// let mut input = &wire[..];
/// let mut got = Vec::new();
/// while let Some(message) = reader.read_message(&mut input).unwrap() {
///     got.push(message);
/// }
/// assert!(input.is_empty());
/// assert_eq!(got, [Message::Text("Hello".into())]);
/// ```
#[derive(Debug)]
pub struct MessageReader {
    decoder: FrameDecoder,
    max_message_size: usize,
    state: State,
    /// Whether data messages are assembled and returned. Cleared by
    /// [`MessageReader::discard_data`] once this side has sent its Close:
    /// nobody will read them, so their bytes are not kept.
    keep_data: bool,
}

impl MessageReader {
    /// A reader for the messages received by `role`, with the
    /// [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub fn new(role: Role) -> Self {
        MessageReader {
            decoder: FrameDecoder::new(role),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            state: State::Idle,
            keep_data: true,
        }
    }

    /// From now on, check data frames' framing but drop their payload and
    /// return no Text or Binary messages; control frames are returned as
    /// before. For the closing handshake: after sending a Close an endpoint
    /// waits for the peer's Close, and data the peer sent before reading
    /// ours still arrives; the connection delivers none of it to the
    /// application, so there is nothing to keep it for. A message being
    /// assembled is dropped at once.
    pub fn discard_data(&mut self) {
        self.keep_data = false;
        match &mut self.state {
            State::Data { message, .. }
            | State::Fragmented { message }
            | State::Control {
                resume: Some(message),
                ..
            } => message.drop_payload(),
            _ => {}
        }
    }

    /// Set the largest message (sum of its fragments' payloads) to accept;
    /// anything larger fails with 1009 before it is buffered.
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max;
        self
    }

    /// Read from the front of `input` until one message is complete,
    /// advancing `input` past the bytes used.
    ///
    /// * `Ok(Some(message))`: a message; call again, `input` may hold more.
    /// * `Ok(None)`: `input` is used up (partial data is kept inside the
    ///   reader), so the caller can clear its buffer and wait for bytes.
    /// * `Err(e)`: fail the connection, sending a Close with `e.code`.
    ///   Every later call returns the same error.
    ///
    /// After [`Message::Close`] the reader discards all further input.
    pub fn read_message(&mut self, input: &mut &[u8]) -> Result<Option<Message>, ProtocolError> {
        loop {
            match &self.state {
                State::Failed(error) => return Err(error.clone()),
                State::Closed => {
                    *input = &input[input.len()..];
                    return Ok(None);
                }
                State::Idle
                | State::Data { .. }
                | State::Fragmented { .. }
                | State::Control { .. } => {}
            }
            let step = match self.decoder.decode(input) {
                Ok(None) => return Ok(None),
                Ok(Some(event)) => self.step(event),
                Err(error) => Err(error),
            };
            match step {
                Ok(Some(message)) => return Ok(Some(message)),
                Ok(None) => {}
                Err(error) => {
                    self.state = State::Failed(error.clone());
                    return Err(error);
                }
            }
        }
    }

    /// One transition of the state machine.
    fn step(&mut self, event: FrameEvent<'_>) -> Result<Option<Message>, ProtocolError> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        let (next, message) = match (state, event) {
            (State::Idle, FrameEvent::Header(header)) => (self.begin_frame(header, None)?, None),
            (State::Fragmented { message }, FrameEvent::Header(header)) => {
                (self.begin_frame(header, Some(message))?, None)
            }
            (State::Data { mut message, fin }, FrameEvent::Payload(chunk)) => {
                if self.keep_data {
                    message.append(&chunk)?;
                }
                match (chunk.is_last(), fin) {
                    (false, _) => (State::Data { message, fin }, None),
                    (true, false) => (State::Fragmented { message }, None),
                    (true, true) if self.keep_data => (State::Idle, Some(message.finish()?)),
                    (true, true) => (State::Idle, None),
                }
            }
            (
                State::Control {
                    kind,
                    mut payload,
                    resume,
                },
                FrameEvent::Payload(chunk),
            ) => {
                chunk.append_unmasked_to(&mut payload);
                if !chunk.is_last() {
                    (
                        State::Control {
                            kind,
                            payload,
                            resume,
                        },
                        None,
                    )
                } else {
                    let back = match resume {
                        Some(message) => State::Fragmented { message },
                        None => State::Idle,
                    };
                    match kind {
                        Control::Ping => (back, Some(Message::Ping(payload))),
                        Control::Pong => (back, Some(Message::Pong(payload))),
                        Control::Close => {
                            let status = close::parse_payload(&payload)?;
                            (State::Closed, Some(Message::Close(status)))
                        }
                    }
                }
            }
            // The decoder emits a header only after a frame's last chunk and
            // chunks only after a header, so no other pairing can occur.
            (_, _) => {
                return Err(ProtocolError::new(
                    INTERNAL_ERROR,
                    "frame decoder and message reader out of step",
                ))
            }
        };
        self.state = next;
        Ok(message)
    }

    /// A frame header arrived; `partial` is the fragmented message in
    /// progress, if any. Returns the state that receives its payload.
    fn begin_frame(
        &self,
        header: FrameHeader,
        partial: Option<Partial>,
    ) -> Result<State, ProtocolError> {
        // §5.4: "Control frames (see Section 5.5) MAY be injected in the
        // middle of a fragmented message."
        let control = match header.opcode {
            OpCode::Ping => Some(Control::Ping),
            OpCode::Pong => Some(Control::Pong),
            OpCode::Close => Some(Control::Close),
            OpCode::Continuation | OpCode::Text | OpCode::Binary => None,
        };
        if let Some(kind) = control {
            return Ok(State::Control {
                kind,
                // At most 125 bytes: the decoder checked.
                payload: Vec::with_capacity(header.payload_len.min(125) as usize),
                resume: partial,
            });
        }
        // §5.4: "A fragmented message consists of a single frame with the FIN
        // bit clear and an opcode other than 0, followed by zero or more
        // frames with the FIN bit clear and the opcode set to 0, and
        // terminated by a single frame with the FIN bit set and an opcode of
        // 0." and "The fragments of one message MUST NOT be interleaved
        // between the fragments of another message".
        let mut message = match (header.opcode, partial) {
            (OpCode::Continuation, Some(message)) => message,
            (OpCode::Continuation, None) => {
                return Err(ProtocolError::new(
                    PROTOCOL_ERROR,
                    "continuation frame without a message to continue",
                ))
            }
            (_, Some(_)) => {
                return Err(ProtocolError::new(
                    PROTOCOL_ERROR,
                    "new data frame while a fragmented message is in progress",
                ))
            }
            (opcode, None) => Partial::new(opcode),
        };
        if !self.keep_data {
            // Framing still checked above; nothing kept, nothing to size.
            return Ok(State::Data {
                message,
                fin: header.fin,
            });
        }
        self.check_size(&message, header.payload_len)?;
        // Make room for the frame now, so that a frame arriving in many
        // reads is not copied again and again by `Vec` regrowth; but only
        // for what may arrive soon. The length is the peer's claim, not
        // bytes received: reserving all of it let each connection pin
        // `max_message_size` of address space (committed memory, under
        // strict overcommit) with a 14-byte header whose payload never
        // came. Past the cap the buffer grows as bytes arrive, so it is
        // never more than about twice what the peer actually sent.
        let announced = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
        message.buf.reserve(announced.min(MAX_PREALLOCATION));
        Ok(State::Data {
            message,
            fin: header.fin,
        })
    }

    /// Refuse a frame that would take the message past the maximum size,
    /// before any of its payload is stored.
    fn check_size(&self, message: &Partial, frame_len: u64) -> Result<(), ProtocolError> {
        let room = self.max_message_size.saturating_sub(message.buf.len());
        if frame_len > room as u64 {
            // Tornado's wording (websocket.py, `_receive_frame`).
            return Err(ProtocolError::new(MESSAGE_TOO_BIG, "message too big"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::frame::encode_header;

    const TEXT: u8 = 0x1;
    const BINARY: u8 = 0x2;
    const CONT: u8 = 0x0;
    const CLOSE: u8 = 0x8;
    const PING: u8 = 0x9;
    const PONG: u8 = 0xA;

    /// A client frame (masked) with any first-byte bits, built by hand so
    /// tests can send what `encode_frame` would never produce.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::from(fin) << 7 | opcode];
        let mut body = Vec::new();
        // Reuse the encoder for the length + key + masked payload.
        encode_frame(
            &mut body,
            true,
            OpCode::Binary,
            payload,
            Some([0x11, 0x22, 0x33, 0x44]),
        );
        out.extend_from_slice(&body[1..]);
        out
    }

    fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    /// Feed `wire` in pieces of `piece` bytes; collect messages until the
    /// end or the first error.
    fn read_pieces(
        mut reader: MessageReader,
        wire: &[u8],
        piece: usize,
    ) -> (Vec<Message>, Option<ProtocolError>) {
        let mut messages = Vec::new();
        for chunk in wire.chunks(piece.max(1)) {
            let mut input = chunk;
            loop {
                match reader.read_message(&mut input) {
                    Ok(Some(m)) => messages.push(m),
                    Ok(None) => break,
                    Err(e) => return (messages, Some(e)),
                }
            }
            assert!(input.is_empty());
        }
        (messages, None)
    }

    fn read(wire: &[u8]) -> (Vec<Message>, Option<ProtocolError>) {
        read_pieces(MessageReader::new(Role::Server), wire, wire.len())
    }

    /// Messages must be the same however the bytes are cut.
    fn read_every_split(wire: &[u8]) -> (Vec<Message>, Option<ProtocolError>) {
        let whole = read(wire);
        for piece in 1..wire.len().min(40) {
            let got = read_pieces(MessageReader::new(Role::Server), wire, piece);
            assert_eq!(got, whole, "pieces of {piece} bytes");
        }
        whole
    }

    fn text(s: &str) -> Message {
        Message::Text(s.to_owned())
    }

    fn code(result: (Vec<Message>, Option<ProtocolError>)) -> (Vec<Message>, Option<u16>) {
        (result.0, result.1.map(|e| e.code))
    }

    // ---- 1. Framing -------------------------------------------------------

    #[test]
    fn autobahn_1_text_and_binary_sizes() {
        for size in [
            0usize,
            125,
            126,
            127,
            128,
            65535,
            65536,
            DEFAULT_MAX_MESSAGE_SIZE,
        ] {
            let payload: Vec<u8> = (0..size).map(|i| b'*' + (i % 64) as u8).collect();
            let as_text = String::from_utf8(payload.clone()).unwrap();
            let wire = cat(&[frame(true, TEXT, &payload), frame(true, BINARY, &payload)]);
            // 1.1.8 / 1.2.8 send the payload chopped into 997-byte writes.
            for piece in [wire.len(), 997] {
                let (messages, err) = read_pieces(MessageReader::new(Role::Server), &wire, piece);
                assert_eq!(err, None, "size {size}");
                assert_eq!(
                    messages,
                    [
                        Message::Text(as_text.clone()),
                        Message::Binary(payload.clone())
                    ]
                );
            }
        }
    }

    #[test]
    fn many_frames_in_one_buffer_split_anywhere() {
        let wire = cat(&[
            frame(true, TEXT, b"one"),
            frame(true, PING, b"p"),
            frame(false, BINARY, &[0, 1, 2]),
            frame(true, CONT, &[3]),
            frame(true, TEXT, "két".as_bytes()),
        ]);
        assert_eq!(
            read_every_split(&wire),
            (
                vec![
                    text("one"),
                    Message::Ping(b"p".to_vec()),
                    Message::Binary(vec![0, 1, 2, 3]),
                    text("két")
                ],
                None
            )
        );
    }

    #[test]
    fn client_reader_takes_unmasked_server_frames() {
        let mut wire = Vec::new();
        text("from server").encode(&mut wire, None);
        let got = read_pieces(MessageReader::new(Role::Client), &wire, 3);
        assert_eq!(got, (vec![text("from server")], None));
        // And refuses what a server reader accepts.
        let got = read_pieces(
            MessageReader::new(Role::Client),
            &frame(true, TEXT, b"x"),
            99,
        );
        assert_eq!(code(got), (vec![], Some(PROTOCOL_ERROR)));
    }

    // ---- 2. Pings and pongs -----------------------------------------------

    #[test]
    fn autobahn_2_pings_and_pongs() {
        let ping125 = vec![0xFE; 125];
        let wire = cat(&[
            frame(true, PING, b""),                 // 2.1
            frame(true, PING, b"Hello, world!"),    // 2.2
            frame(true, PING, &[0x00, 0xff, 0xfe]), // 2.3
            frame(true, PING, &ping125),            // 2.4
            frame(true, PONG, b"unsolicited"),      // 2.7 / 2.8
        ]);
        let (messages, err) = read_every_split(&wire);
        assert_eq!(err, None);
        assert_eq!(
            messages,
            [
                Message::Ping(vec![]),
                Message::Ping(b"Hello, world!".to_vec()),
                Message::Ping(vec![0x00, 0xff, 0xfe]),
                Message::Ping(ping125),
                Message::Pong(b"unsolicited".to_vec()),
            ]
        );
    }

    #[test]
    fn autobahn_2_5_ping_of_126_bytes_is_1002() {
        let wire = frame(true, PING, &[0; 126]);
        assert_eq!(code(read(&wire)), (vec![], Some(PROTOCOL_ERROR)));
        // The header alone is enough to fail: nothing is buffered.
        assert_eq!(code(read(&wire[..2])), (vec![], Some(PROTOCOL_ERROR)));
    }

    #[test]
    fn autobahn_2_10_many_pings_in_a_row() {
        let frames: Vec<Vec<u8>> = (0..10)
            .map(|i| frame(true, PING, format!("payload-{i}").as_bytes()))
            .collect();
        let (messages, err) = read_every_split(&cat(&frames));
        assert_eq!(err, None);
        assert_eq!(messages.len(), 10);
        assert_eq!(messages[9], Message::Ping(b"payload-9".to_vec()));
    }

    // ---- 3 and 4. Reserved bits and opcodes after a good message ---------

    #[test]
    fn autobahn_3_and_4_good_message_then_bad_frame() {
        let mut bad_first_bytes: Vec<u8> = [0x40u8, 0x20, 0x10, 0x70]
            .iter()
            .map(|rsv| 0x80 | rsv | TEXT)
            .collect();
        bad_first_bytes.extend((0x3u8..=0x7).chain(0xB..=0xF).map(|op| 0x80 | op));
        for first in bad_first_bytes {
            let mut bad = frame(true, TEXT, b"");
            bad[0] = first;
            let wire = cat(&[frame(true, TEXT, b"Hello"), bad, frame(true, PING, b"")]);
            assert_eq!(
                code(read(&wire)),
                (vec![text("Hello")], Some(PROTOCOL_ERROR)),
                "{first:#x}"
            );
        }
    }

    // ---- 5. Fragmentation ---------------------------------------------------

    #[test]
    fn autobahn_5_1_and_5_2_fragmented_control_frames() {
        for opcode in [PING, PONG, CLOSE] {
            let wire = cat(&[frame(false, opcode, b"frag"), frame(true, CONT, b"ment")]);
            assert_eq!(code(read(&wire)), (vec![], Some(PROTOCOL_ERROR)));
        }
    }

    #[test]
    fn autobahn_5_3_to_5_5_text_in_two_fragments() {
        let wire = cat(&[frame(false, TEXT, b"frag"), frame(true, CONT, b"ment1")]);
        assert_eq!(read_every_split(&wire), (vec![text("fragment1")], None));
    }

    #[test]
    fn autobahn_5_6_to_5_8_ping_between_fragments() {
        let wire = cat(&[
            frame(false, TEXT, b"frag"),
            frame(true, PING, b"ping payload"),
            frame(true, CONT, b"ment1"),
        ]);
        assert_eq!(
            read_every_split(&wire),
            (
                vec![Message::Ping(b"ping payload".to_vec()), text("fragment1")],
                None
            )
        );
    }

    #[test]
    fn autobahn_5_9_to_5_14_continuation_without_start() {
        for fin in [true, false] {
            let wire = cat(&[
                frame(fin, CONT, b"fragment1"),
                frame(true, TEXT, b"fragment2"),
            ]);
            assert_eq!(
                code(read(&wire)),
                (vec![], Some(PROTOCOL_ERROR)),
                "fin {fin}"
            );
        }
    }

    #[test]
    fn autobahn_5_15_continuation_after_finished_message() {
        let wire = cat(&[
            frame(false, TEXT, b"fragment1"),
            frame(true, CONT, b"fragment2"),
            frame(false, CONT, b"fragment3"),
            frame(true, TEXT, b"fragment4"),
        ]);
        assert_eq!(
            code(read(&wire)),
            (vec![text("fragment1fragment2")], Some(PROTOCOL_ERROR))
        );
    }

    #[test]
    fn autobahn_5_19_5_20_five_fragments_with_pings() {
        let wire = cat(&[
            frame(false, TEXT, b"fragment1"),
            frame(false, CONT, b"fragment2"),
            frame(true, PING, b"pongme 1!"),
            frame(false, CONT, b"fragment3"),
            frame(false, CONT, b"fragment4"),
            frame(true, PING, b"pongme 2!"),
            frame(true, CONT, b"fragment5"),
        ]);
        let expected = vec![
            Message::Ping(b"pongme 1!".to_vec()),
            Message::Ping(b"pongme 2!".to_vec()),
            text("fragment1fragment2fragment3fragment4fragment5"),
        ];
        assert_eq!(read_every_split(&wire), (expected, None));
    }

    #[test]
    fn new_data_frame_while_message_in_progress() {
        for opcode in [TEXT, BINARY] {
            let wire = cat(&[frame(false, BINARY, b"a"), frame(true, opcode, b"b")]);
            assert_eq!(code(read(&wire)), (vec![], Some(PROTOCOL_ERROR)));
        }
    }

    #[test]
    fn empty_fragments_make_an_empty_message() {
        // Autobahn 6.1.2 / 6.1.3.
        let wire = cat(&[
            frame(false, TEXT, b""),
            frame(false, CONT, b""),
            frame(true, CONT, b""),
        ]);
        assert_eq!(read_every_split(&wire), (vec![text("")], None));
        let wire = cat(&[
            frame(false, TEXT, b""),
            frame(false, CONT, b"middle"),
            frame(true, CONT, b""),
        ]);
        assert_eq!(read(&wire), (vec![text("middle")], None));
    }

    // ---- 6. UTF-8 -------------------------------------------------------------

    const HELLO_UTF8: &str = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞";

    #[test]
    fn autobahn_6_2_valid_utf8_split_into_two_fragments_anywhere() {
        let bytes = HELLO_UTF8.as_bytes();
        for cut in 0..=bytes.len() {
            let wire = cat(&[
                frame(false, TEXT, &bytes[..cut]),
                frame(true, CONT, &bytes[cut..]),
            ]);
            assert_eq!(read(&wire), (vec![text(HELLO_UTF8)], None), "cut at {cut}");
        }
    }

    #[test]
    fn autobahn_6_2_4_one_byte_fragments() {
        let bytes = HELLO_UTF8.as_bytes();
        let mut frames = vec![frame(false, TEXT, &bytes[..1])];
        for b in &bytes[1..bytes.len() - 1] {
            frames.push(frame(false, CONT, &[*b]));
        }
        frames.push(frame(true, CONT, &bytes[bytes.len() - 1..]));
        assert_eq!(
            read_every_split(&cat(&frames)),
            (vec![text(HELLO_UTF8)], None)
        );
    }

    #[test]
    fn autobahn_6_3_invalid_utf8_is_1007() {
        let invalid: &[u8] =
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
        assert_eq!(
            code(read(&frame(true, TEXT, invalid))),
            (vec![], Some(INVALID_PAYLOAD))
        );
        let wire = cat(&[
            frame(false, TEXT, &invalid[..12]),
            frame(true, CONT, &invalid[12..]),
        ]);
        assert_eq!(code(read(&wire)), (vec![], Some(INVALID_PAYLOAD)));
        // Binary is not checked.
        assert_eq!(
            read(&frame(true, BINARY, invalid)),
            (vec![Message::Binary(invalid.to_vec())], None)
        );
    }

    #[test]
    fn autobahn_6_4_fail_fast_on_the_bad_fragment() {
        // 6.4.1: the first fragment already holds an impossible sequence;
        // the reader fails without the rest of the message.
        let first = frame(
            false,
            TEXT,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80",
        );
        assert_eq!(code(read(&first)), (vec![], Some(INVALID_PAYLOAD)));
        // 6.4.3: one frame, sent in pieces: valid start, then the bad bytes.
        // The error comes with the bad piece, before the frame is complete.
        let whole = frame(
            true,
            TEXT,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
        );
        let header_len = 6;
        let good = header_len + 11; // "κόσμε" is 11 bytes
        let mut reader = MessageReader::new(Role::Server);
        let mut input = &whole[..good];
        assert_eq!(reader.read_message(&mut input), Ok(None));
        let mut input = &whole[good..good + 2];
        assert_eq!(
            reader.read_message(&mut input).unwrap_err().code,
            INVALID_PAYLOAD
        );
    }

    #[test]
    fn overlong_surrogate_and_out_of_range_sequences_are_1007() {
        let cases: &[&[u8]] = &[
            b"\xc0\xaf",                 // overlong '/'
            b"\xe0\x80\xaf",             // overlong '/', 3 bytes
            b"\xf0\x80\x80\xaf",         // overlong '/', 4 bytes
            b"\xc1\xbf",                 // overlong U+007F
            b"\xed\xa0\x80",             // surrogate U+D800
            b"\xed\xbf\xbf",             // surrogate U+DFFF
            b"\xed\xa0\x80\xed\xb0\x80", // surrogate pair U+10000 in CESU-8
            b"\xf4\x90\x80\x80",         // U+110000
            b"\xf8\x88\x80\x80\x80",     // 5-byte form
            b"\xfe",                     // impossible byte
            b"\x80",                     // lone continuation byte
            b"\xce",                     // message ends inside a code point
        ];
        for bad in cases {
            assert_eq!(
                code(read(&frame(true, TEXT, bad))),
                (vec![], Some(INVALID_PAYLOAD)),
                "{bad:x?}"
            );
        }
    }

    #[test]
    fn boundary_code_points_are_valid() {
        for ok in [
            "\u{0}",
            "\u{7f}",
            "\u{80}",
            "\u{7ff}",
            "\u{800}",
            "\u{fffe}",
            "\u{ffff}",
            "\u{10000}",
            "\u{10ffff}",
        ] {
            assert_eq!(
                read(&frame(true, TEXT, ok.as_bytes())),
                (vec![text(ok)], None)
            );
        }
    }

    // ---- 7. Close handling ----------------------------------------------------

    /// After this side's Close: data frames are read past (their framing
    /// still checked), nothing of them kept; control frames still count.
    #[test]
    fn discarding_data_keeps_control_frames_and_framing_rules() {
        let mut reader = MessageReader::new(Role::Server).with_max_message_size(16);
        // A fragmented message under way when the Close goes out.
        let mut first = &frame(false, TEXT, b"half a")[..];
        assert_eq!(reader.read_message(&mut first), Ok(None));
        reader.discard_data();
        assert!(matches!(&reader.state, State::Fragmented { message } if message.buf.is_empty()));
        let wire = cat(&[
            frame(false, CONT, &[0xFF; 8]), // not UTF-8: not looked at
            frame(true, PING, b"p"),
            frame(true, CONT, b" message"),
            frame(true, BINARY, &[7; 64]), // over the size limit: not kept either
            frame(true, PONG, b""),
            frame(true, CLOSE, &close_body(1000, b"")),
        ]);
        let (messages, error) = read_pieces(reader, &wire, 5);
        assert_eq!(error, None);
        assert_eq!(
            messages,
            vec![
                Message::Ping(b"p".to_vec()),
                Message::Pong(Vec::new()),
                Message::Close(Some((1000, String::new()))),
            ]
        );
        // A framing error is still one.
        let mut reader = MessageReader::new(Role::Server);
        reader.discard_data();
        let (messages, error) = read_pieces(reader, &frame(true, CONT, b"x"), 64);
        assert!(messages.is_empty());
        assert_eq!(error.map(|e| e.code), Some(PROTOCOL_ERROR));
    }

    fn close_body(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(reason);
        body
    }

    #[test]
    fn autobahn_7_1_nothing_counts_after_close() {
        let wire = cat(&[
            frame(true, TEXT, b"Hello World!"),
            frame(true, CLOSE, &close_body(1000, b"")),
            frame(true, CLOSE, &close_body(1000, b"")), // 7.1.2
            frame(true, PING, b""),                     // 7.1.3
            frame(true, TEXT, b"after close"),          // 7.1.4
            vec![0xFF, 0xFF],                           // even garbage
        ]);
        let expected = vec![
            text("Hello World!"),
            Message::Close(Some((1000, String::new()))),
        ];
        assert_eq!(read_every_split(&wire), (expected, None));
    }

    #[test]
    fn autobahn_7_1_5_close_inside_fragmented_message() {
        let wire = cat(&[
            frame(false, TEXT, b"fragment1"),
            frame(true, CLOSE, &close_body(1000, b"")),
            frame(true, CONT, b"fragment2"),
        ]);
        assert_eq!(
            read(&wire),
            (vec![Message::Close(Some((1000, String::new())))], None)
        );
    }

    #[test]
    fn autobahn_7_3_close_payload_lengths() {
        let reason123 = vec![b'*'; 123];
        assert_eq!(
            read(&frame(true, CLOSE, b"")),
            (vec![Message::Close(None)], None)
        );
        assert_eq!(
            code(read(&frame(true, CLOSE, b"\x03"))),
            (vec![], Some(PROTOCOL_ERROR))
        );
        assert_eq!(
            read(&frame(true, CLOSE, &close_body(1000, b""))),
            (vec![Message::Close(Some((1000, String::new())))], None)
        );
        assert_eq!(
            read(&frame(true, CLOSE, &close_body(1000, b"Hello World!"))),
            (
                vec![Message::Close(Some((1000, "Hello World!".into())))],
                None
            )
        );
        let (messages, err) = read(&frame(true, CLOSE, &close_body(1000, &reason123)));
        assert_eq!((messages.len(), err), (1, None));
        assert_eq!(
            code(read(&frame(true, CLOSE, &close_body(1000, &[b'*'; 124])))),
            (vec![], Some(PROTOCOL_ERROR))
        );
    }

    #[test]
    fn autobahn_7_5_1_invalid_utf8_close_reason() {
        let body = close_body(
            1000,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
        );
        assert_eq!(
            code(read(&frame(true, CLOSE, &body))),
            (vec![], Some(INVALID_PAYLOAD))
        );
    }

    #[test]
    fn autobahn_7_7_and_7_9_close_codes() {
        for valid in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let wire = frame(true, CLOSE, &close_body(valid, b"Ok"));
            assert_eq!(
                read(&wire),
                (vec![Message::Close(Some((valid, "Ok".into())))], None)
            );
        }
        for invalid in [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999] {
            let wire = frame(true, CLOSE, &close_body(invalid, b""));
            assert_eq!(
                code(read(&wire)),
                (vec![], Some(PROTOCOL_ERROR)),
                "code {invalid}"
            );
        }
    }

    // ---- 9. Limits --------------------------------------------------------------

    #[test]
    fn message_at_the_limit_is_accepted_one_more_byte_is_1009() {
        let small = || MessageReader::new(Role::Server).with_max_message_size(100);
        let wire = frame(true, BINARY, &[7; 100]);
        assert_eq!(
            read_pieces(small(), &wire, 999).0,
            [Message::Binary(vec![7; 100])]
        );
        let wire = frame(true, BINARY, &[7; 101]);
        // The header alone fails: the 101 bytes are never buffered.
        assert_eq!(
            code(read_pieces(small(), &wire[..8], 999)),
            (vec![], Some(MESSAGE_TOO_BIG))
        );
    }

    #[test]
    fn limit_counts_across_fragments() {
        let reader = MessageReader::new(Role::Server).with_max_message_size(10);
        let wire = cat(&[
            frame(false, TEXT, b"12345"),
            frame(true, PING, b"control frames do not count"),
            frame(false, CONT, b"6789"),
            frame(true, CONT, b"01"),
        ]);
        let (messages, err) = read_pieces(reader, &wire, 5);
        assert_eq!(
            messages,
            [Message::Ping(b"control frames do not count".to_vec())]
        );
        assert_eq!(
            err.map(|e| (e.code, e.reason)),
            Some((MESSAGE_TOO_BIG, "message too big".into()))
        );
    }

    #[test]
    fn default_limit_is_one_mebibyte() {
        let mut wire = Vec::new();
        encode_header(
            &mut wire,
            true,
            OpCode::Binary,
            DEFAULT_MAX_MESSAGE_SIZE as u64 + 1,
            Some([1, 2, 3, 4]),
        );
        assert_eq!(code(read(&wire)), (vec![], Some(MESSAGE_TOO_BIG)));
        let mut wire = Vec::new();
        encode_header(
            &mut wire,
            true,
            OpCode::Binary,
            u64::MAX >> 1,
            Some([1, 2, 3, 4]),
        );
        assert_eq!(code(read(&wire)), (vec![], Some(MESSAGE_TOO_BIG)));
    }

    /// Room the reader holds for the message in progress.
    fn reserved(reader: &MessageReader) -> usize {
        match &reader.state {
            State::Data { message, .. } | State::Fragmented { message } => message.buf.capacity(),
            _ => 0,
        }
    }

    #[test]
    fn a_frame_header_reserves_at_most_one_read_not_its_announced_length() {
        let mut wire = Vec::new();
        let announced = DEFAULT_MAX_MESSAGE_SIZE;
        encode_header(
            &mut wire,
            true,
            OpCode::Binary,
            announced as u64,
            // A zero key: the payload is its own masked form.
            Some([0; 4]),
        );
        wire.extend_from_slice(&[0; 10]);
        let mut reader = MessageReader::new(Role::Server);
        let mut input = &wire[..];
        assert_eq!(reader.read_message(&mut input), Ok(None));
        let room = reserved(&reader);
        assert!(
            (10..=MAX_PREALLOCATION).contains(&room),
            "{room} bytes reserved for 10 received"
        );
        // The rest still arrives and completes the message.
        let rest = vec![0; announced - 10];
        let mut input = &rest[..];
        assert_eq!(
            reader.read_message(&mut input),
            Ok(Some(Message::Binary(vec![0; announced])))
        );
    }

    // ---- Reader states ----------------------------------------------------------

    /// Small deterministic PRNG (xorshift64) so the randomized tests
    /// below are reproducible without a dependency.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    #[test]
    fn random_and_corrupted_input_never_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let valid = cat(&[
            frame(false, TEXT, "κόσμε".as_bytes()),
            frame(true, PING, b"ping"),
            frame(true, CONT, &[b'x'; 200]),
            frame(true, BINARY, &[0; 70]),
            frame(true, CLOSE, &close_body(1000, b"bye")),
        ]);
        for round in 0..4000 {
            let wire: Vec<u8> = if round % 2 == 0 {
                (0..rng.below(64)).map(|_| rng.next() as u8).collect()
            } else {
                // A valid stream with a few bytes flipped.
                let mut wire = valid.clone();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(wire.len() as u64);
                    wire[at] ^= 1 << rng.below(8);
                }
                wire
            };
            let piece = 1 + rng.below(16);
            for role in [Role::Server, Role::Client] {
                let reader = MessageReader::new(role).with_max_message_size(1 << 10);
                let _ = read_pieces(reader, &wire, piece);
            }
        }
    }

    #[test]
    fn random_fragmented_messages_survive_random_cuts() {
        let mut rng = XorShift(42);
        for _ in 0..200 {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..1 + rng.below(5) {
                let words = ["a", "é", "€", "𝄞", "xyz", ""];
                let body: String = (0..rng.below(40)).map(|_| words[rng.below(6)]).collect();
                let bytes = body.as_bytes();
                // Cut the message into fragments at arbitrary byte positions,
                // with a ping between fragments now and then: the pings are
                // delivered first, then the message.
                let mut cuts: Vec<usize> = (0..rng.below(4))
                    .map(|_| rng.below(bytes.len() as u64 + 1))
                    .collect();
                cuts.sort_unstable();
                cuts.push(bytes.len());
                let mut start = 0;
                for (i, &end) in cuts.iter().enumerate() {
                    let last = i + 1 == cuts.len();
                    wire.extend(frame(
                        last,
                        if i == 0 { TEXT } else { CONT },
                        &bytes[start..end],
                    ));
                    start = end;
                    if !last && rng.below(3) == 0 {
                        wire.extend(frame(true, PING, b"p"));
                        expected.push(Message::Ping(b"p".to_vec()));
                    }
                }
                expected.push(Message::Text(body));
            }
            let piece = 1 + rng.below(20);
            let got = read_pieces(MessageReader::new(Role::Server), &wire, piece);
            assert_eq!(got, (expected, None));
        }
    }

    #[test]
    fn errors_are_sticky() {
        let mut reader = MessageReader::new(Role::Server);
        let bad = frame(true, CONT, b"x");
        let mut input = &bad[..];
        let first = reader.read_message(&mut input).unwrap_err();
        let good = frame(true, TEXT, b"fine");
        let mut input = &good[..];
        assert_eq!(reader.read_message(&mut input), Err(first));
    }

    #[test]
    fn encode_round_trips_every_message_kind() {
        let messages = vec![
            text("héllo"),
            Message::Binary(vec![0, 255, 1]),
            Message::Ping(b"ping".to_vec()),
            Message::Pong(vec![]),
            Message::Close(Some((4000, "bye".into()))),
        ];
        for (role, mask) in [(Role::Server, Some([9, 9, 9, 9])), (Role::Client, None)] {
            let mut wire = Vec::new();
            for m in &messages {
                m.encode(&mut wire, mask);
            }
            let got = read_pieces(MessageReader::new(role), &wire, 4);
            assert_eq!(got, (messages.clone(), None));
        }
        let mut wire = Vec::new();
        Message::Close(None).encode(&mut wire, None);
        assert_eq!(wire, [0x88, 0x00]);
    }
}
