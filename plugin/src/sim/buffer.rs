//! Zeroed buffers for states and probability vectors: large ones come straight from `mmap`, so the
//! kernel hands out zero pages lazily, advised as transparent huge pages (`MADV_HUGEPAGE`). On a VM a
//! 4 KiB page fault costs microseconds; a 1 GiB state touched page by page spent seconds there, and
//! huge pages cut the faults and TLB misses 512-fold. (`alloc_zeroed` with a large alignment writes
//! every byte up front, touching each page; `Vec` cannot carry another allocator's memory.)

use num_complex::Complex64;
use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Buffers at least this large are mapped directly.
const MAP_THRESHOLD: usize = 2 << 20;

/// Types whose all-zero bit pattern is a valid value.
///
/// # Safety
/// Implement only for plain data where zero bytes are a valid value.
pub unsafe trait ZeroValid: Copy {}
// SAFETY: Complex64 is two f64; all-zero bits are 0.0 + 0.0i.
unsafe impl ZeroValid for Complex64 {}
// SAFETY: all-zero bits are 0.0.
unsafe impl ZeroValid for f64 {}

pub struct ZeroedBuf<T: ZeroValid> {
    ptr: NonNull<T>,
    len: usize,
    mapped: bool,
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
        let bytes = len.max(1) * std::mem::size_of::<T>();
        #[cfg(target_os = "linux")]
        if bytes >= MAP_THRESHOLD {
            if let Some(ptr) = map_zeroed(bytes) {
                return Self {
                    ptr: ptr.cast(),
                    len,
                    mapped: true,
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
            // SAFETY: mapped in `zeroed` with exactly this length.
            unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.bytes()) };
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
