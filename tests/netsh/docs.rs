//! The documentation keeps up with the code: every Rhai function netsh
//! registers appears in README.md's function reference.

use netsh::shell::help::HelpIndex;

/// Each function and property name is mentioned in the README reference.
#[test]
fn readme_mentions_every_function() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let reference = readme
        .split("## Function reference")
        .nth(1)
        .expect("README has a '## Function reference' section");
    let index = HelpIndex::build(&[]);
    let mut missing: Vec<String> = index
        .entries()
        .map(|e| e.name.clone())
        .filter(|name| {
            // As written in the reference: `name(…` or `.name` inside backticks,
            // so that `now(` cannot hide inside `known(`.
            let call = format!("`{name}(");
            let in_list = format!(", {name}(");
            let method = format!("`.{name}(");
            let property = format!("`{name}`");
            ![call, in_list, method, property]
                .iter()
                .any(|pattern| reference.contains(pattern.as_str()))
        })
        .collect();
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "README's function reference does not mention: {missing:?}"
    );
}
