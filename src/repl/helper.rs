//! The REPL's rustyline helper: Tab completion, signature hints, colours,
//! and the validator that lets unfinished input continue on the next line.

use std::{
    borrow::Cow,
    sync::{Arc, Mutex, OnceLock},
};

use rhai::{Engine, LexError, ParseErrorType};
use rustyline::{
    Context, Helper,
    completion::{Completer, Pair},
    highlight::{CmdKind, Highlighter},
    hint::{Hint, Hinter},
    validate::Validator,
};

use crate::{console, shell::Session};

/// Names of the REPL's variables and functions, refreshed after every line.
pub type Variables = Arc<Mutex<Vec<String>>>;

pub struct ReplHelper {
    engine: Arc<Engine>,
    session: Session,
    variables: Variables,
    /// Rhai's built-in function names (`print`, `len`…), gathered on first Tab.
    builtins: OnceLock<Vec<String>>,
    color: bool,
}

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "while", "loop", "for", "in", "do", "until", "break",
    "continue", "return", "throw", "try", "catch", "switch", "true", "false", "import", "export",
    "private", "this", "Fn",
];

impl ReplHelper {
    pub fn new(engine: Arc<Engine>, session: Session) -> Self {
        ReplHelper {
            engine,
            session,
            variables: Arc::default(),
            builtins: OnceLock::new(),
            color: console::color_enabled(&std::io::stdout()),
        }
    }

    pub fn variables(&self) -> Variables {
        self.variables.clone()
    }

    fn builtins(&self) -> &[String] {
        self.builtins.get_or_init(|| {
            let mut names: Vec<String> = self
                .engine
                .gen_fn_signatures(true)
                .iter()
                .filter_map(|sig| sig.split('(').next())
                .filter(|n| n.chars().all(|c| c.is_alphanumeric() || c == '_') && !n.is_empty())
                .map(str::to_string)
                .collect();
            names.sort();
            names.dedup();
            names
        })
    }

    /// Every word Tab may offer, except help topics.
    fn candidates(&self) -> Vec<String> {
        let help = self.session.help();
        let mut names: Vec<String> = help.entries().map(|e| e.name.clone()).collect();
        names.extend(
            self.session
                .plugins()
                .iter()
                .map(|p| format!("{}::", p.name)),
        );
        if let Ok(vars) = self.variables.lock() {
            names.extend(vars.iter().cloned());
        }
        names.extend(self.builtins().iter().cloned());
        names.extend(KEYWORDS.iter().map(|k| k.to_string()));
        names.sort();
        names.dedup();
        names
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        // Inside help("…"): complete topics, and close the call.
        if let Some(start) = before.rfind("help(\"") {
            let typed = &before[start + 6..];
            if !typed.contains('"') {
                let help = self.session.help();
                let mut topics: Vec<String> = help
                    .entries()
                    .map(|e| e.name.clone())
                    .chain(help.groups.iter().map(|g| g.name.clone()))
                    .filter(|t| t.starts_with(typed))
                    .collect();
                topics.sort();
                topics.dedup();
                let pairs = topics
                    .into_iter()
                    .map(|t| Pair {
                        display: t.clone(),
                        replacement: format!("{t}\")"),
                    })
                    .collect();
                return Ok((start + 6, pairs));
            }
        }
        let start = word_start(before);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let pairs = self
            .candidates()
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

/// Where the identifier (or `ns::name`) that ends `text` begins, as a byte
/// offset that is always on a character boundary.
fn word_start(text: &str) -> usize {
    text.char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == ':'))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// A hint that is shown but never inserted (Right arrow must not type it).
pub struct SignatureHint(String);

impl Hint for SignatureHint {
    fn display(&self) -> &str {
        &self.0
    }
    fn completion(&self) -> Option<&str> {
        None
    }
}

impl Hinter for ReplHelper {
    type Hint = SignatureHint;

