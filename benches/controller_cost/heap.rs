//! How much heap the daemon's Deployment store needs, measured in the benchmark process: the
//! same `k8s_openapi` objects, deserialized from the same JSON and stripped of `managedFields`
//! as the daemon's watcher does, counted by a global allocator that keeps per-thread totals
//! (so the fake server running on other threads does not pollute the count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::reflector::ObjectRef;
use rollout_guard::controller::slim;
use serde_json::Value;

/// The system allocator, counting live bytes and allocations per thread.
pub struct Counting;

thread_local! {
    static BYTES: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize, allocations: isize) {
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    let _ = BYTES.try_with(|b| b.set(b.get() + bytes));
    let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + allocations));
}

// SAFETY: every call is forwarded to `System` unchanged; the counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize), -1);
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize, 0);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn now() -> (isize, isize) {
    (BYTES.with(Cell::get), ALLOCATIONS.with(Cell::get))
}

/// Heap in use: bytes requested and allocations (each costs glibc malloc about 16 bytes more
/// than requested, rounded up).
#[derive(Clone, Copy, Debug, Default)]
pub struct Heap {
    pub bytes: usize,
    pub allocations: usize,
}

/// What to keep of each Deployment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Keep {
    /// What the daemon's store keeps (`controller::slim`, watching by annotation).
    Store,
    /// Everything but `managedFields`, as the store kept every Deployment before `slim` (for
    /// comparison).
    Whole,
    /// Everything, as a list page is deserialized before the watcher slims it.
    Page,
}

/// Live heap of the Deployments, each kept as `keep` says, by reference behind an `Arc` as in
/// the daemon's store.
pub fn store_of(objects: &[Value], keep: Keep) -> Heap {
    let texts: Vec<Vec<u8>> = objects
        .iter()
        .map(|o| serde_json::to_vec(o).expect("JSON"))
        .collect();
    let before = now();
    let store: HashMap<ObjectRef<Deployment>, Arc<Deployment>> = texts
        .iter()
        .filter_map(|t| serde_json::from_slice::<Deployment>(t).ok())
        .map(|mut d| {
            match keep {
                Keep::Store => slim(&mut d, false),
                Keep::Whole => d.metadata.managed_fields = None,
                Keep::Page => {}
            }
            (ObjectRef::from_obj(&d), Arc::new(d))
        })
        .collect();
    let after = now();
    drop(store);
    Heap {
        bytes: (after.0 - before.0).max(0) as usize,
        allocations: (after.1 - before.1).max(0) as usize,
    }
}
