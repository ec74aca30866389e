//! A caught error as a script reads it: `e.kind`, `e.op`, `e.message`, and
//! every string question (`e.contains(…)`, `e == "op: message"`) answered
//! as its printed text would answer it; and `help("errors")`. Apart from the
//! error type because it is Rhai API, one function per overload.

use rhai::plugin::*;

use super::{Kind, NetError};

/// The Rhai functions of [`NetError`]: what a script reads off a caught error.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<NetError>("NetError");
}

/// `help("errors")`: what a caught error holds, and every kind.
pub fn help_text() -> String {
    let mut out = String::from(
        "Every netsh function fails by throwing a NetError that a script can catch\n\
         and branch on without matching text:\n\n\
         \x20   try { connect(\"127.0.0.1:9\") }\n\
         \x20   catch (e) { if e.kind == \"refused\" { print(`nobody there: ${e.message}`) } else { throw e } }\n\n\
         e.kind is one word of the list below, e.op the function that failed, e.message\n\
         the cause; \"\" + e and print(e) give \"op: message\". A NetError also behaves like\n\
         that text: e == \"op: message\", e.contains(\"range\"), \"range\" in e, starts_with,\n\
         ends_with, index_of, split, sub_string, to_upper, to_lower, len; to_json(e) gives\n\
         {\"op\", \"kind\", \"message\"}. type_of(e) is \"NetError\", so switch (which compares\n\
         values of one type) needs the text: switch \"\" + e { … } or switch e.kind { … }.\n\
         A plain string thrown with throw \"…\" reads as kind \"invalid\", op \"\", message\n\
         the string. Errors of Rhai itself (a function that does not exist, a wrong type)\n\
         are caught as maps with a message; their e.kind is (), and throw e rethrows them\n\
         with their words.\n\nKinds:\n",
    );
    for kind in Kind::ALL {
        out.push_str(&format!("  {:<12} {}\n", kind.as_str(), kind.meaning()));
    }
    out.trim_end().to_string()
}

#[export_module(manifest)]
mod api {
    use super::NetError;

    /// One word saying what kind of failure this is: `refused`, `timeout`,
    /// `not_found`, `invalid`, `closed`, `reset`, `exists`, `too_big`,
    /// `permission`, `interrupted`, `protocol` or `io` (`help("errors")`).
    ///
    /// ```rhai
    /// try { connect("127.0.0.1:9") } catch (e) { if e.kind == "refused" { print("closed port") } }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "kind", pure)]
    pub fn kind(e: &mut NetError) -> String {
        e.kind.as_str().to_string()
    }

