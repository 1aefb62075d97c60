//! The `logbrook` binary: all the work is in `logbrook::cli`.

fn main() {
    std::process::exit(logbrook::cli::main_with_args(std::env::args().collect()));
}
