//! Small helpers every script needs: waiting, time, hashing, files and
//! temporary folders, JSON, environment variables; and the parsing of
//! timeouts that every blocking call shares.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rhai::plugin::*;
use rhai::{Array, Blob, Map};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::runtime;

/// Adds this capability's functions and types to `module`.
pub fn register_into(module: &mut Module, docs: crate::registry::Docs) {
    crate::registry::add(module, exported_manifest!(api), docs);
    module.set_custom_type::<TempDir>("TempDir");
}

/// A temporary folder, removed with everything in it when the last copy
/// of the value is gone (at the end of the function or script holding it).
#[derive(Clone)]
pub struct TempDir(std::sync::Arc<tempfile::TempDir>);

impl TempDir {
    pub fn path(&self) -> String {
        self.0.path().display().to_string()
    }
}

#[export_module(manifest)]
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

    /// Waits `ms` milliseconds, a fraction allowed (`sleep(0.5)` is half a
    /// millisecond: milliseconds, like every netsh time, not Rhai's seconds).
    /// Ctrl-C and `.stop()` end the wait early.
    ///
    /// ```rhai
    /// sleep(1.5);
    /// ```
    ///
    /// Fails when: `ms` is negative or not a number, or the wait is interrupted.
    #[rhai_fn(return_raw, name = "sleep")]
    pub fn sleep_float(ms: f64) -> ScriptResult<()> {
        super::millis_f64(ms, "ms")
            .and_then(runtime::sleep)
            .map_err(fail("sleep"))
    }

    /// Milliseconds since 1970-01-01 UTC; subtract two readings to time something.
    ///
    /// ```rhai
    /// let t = now(); sleep(100); print(now() - t);   // about 100
    /// ```
    ///
    /// Fails when: never.
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
    ///
    /// Fails when: never.
    #[rhai_fn(name = "sha256")]
    pub fn sha256_str(data: &str) -> String {
        hex::encode(Sha256::digest(data.as_bytes()))
    }

    /// The SHA-256 digest of a blob, as 64 hex digits.
    ///
    /// ```rhai
    /// sha256(read_blob("file.bin"))
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(name = "sha256", pure)]
    pub fn sha256_blob(data: &mut Blob) -> String {
        hex::encode(Sha256::digest(data.as_slice()))
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

    /// Facts about a path, without reading it: `#{size, modified, kind,
    /// real}` (`kind` is "file", "folder" or "other"; `modified` in
    /// milliseconds since 1970; `real` the absolute path with every
    /// symbolic link resolved), or `()` when nothing is there. Symbolic
    /// links are followed.
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
        crate::permit::write(std::path::Path::new(path)).map_err(fail("make_dir"))?;
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
        let mut out = Vec::new();
        super::write_json(&value, &mut out)
            .and_then(|()| {
                String::from_utf8(out).map_err(|_| Error::invalid("the JSON is not UTF-8"))
            })
            .map_err(fail("to_json"))
    }

    /// A map as JSON text, as `to_json(value)` writes it (a caught error in
    /// it becomes `{"op", "kind", "message"}`). Rhai's own `to_json` for
    /// maps would write other netsh values as their type names.
    ///
    /// ```rhai
    /// to_json(#{port: 80})   // "{\"port\":80}"
    /// ```
    ///
    /// Fails when: the value nests deeper than 128 levels.
    #[rhai_fn(name = "to_json", return_raw)]
    pub fn to_json_map(map: Map) -> ScriptResult<String> {
        to_json(Dynamic::from_map(map))
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

    /// A new empty folder under the system's temporary folder (`$TMPDIR`,
    /// else `/tmp`), removed with everything in it once the value is no
    /// longer held: at the end of the function or script that made it. It
    /// prints as its path, so `${dir}/file` names a file in it.
    ///
    /// ```rhai
    /// let dir = temp_dir(); write_file(`${dir}/note.txt`, "hi");
    /// ```
    ///
    /// Fails when: the temporary folder is missing or not writable.
    #[rhai_fn(return_raw)]
    pub fn temp_dir() -> ScriptResult<super::TempDir> {
        crate::permit::write(&std::env::temp_dir()).map_err(fail("temp_dir"))?;
        tempfile::Builder::new()
            .prefix("netsh-")
            .tempdir()
            .map(|dir| super::TempDir(std::sync::Arc::new(dir)))
            .map_err(|e| Error::io("creating a temporary folder", None, e))
            .map_err(fail("temp_dir"))
    }

    /// The path of a temporary folder.
    ///
    /// ```rhai
    /// temp_dir().path   // "/tmp/netsh-a1B2c3"
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(get = "path", pure)]
    pub fn temp_dir_path(dir: &mut super::TempDir) -> String {
        dir.path()
    }

    /// A temporary folder prints as its path.
    ///
    /// ```rhai
    /// print(`saving into ${dir}`)
    /// ```
    ///
    /// Fails when: never.
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn temp_dir_to_string(dir: &mut super::TempDir) -> String {
        dir.path()
    }

    /// An environment variable, or `()` when it is not set.
    ///
    /// ```rhai
    /// let home = env("HOME");
    /// ```
    ///
    /// Fails when: permissions are enforced and `--allow-env` does not
    /// name it (kind `permission`).
    #[rhai_fn(return_raw)]
    pub fn env(name: &str) -> ScriptResult<Dynamic> {
        crate::permit::env(name).map_err(fail("env"))?;
        Ok(std::env::var(name).map_or(Dynamic::UNIT, Dynamic::from))
    }
}

