//! The `cx-webhook` binary: everything lives in the library; see `cx_webhook::cli`.

fn main() -> std::process::ExitCode {
    cx_webhook::cli::main()
}
