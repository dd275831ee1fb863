//! Which values of one column of one chunk are not NULL: a bitmap laid out as Arrow's (bit `i` of byte `i / 8`, least
//! significant first), so exporting it is one copy, with a count of NULLs so a column without any exports none.

use arrow_buffer::{BooleanBuffer, NullBuffer};

#[derive(Clone, Debug, Default)]
pub(crate) struct Validity {
    bits: Vec<u8>,
    len: usize,
    nulls: usize,
}

impl Validity {
    pub fn get(&self, i: usize) -> bool {
        debug_assert!(i < self.len);
        self.bits[i / 8] & (1 << (i % 8)) != 0
    }

    pub fn push(&mut self, valid: bool) {
        if self.len.is_multiple_of(8) {
            self.bits.push(0);
        }
        self.len += 1;
        self.put(self.len - 1, valid);
        self.nulls += usize::from(!valid);
    }

    pub fn set(&mut self, i: usize, valid: bool) {
        let was = self.get(i);
        self.put(i, valid);
        self.nulls = self.nulls + usize::from(was) - usize::from(valid);
    }

    pub fn pop(&mut self) {
        if self.len == 0 {
            return;
        }
        // Marked valid first, so a NULL leaving takes itself out of the count.
        self.set(self.len - 1, true);
        self.len -= 1;
        self.bits.truncate(self.len.div_ceil(8));
    }

    /// Appends `len` validities: those of `nulls` from `offset`, or all valid. Whole bytes are copied when this
    /// bitmap ends on a byte boundary, as it does when a snapshot fills a chunk.
    pub fn extend(&mut self, nulls: Option<&NullBuffer>, offset: usize, len: usize) {
        if !self.len.is_multiple_of(8) {
            let head = len.min(8 - self.len % 8);
            (offset..offset + head).for_each(|i| self.push(nulls.is_none_or(|n| n.is_valid(i))));
            if head < len {
                self.extend(nulls, offset + head, len - head);
            }
            return;
        }
        match nulls {
            Some(n) => {
                let slice = n.slice(offset, len);
                self.bits
                    .extend_from_slice(&slice.inner().sliced()[..len.div_ceil(8)]);
                self.nulls += slice.null_count();
            }
            None => self.bits.resize(self.bits.len() + len.div_ceil(8), 0xFF),
        }
        self.len += len;
    }

    /// The bitmap as Arrow's, or `None` when no value is NULL.
    pub fn to_nulls(&self) -> Option<NullBuffer> {
        (self.nulls > 0)
            .then(|| NullBuffer::new(BooleanBuffer::new(self.bits.clone().into(), 0, self.len)))
    }

    fn put(&mut self, i: usize, valid: bool) {
        let mask = 1 << (i % 8);
        if valid {
            self.bits[i / 8] |= mask;
        } else {
            self.bits[i / 8] &= !mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_a_vector_of_bools_through_pushes_sets_and_pops() {
        let mut model = Vec::new();
        let mut v = Validity::default();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bit = state & 8 != 0;
            match state % 5 {
                0..=2 => {
                    v.push(bit);
                    model.push(bit);
                }
                3 if !model.is_empty() => {
                    let i = (state >> 16) as usize % model.len();
                    v.set(i, bit);
                    model[i] = bit;
                }
                _ => {
                    v.pop();
                    model.pop();
                }
            }
            assert_eq!(v.len, model.len());
            assert_eq!(v.nulls, model.iter().filter(|b| !**b).count());
        }
        assert!((0..model.len()).all(|i| v.get(i) == model[i]));
        let nulls = v.to_nulls().expect("some values are NULL");
        assert!((0..model.len()).all(|i| nulls.is_valid(i) == model[i]));
    }

    #[test]
    fn a_column_without_nulls_exports_no_bitmap_and_a_slice_keeps_its_offset() {
        let mut v = Validity::default();
        v.extend(None, 0, 20);
        assert!(v.to_nulls().is_none());
        let source = NullBuffer::from(vec![true, false, true, true, false]);
        v.extend(Some(&source), 1, 3);
        let nulls = v.to_nulls().expect("one NULL");
        assert_eq!(nulls.null_count(), 1);
        assert!(!nulls.is_valid(20));
        assert!(nulls.is_valid(21) && nulls.is_valid(22));
        // From a byte boundary, whole bytes of a slice at an odd offset; then a push after them.
        let mut v = Validity::default();
        let source = NullBuffer::from((0..40).map(|i| i % 3 != 0).collect::<Vec<_>>());
        v.extend(Some(&source), 5, 30);
        v.extend(None, 0, 3);
        v.push(false);
        let expected: Vec<bool> = (5..35)
            .map(|i| i % 3 != 0)
            .chain([true, true, true, false])
            .collect();
        assert!((0..expected.len()).all(|i| v.get(i) == expected[i]));
        assert_eq!(v.nulls, expected.iter().filter(|b| !**b).count());
    }
}
