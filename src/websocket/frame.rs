//! Frames: the wire format of RFC 6455 §5.2, decoded and encoded.
//!
//! Mirrors the frame half of Tornado's `websocket.py`
//! (`WebSocketProtocol13._receive_frame`, `_write_frame`) and the masking
//! helper of `tornado/speedups.c` (`websocket_mask`).
//!
//! ```text
//!   0                   1                   2                   3
//!   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!  +-+-+-+-+-------+-+-------------+-------------------------------+
//!  |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//!  |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//!  |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//!  | |1|2|3|       |K|             |                               |
//!  +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//!  |     Extended payload length continued, if payload len == 127  |
//!  + - - - - - - - - - - - - - - - +-------------------------------+
//!  |                               |Masking-key, if MASK set to 1  |
//!  +-------------------------------+-------------------------------+
//!  | Masking-key (continued)       |          Payload Data         |
//!  +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! Two ways in, both incremental:
//!
//! * [`parse_header`] is stateless, httparse-style: hand it the bytes you
//!   have; it answers "need more" (`Ok(None)`) or the header and its length.
//! * [`FrameDecoder`] is push-style: feed it slices cut anywhere. It keeps at
//!   most [`MAX_HEADER_LEN`] header bytes of its own and hands the payload
//!   back as borrowed [`PayloadChunk`]s, so the payload is copied exactly
//!   once, by whoever keeps it ([`PayloadChunk::append_unmasked_to`]).
//!
//! Validation happens as early as the bytes allow (RSV bits and opcode after
//! the first byte, mask bit and control-frame length after the second), so a
//! bad frame fails before its payload is waited for.

use super::close::{ProtocolError, PROTOCOL_ERROR};

/// Longest possible frame header: 2 fixed bytes, an 8-byte extended length
/// and a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// "All control frames MUST have a payload length of 125 bytes or less"
/// (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Which end of the connection we are; it decides which masking rule
/// applies to the frames we *receive*.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We accepted the connection; the peer is a client and must mask.
    Server,
    /// We opened the connection; the peer is a server and must not mask.
    Client,
}

