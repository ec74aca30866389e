//! Asking the user on the terminal, as Deno does, instead of refusing at
//! once: `netsh: the script wants to connect to 127.0.0.1:9000. Allow?
//! [y]es once / [a]lways / [N]o`. Only when stdin is a terminal and
//! `--no-prompt` was not given (`permit::enforce`'s `ask`), and only on
//! the main thread (a task or a server's handler is refused without
//! asking: it would fight the REPL for the terminal); anything but `y` or
//! `a` is no.

use std::{
    io::{IsTerminal, Read, Write},
    sync::Mutex,
};

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Once,
    Always,
    No,
}

/// One question at a time: two tasks asking at once would share a line.
static ASKING: Mutex<()> = Mutex::new(());

/// Asks whether the script may `what` (`connect to 127.0.0.1:9000`).
pub fn ask(what: &str) -> Answer {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Answer::No;
    }
    let _one = ASKING.lock().unwrap_or_else(|e| e.into_inner());
    // What waits on the terminal was typed (or pasted, or sent back by
    // the terminal to an escape sequence the script printed) before the
    // question: it is no answer to it. Deno throws it away too.
    // SAFETY: tcflush on fd 0 touches no memory; it fails harmlessly when
    // fd 0 is not a terminal (checked above anyway).
    unsafe {
        libc::tcflush(libc::STDIN_FILENO, libc::TCIFLUSH);
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{}", question(what));
    let _ = err.flush();
    drop(err);
    let line = answer_line(&mut stdin.lock());
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Answer::Once,
        "a" | "always" => Answer::Always,
        _ => Answer::No,
    }
}

/// The question as printed. What is asked about comes from the script (a
/// path, a variable's name): its control characters are shown escaped, or
/// a `\r` or an escape sequence in it could rewrite the line the user
/// reads, asking about one file while the answer grants another.
fn question(what: &str) -> String {
    let what: String = what
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    format!("netsh: the script wants to {what}. Allow? [y]es once / [a]lways / [N]o ")
}

/// One answer typed on the terminal, up to Enter: byte by byte, since the
/// REPL's terminal may be in raw mode, where Enter is a `\r` and nothing
/// is echoed (so the answer is echoed here).
fn answer_line(input: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 64 {
        match input.read(&mut byte) {
            Ok(1) if byte[0] == b'\r' || byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", String::from_utf8_lossy(&line).trim());
    String::from_utf8_lossy(&line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::question;

    #[test]
    fn a_question_cannot_be_rewritten_by_what_it_asks_about() {
        let asked = question("read /tmp/x\r\x1b[2Knetsh: the script wants to read ./notes.txt");
        assert!(!asked.chars().any(char::is_control), "{asked:?}");
        assert!(asked.contains("/tmp/x\\r\\u{1b}[2K"), "{asked:?}");
    }
}
