//! The `aegpu` command line: parses the arguments and runs the command (see `aegpu::cli`).

use std::io::Write;

fn main() {
    let cli = aegpu::cli::Cli::parse_args();
    if let Err(e) = aegpu::cli::run(cli) {
        // Never panic on a closed stderr; the exit code still tells.
        let _ = writeln!(std::io::stderr(), "error: {e}");
        // 130: interrupted by Ctrl-C (SIGINT), as shells report it.
        let code = if matches!(e, aegpu::error::Error::Interrupted(_)) { 130 } else { 1 };
        std::process::exit(code);
    }
}
