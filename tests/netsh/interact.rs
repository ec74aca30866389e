//! `c.interact()`, nc's interactive mode: piped (stdin from a file, stdout
//! captured) against real peers, and at the REPL in a real pseudo-terminal
//! (typing, escaped output, Ctrl-C back to the prompt with the connection
//! open, Ctrl-D half-close).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::Path,
    time::Duration,
};

use expectrl::Expect;

use crate::support::{self, EchoPeer, Netsh};

/// Every byte value, text and a last line without a newline: what `nc` users pipe.
fn awkward_bytes() -> Vec<u8> {
    let mut data = b"hello\n".to_vec();
    data.extend(0..=255u8);
    data.extend_from_slice("\nnaïve → ok\nno newline at the end".as_bytes());
    data
}

/// Piped like nc: stdin (a file) is sent, its end half-closes, every byte
/// the echo peer returns lands on stdout exactly, and netsh exits 0 when the
/// peer closes.
#[test]
fn piped_stdin_is_sent_and_the_reply_printed_exactly() {
    let peer = EchoPeer::start();
    let cmd = Netsh::new();
    let input = cmd.home().join("input.bin");
    std::fs::write(&input, awkward_bytes()).unwrap();
    let run = cmd
        .stdin(std::fs::File::open(&input).unwrap())
        .args(["-e", &format!("connect(\"{}\").interact()", peer.addr)])
        .output();
    run.expect_code(0);
    let received = peer
        .received()
        .unwrap_or_else(|e| panic!("the peer: {e}\n{}", run.explain()));
    assert_eq!(received, awkward_bytes(), "what the peer received");
    assert_eq!(run.output.stdout, awkward_bytes(), "{}", run.explain());
}

/// `listen(…).accept().interact()` is `nc -l`: the request from stdin
/// reaches the client, then end of stream, and the client's reply is printed.
#[test]
fn accept_then_interact_is_nc_listen() {
    let cmd = Netsh::new();
    let port_file = cmd.home().join("port");
    std::fs::write(cmd.home().join("request.txt"), "request\n").unwrap();
    let stdin = std::fs::File::open(cmd.home().join("request.txt")).unwrap();
    let code = format!(
        "let l = listen(\"127.0.0.1:0\"); write_file(\"{}\", `${{l.port}}`); l.accept().interact()",
        port_file.display()
    );
    let client = std::thread::spawn(move || {
        let port = wait_for_file(&port_file);
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = String::new();
        let read = stream.read_to_string(&mut request);
        stream.write_all(b"response\n").unwrap();
        (read.map_err(|e| e.to_string()), request)
    });
    let run = cmd.stdin(stdin).args(["-e", &code]).output();
    let (read, request) = client.join().unwrap();
    run.expect_code(0);
    assert!(
        read.is_ok(),
        "no end of stream after the request: {read:?}\n{}",
        run.explain()
    );
    assert_eq!(request, "request\n");
    assert_eq!(run.stdout(), "response");
}

/// Reads the port a netsh script wrote into `path`, waiting up to 10 s.
fn wait_for_file(path: &Path) -> u16 {
    for _ in 0..1000 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(port) = text.trim().parse()
        {
            return port;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("netsh never wrote its port to {}", path.display());
}

/// One line from the test's side of the connection.
fn read_line(reader: &mut BufReader<std::net::TcpStream>) -> String {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("a line from netsh within 10 s");
    line
}

/// At the REPL: a typed line reaches the peer, what the peer sends is
/// printed (control bytes and invalid UTF-8 escaped); Ctrl-C returns to
/// the prompt, the connection still works and no thread is left reading
/// the terminal; then Ctrl-D half-closes, the peer sees end of stream, and
/// its closing returns to the prompt.
#[test]
fn interact_in_the_repl() {
    let home = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut pty = support::repl_in(home.path(), &[]);
    pty.send_line(format!("let c = connect(\"{addr}\");"))
        .unwrap();
    pty.expect("netsh> ").unwrap();
    let stream = support::accept_within(&listener, Duration::from_secs(10));
    let mut from_netsh = BufReader::new(stream.try_clone().unwrap());
    let mut to_netsh = stream;

    pty.send_line("c.interact()").unwrap();
    pty.expect("lines you type are sent").unwrap();
    pty.send_line("hello from the terminal").unwrap();
    // Reaching the peer proves interact(), not the REPL, read the line.
    assert_eq!(read_line(&mut from_netsh), "hello from the terminal\n");
    to_netsh.write_all(b"reply \xff\x1b[1m end\n").unwrap();
    pty.expect("reply \\xff\\x1b[1m end").unwrap();

    pty.send("\x03").unwrap();
    pty.expect("interact: interrupted").unwrap();
    pty.expect("netsh> ").unwrap();
    pty.send_line("c.send_line(\"still open\")").unwrap();
    assert_eq!(read_line(&mut from_netsh), "still open\n");
    pty.expect("netsh> ").unwrap();
    // A stray reader of the terminal would take this line instead.
    support::enter_value(&mut pty, "6 * 7", "42");

    pty.send_line("c.interact(); \"interact returned\"")
        .unwrap();
    pty.expect("lines you type are sent").unwrap();
    pty.send("\x04").unwrap();
    let mut rest = Vec::new();
    from_netsh
        .read_to_end(&mut rest)
        .expect("end of stream after Ctrl-D");
    assert!(rest.is_empty(), "{rest:?}");
    to_netsh.write_all(b"goodbye\n").unwrap();
    to_netsh.shutdown(std::net::Shutdown::Both).unwrap();
    pty.expect("goodbye").unwrap();
    pty.expect("interact returned").unwrap();
    pty.expect("netsh> ").unwrap();
}
