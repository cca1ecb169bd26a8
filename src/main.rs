//! The `cx-webhook` binary: everything lives in the library; see `cx_webhook::cli`.
//!
//! The binary allocates with jemalloc: a call makes a few dozen small allocations (the parsed
//! request's strings and maps, the answer, the span's fields), and glibc's malloc and free cost
//! about 160 instructions a pair on that path, jemalloc's about 60 (docs/testing.md has the
//! measurement). jemalloc's background thread hands memory freed after a flood back to the OS
//! within seconds, as glibc did with the server's periodic `malloc_trim`: after
//! `scripts/edges.py flood`, 18 MB against glibc's 17 MB. mimalloc was as fast but held 49 MB
//! there (its worker-thread heaps keep freed pages). The library leaves the choice to whoever
//! links it.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start (`_RJEM_MALLOC_CONF` in the environment can add to
/// them): one background thread (the default is one per CPU) purges unused dirty pages after
/// `dirty_decay_ms`, so resident memory falls back after a burst even when no thread allocates
/// any more.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 =
    &b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

fn main() -> std::process::ExitCode {
    cx_webhook::cli::main()
}
