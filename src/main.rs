//! The `berth` command; everything it does is in the library (`src/lib.rs`).

fn main() -> std::process::ExitCode {
    berth::cli::main()
}
