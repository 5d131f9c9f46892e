//! Cache-line prefetch hints, for the paths a server's own work leaves cold.

/// Asks the CPU to bring the cache line at `p` in, without waiting for it: folding a burst
/// of held values asks for the lines of the values a few places ahead, and a record asks
/// for its window's name tables at once, so that their misses overlap instead of following
/// one another. A hint only: it changes no value, and `p` need not point to anything.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program and cannot fault, whatever the
    // address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch`]es the lines of `bytes` bytes from `start`, at most `max_lines` of them.
#[inline(always)]
pub(crate) fn prefetch_lines<T>(start: *const T, bytes: usize, max_lines: usize) {
    const LINE: usize = 64;
    let start = start.cast::<u8>();
    let misalign = start as usize % LINE;
    let first = start.wrapping_sub(misalign);
    for offset in (0..(misalign + bytes).min(max_lines * LINE)).step_by(LINE) {
        prefetch(first.wrapping_add(offset));
    }
}
