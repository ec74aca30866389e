//! `help()`, `help("name")` and `plugins()`, built from Rhai's own function
//! metadata: the `///` docs on the native functions and on plugin functions
//! are the help text, so the two cannot drift apart.

use rhai::plugin::*;
use rhai::{Array, Map};

use super::plugins::Plugin;
use super::session::Session;
use crate::net::CAPABILITIES;
use crate::registry::Docs;

/// The Rhai module with the shell's own functions.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
}

#[export_module(manifest)]
mod api {
    use crate::error::{Error, ScriptResult, fail};

    /// Lists every function, grouped by capability, with a one-line summary.
    ///
    /// ```rhai
    /// help()
    /// ```
    ///
    /// Fails when: never.
    pub fn help(ctx: NativeCallContext) {
        crate::shell::record::leave_out("help");
        if let Some(session) = Session::of(&ctx) {
            crate::console::line(&session.help().overview());
        }
    }

    /// Shows a function's signatures, description and example, or the
    /// functions of a capability or plugin.
    ///
    /// ```rhai
    /// help("resolve")
    /// ```
    ///
    /// Fails when: nothing has that name (similar names are suggested).
    #[rhai_fn(name = "help", return_raw)]
    pub fn help_topic(ctx: NativeCallContext, topic: &str) -> ScriptResult<()> {
        crate::shell::record::leave_out("help");
        let session = Session::of(&ctx)
            .ok_or_else(|| Error::invalid("not available in this engine"))
            .map_err(fail("help"))?;
        let text = session
            .help()
            .topic(topic)
            .map_err(Error::NotFound)
            .map_err(fail("help"))?;
        crate::console::line(&text);
        Ok(())
    }

    /// The plugins this shell can use: maps `#{name, path, description,
    /// functions, bundled, overrides, permissions}`. `path` is the file, or
    /// `netsh:plugins/NAME.rhai` for one bundled in netsh; `overrides` names
    /// the plugin of the same name this one hides, if any; `permissions`
    /// what its `//! permissions:` line states (`"none"` when it states
    /// nothing), which under a permission flag is the most it may do.
    ///
    /// ```rhai
    /// for p in plugins() { print(`${p.name}: ${p.description}`) }
    /// ```
    ///
    /// Fails when: never.
    pub fn plugins(ctx: NativeCallContext) -> Array {
        let Some(session) = Session::of(&ctx) else {
            return Array::new();
        };
        session
            .plugins()
            .iter()
            .map(|p| {
                let functions: Array = session
                    .help()
                    .group(&p.name)
                    .map(|g| g.entries.iter().map(|e| e.name.clone().into()).collect())
                    .unwrap_or_default();
                let mut m = Map::new();
                m.insert("name".into(), p.name.clone().into());
                m.insert("path".into(), p.source_name().into());
                m.insert("description".into(), p.description.clone().into());
                m.insert("functions".into(), functions.into());
                m.insert("bundled".into(), p.is_bundled().into());
                let permissions = match &p.permissions {
                    Ok(grant) => grant.to_string(),
                    Err(e) => format!("unreadable: {e}"),
                };
                m.insert("permissions".into(), permissions.into());
                m.insert(
                    "overrides".into(),
                    p.overrides.clone().map_or(Dynamic::UNIT, Dynamic::from),
                );
                m.into()
            })
            .collect()
    }
}

/// One callable function.
#[derive(Debug, Clone)]
pub struct Entry {
    /// As typed: `resolve`, or `greet::hello` for a plugin function.
    pub name: String,
    pub signature: String,
    /// The doc comment, without `///`.
    pub doc: String,
}

impl Entry {
    /// The first sentence of the doc, on one line.
    pub fn summary(&self) -> String {
        let paragraph: Vec<&str> = self
            .doc
            .lines()
            .map(str::trim)
            .take_while(|l| !l.is_empty())
            .collect();
        let paragraph = paragraph.join(" ");
        match paragraph.find(". ") {
            Some(i) => paragraph[..=i].to_string(),
            None => paragraph,
        }
    }
}

