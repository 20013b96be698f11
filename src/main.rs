//! The `weir` binary: parse arguments and hand over to the library's CLI.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
