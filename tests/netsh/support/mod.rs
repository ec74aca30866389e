//! Shared test support: run the real `netsh` binary and explain failures,
//! and small real peers on loopback.
//!
//! `main.rs` declares it once; each test file uses what it needs.
#![allow(dead_code)]

pub mod http;
pub mod nginx;
pub mod wire;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// The variables reqwest (and curl) take proxies from.
pub const PROXY_VARIABLES: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];

/// The netsh binary cargo built for these tests.
pub fn netsh_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netsh"))
}

/// A `netsh` command with a private config and data dir, so the user's
/// plugins, init.rhai and history never leak into a test.
pub struct Netsh {
    cmd: Command,
    description: String,
    _home: tempfile::TempDir,
}

impl Netsh {
    pub fn new() -> Self {
        Self::wrapped(&[])
    }

    /// `netsh` started through `wrapper` (e.g. `["unshare", "-n", …]`), which
    /// runs its last arguments as the command.
    pub fn wrapped(wrapper: &[&str]) -> Self {
        Self::build(wrapper, |_| netsh_bin())
    }

    /// `netsh` (the binary `bin` gives, given the temp home) through `wrapper`.
    fn build(wrapper: &[&str], bin: impl FnOnce(&Path) -> PathBuf) -> Self {
        let home = tempfile::tempdir().expect("creating a temp home");
        let bin = bin(home.path());
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(&bin);
                cmd
            }
            None => Command::new(&bin),
        };
        cmd.env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("NO_COLOR", "1")
            .current_dir(home.path());
        // Tests talk to loopback peers directly, whatever proxy the machine has.
        for proxy in PROXY_VARIABLES {
            cmd.env_remove(proxy);
        }
        Netsh {
            cmd,
            description: wrapper
                .iter()
                .map(|w| format!("{w:?} "))
                .collect::<String>()
                + "netsh",
            _home: home,
        }
    }

    /// `netsh` as the user `nobody`, without any capability (so without
    /// CAP_NET_RAW), from a home that user may enter, running the binary
    /// from there: the checkout may lie under a folder nobody cannot enter
    /// (CI checks out wherever it likes).
    pub fn nobody() -> Self {
        Self::build(&NOBODY, |home| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o777))
                .expect("opening the temp home to nobody");
            world_readable_copy(&netsh_bin(), home)
        })
    }

    /// `netsh` in a network namespace of its own, where only a loopback
    /// interface exists and nothing listens; `setup` (shell commands) runs
    /// there first.
    pub fn in_netns(setup: &[&str]) -> Self {
        let mut steps = vec!["ip link set lo up"];
        steps.extend_from_slice(setup);
        let script = format!("{} && exec \"$0\" \"$@\"", steps.join(" && "));
        Self::wrapped(&["unshare", "--net", "sh", "-c", &script])
    }

    /// The temporary home (working directory) of this command.
    pub fn home(&self) -> &Path {
        self._home.path()
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.description
            .push_str(&format!(" {:?}", arg.as_ref().to_string_lossy()));
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// What the command reads as stdin (by default, nothing: `/dev/null`).
    pub fn stdin(mut self, stdin: impl Into<Stdio>) -> Self {
        self.cmd.stdin(stdin);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs to completion.
    pub fn output(mut self) -> Run {
        let output = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", self.description));
        Run {
            description: self.description,
            output,
        }
    }

    /// Runs and insists on exit code 0.
    pub fn ok(self) -> Run {
        let run = self.output();
        run.expect_code(0);
        run
    }

    /// `netsh -e CODE`, insisting on success; returns stdout, trimmed.
    pub fn eval(code: &str) -> String {
        Netsh::new().arg("-e").arg(code).ok().stdout()
    }

    /// `netsh -e CODE`, insisting on failure (exit 1); returns stderr, trimmed.
    pub fn eval_err(code: &str) -> String {
        let run = Netsh::new().arg("-e").arg(code).output();
        run.expect_code(1);
        run.stderr()
    }
}

/// A finished command, which prints everything about itself when a check fails.
pub struct Run {
    pub description: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout)
            .trim()
            .to_string()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr)
            .trim()
            .to_string()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn expect_code(&self, code: i32) {
        assert_eq!(
            self.code(),
            Some(code),
            "\n{}\nexpected exit code {code}\n--- stdout\n{}\n--- stderr\n{}\n",
            self.description,
            self.stdout(),
            self.stderr()
        );
    }

    pub fn explain(&self) -> String {
        format!(
            "{} (exit {:?})\n--- stdout\n{}\n--- stderr\n{}",
            self.description,
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
}

/// How `Netsh::nobody` runs netsh: as nobody, with no inherited capability.
const NOBODY: [&str; 6] = [
    "setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--inh-caps=-all",
    "--",
];

/// Tells the person running `cargo test` that a test skipped and why.
/// Written straight to the terminal: libtest hides a passing test's output.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// `bin` reachable and runnable by anyone, in `dir`: a hard link where
/// the file's own mode allows that (no 200 MB copy), else a copy.
fn world_readable_copy(bin: &Path, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let target = dir.join("netsh");
    let linked = std::fs::hard_link(bin, &target).is_ok()
        && std::fs::metadata(&target).is_ok_and(|m| m.permissions().mode() & 0o005 == 0o005);
    if !linked {
        let _ = std::fs::remove_file(&target);
        std::fs::copy(bin, &target).expect("copying netsh into the temp home");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .expect("making the copy of netsh runnable by anyone");
    }
    target
}

/// Whether the tests run as root, as CI does.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Why a check run that failed lets a test skip: the tests do not run as
/// root, or stderr names the missing privilege (`privilege`). As root, any
/// other failure is a broken feature, and the test fails with it.
pub fn skip_unless_broken(what: &str, run: &Run, root: bool, privilege: &str) -> Option<String> {
    if run.code() == Some(0) {
        return None;
    }
    if !root || run.stderr().contains(privilege) {
        return Some(format!("{what} is not possible here: {}", run.stderr()));
    }
    panic!(
        "{what} failed although the tests run as root: a bug, not a reason to skip\n{}",
        run.explain()
    );
}

/// Why packets cannot be captured here, if netsh lacks CAP_NET_RAW (the
/// tests are not running as root); any other failure fails the test.
pub fn capture_unavailable() -> Option<String> {
    let run = Netsh::new()
        .args(["-e", "capture(#{port: 1, count: 1, timeout: 1}); 1"])
        .output();
    skip_unless_broken("capturing packets", &run, is_root(), "CAP_NET_RAW")
}

/// Why netsh cannot be run as `nobody` here: only root may change user.
/// As root, any failure (setpriv missing, the binary unreadable) fails.
pub fn nobody_unavailable() -> Option<String> {
    let run = Netsh::nobody().args(["-e", "1"]).output();
    skip_unless_broken(
        "running netsh as nobody (setpriv)",
        &run,
        is_root(),
        "Operation not permitted",
    )
}

/// Why a private network namespace cannot be made here: only root may.
/// As root, failing to make one (`unshare`, `ip`) fails the test.
pub fn netns_unavailable() -> Option<String> {
    let run = Netsh::in_netns(&[]).args(["-e", "1"]).output();
    skip_unless_broken(
        "a private network namespace (unshare, ip)",
        &run,
        is_root(),
        "Operation not permitted",
    )
}

/// Waits until `check` holds, polling; fails the test after `limit`.
pub fn wait_until(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A port on 127.0.0.1 where nothing listens, for "connection refused".
/// Picked in 20000–32767, outside the kernel's ephemeral range, so no test
/// that binds port 0 can be given it meanwhile (a port bound and released
/// can be), and checked to refuse.
pub fn closed_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let first = 20000 + (random % 12768) as u16;
    (0..12768u16)
        .map(|i| 20000 + (first - 20000 + i) % 12768)
        .find(|port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            matches!(
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        })
        .expect("a port nothing listens on in 20000–32767")
}

/// A REPL in a real pseudo-terminal.
pub type Pty =
    expectrl::Session<expectrl::process::unix::UnixProcess, expectrl::process::unix::PtyStream>;

/// Starts the REPL (with `args`) in a pseudo-terminal, working in `home`
/// with a private config and data dir there and no colour, and waits for
/// its first prompt.
pub fn repl_in(home: &Path, args: &[&str]) -> Pty {
    use expectrl::Expect;
    let mut cmd = Command::new(netsh_bin());
    cmd.args(args)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .current_dir(home);
    for proxy in PROXY_VARIABLES {
        cmd.env_remove(proxy);
    }
    let mut pty = expectrl::Session::spawn(cmd).expect("starting netsh in a pty");
    pty.set_expect_timeout(Some(Duration::from_secs(15)));
    pty.expect("netsh> ").expect("the first prompt");
    pty
}

/// The REPL with no arguments: [`repl_in`] `home`.
pub fn repl(home: &Path) -> Pty {
    repl_in(home, &[])
}

/// Accepts one connection on `listener` within `timeout`, or panics saying
/// nobody came; the stream it returns gives up reads after 10 s.
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("a blocking stream");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("a read timeout");
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("nobody connected to the test peer within {timeout:?}: {e}"),
        }
    }
}