/// A capability or plugin and its functions.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub about: String,
    pub is_plugin: bool,
    /// Text `help("name")` shows before the functions, for topics that
    /// are more than a list (`help("errors")`).
    pub intro: Option<String>,
    pub entries: Vec<Entry>,
}

/// Everything `help` can show, built once on first use.
#[derive(Debug, Default)]
pub struct HelpIndex {
    pub groups: Vec<Group>,
}

/// One module of the functions these add, with their docs.
fn with_docs(register: &[fn(&mut Module, Docs)]) -> Module {
    let mut module = Module::new();
    for register_into in register {
        register_into(&mut module, Docs::Kept);
    }
    module
}

impl HelpIndex {
    pub fn build(plugins: &[Plugin]) -> HelpIndex {
        let mut groups = Vec::new();
        for capability in CAPABILITIES {
            let mut engine = Engine::new_raw();
            engine.register_global_module(capability.module(Docs::Kept).into());
            groups.push(Group {
                name: capability.name.to_string(),
                about: capability.about.to_string(),
                is_plugin: false,
                intro: None,
                entries: entries(&engine, None),
            });
        }
        let mut engine = Engine::new_raw();
        engine.register_global_module(with_docs(&[crate::error::register_into]).into());
        groups.push(Group {
            name: "errors".into(),
            about: "what a caught error holds: e.kind, e.op, e.message".into(),
            is_plugin: false,
            intro: Some(crate::error::help_text()),
            entries: entries(&engine, None),
        });
        let mut engine = Engine::new_raw();
        let shell = [
            register_into,
            super::record::register_into,
            super::permissions::register_into,
        ];
        engine.register_global_module(with_docs(&shell).into());
        groups.push(Group {
            name: "shell".into(),
            about: "help, plugins, permissions, and recording the REPL as a script".into(),
            is_plugin: false,
            intro: None,
            entries: entries(&engine, None),
        });
        let mut engine = Engine::new_raw();
        engine.register_global_module(with_docs(&[super::control::register_into]).into());
        let mut script = entries(&engine, None);
        script.insert(
            0,
            Entry {
                name: "args".into(),
                signature: "args: Array".into(),
                doc: super::control::ARGS_DOC.into(),
            },
        );
        groups.push(Group {
            name: "script".into(),
            about: "script arguments, exit status and checks".into(),
            is_plugin: false,
            intro: None,
            entries: script,
        });
        for plugin in plugins {
            let mut engine = Engine::new_raw();
            if let Some(module) = plugin.functions() {
                engine.register_static_module(plugin.name.as_str(), module);
            }
            groups.push(Group {
                name: plugin.name.clone(),
                about: if plugin.description.is_empty() {
                    format!("plugin from {}", plugin.source_name())
                } else {
                    plugin.description.clone()
                },
                is_plugin: true,
                intro: None,
                entries: entries(&engine, Some(&plugin.name)),
            });
        }
        HelpIndex { groups }
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// All functions by name (`resolve`, `greet::hello`).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.groups.iter().flat_map(|g| g.entries.iter())
    }

    /// The `help()` text.
    pub fn overview(&self) -> String {
        let mut out = String::from(concat!(
            "Every line is Rhai code. help(\"name\") shows a function in full.\n",
            "Addresses are taken exactly as written (\"host:port\", \"[v6]:port\"; nothing is trimmed).\n",
            "Timeouts are whole milliseconds; 0 means no limit. Errors: help(\"errors\").\n",
        ));
        for group in &self.groups {
            let kind = if group.is_plugin { "plugin " } else { "" };
            out.push_str(&format!("\n{kind}{} — {}\n", group.name, group.about));
            let mut seen: Vec<&str> = Vec::new();
            for entry in &group.entries {
                if seen.contains(&entry.name.as_str()) {
                    continue; // overloads share one line here
                }
                seen.push(&entry.name);
                out.push_str(&format!("  {:<22} {}\n", entry.name, entry.summary()));
            }
        }
        out.trim_end().to_string()
    }

