//! Rebuilds netsh when a bundled scenario or plugin changes. `include_dir!`
//! embeds `scripts/` and `plugins/` in the binary, but on stable Rust it
//! cannot tell cargo which files it read; these lines do (cargo watches
//! every file under a directory named here).

fn main() {
    println!("cargo:rerun-if-changed=scripts");
    println!("cargo:rerun-if-changed=plugins");
}
