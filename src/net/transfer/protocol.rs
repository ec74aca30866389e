//! The framed upload wire format, version 1, exactly as `docs/PROTOCOL.md`
//! describes it: message layouts, error codes, and the checks on a sent name.
//!
//! Everything that touches bytes on the wire lives here, so the document and
//! the code can be compared side by side. All integers are big-endian.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Kind, Result};

/// The first four bytes of every framed upload: "NSFT" (netsh file transfer).
pub const MAGIC: [u8; 4] = *b"NSFT";
/// The one version this code speaks.
pub const VERSION: u8 = 1;
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

/// Receiver → sender: ready, send from `offset`.
pub const MSG_READY: u8 = b'R';
/// Receiver → sender: the file is verified and on disk.
pub const MSG_DONE: u8 = b'K';
/// Receiver → sender: refused or failed, with a code and a message.
pub const MSG_ERROR: u8 = b'E';
/// Sender → receiver: the body starts at this offset.
pub const MSG_START: u8 = b'S';
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
    /// version or an oversized name field after 16. The name is not checked
    /// here (see [`safe_name`]).
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
        if bytes.len() < HEADER_FIXED_LEN {
            return Ok(Decoded::Need(HEADER_FIXED_LEN));
        }
        if bytes[4] != VERSION {
            return Err(Refusal::new(
                Code::Version,
                format!(
                    "protocol version {} is not supported; this receiver speaks version {VERSION}",
                    bytes[4]
                ),
            ));
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

/// What the receiver answers a header with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send from `offset`; `prefix` is the SHA-256 of the first `offset`
    /// bytes the receiver already holds (all zeros when `offset` is 0).
    Ready {
        offset: u64,
        prefix: [u8; 32],
    },
    /// Verified and on disk under its final name.
    Done {
        size: u64,
        sha256: [u8; 32],
    },
    Error(Code, String),
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41);
        match self {
            Reply::Ready { offset, prefix } => {
                out.push(MSG_READY);
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(prefix);
            }
            Reply::Done { size, sha256 } => {
                out.push(MSG_DONE);
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(sha256);
            }
            Reply::Error(code, message) => {
                let mut text = message.as_bytes();
                if text.len() > MAX_MESSAGE {
                    text = &text[..MAX_MESSAGE];
                }
                out.push(MSG_ERROR);
                out.extend_from_slice(&(*code as u16).to_be_bytes());
                out.extend_from_slice(&(text.len() as u16).to_be_bytes());
                out.extend_from_slice(text);
            }
        }
        out
    }
}

