//! The framed upload wire format, version 2, exactly as `docs/PROTOCOL.md`
//! describes it: message layouts, error codes, and the checks on a sent name.
//!
//! Version 2 exists because version 1's READY told any sender the SHA-256 of
//! the bytes a receiver held, and SHA-256's length extension let a sender
//! that never had those bytes finish someone else's upload. Now READY says
//! only how many bytes are held; a sender that wants to continue proves in
//! START that it has the same first bytes, and GO says where to send from.
//!
//! Everything that touches bytes on the wire lives here, so the document and
//! the code can be compared side by side. All integers are big-endian.
//! The checks on a sent name and the part-file names are in
//! `protocol/names.rs`.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Kind, Result};

mod names;

pub use names::{is_part_name, part_name, safe_name};

/// The first four bytes of every framed upload: "NSFT" (netsh file transfer).
pub const MAGIC: [u8; 4] = *b"NSFT";
/// The one version this code speaks.
pub const VERSION: u8 = 2;
/// Header flag: the sender accepts an offer to resume from an offset.
pub const FLAG_RESUME: u8 = 0x01;
/// The fixed part of the header: magic, version, flags, name length, size.
pub const HEADER_FIXED_LEN: usize = 16;
/// The longest name field a receiver reads before refusing the header.
/// Longer than any name it accepts (255 bytes), so a long name gets the
/// clear "name too long" refusal rather than "bad header".
pub const MAX_NAME_FIELD: usize = 4096;
/// The longest file name accepted: Linux's NAME_MAX.
pub const MAX_NAME_BYTES: usize = 255;
/// The longest error message a receiver sends (and a sender reads).
pub const MAX_MESSAGE: usize = 1024;
/// The suffix of the temporary file an upload is written to.
pub const PART_SUFFIX: &str = ".netsh-part";

/// Receiver → sender: the header is accepted; this many bytes are held.
pub const MSG_READY: u8 = b'R';
/// Receiver → sender: send the body from this offset.
pub const MSG_GO: u8 = b'G';
/// Receiver → sender: the file is verified and on disk.
pub const MSG_DONE: u8 = b'K';
/// Receiver → sender: refused or failed, with a code and a message.
pub const MSG_ERROR: u8 = b'E';
/// Sender → receiver: where the sender wants to start, with its proof.
pub const MSG_START: u8 = b'S';
/// The length of START: type, offset, the SHA-256 of the bytes before it.
pub const START_LEN: usize = 41;
/// Sender → receiver: the SHA-256 of the whole file follows.
pub const MSG_HASH: u8 = b'H';

/// Why a receiver refused or abandoned an upload; the number is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Code {
    BadHeader = 1,
    Version = 2,
    BadName = 3,
    TooLarge = 4,
    Exists = 5,
    Busy = 6,
    Checksum = 7,
    NotAllowed = 8,
    Storage = 9,
    Timeout = 10,
    Protocol = 11,
}

impl Code {
    pub fn from_u16(value: u16) -> Option<Code> {
        use Code::*;
        Some(match value {
            1 => BadHeader,
            2 => Version,
            3 => BadName,
            4 => TooLarge,
            5 => Exists,
            6 => Busy,
            7 => Checksum,
            8 => NotAllowed,
            9 => Storage,
            10 => Timeout,
            11 => Protocol,
            _ => return None,
        })
    }

    /// What kind of error (`e.kind`) a refusal with this code is.
    pub fn kind(self) -> Kind {
        use Code::*;
        match self {
            BadName => Kind::Invalid,
            TooLarge => Kind::TooBig,
            Exists | Busy => Kind::Exists,
            NotAllowed => Kind::Permission,
            Storage => Kind::Io,
            Timeout => Kind::Timeout,
            BadHeader | Version | Checksum | Protocol => Kind::Protocol,
        }
    }

    /// The short name used in messages and in `docs/PROTOCOL.md`.
    pub fn name(self) -> &'static str {
        use Code::*;
        match self {
            BadHeader => "bad-header",
            Version => "unsupported-version",
            BadName => "bad-name",
            TooLarge => "too-large",
            Exists => "exists",
            Busy => "busy",
            Checksum => "checksum-mismatch",
            NotAllowed => "not-allowed",
            Storage => "storage",
            Timeout => "timeout",
            Protocol => "protocol",
        }
    }
}

/// A refusal: what the receiver tells the sender, and the local error.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

/// The sender's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub flags: u8,
    pub size: u64,
    /// The name exactly as sent (not yet checked; see [`safe_name`]).
    pub name: Vec<u8>,
}

/// What a decoder makes of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// Not complete: at least this many bytes in all are needed.
    Need(usize),
    /// Complete, using this many bytes.
    Done(T, usize),
}

