//! Asking a DNS server directly, as `dig` does: one question
//! ([`query`]) or many at once ([`query_many`]), with the answer as data.
//!
//! - `question.rs` — the name, type and options, checked before anything is sent
//! - `wire.rs` — UDP, TCP, TLS, the TC retry, matching an answer to its question
//! - `https.rs` — DNS over HTTPS
//! - `record.rs` — records and answers as Rhai maps, values as `dig +short` prints them
//! - `show.rs` — the REPL's dig-like printing of an answer
//! - `zone.rs` — records a script gives, and the answer to a question from them
//! - `serve.rs` — `dns_serve`, answering from those records or a closure

pub mod https;
pub mod question;
pub mod record;
pub mod serve;
pub mod show;
pub mod wire;
pub mod zone;

use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::Query;
use hickory_proto::rr::RecordType;
use rhai::{Array, Dynamic, Map};

use crate::error::Result;
use crate::runtime;
use question::Settings;

/// What a `dns()` call has checked and will ask: nothing is sent until
/// this exists.
pub struct Question {
    pub text: String,
    pub query: Query,
}

impl Question {
    pub fn new(name: &str, rtype: RecordType) -> Result<Question> {
        let name = question::parse_name(name, rtype)?;
        Ok(Question {
            text: name.to_string(),
            query: Query::query(name, rtype),
        })
    }
}

fn answer_map(q: &Question, settings: &Settings, answer: &wire::Answer) -> Map {
    record::answer_map(
        &answer.message,
        &q.text,
        q.query.query_type(),
        &settings.server.to_string(),
        answer.transport.as_str(),
        answer.elapsed.as_secs_f64() * 1000.0,
    )
}

/// Asks one question (the arguments are already checked).
pub fn query(q: &Question, settings: &Settings) -> Result<Map> {
    let answer = runtime::block_on(wire::ask(&q.query, settings))?;
    Ok(answer_map(q, settings, &answer))
}

/// Asks every question, `concurrency` at a time, and returns the answers
/// in the order asked. A question that fails (a timeout) gives
/// `#{name, type, error, kind}` in its place: one lost answer in ten
/// thousand must not throw away the other answers.
pub fn query_many(
    questions: &[Question],
    settings: &Settings,
    concurrency: usize,
) -> Result<Array> {
    // `concurrency` askers, each with one socket for all its questions,
    // take the next question as they finish one.
    let next = AtomicUsize::new(0);
    let asker = |_| async {
        let socket = match settings.tcp || settings.tls.is_some() || settings.https.is_some() {
            true => None,
            false => Some(wire::udp_socket(settings.server).await?),
        };
        let mut answered = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(q) = questions.get(i) else { break };
            answered.push((i, wire::ask_on(socket.as_ref(), &q.query, settings).await));
        }
        Ok::<_, crate::error::Error>(answered)
    };
    let askers = concurrency.clamp(1, questions.len().max(1));
    let answered = runtime::block_on(async {
        futures_util::future::try_join_all((0..askers).map(asker)).await
    })?;
    let mut answers: Vec<Option<Result<wire::Answer>>> =
        (0..questions.len()).map(|_| None).collect();
    for (i, answer) in answered.into_iter().flatten() {
        answers[i] = Some(answer);
    }
    let answers = answers
        .into_iter()
        .map(|a| a.unwrap_or(Err(crate::error::Error::Interrupted)));
    Ok(questions
        .iter()
        .zip(answers)
        .map(|(q, answer)| {
            let map = match answer {
                Ok(answer) => answer_map(q, settings, &answer),
                Err(e) => {
                    let mut m = Map::new();
                    m.insert("name".into(), q.text.clone().into());
                    m.insert(
                        "type".into(),
                        record::type_name(q.query.query_type()).into(),
                    );
                    m.insert("error".into(), e.to_string().into());
                    m.insert("kind".into(), e.kind().as_str().into());
                    m
                }
            };
            Dynamic::from(map)
        })
        .collect())
}
