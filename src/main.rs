//! `netsh`: parse the command line, hand over to [`netsh::cli::run`], and
//! turn its outcome into a message and an exit code — here and nowhere else.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The heap building the engine fills, mapped in at once (kept for the
    // run: its last block keeps the populated pages in the heap).
    let _heap = netsh::heap::populate();
    let cli = match netsh::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" to clap; they exit 0.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match netsh::cli::run(cli) {
        Ok(status) => ExitCode::from(status),
        Err(failure) => {
            netsh::console::error(failure.message());
            failure.exit_code()
        }
    }
}
