//! A DNS answer as Rhai data: each record a map `#{name, type, ttl, data}`
//! where `data` is the value exactly as `dig +short` prints it (so a
//! script's expectations can be written by copying dig), plus typed fields
//! for the records that have parts (MX, SRV, SOA, TXT, CAA).

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rhai::{Array, Dynamic, Map};

/// A record type as dig names it: `A`, `MX`, or `TYPE65280` for one
/// without a name.
pub fn type_name(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        other => other.to_string(),
    }
}

/// An RCODE as dig names it (`NOERROR`, `NXDOMAIN`…), or `RCODE23`.
pub fn rcode_name(code: ResponseCode) -> String {
    let n = u16::from(code);
    let name = match n {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        _ => return format!("RCODE{n}"),
    };
    name.to_string()
}

/// A domain name as dig prints it: fully qualified, with the final dot.
fn name(n: &Name) -> String {
    let text = n.to_string();
    if text.ends_with('.') {
        text
    } else {
        format!("{text}.")
    }
}

/// A character-string as dig prints it: quoted, `"` and `\` escaped,
/// bytes outside printable ASCII as `\DDD`.
pub fn quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// RFC 3597's generic form, for data with no known text form.
fn generic(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "\\# 0".to_string();
    }
    format!("\\# {} {}", bytes.len(), hex::encode_upper(bytes))
}

/// The value as `dig +short` prints it.
pub fn short(data: &RData) -> String {
    match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::CNAME(n) => name(&n.0),
        RData::NS(n) => name(&n.0),
        RData::PTR(n) => name(&n.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name(&mx.exchange)),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| quoted(s))
            .collect::<Vec<_>>()
            .join(" "),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            name(&soa.mname),
            name(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            name(&srv.target)
        ),
        RData::CAA(caa) => format!("{} {} {}", caa.flags(), caa.tag, quoted(&caa.value)),
        RData::Unknown { rdata, .. } => generic(&rdata.anything),
        RData::NULL(null) => generic(&null.anything),
        other => other.to_string(),
    }
}

/// One record as a map: `#{name, type, ttl, data}` and the typed parts.
pub fn to_map(record: &Record) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), name(&record.name).into());
    m.insert("type".into(), type_name(record.record_type()).into());
    m.insert("ttl".into(), Dynamic::from(i64::from(record.ttl)));
    m.insert("data".into(), short(&record.data).into());
    let mut put = |k: &str, v: Dynamic| {
        m.insert(k.into(), v);
    };
    match &record.data {
        RData::MX(mx) => {
            put("preference", i64::from(mx.preference).into());
            put("exchange", name(&mx.exchange).into());
        }
        RData::SRV(srv) => {
            put("priority", i64::from(srv.priority).into());
            put("weight", i64::from(srv.weight).into());
            put("port", i64::from(srv.port).into());
            put("target", name(&srv.target).into());
        }
        RData::SOA(soa) => {
            put("mname", name(&soa.mname).into());
            put("rname", name(&soa.rname).into());
            put("serial", i64::from(soa.serial).into());
            put("refresh", i64::from(soa.refresh).into());
            put("retry", i64::from(soa.retry).into());
            put("expire", i64::from(soa.expire).into());
            put("minimum", i64::from(soa.minimum).into());
        }
        RData::TXT(txt) => {
            let strings: Array = txt
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned().into())
                .collect();
            put("strings", strings.into());
        }
        RData::CAA(caa) => {
            put("flags", i64::from(caa.flags()).into());
            put("tag", caa.tag.clone().into());
            put(
                "value",
                String::from_utf8_lossy(&caa.value).into_owned().into(),
            );
        }
        _ => {}
    }
    m
}

fn section(records: &[Record]) -> Array {
    records.iter().map(|r| to_map(r).into()).collect()
}

/// The whole answer as the map `dns()` returns.
pub fn answer_map(
    message: &Message,
    question: &str,
    rtype: RecordType,
    server: &str,
    transport: &str,
    ms: f64,
) -> Map {
    let meta = &message.metadata;
    let mut flags = Map::new();
    for (k, v) in [
        ("aa", meta.authoritative),
        ("tc", meta.truncation),
        ("rd", meta.recursion_desired),
        ("ra", meta.recursion_available),
        ("ad", meta.authentic_data),
        ("cd", meta.checking_disabled),
    ] {
        flags.insert(k.into(), v.into());
    }
    let mut m = Map::new();
    m.insert("name".into(), question.into());
    m.insert("type".into(), type_name(rtype).into());
    m.insert("rcode".into(), rcode_name(meta.response_code).into());
    m.insert("answers".into(), section(&message.answers).into());
    m.insert("authority".into(), section(&message.authorities).into());
    m.insert("additional".into(), section(&message.additionals).into());
    m.insert("flags".into(), flags.into());
    m.insert("server".into(), server.into());
    m.insert("transport".into(), transport.into());
    m.insert("ms".into(), Dynamic::from_float(ms));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_quote_as_dig_does() {
        assert_eq!(quoted(b"v=spf1 -all"), "\"v=spf1 -all\"");
        assert_eq!(quoted(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted(&[0x01, b'x', 0xc3]), "\"\\001x\\195\"");
    }

    #[test]
    fn types_and_codes_have_dig_names() {
        assert_eq!(type_name(RecordType::Unknown(65280)), "TYPE65280");
        assert_eq!(type_name(RecordType::AAAA), "AAAA");
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
    }
}