impl Header {
    /// Decodes a header from the start of `bytes`, refusing as soon as the
    /// bytes so far cannot begin one: a wrong magic after 4 bytes, a wrong
    /// version after 5, an oversized name field after 16. The name is not
    /// checked here (see [`safe_name`]).
    pub fn decode(bytes: &[u8]) -> std::result::Result<Decoded<Header>, Refusal> {
        if bytes.len() < 4 {
            return Ok(Decoded::Need(4));
        }
        if bytes[..4] != MAGIC {
            return Err(Refusal::new(
                Code::BadHeader,
                format!(
                    "not a netsh upload: it starts with {:?} instead of \"NSFT\" (plain bytes need raw mode)",
                    String::from_utf8_lossy(&bytes[..4])
                ),
            ));
        }
        let Some(&version) = bytes.get(4) else {
            return Ok(Decoded::Need(5));
        };
        if version != VERSION {
            return Err(unsupported_version(version));
        }
        if bytes.len() < HEADER_FIXED_LEN {
            return Ok(Decoded::Need(HEADER_FIXED_LEN));
        }
        let name_len = usize::from(u16::from_be_bytes([bytes[6], bytes[7]]));
        if name_len > MAX_NAME_FIELD {
            return Err(name_field_too_long(name_len));
        }
        let total = HEADER_FIXED_LEN + name_len;
        if bytes.len() < total {
            return Ok(Decoded::Need(total));
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&bytes[8..16]);
        Ok(Decoded::Done(
            Header {
                flags: bytes[5],
                size: u64::from_be_bytes(size),
                name: bytes[HEADER_FIXED_LEN..total].to_vec(),
            },
            total,
        ))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_FIXED_LEN + self.name.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.flags);
        // The sender never builds a name longer than MAX_NAME_BYTES.
        out.extend_from_slice(&(self.name.len().min(u16::MAX as usize) as u16).to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.name[..self.name.len().min(u16::MAX as usize)]);
        out
    }
}

/// The refusal for a header of another protocol version, saying which side
/// to upgrade.
fn unsupported_version(version: u8) -> Refusal {
    let why = if version < VERSION {
        format!(
            "the sender speaks protocol version {version}, which this receiver no longer accepts (it let a sender finish another's upload); this receiver speaks version {VERSION}: upgrade the sender"
        )
    } else {
        format!(
            "the sender speaks protocol version {version}, newer than this receiver's version {VERSION}: upgrade the receiver"
        )
    };
    Refusal::new(Code::Version, why)
}

/// The sender's START: where it wants the body to start, and the SHA-256
/// of its own first `offset` bytes, which proves it holds the bytes the
/// receiver kept (all zeros when `offset` is 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub offset: u64,
    pub prefix: [u8; 32],
}

impl Start {
    pub fn encode(&self) -> [u8; START_LEN] {
        let mut out = [0u8; START_LEN];
        out[0] = MSG_START;
        out[1..9].copy_from_slice(&self.offset.to_be_bytes());
        out[9..].copy_from_slice(&self.prefix);
        out
    }

    /// Decodes the 41 bytes of a START, or says what they are instead.
    pub fn decode(bytes: &[u8; START_LEN]) -> std::result::Result<Start, Refusal> {
        if bytes[0] != MSG_START {
            return Err(Refusal::new(
                Code::Protocol,
                format!(
                    "expected START (0x{MSG_START:02x}), got a message of type 0x{:02x}",
                    bytes[0]
                ),
            ));
        }
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&bytes[1..9]);
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(&bytes[9..]);
        Ok(Start {
            offset: u64::from_be_bytes(offset),
            prefix,
        })
    }
}

/// What the receiver sends the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The header is accepted; `offset` bytes of this file are held (0 if
    /// none). Nothing about those bytes is told: a sender proves in START
    /// that it has them.
    Ready {
        offset: u64,
    },
    /// Send the body from `offset`: the offset READY gave, when START
    /// proved the same first bytes, or 0.
    Go {
        offset: u64,
    },
    /// Verified and on disk under its final name.
    Done {
        size: u64,
        sha256: [u8; 32],
    },
    Error(Code, String),
}

