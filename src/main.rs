//! The `cx-webhook` binary: everything lives in the library; see `cx_webhook::cli`.
//!
//! The binary allocates with mimalloc: a call makes a few dozen small allocations (the parsed
//! request's strings and maps, the answer, the log line's span), and glibc's malloc and free cost
//! about 160 instructions a pair on that path against mimalloc's few dozen (docs/testing.md has
//! the measurement). The library leaves the choice to whoever links it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cx_webhook::cli::main()
}
