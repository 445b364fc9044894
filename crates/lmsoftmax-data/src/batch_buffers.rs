//! Host buffers for batch images, reused from batch to batch.
//!
//! An ImageNet batch of 128 is 77 MB of `f32`. Allocated afresh for every batch, the kernel
//! hands out new pages and zeroes them on first write (a third of a loader thread's time in
//! profiles, and erratic when transparent huge pages have to be compacted first). Instead, the
//! buffer of a batch goes back to a small process-wide cache when the last tensor viewing it is
//! dropped, and the next batch is written into it: the same idea as PyTorch's caching host
//! allocator for pinned memory.
//!
//! A batch reaches Burn without a copy: [`into_bytes`] wraps the buffer in an
//! [`AllocationController`] whose drop returns it here.

use std::mem::MaybeUninit;
use std::sync::Mutex;

use burn_std::{AccessError, AccessPolicy, AllocationController, AllocationProperty, Bytes};

/// Buffers kept for reuse at most; any beyond are freed. Enough for the batches a loader has in
/// flight (prefetch queue, workers, the consumer's current batch) to come back without waiting.
const KEEP: usize = 16;

/// Free buffers, most recently returned last.
static FREE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of exactly `len` elements whose contents are unspecified (a previous batch's values
/// or zeros): the caller must overwrite all of it.
///
/// ```
/// let buf = lmsoftmax_data::batch_buffers::take(1000);
/// assert_eq!(buf.len(), 1000);
/// ```
pub fn take(len: usize) -> Vec<f32> {
    let reused = {
        let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        best.map(|i| free.swap_remove(i))
    };
    match reused {
        Some(mut buf) => {
            // Shrinking keeps the old values; growing within the capacity zeroes the tail only.
            buf.resize(len, 0.0);
            buf
        }
        None => {
            let mut buf = vec![0.0f32; len];
            advise_huge_pages(&mut buf);
            buf
        }
    }
}

/// Returns a buffer for reuse (freed instead when the cache is full or the buffer is small).
///
/// ```
/// use lmsoftmax_data::batch_buffers::{give, take};
/// give(take(1 << 20));
/// // the next request that fits gets a cached buffer back (this one, unless another thread
/// // returned one in between)
/// assert_eq!(take(1 << 20).len(), 1 << 20);
/// ```
pub fn give(buf: Vec<f32>) {
    // Small buffers cost little to allocate; caching them would only pin memory.
    if buf.capacity() < (1 << 18) {
        return;
    }
    let mut free = FREE.lock().unwrap_or_else(|e| e.into_inner());
    free.push(buf);
    if free.len() > KEEP {
        // Drop the smallest: the large ones are the expensive ones to make again.
        if let Some(i) = free
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)
        {
            let dropped = free.swap_remove(i);
            drop(free);
            drop(dropped);
        }
    }
}

/// Number of buffers waiting for reuse (for tests and diagnostics).
pub fn cached() -> usize {
    FREE.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// Wraps `buf` as Burn [`Bytes`] without copying; the buffer comes back to the cache when the
/// bytes (and every tensor made from them) are dropped.
///
/// ```
/// use burn::tensor::{Tensor, TensorData};
/// let device = Default::default();
/// let bytes = lmsoftmax_data::batch_buffers::into_bytes(vec![1.0, 2.0, 3.0]);
/// let data = TensorData::from_bytes(bytes, [3], burn::tensor::DType::F32);
/// let t = Tensor::<1>::from_data(data, &device);
/// assert_eq!(t.into_data().try_to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0]);
/// ```
pub fn into_bytes(buf: Vec<f32>) -> Bytes {
    let len = std::mem::size_of_val(buf.as_slice());
    let controller = Recycled { buf };
    // SAFETY: the first `len` bytes of the controller's memory are the buffer's `len / 4`
    // initialised `f32` values.
    unsafe { Bytes::from_controller(Box::new(controller), len) }
}

/// The allocation behind [`into_bytes`]: a `Vec<f32>` that goes back to the cache on drop.
struct Recycled {
    buf: Vec<f32>,
}

impl AllocationController for Recycled {
    fn alloc_align(&self) -> usize {
        align_of::<f32>()
    }

    fn property(&self) -> AllocationProperty {
        AllocationProperty::Native
    }

    fn memory(&self, _policy: AccessPolicy) -> Result<&[MaybeUninit<u8>], AccessError> {
        let v = &self.buf;
        // SAFETY: the vector's `len` initialised f32 values, viewed as bytes (MaybeUninit<u8>
        // has no validity requirement and alignment 1).
        Ok(unsafe {
            std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v.as_slice()))
        })
    }

    unsafe fn memory_mut(
        &mut self,
        _policy: AccessPolicy,
    ) -> Result<&mut [MaybeUninit<u8>], AccessError> {
        let v = &mut self.buf;
        let bytes = std::mem::size_of_val(v.as_slice());
        // SAFETY: as in `memory`; the caller writes only initialised bytes (trait contract), and
        // any bit pattern is a valid f32.
        Ok(unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), bytes) })
    }

    fn capacity(&self) -> usize {
        std::mem::size_of_val(self.buf.as_slice())
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.buf));
    }
}

/// Asks the kernel to back a large, new buffer with transparent huge pages: an ImageNet batch
/// (77 MB) then takes a few dozen page faults on first write instead of ~19,000. A hint only;
/// nothing changes where the kernel does not offer them.
fn advise_huge_pages(buf: &mut [f32]) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let bytes = std::mem::size_of_val(buf);
        if bytes < 4 << 20 {
            return;
        }
        let start = buf.as_mut_ptr() as usize;
        let aligned = start.div_ceil(PAGE) * PAGE;
        let len = (start + bytes - aligned) / PAGE * PAGE;
        // SAFETY: the range lies inside `buf`'s allocation; MADV_HUGEPAGE changes no contents.
        unsafe {
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_tensor_returns_its_buffer_which_the_next_take_reuses() {
        // Large enough to be cached, and an odd size no other test asks for.
        let len = (1 << 20) + 7;
        let mut buf = take(len);
        buf.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
        let at = buf.as_ptr();
        let data =
            burn::tensor::TensorData::from_bytes(into_bytes(buf), [len], burn::tensor::DType::F32);
        let t = burn::tensor::Tensor::<1>::from_data(data, &Default::default());
        let back = t.clone().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(back[12345], 12345.0);
        assert_eq!(back[len - 1], (len - 1) as f32);
        drop(t);
        // Other tests may return buffers concurrently, so look for ours among a few takes.
        let mut taken = Vec::new();
        let mut found = false;
        for _ in 0..KEEP + 1 {
            let b = take(len);
            assert_eq!(b.len(), len);
            found |= b.as_ptr() == at;
            taken.push(b);
        }
        assert!(found, "the tensor's buffer did not come back to the cache");
    }

    #[test]
    fn small_buffers_are_not_cached_and_the_cache_is_bounded() {
        let before = cached();
        give(vec![0.0; 16]);
        assert!(cached() <= before.max(KEEP));
        for _ in 0..KEEP + 3 {
            give(vec![0.0; 1 << 18]);
        }
        assert!(cached() <= KEEP);
    }

    #[test]
    fn growing_a_reused_buffer_keeps_its_length_exact() {
        give(vec![1.0; 300_000]);
        let b = take(299_000);
        assert_eq!(b.len(), 299_000);
        give(b);
        let b = take(1 << 19);
        assert_eq!(b.len(), 1 << 19);
    }
}
