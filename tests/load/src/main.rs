//! The `holdline-load` binary: parses arguments and hands over to [`holdline_load::cli::main`].

fn main() -> std::process::ExitCode {
    holdline_load::cli::main()
}
