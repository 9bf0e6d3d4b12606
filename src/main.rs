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
/// daemon that mostly waits. Freed pages go back to the system at once: with a decay of 1 s,
/// the garbage of the start-up lists (2,000 Deployments in under 3 s) was still resident at
/// the peak, 65 MiB against 8 MiB of store.
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 67] =
    b"background_thread:true,narenas:1,dirty_decay_ms:0,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    rollout_guard::app::cli::main()
}
