//! Cache prefetch hints: a lookup that knows where its next reads lie asks for them early,
//! so that cache misses which do not depend on each other overlap.

/// Cache line size assumed for prefetching.
pub(super) const LINE: usize = 64;

/// The address of the first cache line of `len` bytes at `start` and the number of lines
/// they span.
pub(super) fn lines(start: usize, len: usize) -> (usize, usize) {
    let first = start & !(LINE - 1);
    (first, (start + len - first).div_ceil(LINE))
}

/// Asks the CPU to start loading `lines` cache lines from `first` into its caches.
pub(super) fn prefetch(first: usize, lines: usize) {
    for line in 0..lines {
        prefetch_line(first + line * LINE);
    }
}

/// Asks the CPU to start loading the cache line at `addr`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn prefetch_line(addr: usize) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: `_mm_prefetch` is a safe function that needs the `sse` target feature, which
    // every x86-64 target has (it is part of the architecture's baseline). A prefetch reads
    // nothing into the program and never faults, whatever the address: the line may be
    // freed or unmapped by now, and the hint is then only wasted.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::without_provenance(addr)) }
}

/// Other architectures go without the hint.
#[cfg(not(target_arch = "x86_64"))]
fn prefetch_line(_addr: usize) {}
