//! Shared test support: run the real `netsh` binary and explain failures,
//! drive it in a pseudo-terminal or in the background, and small real
//! peers on loopback.
//!
//! `main.rs` declares it once; each test file uses what it needs.

pub mod http;
pub mod lab;
pub mod nginx;
pub mod unbound;
pub mod wire;

use std::{
    io::{BufRead, BufReader, Read, Write},
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

/// A `sh -c` script that bind-mounts `hosts` over /etc/hosts and then runs
/// its arguments (inside `unshare -m`, so only they see it).
pub fn private_hosts(hosts: &Path) -> String {
    format!(
        "mount --bind {} /etc/hosts && exec \"$0\" \"$@\"",
        hosts.display()
    )
}

/// The netsh binary cargo built for these tests.
pub fn netsh_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netsh"))
}

/// Gives `cmd` a private config and data dir under `home`, works there,
/// turns colour off and drops the proxy variables: tests talk to loopback
/// peers directly, whatever proxy the machine has.
fn private_env(cmd: &mut Command, home: &Path) {
    cmd.env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("NO_COLOR", "1")
        .current_dir(home);
    for proxy in PROXY_VARIABLES {
        cmd.env_remove(proxy);
    }
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

    /// `netsh` seeing `hosts` as its /etc/hosts, in a mount namespace of
    /// its own (root only): names resolve as a test says, and the system's
    /// file is never touched.
    pub fn with_hosts(hosts: &Path) -> Self {
        let script = private_hosts(hosts);
        Self::wrapped(&["unshare", "-m", "sh", "-c", &script])
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
        private_env(&mut cmd, home.path());
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

    /// `netsh` working in the checkout, where `scripts/` and `plugins/` are.
    pub fn in_checkout() -> Self {
        Self::new().current_dir(env!("CARGO_MANIFEST_DIR"))
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

    /// `netsh` as `nobody` (as [`Netsh::nobody`]) in a network namespace
    /// of its own (as [`Netsh::in_netns`]), after `setup` ran there as root:
    /// per-namespace sysctls such as `net.ipv4.ping_group_range`.
    pub fn nobody_in_netns(setup: &[&str]) -> Self {
        let mut steps = vec!["ip link set lo up"];
        steps.extend_from_slice(setup);
        let script = format!(
            "{} && exec {} \"$0\" \"$@\"",
            steps.join(" && "),
            NOBODY.join(" ")
        );
        Self::build(&["unshare", "--net", "sh", "-c", &script], |home| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o777))
                .expect("opening the temp home to nobody");
            world_readable_copy(&netsh_bin(), home)
        })
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

/// Returns from the calling test, saying why on the terminal, when `why`
/// (an `Option<String>`, such as [`capture_unavailable`]'s) says it cannot
/// run here.
macro_rules! skip_if {
    ($test:expr, $why:expr) => {
        if let Some(why) = $why {
            $crate::support::skip($test, &why);
            return;
        }
    };
}
pub(crate) use skip_if;

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

/// A REPL (or any netsh run) in a real pseudo-terminal.
pub type Pty =
    expectrl::Session<expectrl::process::unix::UnixProcess, expectrl::process::unix::PtyStream>;

/// `netsh` to be run in a pseudo-terminal (`TERM=xterm`), with a private
/// config and data dir under `home`, working there, and no colour unless
/// told: what [`Netsh`] is for a pipe.
pub struct Terminal {
    cmd: Command,
}

impl Terminal {
    pub fn new(home: &Path) -> Terminal {
        let mut cmd = Command::new(netsh_bin());
        private_env(&mut cmd, home);
        cmd.env("TERM", "xterm");
        Terminal { cmd }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Colour, as on a user's terminal (no `NO_COLOR`).
    pub fn colour(mut self) -> Self {
        self.cmd.env_remove("NO_COLOR");
        self
    }

    /// Starts it and waits for nothing.
    pub fn spawn(self) -> Pty {
        let mut pty = expectrl::Session::spawn(self.cmd).expect("starting netsh in a pty");
        pty.set_expect_timeout(Some(Duration::from_secs(15)));
        pty
    }

    /// Starts the REPL and waits for its first prompt.
    pub fn repl(self) -> Pty {
        use expectrl::Expect;
        let mut pty = self.spawn();
        pty.expect("netsh> ").expect("the first prompt");
        pty
    }
}

/// Starts the REPL (with `args`) in a pseudo-terminal, working in `home`,
/// and waits for its first prompt.
pub fn repl_in(home: &Path, args: &[&str]) -> Pty {
    Terminal::new(home).args(args).repl()
}

/// The REPL with no arguments: [`repl_in`] `home`.
pub fn repl(home: &Path) -> Pty {
    repl_in(home, &[])
}

/// Types `input` at the prompt and waits for `expected` in the output,
/// then for the next prompt. (rustyline drops input typed ahead of its
/// prompt, its issue #690: hence the wait.)
pub fn enter(pty: &mut Pty, input: &str, expected: &str) {
    use expectrl::Expect;
    pty.send_line(input).unwrap();
    if let Err(e) = pty.expect(expected) {
        panic!(
            "after typing {input:?} the REPL never printed {expected:?} ({e}); it showed {:?}",
            shown(pty)
        );
    }
    pty.expect("netsh> ")
        .unwrap_or_else(|e| panic!("no prompt after {input:?}: {e}"));
}

/// Like [`enter`], but `value` must be printed on a line of its own
/// ([`expect_value`]).
pub fn enter_value(pty: &mut Pty, input: &str, value: &str) {
    use expectrl::Expect;
    pty.send_line(input).unwrap();
    expect_value(pty, value);
    pty.expect("netsh> ")
        .unwrap_or_else(|e| panic!("no prompt after {input:?}: {e}"));
}

/// Waits for `value` printed on a line of its own: a bare `1` would also
/// be found in the `127.0.0.1` of an announcement, in the echo of the
/// typed line, or in the terminal's escape sequences (`\x1b[?2026l`).
pub fn expect_value(pty: &mut Pty, value: &str) {
    use expectrl::Expect;
    let alone = format!(r"\n{}\r\n", regex_escape(value));
    if let Err(e) = pty.expect(expectrl::Regex(alone.as_str())) {
        panic!(
            "the REPL never printed {value:?} alone on a line ({e}); it showed {:?}",
            shown(pty)
        );
    }
}

/// What the terminal shows that no expectation has taken yet, to explain
/// a failed one.
pub fn shown(pty: &mut Pty) -> String {
    use expectrl::Expect;
    pty.check(expectrl::Regex("(?s).+"))
        .map(|seen| String::from_utf8_lossy(seen.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// `text` with the characters a regex gives a meaning escaped.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
/// background: its stdout and stderr are collected line by line (in the
/// order they arrive: lines from two threads have no order beyond that),
/// and it is killed when dropped.
pub struct Peer {
    pub description: String,
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
    _home: Option<tempfile::TempDir>,
}

impl Peer {
    /// Starts `cmd` with stdin piped and stdout/stderr collected.
    pub fn start(mut cmd: Command) -> Peer {
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
        for out in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
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
            _home: None,
        }
    }

    /// `netsh -e CODE` in the background, with a private home of its own.
    pub fn netsh(code: &str) -> Peer {
        let home = tempfile::tempdir().expect("creating a temp home");
        let mut peer = netsh_peer(code, home.path());
        peer._home = Some(home);
        peer
    }

    /// The process id, to look at it from outside.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of the peer's /proc/PID/status, in its unit (kB for memory).
    pub fn status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("reading the status of {}: {e}", self.description));
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in the status of {}", self.description))
    }

    /// The port a server script printed: its first line that is a number
    /// alone (waiting up to 20 s).
    pub fn port(&mut self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(port) = self.seen.iter().find_map(|l| l.trim().parse().ok()) {
                return port;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    let output = self.output();
                    panic!(
                        "{} never printed a port; it printed:\n{output}",
                        self.description
                    )
                }
            }
        }
    }

    /// Writes to the peer's stdin.
    pub fn write(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin
            .write_all(text.as_bytes())
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.description));
    }

    /// Closes the peer's stdin: the end of its input.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits up to `limit` for an output line containing `needle`; returns
    /// it, or `None` (the output so far is in [`Peer::output`]).
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> Option<String> {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return Some(line.clone());
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
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
        match self.wait_for(needle, Duration::from_secs(20)) {
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

    /// Whether the peer is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGINT, as Ctrl-C on a terminal would.
    pub fn interrupt(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap_or_else(|e| panic!("SIGINT to {}: {e}", self.description));
    }

    /// Waits for the peer to exit (up to `limit`) and for the rest of its
    /// output; its exit code, or `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Both pipes end with the process: read on until they have.
        while let Ok(line) = self.lines.recv_timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
        ) {
            self.seen.push(line);
        }
        code
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
        skip(
            test,
            &format!("{program} is not installed (apt-get install {package})"),
        );
    }
    found
}

