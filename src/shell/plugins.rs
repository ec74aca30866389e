//! User plugins: `.rhai` files loaded as namespaces named after the file.
//!
//! `plugins/greet.rhai` defining `fn hello(name)` becomes `greet::hello("x")`.
//! Plugins are looked up next to the script being run (and, for a script in
//! a `scripts/` folder, in the sibling `plugins/`), in the working
//! directory, and in `<config dir>/netsh/plugins`; the first file of a name
//! wins. A plugin that fails to compile or run is reported with its path and
//! line, and the others still load.
//!
//! These are Rhai libraries written by users; the native capabilities live in
//! `src/net/` and are not called plugins anywhere.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rhai::{Engine, Module, Scope};

/// A loaded plugin.
#[derive(Clone)]
pub struct Plugin {
    pub name: String,
    pub path: PathBuf,
    /// The file's `//!` comment lines, joined.
    pub description: String,
    pub module: Arc<Module>,
}

/// What [`load_all`] produced.
#[derive(Default)]
pub struct Loaded {
    pub plugins: Vec<Plugin>,
    /// One line per plugin that could not be loaded: `path:line:col: why`.
    pub problems: Vec<String>,
}

/// The user's config folder for netsh (`~/.config/netsh` on Linux;
/// `$XDG_CONFIG_HOME/netsh` when that is set).
pub fn config_dir() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("netsh"))
}

/// The folders searched for plugins, most specific first, without repeats.
pub fn search_path(script: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(script_dir) = script.and_then(Path::parent) {
        let script_dir = if script_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            script_dir
        };
        dirs.push(script_dir.join("plugins"));
        // A project keeps `scripts/` and `plugins/` side by side.
        if script_dir.file_name().is_some_and(|n| n == "scripts") {
            dirs.push(script_dir.join("..").join("plugins"));
        }
    }
    dirs.push(PathBuf::from("plugins"));
    if let Some(config) = config_dir() {
        dirs.push(config.join("plugins"));
    }
    let mut seen = Vec::new();
    dirs.retain(|d| match d.canonicalize() {
        Ok(real) if !seen.contains(&real) => {
            seen.push(real);
            true
        }
        _ => false,
    });
    dirs
}

/// Loads every `*.rhai` in `dirs` and registers each as a static module.
pub fn load_all(engine: &mut Engine, dirs: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
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
                loaded.problems.push(format!(
                    "plugin {} skipped: '{name}' is not a valid namespace name (letters, digits, _)",
                    path.display()
                ));
                continue;
            }
            if loaded.plugins.iter().any(|p| p.name == name) {
                continue; // an earlier folder's plugin of this name wins
            }
            match load_one(engine, &path) {
                Ok(module) => {
                    let module = Arc::new(module);
                    engine.register_static_module(name.as_str(), module.clone());
                    loaded.plugins.push(Plugin {
                        description: description(&path),
                        name,
                        path,
                        module,
                    });
                }
                Err(problem) => loaded.problems.push(problem),
            }
        }
    }
    loaded
}

fn load_one(engine: &Engine, path: &Path) -> Result<Module, String> {
    let shown = path.display().to_string();
    let mut ast = engine
        .compile_file(path.to_path_buf())
        .map_err(|e| format!("plugin {}", super::describe(&e, &shown)))?;
    ast.set_source(shown.as_str());
    Module::eval_ast_as_new(Scope::new(), &ast, engine)
        .map_err(|e| format!("plugin {}", super::describe(&e, &shown)))
}

/// The plugin's `//!` lines: what `plugins()` and `help()` show for it.
fn description(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .skip_while(|l| l.starts_with("#!"))
        .map(str::trim)
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.trim_start_matches("//!").trim())
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
