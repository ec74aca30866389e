//! Unix-domain sockets (`"unix:/path"`, `"unix:@name"`) from scripts:
//! netsh talking to itself, and `socat` as the peer in both directions.

use std::process::Command;

use crate::support::{Netsh, Peer, has_tool, netsh_peer};

/// socat is installed (CI installs it); tests that need it say why they
/// skip without it.
fn has_socat(test: &str) -> bool {
    has_tool(test, "socat", &["-V"], "socat")
}

/// netsh to netsh over a socket file: lines both ways, a half-close, .local/.peer name the path and the client's process, info() says TCP_INFO does not apply, and close() removes the file.
#[test]
fn netsh_to_netsh_over_a_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = Netsh::new()
        .current_dir(dir.path())
        .arg("-e")
        .arg(
            r#"let l = listen("unix:app.sock");
               print(l.addr); print(l.port == ());
               let t = task(|| {
                   let c = l.accept();
                   let line = c.recv_line();
                   c.send_line(`got ${line}`);
                   let rest = c.read_all();
                   c.send_line(`then ${rest.len()} bytes`);
                   [c.local, c.peer]
               });
               let c = connect("unix:app.sock");
               c.send_line("hello"); print(c.recv_line());
               c.send(blob(100000, 1)); c.shutdown(); print(c.recv_line());
               let ends = t.join();
               print(ends[0]); print(ends[1] == c.local); print(c.peer);
               print(c.local.starts_with("unix:(pid "));
               try { c.info() } catch (e) { print(e) }
               l.close();"#,
        )
        .ok()
        .stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "unix:app.sock",
            "true",
            "got hello",
            "then 100000 bytes",
            "unix:app.sock",
            "true",
            "unix:app.sock",
            "true",
            "info: TCP_INFO is not available on a Unix socket (unix:app.sock); it has no TCP state",
        ]
    );
    assert!(
        !dir.path().join("app.sock").exists(),
        "close() leaves the socket file behind"
    );
}

/// netsh connects to `socat UNIX-LISTEN` (an echo through cat) and reads its answer.
#[test]
fn netsh_connects_to_socat_unix_listen() {
    if !has_socat("netsh_connects_to_socat_unix_listen") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let mut cmd = Command::new("socat");
    cmd.arg(format!("UNIX-LISTEN:{}", path.display()))
        .arg("EXEC:cat");
    let _socat = Peer::start(cmd);
    let out = Netsh::eval(&format!(
        r#"let c = ();
           for i in 0..200 {{ try {{ c = connect("unix:{0}"); break }} catch {{ sleep(20) }} }}
           c.send_line("round trip"); print(c.recv_line());
           c.send("tail"); c.shutdown(); print(c.read_all().as_string());"#,
        path.display()
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["round trip", "tail"]);
}

/// `socat UNIX-CONNECT` talks to a netsh listener: what socat sends arrives, netsh's answer comes back.
#[test]
fn socat_unix_connect_talks_to_netsh() {
    if !has_socat("socat_unix_connect_talks_to_netsh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = netsh_peer(
        r#"let l = listen("unix:srv.sock"); print("ready");
           let c = l.accept(20000);
           print(`heard ${c.recv_line()}`);
           c.send_line("answer from netsh"); c.close();"#,
        dir.path(),
    );
    server.expect("ready");
    let mut cmd = Command::new("socat");
    cmd.arg("-").arg(format!(
        "UNIX-CONNECT:{}",
        dir.path().join("srv.sock").display()
    ));
    let mut client = Peer::start(cmd);
    client.write("hello from socat\n");
    server.expect("heard hello from socat");
    client.expect("answer from netsh");
}

/// An abstract socket (`unix:@name`, no file) works netsh to netsh, and socat reaches it with ABSTRACT-CONNECT.
#[test]
fn abstract_sockets() {
    let name = format!("netsh-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let mut server = netsh_peer(
        &format!(
            r#"let l = listen("unix:@{name}"); print(`ready ${{l.addr}}`);
               for i in 0..2 {{ let c = l.accept(20000); c.send_line(`hello ${{i}}`); c.close(); }}"#
        ),
        dir.path(),
    );
    server.expect(&format!("ready unix:@{name}"));
    let out = Netsh::eval(&format!(
        r#"let c = connect("unix:@{name}"); print(c.recv_line()); print(c.peer);"#
    ));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["hello 0", &format!("unix:@{name}")]
    );
    if !has_socat("abstract_sockets (the socat half)") {
        return;
    }
    let mut cmd = Command::new("socat");
    cmd.arg("-").arg(format!("ABSTRACT-CONNECT:{name}"));
    let mut client = Peer::start(cmd);
    client.expect("hello 1");
}

/// listen refuses a path that is not a socket and one a server listens on, and replaces a stale socket file nobody listens on; connect says when nothing is there.
#[test]
fn socket_files_are_handled_with_care() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "keep me").unwrap();
    // A socket file whose server is gone.
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("stale.sock")).unwrap());
    assert!(dir.path().join("stale.sock").exists());
    let out = Netsh::new()
        .current_dir(dir.path())
        .arg("-e")
        .arg(
            r#"try { listen("unix:notes.txt") } catch (e) { print(e) }
               try { connect("unix:stale.sock") } catch (e) { print(e) }
               try { connect("unix:nothing.sock") } catch (e) { print(e) }
               let l = listen("unix:stale.sock"); print(l);
               try { listen("unix:stale.sock") } catch (e) { print(e) }
               try { listen("unix:") } catch (e) { print(e) }"#,
        )
        .ok()
        .stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "listen: \"notes.txt\" exists and is not a socket; netsh will not replace it"
    );
    assert!(
        lines[1].starts_with("connect: connecting to unix:stale.sock (nothing listens there"),
        "{out}"
    );
    assert_eq!(lines[2], "connect: no socket at unix:nothing.sock");
    assert_eq!(lines[3], "Listener(unix:stale.sock)");
    assert_eq!(
        lines[4],
        "listen: unix:stale.sock is already in use: a server is listening on it"
    );
    assert!(lines[5].contains("names no socket"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "keep me"
    );
}

/// serve's closure shape on a Unix socket serves each client on its own thread; send_file and recv_file work over a Unix socket too.
#[test]
fn serve_and_send_file_over_unix() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    let out = Netsh::new()
        .current_dir(dir.path())
        .arg("-e")
        .arg(
            r#"let s = serve("unix:serve.sock", |c| c.send_line(`hi ${c.recv_line()}`), #{quiet: true});
               print(s.addr);
               for name in ["a", "b"] { let c = connect("unix:serve.sock"); c.send_line(name); print(c.recv_line()); }
               s.stop();
               let l = listen("unix:files.sock");
               let t = task(|| recv_file(l, "in"));
               print(send_file("unix:files.sock", "data.bin", #{progress: false}).verified);
               print(t.join().peer.starts_with("unix:(pid "));"#,
        )
        .ok()
        .stdout();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["unix:serve.sock", "hi a", "hi b", "true", "true"]
    );
    assert!(std::fs::read(dir.path().join("in/data.bin")).unwrap() == data);
}