/// A `netsh` process running `code` in the background (as [`Peer`]),
/// with a private home like [`Netsh::new`]'s.
pub fn netsh_peer(code: &str, dir: &Path) -> Peer {
    let mut cmd = Command::new(netsh_bin());
    private_env(&mut cmd, dir);
    cmd.arg("-e").arg(code);
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

/// A std listener on `addr` whose one connection is handled by `peer` in a
/// thread (reads give up after 10 s); returns the address to give netsh
/// and the thread to join.
pub fn peer_on<T: Send + 'static>(
    addr: &str,
    peer: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind(addr).expect("binding the test peer");
    let local = listener.local_addr().expect("the test peer's address");
    let handle =
        std::thread::spawn(move || peer(accept_within(&listener, Duration::from_secs(20))));
    (local, handle)
}

/// A plain listener on `addr`, like `nc -l > file`: the thread's value is
/// everything its one connection sent until end of stream.
pub fn sink_on(addr: &str) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    peer_on(addr, |mut stream| {
        let mut got = Vec::new();
        stream
            .read_to_end(&mut got)
            .expect("the sink reading to end of stream");
        got
    })
}

/// A line client of a server on 127.0.0.1:`port`; reads give up after 30 s.
pub fn line_client(port: u16) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    BufReader::new(stream)
}

