//! The `rollout-guard` binary: everything lives in the library; see `cli` for the commands.

fn main() -> std::process::ExitCode {
    rollout_guard::cli::main()
}