/// Frame opcodes defined by RFC 6455 §5.2. The others (0x3-0x7 "reserved
/// for further non-control frames", 0xB-0xF "reserved for further control
/// frames") are refused by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: "denotes a continuation frame".
    Continuation = 0x0,
    /// 0x1: "denotes a text frame".
    Text = 0x1,
    /// 0x2: "denotes a binary frame".
    Binary = 0x2,
    /// 0x8: "denotes a connection close".
    Close = 0x8,
    /// 0x9: "denotes a ping".
    Ping = 0x9,
    /// 0xA: "denotes a pong".
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for a reserved one.
    pub fn from_u8(bits: u8) -> Option<OpCode> {
        match bits {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// "Control frames are identified by opcodes where the most significant
    /// bit of the opcode is 1." (§5.5)
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A parsed, validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// "Indicates that this is the final fragment in a message."
    pub fin: bool,
    /// What the payload is.
    pub opcode: OpCode,
    /// The masking key, present exactly when the peer's role requires it.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes (at most 2^63 - 1).
    pub payload_len: u64,
}

fn protocol_error(reason: &'static str) -> ProtocolError {
    ProtocolError::new(PROTOCOL_ERROR, reason)
}

/// Parse one frame header from the start of `buf`, as received by `role`.
///
/// Returns `Ok(None)` when `buf` is too short to tell (at most
/// [`MAX_HEADER_LEN`] bytes are ever needed), `Ok(Some((header, len)))`
/// when the header is complete and takes the first `len` bytes, and an
/// error (close code 1002) as soon as the bytes seen break a rule:
///
/// * RSV1-3 set: no extensions are negotiated, and "If a nonzero value is
///   received and none of the negotiated extensions defines the meaning of
///   such a nonzero value, the receiving endpoint MUST _Fail the WebSocket
///   Connection_." (§5.2)
/// * a reserved opcode: "If an unknown opcode is received, the receiving
///   endpoint MUST _Fail the WebSocket Connection_." (§5.2)
/// * a control frame with FIN clear or a payload over 125 bytes: "All control
///   frames MUST have a payload length of 125 bytes or less and MUST NOT be
///   fragmented." (§5.5)
/// * the wrong masking for `role`: "The server MUST close the connection upon
///   receiving a frame that is not masked." and "A client MUST close a
///   connection if it detects a masked frame." (§5.1)
/// * a 64-bit length with its top bit set: "the most significant bit MUST be
///   0" (§5.2).
/// * a non-minimal length: "the minimal number of bytes MUST be used to
///   encode the length" (§5.2). Tornado does not check this and Autobahn
///   does not test it; squall refuses, as wsproto does, because a peer that
///   gets this wrong is broken in other ways too.
pub fn parse_header(buf: &[u8], role: Role) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let [b0, rest @ ..] = buf else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    if b0 & 0x70 != 0 {
        return Err(protocol_error("reserved bits set without an extension"));
    }
    let Some(opcode) = OpCode::from_u8(b0 & 0x0F) else {
        return Err(protocol_error("reserved opcode"));
    };
    if opcode.is_control() && !fin {
        return Err(protocol_error("fragmented control frame"));
    }

    let [b1, rest @ ..] = rest else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(protocol_error("client frame is not masked")),
        (Role::Client, true) => return Err(protocol_error("server frame is masked")),
        (Role::Server, true) | (Role::Client, false) => {}
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(protocol_error("control frame payload over 125 bytes"));
    }

    // "Payload length: 7 bits, 7+16 bits, or 7+64 bits" (§5.2)
    let (payload_len, rest) = match len7 {
        0..=125 => (u64::from(len7), rest),
        126 => {
            let Some((ext, rest)) = rest.split_first_chunk::<2>() else {
                return Ok(None);
            };
            let len = u16::from_be_bytes(*ext);
            if len <= 125 {
                return Err(protocol_error("payload length not minimally encoded"));
            }
            (u64::from(len), rest)
        }
        _ => {
            let Some((ext, rest)) = rest.split_first_chunk::<8>() else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(*ext);
            if len >> 63 != 0 {
                return Err(protocol_error("64-bit payload length has its top bit set"));
            }
            if len <= 0xFFFF {
                return Err(protocol_error("payload length not minimally encoded"));
            }
            (len, rest)
        }
    };

    let (mask, rest) = if masked {
        let Some((key, rest)) = rest.split_first_chunk::<4>() else {
            return Ok(None);
        };
        (Some(*key), rest)
    } else {
        (None, rest)
    };

    let header = FrameHeader {
        fin,
        opcode,
        mask,
        payload_len,
    };
    Ok(Some((header, buf.len() - rest.len())))
}

/// XOR `data` with the masking key, as bytes `phase..` of a payload: the
/// first byte of `data` is payload byte number `phase` (only `phase % 4`
/// matters). Masking and unmasking are the same operation:
///
/// > Octet i of the transformed data ("transformed-octet-i") is the XOR of
/// > octet i of the original data ("original-octet-i") with octet at index
/// > i modulo 4 of the masking key ("masking-key-octet-j") (§5.3)
///
/// Works 8 bytes at a time (the key repeated twice as one `u64`), then
/// byte by byte for the tail.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], phase: usize) {
    // Rotate the key so that `key[0]` applies to `data[0]`.
    let key: [u8; 4] = std::array::from_fn(|i| mask[(phase + i) % 4]);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        if let Ok(bytes) = <[u8; 8]>::try_from(&*word) {
            word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
        }
    }
    // 8 is a multiple of 4, so the tail starts at key phase 0 again.
    for (byte, k) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Append a frame header for a payload of `payload_len` bytes to `out`.
