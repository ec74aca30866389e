//! What `dns_serve` answers: records a script gives as Rhai data, read in
//! full before the server binds, and the answer to one question from them.
//!
//! A name's value is an address (`"127.0.0.1"`, `"::1"`: an A or AAAA
//! record), an array of them, or a map from record type to data written as
//! in a zone file and as `dig +short` prints it (`#{MX: "10 mail.test.",
//! TXT: "\"hello\"", CNAME: "www.test."}`), each a string or an array of
//! strings. Names are matched without regard to case, as DNS does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType, rdata};
use rhai::{Dynamic, Map};

use super::question;
use crate::error::{Error, Result, printable};

/// How many CNAMEs an answer follows inside the records before it stops.
const MAX_CHAIN: usize = 8;

/// The records a server answers from, by lower-case name.
#[derive(Default)]
pub struct Records {
    by_name: HashMap<Name, Vec<Record>>,
}

impl Records {
    /// Reads a map of names to values (see the module's docs); `ttl` for
    /// every record.
    pub fn from_map(map: &Map, ttl: u32) -> Result<Records> {
        let mut records = Records::default();
        for (name, value) in map {
            records.add(name, value, ttl)?;
        }
        Ok(records)
    }

    /// Adds `name`'s records from `value`.
    pub fn add(&mut self, name: &str, value: &Dynamic, ttl: u32) -> Result<()> {
        let owner = owner_name(name)?;
        let mut found = Vec::new();
        for (rtype, data) in typed_values(name, value)? {
            let rdata = parse_data(name, rtype, &data)?;
            found.push(Record::from_rdata(owner.clone(), ttl, rdata));
        }
        if found.iter().any(|r| r.record_type() == RecordType::CNAME) && found.len() > 1 {
            return Err(Error::invalid(format!(
                "{:?} has a CNAME and other records; a CNAME stands alone",
                printable(name)
            )));
        }
        self.by_name
            .entry(owner.to_lowercase())
            .or_default()
            .extend(found);
        Ok(())
    }

    /// The answer to `name`/`rtype`: its records of that type (all of
    /// them for ANY), or a CNAME and what it leads to among these records;
    /// NXDOMAIN for a name with no records at all.
    pub fn answer(&self, name: &Name, rtype: RecordType) -> (ResponseCode, Vec<Record>) {
        let mut answers = Vec::new();
        let mut current = name.to_lowercase();
        for _ in 0..=MAX_CHAIN {
            let Some(records) = self.by_name.get(&current) else {
                let code = if answers.is_empty() {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                return (code, answers);
            };
            let wanted = records
                .iter()
                .filter(|r| rtype == RecordType::ANY || r.record_type() == rtype);
            let before = answers.len();
            answers.extend(wanted.cloned().map(|mut r| {
                // The question's spelling, as servers answer.
                if r.name.to_lowercase() == name.to_lowercase() {
                    r.name = name.clone();
                }
                r
            }));
            if answers.len() > before {
                return (ResponseCode::NoError, answers);
            }
            let cname = records.iter().find_map(|r| match &r.data {
                RData::CNAME(target) => Some(target.0.clone()),
                _ => None,
            });
            match cname {
                Some(target) => {
                    answers.extend(records.iter().cloned());
                    current = target.to_lowercase();
                }
                None => return (ResponseCode::NoError, answers),
            }
        }
        (ResponseCode::NoError, answers)
    }
}

/// A name as given, checked as `dns()` checks the names it asks about.
fn owner_name(name: &str) -> Result<Name> {
    question::parse_name(name, RecordType::A).map_err(|e| Error::invalid(format!("{e}")))
}

/// The (type, data) pairs a name's value stands for.
fn typed_values(name: &str, value: &Dynamic) -> Result<Vec<(RecordType, String)>> {
    if let Some(map) = value.read_lock::<Map>() {
        let mut pairs = Vec::new();
        for (rtype, data) in map.iter() {
            let rtype = question::parse_type(&Dynamic::from(rtype.to_string()))
                .map_err(|e| Error::invalid(format!("{:?}: {e}", printable(name))))?;
            for text in strings(name, data)? {
                pairs.push((rtype, text));
            }
        }
        return Ok(pairs);
    }
    strings(name, value)?
        .into_iter()
        .map(|text| match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => Ok((RecordType::A, text)),
            Ok(IpAddr::V6(_)) => Ok((RecordType::AAAA, text)),
            Err(_) => Err(Error::invalid(format!(
                "{:?}: {:?} is not an IP address; for other records give the type, as #{{CNAME: \"www.test.\"}}",
                printable(name),
                printable(&text)
            ))),
        })
        .collect()
}

