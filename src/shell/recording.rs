//! The file a REPL recording writes (`record("session.rhai")`): its header,
//! and each input turned into lines that, run with `netsh FILE`, print what
//! the session printed.
//!
//! The REPL shows the value of a bare expression; a script does not. So an
//! input whose value the REPL showed is written with its last statement
//! wrapped in `show(…)`, which prints a value as the REPL does:
//! `let a = 1; a + 1` becomes `let a = 1; show(a + 1);`. An input that
//! failed is written as comments, itself and then its error, so the file
//! runs as it stands. Every entry is written with one `write` as soon as the
//! input has run (no buffer in netsh), so a crash keeps what was recorded.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use rhai::Engine;

use crate::error::{Error, Result};
use crate::net::helpers::{file_error, quoted};

/// What to do when the file is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse it: a recording never destroys a file unasked.
    New,
    /// Add this recording after what it holds.
    Append,
    /// Replace it.
    Overwrite,
}

/// An open recording.
#[derive(Debug)]
pub struct Recording {
    file: File,
    /// The path as the user gave it, for messages.
    path: PathBuf,
    /// Inputs written that ran, and that failed (written as comments).
    pub ran: usize,
    pub failed: usize,
}

impl Recording {
    /// Opens `path` as `mode` says and writes the header: when, in which
    /// folder and by which netsh it was recorded, and how to run it.
    /// `init` is the `init.rhai` that ran before the session, if any.
    pub fn open(path: &Path, mode: Mode, init: Option<&Path>) -> Result<Recording> {
        let shown = quoted(path);
        if path.as_os_str().is_empty() {
            return Err(Error::invalid(
                "the path is empty; give a file name, like \"session.rhai\"",
            ));
        }
        // Looked at first: opening a folder for writing fails with a less
        // helpful word, and opening a FIFO would wait for a reader.
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::invalid(format!(
                    "{shown} is a folder; give a file name, like {}",
                    quoted(&path.join("session.rhai"))
                )));
            }
            Ok(meta) if !meta.is_file() => {
                return Err(Error::invalid(format!(
                    "{shown} is not a regular file (a device or pipe)"
                )));
            }
            Ok(_) if mode == Mode::New => {
                return Err(Error::Exists(format!("{shown} already exists")));
            }
            _ => {}
        }
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !folder.is_dir() {
            return Err(Error::NotFound(format!(
                "{shown}: there is no folder {}",
                quoted(folder)
            )));
        }
        let mut options = OpenOptions::new();
        match mode {
            Mode::New => options.write(true).create_new(true),
            Mode::Append => options.append(true).create(true),
            Mode::Overwrite => options.write(true).create(true).truncate(true),
        };
        let file = options
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .mode(0o644)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    Error::Exists(format!("{shown} already exists"))
                }
                _ => file_error("opening", path, e),
            })?;
        let mut recording = Recording {
            file,
            path: path.to_path_buf(),
            ran: 0,
            failed: 0,
        };
        let appending = mode == Mode::Append
            && recording
                .file
                .metadata()
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        recording.write(&header(path, init, appending))?;
        Ok(recording)
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes an input that ran. `value` is what the REPL showed of its
    /// result, if it showed anything.
    pub fn ran(&mut self, engine: &Engine, input: &str, shown: Option<&str>) -> Result<()> {
        let text = match shown {
            None => terminated(input),
            Some(value) => match last_expression(engine, input) {
                Some(split) => split.wrapped(),
                // Not seen in practice; the file then says what it missed.
                None => format!(
                    "{}\n{}",
                    terminated(input),
                    comment("the REPL showed: ", value)
                ),
            },
        };
        self.write(&format!("{text}\n"))?;
        self.ran += 1;
        Ok(())
    }

    /// Writes an input that failed as comments: the input, then its error,
    /// then the variables it had set before failing (`set`), which the
    /// session keeps and the file does not.
    pub fn failed(&mut self, input: &str, error: &str, set: &[String]) -> Result<()> {
        let mut text = format!("{}\n{}\n", comment("", input.trim()), comment("", error));
        if !set.is_empty() {
            text.push_str(&format!(
                "// (before failing it set {}, which this file does not)\n",
                set.join(", ")
            ));
        }
        self.write(&text)?;
        self.failed += 1;
        Ok(())
    }

    /// What `record()` says when it stops.
    pub fn summary(&self) -> String {
        let inputs = |n: usize| if n == 1 { "input" } else { "inputs" };
        let mut text = format!(
            "record: {} {} written to {}",
            self.ran + self.failed,
            inputs(self.ran + self.failed),
            quoted(&self.path)
        );
        if self.failed > 0 {
            text.push_str(&format!(" ({} that failed, as comments)", self.failed));
        }
        text.push_str(&format!("; run it with: netsh {}", run_word(&self.path)));
        text
    }

    /// One `write` per entry: what is recorded reaches the file at once.
    fn write(&mut self, text: &str) -> Result<()> {
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| file_error("writing", &self.path, e))
    }
}

