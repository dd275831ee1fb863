//! Variable-width values (text, bytes) of one column of one chunk.
//!
//! ```text
//!   spans: [ start << 25 | len ] per row       8 bytes a value
//!   data:  "CANYTXsome longer value..."        every value's bytes, one buffer
//!           ^ ^ ^                              a span points into it
//! ```
//!
//! The layout is Arrow's for a string array with one change: each value has a span (start and length) of its own
//! instead of sharing offsets with its neighbour, so an update writes its new bytes at the end of the buffer and moves
//! no other value (the layout DESIGN.md asks for, as Arrow's `Utf8View` has it). The old bytes become garbage; once
//! garbage outweighs live bytes the buffer is compacted, so a column never holds more than about twice its values.
//! A short string costs its length plus 8 bytes, where a `String` per value would cost 24 bytes and a heap allocation;
//! a snapshot's string array is appended with one copy of its bytes.
//!
//! A span packs the start in its high 39 bits and the length in its low 25: `VALUE_BYTES_MAX` (16 MiB) fits the
//! length, and the table keeps a chunk column's live bytes under 2 GiB (`CHUNK_COLUMN_BYTES_MAX`, what the Arrow
//! array it is exported as can hold), so with as much garbage again the start fits with room to spare.

use std::ops::Range;

use arrow_buffer::{OffsetBuffer, ScalarBuffer};

use crate::types::VALUE_BYTES_MAX;

const LEN_BITS: u32 = 25;
const LEN_MASK: u64 = (1 << LEN_BITS) - 1;
/// The buffer offset a span can hold.
const START_MAX: usize = 1 << (64 - LEN_BITS);

/// The buffer values live in: a `String` for text (so reads need no UTF-8 check), a `Vec<u8>` for bytes.
pub(crate) trait Buffer: Default + Clone + std::fmt::Debug {
    type Value: ?Sized + AsRef<[u8]>;
    fn len(&self) -> usize;
    fn append(&mut self, v: &Self::Value);
    fn slice(&self, range: Range<usize>) -> &Self::Value;
    fn truncate(&mut self, len: usize);
    fn reserve(&mut self, additional: usize);
}

