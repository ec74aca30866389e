//! Shared test support: run the real `netsh` binary and explain failures,
//! and small real peers on loopback.
//!
//! Each integration test file does `mod support;` and uses what it needs.
#![allow(dead_code)]

pub mod http;
pub mod nginx;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
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
        let home = tempfile::tempdir().expect("creating a temp home");
        let mut cmd = Command::new(netsh_bin());
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
            description: "netsh".into(),
            _home: home,
        }
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

/// Waits until `check` holds, polling; fails the test after `limit`.
pub fn wait_until(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The REPL in a pseudo-terminal.
pub type Pty =
    expectrl::Session<expectrl::process::unix::UnixProcess, expectrl::process::unix::PtyStream>;

/// Starts the REPL in a pty, in `home` with a private config and data dir,
/// and waits for its first prompt.
pub fn repl(home: &Path) -> Pty {
    use expectrl::Expect;
    let mut cmd = Command::new(netsh_bin());
    cmd.env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .current_dir(home);
    for proxy in PROXY_VARIABLES {
        cmd.env_remove(proxy);
    }
    let mut pty = expectrl::Session::spawn(cmd).expect("starting netsh in a pty");
    pty.set_expect_timeout(Some(std::time::Duration::from_secs(20)));
    pty.expect("netsh> ").expect("the first prompt");
    pty
}
