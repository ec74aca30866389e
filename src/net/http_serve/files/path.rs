//! From a request's path to a file inside the served folder, or the reason
//! it is refused. This is the one place that decides what a client may
//! reach: every read and every upload goes through [`resolve`].
//!
//! The path is read once, strictly: percent escapes are decoded exactly
//! once, a `..` segment (however spelled), a NUL or control byte, a
//! backslash or an overlong path is refused rather than repaired, and the
//! result is then checked on where it really leads (`canonicalize`), so a
//! symbolic link out of the folder is refused unless `follow_links`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The longest request path accepted, in bytes, before decoding (Linux's
/// PATH_MAX: no longer name can be opened anyway).
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a path is not served, and the status that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// 400: the path is malformed or tries to climb out (`..`, NUL, `%zz`).
    Bad(&'static str),
    /// 403: it leads out of the folder through a symbolic link.
    Outside,
    /// 404: nothing there, or a dotfile while dotfiles are hidden.
    Missing,
    /// 414: longer than [`MAX_PATH_BYTES`].
    TooLong,
}

impl Refused {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refused::Bad(_) => 400,
            Refused::Outside => 403,
            Refused::Missing => 404,
            Refused::TooLong => 414,
        }
    }

    /// The plain-text body sent with it.
    pub fn words(&self) -> String {
        match self {
            Refused::Bad(why) => format!("bad path: {why}\n"),
            Refused::Outside => "that path leads out of the served folder\n".into(),
            Refused::Missing => "no such file\n".into(),
            Refused::TooLong => format!("the path is longer than {MAX_PATH_BYTES} bytes\n"),
        }
    }
}

/// A request path taken apart: its decoded segments, none empty, `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    pub parts: Vec<Vec<u8>>,
    /// The path ended in `/` (a folder was asked for).
    pub trailing_slash: bool,
}

/// Decodes a raw request path (no query) into segments, refusing anything
/// that could name something outside the folder or that no file has.
pub fn segments(raw: &str, dotfiles: bool) -> Result<Segments, Refused> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(Refused::TooLong);
    }
    let decoded = decode(raw.as_bytes())?;
    if decoded.contains(&0) {
        return Err(Refused::Bad("it contains a NUL byte"));
    }
    if decoded.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return Err(Refused::Bad("it contains a control character"));
    }
    if decoded.contains(&b'\\') {
        return Err(Refused::Bad("it contains a backslash"));
    }
    let mut parts = Vec::new();
    for part in decoded.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(Refused::Bad("it contains '..'")),
            _ if part.starts_with(b".") && !dotfiles => return Err(Refused::Missing),
            _ => parts.push(part.to_vec()),
        }
    }
    Ok(Segments {
        parts,
        trailing_slash: decoded.ends_with(b"/"),
    })
}

