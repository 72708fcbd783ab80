//! HTTP/2 frames in a byte stream (pure): the frame headers of one direction
//! of a plaintext (or already decrypted) connection, for the misbehaving
//! peers to count what they receive and for the reference client's
//! frame-level faults to drop what they must not send or see.
//! RFC 9113 section 4.1: a 9-byte header (24-bit length, type, flags,
//! 31-bit stream id), then the payload.

/// Frame types this module names.
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
/// The ACK flag of SETTINGS and PING.
pub const ACK: u8 = 0x1;

/// The client connection preface, before the client's first frame.
const PREFACE_LEN: usize = 24;

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub len: u32,
}

impl Frame {
    fn parse(h: &[u8; 9]) -> Frame {
        Frame {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        }
    }

    /// A PING that asks for an answer (not an ACK).
    pub fn is_ping(&self) -> bool {
        self.kind == PING && self.flags & ACK == 0
    }

    /// A PING that answers one.
    pub fn is_ping_ack(&self) -> bool {
        self.kind == PING && self.flags & ACK != 0
    }
}

/// One direction of a connection, fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Bytes of the connection preface still to pass unchanged.
    preface: usize,
    header: Vec<u8>,
    /// Payload bytes of the current frame still to come, and whether they pass.
    payload: usize,
    keep: bool,
}

impl Scanner {
    /// What a client sends (it starts with the connection preface).
    pub fn from_client() -> Scanner {
        Scanner::with_preface(PREFACE_LEN)
    }

    /// What a server sends.
    pub fn from_server() -> Scanner {
        Scanner::with_preface(0)
    }

    fn with_preface(preface: usize) -> Scanner {
        Scanner {
            preface,
            header: Vec::with_capacity(9),
            payload: 0,
            keep: true,
        }
    }

    /// The bytes of `input` that pass: whole frames are kept or dropped as
    /// `keep` says when their header is complete (a header split over two
    /// pieces is held back until it is).
    pub fn filter(&mut self, input: &[u8], mut keep: impl FnMut(&Frame) -> bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut rest = input;
        while !rest.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(rest.len());
                out.extend_from_slice(&rest[..n]);
                self.preface -= n;
                rest = &rest[n..];
            } else if self.payload > 0 {
                let n = self.payload.min(rest.len());
                if self.keep {
                    out.extend_from_slice(&rest[..n]);
                }
                self.payload -= n;
                rest = &rest[n..];
            } else {
                let n = (9 - self.header.len()).min(rest.len());
                self.header.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if self.header.len() == 9 {
                    let h: [u8; 9] = self.header[..].try_into().expect("nine bytes");
                    let frame = Frame::parse(&h);
                    self.keep = keep(&frame);
                    if self.keep {
                        out.extend_from_slice(&h);
                    }
                    self.payload = frame.len as usize;
                    self.header.clear();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: u8 = 0x0;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn conversation() -> Vec<u8> {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(0x4, 0, 0, &[0; 6]));
        bytes.extend(frame(PING, 0, 0, &[1; 8]));
        bytes.extend(frame(DATA, 0, 1, b"hello"));
        bytes.extend(frame(PING, ACK, 0, &[2; 8]));
        bytes.extend(frame(WINDOW_UPDATE, 0, 3, &[0, 0, 4, 0]));
        bytes
    }

    #[test]
    fn every_frame_is_seen_once_whatever_the_pieces() {
        let bytes = conversation();
        for piece in [1, 2, 7, 9, 10, 1000] {
            let mut s = Scanner::from_client();
            let mut seen = Vec::new();
            let mut out = Vec::new();
            for chunk in bytes.chunks(piece) {
                out.extend(s.filter(chunk, |f| {
                    seen.push(*f);
                    true
                }));
            }
            assert_eq!(out, bytes, "piece {piece}");
            let kinds: Vec<_> = seen.iter().map(|f| (f.kind, f.stream, f.len)).collect();
            assert_eq!(
                kinds,
                [
                    (4, 0, 6),
                    (PING, 0, 8),
                    (DATA, 1, 5),
                    (PING, 0, 8),
                    (WINDOW_UPDATE, 3, 4)
                ]
            );
            assert_eq!(seen.iter().filter(|f| f.is_ping()).count(), 1);
            assert_eq!(seen.iter().filter(|f| f.is_ping_ack()).count(), 1);
        }
    }

    #[test]
    fn dropped_frames_leave_the_others_intact() {
        let bytes = conversation();
        let mut expected = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        expected.extend(frame(0x4, 0, 0, &[0; 6]));
        expected.extend(frame(PING, 0, 0, &[1; 8]));
        expected.extend(frame(DATA, 0, 1, b"hello"));
        for piece in [1, 5, 9, 64] {
            let mut s = Scanner::from_client();
            let out: Vec<u8> = bytes
                .chunks(piece)
                .flat_map(|c| s.filter(c, |f| !f.is_ping_ack() && f.kind != WINDOW_UPDATE))
                .collect();
            assert_eq!(out, expected, "piece {piece}");
        }
    }

    #[test]
    fn a_server_stream_has_no_preface() {
        let bytes = frame(PING, 0, 0, &[0; 8]);
        let mut s = Scanner::from_server();
        let mut pings = 0;
        s.filter(&bytes, |f| {
            pings += usize::from(f.is_ping());
            true
        });
        assert_eq!(pings, 1);
    }
}