/// A non-negative Rhai integer of milliseconds as a [`Duration`].
pub fn millis(ms: i64, what: &str) -> Result<Duration> {
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| Error::invalid(format!("{what} must be 0 or more, not {ms}")))
}

/// A fractional number of milliseconds as a duration.
pub fn millis_f64(ms: f64, what: &str) -> Result<Duration> {
    if ms.is_nan() || ms < 0.0 {
        return Err(Error::invalid(format!(
            "{what} must be 0 or more, not {ms}"
        )));
    }
    // Beyond what a Duration holds (about 585 million years) is forever.
    Ok(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX))
}

/// Reads a whole regular file off the Rhai thread, so Ctrl-C can abandon a
/// slow read. Pipes and devices are refused: `/dev/zero` never ends and a
/// FIFO may never answer.
fn read_bytes(path: &str) -> Result<Vec<u8>> {
    let owned = PathBuf::from(path);
    crate::permit::read(&owned)?;
    runtime::block_on(async move {
        let meta = tokio::fs::metadata(&owned)
            .await
            .map_err(|e| file_error("reading", &owned, e))?;
        let shown = quoted(&owned);
        if meta.is_dir() {
            return Err(Error::invalid(format!("{shown} is a folder, not a file")));
        }
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{shown} is not a regular file (a pipe or device)"
            )));
        }
        if meta.len() > crate::limits::MAX_STRING_BYTES as u64 {
            return Err(Error::TooBig(format!(
                "{shown} is {} bytes, more than a script value may hold ({} bytes)",
                meta.len(),
                crate::limits::MAX_STRING_BYTES
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
            "{} is not UTF-8 text; use read_blob({:?}) for binary files",
            quoted(Path::new(path)),
            path
        ))
    })
}

fn write(path: &str, data: &[u8]) -> Result<i64> {
    let (owned, data) = (PathBuf::from(path), data.to_vec());
    crate::permit::write(&owned)?;
    let len = data.len() as i64;
    runtime::block_on(async move {
        tokio::fs::write(&owned, data)
            .await
            .map_err(|e| file_error("writing", &owned, e))
    })?;
    Ok(len)
}

/// A path as messages show it: in double quotes, so an empty or odd one
/// stands out (`serve_files: "" is not a folder`).
pub fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn info(path: &str) -> Result<Dynamic> {
    crate::permit::read(Path::new(path))?;
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
    // Where the path really leads, links resolved: what a server checks
    // against its folder. `()` when it is not UTF-8 (never a mangled path).
    let real = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.into_os_string().into_string().ok());
    map.insert("real".into(), real.map_or(Dynamic::UNIT, Dynamic::from));
    Ok(map.into())
}

fn remove_path(path: &str) -> Result<()> {
    crate::permit::remove(Path::new(path))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| file_error("removing", path, e))?;
    let removed = if meta.is_dir() {
        std::fs::remove_dir(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.map_err(|e| match e.kind() {
        std::io::ErrorKind::DirectoryNotEmpty => Error::invalid(format!(
            "{} is a folder that is not empty",
            quoted(Path::new(path))
        )),
        _ => file_error("removing", path, e),
    })
}

/// An I/O error on a file, worded for a user.
pub fn file_error(doing: &str, path: impl AsRef<Path>, err: std::io::Error) -> Error {
    let shown = quoted(path.as_ref());
    match err.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("{shown}: no such file or folder")),
        std::io::ErrorKind::PermissionDenied => {
            Error::Permission(format!("{shown}: permission denied"))
        }
        _ => Error::io(format!("{doing} {shown}"), None, err),
    }
}