    /// The `help("topic")` text: a function, a capability, or a plugin.
    pub fn topic(&self, topic: &str) -> Result<String, String> {
        let topic = topic.trim().trim_end_matches("()");
        if topic.is_empty() {
            return Ok(self.overview());
        }
        let matches: Vec<&Entry> = self.entries().filter(|e| e.name == topic).collect();
        if !matches.is_empty() {
            let mut out = String::new();
            for entry in &matches {
                out.push_str(&format!("{}\n", entry.signature));
            }
            // Overloads usually share most of their text; show each distinct doc once.
            let mut docs: Vec<&str> = Vec::new();
            for entry in &matches {
                if !docs.contains(&entry.doc.as_str()) {
                    docs.push(&entry.doc);
                }
            }
            for doc in docs {
                out.push('\n');
                out.push_str(&render_doc(doc));
            }
            return Ok(out.trim_end().to_string());
        }
        if let Some(group) = self.group(topic) {
            let mut out = format!("{} — {}\n", group.name, group.about);
            if let Some(intro) = &group.intro {
                out.push_str(&format!("\n{intro}\n\n"));
            }
            for entry in &group.entries {
                out.push_str(&format!("  {:<40} {}\n", entry.signature, entry.summary()));
            }
            return Ok(out.trim_end().to_string());
        }
        let suggestions: Vec<&str> = self
            .entries()
            .map(|e| e.name.as_str())
            .filter(|n| n.contains(topic) || topic.contains(*n) || edit_distance(n, topic) <= 2)
            .collect();
        let mut unique: Vec<&str> = Vec::new();
        for s in suggestions {
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        if unique.is_empty() {
            Err(format!(
                "no function or topic named '{topic}'; help() lists them all"
            ))
        } else {
            Err(format!(
                "no function or topic named '{topic}'; did you mean {}?",
                unique.join(", ")
            ))
        }
    }
}

/// Rhai's "Function not found: resolve (i64)" for a function that exists
/// with other arguments becomes "resolve: these arguments do not fit …;
/// expected resolve(host: string)".
pub fn explain_not_found(rhai_signature: &str) -> String {
    static NATIVE: std::sync::OnceLock<HelpIndex> = std::sync::OnceLock::new();
    let name = rhai_signature
        .split([' ', '('])
        .next()
        .unwrap_or(rhai_signature)
        .trim();
    let index = NATIVE.get_or_init(|| HelpIndex::build(&[]));
    let expected: Vec<&str> = index
        .entries()
        .filter(|e| e.name == name)
        .map(|e| e.signature.as_str())
        .collect();
    let given = tidy_signature(rhai_signature[name.len()..].trim());
    if expected.is_empty() {
        // Keep the name as written (`greet::hello`); only the types are tidied.
        return format!("no function {name}{given} (help() lists what exists)");
    }
    format!(
        "{name}: wrong arguments {given}; expected {}",
        expected.join(" or ")
    )
}

/// The functions of the one module registered in `engine`, from Rhai's metadata.
fn entries(engine: &Engine, namespace: Option<&str>) -> Vec<Entry> {
    let Ok(json) = engine.gen_fn_metadata_to_json(false) else {
        return Vec::new();
    };
    let Ok(meta) = serde_json::from_str::<serde_json::Value>(&json) else {
        return Vec::new();
    };
    let functions = match namespace {
        Some(ns) => &meta["modules"][ns]["functions"],
        None => &meta["functions"],
    };
    let Some(functions) = functions.as_array() else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = functions
        .iter()
        .filter(|f| f["access"] != "private" && f["isAnonymous"] != true)
        .filter_map(|f| {
            let bare = f["name"].as_str()?;
            // Printing hooks are how values show, not functions people call.
            if bare.starts_with("anon$") || bare == "to_string" || bare == "to_debug" {
                return None;
            }
            let signature = tidy_signature(f["signature"].as_str().unwrap_or(bare));
            // Property accessors read as what they are: `.port` of a Listener.
            if let Some(property) = bare
                .strip_prefix("get$")
                .or_else(|| bare.strip_prefix("set$"))
            {
                let owner = signature
                    .split_once('(')
                    .and_then(|(_, rest)| rest.split([',', ')']).next())
                    .and_then(|p| p.rsplit(": ").next())
                    .unwrap_or("value")
                    .to_string();
                let setter = bare.starts_with("set$");
                return Some(Entry {
                    name: format!(".{property}"),
                    signature: if setter {
                        format!("{owner}.{property} = value")
                    } else {
                        format!(
                            "{owner}.{property}{}",
                            signature.split_once(')').map_or("", |(_, r)| r)
                        )
                    },
                    doc: f["docComments"]
                        .as_array()
                        .map(|lines| strip_comment_markers(lines))
                        .unwrap_or_default(),
                });
            }
            let name = match namespace {
                Some(ns) => format!("{ns}::{bare}"),
                None => bare.to_string(),
            };
            let signature = match namespace {
                Some(ns) => format!("{ns}::{signature}"),
                None => signature,
            };
            let doc = f["docComments"]
                .as_array()
                .map(|lines| strip_comment_markers(lines))
                .unwrap_or_default();
            Some(Entry {
                name,
                signature,
                doc,
            })
        })
        .collect();
    // Catch-all overloads (`any` parameters, kept for their error messages)
    // sort after the real ones, so summaries and hints describe the real call;
    // then by signature, so the overload `help()` sums up is the same every
    // run (the metadata comes in hash-map order).
    out.sort_by(|a, b| {
        (&a.name, a.signature.contains(": any"), &a.signature).cmp(&(
            &b.name,
            b.signature.contains(": any"),
            &b.signature,
        ))
    });
    out
}

/// `///` and `/** */` markers off each line of the doc comments.
fn strip_comment_markers(blocks: &[serde_json::Value]) -> String {
    let mut lines = Vec::new();
    for block in blocks.iter().filter_map(|b| b.as_str()) {
        for line in block.lines() {
            let line = line.trim();
            let line = line
                .strip_prefix("///")
                .or_else(|| line.strip_prefix("/**"))
                .unwrap_or(line);
            let line = line.strip_suffix("*/").unwrap_or(line);
            lines.push(line.strip_prefix(' ').unwrap_or(line).to_string());
        }
    }
    lines.join("\n").trim().to_string()
}

/// Rust type names as a Rhai user knows them.
fn tidy_signature(signature: &str) -> String {
    let mut s = signature.to_string();
    // `-> ScriptResult<T>` is how fallible functions are written; users see `T`.
    if let Some(i) = s.find("ScriptResult<") {
        let inner_start = i + "ScriptResult<".len();
        if let Some(end) = s.rfind('>') {
            s = format!("{}{}", &s[..i], &s[inner_start..end]);
        }
    }
    let mut s = s
        .replace("&str | ImmutableString | String", "string")
        .replace("&mut ", "")
        .replace("&str", "string")
        .replace("ImmutableString", "string")
        .replace("NativeCallContext, ", "")
        .replace("i64", "int")
        .replace("f64", "float")
        .replace("Dynamic", "any")
        .replace("-> String", "-> string")
        .replace(" -> ()", "");
    // Strip Rust module paths from custom type names.
    while let Some(i) = s.find("::") {
        let start = s[..i]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |p| p + 1);
        s.replace_range(start..i + 2, "");
    }
    s
}