/// `input` ending in a `;` (before any comment after it): inputs typed one
/// by one are statements of one script in the file, and Rhai wants them
/// apart (`print(1)` then `print(2)` is a syntax error, while `;` after a
/// block or a function definition is harmless).
fn terminated(input: &str) -> String {
    let end = scan(input).code_end;
    match (input.get(..end), input.get(end..)) {
        (Some(code), Some(after)) if !code.trim().is_empty() && !code.ends_with(';') => {
            format!("{code};{after}").trim().to_string()
        }
        _ => input.trim().to_string(),
    }
}

/// `text` as `//` comment lines, the first after `first`.
fn comment(first: &str, text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let lead = if i == 0 { first } else { "" };
            format!("// {lead}{line}").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The file's opening comment.
fn header(path: &Path, init: Option<&Path>, appending: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let when = format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let folder = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "an unknown folder".into());
    let mut text = String::new();
    if appending {
        text.push('\n');
    }
    text.push_str(&format!(
        "// netsh REPL session recorded {when} in {folder} by netsh {}.\n",
        env!("CARGO_PKG_VERSION")
    ));
    text.push_str(&format!(
        "// Run it from that folder with: netsh {}\n",
        run_word(path)
    ));
    text.push_str(
        "// show(…) prints a value as the REPL showed it; inputs that failed are comments.\n",
    );
    if let Some(init) = init {
        text.push_str(&format!(
            "// {} ran before the session; what it defined is not in this file.\n",
            init.display()
        ));
    }
    text
}

/// How to name `path` so that `netsh` runs it as a file, not as a
/// bundled scenario: a word with a `/` or ending in `.rhai`.
fn run_word(path: &Path) -> String {
    let text = path.display().to_string();
    if text.contains('/') || text.ends_with(".rhai") {
        text
    } else {
        format!("./{text}")
    }
}

/// An input cut before its last statement.
#[derive(Debug, PartialEq, Eq)]
pub struct Split<'a> {
    /// The statements before the last one, as typed.
    pub before: &'a str,
    /// The last statement, an expression, without its `;`.
    pub last: &'a str,
    /// Comments after it.
    pub after: &'a str,
}

impl Split<'_> {
    /// The input with its last expression printed by `show(…)`.
    fn wrapped(&self) -> String {
        let before = self.before.trim();
        let sep = if before.is_empty() {
            ""
        } else if before.contains('\n') || self.last.contains('\n') {
            "\n"
        } else {
            " "
        };
        // A comment inside the expression would swallow the `)`.
        let show = if self.last.contains("//") {
            format!("show(\n{}\n);", self.last)
        } else {
            format!("show({});", self.last)
        };
        let after = self.after.trim();
        let after = if after.is_empty() {
            String::new()
        } else {
            format!(" {after}")
        };
        format!("{before}{sep}{show}{after}")
    }
}

/// Splits `input` before its last statement when that statement is an
/// expression, whose value is what the REPL showed: `let a = 1; a + 1`
/// gives `let a = 1;` and `a + 1`. A statement ends at a `;` or a `}`
/// outside brackets; the split that is chosen is the last one after which
/// `show(…)` around the rest still parses, checked by compiling the result.
pub fn last_expression<'a>(engine: &Engine, input: &'a str) -> Option<Split<'a>> {
    let shape = scan(input);
    let mut code_end = shape.code_end;
    // The `;` ending the last statement belongs to neither part.
    if input[..code_end].ends_with(';') {
        code_end -= 1;
    }
    // Every offset found is after an ASCII byte, so on a character
    // boundary; `get` keeps that from ever being a panic.
    let after = input.get(shape.code_end..)?;
    let mut starts: Vec<usize> = vec![0];
    starts.extend(shape.ends.iter().copied().filter(|&end| {
        end < code_end
            && (input.as_bytes()[end - 1] == b';' || input.get(end..).is_some_and(starts_statement))
    }));
    starts.into_iter().rev().find_map(|start| {
        let last = input.get(start..code_end)?.trim();
        if last.is_empty() {
            return None;
        }
        let split = Split {
            before: input.get(..start)?,
            last,
            after,
        };
        engine.compile(split.wrapped()).ok().map(|_| split)
    })
}

/// After a `}`, does `rest` begin a new statement rather than go on with
/// the expression the block was part of (`{ 1 } + 2`, `#{a: 1}.a`)?
fn starts_statement(rest: &str) -> bool {
    rest.trim_start()
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '"' | '\'' | '`' | '#' | '|'))
}