///
/// For writers that send the payload separately (e.g. a large buffer that
/// should not be copied); [`encode_frame`] is the usual entry point.
/// RSV bits are always 0. The length uses the minimal encoding.
pub fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) {
    out.push(u8::from(fin) << 7 | opcode as u8);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload_len {
        0..=125 => out.push(mask_bit | payload_len as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&payload_len.to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// Append one complete frame to `out`, masking the payload with `mask` if
/// given ("A client MUST mask all frames that it sends to the server";
/// "A server MUST NOT mask any frames that it sends to the client", §5.1).
///
/// The caller keeps control frames within [`MAX_CONTROL_PAYLOAD`] bytes and
/// unfragmented (`fin = true`); this function encodes what it is given, and
/// the peer will fail the connection otherwise. A client should draw each
/// masking key fresh from a strong random source (§5.3, §10.3).
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    out.reserve(MAX_HEADER_LEN + payload.len());
    encode_header(out, fin, opcode, payload.len() as u64, mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// A piece of one frame's payload, borrowed from the decoder's input and
/// still masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadChunk<'a> {
    /// The bytes as they were on the wire.
    raw: &'a [u8],
    /// Key to unmask them with, if the frame was masked.
    mask: Option<[u8; 4]>,
    /// Offset of `raw[0]` in the frame's payload, modulo 4.
    phase: usize,
    /// Does this chunk end the frame?
    is_last: bool,
}

impl PayloadChunk<'_> {
    /// Append the unmasked bytes to `out`: the one copy of the payload.
    pub fn append_unmasked_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(self.raw);
        if let Some(key) = self.mask {
            apply_mask(&mut out[start..], key, self.phase);
        }
    }

    /// Number of payload bytes in this chunk.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True for the empty last chunk of an empty frame.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// True if this chunk completes the frame's payload.
    pub fn is_last(&self) -> bool {
        self.is_last
    }
}

/// What [`FrameDecoder::decode`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A new frame begins.
    Header(FrameHeader),
    /// Some of the current frame's payload. Every frame yields at least one
    /// chunk (an empty one if the payload is empty) and the last has
    /// [`PayloadChunk::is_last`] set.
    Payload(PayloadChunk<'a>),
}

/// Where the decoder is within the current frame.
#[derive(Debug, Clone, Copy)]
enum DecodeState {
    /// Collecting header bytes; `buf[..len]` holds the ones received so far
    /// (a header may be split across reads). Invariant: `len < MAX_HEADER_LEN`.
    Header {
        buf: [u8; MAX_HEADER_LEN],
        len: usize,
    },
    /// Handing out payload; `remaining` bytes of it are still to come.
    Payload {
        remaining: u64,
        mask: Option<[u8; 4]>,
        phase: usize,
    },
}

impl DecodeState {
    const START: DecodeState = DecodeState::Header {
        buf: [0; MAX_HEADER_LEN],
        len: 0,
    };
}

/// Push-style frame decoder: turns a byte stream cut at arbitrary points
/// into [`FrameEvent`]s, holding no more than one partial header itself.
///
/// ```
/// use squall::websocket::frame::{encode_frame, FrameDecoder, FrameEvent, OpCode, Role};
///
/// let mut wire = Vec::new();
/// encode_frame(&mut wire, true, OpCode::Text, b"hi", Some([1, 2, 3, 4]));
/// let mut decoder = FrameDecoder::new(Role::Server);
/// let mut input = &wire[..];
/// let mut payload = Vec::new();
/// while let Some(event) = decoder.decode(&mut input).unwrap() {
///     if let FrameEvent::Payload(chunk) = event {
///         chunk.append_unmasked_to(&mut payload);
///     }
/// }
/// assert_eq!(payload, b"hi");
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    role: Role,
    state: DecodeState,
}

impl FrameDecoder {
    /// A decoder for the frames received by `role`.
    pub fn new(role: Role) -> Self {
        FrameDecoder {
            role,
            state: DecodeState::START,
        }
    }

