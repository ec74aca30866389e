//! The checks on a sent name (what it is stored under, or why it is
//! refused) and the part-file names derived from it, as `docs/PROTOCOL.md`
//! words them: the part of the protocol that touches the file system.

use super::{Code, MAX_NAME_BYTES, PART_SUFFIX, Refusal};

/// The name a sent name is stored under, or why it is refused.
///
/// The directory part is dropped (`docs/x.txt` → `x.txt`), but anything that
/// tries to climb out of the folder is refused outright rather than quietly
/// repaired: a sender that writes `../x` is either confused or hostile, and
/// either way should hear about it.
pub fn safe_name(sent: &[u8]) -> std::result::Result<String, Refusal> {
    let refuse = |why: &str| Refusal::new(Code::BadName, why.to_string());
    let Ok(text) = std::str::from_utf8(sent) else {
        return Err(refuse("the name is not valid UTF-8"));
    };
    if text.is_empty() {
        return Err(refuse("the name is empty"));
    }
    if text.contains('\0') {
        return Err(refuse("the name contains a NUL byte"));
    }
    if text.chars().any(char::is_control) {
        return Err(refuse("the name contains control characters"));
    }
    // Shown to a person, `report\u{202E}fdp.exe` reads as `reportexe.pdf`.
    if let Some(c) = text.chars().find(|c| crate::error::is_invisible(*c)) {
        return Err(refuse(&format!(
            "the name contains U+{:04X}, an invisible or text-direction character",
            u32::from(c)
        )));
    }
    // A Windows path (`..\..\x`, `C:\x`) would be one odd but harmless name
    // on Linux; refusing it is clearer than storing `..\..\x` literally.
    if text.contains('\\') {
        return Err(refuse("the name contains a backslash"));
    }
    if text.starts_with('/') {
        return Err(refuse("the name is an absolute path"));
    }
    if text.split('/').any(|part| part == "..") {
        return Err(refuse("the name contains '..'"));
    }
    // The part after the last `/` is the file name; `dir/` and `a/.` have none.
    let last = text.rsplit('/').next().unwrap_or(text);
    if last.is_empty() || last == "." {
        return Err(refuse(
            "the name has no file name part (it ends in '/' or '.')",
        ));
    }
    if last.len() > MAX_NAME_BYTES {
        return Err(refuse(&format!(
            "the name is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            last.len()
        )));
    }
    if last.ends_with(PART_SUFFIX) {
        return Err(refuse(&format!(
            "names ending in {PART_SUFFIX} are reserved for unfinished uploads"
        )));
    }
    Ok(last.to_string())
}

/// The temporary file an upload of `name` is written to, in the same folder
/// (so the final rename is atomic): `.NAME.netsh-part`, or, when that would
/// exceed the file-name limit, `.H.netsh-part.netsh-part` with H a hash of
/// the name. The second form cannot be the first form of any name, since a
/// name never ends in `.netsh-part`.
pub fn part_name(name: &str) -> String {
    let plain = format!(".{name}{PART_SUFFIX}");
    if plain.len() <= MAX_NAME_BYTES {
        plain
    } else {
        use sha2::{Digest, Sha256};
        format!(
            ".{}{PART_SUFFIX}{PART_SUFFIX}",
            hex::encode(&Sha256::digest(name.as_bytes())[..16])
        )
    }
}

/// Is `file_name` a part file this code makes, in either form? Only those
/// are ever removed as abandoned: `.netsh-part`, `..netsh-part` or a name
/// that is not what [`part_name`] gives for any name are left alone.
pub fn is_part_name(file_name: &str) -> bool {
    let Some(inner) = file_name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_suffix(PART_SUFFIX))
    else {
        return false;
    };
    if let Some(hash) = inner.strip_suffix(PART_SUFFIX) {
        return hash.len() == 32 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    }
    safe_name(inner.as_bytes()).is_ok_and(|name| name == inner && part_name(inner) == file_name)
}
