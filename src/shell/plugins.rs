//! Plugins: `.rhai` files exposed as namespaces named after the file.
//!
//! `plugins/greet.rhai` defining `fn hello(name)` becomes `greet::hello("x")`.
//! Where they come from, most specific first (the first file of a name wins):
//!
//! 1. the `plugins/` folder beside the script being run (and, for a script in
//!    a `scripts/` folder, the sibling `plugins/`): its author put them there;
//! 2. folders named with `--plugins DIR`, in order;
//! 3. folders in `NETSH_PLUGINS` (`:`-separated), in order;
//! 4. `<config dir>/netsh/plugins`;
//! 5. the plugins bundled in the binary.
//!
//! The working directory is never searched unless named: running netsh in a
//! folder someone else controls must not run their code.
//!
//! Loading is lazy where it can be. A script or `-e` loads only the plugins
//! its code names (`name::`), and those their code names in turn, so start-up
//! does not pay for every plugin; the REPL, where any line may name any
//! plugin, loads them all. A plugin that fails to compile or run is reported
//! with its path and line, and the others still load.
//!
//! These are Rhai libraries; the native capabilities live in `src/net/` and
//! are not called plugins anywhere.

use std::{
    collections::BTreeSet,
    ffi::OsStr,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use rhai::{Engine, Module, Scope};

use super::bundled::{self, Bundled};

/// Where a plugin's file is.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Embedded in the binary.
    Bundled(Bundled),
    /// A file on disk.
    File(PathBuf),
}

/// A plugin found on the search path, loaded on first need.
pub struct Plugin {
    pub name: String,
    pub origin: Origin,
    text: String,
    /// The file's `//!` comment lines, joined.
    pub description: String,
    /// What its `//! permissions:` line states (none stated: nothing),
    /// or why the line does not read.
    pub permissions: Result<crate::permit::Grant, String>,
    /// The plugin of the same name this one hides (a bundled one, or one in
    /// a less specific folder), as `plugins()` shows it.
    pub overrides: Option<String>,
    /// Compiled and its top-level code run, once.
    loaded: OnceLock<Result<Loaded, String>>,
}

impl Plugin {
    fn new(name: String, origin: Origin, text: String) -> Plugin {
        Plugin {
            description: description(&text),
            permissions: super::permissions::grant_of(&text),
            name,
            origin,
            text,
            overrides: None,
            loaded: OnceLock::new(),
        }
    }

    /// The file as messages show it: a path, or `netsh:plugins/echo.rhai`.
    pub fn source_name(&self) -> String {
        match &self.origin {
            Origin::Bundled(b) => b.source_name(),
            Origin::File(path) => path.display().to_string(),
        }
    }

    pub fn is_bundled(&self) -> bool {
        matches!(self.origin, Origin::Bundled(_))
    }

    /// Compiles the plugin and runs its top-level code (once); the module
    /// to register (each function through the plugin boundary), or
    /// `path:line:col: why` it could not load.
    pub fn load(&self, engine: &Engine) -> Result<Arc<Module>, String> {
        self.loaded
            .get_or_init(|| {
                let shown = self.source_name();
                let problem =
                    |e: &rhai::EvalAltResult| format!("plugin {}", super::describe(e, &shown));
                let mut ast = engine.compile(&self.text).map_err(|e| problem(&e.into()))?;
                ast.set_source(shown.as_str());
                // Held to its statement when permissions are enforced: its
                // top-level code runs in its context, and each function
                // enters it (`boundary`).
                let context = if crate::permit::enforced() {
                    let mut grant = self
                        .permissions
                        .clone()
                        .map_err(|e| format!("plugin {shown}: //! permissions: {e}"))?;
                    grant.resolve_names();
                    crate::permit::Context::plugin(Arc::new(crate::permit::Held {
                        plugin: self.name.clone(),
                        grant,
                    }))
                } else {
                    crate::permit::Context::default()
                };
                let raw = context
                    .enter(|| Module::eval_ast_as_new(Scope::new(), &ast, engine))
                    .map(Arc::new)
                    .map_err(|e| problem(&e))?;
                let functions = super::boundary::public_functions(&ast);
                let wrapped = super::boundary::wrap(raw.clone(), &functions, &self.name, &context)?;
                Ok(Loaded {
                    raw,
                    wrapped: Arc::new(wrapped),
                })
            })
            .as_ref()
            .map(|loaded| loaded.wrapped.clone())
            .map_err(Clone::clone)
    }