impl Reply {
    /// Decodes the receiver's next message from the start of `bytes`.
    /// An ERROR's message is cut to [`MAX_MESSAGE`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Decoded<Reply>> {
        let Some(&kind) = bytes.first() else {
            return Ok(Decoded::Need(1));
        };
        match kind {
            MSG_READY | MSG_DONE => {
                if bytes.len() < 41 {
                    return Ok(Decoded::Need(41));
                }
                let mut number = [0u8; 8];
                number.copy_from_slice(&bytes[1..9]);
                let mut digest = [0u8; 32];
                digest.copy_from_slice(&bytes[9..41]);
                let number = u64::from_be_bytes(number);
                let reply = if kind == MSG_READY {
                    Reply::Ready {
                        offset: number,
                        prefix: digest,
                    }
                } else {
                    Reply::Done {
                        size: number,
                        sha256: digest,
                    }
                };
                Ok(Decoded::Done(reply, 41))
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
                let text = &bytes[5..total];
                let message =
                    String::from_utf8_lossy(&text[..text.len().min(MAX_MESSAGE)]).into_owned();
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

/// The name a sent name is stored under, or why it is refused.
///
/// The directory part is dropped (`docs/x.txt` → `x.txt`), but anything that
/// tries to climb out of the folder is refused outright rather than quietly
/// repaired: a sender that writes `../x` is either confused or hostile, and
/// either way should hear about it.
pub fn safe_name(sent: &[u8]) -> std::result::Result<String, Refusal> {
    let refuse = |why: &str| Refusal::new(Code::BadName, why.to_string());
    let Ok(text) = std::str::from_utf8(sent) else {
        return Err(refuse("the name is not valid UTF-8"));
    };
    if text.is_empty() {
        return Err(refuse("the name is empty"));
    }
    if text.contains('\0') {
        return Err(refuse("the name contains a NUL byte"));
    }
    if text.chars().any(char::is_control) {
        return Err(refuse("the name contains control characters"));
    }
    // A Windows path (`..\..\x`, `C:\x`) would be one odd but harmless name
    // on Linux; refusing it is clearer than storing `..\..\x` literally.
    if text.contains('\\') {
        return Err(refuse("the name contains a backslash"));
    }
    if text.starts_with('/') {
        return Err(refuse("the name is an absolute path"));
    }
    if text.split('/').any(|part| part == "..") {
        return Err(refuse("the name contains '..'"));
    }
    // The part after the last `/` is the file name; `dir/` and `a/.` have none.
    let last = text.rsplit('/').next().unwrap_or(text);
    if last.is_empty() || last == "." {
        return Err(refuse(
            "the name has no file name part (it ends in '/' or '.')",
        ));
    }
    if last.len() > MAX_NAME_BYTES {
        return Err(refuse(&format!(
            "the name is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            last.len()
        )));
    }
    if last.ends_with(PART_SUFFIX) {
        return Err(refuse(&format!(
            "names ending in {PART_SUFFIX} are reserved for unfinished uploads"
        )));
    }
    Ok(last.to_string())
}

/// The temporary file an upload of `name` is written to, in the same folder
/// (so the final rename is atomic): `.NAME.netsh-part`, or a hash of the name
/// when that would exceed the file-name limit.
pub fn part_name(name: &str) -> String {
    let plain = format!(".{name}{PART_SUFFIX}");
    if plain.len() <= MAX_NAME_BYTES {
        plain
    } else {
        use sha2::{Digest, Sha256};
        format!(
            ".{}{PART_SUFFIX}",
            hex::encode(&Sha256::digest(name.as_bytes())[..16])
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_only_the_last_part() {
        assert_eq!(safe_name(b"report.pdf").unwrap(), "report.pdf");
        assert_eq!(safe_name(b"docs/report.pdf").unwrap(), "report.pdf");
        assert_eq!(safe_name(b"./a.txt").unwrap(), "a.txt");
        assert_eq!(safe_name(b".bashrc").unwrap(), ".bashrc");
    }

    #[test]
    fn escaping_names_are_refused() {
        let long = "x".repeat(256);
        let cases: [&[u8]; 12] = [
            b"",
            b"..",
            b"../etc/passwd",
            b"a/../../b",
            b"/etc/passwd",
            b"..\\..\\x",
            b"a\0b",
            b"a\nb",
            b"\x1b[31mred",
            b"\xff\xfe",
            long.as_bytes(),
            b"x.netsh-part",
        ];
        for case in cases {
            let refusal = safe_name(case).expect_err(&String::from_utf8_lossy(case));
            assert_eq!(refusal.code, Code::BadName);
        }
        for no_file_part in [&b"."[..], b"dir/", b"a//", b"a/.", b"./"] {
            let refusal =
                safe_name(no_file_part).expect_err(&String::from_utf8_lossy(no_file_part));
            assert!(
                refusal.message.contains("no file name part"),
                "{}",
                refusal.message
            );
        }
    }

    #[test]
    fn part_names_fit_the_limit() {
        assert_eq!(part_name("a.txt"), ".a.txt.netsh-part");
        assert!(part_name(&"y".repeat(255)).len() <= MAX_NAME_BYTES);
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Ready {
                offset: 7,
                prefix: [1; 32],
            },
            Reply::Done {
                size: 1 << 40,
                sha256: [2; 32],
            },
            Reply::Error(Code::Exists, "already there".into()),
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for reply in replies {
            let bytes = reply.encode();
            let got = rt
                .block_on(read_reply(
                    &mut bytes.as_slice(),
                    Some(Duration::from_secs(1)),
                ))
                .unwrap();
            assert_eq!(got, reply);
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn reply() -> impl Strategy<Value = Reply> {
            prop_oneof![
                (any::<u64>(), any::<[u8; 32]>())
                    .prop_map(|(offset, prefix)| Reply::Ready { offset, prefix }),
                (any::<u64>(), any::<[u8; 32]>())
                    .prop_map(|(size, sha256)| Reply::Done { size, sha256 }),
                (1u16..=11, "\\PC{0,60}").prop_map(|(code, message)| {
                    Reply::Error(Code::from_u16(code).unwrap(), message)
                }),
            ]
        }

        proptest! {
            /// Any bytes: the header decoder never panics, and what it
            /// decodes is exactly what encoding gives back.
            #[test]
            fn header_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
                if let Ok(Decoded::Done(header, used)) = Header::decode(&bytes) {
                    prop_assert_eq!(header.encode(), bytes[..used].to_vec());
                }
            }

            /// Bytes that start like a header reach every later check.
            #[test]
            fn header_like_bytes_never_panic(
                version in 0u8..3, flags in any::<u8>(), len in 0u16..5000,
                size in any::<u64>(), tail in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let mut bytes = MAGIC.to_vec();
                bytes.extend([version, flags]);
                bytes.extend(len.to_be_bytes());
                bytes.extend(size.to_be_bytes());
                bytes.extend(tail);
                let _ = Header::decode(&bytes);
            }

            /// A header round-trips, and every strict prefix of it asks for
            /// more bytes rather than failing.
            #[test]
            fn headers_round_trip(
                flags in any::<u8>(), size in any::<u64>(),
                name in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                let header = Header { flags, size, name };
                let bytes = header.encode();
                prop_assert_eq!(Header::decode(&bytes).unwrap(), Decoded::Done(header, bytes.len()));
                for cut in 0..bytes.len() {
                    match Header::decode(&bytes[..cut]) {
                        Ok(Decoded::Need(n)) => prop_assert!(n > cut && n <= bytes.len()),
                        other => prop_assert!(false, "prefix {} gave {:?}", cut, other),
                    }
                }
            }

            /// Replies round-trip (messages cut to 1024 bytes), their prefixes
            /// ask for more, and arbitrary bytes never panic the decoder.
            #[test]
            fn replies_round_trip(reply in reply(), noise in proptest::collection::vec(any::<u8>(), 0..60)) {
                let bytes = reply.encode();
                prop_assert_eq!(Reply::decode(&bytes).unwrap(), Decoded::Done(reply, bytes.len()));
                for cut in 0..bytes.len() {
                    prop_assert!(matches!(Reply::decode(&bytes[..cut]), Ok(Decoded::Need(n)) if n > cut));
                }
                let _ = Reply::decode(&noise);
            }

            /// A name the receiver accepts is one plain file name, kept as it is.
            #[test]
            fn accepted_names_are_plain_file_names(name in proptest::collection::vec(any::<u8>(), 0..300)) {
                if let Ok(kept) = safe_name(&name) {
                    prop_assert!(!kept.is_empty() && kept.len() <= MAX_NAME_BYTES);
                    prop_assert!(!kept.contains(['/', '\\', '\0']));
                    prop_assert!(kept != "." && kept != "..");
                    prop_assert!(!kept.chars().any(char::is_control));
                    prop_assert!(!kept.ends_with(PART_SUFFIX));
                    prop_assert_eq!(safe_name(kept.as_bytes()).unwrap(), kept.clone());
                    prop_assert!(part_name(&kept).len() <= MAX_NAME_BYTES);
                }
            }

            /// Path-like names: never a `..` or an empty last part gets through.
            #[test]
            fn path_like_names_never_escape(name in "[a./\\\\]{0,12}") {
                if let Ok(kept) = safe_name(name.as_bytes()) {
                    prop_assert!(kept != ".." && !kept.is_empty() && !kept.contains('/'));
                    prop_assert!(!name.split('/').any(|p| p == ".."));
                }
            }
        }
    }
}