impl Reply {
    /// The message's name, as `docs/PROTOCOL.md` writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Ready { .. } => "READY",
            Reply::Go { .. } => "GO",
            Reply::Done { .. } => "DONE",
            Reply::Error(..) => "ERROR",
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41);
        match self {
            Reply::Ready { offset } => {
                out.push(MSG_READY);
                out.extend_from_slice(&offset.to_be_bytes());
            }
            Reply::Go { offset } => {
                out.push(MSG_GO);
                out.extend_from_slice(&offset.to_be_bytes());
            }
            Reply::Done { size, sha256 } => {
                out.push(MSG_DONE);
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(sha256);
            }
            Reply::Error(code, message) => {
                let text = cut(message, MAX_MESSAGE).as_bytes();
                out.push(MSG_ERROR);
                out.extend_from_slice(&(*code as u16).to_be_bytes());
                out.extend_from_slice(&(text.len() as u16).to_be_bytes());
                out.extend_from_slice(text);
            }
        }
        out
    }

    /// Decodes the receiver's next message from the start of `bytes`.
    /// An ERROR's message is cut to [`MAX_MESSAGE`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Decoded<Reply>> {
        let Some(&kind) = bytes.first() else {
            return Ok(Decoded::Need(1));
        };
        let number = |bytes: &[u8]| {
            let mut number = [0u8; 8];
            number.copy_from_slice(&bytes[1..9]);
            u64::from_be_bytes(number)
        };
        match kind {
            MSG_READY | MSG_GO => {
                if bytes.len() < 9 {
                    return Ok(Decoded::Need(9));
                }
                let offset = number(bytes);
                let reply = if kind == MSG_READY {
                    Reply::Ready { offset }
                } else {
                    Reply::Go { offset }
                };
                Ok(Decoded::Done(reply, 9))
            }
            MSG_DONE => {
                if bytes.len() < 41 {
                    return Ok(Decoded::Need(41));
                }
                let mut sha256 = [0u8; 32];
                sha256.copy_from_slice(&bytes[9..41]);
                Ok(Decoded::Done(
                    Reply::Done {
                        size: number(bytes),
                        sha256,
                    },
                    41,
                ))
            }
            MSG_ERROR => {
                if bytes.len() < 5 {
                    return Ok(Decoded::Need(5));
                }
                let code = u16::from_be_bytes([bytes[1], bytes[2]]);
                let total = 5 + usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
                if bytes.len() < total {
                    return Ok(Decoded::Need(total));
                }
                // The receiver's words reach a terminal: no escape codes.
                let text = crate::error::printable(&String::from_utf8_lossy(&bytes[5..total]));
                let message = cut(&text, MAX_MESSAGE).to_string();
                match Code::from_u16(code) {
                    Some(code) => Ok(Decoded::Done(Reply::Error(code, message), total)),
                    None => Err(Error::Protocol(format!(
                        "the receiver refused with unknown code {code}: {message}"
                    ))),
                }
            }
            other => Err(Error::Protocol(format!(
                "the receiver answered with an unknown message type 0x{other:02x}; is it a netsh receiver in framed mode?"
            ))),
        }
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The refusal for a name field longer than a receiver reads. It is a
/// bad name (code 3), refused before the name's bytes are read.
pub fn name_field_too_long(len: usize) -> Refusal {
    Refusal::new(
        Code::BadName,
        format!(
            "the name field is {len} bytes long; a receiver reads at most {MAX_NAME_FIELD} (and keeps a file name of at most {MAX_NAME_BYTES})"
        ),
    )
}

/// A read that ended early or broke, in wire terms.
#[derive(Debug)]
pub enum ReadFail {
    /// The peer closed the connection; `got` bytes of the item had arrived.
    Closed {
        got: usize,
    },
    TimedOut,
    Io(std::io::Error),
}

/// Reads exactly `buf.len()` bytes, each wait at most `idle`.
pub async fn read_exact_idle<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
    idle: Duration,
) -> std::result::Result<(), ReadFail> {
    let mut got = 0;
    while got < buf.len() {
        match tokio::time::timeout(idle, reader.read(&mut buf[got..])).await {
            Err(_) => return Err(ReadFail::TimedOut),
            Ok(Ok(0)) => return Err(ReadFail::Closed { got }),
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => return Err(ReadFail::Io(e)),
        }
    }
    Ok(())
}

/// Reads the receiver's next reply (sender side), waiting at most `wait`
/// for each part of it (`None`: as long as it takes).
pub async fn read_reply<R: AsyncRead + Unpin>(
    reader: &mut R,
    wait: Option<Duration>,
) -> Result<Reply> {
    let after = wait.unwrap_or_default();
    let wait = wait.unwrap_or(Duration::MAX);
    let broken = |fail: ReadFail| {
        match fail {
        ReadFail::Closed { .. } => Error::Protocol(
            "the receiver closed the connection without answering (is it a netsh receiver in framed mode?)"
                .into(),
        ),
        ReadFail::TimedOut => Error::Timeout {
            what: "waiting for the receiver's answer".into(),
            after,
        },
        ReadFail::Io(e) => Error::io("reading the receiver's answer", None, e),
    }
    };
    read_decoded(reader, wait, Reply::decode, |fail, _| broken(fail)).await
}

/// Reads one message with `decode`, exactly as many bytes as it asks for
/// (nothing beyond the message is consumed), each wait at most `idle`.
/// `broken` words a failed read, given how many bytes had arrived.
pub async fn read_decoded<R, T, E>(
    reader: &mut R,
    idle: Duration,
    decode: impl Fn(&[u8]) -> std::result::Result<Decoded<T>, E>,
    broken: impl Fn(ReadFail, usize) -> E,
) -> std::result::Result<T, E>
where
    R: AsyncRead + Unpin,
{
    let mut bytes = Vec::with_capacity(64);
    loop {
        match decode(&bytes)? {
            Decoded::Done(message, _) => return Ok(message),
            Decoded::Need(total) => {
                let have = bytes.len();
                bytes.resize(total, 0);
                read_exact_idle(reader, &mut bytes[have..], idle)
                    .await
                    .map_err(|fail| broken(fail, have))?;
            }
        }
    }
}

/// Writes `bytes` and flushes.
pub async fn write_all<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests;
