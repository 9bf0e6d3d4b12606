//! The `rollout-guard` binary: everything lives in the library; see `cli` for the commands.

/// jemalloc rather than glibc's malloc, so that the daemon's resident memory follows what it
/// uses: glibc's per-thread arenas kept the freed heap of the initial lists and of the
/// evaluations' responses (78 MiB resident for a few MiB of store; see BENCHMARKS.md,
/// "Controller cost").
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read by jemalloc at its first allocation (a C `const char *`; the
/// `_RJEM_MALLOC_CONF` environment variable still overrides them). One arena is plenty for a
/// daemon that mostly waits; freed pages go back to the system after a second, by a
/// background thread, so an idle daemon gives back what its start-up lists used.
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 70] =
    b"background_thread:true,narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    rollout_guard::cli::main()
}