/// A TCP echo peer on 127.0.0.1: it sends back what one client sends, until
/// that client half-closes, then closes. [`EchoPeer::received`] is what it
/// got, or why it gave up (it waits 10 s at most, so a test never hangs).
pub struct EchoPeer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Vec<u8>, String>>>,
}

impl EchoPeer {
    pub fn start() -> EchoPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the echo peer");
        let addr = listener.local_addr().expect("the echo peer's address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if stopping.load(Ordering::SeqCst) => {
                        return Err("stopped before anyone connected".to_string());
                    }
                    Err(_) if Instant::now() > deadline => {
                        return Err("nobody connected within 10 s".to_string());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            };
            stream.set_nonblocking(false).map_err(|e| e.to_string())?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            let mut received = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => return Ok(received),
                    Ok(n) => {
                        received.extend_from_slice(&buf[..n]);
                        stream.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                    }
                    Err(e) => {
                        return Err(format!(
                            "no end of stream from the client ({e}) after {} bytes",
                            received.len()
                        ));
                    }
                }
            }
        });
        EchoPeer {
            addr,
            stop,
            handle: Some(handle),
        }
    }

    /// Waits for the peer to finish: the bytes it received and echoed.
    pub fn received(mut self) -> Result<Vec<u8>, String> {
        self.handle
            .take()
            .expect("received() is called once")
            .join()
            .expect("the echo peer panicked")
    }
}

