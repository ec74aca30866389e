//! Rebuilds netsh when a bundled scenario or plugin changes, and packs the
//! binary's relocations.
//!
//! `include_dir!` embeds `scripts/` and `plugins/` in the binary, but on
//! stable Rust it cannot tell cargo which files it read; the
//! `rerun-if-changed` lines do (cargo watches every file under a directory
//! named here).
//!
//! A position-independent netsh carries about 29,000 relative relocations
//! (vtables, string tables, Rhai's function tables): 700 KB of `.rela.dyn`
//! that the dynamic loader reads and applies at every start, a sixth of the
//! instructions of `netsh -e 1` and over a hundred page faults. With
//! `-z pack-relative-relocs` (DT_RELR: glibc 2.36, binutils 2.38, lld 15)
//! the same relocations take a few kilobytes, only for the binary itself.

fn main() {
    println!("cargo:rerun-if-changed=scripts");
    println!("cargo:rerun-if-changed=plugins");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
