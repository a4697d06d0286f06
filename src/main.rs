//! The `aegpu` command line: parses the arguments and runs the command (see `cli`).

use std::io::Write;

mod cli;

/// The library logs through the `log` facade and never prints; the command line shows its warnings
/// (and errors) on stderr as `warning: ...`, the way it printed them before. `AEGPU_LOG=info` or
/// `debug` shows more. A dozen lines instead of a logging crate: nothing here needs filters or
/// formats.
struct StderrLogger(log::LevelFilter);

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.0
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug | log::Level::Trace => "debug",
            };
            // Never panic on a closed stderr.
            let _ = writeln!(std::io::stderr(), "{level}: {}", record.args());
        }
    }

    fn flush(&self) {}
}

fn main() {
    let level = match std::env::var("AEGPU_LOG").as_deref() {
        Ok("error") => log::LevelFilter::Error,
        Ok("info") => log::LevelFilter::Info,
        Ok("debug") | Ok("trace") => log::LevelFilter::Debug,
        Ok("off") => log::LevelFilter::Off,
        _ => log::LevelFilter::Warn,
    };
    if log::set_boxed_logger(Box::new(StderrLogger(level))).is_ok() {
        log::set_max_level(level);
    }
    let cli = cli::Cli::parse_args();
    if let Err(e) = cli::run(cli) {
        // Never panic on a closed stderr; the exit code still tells.
        let _ = writeln!(std::io::stderr(), "error: {e}");
        // 130: interrupted by Ctrl-C (SIGINT), as shells report it.
        let code = if matches!(e, aegpu::error::Error::Interrupted(_)) { 130 } else { 1 };
        std::process::exit(code);
    }
}