/// A string, or an array of strings.
fn strings(name: &str, value: &Dynamic) -> Result<Vec<String>> {
    if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        return Ok(vec![text.to_string()]);
    }
    if let Some(items) = value.read_lock::<rhai::Array>() {
        return items
            .iter()
            .map(|item| {
                item.read_lock::<rhai::ImmutableString>()
                    .map(|s| s.to_string())
                    .ok_or_else(|| wrong_value(name, item))
            })
            .collect();
    }
    Err(wrong_value(name, value))
}

fn wrong_value(name: &str, value: &Dynamic) -> Error {
    Error::invalid(format!(
        "{:?}: a record is given as a string (\"127.0.0.1\", or the data of a typed record), an array of them, or a map of type to those, not {}",
        printable(name),
        value.type_name()
    ))
}

/// `text` as the data of a `rtype` record, read as a zone file would.
fn parse_data(name: &str, rtype: RecordType, text: &str) -> Result<RData> {
    let bad = |why: String| {
        Error::invalid(format!(
            "{:?} {rtype}: {:?} {why}",
            printable(name),
            printable(text)
        ))
    };
    // Addresses are read strictly here: the zone-file parser would take
    // "127.1" for 127.0.0.1.
    match rtype {
        RecordType::A => {
            return std::net::Ipv4Addr::from_str(text)
                .map(|ip| RData::A(rdata::A(ip)))
                .map_err(|_| bad("is not an IPv4 address".into()));
        }
        RecordType::AAAA => {
            return std::net::Ipv6Addr::from_str(text)
                .map(|ip| RData::AAAA(rdata::AAAA(ip)))
                .map_err(|_| bad("is not an IPv6 address".into()));
        }
        _ => {}
    }
    RData::try_from_str(rtype, text).map_err(|e| bad(format!("does not read as its data: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(code: &str) -> Result<Records> {
        let engine = rhai::Engine::new();
        let map: Map = engine.eval(code).expect("a map");
        Records::from_map(&map, 60)
    }

    fn data(answer: &[Record]) -> Vec<String> {
        answer
            .iter()
            .map(|r| super::super::record::short(&r.data))
            .collect()
    }

    #[test]
    fn addresses_become_a_and_aaaa() {
        let r = records(r#"#{"a.test": ["127.0.0.1", "::1"]}"#).unwrap();
        let name = Name::from_str("A.Test.").unwrap();
        let (code, answer) = r.answer(&name, RecordType::AAAA);
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(data(&answer), ["::1"]);
        // The question's spelling comes back.
        assert_eq!(answer[0].name, name);
    }

    #[test]
    fn cname_chains_are_followed_inside_the_records() {
        let r = records(
            r#"#{"www.test": #{CNAME: "web.test."}, "web.test": #{CNAME: "host.test."}, "host.test": "10.0.0.1"}"#,
        )
        .unwrap();
        let (code, answer) = r.answer(&Name::from_str("www.test.").unwrap(), RecordType::A);
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(data(&answer), ["web.test.", "host.test.", "10.0.0.1"]);
    }

    #[test]
    fn missing_names_and_types() {
        let r = records(r#"#{"a.test": #{MX: ["10 mx.test.", "20 mx2.test."]}}"#).unwrap();
        let a = Name::from_str("a.test.").unwrap();
        assert_eq!(r.answer(&a, RecordType::MX).1.len(), 2);
        assert_eq!(r.answer(&a, RecordType::A), (ResponseCode::NoError, vec![]));
        let none = Name::from_str("b.test.").unwrap();
        assert_eq!(r.answer(&none, RecordType::A).0, ResponseCode::NXDomain);
    }

    #[test]
    fn bad_records_say_which() {
        for (code, says) in [
            (r#"#{"a.test": "www.test"}"#, "is not an IP address"),
            (r#"#{"a.test": #{A: "127.1"}}"#, "is not an IPv4 address"),
            (r#"#{"a.test": #{MX: "mail.test"}}"#, "MX"),
            (r#"#{"a.test": #{BOGUS: "x"}}"#, "unknown record type"),
            (r#"#{"a.test": 5}"#, "not i64"),
            (r#"#{"bad name!": "127.0.0.1"}"#, "bad name"),
            (
                r#"#{"a.test": #{CNAME: "b.test.", A: "1.2.3.4"}}"#,
                "stands alone",
            ),
        ] {
            let err = records(code)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(says), "{code}: {err}");
        }
    }
}
