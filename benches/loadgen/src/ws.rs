//! The minimal client side of RFC 6455 the benchmarks need.
//!
//! - handshake: `GET` with `Upgrade: websocket`, a random 16-byte key, and the
//!   check that the `101` answer carries `Sec-WebSocket-Accept` =
//!   base64(SHA-1(key + GUID));
//! - out: masked frames (text, pong, close), always unfragmented;
//! - in: unmasked frames of any length, continuation frames reassembled.

use base64::Engine;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest message we accept from the server.
pub const MAX_MESSAGE: usize = 1 << 20;

pub const OP_CONT: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// A fresh `Sec-WebSocket-Key` from 16 random bytes.
pub fn new_key(rng: &mut crate::sys::Rng) -> String {
    let mut k = [0u8; 16];
    rng.fill(&mut k);
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// The `Sec-WebSocket-Accept` the server must answer for `key`.
pub fn expected_accept(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.digest().bytes())
}

/// The upgrade request. `Origin` is set to the same origin as `Host`, which
/// both Tornado's default `check_origin` and a same-origin policy accept.
pub fn handshake_request(path: &str, host: &str, key: &str, cookie: &str) -> Vec<u8> {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n"
    );
    if !cookie.is_empty() {
        r.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Check a handshake answer; `Ok(consumed)` when it is a valid `101`.
pub fn check_handshake(buf: &[u8], key: &str) -> Result<Option<usize>, String> {
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut hs);
    let n = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > 64 * 1024 {
                return Err("handshake answer too large".into());
            }
            return Ok(None);
        }
        Err(e) => return Err(format!("bad handshake answer: {e}")),
    };
    if r.code != Some(101) {
        return Err(format!("handshake answered {}", r.code.unwrap_or(0)));
    }
    let want = expected_accept(key);
    let ok = r
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept") && h.value == want.as_bytes());
    if !ok {
        return Err("missing or wrong Sec-WebSocket-Accept".into());
    }
    Ok(Some(n))
}

/// Append one masked frame (FIN set) to `out`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// One frame parsed from the server.
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
    pub consumed: usize,
}

/// Parse one frame at the start of `buf` (`Ok(None)` = incomplete).
pub fn parse_frame(buf: &[u8]) -> Result<Option<Frame>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    if buf[0] & 0x70 != 0 {
        return Err("reserved bits set (no extension negotiated)".into());
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let mut pos = 2;
    let mut len = (buf[1] & 0x7f) as u64;
    if len == 126 {
        if buf.len() < 4 {
            return Ok(None);
        }
        len = u16::from_be_bytes([buf[2], buf[3]]) as u64;
        pos = 4;
    } else if len == 127 {
        if buf.len() < 10 {
            return Ok(None);
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[2..10]);
        len = u64::from_be_bytes(b);
        pos = 10;
    }
    if len > MAX_MESSAGE as u64 {
        return Err("frame too large".into());
    }
    let mut mask = [0u8; 4];
    if masked {
        // Servers must not mask; accept it anyway and unmask.
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        mask.copy_from_slice(&buf[pos..pos + 4]);
        pos += 4;
    }
    let len = len as usize;
    if buf.len() < pos + len {
        return Ok(None);
    }
    let mut payload = buf[pos..pos + len].to_vec();
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i & 3];
        }
    }
    Ok(Some(Frame {
        fin,
        opcode,
        payload,
        consumed: pos + len,
    }))
}

/// Reassembles messages from frames; answers pings.
#[derive(Default)]
pub struct Reader {
    partial: Vec<u8>,
    in_message: bool,
}

/// What one complete frame meant.
pub enum Event {
    /// A complete text or binary message.
    Message(Vec<u8>),
    /// A ping: send this pong payload back.
    Ping(Vec<u8>),
    /// The server closed.
    Close,
    /// Nothing complete yet (a fragment or a pong).
    Nothing,
}

impl Reader {
    pub fn on_frame(&mut self, f: Frame) -> Result<Event, String> {
        match f.opcode {
            OP_TEXT | OP_BINARY | OP_CONT => {
                if f.opcode == OP_CONT && !self.in_message {
                    return Err("continuation without a first frame".into());
                }
                if f.opcode != OP_CONT && self.in_message {
                    return Err("new message inside a fragmented one".into());
                }
                if self.partial.len() + f.payload.len() > MAX_MESSAGE {
                    return Err("message too large".into());
                }
                if f.fin {
                    self.in_message = false;
                    if self.partial.is_empty() {
                        return Ok(Event::Message(f.payload));
                    }
                    self.partial.extend_from_slice(&f.payload);
                    return Ok(Event::Message(std::mem::take(&mut self.partial)));
                }
                self.in_message = true;
                self.partial.extend_from_slice(&f.payload);
                Ok(Event::Nothing)
            }
            OP_PING => Ok(Event::Ping(f.payload)),
            OP_PONG => Ok(Event::Nothing),
            OP_CLOSE => Ok(Event::Close),
            op => Err(format!("unknown opcode {op}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_rfc_example() {
        // The worked example of RFC 6455 section 1.3.
        assert_eq!(
            expected_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn masked_round_trip_and_lengths() {
        for n in [0usize, 125, 126, 65535, 65536] {
            let p = vec![b'x'; n];
            let mut out = Vec::new();
            encode_frame(&mut out, OP_TEXT, &p, [1, 2, 3, 4]);
            let f = parse_frame(&out).unwrap().unwrap();
            assert_eq!(
                (f.opcode, f.payload.len(), f.consumed),
                (OP_TEXT, n, out.len())
            );
            assert_eq!(f.payload, p);
            assert!(parse_frame(&out[..out.len() - 1]).unwrap().is_none() || n == 0);
        }
    }

    #[test]
    fn fragments_reassemble() {
        let mut r = Reader::default();
        let f1 = Frame {
            fin: false,
            opcode: OP_TEXT,
            payload: b"ab".to_vec(),
            consumed: 0,
        };
        let f2 = Frame {
            fin: true,
            opcode: OP_CONT,
            payload: b"c".to_vec(),
            consumed: 0,
        };
        assert!(matches!(r.on_frame(f1).unwrap(), Event::Nothing));
        match r.on_frame(f2).unwrap() {
            Event::Message(m) => assert_eq!(m, b"abc"),
            _ => panic!("expected a message"),
        }
    }
}
