//! One reader for every function's trailing options map
//! (`send_file(addr, path, #{timeout: 2000})`), so every function words an
//! unknown option or a wrong type the same way, and the one timeout rule.
//!
//! The timeout rule, the same in every function that takes one: a whole
//! number of milliseconds; **0 means no time limit** (wait until it happens,
//! or until the peer or the kernel gives up; Ctrl-C still stops it); a
//! negative number is an error.

use std::time::Duration;

use rhai::{Dynamic, Map};

use crate::error::{Error, Result};
use crate::net::tcp::wrong_type;

/// A timeout in milliseconds, by the one rule: `None` (no limit) for 0.
pub fn timeout(ms: i64) -> Result<Option<Duration>> {
    match u64::try_from(ms) {
        Ok(0) => Ok(None),
        Ok(ms) => Ok(Some(Duration::from_millis(ms))),
        Err(_) => Err(Error::invalid(format!(
            "a timeout is 0 or more milliseconds (0 means no limit), not {ms}"
        ))),
    }
}

/// The wait limit of a per-call options map (`c.recv_line(#{timeout: 500})`),
/// or `default` when the map has no `timeout`.
pub fn wait_option(map: &Map, default: Option<Duration>) -> Result<Option<Duration>> {
    Ok(Options::new(map, &["timeout"])?
        .timeout("timeout")?
        .unwrap_or(default))
}

/// An options map whose keys were checked against the ones a function knows.
pub struct Options<'a> {
    map: &'a Map,
}

impl<'a> Options<'a> {
    /// Refuses any key not in `known`, so a typo (`#{overwite: true}`) is an
    /// error rather than silently ignored.
    pub fn new(map: &'a Map, known: &[&str]) -> Result<Options<'a>> {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                return Err(Error::invalid(format!(
                    "unknown option '{key}' (known: {})",
                    known.join(", ")
                )));
            }
        }
        Ok(Options { map })
    }

    /// The value of `key`, if given and not `()`.
    pub fn value(&self, key: &str) -> Option<&'a Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    /// The error for an option of the wrong type or value.
    pub fn bad(key: &str, expected: &str, got: &Dynamic) -> Error {
        Error::invalid(format!("option '{key}': {}", wrong_type(expected, got)))
    }

    pub fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.value(key) {
            None => Ok(default),
            Some(v) => v.as_bool().map_err(|_| Self::bad(key, "true or false", v)),
        }
    }

    /// A whole number, 0 or more.
    pub fn count(&self, key: &str) -> Result<Option<u64>> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => v
                .as_int()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| Self::bad(key, "a whole number, 0 or more", v)),
        }
    }

    /// A timeout in milliseconds, by the one rule: `Some(None)` for 0.
    pub fn timeout(&self, key: &str) -> Result<Option<Option<Duration>>> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => {
                let ms = v
                    .as_int()
                    .map_err(|_| Self::bad(key, "a number of milliseconds", v))?;
                timeout(ms)
                    .map(Some)
                    .map_err(|e| Error::invalid(format!("option '{key}': {e}")))
            }
        }
    }

    pub fn text(&self, key: &str) -> Result<Option<String>> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => v
                .clone()
                .into_string()
                .map(Some)
                .map_err(|_| Self::bad(key, "a string", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Dynamic)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_named() {
        let m = map(&[("tiemout", Dynamic::from(1_i64))]);
        let err = Options::new(&m, &["timeout", "raw"]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "unknown option 'tiemout' (known: timeout, raw)"
        );
        let m = map(&[("raw", Dynamic::from(1_i64))]);
        let o = Options::new(&m, &["raw"]).unwrap();
        assert_eq!(
            o.flag("raw", false).unwrap_err().to_string(),
            "option 'raw': expected true or false, not a number"
        );
    }

    #[test]
    fn the_timeout_rule() {
        assert_eq!(timeout(0).unwrap(), None);
        assert_eq!(timeout(1500).unwrap(), Some(Duration::from_millis(1500)));
        assert!(
            timeout(-1)
                .unwrap_err()
                .to_string()
                .contains("0 means no limit")
        );
        let m = map(&[
            ("a", Dynamic::from(0_i64)),
            ("b", Dynamic::from(1.5_f64)),
            ("c", Dynamic::UNIT),
        ]);
        let o = Options::new(&m, &["a", "b", "c"]).unwrap();
        assert_eq!(o.timeout("a").unwrap(), Some(None));
        assert!(o.timeout("b").is_err());
        assert_eq!(o.timeout("c").unwrap(), None);
    }
}
