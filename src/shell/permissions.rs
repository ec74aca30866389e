//! The Rhai side of permissions: `permissions()`, the `//! permissions:`
//! statement of a plugin or scenario, and the plugin boundary.
//!
//! The checks themselves are `crate::permit`'s, made by every capability.
//! What this file adds is what a plugin and a scenario state; *who* is
//! asking is the plugin boundary's (`super::boundary`): each function of a
//! plugin runs inside the plugin's [`Context`], so a `services::` helper is
//! held to what `services.rhai` states, whatever the script that calls it
//! holds.

use std::sync::Arc;

use rhai::{Dynamic, EvalAltResult, Map, Module};

use crate::permit::{self, Grant, List};

/// The text after `//! permissions:` in a file's opening comment, if any.
pub fn stated(text: &str) -> Option<&str> {
    text.lines()
        .skip_while(|l| l.starts_with("#!"))
        .map(str::trim)
        .take_while(|l| l.starts_with("//"))
        .filter_map(|l| l.strip_prefix("//!"))
        .find_map(|l| l.trim().strip_prefix("permissions:"))
        .map(str::trim)
}

/// A file's statement as a grant: none stated is nothing granted. Paths
/// are the starting folder's.
pub fn grant_of(text: &str) -> Result<Grant, String> {
    let base = std::env::current_dir().unwrap_or_else(|_| "/".into());
    match stated(text) {
        None => Ok(Grant::none()),
        Some(statement) => Grant::parse_statement(statement, &base),
    }
}

/// A grant as a script reads it: `#{enforced, net, read, write, env,
/// capture}`, each list `"all"` or an array of its items.
pub fn as_map(grant: &Grant, enforced: bool) -> Map {
    fn list<T>(l: &List<T>, show: impl Fn(&T) -> String) -> Dynamic {
        match l {
            List::All => "all".into(),
            List::Only(items) => items
                .iter()
                .map(|i| Dynamic::from(show(i)))
                .collect::<rhai::Array>()
                .into(),
        }
    }
    let mut m = Map::new();
    m.insert("enforced".into(), enforced.into());
    m.insert("net".into(), list(&grant.net, ToString::to_string));
    m.insert(
        "read".into(),
        list(&grant.read, |p| p.display().to_string()),
    );
    m.insert(
        "write".into(),
        list(&grant.write, |p| p.display().to_string()),
    );
    m.insert("env".into(), list(&grant.env, Clone::clone));
    m.insert("capture".into(), grant.capture.into());
    m.insert("text".into(), grant.to_string().into());
    m
}

/// What `permissions()` returns.
pub fn session_map() -> Map {
    as_map(&permit::session(), permit::enforced())
}

/// `permissions()` for Rhai.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, rhai::exported_manifest!(api), docs);
}

#[rhai::plugin::export_module(manifest)]
mod api {
    use rhai::Map;

    /// What this session may do now: `#{enforced, net, read, write, env,
    /// capture, text}`. Each of net, read, write and env is `"all"` or an
    /// array of what is granted; `enforced` is false when netsh runs
    /// without a permission flag (everything allowed, as always).
    ///
    /// ```rhai
    /// let p = permissions(); if p.enforced { print(p.text) }
    /// ```
    ///
    /// Fails when: never.
    pub fn permissions() -> Map {
        super::session_map()
    }
}

/// Rhai's own `import "x"` reads `x.rhai` from disk: under permissions it
/// is a read like any other, checked before the file is opened.
pub struct CheckedImports(rhai::module_resolvers::FileModuleResolver);

impl CheckedImports {
    pub fn new() -> CheckedImports {
        CheckedImports(rhai::module_resolvers::FileModuleResolver::new())
    }

    fn check(&self, source: Option<&str>, path: &str) -> Result<(), Box<EvalAltResult>> {
        // As Rhai's resolver reads it: beside the importing file.
        let beside = source.and_then(|s| std::path::Path::new(s).parent());
        let file = self.0.get_file_path(path, beside);
        permit::read(&file).map_err(crate::error::fail("import"))
    }
}

impl Default for CheckedImports {
    fn default() -> Self {
        CheckedImports::new()
    }
}

impl rhai::ModuleResolver for CheckedImports {
    fn resolve(
        &self,
        engine: &rhai::Engine,
        source: Option<&str>,
        path: &str,
        pos: rhai::Position,
    ) -> Result<Arc<Module>, Box<EvalAltResult>> {
        self.check(source, path)?;
        self.0.resolve(engine, source, path, pos)
    }
}
