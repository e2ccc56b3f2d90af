//! The server side of RFC 6455, as little as a correct server needs: the
//! `Sec-WebSocket-Accept` key, unmasking client frames (fragments
//! reassembled, pings answered, closes echoed), and unmasked server frames.
//!
//! A text message `{"body": "..."}` posts to the connection's room; the
//! broadcast itself is the server's (one frame for all members). Other
//! JSON is ignored, as Tornado's demo does. Protocol errors close with
//! 1002, a binary message with 1003 (as squall), bad UTF-8 with 1007, a
//! message over [`MAX_MESSAGE`] with 1009.

use crate::chat::{Chat, MAX_MESSAGE_BODY};
use crate::conn::{Conn, MAX_UNWRITTEN};
use base64::Engine;
use serde_json::Value;

/// Largest message a client may send (squall's bound too).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// RFC 6455's fixed suffix of the accept key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Frame opcodes (RFC 6455 §5.2).
const OP_CONT: u8 = 0;
/// Opcode of a text frame.
pub const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;

/// Close codes (RFC 6455 §7.4.1).
const PROTOCOL_ERROR: u16 = 1002;
const UNSUPPORTED_DATA: u16 = 1003;
const INVALID_PAYLOAD: u16 = 1007;
const TOO_BIG: u16 = 1009;

/// What an upgraded connection keeps.
pub struct WsState {
    /// Its room, where its messages go and whose messages it gets.
    pub room: u32,
    /// Its index in the room's member list (O(1) leave).
    pub slot: u32,
    /// The `user` cookie: the `from` of the messages it posts.
    pub name: Box<str>,
    /// The message being reassembled from fragments.
    partial: Vec<u8>,
    /// A fragmented message has begun and not ended.
    in_message: bool,
}

impl WsState {
    /// A member of `room` in `slot`, posting as `name`.
    pub fn new(room: u32, slot: u32, name: Box<str>) -> WsState {
        WsState {
            room,
            slot,
            name,
            partial: Vec::new(),
            in_message: false,
        }
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.digest().bytes())
}

/// Append one unmasked, unfragmented server frame to `out`.
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// A frame header, after which the payload is unmasked in place.
struct Head {
    /// Last frame of its message.
    fin: bool,
    opcode: u8,
    /// Where the payload starts and ends in the buffer given to [`frame`].
    start: usize,
    end: usize,
}

/// Find the frame at the start of `buf` and unmask its payload in place.
/// `Ok(None)`: incomplete. `Err(code)`: close with that code.
fn frame(buf: &mut [u8]) -> Result<Option<Head>, u16> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
        // Reserved bits without an extension, or an unmasked client frame.
        return Err(PROTOCOL_ERROR);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    let (len, mut pos) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if opcode >= OP_CLOSE && (!fin || len > 125) {
        return Err(PROTOCOL_ERROR);
    }
    if len > MAX_MESSAGE as u64 {
        return Err(TOO_BIG);
    }
    if buf.len() < pos + 4 + len as usize {
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[pos..pos + 4]);
    pos += 4;
    let end = pos + len as usize;
    for (i, b) in buf[pos..end].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    Ok(Some(Head {
        fin,
        opcode,
        start: pos,
        end,
    }))
}

/// Queue a close frame with `code` and stop reading; returns false.
fn close(c: &mut Conn, code: u16) -> bool {
    encode(&mut c.wbuf, OP_CLOSE, &code.to_be_bytes());
    c.close_after_write = true;
    c.rbuf.clear();
    false
}

/// A complete text message: post `{"body": "..."}` to the room. `Err` is a
/// close code.
fn on_text(text: &[u8], room: u32, name: &str, chat: &mut Chat) -> Result<(), u16> {
    if std::str::from_utf8(text).is_err() {
        return Err(INVALID_PAYLOAD);
    }
    let Ok(v) = serde_json::from_slice::<Value>(text) else {
        return Ok(());
    };
    if let Some(body) = v.get("body").and_then(Value::as_str) {
        if !body.trim().is_empty() && body.chars().count() <= MAX_MESSAGE_BODY {
            chat.post(room, name, body);
        }
    }
    Ok(())
}

/// Handle every complete frame in `c.rbuf`; false when the connection is
/// closing (a close frame is queued).
pub fn on_input(c: &mut Conn, chat: &mut Chat) -> bool {
    let Some(ws) = c.ws.as_mut() else {
        return true;
    };
    let mut pos = 0;
    let result = loop {
        // Pongs piling up for a client that does not read: stop here, the
        // rest is parsed once it drains.
        if c.wbuf.len() - c.wpos > MAX_UNWRITTEN {
            c.input_pending = true;
            break Ok(());
        }
        let f = match frame(&mut c.rbuf[pos..]) {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(code) => break Err(code),
        };
        let payload = &c.rbuf[pos + f.start..pos + f.end];
        pos += f.end;
        match f.opcode {
            OP_PING => encode(&mut c.wbuf, OP_PONG, payload),
            OP_PONG => {}
            OP_CLOSE => {
                // Echo the code (none when the client gave none).
                if payload.len() == 1 {
                    break Err(PROTOCOL_ERROR);
                }
                encode(&mut c.wbuf, OP_CLOSE, &payload[..payload.len().min(2)]);
                c.close_after_write = true;
                c.rbuf.clear();
                return false;
            }
            OP_BINARY if !ws.in_message => break Err(UNSUPPORTED_DATA),
            OP_TEXT if !ws.in_message && f.fin => {
                if let Err(code) = on_text(payload, ws.room, &ws.name, chat) {
                    break Err(code);
                }
            }
            OP_TEXT if !ws.in_message => {
                ws.in_message = true;
                ws.partial.extend_from_slice(payload);
            }
            OP_CONT if ws.in_message => {
                if ws.partial.len() + payload.len() > MAX_MESSAGE {
                    break Err(TOO_BIG);
                }
                ws.partial.extend_from_slice(payload);
                if f.fin {
                    ws.in_message = false;
                    let text = std::mem::take(&mut ws.partial);
                    if let Err(code) = on_text(&text, ws.room, &ws.name, chat) {
                        break Err(code);
                    }
                }
            }
            _ => break Err(PROTOCOL_ERROR),
        }
    };
    match result {
        Ok(()) => {
            c.rbuf.drain(..pos);
            true
        }
        Err(code) => close(c, code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(
            accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        let n = payload.len();
        if n < 126 {
            out.push(0x80 | n as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    #[test]
    fn frames_unmask_and_bound() {
        let mut b = masked(OP_TEXT, true, b"hello");
        let h = frame(&mut b).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode), (true, OP_TEXT));
        assert_eq!(&b[h.start..h.end], b"hello");
        let mut b = masked(OP_TEXT, true, &[b'x'; 300]);
        assert!(frame(&mut b[..100]).unwrap().is_none());
        assert_eq!(frame(&mut b).unwrap().unwrap().end, b.len());
        // Unmasked client frame, oversized ping, too big.
        assert_eq!(frame(&mut [0x81, 0x01, b'a']).err(), Some(PROTOCOL_ERROR));
        assert_eq!(
            frame(&mut masked(OP_PING, true, &[0; 126])).err(),
            Some(PROTOCOL_ERROR)
        );
        let mut big = vec![0x81, 0xff];
        big.extend_from_slice(&(1u64 << 20).to_be_bytes());
        assert_eq!(frame(&mut big).err(), Some(TOO_BIG));
        let mut out = Vec::new();
        encode(&mut out, OP_TEXT, &[b'y'; 200]);
        assert_eq!(&out[..4], &[0x81, 126, 0, 200]);
    }
}
