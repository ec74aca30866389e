//! The rules docs/ARCHITECTURE.md states, kept by reading the source (as
//! rust-analyzer's `tidy.rs` does): the document names every folder of
//! `src/` and no path or item that is gone, every file says why it exists,
//! only the runtime bridge blocks on the runtime, and dependencies point
//! down.
//! Text checks, no build: cheap, and each failure says what to change.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What each top-level module of the library may import from the others
/// (ARCHITECTURE.md, "Code map"). A module missing here fails the test, so a
/// new one gets its place in the table and in the document.
const MAY_IMPORT: &[(&str, &[&str])] = &[
    ("error", &["registry"]),
    ("registry", &[]),
    ("limits", &[]),
    ("console", &[]),
    ("heap", &[]),
    ("permit", &["error"]),
    ("runtime", &["error", "permit"]),
    (
        "net",
        &[
            "error", "limits", "console", "runtime", "permit", "registry",
        ],
    ),
    (
        "shell",
        &[
            "error", "limits", "console", "runtime", "net", "permit", "registry",
        ],
    ),
    (
        "repl",
        &[
            "error", "limits", "console", "runtime", "net", "shell", "permit", "registry",
        ],
    ),
    (
        "cli",
        &[
            "error", "limits", "console", "runtime", "net", "shell", "repl", "permit", "registry",
        ],
    ),
];

/// Where `.block_on(` may appear outside `src/runtime/` (test code aside),
/// how many times, and why. An entry that no longer matches fails too, so
/// the list stays true.
/// (None today: a job's `stop()` waits through `runtime::jobs::wait_for_end`.)
const BLOCK_ON_EXCEPTIONS: &[(&str, usize, &str)] = &[];

/// Files under `dir` (recursively) whose name ends with `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(ext) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every folder under `dir`, `dir` included, as paths relative to the root.
fn folders(dir: &str) -> Vec<String> {
    let mut found = vec![dir.to_string()];
    let mut i = 0;
    while i < found.len() {
        let entries = std::fs::read_dir(Path::new(ROOT).join(&found[i])).expect("a folder");
        for entry in entries {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                found.push(relative(&path));
            }
        }
        i += 1;
    }
    found.sort();
    found
}

/// `path` relative to the repository root, with `/`.
fn relative(path: &Path) -> String {
    path.strip_prefix(ROOT)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn architecture_doc() -> String {
    read(&Path::new(ROOT).join("docs/ARCHITECTURE.md"))
}

/// The repository paths a text names: maximal runs of path characters that
/// start with one of the repository's top folders, without a trailing `.`
/// (the end of a sentence) or `/`.
fn named_paths(text: &str) -> BTreeSet<String> {
    const TOPS: &[&str] = &[
        "src/",
        "tests/",
        "docs/",
        "bench/",
        "examples/",
        "fuzz/",
        "scripts/",
        "plugins/",
    ];
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut paths = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| is_path_char(c)) {
        let run_len = rest[start..]
            .find(|c: char| !is_path_char(c))
            .unwrap_or(rest.len() - start);
        let run = &rest[start..start + run_len];
        if TOPS.iter().any(|top| run.starts_with(top)) {
            paths.insert(run.trim_end_matches(['.', '/']).to_string());
        }
        rest = &rest[start + run_len..];
    }
    paths
}

/// Every folder of `src/` (and of `src/net/`, at any depth) is named in
/// ARCHITECTURE.md, and every repository path it names exists.
#[test]
fn the_architecture_doc_names_every_folder_and_no_missing_path() {
    let named = named_paths(&architecture_doc());
    let unnamed: Vec<String> = folders("src")
        .into_iter()
        .filter(|folder| !named.contains(folder))
        .collect();
    let missing: Vec<&String> = named
        .iter()
        .filter(|path| !Path::new(ROOT).join(path).exists())
        .collect();
    assert!(
        unnamed.is_empty() && missing.is_empty(),
        "docs/ARCHITECTURE.md is out of date with the tree (a change that adds, \
         moves or removes a folder updates its code map):\n  folders it does not \
         name: {unnamed:?}\n  paths it names that do not exist: {missing:?}"
    );
}

