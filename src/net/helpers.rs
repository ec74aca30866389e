//! Small helpers every script needs: waiting, time, hashing, files, JSON,
//! environment variables.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rhai::plugin::*;
use rhai::{Array, Blob, Map};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::runtime;

/// The Rhai module of this capability.
pub fn module() -> Module {
    exported_module!(api)
}

#[export_module]
mod api {
    use crate::error::{ScriptResult, fail};

    /// Waits `ms` milliseconds. Ctrl-C ends the wait early.
    ///
    /// ```rhai
    /// sleep(500);
    /// ```
    ///
    /// Fails when: `ms` is negative, or the wait is interrupted.
    #[rhai_fn(return_raw)]
    pub fn sleep(ms: i64) -> ScriptResult<()> {
        super::millis(ms, "ms")
            .and_then(runtime::sleep)
            .map_err(fail("sleep"))
    }

    /// Milliseconds since 1970-01-01 UTC; subtract two readings to time something.
    ///
    /// ```rhai
    /// let t = now(); sleep(100); print(now() - t);   // about 100
    /// ```
    pub fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// The SHA-256 digest of a string (its UTF-8 bytes), as 64 hex digits.
    ///
    /// ```rhai
    /// sha256("abc")   // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    /// ```
    #[rhai_fn(name = "sha256")]
    pub fn sha256_str(data: &str) -> String {
        hex::encode(Sha256::digest(data.as_bytes()))
    }

    /// The SHA-256 digest of a blob, as 64 hex digits.
    ///
    /// ```rhai
    /// sha256(read_blob("file.bin"))
    /// ```
    #[rhai_fn(name = "sha256", pure)]
    pub fn sha256_blob(data: &mut Blob) -> String {
        hex::encode(Sha256::digest(data.as_slice()))
    }

    /// A blob as lowercase hex digits.
    ///
    /// ```rhai
    /// hex(blob(3, 255))   // "ffffff"
    /// ```
    #[rhai_fn(pure)]
    pub fn hex(data: &mut Blob) -> String {
        hex::encode(data.as_slice())
    }

    /// A string's UTF-8 bytes as lowercase hex digits.
    ///
    /// ```rhai
    /// hex("hi")   // "6869"
    /// ```
    #[rhai_fn(name = "hex")]
    pub fn hex_str(data: &str) -> String {
        hex::encode(data.as_bytes())
    }

    /// The contents of a text file as a string.
    ///
    /// ```rhai
    /// let conf = read_file("/etc/hosts");
    /// ```
    ///
    /// Fails when: the file is missing, unreadable, not a regular file, or
    /// not UTF-8 text (use `read_blob` for binary files).
    #[rhai_fn(return_raw)]
    pub fn read_file(path: &str) -> ScriptResult<String> {
        super::read_text(path).map_err(fail("read_file"))
    }

    /// The contents of any file as a blob of bytes.
    ///
    /// ```rhai
    /// let bytes = read_blob("/bin/true"); print(bytes.len());
    /// ```
    ///
    /// Fails when: the file is missing, unreadable, or not a regular file.
    #[rhai_fn(return_raw)]
    pub fn read_blob(path: &str) -> ScriptResult<Blob> {
        super::read_bytes(path).map_err(fail("read_blob"))
    }

    /// Writes a string to a file (replacing it); returns the bytes written.
    ///
    /// ```rhai
    /// write_file("/tmp/hello.txt", "hello\n")   // 6
    /// ```
    ///
    /// Fails when: the folder does not exist or is not writable.
    #[rhai_fn(return_raw, name = "write_file")]
    pub fn write_file_str(path: &str, data: &str) -> ScriptResult<i64> {
        super::write(path, data.as_bytes()).map_err(fail("write_file"))
    }

    /// Writes a blob to a file (replacing it); returns the bytes written.
    ///
    /// ```rhai
    /// write_file("/tmp/zeros.bin", blob(1024))   // 1024
    /// ```
    ///
    /// Fails when: the folder does not exist or is not writable.
    #[rhai_fn(return_raw, name = "write_file")]
    pub fn write_file_blob(path: &str, data: Blob) -> ScriptResult<i64> {
        super::write(path, &data).map_err(fail("write_file"))
    }