/// Percent-decoding done once: `%2e%2e` becomes `..` here and is refused
/// by the segment check after, never decoded a second time.
fn decode(raw: &[u8]) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .ok_or(Refused::Bad("a '%' escape is cut short"))?;
            let text =
                std::str::from_utf8(hex).map_err(|_| Refused::Bad("a '%' escape is not hex"))?;
            let byte = u8::from_str_radix(text, 16)
                .map_err(|_| Refused::Bad("a '%' escape is not hex"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Where `segments` lead under `root` (itself canonical): the canonical
/// path when it exists, checked to be inside `root` unless `follow_links`.
pub fn resolve(root: &Path, segs: &Segments, follow_links: bool) -> Result<PathBuf, Refused> {
    let mut path = root.to_path_buf();
    for part in &segs.parts {
        path.push(OsStr::from_bytes(part));
    }
    let real = match std::fs::canonicalize(&path) {
        Ok(real) => real,
        Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => return Err(Refused::TooLong),
        Err(_) => return Err(Refused::Missing),
    };
    if !follow_links && !real.starts_with(root) {
        return Err(Refused::Outside);
    }
    Ok(real)
}

/// Where an upload named by `segs` goes: the canonical folder it lands in
/// (inside `root`, unless `follow_links`) and the file name, checked by the
/// same rules `serve_files` applies to a sent name.
pub fn upload_target(
    root: &Path,
    segs: &Segments,
    follow_links: bool,
) -> Result<(PathBuf, String), Refused> {
    let Some((last, folder)) = segs.parts.split_last() else {
        return Err(Refused::Bad("an upload needs a file name"));
    };
    if segs.trailing_slash {
        return Err(Refused::Bad("an upload needs a file name, not a folder"));
    }
    let name = crate::net::transfer::protocol::safe_name(last)
        .map_err(|_| Refused::Bad("that file name is not accepted"))?;
    let dir = resolve(
        root,
        &Segments {
            parts: folder.to_vec(),
            trailing_slash: true,
        },
        follow_links,
    )?;
    if !dir.is_dir() {
        return Err(Refused::Missing);
    }
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(raw: &str) -> Result<Vec<String>, Refused> {
        segments(raw, false).map(|s| {
            s.parts
                .into_iter()
                .map(|p| String::from_utf8_lossy(&p).into_owned())
                .collect()
        })
    }

    #[test]
    fn plain_paths_decode_once() {
        assert_eq!(parts("/a%20b/c.txt").unwrap(), ["a b", "c.txt"]);
        assert_eq!(parts("//x//./y/").unwrap(), ["x", "y"]);
        assert_eq!(parts("/").unwrap(), Vec::<String>::new());
        // %252e is "%2e" once decoded: a literal name, never decoded again.
        assert_eq!(parts("/%252e%252e/x").unwrap(), ["%2e%2e", "x"]);
    }

    #[test]
    fn climbing_out_is_refused_however_spelled() {
        for raw in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2e/x",
            "/a/%2e%2e",
            "/..%2fetc",
        ] {
            let got = parts(raw);
            assert!(matches!(got, Err(Refused::Bad(_))), "{raw}: {got:?}");
        }
    }

    #[test]
    fn nul_controls_backslashes_and_bad_escapes_are_refused() {
        for raw in [
            "/a%00b",
            "/a\0b",
            "/a%0ab",
            "/..\\x",
            "/a%5c..%5cx",
            "/%",
            "/%4",
            "/%zz",
        ] {
            assert!(matches!(parts(raw), Err(Refused::Bad(_))), "{raw}");
        }
        assert_eq!(
            parts(&format!("/{}", "a".repeat(MAX_PATH_BYTES))),
            Err(Refused::TooLong)
        );
    }

    #[test]
    fn dotfiles_are_missing_unless_asked() {
        assert_eq!(parts("/.git/config"), Err(Refused::Missing));
        assert_eq!(parts("/a/.env"), Err(Refused::Missing));
        assert_eq!(segments("/.env", true).unwrap().parts, [b".env".to_vec()]);
    }

    #[test]
    fn links_out_of_the_folder_are_refused_unless_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("in.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("in.txt", root.join("alias")).unwrap();
        let seg = |raw| segments(raw, false).unwrap();
        assert_eq!(
            resolve(&root, &seg("/in.txt"), false).unwrap(),
            root.join("in.txt")
        );
        assert_eq!(
            resolve(&root, &seg("/alias"), false).unwrap(),
            root.join("in.txt")
        );
        assert_eq!(
            resolve(&root, &seg("/etc/passwd"), false),
            Err(Refused::Outside)
        );
        assert_eq!(
            resolve(&root, &seg("/etc/hostname"), true).unwrap(),
            Path::new("/etc/hostname")
        );
        assert_eq!(resolve(&root, &seg("/nope"), false), Err(Refused::Missing));
        // An absolute path in the request is only ever a path under root.
        assert_eq!(
            resolve(&root, &seg("//etc/passwd"), false),
            Err(Refused::Outside)
        );
    }

    #[test]
    fn upload_names_follow_the_serve_files_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let seg = |raw| segments(raw, false).unwrap();
        assert_eq!(
            upload_target(&root, &seg("/new.txt"), false).unwrap(),
            (root.clone(), "new.txt".into())
        );
        assert!(upload_target(&root, &seg("/"), false).is_err());
        assert!(upload_target(&root, &seg("/x.netsh-part"), false).is_err());
        assert!(upload_target(&root, &seg("/no/such/x"), false).is_err());
    }
}
