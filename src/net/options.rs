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

use crate::error::{Error, Result, wrong_type};

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
    /// What its keys are called in messages: `option`, or `tls option` for
    /// the map inside `#{tls: #{…}}`.
    what: &'static str,
}

impl<'a> Options<'a> {
    /// Refuses any key not in `known`, so a typo (`#{overwite: true}`) is an
    /// error rather than silently ignored.
    pub fn new(map: &'a Map, known: &[&str]) -> Result<Options<'a>> {
        Self::nested(map, "option", known)
    }

    /// As [`Options::new`], for a map inside an option (`#{tls: #{ca: …}}`),
    /// whose keys messages call `what` (`"tls option"`).
    pub fn nested(map: &'a Map, what: &'static str, known: &[&str]) -> Result<Options<'a>> {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                return Err(Error::invalid(format!(
                    "unknown {what} '{key}' (known: {})",
                    known.join(", ")
                )));
            }
        }
        Ok(Options { map, what })
    }

    /// The value of `key`, if given and not `()`.
    pub fn value(&self, key: &str) -> Option<&'a Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    /// The error for an option of the wrong type or value.
    pub fn bad(key: &str, expected: &str, got: &Dynamic) -> Error {
        wrong("option", key, expected, got)
    }

    /// The error for one of this map's values of the wrong type or value.
    pub fn wrong(&self, key: &str, expected: &str, got: &Dynamic) -> Error {
        wrong(self.what, key, expected, got)
    }

    pub fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.value(key) {
            None => Ok(default),
            Some(v) => v.as_bool().map_err(|_| self.wrong(key, "true or false", v)),
        }
    }

    /// A whole number, 0 or more.
    pub fn count(&self, key: &str) -> Result<Option<u64>> {
        self.count_in(key, 0, u64::MAX)
    }

    /// A count of at least 1 (none would do nothing), as a `usize`.
    pub fn positive(&self, key: &str) -> Result<Option<usize>> {
        Ok(self
            .count_in(key, 1, u64::MAX)?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
    }

    /// A whole number from `min` to `max`.
    pub fn count_in(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>> {
        let expected = match (min, max) {
            (min, u64::MAX) => format!("a whole number, {min} or more"),
            (min, max) => format!("a whole number from {min} to {max}"),
        };
        match self.value(key).map(|v| (v, v.as_int())) {
            None => Ok(None),
            Some((_, Ok(n))) => match u64::try_from(n) {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(Error::invalid(format!(
                    "{} '{key}': expected {expected}, not {n}",
                    self.what
                ))),
            },
            Some((v, Err(_))) => Err(self.wrong(key, &expected, v)),
        }
    }

    /// A timeout in milliseconds, by the one rule: `Some(None)` for 0.
    pub fn timeout(&self, key: &str) -> Result<Option<Option<Duration>>> {
        self.millis(key, "means no limit")
    }

    /// A span of milliseconds, 0 or more, where 0 is special and
    /// `zero` says how (`"keeps them forever"`): `Some(None)` for 0.
    pub fn millis(&self, key: &str, zero: &str) -> Result<Option<Option<Duration>>> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => {
                let ms = v
                    .as_int()
                    .map_err(|_| self.wrong(key, "a number of milliseconds", v))?;
                match u64::try_from(ms) {
                    Ok(0) => Ok(Some(None)),
                    Ok(ms) => Ok(Some(Some(Duration::from_millis(ms)))),
                    Err(_) => Err(Error::invalid(format!(
                        "{} '{key}': expected 0 or more milliseconds (0 {zero}), not {ms}",
                        self.what
                    ))),
                }
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
                .map_err(|_| self.wrong(key, "a string", v)),
        }
    }
}

/// The one wording of a wrong option value: `option 'x': expected …, not …`
/// (`what` is `option`, or `tls option` for a map inside one).
pub fn wrong(what: &str, key: &str, expected: &str, got: &Dynamic) -> Error {
    Error::invalid(format!("{what} '{key}': {}", wrong_type(expected, got)))
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

    /// Every option error reads `option 'x': expected …, not …`.
    #[test]
    fn one_wording_for_every_option_error() {
        let m = map(&[
            ("n", Dynamic::from(5000_i64)),
            ("t", Dynamic::from(-1_i64)),
            ("age", Dynamic::from(-1_i64)),
        ]);
        let o = Options::new(&m, &["n", "t", "age"]).unwrap();
        assert_eq!(
            o.count_in("n", 1, 4096).unwrap_err().to_string(),
            "option 'n': expected a whole number from 1 to 4096, not 5000"
        );
        assert_eq!(
            o.timeout("t").unwrap_err().to_string(),
            "option 't': expected 0 or more milliseconds (0 means no limit), not -1"
        );
        assert_eq!(
            o.millis("age", "keeps them forever")
                .unwrap_err()
                .to_string(),
            "option 'age': expected 0 or more milliseconds (0 keeps them forever), not -1"
        );
        // A negative number is named as what it is, not as "a number".
        assert_eq!(
            o.count("t").unwrap_err().to_string(),
            "option 't': expected a whole number, 0 or more, not -1"
        );
        let m = map(&[("s", Dynamic::from("x"))]);
        let o = Options::new(&m, &["s"]).unwrap();
        assert_eq!(
            o.count("s").unwrap_err().to_string(),
            "option 's': expected a whole number, 0 or more, not a string"
        );
    }
}