/// How deep `to_json` follows nested arrays and maps.
const MAX_JSON_DEPTH: usize = 128;

/// Rhai value → JSON value.
///
/// Values are read in place (a map is not copied to find out it is a map:
/// four copies of every map and array made this most of a JSON handler's
/// reply). A shared value (a variable a closure captured) is copied once
/// and read from the copy, so no lock is held while what it holds is read.
pub fn to_json_value(value: &Dynamic, depth: usize) -> Result<serde_json::Value> {
    use serde_json::Value;
    if depth > MAX_JSON_DEPTH {
        return Err(Error::invalid(format!(
            "the value nests deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    if value.is_shared() {
        return to_json_value(&value.flatten_clone(), depth);
    }
    Ok(if value.is_unit() {
        Value::Null
    } else if let Ok(b) = value.as_bool() {
        Value::Bool(b)
    } else if let Ok(i) = value.as_int() {
        Value::from(i)
    } else if let Ok(f) = value.as_float() {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        Value::String(s.to_string())
    } else if let Ok(c) = value.as_char() {
        Value::String(c.to_string())
    } else if let Some(a) = value.read_lock::<Array>() {
        Value::Array(
            a.iter()
                .map(|v| to_json_value(v, depth + 1))
                .collect::<Result<_>>()?,
        )
    } else if let Some(b) = value.read_lock::<Blob>() {
        Value::Array(b.iter().map(|&byte| Value::from(byte)).collect())
    } else if let Some(m) = value.read_lock::<Map>() {
        Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.to_string(), to_json_value(v, depth + 1)?)))
                .collect::<Result<_>>()?,
        )
    } else if let Some(e) = value.read_lock::<crate::error::NetError>() {
        // A caught error is data: what failed, which kind, why.
        serde_json::json!({"op": e.op, "kind": e.kind.as_str(), "message": e.message})
    } else {
        Value::String(value.to_string())
    })
}

/// Rhai value → JSON text, appended to `out`: the same bytes as
/// [`to_json_value`] then `serde_json::to_vec`, written straight from the
/// value with no tree in between (a JSON handler's reply cost 3.3 K
/// instructions through the tree: every key and string copied into it,
/// then written, then freed). Keys come out in the map's order, which is
/// sorted, as `serde_json`'s own maps are.
pub fn write_json(value: &Dynamic, out: &mut Vec<u8>) -> Result<()> {
    write_value(value, 0, out)
}

fn write_value(value: &Dynamic, depth: usize, out: &mut Vec<u8>) -> Result<()> {
    if depth > MAX_JSON_DEPTH {
        return Err(Error::invalid(format!(
            "the value nests deeper than {MAX_JSON_DEPTH} levels"
        )));
    }
    if value.is_shared() {
        return write_value(&value.flatten_clone(), depth, out);
    }
    if value.is_unit() {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    if value.is_bool() {
        let yes = value.as_bool().unwrap_or_default();
        out.extend_from_slice(if yes { b"true" } else { b"false" });
        return Ok(());
    }
    if value.is_int() {
        let n = value.as_int().unwrap_or_default();
        return serde_json::to_writer(&mut *out, &n).map_err(unwritable);
    }
    if value.is_float() {
        // Not finite: `null`, as `serde_json::Number::from_f64` makes it.
        let f = value.as_float().unwrap_or_default();
        return serde_json::to_writer(&mut *out, &f).map_err(unwritable);
    }
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return serde_json::to_writer(&mut *out, s.as_str()).map_err(unwritable);
    }
    if let Ok(c) = value.as_char() {
        let mut utf8 = [0u8; 4];
        return serde_json::to_writer(&mut *out, &*c.encode_utf8(&mut utf8)).map_err(unwritable);
    }
    if let Some(a) = value.read_lock::<Array>() {
        out.push(b'[');
        for (i, v) in a.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_value(v, depth + 1, out)?;
        }
        out.push(b']');
        return Ok(());
    }
    if let Some(b) = value.read_lock::<Blob>() {
        return serde_json::to_writer(&mut *out, &*b).map_err(unwritable);
    }
    if let Some(m) = value.read_lock::<Map>() {
        out.push(b'{');
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, k.as_str()).map_err(unwritable)?;
            out.push(b':');
            write_value(v, depth + 1, out)?;
        }
        out.push(b'}');
        return Ok(());
    }
    if let Some(e) = value.read_lock::<crate::error::NetError>() {
        // A caught error is data: what failed, which kind, why (keys
        // sorted, as in every other object).
        let fields = [
            ("kind", e.kind.as_str()),
            ("message", e.message.as_str()),
            ("op", e.op.as_str()),
        ];
        out.push(b'{');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, k).map_err(unwritable)?;
            out.push(b':');
            serde_json::to_writer(&mut *out, v).map_err(unwritable)?;
        }
        out.push(b'}');
        return Ok(());
    }
    serde_json::to_writer(&mut *out, &value.to_string()).map_err(unwritable)
}

