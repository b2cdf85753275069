//! The program: flags → configuration → (embedded server) → run → reports and files.

use std::io::Write;
use std::process::ExitCode;

use crate::args::{Cli, Command, RunArgs};
use crate::config::{Config, ConfigError, JsonOut, Protocol};
use crate::report::RunResult;
use crate::runner::{RunError, Signals};

/// What can stop the program, each with one clear message.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad or conflicting flags.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The run could not happen.
    #[error("{0}")]
    Run(#[from] RunError),
    /// `tune` failed (bad flags, a cell that could not run, an output file).
    #[error("{0}")]
    Tune(#[from] crate::tune::TuneError),
    /// `stream` failed.
    #[error("{0}")]
    Stream(#[from] crate::stream::StreamError),
    /// `merge` could not read or merge its inputs.
    #[error("merge: {0}")]
    Merge(#[from] crate::merge::MergeError),
    /// The embedded server could not start.
    #[error("embedded server: {0}")]
    Embedded(String),
    /// Writing a report failed.
    #[error("{path}: {source}")]
    Output {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl AppError {
    /// The process exit status ([`crate::verdict::exit`]): 2 for bad usage (flags, unusable files), 3 when
    /// the target cannot be reached, 1 for `tune` and `stream` failures.
    pub fn exit_code(&self) -> ExitCode {
        use crate::verdict::exit;
        ExitCode::from(match self {
            AppError::Config(_)
            | AppError::Output { .. }
            | AppError::Merge(_)
            | AppError::Run(RunError::Setup(_) | RunError::TooLate(_) | RunError::Output { .. })
            | AppError::Tune(
                crate::tune::TuneError::Config(_) | crate::tune::TuneError::Output { .. },
            )
            | AppError::Stream(crate::stream::StreamError::Config(_)) => exit::USAGE,
            AppError::Run(RunError::Unreachable { .. }) | AppError::Embedded(_) => exit::NO_ANSWER,
            AppError::Tune(crate::tune::TuneError::Interrupted)
            | AppError::Stream(crate::stream::StreamError::Interrupted) => {
                crate::signals::EXIT_INTERRUPTED
            }
            _ => 1,
        })
    }
}

/// The binary's whole life: parses the command line (clap exits 2 on bad usage), runs it, and turns an error
/// into its message on stderr and its exit status. `main.rs` only calls this; a test crate can build the same
/// program under another name.
pub fn cli_main() -> ExitCode {
    use clap::Parser;
    match main(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockpool-loadgen: {e}");
            e.exit_code()
        }
    }
}

/// Runs the command line.
pub fn main(cli: Cli) -> Result<ExitCode, AppError> {
    let args = match cli.command {
        Some(Command::Run(a)) => *a,
        Some(Command::Tune(a)) => {
            crate::tune::main(&a)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Stream(a)) => {
            crate::stream::main(&a)?;
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Merge(a)) => return crate::merge::main(&a),
        None => RunArgs::default(),
    };
    run(&args)
}

/// `sockpool-loadgen run`: validates, runs, writes every requested output, and returns the verdict's exit
/// status ([`crate::verdict::exit`]): 0 passed, 1 a threshold crossed (named on stderr), 3 no reply at all.
pub fn run(args: &RunArgs) -> Result<ExitCode, AppError> {
    let result = if args.target.is_some() {
        let config = Config::from_args(args)?;
        writable_outputs(&config)?;
        if let Some(w) = config.times_out_by_design() {
            eprintln!("sockpool-loadgen: warning: {w}");
        }
        let target = config
            .target
            .as_ref()
            .map(|t| t.endpoint.clone())
            .unwrap_or_default();
        let result = crate::transport::drive(&config, &target, false, Signals::Graceful);
        no_stale_outputs(&config, result.map_err(AppError::from))?
    } else {
        let config = Config::from_args(&Config::embedded_defaults(args))?;
        writable_outputs(&config)?;
        no_stale_outputs(&config, run_embedded(&config))?
    };
    write_outputs(&result)?;
    let verdict = result.verdict();
    let by_design = result.config.times_out_by_design();
    if verdict.unmeasured {
        eprintln!(
            "sockpool-loadgen: interrupted before the measured window opened (during --start-at's wait or the \
             warm-up): nothing was measured"
        );
    } else if verdict.no_answer {
        let errors = &result.total.errors;
        // Timing out on purpose is no protocol mismatch.
        // No error at all: every connect was still in progress at the end (a TLS handshake nobody answers).
        let in_progress = crate::runner::connects_in_progress(result.config.connect_timeout);
        let hint = by_design
            .or_else(|| errors.protocol_mismatch_hint(result.config.protocol.name()))
            .or_else(|| {
                result
                    .health
                    .warnings
                    .contains(&in_progress)
                    .then_some(in_progress)
            })
            .map_or_else(String::new, |h| format!(": {h}"));
        eprintln!(
            "sockpool-loadgen: no request to {} got a reply ({} errors){hint}; {}",
            result.target,
            errors.total(),
            first_example(&result.total)
        );
    } else {
        for line in verdict.crossed_lines() {
            eprintln!("sockpool-loadgen: threshold crossed: {line}");
        }
        if let Some(line) = unsent_line(&result, &verdict) {
            eprintln!("sockpool-loadgen: {line}");
        }
        if let Some(line) = stray_line(&result, &verdict) {
            eprintln!("sockpool-loadgen: {line}");
        }
        if let Some(line) = result.total.errors.reply_limit_hint() {
            eprintln!("sockpool-loadgen: {line}");
        }
        // Replies came, and not one was right: as likely another protocol's server as a broken one, unless
        // they decoded and failed only what was asked of them (`--expect`, an HTTP status): a `GET` of a
        // missing key against `--expect x` is no protocol mismatch.
        let t = &result.total;
        let c = &result.config;
        if t.ok == 0 && t.errors.get(crate::recorder::ErrorKind::BadReply) > 0 {
            let asked = (c.check.expect.is_some() || c.protocol == Protocol::Http)
                && t.errors.get(crate::recorder::ErrorKind::Protocol) == 0;
            let hint = match asked {
                true => {
                    Some("every reply failed the check (--expect, --expect-status)".to_string())
                }
                false => t.errors.protocol_mismatch_hint(c.protocol.name()),
            };
            if let Some(h) = hint {
                eprintln!(
                    "sockpool-loadgen: no reply was right: {h}; {}",
                    first_example(t)
                );
            }
        }
    }
    Ok(verdict.exit_code())
}

/// When the `stray` threshold was crossed, the line that says what it means: the server sent bytes with no
/// request in flight, so its replies cannot be matched to requests (`stray>0: measured 4` alone says little).
fn stray_line(result: &RunResult, verdict: &crate::verdict::Verdict) -> Option<String> {
    let crossed = verdict
        .thresholds
        .iter()
        .any(|j| j.crossed && j.expr.starts_with("stray"));
    crossed.then(|| {
        format!(
            "{} connection(s) got bytes with no request in flight: the server sent replies nobody asked for, so \
             replies on those connections may have answered other requests than they seemed to (--fail-on \
             'stray>N' allows up to N)",
            result.health.stray
        )
    })
}

/// When an `errors` threshold was crossed with requests an open loop never sent among the errors (`unsent`:
/// still waiting for a free connection when `--duration` ended), the line that says what they are: not failures
/// of the server, which never saw them (`errors>0: measured 34` read as 34 failed requests).
fn unsent_line(result: &RunResult, verdict: &crate::verdict::Verdict) -> Option<String> {
    let unsent = result.total.errors.get(crate::recorder::ErrorKind::Unsent);
    let errors_crossed = verdict
        .thresholds
        .iter()
        .any(|j| j.crossed && j.expr.starts_with("errors"));
    (unsent > 0 && errors_crossed).then(|| {
        format!(
            "{unsent} of the {} errors are unsent: requests still waiting for a free connection (every one busy) \
             when --duration ended, never sent to the server (what kept the connections busy shows as the \
             report's pool wait)",
            result.total.errors.total()
        )
    })
}

/// The first failure example of `total` for a one-line message (`e.g. closed: the server closed the connection
/// after 13 bytes …; see the report`): what the server said, without opening the report.
fn first_example(total: &crate::recorder::Interval) -> String {
    match total.details.examples().next() {
        Some((kind, text)) => format!("e.g. {}: {text}; see the report", kind.name()),
        None => "see the report".into(),
    }
}

/// A run that ended without a report (the target unreachable, a set-up failure) leaves nothing at its output
/// paths: a report an earlier run left there is removed, so that a script reading it after exit 3 does not read
/// that run's pass.
fn no_stale_outputs<T>(config: &Config, result: Result<T, AppError>) -> Result<T, AppError> {
    if result.is_err() {
        let json = match &config.json {
            Some(JsonOut::File(p)) => Some(p),
            _ => None,
        };
        for path in json.into_iter().chain(&config.hgrm).chain(&config.hlog) {
            crate::outfile::remove_stale(path);
        }
    }
    result
}

/// Fails before the run, not after it, when `--json FILE` or `--hgrm FILE` cannot be written (the `.hlog` is
/// opened before the run anyway).
fn writable_outputs(config: &Config) -> Result<(), AppError> {
    let json = match &config.json {
        Some(JsonOut::File(p)) => Some(p),
        _ => None,
    };
    for path in json.into_iter().chain(config.hgrm.as_ref()) {
        check_writable(path).map_err(|source| AppError::Output {
            path: path.display().to_string(),
            source,
        })?;
        // Until this run writes it, a second Ctrl-C removes what an earlier run left there.
        crate::outfile::expect(path);
    }
    Ok(())
}

/// Whether `path` can be written, found out before a run that would write it at its end: nothing is
/// truncated, and a file this creates is removed again.
pub(crate) fn check_writable(path: &std::path::Path) -> std::io::Result<()> {
    // A device or a FIFO is written in place at the end (see `outfile`): opening a FIFO now to look would
    // hand its reader an end of file before the report.
    if crate::outfile::is_special(path) && !path.is_dir() {
        return Ok(());
    }
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

fn run_embedded(config: &Config) -> Result<RunResult, AppError> {
    use sockpool_server::{Server, ServerConfig};
    let mut sc = ServerConfig::default();
    let spec = format!("{}=127.0.0.1:0", config.protocol.name());
    sc.listeners = vec![spec
        .parse()
        .map_err(|e| AppError::Embedded(format!("{spec}: {e}")))?];
    sc.workers = sc.workers.clamp(1, 2);
    let server = Server::bind(sc).map_err(|e| AppError::Embedded(e.to_string()))?;
    let addr = match config.protocol {
        Protocol::Udp => server.udp_addr(),
        p => server.tcp_addr(proto(p)),
    }
    .ok_or_else(|| AppError::Embedded("no listener bound".into()))?;
    let handle = server.spawn();
    if !config.quiet {
        eprintln!(
            "sockpool-loadgen: no --target given, so this is a short demo against an embedded sockpool-server on {addr}"
        );
    }
    let result = crate::transport::drive(config, &addr.to_string(), true, Signals::Graceful);
    let _ = handle.shutdown();
    Ok(result?)
}

/// The reference server's name for `p`.
pub fn proto(p: Protocol) -> sockpool_server::Proto {
    use sockpool_server::Proto as P;
    match p {
        Protocol::Framed => P::Framed,
        Protocol::Echo => P::Echo,
        Protocol::Line => P::Line,
        Protocol::Http => P::Http,
        Protocol::Resp => P::Resp,
        Protocol::Udp => P::Udp,
    }
}

/// Prints the table (unless quiet) and writes `--json`, `--hgrm`.
pub fn write_outputs(result: &RunResult) -> Result<(), AppError> {
    let c = &result.config;
    let stdout_json = matches!(c.json, Some(JsonOut::Stdout));
    if !c.quiet {
        // With `--json -` stdout carries the document; the table goes to stderr.
        let table = result.to_table();
        if stdout_json {
            eprint!("{table}");
        } else {
            print!("{table}");
        }
        if result.embedded {
            let hint = format!(
                "\n  This measured an embedded sockpool-server. Point it at your own server:\n    \
                 sockpool-loadgen run --target HOST:PORT --protocol {} --connections {} --duration 30s\n    \
                 (protocols: framed echo line http resp udp; --rate R for an open loop; --json - for JSON)\n",
                c.protocol.name(),
                c.connections
            );
            if stdout_json {
                eprint!("{hint}");
            } else {
                print!("{hint}");
            }
        }
    }
    let out_err = |path: &str| {
        let path = path.to_string();
        move |source| AppError::Output { path, source }
    };
    if let Some(j) = &c.json {
        // An agent's document is one line, the last of its stdout: `kubectl logs` output is `merge`'s input.
        let text = if c.agent.is_some() {
            serde_json::to_string(&result.to_json())
        } else {
            serde_json::to_string_pretty(&result.to_json())
        }
        .unwrap_or_default();
        match j {
            JsonOut::Stdout => {
                let mut o = std::io::stdout().lock();
                writeln!(o, "{text}").map_err(out_err("stdout"))?;
            }
            JsonOut::File(p) => {
                crate::outfile::write(p, text + "\n").map_err(out_err(&p.display().to_string()))?
            }
        }
    }
    if let Some(p) = &c.hgrm {
        let text = crate::hdr::percentile_distribution(&result.total.corrected);
        crate::outfile::write(p, text).map_err(out_err(&p.display().to_string()))?;
    }
    Ok(())
}