    /// The function that failed, like `"connect"`.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { print(e.op) }   // listen
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "op", pure)]
    pub fn op(e: &mut NetError) -> String {
        e.op.clone()
    }

    /// What went wrong, without the function's name.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { print(e.message) }   // port 70000 is out of range (0–65535)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "message", pure)]
    pub fn message(e: &mut NetError) -> String {
        e.message.clone()
    }

    /// How an error prints: `op: message`, as netsh has always shown it.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { print(e) }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn error_to_string(e: &mut NetError) -> String {
        e.to_string()
    }

    /// Whether a caught error prints as `text`, as when errors were strings
    /// (also `text == e`, `!=`).
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e == "listen: port 70000 is out of range (0–65535)" }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "==", pure)]
    pub fn eq_text(e: &mut NetError, text: &str) -> bool {
        e.to_string() == text
    }

    /// Whether a caught error does not print as `text`.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e != "" }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "!=", pure)]
    pub fn ne_text(e: &mut NetError, text: &str) -> bool {
        e.to_string() != text
    }

    /// Whether `text` is what a caught error prints as.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { "listen: port 70000 is out of range (0–65535)" == e }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "==")]
    pub fn text_eq(text: &str, e: NetError) -> bool {
        e.to_string() == text
    }

    /// Whether `text` is not what a caught error prints as.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { "" != e }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "!=")]
    pub fn text_ne(text: &str, e: NetError) -> bool {
        e.to_string() != text
    }

    /// Whether two caught errors are the same failure (function, kind, words).
    ///
    /// ```rhai
    /// let a = (); let b = ();
    /// try { listen(70000) } catch (e) { a = e }
    /// try { listen(70000) } catch (e) { b = e }
    /// a == b
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "==", pure)]
    pub fn eq_error(e: &mut NetError, other: NetError) -> bool {
        *e == other
    }

    /// Whether two caught errors differ.
    ///
    /// ```rhai
    /// let a = (); try { listen(70000) } catch (e) { a = e }
    /// try { listen(-1) } catch (e) { a != e }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "!=", pure)]
    pub fn ne_error(e: &mut NetError, other: NetError) -> bool {
        *e != other
    }

    /// Whether the error's printed text contains `part` (a string or a
    /// character); also `part in e`.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { if e.contains("range") { print("bad port") } }
    /// ```
    ///
    /// Fails when: `part` is neither a string nor a character.
    #[rhai_fn(name = "contains", pure, return_raw)]
    pub fn contains(ctx: NativeCallContext, e: &mut NetError, part: Dynamic) -> RhaiResult {
        super::on_text(&ctx, "contains", e, [part])
    }

    /// Whether the error's printed text starts with `part`.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.starts_with("listen:") }
    /// ```
    ///
    /// Fails when: `part` is neither a string nor a character.
    #[rhai_fn(name = "starts_with", pure, return_raw)]
    pub fn starts_with(ctx: NativeCallContext, e: &mut NetError, part: Dynamic) -> RhaiResult {
        super::on_text(&ctx, "starts_with", e, [part])
    }

    /// Whether the error's printed text ends with `part`.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.ends_with(")") }
    /// ```
    ///
    /// Fails when: `part` is neither a string nor a character.
    #[rhai_fn(name = "ends_with", pure, return_raw)]
    pub fn ends_with(ctx: NativeCallContext, e: &mut NetError, part: Dynamic) -> RhaiResult {
        super::on_text(&ctx, "ends_with", e, [part])
    }

    /// Where `part` first occurs in the error's printed text (in
    /// characters), or -1.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.index_of("70000") }
    /// ```
    ///
    /// Fails when: `part` is neither a string nor a character.
    #[rhai_fn(name = "index_of", pure, return_raw)]
    pub fn index_of(ctx: NativeCallContext, e: &mut NetError, part: Dynamic) -> RhaiResult {
        super::on_text(&ctx, "index_of", e, [part])
    }

    /// Where `part` first occurs in the error's printed text from character
    /// `start` on, or -1.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.index_of("0", 10) }
    /// ```
    ///
    /// Fails when: `part` is neither a string nor a character, or `start`
    /// is not a number.
    #[rhai_fn(name = "index_of", pure, return_raw)]
    pub fn index_of_from(
        ctx: NativeCallContext,
        e: &mut NetError,
        part: Dynamic,
        start: Dynamic,
    ) -> RhaiResult {
        super::on_text(&ctx, "index_of", e, [part, start])
    }

    /// The error's printed text split at white space, as an array.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.split()[0] }   // "listen:"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "split", pure, return_raw)]
    pub fn split(ctx: NativeCallContext, e: &mut NetError) -> RhaiResult {
        super::on_text(&ctx, "split", e, [])
    }

    /// The error's printed text split at `delimiter` (a string or a
    /// character), as an array.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.split(": ")[1] }
    /// ```
    ///
    /// Fails when: `delimiter` is neither a string nor a character.
    #[rhai_fn(name = "split", pure, return_raw)]
    pub fn split_at(ctx: NativeCallContext, e: &mut NetError, delimiter: Dynamic) -> RhaiResult {
        super::on_text(&ctx, "split", e, [delimiter])
    }

    /// The error's printed text split at `delimiter` into at most
    /// `segments` parts.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.split(" ", 2) }
    /// ```
    ///
    /// Fails when: `delimiter` is neither a string nor a character, or
    /// `segments` is not a number.
    #[rhai_fn(name = "split", pure, return_raw)]
    pub fn splitn(
        ctx: NativeCallContext,
        e: &mut NetError,
        delimiter: Dynamic,
        segments: Dynamic,
    ) -> RhaiResult {
        super::on_text(&ctx, "split", e, [delimiter, segments])
    }

    /// Part of the error's printed text from character `start` to the end.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.sub_string(8) }
    /// ```
    ///
    /// Fails when: `start` is not a number or a range.
    #[rhai_fn(name = "sub_string", pure, return_raw)]
    pub fn sub_string(ctx: NativeCallContext, e: &mut NetError, start: Dynamic) -> RhaiResult {
        super::on_text(&ctx, "sub_string", e, [start])
    }

    /// `len` characters of the error's printed text from character `start`.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.sub_string(0, 6) }   // "listen"
    /// ```
    ///
    /// Fails when: `start` or `len` is not a number.
    #[rhai_fn(name = "sub_string", pure, return_raw)]
    pub fn sub_string_len(
        ctx: NativeCallContext,
        e: &mut NetError,
        start: Dynamic,
        len: Dynamic,
    ) -> RhaiResult {
        super::on_text(&ctx, "sub_string", e, [start, len])
    }

    /// The error's printed text in upper case.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.to_upper() }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "to_upper", pure, return_raw)]
    pub fn to_upper(ctx: NativeCallContext, e: &mut NetError) -> RhaiResult {
        super::on_text(&ctx, "to_upper", e, [])
    }

    /// The error's printed text in lower case.
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.to_lower() }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "to_lower", pure, return_raw)]
    pub fn to_lower(ctx: NativeCallContext, e: &mut NetError) -> RhaiResult {
        super::on_text(&ctx, "to_lower", e, [])
    }

    /// How many characters the error's printed text has (also `e.len`).
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.len() }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "len", get = "len", pure)]
    pub fn len(e: &mut NetError) -> i64 {
        e.to_string().chars().count() as i64
    }

    /// Whether the error's printed text is empty (never, for netsh's own).
    ///
    /// ```rhai
    /// try { listen(70000) } catch (e) { e.is_empty() }
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "is_empty", get = "is_empty", pure)]
    pub fn is_empty(e: &mut NetError) -> bool {
        e.to_string().is_empty()
    }

    /// A plain string thrown with `throw "…"` read as a caught error:
    /// its kind is `"invalid"` (a script said something was wrong).
    ///
    /// ```rhai
    /// try { throw "no config" } catch (e) { e.kind }   // "invalid"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "kind", pure)]
    pub fn text_kind(_text: &mut ImmutableString) -> String {
        super::Kind::Invalid.as_str().to_string()
    }

    /// A plain string thrown with `throw "…"` read as a caught error: no
    /// netsh function failed, so its op is `""`.
    ///
    /// ```rhai
    /// try { throw "no config" } catch (e) { e.op }   // ""
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "op", pure)]
    pub fn text_op(_text: &mut ImmutableString) -> String {
        String::new()
    }

    /// A plain string thrown with `throw "…"` read as a caught error: its
    /// message is the string itself.
    ///
    /// ```rhai
    /// try { throw "no config" } catch (e) { e.message }   // "no config"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "message", pure)]
    pub fn text_message(text: &mut ImmutableString) -> ImmutableString {
        text.clone()
    }
}

/// Runs Rhai's own string function `name` on a caught error's printed text,
/// so the error answers every string question exactly as its text would.
fn on_text<const N: usize>(
    ctx: &NativeCallContext,
    name: &str,
    e: &NetError,
    mut args: [Dynamic; N],
) -> rhai::plugin::RhaiResult {
    let mut text = Dynamic::from(e.to_string());
    let mut all: Vec<&mut Dynamic> = Vec::with_capacity(N + 1);
    all.push(&mut text);
    all.extend(args.iter_mut());
    ctx.call_native_fn_raw(name, false, &mut all)
}