/// Names that the document writes as paths (`Type::item`) but that come
/// from rhai and tokio, not from netsh.
const FOREIGN: &[&str] = &["EvalAltResult", "FnPtr", "Handle", "TcpStream"];

/// Every name netsh defines: items after `fn`, `mod`, `struct`, `enum`,
/// `trait`, `type`, `const`, `static`, and the files and folders of `src/`
/// and `tests/netsh/` (modules too).
fn defined_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in ["src", "tests/netsh"] {
        for path in files(&Path::new(ROOT).join(dir), ".rs") {
            let mut parent = path.parent();
            names.insert(
                path.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
            while let Some(folder) = parent.filter(|p| p.starts_with(Path::new(ROOT).join(dir))) {
                names.insert(
                    folder
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                );
                parent = folder.parent();
            }
            let text = read(&path);
            let words: Vec<&str> = text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .collect();
            for pair in words.windows(2) {
                if [
                    "fn", "mod", "struct", "enum", "trait", "type", "const", "static",
                ]
                .contains(&pair[0])
                {
                    names.insert(pair[1].to_string());
                }
            }
        }
    }
    names
}

/// The `a::b::c` paths written in backticks in `text`.
fn named_items(text: &str) -> BTreeSet<String> {
    // Every piece between two backticks, not only every other one: a span
    // like ```` ```rhai ```` would shift the count. Prose never matches.
    text.split('`')
        .filter(|span| {
            span.contains("::")
                && span.split("::").all(|s| {
                    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
        })
        .map(String::from)
        .collect()
}

/// Every netsh item ARCHITECTURE.md names as a path (`runtime::block_on`,
/// `Conn::own_reads`) still exists, each part of the path defined
/// somewhere in `src/` or `tests/netsh/`: renaming a function the bird's-eye
/// view follows updates the document.
#[test]
fn the_architecture_doc_names_only_real_items() {
    let defined = defined_names();
    let items = named_items(&architecture_doc());
    assert!(
        items.len() >= 30,
        "read only {} items: {items:?}",
        items.len()
    );
    let stale: Vec<String> = items
        .into_iter()
        .filter(|item| {
            let parts: Vec<&str> = item.split("::").filter(|p| *p != "crate").collect();
            !FOREIGN.contains(&parts[0]) && parts.iter().any(|p| !defined.contains(*p))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "docs/ARCHITECTURE.md names items that netsh no longer defines (rename them \
         there too): {stale:?}"
    );
}

/// Every Rust file of the library, the tests, the examples, the fuzz
/// targets and build.rs opens with a `//!` line saying why it exists.
#[test]
fn every_file_says_why_it_exists() {
    let root = Path::new(ROOT);
    let mut all = Vec::new();
    for dir in ["src", "tests", "examples", "fuzz/fuzz_targets"] {
        all.extend(files(&root.join(dir), ".rs"));
    }
    all.push(root.join("build.rs"));
    assert!(all.len() > 100, "found only {} Rust files", all.len());
    let silent: Vec<String> = all
        .iter()
        .filter(|path| !read(path).starts_with("//!"))
        .map(|path| relative(path))
        .collect();
    assert!(
        silent.is_empty(),
        "these files do not open with a `//!` saying why they exist: {silent:?}"
    );
}

/// A file's text without its test module: clippy's `items_after_test_module`
/// (CI denies warnings) keeps `#[cfg(test)] mod …` last in a file.
fn without_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|pair| {
            pair[0].trim() == "#[cfg(test)]" && pair[1].trim_start().starts_with("mod ")
        })
        .unwrap_or(lines.len());
    lines[..end]
        .iter()
        .filter(|line| !line.trim_start().starts_with("//"))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// `.block_on(` on a runtime appears only in `src/runtime/`, where it races
/// the thread's cancellation token, and in the few places listed with why.
#[test]
fn only_the_runtime_blocks_on_the_runtime() {
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for path in files(&Path::new(ROOT).join("src"), ".rs") {
        let name = relative(&path);
        if name.starts_with("src/runtime/") || name.ends_with("/tests.rs") {
            continue;
        }
        let count = without_tests(&read(&path)).matches(".block_on(").count();
        if count > 0 {
            found.insert(name, count);
        }
    }
    let allowed: BTreeMap<String, usize> = BLOCK_ON_EXCEPTIONS
        .iter()
        .map(|(path, count, _why)| (path.to_string(), *count))
        .collect();
    assert_eq!(
        found, allowed,
        "`.block_on(` outside src/runtime/ (left) differs from the listed exceptions \
         (right). A wait in a capability goes through runtime::block_on or \
         runtime::wait_fd, so Ctrl-C and stop() end it; a real exception is added \
         to BLOCK_ON_EXCEPTIONS with why, and a gone one removed"
    );
}

/// The top-level modules of the library (`crate::NAME`) that `text` refers
/// to: in paths, and in the first segment of each item of `use crate::{…}`.
fn crate_modules(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let after = &text[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Items at depth 0 of the braces, each up to its comma.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(after));
        }
    }
    found.retain(|name| !name.is_empty() && name != "self");
    found
}