    /// Facts about a path, without reading it: `#{size, modified, kind}`
    /// (`kind` is "file", "folder" or "other"; `modified` in milliseconds
    /// since 1970), or `()` when nothing is there. Symbolic links are followed.
    ///
    /// ```rhai
    /// let i = file_info("/etc/hosts"); print(`${i.size} bytes`);
    /// ```
    ///
    /// Fails when: the path cannot be examined (permission denied).
    #[rhai_fn(return_raw)]
    pub fn file_info(path: &str) -> ScriptResult<Dynamic> {
        super::info(path).map_err(fail("file_info"))
    }

    /// Creates a folder and any missing parents (like `mkdir -p`); an
    /// existing folder is fine.
    ///
    /// ```rhai
    /// make_dir("/tmp/netsh-demo/site");
    /// ```
    ///
    /// Fails when: a file is in the way, or permission is denied.
    #[rhai_fn(return_raw)]
    pub fn make_dir(path: &str) -> ScriptResult<()> {
        std::fs::create_dir_all(path)
            .map_err(|e| super::file_error("creating", path, e))
            .map_err(fail("make_dir"))
    }

    /// Removes a file, or an empty folder (like `rm` and `rmdir`; never a
    /// whole tree).
    ///
    /// ```rhai
    /// remove("/tmp/netsh-demo/site/sample.bin"); remove("/tmp/netsh-demo/site");
    /// ```
    ///
    /// Fails when: nothing is there, the folder is not empty, or permission
    /// is denied.
    #[rhai_fn(return_raw)]
    pub fn remove(path: &str) -> ScriptResult<()> {
        super::remove_path(path).map_err(fail("remove"))
    }

    /// Any value as JSON text (maps become objects, blobs arrays of numbers).
    ///
    /// ```rhai
    /// to_json(#{a: 1, b: [true, ()]})   // "{\"a\":1,\"b\":[true,null]}"
    /// ```
    ///
    /// Fails when: the value nests deeper than 128 levels.
    #[rhai_fn(return_raw)]
    pub fn to_json(value: Dynamic) -> ScriptResult<String> {
        super::to_json_value(&value, 0)
            .map(|v| v.to_string())
            .map_err(fail("to_json"))
    }

    /// JSON text as Rhai values (objects become maps, `null` becomes `()`).
    ///
    /// ```rhai
    /// parse_json("{\"port\": 80}").port   // 80
    /// ```
    ///
    /// Fails when: the text is not valid JSON (the message gives line and column).
    #[rhai_fn(return_raw)]
    pub fn parse_json(text: &str) -> ScriptResult<Dynamic> {
        serde_json::from_str::<serde_json::Value>(text)
            .map(super::from_json_value)
            .map_err(|e| Error::invalid(format!("not valid JSON: {e}")))
            .map_err(fail("parse_json"))
    }

    /// An environment variable, or `()` when it is not set.
    ///
    /// ```rhai
    /// let home = env("HOME");
    /// ```
    pub fn env(name: &str) -> Dynamic {
        std::env::var(name).map_or(Dynamic::UNIT, Dynamic::from)
    }
}

/// A non-negative Rhai integer of milliseconds as a [`Duration`].
pub fn millis(ms: i64, what: &str) -> Result<Duration> {
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| Error::invalid(format!("{what} must be 0 or more, not {ms}")))
}

