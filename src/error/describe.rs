//! How an uncaught error is printed: `FILE:LINE:COL: message`, naming the
//! innermost place it happened, with Rhai's framing taken off. Apart from
//! the error type because it reads Rhai's error tree, not netsh's.

use std::sync::OnceLock;

use rhai::{Dynamic, EvalAltResult};

use super::NetError;

/// How a "function not found" signature becomes words: the shell knows every
/// function's help and registers its explainer here, once.
static EXPLAIN_NOT_FOUND: OnceLock<fn(&str) -> String> = OnceLock::new();

/// Sets how a call to a missing function is explained (see [`describe`]).
pub fn explain_missing_functions_with(explain: fn(&str) -> String) {
    let _ = EXPLAIN_NOT_FOUND.set(explain);
}

/// An error as `FILE:LINE:COL: message`, naming the innermost place it
/// happened (inside a called function or plugin if that is where it was).
pub fn describe(err: &EvalAltResult, file: &str) -> String {
    let (file, message, pos) = innermost(err, file);
    match (pos.line(), pos.position()) {
        (Some(line), Some(col)) => format!("{file}:{line}:{col}: {message}"),
        (Some(line), None) => format!("{file}:{line}: {message}"),
        _ => format!("{file}: {message}"),
    }
}

/// The message of an error without Rhai's framing and position suffix.
pub fn message_of(err: &EvalAltResult) -> String {
    innermost(err, "").1
}

fn innermost(err: &EvalAltResult, file: &str) -> (String, String, rhai::Position) {
    let mut err = err;
    let mut file = file.to_string();
    let mut called = Vec::new();
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(name, source, inner, _) => {
                if !source.is_empty() {
                    file = source.clone();
                }
                if !name.starts_with("anon$") {
                    called.push(name.clone());
                }
                err = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, _) => {
                if !name.is_empty() {
                    file = name.clone();
                }
                err = inner;
            }
            _ => break,
        }
    }
    let mut message = match err {
        EvalAltResult::ErrorRuntime(value, _) if value.is_string() => value.to_string(),
        EvalAltResult::ErrorRuntime(value, _) if value.is::<NetError>() => value
            .read_lock::<NetError>()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        // `catch (e) { … throw e }` of one of Rhai's own errors, which the
        // catch made a map: its words, not the map.
        EvalAltResult::ErrorRuntime(value, _) if rethrown_words(value).is_some() => {
            rethrown_words(value).unwrap_or_default()
        }
        EvalAltResult::ErrorTerminated(..) => "interrupted".to_string(),
        EvalAltResult::ErrorFunctionNotFound(signature, _) => match EXPLAIN_NOT_FOUND.get() {
            Some(explain) => explain(signature),
            None => format!("no function {signature}"),
        },
        EvalAltResult::ErrorDataRace(name, _) => {
            let what = if name.is_empty() {
                "a variable".to_string()
            } else {
                format!("'{name}'")
            };
            format!(
                "{what} is in use by a call still in progress (on another thread, or a method on it that runs this closure); closures given to task and serve get their own copies of what they capture, and a value meant to change under several tasks goes in share(v) or a channel()"
            )
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            "stack overflow: functions nested more than 64 calls deep".to_string()
        }
        EvalAltResult::ErrorParsing(kind, _) => format!("syntax error: {kind}"),
        // `exit` that reached no shell to end (on a thread netsh did not
        // start for a script): say what happened rather than Rhai's
        // "NOT AN ERROR".
        EvalAltResult::Exit(value, _) => format!("exit({value}) cannot end the script from here"),
        other => strip_position(&other.to_string()),
    };
    if let Some(name) = called.last() {
        message.push_str(&format!(" (in function '{name}')"));
    }
    (file, message, err.position())
}

/// The words of one of Rhai's own errors that a script caught (Rhai hands
/// it over as a map: `#{error: "ErrorFunctionNotFound", message, …}`) and
/// threw again; `None` for any other value.
fn rethrown_words(value: &Dynamic) -> Option<String> {
    let map = value.read_lock::<rhai::Map>()?;
    let text = |key: &str| map.get(key).and_then(|v| v.clone().into_string().ok());
    let error = text("error").filter(|e| e.starts_with("Error"))?;
    let message = text("message")?;
    match (error.as_str(), text("function"), EXPLAIN_NOT_FOUND.get()) {
        ("ErrorFunctionNotFound", Some(signature), Some(explain)) => Some(explain(&signature)),
        _ => Some(message),
    }
}

/// Rhai's Display appends ` (line L, position P)`; we print our own.
fn strip_position(text: &str) -> String {
    match text.rfind(" (line ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text.to_string(),
    }
}