    /// After `name(` shows the rest of the signature: `host: string) -> Array`.
    fn hint(&self, line: &str, pos: usize, _: &Context<'_>) -> Option<SignatureHint> {
        if pos != line.len() || !line.ends_with('(') {
            return None;
        }
        let before = &line[..line.len() - 1];
        let start = word_start(before);
        let name = &before[start..];
        // `l.accept(`: the receiver is already written, so skip the first parameter.
        let is_method = before[..start].ends_with('.');
        if name.is_empty() {
            return None;
        }
        let help = self.session.help();
        let signatures: Vec<&str> = help
            .entries()
            .filter(|e| e.name == name)
            .map(|e| e.signature.as_str())
            .collect();
        let first = signatures.first()?;
        let mut rest = first.split_once('(').map(|(_, r)| r)?;
        if is_method {
            rest = rest
                .split_once(", ")
                .map_or_else(|| rest.split_once(')').map_or(rest, |(_, r)| r), |(_, r)| r);
        }
        let more = if signatures.len() > 1 {
            format!("   (+{} more: help(\"{name}\"))", signatures.len() - 1)
        } else {
            String::new()
        };
        Some(SignatureHint(format!("{rest}{more}")))
    }
}

impl Highlighter for ReplHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color {
            Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        false
    }
}

/// Enter always hands the line over: the REPL itself decides whether the
/// input is complete (see [`is_unfinished`]), so continuation lines get
/// their own prompt.
impl Validator for ReplHelper {}

/// Is `input` unfinished — an open `{`, `[`, `(` or string — so that it
/// continues on the next line instead of being reported as an error?
pub fn is_unfinished(engine: &Engine, input: &str) -> bool {
    match engine.compile(input) {
        Err(e) => is_unfinished_error(e.err_type(), input),
        Ok(_) => false,
    }
}

/// Rhai reports running out of input as `UnexpectedEOF`, an unterminated
/// string, or — inside a block — whatever token it expected next (`;`, `}`).
/// So besides the first two, any error while a bracket is still open at the
/// end of the text means "more to come"; `foo(1;)` is simply wrong.
fn is_unfinished_error(kind: &ParseErrorType, input: &str) -> bool {
    matches!(
        kind,
        ParseErrorType::UnexpectedEOF | ParseErrorType::BadInput(LexError::UnterminatedString)
    ) || ends_open(input)
}

/// Does the text end inside an open bracket or string? Comments and
/// character literals (`'"'`) are skipped so they cannot hold the input open.
fn ends_open(input: &str) -> bool {
    let chars: Vec<char> = input.chars().collect();
    let mut depth: i32 = 0;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                if i >= chars.len() {
                    return true; // an unclosed block comment
                }
                i += 1;
            }
            quote @ ('"' | '`' | '\'') => {
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= chars.len() && quote != '\'' {
                    return true; // an unterminated string
                }
            }
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    depth > 0
}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfinished(input: &str) -> bool {
        is_unfinished(&Engine::new(), input)
    }

    #[test]
    fn word_start_never_splits_a_character() {
        assert_eq!(word_start("\"→(res"), "\"→(".len());
        assert_eq!(word_start("«pri"), "«".len());
        assert_eq!(word_start("é"), 0);
        assert_eq!(word_start(""), 0);
    }

    #[test]
    fn open_input_continues() {
        for input in [
            "fn f(x) {",
            "let a = [1, 2,",
            "print(\"abc",
            "if true {\n  1",
            "foo(1,",
        ] {
            assert!(unfinished(input), "{input:?} should continue");
        }
    }

    #[test]
    fn complete_or_wrong_input_does_not() {
        for input in [
            "1 + 1",
            "let x = 40;",
            "foo(1;)",
            "let = 3",
            "}",
            "let q = '\"'; let x = ;",
            "let y = 1 +; // (",
            "let z = 1 +; /* { */",
        ] {
            assert!(!unfinished(input), "{input:?} should not continue");
        }
    }
}
