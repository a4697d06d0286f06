//! The `aegpu` command line: parses the arguments and runs the command (see `aegpu::cli`).

use clap::Parser;

fn main() {
    let cli = aegpu::cli::Cli::parse();
    if let Err(e) = aegpu::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