impl Drop for EchoPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A peer program (openssl, socat, a netsh script) running in the
/// background: its stdout and stderr are collected line by line, and it
/// is killed when dropped.
pub struct Peer {
    pub description: String,
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Peer {
    /// Starts `cmd` with stdin piped and stdout/stderr collected.
    pub fn start(mut cmd: Command) -> Peer {
        use std::io::BufRead;
        use std::process::Stdio;
        let description = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {description}: {e}"));
        let (send, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for out in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Peer {
            description,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Writes to the peer's stdin.
    pub fn write(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin
            .write_all(text.as_bytes())
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.description));
    }

    /// Closes the peer's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.child.stdin.take();
    }

    /// Waits up to `limit` for an output line containing `needle`; returns
    /// it, or `None` (the output so far is in [`Peer::output`]).
    pub fn wait_for(&mut self, needle: &str, limit: std::time::Duration) -> Option<String> {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return Some(line.clone());
        }
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Like [`Peer::wait_for`], but a missing line fails the test with
    /// everything the peer printed.
    pub fn expect(&mut self, needle: &str) -> String {
        match self.wait_for(needle, std::time::Duration::from_secs(20)) {
            Some(line) => line,
            None => {
                let output = self.output();
                panic!(
                    "{} never printed {needle:?}; it printed:\n{output}",
                    self.description
                )
            }
        }
    }

    /// Everything printed so far.
    pub fn output(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Waits for the peer to exit (up to `limit`); its exit code.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `program` is installed (it runs with `args`); when it is not,
/// says that `test` skips, and which Debian package to install.
pub fn has_tool(test: &str, program: &str, args: &[&str], package: &str) -> bool {
    let found = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIPPED {test}: {program} is not installed (apt-get install {package})");
    }
    found
}

/// A `netsh` process running `code` in the background (as [`Peer`]),
/// with a private home like [`Netsh::new`]'s.
pub fn netsh_peer(code: &str, dir: &Path) -> Peer {
    let mut cmd = Command::new(netsh_bin());
    cmd.env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .arg("-e")
        .arg(code);
    Peer::start(cmd)
}

/// A port in 20000–32767 for a peer that cannot be told to bind port 0
/// (openssl s_server): free when checked; the caller retries on a clash.
pub fn fixed_port(attempt: u32) -> u16 {
    let seed = std::process::id()
        .wrapping_mul(2654435761)
        .wrapping_add(attempt.wrapping_mul(40503))
        .wrapping_add(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        );
    20000 + (seed % 12768) as u16
}
