//! Zeroed buffers for states and probability vectors: large ones come straight from `mmap`, so the
//! kernel hands out zero pages lazily, advised as transparent huge pages (`MADV_HUGEPAGE`). On a VM a
//! 4 KiB page fault costs microseconds; a 1 GiB state touched page by page spent seconds there, and
//! huge pages cut the faults and TLB misses 512-fold. (`alloc_zeroed` with a large alignment writes
//! every byte up front, touching each page; `Vec` cannot carry another allocator's memory.)

use num_complex::Complex64;
use rayon::prelude::*;
use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Mutex;

/// Buffers at least this large are mapped directly.
const MAP_THRESHOLD: usize = 2 << 20;

/// Mappings kept for reuse: repeated simulations of one size (fragment variants, benchmark
/// repetitions) then skip the kernel's page clearing and faults.
const RECYCLE_MAX_BYTES: usize = 256 << 20;
const RECYCLE_SLOTS: usize = 4;

/// Freed mappings (address, bytes) waiting for reuse.
static RECYCLED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Plain-data types for which every bit pattern, all-zero included, is a valid value.
///
/// # Safety
/// Implement only for plain data where any bytes are a valid value.
pub unsafe trait ZeroValid: Copy + Send + Sync {}
// SAFETY: Complex64 is two f64; every bit pattern is a valid f64.
unsafe impl ZeroValid for Complex64 {}
// SAFETY: every bit pattern is a valid f64.
unsafe impl ZeroValid for f64 {}

pub struct ZeroedBuf<T: ZeroValid> {
    ptr: NonNull<T>,
    len: usize,
    mapped: bool,
    /// Came from the recycle bin: contents are stale until overwritten.
    recycled: bool,
    _owns: PhantomData<T>,
}

/// The amplitudes of a state vector.
pub type AmpBuffer = ZeroedBuf<Complex64>;

// SAFETY: the buffer owns its memory exclusively, like a Vec<T>.
unsafe impl<T: ZeroValid + Send> Send for ZeroedBuf<T> {}
unsafe impl<T: ZeroValid + Sync> Sync for ZeroedBuf<T> {}

impl<T: ZeroValid> ZeroedBuf<T> {
    /// `len` zero values; callers check the size against the memory available first.
    pub fn zeroed(len: usize) -> Self {
        let mut buf = Self::for_overwrite(len);
        if buf.recycled {
            // Zeroing in parallel costs less than the page faults of a fresh mapping.
            buf.par_chunks_mut(1 << 16)
                .for_each(|c| c.iter_mut().for_each(|v| *v = zero_value()));
            buf.recycled = false;
        }
        buf
    }

    /// `len` values with arbitrary (valid) contents, for callers that overwrite every element.
    pub fn for_overwrite(len: usize) -> Self {
        let bytes = len.max(1) * std::mem::size_of::<T>();
        if let Some(ptr) = take_recycled(bytes) {
            return Self {
                ptr: ptr.cast(),
                len,
                mapped: true,
                recycled: true,
                _owns: PhantomData,
            };
        }
        #[cfg(target_os = "linux")]
        if bytes >= MAP_THRESHOLD {
            if let Some(ptr) = map_zeroed(bytes) {
                return Self {
                    ptr: ptr.cast(),
                    len,
                    mapped: true,
                    recycled: false,
                    _owns: PhantomData,
                };
            }
        }
        let layout = Self::layout(len);
        // SAFETY: the layout has non-zero size; zero bytes are a valid T (ZeroValid).
        let raw = unsafe { alloc_zeroed(layout) } as *mut T;
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        Self {
            ptr,
            len,
            mapped: false,
            recycled: false,
            _owns: PhantomData,
        }
    }

    fn layout(len: usize) -> Layout {
        Layout::array::<T>(len.max(1)).unwrap_or_else(|_| handle_alloc_error(Layout::new::<T>()))
    }

    fn bytes(&self) -> usize {
        self.len.max(1) * std::mem::size_of::<T>()
    }
}

fn zero_value<T: ZeroValid>() -> T {
    // SAFETY: all-zero bytes are a valid T (ZeroValid).
    unsafe { std::mem::zeroed() }
}

/// Takes a recycled mapping of exactly `bytes`, if one is waiting.
fn take_recycled(bytes: usize) -> Option<NonNull<u8>> {
    let mut bin = RECYCLED.lock().ok()?;
    let at = bin.iter().position(|&(_, b)| b == bytes)?;
    let (addr, _) = bin.swap_remove(at);
    NonNull::new(addr as *mut u8)
}

/// Keeps a mapping for reuse; false when it should be unmapped instead.
fn recycle(addr: usize, bytes: usize) -> bool {
    if bytes > RECYCLE_MAX_BYTES {
        return false;
    }
    let Ok(mut bin) = RECYCLED.lock() else {
        return false;
    };
    if bin.len() >= RECYCLE_SLOTS {
        return false;
    }
    bin.push((addr, bytes));
    true
}

#[cfg(target_os = "linux")]
fn map_zeroed(bytes: usize) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping owned by the caller; pages read as zero until written.
    unsafe {
        let raw = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if raw == libc::MAP_FAILED {
            return None;
        }
        // Best effort: failure only means 4 KiB pages.
        libc::madvise(raw, bytes, libc::MADV_HUGEPAGE);
        NonNull::new(raw as *mut u8)
    }
}

impl<T: ZeroValid> Deref for ZeroedBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr is valid for len initialised elements for the buffer's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroValid> DerefMut for ZeroedBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroValid> Drop for ZeroedBuf<T> {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if self.mapped {
            let bytes = self.bytes();
            if !recycle(self.ptr.as_ptr() as usize, bytes) {
                // SAFETY: mapped in `for_overwrite` with exactly this length.
                unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, bytes) };
            }
            return;
        }
        // SAFETY: allocated in `zeroed` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.len)) }
    }
}

impl<T: ZeroValid> Clone for ZeroedBuf<T> {
    fn clone(&self) -> Self {
        let mut copy = Self::zeroed(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

impl<T: ZeroValid> std::fmt::Debug for ZeroedBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZeroedBuf({} values)", self.len)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_mappings_come_back_zeroed() {
        let len = (MAP_THRESHOLD / 16) * 3;
        for _ in 0..3 {
            let mut b = AmpBuffer::zeroed(len);
            assert!(b.iter().all(|a| *a == Complex64::new(0.0, 0.0)));
            b.iter_mut().for_each(|a| *a = Complex64::new(3.0, 4.0));
            let mut p = ZeroedBuf::<f64>::for_overwrite(len);
            p.iter_mut().for_each(|v| *v = 1.0);
        }
    }

    #[test]
    fn zeroed_buffers_of_all_sizes() {
        for len in [1usize, 2, 1 << 10, 1 << 18] {
            let mut b = AmpBuffer::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|a| *a == Complex64::new(0.0, 0.0)));
            b[len - 1] = Complex64::new(1.0, 2.0);
            let c = b.clone();
            assert_eq!(c[len - 1], Complex64::new(1.0, 2.0));
        }
    }
}