/// Reads a whole regular file off the Rhai thread, so Ctrl-C can abandon a
/// slow read. Pipes and devices are refused: `/dev/zero` never ends and a
/// FIFO may never answer.
fn read_bytes(path: &str) -> Result<Vec<u8>> {
    let owned = path.to_string();
    runtime::block_on(async move {
        let meta = tokio::fs::metadata(&owned)
            .await
            .map_err(|e| file_error("reading", &owned, e))?;
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{owned} is not a regular file (a folder, pipe or device)"
            )));
        }
        if meta.len() > crate::shell::MAX_STRING_BYTES as u64 {
            return Err(Error::invalid(format!(
                "{owned} is {} bytes, more than a script value may hold ({} bytes)",
                meta.len(),
                crate::shell::MAX_STRING_BYTES
            )));
        }
        tokio::fs::read(&owned)
            .await
            .map_err(|e| file_error("reading", &owned, e))
    })
}

fn read_text(path: &str) -> Result<String> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|_| {
        Error::invalid(format!(
            "{path} is not UTF-8 text; use read_blob(\"{path}\") for binary files"
        ))
    })
}

fn write(path: &str, data: &[u8]) -> Result<i64> {
    let (owned, data) = (path.to_string(), data.to_vec());
    let len = data.len() as i64;
    runtime::block_on(async move {
        tokio::fs::write(&owned, data)
            .await
            .map_err(|e| file_error("writing", &owned, e))
    })?;
    Ok(len)
}

fn info(path: &str) -> Result<Dynamic> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Dynamic::UNIT),
        Err(e) => return Err(file_error("examining", path, e)),
    };
    let kind = if meta.is_file() {
        "file"
    } else if meta.is_dir() {
        "folder"
    } else {
        "other"
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let mut map = Map::new();
    map.insert("size".into(), (meta.len() as i64).into());
    map.insert("modified".into(), modified.into());
    map.insert("kind".into(), kind.into());
    Ok(map.into())
}

fn remove_path(path: &str) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| file_error("removing", path, e))?;
    let removed = if meta.is_dir() {
        std::fs::remove_dir(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.map_err(|e| match e.kind() {
        std::io::ErrorKind::DirectoryNotEmpty => {
            Error::invalid(format!("{path} is a folder that is not empty"))
        }
        _ => file_error("removing", path, e),
    })
}

/// An I/O error on a file, worded for a user.
pub fn file_error(doing: &str, path: &str, err: std::io::Error) -> Error {
    match err.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("{path}: no such file or folder")),
        std::io::ErrorKind::PermissionDenied => {
            Error::Permission(format!("{path}: permission denied"))
        }
        _ => Error::io(format!("{doing} {path}"), None, err),
    }
}

/// How deep `to_json` follows nested arrays and maps.
const MAX_JSON_DEPTH: usize = 128;

/// Rhai value → JSON value.
pub fn to_json_value(value: &Dynamic, depth: usize) -> Result<serde_json::Value> {
    use serde_json::Value;
    if depth > MAX_JSON_DEPTH {
        return Err(Error::invalid(format!(
            "the value nests deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    Ok(if value.is_unit() {
        Value::Null
    } else if let Ok(b) = value.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = value.as_int() {
        Value::from(i)
    } else if let Ok(f) = value.as_float() {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if let Some(s) = value.clone().try_cast::<rhai::ImmutableString>() {
        Value::String(s.to_string())
    } else if let Ok(c) = value.as_char() {
        Value::String(c.to_string())
    } else if let Some(a) = value.clone().try_cast::<Array>() {
        Value::Array(
            a.iter()
                .map(|v| to_json_value(v, depth + 1))
                .collect::<Result<_>>()?,
        )
    } else if let Some(b) = value.clone().try_cast::<Blob>() {
        Value::Array(b.into_iter().map(Value::from).collect())
    } else if let Some(m) = value.clone().try_cast::<Map>() {
        Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.to_string(), to_json_value(v, depth + 1)?)))
                .collect::<Result<_>>()?,
        )
    } else {
        Value::String(value.to_string())
    })
}

/// JSON value → Rhai value.
pub fn from_json_value(value: serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        Value::String(s) => s.into(),
        Value::Array(a) => a.into_iter().map(from_json_value).collect::<Array>().into(),
        Value::Object(o) => o
            .into_iter()
            .map(|(k, v)| (k.into(), from_json_value(v)))
            .collect::<Map>()
            .into(),
    }
}