    /// Decode the next event from the front of `input`, advancing `input`
    /// past the bytes used.
    ///
    /// `Ok(None)` means "need more bytes": `input` has then been consumed
    /// entirely (a partial header is kept inside the decoder), so the caller
    /// may discard it. After an error the stream is unusable; the
    /// connection must be failed with the error's close code.
    pub fn decode<'a>(
        &mut self,
        input: &mut &'a [u8],
    ) -> Result<Option<FrameEvent<'a>>, ProtocolError> {
        match &mut self.state {
            DecodeState::Header { buf, len } => {
                // Copy at most what a header can need, then try to parse.
                // INVARIANT: `have < MAX_HEADER_LEN`, so the ranges below are
                // in bounds; `take <= input.len()`.
                let have = *len;
                let take = (MAX_HEADER_LEN - have).min(input.len());
                buf[have..have + take].copy_from_slice(&input[..take]);
                match parse_header(&buf[..have + take], self.role)? {
                    None => {
                        // Only possible if we took all of `input`: 14 bytes
                        // always hold a complete header.
                        *len = have + take;
                        *input = &input[take..];
                        Ok(None)
                    }
                    Some((header, header_len)) => {
                        // The previous attempt with `have` bytes was
                        // incomplete, so `have < header_len <= have + take`.
                        *input = &input[header_len.saturating_sub(have)..];
                        self.state = DecodeState::Payload {
                            remaining: header.payload_len,
                            mask: header.mask,
                            phase: 0,
                        };
                        Ok(Some(FrameEvent::Header(header)))
                    }
                }
            }
            DecodeState::Payload {
                remaining,
                mask,
                phase,
            } => {
                if *remaining > 0 && input.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                let (raw, rest) = input.split_at(n);
                *input = rest;
                *remaining -= n as u64;
                let chunk = PayloadChunk {
                    raw,
                    mask: *mask,
                    phase: *phase,
                    is_last: *remaining == 0,
                };
                *phase = (*phase + n) % 4;
                if *remaining == 0 {
                    self.state = DecodeState::START;
                }
                Ok(Some(FrameEvent::Payload(chunk)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// Feed `pieces` one after another; collect each frame's header and
    /// unmasked payload.
    fn decode_pieces(
        role: Role,
        pieces: &[&[u8]],
    ) -> Result<Vec<(FrameHeader, Vec<u8>)>, ProtocolError> {
        let mut decoder = FrameDecoder::new(role);
        let mut frames: Vec<(FrameHeader, Vec<u8>)> = Vec::new();
        for piece in pieces {
            let mut input = *piece;
            while let Some(event) = decoder.decode(&mut input)? {
                match event {
                    FrameEvent::Header(h) => frames.push((h, Vec::new())),
                    FrameEvent::Payload(chunk) => {
                        let (_, payload) = frames.last_mut().expect("payload before header");
                        chunk.append_unmasked_to(payload);
                    }
                }
            }
            assert!(input.is_empty(), "Ok(None) must consume all input");
        }
        Ok(frames)
    }

    fn decode_one(role: Role, wire: &[u8]) -> Result<Vec<(FrameHeader, Vec<u8>)>, ProtocolError> {
        decode_pieces(role, &[wire])
    }

    fn header_error(role: Role, wire: &[u8]) -> ProtocolError {
        parse_header(wire, role).expect_err("header should be rejected")
    }

    // RFC 6455 §5.7 known-answer vectors.
    const HELLO_UNMASKED: &[u8] = &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    const HELLO_MASKED: &[u8] = &[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    const HEL_LO: &[u8] = &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    const PING_HELLO: &[u8] = &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    const PONG_HELLO_MASKED: &[u8] = &[
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];

    #[test]
    fn rfc_5_7_single_frame_unmasked_text() {
        let frames = decode_one(Role::Client, HELLO_UNMASKED).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0.opcode, OpCode::Text);
        assert!(frames[0].0.fin);
        assert_eq!(frames[0].1, b"Hello");
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Text, b"Hello", None);
        assert_eq!(out, HELLO_UNMASKED);
    }

    #[test]
    fn rfc_5_7_single_frame_masked_text() {
        let frames = decode_one(Role::Server, HELLO_MASKED).unwrap();
        assert_eq!(frames[0].0.mask, Some(KEY));
        assert_eq!(frames[0].1, b"Hello");
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Text, b"Hello", Some(KEY));
        assert_eq!(out, HELLO_MASKED);
    }

    #[test]
    fn rfc_5_7_fragmented_unmasked_text() {
        let frames = decode_one(Role::Client, HEL_LO).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].0.fin, frames[0].0.opcode), (false, OpCode::Text));
        assert_eq!(
            (frames[1].0.fin, frames[1].0.opcode),
            (true, OpCode::Continuation)
        );
        assert_eq!(frames[0].1, b"Hel");
        assert_eq!(frames[1].1, b"lo");
    }

    #[test]
    fn rfc_5_7_ping_and_masked_pong() {
        let frames = decode_one(Role::Client, PING_HELLO).unwrap();
        assert_eq!(
            (frames[0].0.opcode, &frames[0].1[..]),
            (OpCode::Ping, &b"Hello"[..])
        );
        let frames = decode_one(Role::Server, PONG_HELLO_MASKED).unwrap();
        assert_eq!(
            (frames[0].0.opcode, &frames[0].1[..]),
            (OpCode::Pong, &b"Hello"[..])
        );
    }

    #[test]
    fn rfc_5_7_256_and_65536_byte_binary_headers() {
        let mut out = Vec::new();
        encode_header(&mut out, true, OpCode::Binary, 256, None);
        assert_eq!(out, [0x82, 0x7E, 0x01, 0x00]);
        out.clear();
        encode_header(&mut out, true, OpCode::Binary, 65536, None);
        assert_eq!(out, [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]);
        let (h, len) = parse_header(&out, Role::Client).unwrap().unwrap();
        assert_eq!((h.payload_len, len), (65536, 10));
    }

    // Autobahn 1.1.x / 1.2.x: text and binary payloads of the boundary sizes.
    #[test]
    fn autobahn_1_round_trip_sizes() {
        for size in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
            let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
            for (role, mask) in [(Role::Server, Some(KEY)), (Role::Client, None)] {
                for opcode in [OpCode::Text, OpCode::Binary] {
                    let mut wire = Vec::new();
                    encode_frame(&mut wire, true, opcode, &payload, mask);
                    let frames = decode_one(role, &wire).unwrap();
                    assert_eq!(frames.len(), 1);
                    assert_eq!(frames[0].0.payload_len, size as u64);
                    assert_eq!(frames[0].0.opcode, opcode);
                    assert!(frames[0].1 == payload, "size {size}");
                }
            }
        }
    }

    #[test]
    fn split_at_every_byte_position() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, false, OpCode::Text, b"Hel", Some(KEY));
        encode_frame(&mut wire, true, OpCode::Ping, b"", Some([9, 8, 7, 6]));
        encode_frame(
            &mut wire,
            true,
            OpCode::Continuation,
            &[b'l'; 300],
            Some([1, 2, 3, 4]),
        );
        let whole = decode_one(Role::Server, &wire).unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[2].1, [b'l'; 300]);
        for cut in 0..=wire.len() {
            let (a, b) = wire.split_at(cut);
            assert_eq!(
                decode_pieces(Role::Server, &[a, b]).unwrap(),
                whole,
                "cut at {cut}"
            );
        }
        for cut2 in 0..=wire.len() {
            let cut1 = cut2 / 2;
            let pieces = [&wire[..cut1], &wire[cut1..cut2], &wire[cut2..]];
            assert_eq!(decode_pieces(Role::Server, &pieces).unwrap(), whole);
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_pieces(Role::Server, &bytes).unwrap(), whole);
    }

    #[test]
    fn header_needs_more_until_complete() {
        let mut wire = Vec::new();
        encode_header(&mut wire, true, OpCode::Binary, 70000, Some(KEY));
        assert_eq!(wire.len(), MAX_HEADER_LEN);
        for n in 0..wire.len() {
            assert_eq!(
                parse_header(&wire[..n], Role::Server),
                Ok(None),
                "{n} bytes"
            );
        }
        let (h, len) = parse_header(&wire, Role::Server).unwrap().unwrap();
        assert_eq!((h.payload_len, h.mask, len), (70000, Some(KEY), 14));
    }

    #[test]
    fn empty_frame_yields_one_empty_last_chunk() {
        let mut decoder = FrameDecoder::new(Role::Client);
        let wire = [0x81, 0x00];
        let mut input = &wire[..];
        assert!(matches!(
            decoder.decode(&mut input),
            Ok(Some(FrameEvent::Header(_)))
        ));
        match decoder.decode(&mut input) {
            Ok(Some(FrameEvent::Payload(c))) => assert!(c.is_empty() && c.is_last()),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(decoder.decode(&mut input), Ok(None));
    }

    #[test]
    fn apply_mask_matches_bytewise_definition() {
        let mask = [0xde, 0xad, 0xbe, 0xef];
        for len in 0..40 {
            for phase in 0..8 {
                let data: Vec<u8> = (0..len as u8).collect();
                let mut fast = data.clone();
                apply_mask(&mut fast, mask, phase);
                let slow: Vec<u8> = data
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ mask[(i + phase) % 4])
                    .collect();
                assert_eq!(fast, slow, "len {len} phase {phase}");
            }
        }
    }

    // Autobahn 3.x: RSV bits without a negotiated extension.
    #[test]
    fn autobahn_3_reserved_bits_rejected() {
        for rsv in [0x40u8, 0x20, 0x10, 0x70, 0x60, 0x50, 0x30] {
            for opcode in [0x1u8, 0x2, 0x9] {
                let err = header_error(Role::Server, &[0x80 | rsv | opcode]);
                assert_eq!(err.code, PROTOCOL_ERROR);
            }
        }
    }

    // Autobahn 4.1.x / 4.2.x: reserved non-control and control opcodes.
    #[test]
    fn autobahn_4_reserved_opcodes_rejected() {
        for opcode in (0x3u8..=0x7).chain(0xB..=0xF) {
            let err = header_error(Role::Server, &[0x80 | opcode, 0x80]);
            assert_eq!(err.code, PROTOCOL_ERROR, "opcode {opcode:#x}");
        }
    }

    // Autobahn 2.5 (ping 126 bytes) and 5.1/5.2 (fragmented ping/pong).
    #[test]
    fn control_frame_rules() {
        assert_eq!(
            header_error(Role::Server, &[0x89, 0x80 | 126]).code,
            PROTOCOL_ERROR
        );
        assert_eq!(
            header_error(Role::Server, &[0x8A, 0x80 | 127]).code,
            PROTOCOL_ERROR
        );
        assert_eq!(header_error(Role::Server, &[0x09]).code, PROTOCOL_ERROR);
        assert_eq!(header_error(Role::Server, &[0x0A]).code, PROTOCOL_ERROR);
        assert_eq!(header_error(Role::Server, &[0x08]).code, PROTOCOL_ERROR);
        assert!(parse_header(&[0x89, 0x80 | 125], Role::Server)
            .unwrap()
            .is_none());
    }

    #[test]
    fn masking_depends_on_role() {
        assert_eq!(
            header_error(Role::Server, HELLO_UNMASKED).code,
            PROTOCOL_ERROR
        );
        assert_eq!(
            header_error(Role::Client, HELLO_MASKED).code,
            PROTOCOL_ERROR
        );
    }

    #[test]
    fn length_encoding_rules() {
        // 16-bit length used for 125 bytes.
        assert_eq!(
            header_error(Role::Client, &[0x82, 126, 0x00, 125]).code,
            PROTOCOL_ERROR
        );
        assert!(parse_header(&[0x82, 126, 0x00, 126], Role::Client)
            .unwrap()
            .is_some());
        // 64-bit length used for 65535 bytes.
        let mut wire = vec![0x82, 127];
        wire.extend_from_slice(&0xFFFFu64.to_be_bytes());
        assert_eq!(header_error(Role::Client, &wire).code, PROTOCOL_ERROR);
        // 64-bit length with the most significant bit set.
        let mut wire = vec![0x82, 127];
        wire.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(header_error(Role::Client, &wire).code, PROTOCOL_ERROR);
        // The largest legal length parses (the message layer caps it).
        let mut wire = vec![0x82, 127];
        wire.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        let (h, _) = parse_header(&wire, Role::Client).unwrap().unwrap();
        assert_eq!(h.payload_len, u64::MAX >> 1);
    }

    #[test]
    fn errors_are_reported_before_payload_arrives() {
        // Only the first byte of a frame with RSV1 set: already an error.
        let mut decoder = FrameDecoder::new(Role::Server);
        let mut input: &[u8] = &[0xC1];
        assert!(decoder.decode(&mut input).is_err());
    }
}