/// Writing into a `Vec` cannot fail; should serde_json ever say otherwise.
fn unwritable(e: serde_json::Error) -> Error {
    Error::invalid(format!("the value cannot be written as JSON: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of value, nested, and a captured (shared) one, come out as
    /// the JSON they stand for; the values themselves are left as they were.
    #[test]
    fn values_become_json_read_in_place() {
        let engine = rhai::Engine::new();
        let value: Dynamic = engine
            .eval(
                r#"let inner = #{b: "c", t: 'x'}; let shared_list = [1, 2];
                   let f = || shared_list; f.call(); // shared_list is now a shared cell
                   #{a: [1, 2.5, inner], d: blob(2, 7), e: (), g: true, s: shared_list}"#,
            )
            .expect("the value");
        let json = to_json_value(&value, 0).expect("JSON");
        assert_eq!(
            json,
            serde_json::json!({"a": [1, 2.5, {"b": "c", "t": "x"}], "d": [7, 7], "e": null, "g": true, "s": [1, 2]})
        );
        // Nothing read was taken apart.
        let again = to_json_value(&value, 0).expect("JSON again");
        assert_eq!(again, json);
        let shared =
            Dynamic::from(Map::from_iter([("k".into(), Dynamic::from(1_i64))])).into_shared();
        assert!(shared.is_shared());
        assert_eq!(
            to_json_value(&shared, 0).expect("JSON"),
            serde_json::json!({"k": 1})
        );
    }

    /// The straight writer says exactly what the tree says, for every kind
    /// of value: escapes, non-ASCII, floats that are not finite, a caught
    /// error, nesting, shared cells; and refuses the same depth.
    #[test]
    fn written_json_is_the_trees_json() {
        let engine = rhai::Engine::new();
        let value: Dynamic = engine
            .eval(
                r#"let shared_list = [1, #{z: "\u0001\"\\\n", a: 'é'}];
                   let f = || shared_list; f.call();
                   #{"b key": [1, -7, 2.5, 1e300 * 1e300, 0.1, 3.0, (), true, false],
                     "ü": "日本\t", d: blob(3, 255), s: shared_list, e: #{}, n: [],
                     "": "empty key", f: Fn("abs"), t: 1.0 / 0.0 - 1.0 / 0.0}"#,
            )
            .expect("the value");
        let error = crate::error::NetError {
            op: "connect".into(),
            kind: crate::error::Kind::Refused,
            message: "connection \"refused\"".into(),
        };
        let mut values = vec![
            value,
            Dynamic::from(error),
            Dynamic::from(-0.0_f64),
            Dynamic::from("x".to_string()),
            Dynamic::from_int(i64::MIN),
            Dynamic::UNIT,
        ];
        values.push(Dynamic::from_array(values.clone()));
        for v in &values {
            let tree = serde_json::to_vec(&to_json_value(v, 0).expect("JSON")).expect("bytes");
            let mut written = Vec::new();
            write_json(v, &mut written).expect("written");
            assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&tree)
            );
        }
        let mut deep = Dynamic::from_int(1);
        for _ in 0..=MAX_JSON_DEPTH {
            deep = Dynamic::from_array(vec![deep]);
        }
        let mut out = Vec::new();
        let err = write_json(&deep, &mut out).expect_err("too deep");
        assert!(err.to_string().contains("deeper than"), "{err}");
        assert!(to_json_value(&deep, 0).is_err());
    }
}
