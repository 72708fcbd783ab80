//! stock-matrix: a cross-language gRPC conformance matrix runner.
//! Parses the command line, runs the command, maps the outcome to the
//! documented exit code (see `cli`).
#[macro_use]
mod out;
mod app;
mod bench;
mod contract;
mod exec;
mod input;
mod judge;
mod model;
mod plan;
mod reference;
mod report;
mod runner;

use app::cli;
use clap::Parser;

fn main() {
    let args = reference::faults::usage::known_args(std::env::args().collect(), |a| cli::Cli::try_parse_from(a).err());
    let cli = cli::Cli::parse_from(args);
    // Before any thread or child: a run's pipes and sockets need more open
    // files than the common soft limit of 1,024 (or a shell's lower one).
    exec::limits::raise_open_files();
    // Commands that only print end quietly when their reader goes away
    // (`| head`), like any Unix tool. Everything that talks to processes or
    // sockets keeps Rust's ignored SIGPIPE: `run` writes to children's pipes,
    // and the reference client's vectored socket writes (writev has no
    // MSG_NOSIGNAL) would be killed by a server that refuses its handshake.
    // (Measured: with SIGPIPE default, 7 negative-TLS tests of a full run
    // ended "client exited (signal: 13 (SIGPIPE))".) The reference client
    // ignores a closed stdout instead.
    let prints_only = matches!(
        cli.command,
        cli::Command::List { .. } | cli::Command::Doctor | cli::Command::Certs { .. } | cli::Command::Merge { .. }
    );
    if prints_only {
        // SAFETY: before any thread starts; restores the default disposition.
        unsafe {
            let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match rt.block_on(app::main(cli)) {
        Ok(code) => code,
        Err(app::Exit(code, message)) => {
            if !message.is_empty() {
                note!("error: {message}");
            }
            code
        }
    };
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}