/// Is `input` just a call of `name` (`record("s.rhai")`, `help();`), so
/// that leaving it out of a recording loses nothing else?
pub fn is_lone_call(input: &str, name: &str) -> bool {
    let code = input.get(..scan(input).code_end).unwrap_or(input).trim();
    let code = code.strip_suffix(';').unwrap_or(code).trim_end();
    code.strip_prefix(name)
        .is_some_and(|rest| rest.trim_start().starts_with('(') && rest.ends_with(')'))
        && scan(code).ends.is_empty()
}

/// Where statements may end in an input, and where its code ends.
struct Shape {
    /// Byte offsets just after each `;` and `}` outside brackets.
    ends: Vec<usize>,
    /// The byte offset after the last character that is code, not a
    /// comment or white space.
    code_end: usize,
}

/// Reads `input` as Rhai's lexer would for brackets, strings and comments.
fn scan(input: &str) -> Shape {
    let bytes = input.as_bytes();
    let mut ends = Vec::new();
    let mut code_end = 0;
    let mut depth: i32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
                continue;
            }
            quote @ (b'"' | b'`' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                code_end = (i + 1).min(bytes.len());
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                code_end = i + 1;
            }
            b'}' | b']' | b')' => {
                depth -= 1;
                code_end = i + 1;
                if depth == 0 && bytes[i] == b'}' {
                    ends.push(i + 1);
                }
            }
            b';' => {
                code_end = i + 1;
                if depth == 0 {
                    ends.push(i + 1);
                }
            }
            c if c.is_ascii_whitespace() => {}
            _ => code_end = i + 1,
        }
        i += 1;
    }
    // A cut string or comment can run past the end.
    Shape {
        ends,
        code_end: code_end.min(input.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(input: &str) -> Option<String> {
        last_expression(&Engine::new(), input).map(|s| s.wrapped())
    }

    #[test]
    fn the_last_expression_is_shown() {
        let cases = [
            ("1 + 1", "show(1 + 1);"),
            ("40 + 2;", "show(40 + 2);"),
            ("let a = 1; a + 1", "let a = 1; show(a + 1);"),
            ("let a = 1; a + 1; // two", "let a = 1; show(a + 1); // two"),
            ("fn f() { 1 } f()", "fn f() { 1 } show(f());"),
            (
                "if true { 1 } else { 2 }",
                "show(if true { 1 } else { 2 });",
            ),
            ("#{a: 1}.a", "show(#{a: 1}.a);"),
            ("let s = \"; }\"; s", "let s = \"; }\"; show(s);"),
            (
                "[1, 2].map(|x| { x * 2 })",
                "show([1, 2].map(|x| { x * 2 }));",
            ),
            (
                "let t = 0;\nfor i in 0..3 {\n  t += i;\n}\nt",
                "let t = 0;\nfor i in 0..3 {\n  t += i;\n}\nshow(t);",
            ),
            ("1 + // one\n 1", "show(\n1 + // one\n 1\n);"),
            ("\"é→\"", "show(\"é→\");"),
        ];
        for (input, expected) in cases {
            assert_eq!(wrapped(input).as_deref(), Some(expected), "{input:?}");
        }
    }

    #[test]
    fn a_block_followed_by_an_operator_is_one_expression() {
        // Split after the block, `show(+ 2)` would parse and print 2.
        assert_eq!(
            wrapped("{ let a = 1; a } + 2").as_deref(),
            Some("show({ let a = 1; a } + 2);")
        );
    }

    #[test]
    fn every_input_ends_its_statement() {
        assert_eq!(terminated("print(1)"), "print(1);");
        assert_eq!(terminated("let a = 1; "), "let a = 1;");
        assert_eq!(terminated("fn f() { 1 } // f"), "fn f() { 1 }; // f");
        assert_eq!(terminated("// only a comment"), "// only a comment");
        assert_eq!(terminated("print(\"é\")"), "print(\"é\");");
    }

    #[test]
    fn statements_are_not_wrapped() {
        assert_eq!(wrapped("let a = 1;"), None);
        assert_eq!(wrapped("fn f() { 1 }"), None);
        assert_eq!(wrapped("// only a comment"), None);
        assert_eq!(wrapped(""), None);
    }

    #[test]
    fn lone_calls_are_told_from_inputs_that_do_more() {
        assert!(is_lone_call("record(\"s.rhai\")", "record"));
        assert!(is_lone_call(" help(\"x\"); // why", "help"));
        assert!(is_lone_call("record ( )", "record"));
        assert!(!is_lone_call("let c = 1; record(\"s.rhai\")", "record"));
        assert!(!is_lone_call("record(\"a\"); print(1)", "record"));
        assert!(!is_lone_call("recorder()", "record"));
    }

    #[test]
    fn cut_input_is_harmless() {
        for input in ["\"open", "/* open", "'", "é\"", "}", ";;"] {
            let _ = wrapped(input);
        }
    }
}
