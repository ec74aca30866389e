//! Relays end like every blocking call: Ctrl-C in the REPL interrupts
//! `relay(a, b)` and a forward's `.wait()` (each shown to be blocked, and
//! relaying, first), and `stop()` ends a task that is relaying.

use std::{thread, time::Duration};

use expectrl::Expect;

use crate::support::{Netsh, enter, enter_value, repl};

/// In the REPL: `relay(b, c)` blocks, carrying bytes both ways while it
/// does (a helper task sends through it and reads the answer), until
/// Ctrl-C ends it with "relay: interrupted"; the session goes on. Then
/// `forward(…).wait()` blocks until Ctrl-C, and the forward it waited on
/// is still running and still forwards.
#[test]
fn ctrl_c_interrupts_relay_and_forward_wait() {
    let home = tempfile::tempdir().unwrap();
    let mut pty = repl(home.path());
    // a ⇄ b, c ⇄ d: relay(b, c) joins a to d.
    enter_value(
        &mut pty,
        r#"let l = listen("127.0.0.1:0"); let a = connect(l.addr); let b = l.accept(); let m = listen("127.0.0.1:0"); let c = connect(m.addr); let d = m.accept(); "pairs""#,
        "pairs",
    );
    // The task proves the relay runs: its line crosses a → d and the
    // answer d → a; only then is "block" + "ing" printed, from the task,
    // while the foreground line is still inside relay().
    enter_value(
        &mut pty,
        r#"let proof = task(|| { a.send_line("across"); let got = d.recv_line(#{timeout: 10000}); d.send_line(`back ${got}`); let back = a.recv_line(#{timeout: 10000}); print(`relayed: ${back}`); print("block" + "ing"); }); "started""#,
        "started",
    );
    pty.send_line(r#"let t0 = now(); try { relay(b, c) } catch (e) { print(e) }; print(`held ${now() - t0 >= 100}`)"#)
        .unwrap();
    pty.expect("relayed: back across").unwrap();
    pty.expect("blocking").unwrap();
    thread::sleep(Duration::from_millis(200));
    pty.send("\x03").unwrap();
    pty.expect("relay: interrupted").unwrap();
    pty.expect("held true").unwrap();
    pty.expect("netsh> ").unwrap();
    enter_value(&mut pty, "proof.done", "true");

    // A forward to a server that answers; .wait() blocks until Ctrl-C.
    enter_value(
        &mut pty,
        r#"let s = serve("127.0.0.1:0", |c| c.send_line(`hi ${c.recv_line()}`), #{quiet: true}); let f = forward("127.0.0.1:0", `127.0.0.1:${s.port}`, #{quiet: true}); "up""#,
        "up",
    );
    pty.send_line(r#"print("block" + "ing"); let t0 = now(); try { f.wait() } catch (e) { print(e) }; print(`held ${now() - t0 >= 100}`)"#)
        .unwrap();
    pty.expect("blocking").unwrap();
    thread::sleep(Duration::from_millis(300));
    pty.send("\x03").unwrap();
    pty.expect("wait: interrupted").unwrap();
    pty.expect("held true").unwrap();
    pty.expect("netsh> ").unwrap();
    enter(&mut pty, "f", "running");
    enter(
        &mut pty,
        r#"let x = connect(`127.0.0.1:${f.port}`); x.send_line("after"); x.recv_line(#{timeout: 10000})"#,
        "hi after",
    );
    enter_value(&mut pty, "f.stop(); f.active", "0");
}

/// `stop()` on a task blocked in `relay` ends it: the relay carried a line
/// first (so it was running, and the task not done), then `join` says the
/// task was stopped.
#[test]
fn stop_ends_a_task_running_relay() {
    let out = Netsh::eval(
        r#"let l = listen("127.0.0.1:0"); let a = connect(l.addr); let b = l.accept();
           let m = listen("127.0.0.1:0"); let c = connect(m.addr); let d = m.accept();
           let t = task(|| relay(b, c));
           a.send_line("through");
           print(d.recv_line(#{timeout: 10000}));
           sleep(200);
           print(t.done);
           t.stop();
           try { t.join(5000) } catch (e) { print(e) }
           print(t.done);"#,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "through",
            "false",
            "join: the task was stopped with stop()",
            "true"
        ]
    );
}