    /// The plugin's functions with their docs, for `help()`: the loaded
    /// module, or for one not loaded, its functions compiled without running
    /// anything. `None` if it does not compile.
    pub fn functions(&self) -> Option<Arc<Module>> {
        if let Some(loaded) = self.loaded.get() {
            return loaded.as_ref().ok().map(|l| l.raw.clone());
        }
        let engine = Engine::new_raw();
        let ast = engine.compile(&self.text).ok()?.clone_functions_only();
        Module::eval_ast_as_new(Scope::new(), &ast, &engine)
            .ok()
            .map(Arc::new)
    }
}

/// A plugin's module as its code made it (with the docs `help()` shows),
/// and as it is registered, each function through the boundary.
struct Loaded {
    raw: Arc<Module>,
    wrapped: Arc<Module>,
}

/// The plugins found on a search path, and the files that could not be plugins.
#[derive(Default)]
pub struct Catalog {
    pub plugins: Vec<Plugin>,
    /// One line per file skipped: `plugin PATH skipped: why`.
    pub problems: Vec<String>,
}

/// Which plugins to load now.
pub enum Load<'a> {
    /// Every one (the REPL).
    All,
    /// Those `code` names, and those their code names (a script, `-e`).
    UsedBy(&'a str),
}

/// The user's config folder for netsh (`~/.config/netsh` on Linux;
/// `$XDG_CONFIG_HOME/netsh` when that is set).
pub fn config_dir() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("netsh"))
}

/// The folders searched for plugins, most specific first, existing ones
/// only, without repeats. `script` is the file being run (none for `-e`,
/// the REPL and bundled scenarios), `named` the `--plugins` folders, `env`
/// the value of `NETSH_PLUGINS`.
pub fn search_path(script: Option<&Path>, named: &[PathBuf], env: Option<&OsStr>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(script_dir) = script.and_then(Path::parent) {
        let script_dir = if script_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            script_dir
        };
        dirs.push(script_dir.join("plugins"));
        // A project keeps `scripts/` and `plugins/` side by side (`.` is
        // that folder too when the script was named from inside it).
        let real_dir = script_dir.canonicalize().ok();
        let named_scripts = |d: &Path| d.file_name().is_some_and(|n| n == "scripts");
        if named_scripts(script_dir) || real_dir.as_deref().is_some_and(named_scripts) {
            dirs.push(script_dir.join("..").join("plugins"));
        }
    }
    dirs.extend(named.iter().cloned());
    // An empty entry means the working directory in PATH; here it means
    // nothing, or `NETSH_PLUGINS=a:` would quietly search the cwd.
    if let Some(env) = env {
        dirs.extend(std::env::split_paths(env).filter(|d| !d.as_os_str().is_empty()));
    }
    if let Some(config) = config_dir() {
        dirs.push(config.join("plugins"));
    }
    let mut seen = Vec::new();
    dirs.retain(|d| match d.canonicalize() {
        Ok(real) if real.is_dir() && !seen.contains(&real) => {
            seen.push(real);
            true
        }
        _ => false,
    });
    dirs
}

/// Finds every plugin in `dirs`, then the bundled ones; the first of a
/// name wins and says which one it hides. Reads the files, runs nothing.
pub fn discover(dirs: &[PathBuf]) -> Catalog {
    let mut catalog = Catalog::default();
    let mut found: Vec<(String, Origin, String)> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "rhai") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let Some(name) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if !is_identifier(&name) {
                catalog.problems.push(format!(
                    "plugin {} skipped: '{name}' is not a valid namespace name (letters, digits, _)",
                    path.display()
                ));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => found.push((name, Origin::File(path), text)),
                Err(e) => catalog
                    .problems
                    .push(format!("plugin {} skipped: {e}", path.display())),
            }
        }
    }
    for b in bundled::plugins() {
        found.push((b.name.to_string(), Origin::Bundled(b), b.text.to_string()));
    }
    for (name, origin, text) in found {
        let candidate = Plugin::new(name, origin, text);
        match catalog
            .plugins
            .iter_mut()
            .find(|p| p.name == candidate.name)
        {
            Some(winner) => {
                if winner.overrides.is_none() {
                    winner.overrides = Some(candidate.source_name());
                }
            }
            None => catalog.plugins.push(candidate),
        }
    }
    catalog.plugins.sort_by(|a, b| a.name.cmp(&b.name));
    catalog
}

