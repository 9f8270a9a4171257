//! `kpool`: load-test a kpool pool and probe servers.
//!
//! - `kpool bench` drives load through a pool — against an embedded TCP echo
//!   server when no URL is given, so it runs on a machine with nothing
//!   installed — shows a live progress bar, and prints a report (throughput,
//!   acquire wait percentiles, pool behaviour, a sizing hint), optionally as
//!   JSON and as a self-contained HTML page with charts.
//! - `kpool probe URL` connects once, checks the connection and prints the
//!   timings, or says in plain words what went wrong.
//!
//! Exit codes: 0 success, 1 a failed run or probe, 2 bad input.

mod bench;
mod cli;
mod html;
mod probe;
mod report;
mod server;
mod target;
mod timer;
mod work;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// A failure that ends the program, with the exit code it deserves.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The input cannot work (unknown scheme, bad URL, impossible settings): exit 2.
    Usage(String),
    /// The run or probe failed: exit 1.
    Run(String),
}

impl Fail {
    fn exit(&self) -> ExitCode {
        match self {
            Fail::Usage(msg) => {
                eprintln!("kpool: {msg}");
                ExitCode::from(2)
            }
            Fail::Run(msg) => {
                eprintln!("kpool: {msg}");
                ExitCode::from(1)
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::main(*args),
        Command::Probe(args) => probe::main(args),
    };
    match result {
        Ok(code) => code,
        Err(fail) => fail.exit(),
    }
}
