//! A vector that grows by chunks of fixed size: growing never copies what
//! it holds, and an element never moves once it is in.
//!
//! The route table is one. Grown by doubling, a table of 1M destinations
//! (about 100 MB of entries) would be copied whole on the engine's thread
//! at its last growth, every other input waiting, and held twice while it
//! is; a sidecar receiving a table would so also touch about twice the
//! memory its table needs, each page of which the kernel (and, on a VM, the
//! hypervisor) has to provide first.

use std::ops::{Index, IndexMut};

/// Elements per chunk: with route entries of about 100 B, chunks of about
/// 100 KB, so the last chunk's unused room stays small next to a table.
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

#[derive(Clone, Debug)]
pub(crate) struct ChunkedVec<T> {
    /// Every chunk but the last is full; each holds room for `CHUNK`.
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        Self { chunks: Vec::new(), len: 0 }
    }
}

impl<T> ChunkedVec<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, value: T) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("a chunk with room").push(value);
        self.len += 1;
    }

    /// Appends elements made by `make` until there are `len`; never
    /// shrinks.
    pub(crate) fn grow_with(&mut self, len: usize, mut make: impl FnMut() -> T) {
        while self.len < len {
            self.push(make());
        }
    }

    pub(crate) fn iter(&self) -> std::iter::Flatten<std::slice::Iter<'_, Vec<T>>> {
        self.chunks.iter().flatten()
    }

    pub(crate) fn iter_mut(&mut self) -> std::iter::Flatten<std::slice::IterMut<'_, Vec<T>>> {
        self.chunks.iter_mut().flatten()
    }
}

impl<T> Index<usize> for ChunkedVec<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<T> IndexMut<usize> for ChunkedVec<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }
}

impl<'a, T> IntoIterator for &'a ChunkedVec<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut ChunkedVec<T> {
    type Item = &'a mut T;
    type IntoIter = std::iter::Flatten<std::slice::IterMut<'a, Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_what_a_vec_holds_across_chunk_boundaries() {
        let mut chunked = ChunkedVec::default();
        let mut plain = Vec::new();
        for i in 0..3 * CHUNK + 5 {
            chunked.push(i);
            plain.push(i);
        }
        assert_eq!(chunked.len(), plain.len());
        assert!(chunked.iter().eq(plain.iter()));
        for i in [0, CHUNK - 1, CHUNK, 2 * CHUNK + 1, 3 * CHUNK + 4] {
            assert_eq!(chunked[i], plain[i]);
        }
        for value in &mut chunked {
            *value *= 2;
        }
        chunked[CHUNK] += 1;
        assert_eq!((chunked[CHUNK - 1], chunked[CHUNK]), (2 * (CHUNK - 1), 2 * CHUNK + 1));
    }

    #[test]
    fn an_element_stays_where_it_is_while_the_vector_grows() {
        let mut chunked = ChunkedVec::default();
        chunked.push(7u64);
        let first: *const u64 = &chunked[0];
        chunked.grow_with(10 * CHUNK, || 0);
        assert_eq!(chunked.len(), 10 * CHUNK);
        assert!(std::ptr::eq(first, &chunked[0]), "never copied");
        chunked.grow_with(5, || 1);
        assert_eq!(chunked.len(), 10 * CHUNK, "never shrinks");
        assert_eq!(chunked.chunks.len(), 10);
        assert!(chunked.chunks.iter().all(|chunk| chunk.capacity() == CHUNK));
    }

    #[test]
    #[should_panic]
    fn indexing_past_the_end_panics_as_a_vec_does() {
        let mut chunked = ChunkedVec::default();
        chunked.push(1);
        let _ = chunked[1];
    }
}