/// Sends `line` and a newline; the line that comes back, without its end.
pub fn ask(conn: &mut BufReader<TcpStream>, line: &str) -> String {
    conn.get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .expect("sending a line");
    let mut reply = String::new();
    conn.read_line(&mut reply).expect("reading a reply");
    reply.trim_end().to_string()
}

/// `clients` line clients of 127.0.0.1:`port` at once, each asking
/// `trips` lines (`client C trip T`, T from 1); each reply must be
/// `expected(line, T)`.
pub fn many_clients(port: u16, clients: usize, trips: usize, expected: fn(&str, usize) -> String) {
    let handles: Vec<_> = (0..clients)
        .map(|client| {
            std::thread::spawn(move || {
                let mut conn = line_client(port);
                for trip in 1..=trips {
                    let line = format!("client {client} trip {trip}");
                    assert_eq!(ask(&mut conn, &line), expected(&line, trip));
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("a client saw a wrong reply");
    }
}

/// Writes `text` to `path`, making its folders first.
pub fn write_file(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// Bytes from a fast PRNG (xorshift64*), the same for the same seed:
/// incompressible-looking test data.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x = seed | 1;
    for chunk in out.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let word = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    out
}

/// SHA-256 of bytes, as hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// SHA-256 of a file, as hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

/// The status code and headers (names lower-cased) of one HTTP response
/// head as text: its status line, then `Name: value` lines.
pub fn status_and_headers(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}