/// Loads the plugins `which` asks for into `engine`, each after the ones
/// its code names (so its top-level code can call them); returns the
/// problems, one line each.
pub fn register(engine: &mut Engine, plugins: &[Plugin], which: Load<'_>) -> Vec<String> {
    let roots: Vec<usize> = match which {
        Load::All => (0..plugins.len()).collect(),
        Load::UsedBy(code) => indices(plugins, code),
    };
    let mut visited = vec![false; plugins.len()];
    let mut order = Vec::new();
    for root in roots {
        visit(plugins, root, &mut visited, &mut order);
    }
    let mut problems = Vec::new();
    for i in order {
        let plugin = &plugins[i];
        match plugin.load(engine) {
            Ok(module) => {
                engine.register_static_module(plugin.name.as_str(), module);
            }
            Err(problem) => problems.push(problem),
        }
    }
    problems
}

/// Depth first: what a plugin names comes before it in `order`.
fn visit(plugins: &[Plugin], i: usize, visited: &mut [bool], order: &mut Vec<usize>) {
    if visited[i] {
        return;
    }
    visited[i] = true;
    for dep in indices(plugins, &plugins[i].text) {
        visit(plugins, dep, visited, order);
    }
    order.push(i);
}

/// The plugins among `plugins` that `code` names.
fn indices(plugins: &[Plugin], code: &str) -> Vec<usize> {
    let used = used_namespaces(code);
    (0..plugins.len())
        .filter(|&i| used.contains(plugins[i].name.as_str()))
        .collect()
}

/// The namespace roots `code` names: `services` for `services::table()`.
/// A `name::` in a string or comment counts too, which only means loading
/// a plugin that was not needed; so does `eval("services::table()")`.
pub fn used_namespaces(code: &str) -> BTreeSet<&str> {
    let mut used = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("::") {
        let end = from + at;
        let start = code[..end]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
            .last()
            .map_or(end, |(i, _)| i);
        // `a::b::c` names plugin `a`, not `b`.
        if start < end && !code[..start].ends_with("::") {
            used.insert(&code[start..end]);
        }
        from = end + 2;
    }
    used
}

/// The plugin's `//!` lines: what `plugins()` and `help()` show for it.
fn description(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.starts_with("#!"))
        .map(str::trim)
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.trim_start_matches("//!").trim())
        // Its permissions are shown on their own (`plugins()`).
        .filter(|l| !l.starts_with("permissions:"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Namespace roots are found wherever `name::` is written, and nothing else.
    #[test]
    fn used_namespaces_finds_roots() {
        let code = "services::table(); let x = \"[::1]:9\"; echo::ask(a::b::c(), 1); é::x; ::y";
        let used: Vec<&str> = used_namespaces(code).into_iter().collect();
        assert_eq!(used, ["a", "echo", "services", "é"]);
        assert!(used_namespaces("1 + 1").is_empty());
    }

    /// `NETSH_PLUGINS` entries that are empty never become the working directory.
    #[test]
    fn empty_env_entries_are_not_the_working_directory() {
        let cwd_plugins = tempfile::tempdir().unwrap();
        let here = std::env::current_dir().unwrap();
        let dirs = search_path(None, &[], Some(OsStr::new(":::")));
        assert!(
            dirs.iter()
                .all(|d| d.canonicalize().ok() != Some(here.clone())),
            "{dirs:?}"
        );
        let named = search_path(
            None,
            &[cwd_plugins.path().to_path_buf()],
            Some(OsStr::new("")),
        );
        assert_eq!(
            named.first().map(PathBuf::as_path),
            Some(cwd_plugins.path())
        );
    }

    /// Bundled plugins are always found, and a user's file of the same name
    /// wins and says which one it hides.
    #[test]
    fn user_plugins_override_bundled_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("services.rhai"), "fn table() { 1 }").unwrap();
        let catalog = discover(&[dir.path().to_path_buf()]);
        let services = catalog
            .plugins
            .iter()
            .find(|p| p.name == "services")
            .unwrap();
        assert!(!services.is_bundled());
        assert_eq!(
            services.overrides.as_deref(),
            Some("netsh:plugins/services.rhai")
        );
        let echo = catalog.plugins.iter().find(|p| p.name == "echo").unwrap();
        assert!(echo.is_bundled() && echo.overrides.is_none());
    }
}
