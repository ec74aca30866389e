//! For `bench/parts/echo.sh`: what netsh's Rhai engine costs per message on
//! this machine, with the network taken out, so the echo figures can be
//! read against the interpreter's floor.
//!
//! It builds the engine every netsh script runs on (all capabilities and
//! limits) and times, with a `share()` value standing in for the
//! connection (its `get`/`set` are native methods that cost next to
//! nothing):
//!
//! - a handler call, as the event shape makes one per chunk: the closure
//!   `|c, d| c.set(d)` called from Rust with a connection and 5 bytes, the
//!   way `serve`'s workers call `on_data`;
//! - a pass of the closure shape's loop body
//!   `let d = c.get(); if d == "" { break } c.set(d)` (a read, a
//!   comparison, a send).
//!
//! Each is the best of three runs. Prints both in microseconds:
//! `handler_call_us loop_pass_us`.

use std::time::Instant;

use netsh::shell::{Setup, Shell};
use rhai::{Dynamic, FnPtr};

const CALLS: u32 = 200_000;

fn main() {
    let best = (0..3).try_fold((f64::MAX, f64::MAX), |(call, pass), _| {
        measure().map(|(c, p)| (call.min(c), pass.min(p)))
    });
    match best {
        Ok((call, pass)) => println!("{call:.3} {pass:.3}"),
        Err(e) => {
            eprintln!("rhai_floor: {e}");
            std::process::exit(1);
        }
    }
}

fn measure() -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let shell = Shell::new(Setup::for_code(""));
    let engine = &shell.engine;

    // The event shape: one closure call per message, made from Rust.
    let ast = engine.compile("[share(()), |c, d| c.set(d)]")?;
    let made: rhai::Array = engine.eval_ast(&ast)?;
    let (Some(conn), Some(handler)) = (made.first().cloned(), made.get(1).cloned()) else {
        return Err("the script made no handler".into());
    };
    let handler = handler.try_cast::<FnPtr>().ok_or("not a closure")?;
    let functions = ast.clone_functions_only();
    let data = b"ping\n".to_vec();
    let started = Instant::now();
    for _ in 0..CALLS {
        let args = vec![conn.clone(), Dynamic::from_blob(data.clone())];
        let _ = handler.call::<Dynamic>(engine, &functions, args)?;
    }
    let call = started.elapsed().as_secs_f64() / f64::from(CALLS) * 1e6;

    // The closure shape: the loop's body, run in the script itself.
    let script = format!(
        r#"let c = share("ping\n"); let n = 0;
           loop {{ let d = c.get(); if d == "" {{ break }} c.set(d); n += 1; if n == {CALLS} {{ break }} }}"#
    );
    let ast = engine.compile(&script)?;
    // The counting (`n += 1`, its test, and the loop around them) is timed
    // apart and taken off: what is left is the body the server's loop runs.
    let counting = engine.compile(format!(
        "let n = 0; loop {{ n += 1; if n == {CALLS} {{ break }} }}"
    ))?;
    let started = Instant::now();
    engine.run_ast(&ast)?;
    let whole = started.elapsed().as_secs_f64();
    let started = Instant::now();
    engine.run_ast(&counting)?;
    let overhead = started.elapsed().as_secs_f64();
    let pass = (whole - overhead).max(0.0) / f64::from(CALLS) * 1e6;
    Ok((call, pass))
}
