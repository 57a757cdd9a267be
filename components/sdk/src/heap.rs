//! The memory allocator of a guest built with this crate: dlmalloc, whose first region is a
//! heap the component brings in its initial linear memory, so a request that fits in it never
//! grows the memory.
//!
//! Growing a linear memory costs the host a system call on the instance's memory (`mprotect`),
//! and the next instance in the same slot another one to take the growth back, each followed
//! by a flush of the TLB of every core that runs the host. Rust's own allocator on `wasm32-unknown-unknown` grows the
//! memory for its first allocation, so every fresh instance paid for both. The heap here is a
//! zeroed static: it costs no bytes in the component (zeroed data is not stored), and the
//! host's memory only where a request writes to it.
//!
//! Only on `wasm32` without threads (`wasm32-unknown-unknown`, which the workspace builds its
//! guests for, and `wasm32-wasip2`, where the C library's own allocator, if anything calls it,
//! grows the memory beside this one): nothing else can call the allocator while it runs.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use core::ptr;

use dlmalloc::{Allocator, Dlmalloc};

/// Bytes of the heap in the initial memory: four times the one page of memory a profile
/// request of the built-in devices API grew by under Rust's own allocator.
const INITIAL_HEAP: usize = 256 << 10;

/// The size of a WebAssembly page, by which the memory grows.
const PAGE: usize = 64 << 10;

/// The heap in the initial memory, aligned for any chunk dlmalloc places in it.
#[repr(C, align(16))]
struct InitialHeap(UnsafeCell<[u8; INITIAL_HEAP]>);

// SAFETY: the heap's bytes are handed once to the allocator (`Memory::taken`), which is only
// ever called from the one thread a `wasm32` guest without threads has.
unsafe impl Sync for InitialHeap {}

static INITIAL: InitialHeap = InitialHeap(UnsafeCell::new([0; INITIAL_HEAP]));

/// Where dlmalloc gets its regions: [`INITIAL`] first, for the first region that fits in it,
/// then pages of new linear memory.
struct Memory {
    /// Whether [`INITIAL`] was handed out.
    taken: Cell<bool>,
}

// SAFETY: dlmalloc's contract: `alloc` returns regions no one else uses, at least `size`
// bytes long; the memory is never given back, moved or split. Both kinds of region are zeroed
// when handed out (the initial heap is zero until dlmalloc writes it, new pages are zero), as
// `allocates_zeros` says — though dlmalloc 0.2 asks it only of regions it maps itself, which
// it never does here, and clears what `calloc` returns.
unsafe impl Allocator for Memory {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        if size <= INITIAL_HEAP && !self.taken.replace(true) {
            return (INITIAL.0.get().cast(), INITIAL_HEAP, 0);
        }
        let pages = size.div_ceil(PAGE);
        match core::arch::wasm32::memory_grow(0, pages) {
            usize::MAX => (ptr::null_mut(), 0, 0),
            first => {
                let (start, len) = (first * PAGE, pages * PAGE);
                // No Rust object may end at the top of the address space (4 GiB): a region
                // that reaches it keeps its last bytes unused.
                let len = if start.wrapping_add(len) == 0 { len - 16 } else { len };
                (start as *mut u8, len, 0)
            }
        }
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

/// The guest's global allocator.
struct Heap(UnsafeCell<Dlmalloc<Memory>>);

// SAFETY: as for `InitialHeap`: one thread, and the allocator does not call itself.
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap(UnsafeCell::new(Dlmalloc::new_with_allocator(Memory { taken: Cell::new(false) })));

// SAFETY: each method hands its arguments to dlmalloc's of the same contract; no two run at
// once (one thread, no reentry).
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).malloc(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).calloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { (*self.0.get()).free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}
