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
//!
//! Rust's standard library asks for the unwinder as `-lgcc_s`, a shared
//! library loaded at every start (0.1 ms of a 2 ms `netsh -e 1`: one more
//! file to open, map and relocate). GCC ships the same unwinder as a static
//! archive, `libgcc_eh.a`, which is what a `crt-static` build links. A
//! folder holding it under the name `libgcc_s.a`, searched first, makes the
//! linker take it instead: panics unwind and backtraces print as before.
//! Where the archive cannot be found, nothing changes.

fn main() {
    println!("cargo:rerun-if-changed=scripts");
    println!("cargo:rerun-if-changed=plugins");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        link_the_unwinder_in();
    }
}

/// Puts `libgcc_eh.a` on the link path as `libgcc_s.a` (see above).
fn link_the_unwinder_in() {
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if features.split(',').any(|f| f == "crt-static") {
        return; // a static build links libgcc_eh already
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(out) = std::process::Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let archive = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Not found, the compiler prints the bare name back.
    if !out.status.success() || !archive.is_absolute() || !archive.is_file() {
        return;
    }
    let Some(dir) =
        std::env::var_os("OUT_DIR").map(|d| std::path::PathBuf::from(d).join("unwinder"))
    else {
        return;
    };
    let shim = dir.join("libgcc_s.a");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::remove_file(&shim);
    if std::fs::copy(&archive, &shim).is_ok() {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
}
