//! A counting global allocator: allocations per request of the clients (this process) and of
//! the servers (the same binary re-executed; asked over stdin).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

/// Allocations (alloc, alloc_zeroed, realloc) of this process so far. librdkafka's own C
/// allocations are not counted (they do not go through Rust's allocator).
pub fn count() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// In a server process: answers each `allocs` line on stdin with `allocs N` on stdout, and
/// exits on `exit`.
pub fn answer_on_stdin() {
    std::thread::spawn(|| {
        use std::io::BufRead as _;
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            match line.trim() {
                "allocs" => println!("allocs {}", count()),
                // A normal exit, so that a profiler around the process writes its data.
                "exit" => std::process::exit(0),
                _ => {}
            }
        }
    });
}