/// A doc comment for the terminal: code fences become an indented example.
fn render_doc(doc: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            if !in_code {
                out.push_str("Example:\n");
            }
            in_code = !in_code;
            continue;
        }
        if in_code {
            out.push_str("    ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            prev = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function of every native group — the capabilities and the
    /// shell's own (`help`, `script`) — has a doc with an example that is
    /// valid Rhai and a "Fails when:" line, since `help()` shows exactly
    /// those and users copy the examples.
    #[test]
    fn every_function_documents_an_example_and_when_it_fails() {
        let index = HelpIndex::build(&[]);
        let engine = Engine::new();
        let mut problems = Vec::new();
        for group in index.groups.iter().filter(|g| !g.is_plugin) {
            assert!(!group.entries.is_empty(), "{} has no functions", group.name);
            for entry in &group.entries {
                if !entry.doc.contains("Fails when:") {
                    problems.push(format!("{}: no 'Fails when:'", entry.signature));
                }
                let Some(start) = entry.doc.find("```rhai") else {
                    problems.push(format!("{}: no example", entry.signature));
                    continue;
                };
                let code = &entry.doc[start + "```rhai".len()..];
                let code = &code[..code.find("```").unwrap_or(code.len())];
                if let Err(e) = engine.compile(code) {
                    problems.push(format!("{}: example does not parse: {e}", entry.signature));
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(index.entries().any(|e| e.name == "resolve"));
    }

    /// The engine registers each capability without its docs
    /// ([`crate::registry`]); `help()` with them. Both must hold the same
    /// functions under the same hashes, or help would describe functions a
    /// script cannot call (or miss ones it can).
    #[test]
    fn the_engine_holds_the_functions_help_describes() {
        use std::collections::BTreeSet;
        // (name, full hash, whether it has a doc) of every function.
        let functions = |docs: Docs| -> BTreeSet<(String, u64, bool)> {
            let mut set = BTreeSet::new();
            for capability in CAPABILITIES {
                let mut engine = Engine::new_raw();
                engine.register_global_module(capability.module(docs).into());
                let json = engine.gen_fn_metadata_to_json(false).expect("metadata");
                let meta: serde_json::Value = serde_json::from_str(&json).expect("json");
                for f in meta["functions"].as_array().expect("functions") {
                    set.insert((
                        f["name"].as_str().unwrap_or_default().to_string(),
                        f["fullHash"].as_u64().expect("a hash"),
                        f.get("docComments").is_some(),
                    ));
                }
            }
            set
        };
        let kept = functions(Docs::Kept);
        let left = functions(Docs::Left);
        assert!(kept.len() > 200, "only {} functions", kept.len());
        assert!(kept.iter().any(|f| f.2), "help's modules keep their docs");
        assert!(
            !left.iter().any(|f| f.2),
            "the engine's modules hold no docs"
        );
        let strip = |set: BTreeSet<(String, u64, bool)>| -> BTreeSet<(String, u64)> {
            set.into_iter()
                .map(|(name, hash, _)| (name, hash))
                .collect()
        };
        assert_eq!(strip(left), strip(kept));

        // And a function registered without its docs is called as before.
        let mut engine = Engine::new();
        let mut functions = Module::new();
        crate::net::register_into(&mut functions);
        engine.register_global_module(functions.into());
        let port: i64 = engine.eval("port_info(443).port").expect("port_info runs");
        assert_eq!(port, 443);
    }

    #[test]
    fn signatures_read_like_rhai() {
        assert_eq!(
            tidy_signature("resolve(host: &str) -> ScriptResult<Array>"),
            "resolve(host: string) -> Array"
        );
        assert_eq!(
            tidy_signature("accept(l: &mut netsh::net::tcp::Listener) -> netsh::net::tcp::Conn"),
            "accept(l: Listener) -> Conn"
        );
    }

    /// Overloads come in signature order, so `help()` sums up the same
    /// one every run (the metadata is in hash-map order, which differs
    /// from run to run).
    #[test]
    fn overloads_come_in_a_fixed_order() {
        let index = HelpIndex::build(&[]);
        let mut overloaded = 0;
        for group in &index.groups {
            for pair in group.entries.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if a.name == b.name
                    && a.signature.contains(": any") == b.signature.contains(": any")
                {
                    overloaded += 1;
                    assert!(
                        a.signature <= b.signature,
                        "{} before {}",
                        a.signature,
                        b.signature
                    );
                }
            }
        }
        assert!(overloaded > 10, "only {overloaded} overloads seen");
    }

    #[test]
    fn unknown_topics_suggest_close_names() {
        let index = HelpIndex::build(&[]);
        let err = index.topic("resolv").unwrap_err();
        assert!(err.contains("did you mean resolve"), "{err}");
    }
}
