//! A raw client for the framed upload protocol (version 2), written from
//! `docs/PROTOCOL.md` with plain std sockets, to drive a receiver byte by
//! byte the way a hostile or foreign sender would.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use netsh::net::transfer::{self, FileServer, ReceiveOptions};
use sha2::{Digest, Sha256};

/// The protocol version these helpers speak.
pub const VERSION: u8 = 2;

/// netsh's upload receiver, in this process, on 127.0.0.1:0 saving into `dir`.
pub fn serve(dir: &Path, options: ReceiveOptions) -> FileServer {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    transfer::serve(any, dir, options, false).expect("starting serve_files")
}

/// A connection to `server`; its reads give up after 10 s.
pub fn connect(server: &FileServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).expect("connecting to the receiver");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// The framed header (RESUME flag set) as a client writes it by hand.
pub fn header(name: &[u8], size: u64) -> Vec<u8> {
    header_version(name, size, VERSION)
}

/// A header claiming protocol `version`.
pub fn header_version(name: &[u8], size: u64, version: u8) -> Vec<u8> {
    let mut out = b"NSFT".to_vec();
    out.push(version);
    out.push(1);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(name);
    out
}

/// START at 0 (no proof needed).
pub fn start(offset: u64) -> Vec<u8> {
    start_proving(offset, &[0u8; 32])
}

/// START at `offset` with `prefix_sha256` offered as the proof that the
/// sender holds the receiver's first `offset` bytes.
pub fn start_proving(offset: u64, prefix_sha256: &[u8; 32]) -> Vec<u8> {
    let mut out = vec![b'S'];
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(prefix_sha256);
    out
}

/// The SHA-256 of `bytes`, as START's proof.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// HASH of `whole_file`.
pub fn hash(whole_file: &[u8]) -> Vec<u8> {
    let mut out = vec![b'H'];
    out.extend_from_slice(&Sha256::digest(whole_file));
    out
}

/// Reads one receiver message: `Ok((code, message))` for an error reply,
/// `Err(kind)` for READY/DONE (the message type byte; the rest is unread).
pub fn read_reply(stream: &mut TcpStream) -> Result<(u16, String), u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut kind = [0u8; 1];
    stream
        .read_exact(&mut kind)
        .expect("a reply from the receiver");
    if kind[0] != b'E' {
        return Err(kind[0]);
    }
    let mut fixed = [0u8; 4];
    stream.read_exact(&mut fixed).unwrap();
    let len = u16::from_be_bytes([fixed[2], fixed[3]]) as usize;
    let mut text = vec![0u8; len];
    stream.read_exact(&mut text).unwrap();
    Ok((
        u16::from_be_bytes([fixed[0], fixed[1]]),
        String::from_utf8_lossy(&text).into_owned(),
    ))
}

/// Reads a message of type `expected_kind` whose body is 8 bytes (READY,
/// GO), returning the number; panics on anything else.
pub fn read_number(stream: &mut TcpStream, expected_kind: u8) -> u64 {
    match read_reply(stream) {
        Err(kind) if kind == expected_kind => {}
        other => panic!(
            "expected message {:?}, got {other:?}",
            expected_kind as char
        ),
    }
    let mut number = [0u8; 8];
    stream.read_exact(&mut number).unwrap();
    u64::from_be_bytes(number)
}

/// READY's offset.
pub fn read_ready(stream: &mut TcpStream) -> u64 {
    read_number(stream, b'R')
}

/// GO's offset.
pub fn read_go(stream: &mut TcpStream) -> u64 {
    read_number(stream, b'G')
}

/// DONE in full: `(size, sha256)`; panics on anything else.
pub fn read_done(stream: &mut TcpStream) -> (u64, [u8; 32]) {
    let size = read_number(stream, b'K');
    let mut digest = [0u8; 32];
    stream.read_exact(&mut digest).unwrap();
    (size, digest)
}

/// Connects to `addr`, writes `bytes` and returns the receiver's error reply.
pub fn refusal_for(addr: SocketAddr, bytes: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    read_reply(&mut stream).unwrap_or_else(|kind| {
        panic!(
            "expected a refusal for {:?}, got message type {kind}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// A connection to `server` from the local address `from` (any of
/// 127.0.0.0/8 is this machine), so tests can be several clients.
pub fn connect_from(server: &FileServer, from: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let source: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&server.addr().into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// An upload of `size` bytes cut off after `sent` bytes of body (the
/// connection simply closes); waits until the receiver has counted it.
pub fn cut_off_upload(server: &FileServer, name: &str, size: u64, sent: &[u8]) {
    let refused = server.refused();
    let mut stream = connect(server);
    stream.write_all(&header(name.as_bytes(), size)).unwrap();
    read_ready(&mut stream);
    stream.write_all(&start(0)).unwrap();
    // GO read before the close: unread data would make the close a reset,
    // which the receiver rightly reports as "broke", not "closed".
    assert_eq!(read_go(&mut stream), 0);
    stream.write_all(sent).unwrap();
    drop(stream);
    super::wait_until(
        Duration::from_secs(10),
        "the cut-off upload to be counted",
        || server.refused() > refused,
    );
}
