//! What every nba binary does around its work: logging, a runtime, exit codes.

use std::future::Future;
use std::process::ExitCode;

use nba_pipeline::Stage;

use crate::{KafkaArgs, LogFormat, OpsArgs, run_stage, shutdown_signal};

/// Logs to stderr, for people or as JSON lines; `RUST_LOG` (e.g.
/// `RUST_LOG=debug`) sets the level, `info` by default. At `info` nba logs
/// counts and settings, never a customer's attributes.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Writes `text` to stdout; a reader that stopped early (`| head`) is no
/// failure (`print!` would panic).
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Runs `work` on a multi-threaded runtime; an error is printed with its causes
/// and gives exit code 1.
pub fn run_main<F>(work: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The whole `main` of a stage binary: log, run `stage` against the broker until
/// SIGINT/SIGTERM, drain, commit, exit.
pub fn run_stage_binary<S: Stage + 'static>(stage: S, args: &KafkaArgs, ops: &OpsArgs) -> ExitCode {
    init_logging(ops.log_format);
    run_main(async {
        run_stage(stage, args, ops, shutdown_signal()).await?;
        Ok(())
    })
}