/// Each module imports only the modules below it: `net` never `shell`,
/// `repl` or `cli`; `error`, `limits` and `console` nothing of netsh;
/// `runtime` only `error`.
#[test]
fn dependencies_point_down() {
    let allowed: BTreeMap<&str, &[&str]> = MAY_IMPORT.iter().copied().collect();
    let src = Path::new(ROOT).join("src");
    let mut wrong = Vec::new();
    for path in files(&src, ".rs") {
        let name = relative(&path);
        let module = name["src/".len()..]
            .split(['/', '.'])
            .next()
            .unwrap_or_default()
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "{name}: module `{module}` has no row in MAY_IMPORT (add it there and to docs/ARCHITECTURE.md's code map)"
            ));
            continue;
        };
        for used in crate_modules(&read(&path)) {
            if used != module && !may.contains(&used.as_str()) {
                wrong.push(format!("{name}: `{module}` must not use crate::{used}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies must point down (docs/ARCHITECTURE.md, \"Invariants\"):\n  {}",
        wrong.join("\n  ")
    );
}

/// The path and import readers find what they should, so the tests above
/// cannot pass by reading nothing.
#[test]
fn the_readers_see_paths_and_imports() {
    let paths = named_paths("see `src/net/tcp/conn/` and src/runtime/mod.rs. Or scripts/.");
    let expected: BTreeSet<String> = ["src/net/tcp/conn", "src/runtime/mod.rs", "scripts"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(paths, expected);
    let used = crate_modules(
        "use crate::{\n    console, runtime,\n    shell::{self, Shell, control},\n};\nlet x = crate::net::addr::parse(a);",
    );
    let expected: BTreeSet<String> = ["console", "runtime", "shell", "net"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(used, expected);
    let text = "fn a() { x.block_on(f) }\n// y.block_on(g)\n#[cfg(test)]\nmod tests {\n    rt.block_on(h)\n}";
    assert_eq!(without_tests(text).matches(".block_on(").count(), 1);
    let items = named_items("`runtime::block_on` and `a b::c`, `x`, `Conn::own_reads`.");
    let expected: BTreeSet<String> = ["Conn::own_reads", "runtime::block_on"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(items, expected);
    let defined = defined_names();
    for name in [
        "runtime",
        "block_on",
        "Conn",
        "own_reads",
        "net",
        "wake",
        "support",
    ] {
        assert!(defined.contains(name), "{name} is not seen as defined");
    }
}
