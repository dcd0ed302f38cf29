//! A lying length prefix costs what the peer sent, not what it announced: reading a frame that
//! announces (nearly) the largest allowed length and then ends allocates nothing near that
//! length. Its own test binary, because it counts every allocation of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::remote::wire::{ClientFrame, DEFAULT_MAX_FRAME_BYTES, FrameError, read_frame};

/// The system allocator, recording the largest single allocation.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, that is from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

#[tokio::test]
async fn a_frame_announcing_the_limit_and_ending_allocates_little() {
    let mut input = DEFAULT_MAX_FRAME_BYTES.to_be_bytes().to_vec();
    input.extend([2, 0, 1]);
    LARGEST.store(0, Ordering::Relaxed);
    let read = read_frame::<_, ClientFrame>(&mut &input[..], DEFAULT_MAX_FRAME_BYTES).await;
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        matches!(read, Err(FrameError::Truncated { got: 3, .. })),
        "{read:?}"
    );
    assert!(
        largest < 1 << 20,
        "a 3-byte body allocated {largest} bytes (announced {DEFAULT_MAX_FRAME_BYTES})"
    );
}
