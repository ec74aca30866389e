//! The scenario scripts and plugins shipped with netsh, embedded in the
//! binary, so an installed `netsh` has them in any folder: `netsh upload`,
//! `netsh --list`, `services::table()`.
//!
//! `build.rs` makes cargo rebuild when a file in `scripts/` or `plugins/`
//! changes.

use include_dir::{Dir, include_dir};

static SCRIPTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/scripts");
static PLUGINS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/plugins");

/// One embedded `.rhai` file.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    /// The file name without `.rhai`: `upload`, `services`.
    pub name: &'static str,
    /// The source folder it came from: `scripts` or `plugins`.
    pub folder: &'static str,
    pub text: &'static str,
}

impl Bundled {
    /// The name errors and `plugins()` show for it: `netsh:scripts/upload.rhai`
    /// (not a path on this machine, so it cannot be mistaken for one).
    pub fn source_name(&self) -> String {
        format!("netsh:{}/{}.rhai", self.folder, self.name)
    }
}

/// The bundled scenario scripts, sorted by name.
pub fn scripts() -> Vec<Bundled> {
    rhai_files(&SCRIPTS, "scripts")
}

/// The bundled scenario called `name` (`upload`), if there is one.
pub fn script(name: &str) -> Option<Bundled> {
    scripts().into_iter().find(|s| s.name == name)
}

/// The bundled plugins, sorted by name.
pub fn plugins() -> Vec<Bundled> {
    rhai_files(&PLUGINS, "plugins")
}

fn rhai_files(dir: &'static Dir<'static>, folder: &'static str) -> Vec<Bundled> {
    let mut files: Vec<Bundled> = dir
        .files()
        .filter_map(|file| {
            Some(Bundled {
                name: file.path().to_str()?.strip_suffix(".rhai")?,
                folder,
                text: file.contents_utf8()?,
            })
        })
        .collect();
    files.sort_by_key(|f| f.name);
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped `.rhai` file is embedded: none is skipped for not being
    /// UTF-8 or for a name the lookup cannot use.
    #[test]
    fn every_shipped_file_is_embedded() {
        for (folder, embedded) in [("scripts", scripts()), ("plugins", plugins())] {
            let on_disk =
                std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + folder)
                    .unwrap()
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "rhai"))
                    .count();
            assert_eq!(embedded.len(), on_disk, "{folder}: {embedded:?}");
        }
        let upload = script("upload").expect("upload is bundled");
        assert_eq!(upload.source_name(), "netsh:scripts/upload.rhai");
        assert!(upload.text.starts_with("//!"));
    }
}