impl Buffer for String {
    type Value = str;
    fn len(&self) -> usize {
        self.len()
    }
    fn append(&mut self, v: &str) {
        self.push_str(v);
    }
    fn slice(&self, range: Range<usize>) -> &str {
        &self[range]
    }
    fn truncate(&mut self, len: usize) {
        self.truncate(len);
    }
    fn reserve(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

impl Buffer for Vec<u8> {
    type Value = [u8];
    fn len(&self) -> usize {
        self.len()
    }
    fn append(&mut self, v: &[u8]) {
        self.extend_from_slice(v);
    }
    fn slice(&self, range: Range<usize>) -> &[u8] {
        &self[range]
    }
    fn truncate(&mut self, len: usize) {
        self.truncate(len);
    }
    fn reserve(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

/// The values of one column of one chunk; see the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct VarWidth<B: Buffer> {
    spans: Vec<u64>,
    data: B,
    /// Bytes of `data` no span points to.
    garbage: usize,
}

/// A span of `len` bytes at `start`. An empty value points at the buffer's start, so that truncating the buffer
/// after its last value can never leave a span pointing past its end.
fn span(start: usize, len: usize) -> u64 {
    debug_assert!(len <= VALUE_BYTES_MAX);
    debug_assert!(start + len <= START_MAX);
    if len == 0 {
        return 0;
    }
    ((start as u64) << LEN_BITS) | len as u64
}

fn range(span: u64) -> Range<usize> {
    let start = (span >> LEN_BITS) as usize;
    start..start + (span & LEN_MASK) as usize
}

impl<B: Buffer> VarWidth<B> {
    pub fn with_capacity(rows: usize) -> Self {
        VarWidth {
            spans: Vec::with_capacity(rows),
            data: B::default(),
            garbage: 0,
        }
    }

    pub fn get(&self, i: usize) -> &B::Value {
        self.data.slice(range(self.spans[i]))
    }

    /// How many values there are.
    pub fn rows(&self) -> usize {
        self.spans.len()
    }

    /// Bytes of the values, garbage left out.
    pub fn live_bytes(&self) -> usize {
        self.data.len() - self.garbage
    }

    /// The values as an Arrow array's offsets and bytes, garbage left out. A NULL is stored empty.
    pub fn to_offsets(&self) -> (OffsetBuffer<i32>, Vec<u8>) {
        let mut offsets = Vec::with_capacity(self.spans.len() + 1);
        offsets.push(0i32);
        let mut bytes = Vec::with_capacity(self.live_bytes());
        for s in &self.spans {
            bytes.extend_from_slice(self.data.slice(range(*s)).as_ref());
            offsets.push(
                i32::try_from(bytes.len())
                    .expect("the table keeps a chunk column under CHUNK_COLUMN_BYTES_MAX"),
            );
        }
        (OffsetBuffer::new(ScalarBuffer::from(offsets)), bytes)
    }

    pub fn push(&mut self, v: &B::Value) {
        let start = self.place(v.as_ref().len());
        self.data.append(v);
        self.spans.push(span(start, v.as_ref().len()));
    }

    pub fn set(&mut self, i: usize, v: &B::Value) {
        let old = range(self.spans[i]);
        if old.end == self.data.len() {
            // The value written last is rewritten where it was: a value updated over and over leaves no garbage.
            self.data.truncate(old.start);
        } else {
            self.garbage += old.len();
        }
        self.spans[i] = span(old.start, 0);
        let start = self.place(v.as_ref().len());
        self.data.append(v);
        self.spans[i] = span(start, v.as_ref().len());
    }

    pub fn pop(&mut self) {
        let Some(last) = self.spans.pop() else {
            return;
        };
        let r = range(last);
        if r.end == self.data.len() {
            self.data.truncate(r.start);
        } else {
            self.garbage += r.len();
        }
        if self.spans.is_empty() {
            self.data.truncate(0);
            self.garbage = 0;
        }
    }

    /// Appends the values of an Arrow-style array: value `k` is `values[offsets[k] - offsets[0]..offsets[k + 1] -
    /// offsets[0]]`. The bytes are copied once, whole.
    pub fn extend_from_offsets(&mut self, offsets: &[i32], values: &B::Value) {
        let Some(first) = offsets.first() else {
            return;
        };
        let base = self.place(values.as_ref().len());
        self.data.append(values);
        self.spans.extend(
            offsets
                .windows(2)
                .map(|w| span(base + (w[0] - first) as usize, (w[1] - w[0]) as usize)),
        );
    }

    /// Where `len` new bytes will start: at the end of the buffer, after a compaction when garbage outweighs live
    /// bytes or the end would pass what a span can hold.
    fn place(&mut self, len: usize) -> usize {
        let end = self.data.len();
        if (self.garbage > 0 && self.garbage >= end - self.garbage) || end + len > START_MAX {
            self.compact();
        }
        assert!(
            self.data.len() + len <= START_MAX,
            "a chunk column's live bytes fit a span"
        );
        self.data.len()
    }

    fn compact(&mut self) {
        let mut data = B::default();
        data.reserve(self.data.len() - self.garbage);
        for s in &mut self.spans {
            let r = range(*s);
            let start = data.len();
            data.append(self.data.slice(r.clone()));
            *s = span(start, r.len());
        }
        self.data = data;
        self.garbage = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(c: &VarWidth<String>) -> Vec<String> {
        (0..c.spans.len()).map(|i| c.get(i).to_owned()).collect()
    }

    #[test]
    fn an_update_moves_no_neighbour_and_garbage_stays_below_live_bytes() {
        let mut c = VarWidth::<String>::with_capacity(4);
        for v in ["CA", "", "a longer value than inline", "NY"] {
            c.push(v);
        }
        let before = c.spans.clone();
        c.set(1, "filled");
        assert_eq!(
            values(&c),
            ["CA", "filled", "a longer value than inline", "NY"]
        );
        assert_eq!(c.spans[0], before[0]);
        assert_eq!(c.spans[2], before[2]);
        // The value written last is rewritten where it is, however often.
        for n in 0..1000 {
            c.set(1, &format!("v{n}"));
        }
        assert_eq!(c.get(1), "v999");
        assert_eq!(c.garbage, 0);
        // Values rewritten in turn leave garbage, which compaction keeps under the live bytes.
        for n in 0..1000 {
            c.set(n % 4, &format!("value {n}"));
            let live = c.data.len() - c.garbage;
            assert!(c.garbage <= live + 16, "garbage {} live {live}", c.garbage);
        }
        assert_eq!(
            values(&c),
            ["value 996", "value 997", "value 998", "value 999"]
        );
    }

    #[test]
    fn random_writes_read_back_as_a_vector_of_strings_would() {
        let mut model: Vec<String> = Vec::new();
        let mut c = VarWidth::<String>::with_capacity(0);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for step in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let text = "é".repeat((state >> 32) as usize % 9);
            match state % 4 {
                0 | 1 => {
                    c.push(&text);
                    model.push(text);
                }
                2 if !model.is_empty() => {
                    let i = (state >> 8) as usize % model.len();
                    c.set(i, &text);
                    model[i] = text;
                }
                _ => {
                    c.pop();
                    model.pop();
                }
            }
            if step % 97 == 0 {
                assert_eq!(values(&c), model);
                let (offsets, bytes) = c.to_offsets();
                assert_eq!(bytes, model.concat().into_bytes());
                assert_eq!(offsets.len(), model.len() + 1);
            }
        }
        assert_eq!(values(&c), model);
    }

    #[test]
    fn an_arrow_slice_appends_with_its_offsets_rebased() {
        let mut c = VarWidth::<Vec<u8>>::with_capacity(0);
        c.push(b"first");
        // Values 1..3 of an array whose bytes are "xx" "abc" "" "de": offsets 2, 5, 5, 7.
        c.extend_from_offsets(&[2, 5, 5, 7], b"abcde");
        let got: Vec<&[u8]> = (0..4).map(|i| c.get(i)).collect();
        assert_eq!(got, [&b"first"[..], b"abc", b"", b"de"]);
        let (offsets, bytes) = c.to_offsets();
        assert_eq!(&offsets[..], [0, 5, 8, 8, 10]);
        assert_eq!(bytes, b"firstabcde");
        c.extend_from_offsets(&[], b"");
        c.pop();
        c.pop();
        assert_eq!(c.data, b"firstabc");
    }
}
