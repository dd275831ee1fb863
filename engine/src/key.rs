//! Index keys and their canonical, order-preserving byte encoding.
//!
//! A key over one integer column is kept as `Key::Int` (no allocation, the common primary key). Any other key is the
//! concatenation of each column's encoding: a tag byte (0x01 for a value), then big-endian bytes with the sign bit
//! flipped for integers, the IEEE bits flipped for floats, and for text and bytes the bytes with 0x00 escaped as
//! 0x00 0xFF and terminated by 0x00 0x00. Comparing encodings byte-wise compares keys, so the same encoding serves hash
//! and ordered indexes and partition routing. Keys containing NULL are never indexed (NULLs never compare equal).

use crate::value::Value;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Int(i64),
    Bytes(Box<[u8]>),
}

pub fn encode_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn encode_value(value: &Value, out: &mut Vec<u8>) {
    out.push(1);
    if let Some(v) = value.as_i64() {
        out.extend_from_slice(&encode_i64(v));
        return;
    }
    match value {
        Value::Null => {
            out.pop();
            out.push(0);
        }
        Value::Boolean(b) => out.push(*b as u8),
        Value::Real(f) => out.extend_from_slice(&encode_f64(*f as f64)),
        Value::Double(f) => out.extend_from_slice(&encode_f64(*f)),
        Value::Decimal(m, _) => out.extend_from_slice(&((*m as u128) ^ (1 << 127)).to_be_bytes()),
        Value::Text(s) => encode_bytes(s.as_bytes(), out),
        Value::Bytes(b) => encode_bytes(b, out),
        Value::Timestamp(t) => out.extend_from_slice(&encode_i64(*t)),
        Value::Date(d) => out.extend_from_slice(&encode_i64(*d as i64)),
        Value::TimestampTz(t) | Value::Time(t) => out.extend_from_slice(&encode_i64(*t)),
        Value::Array(elements) => {
            // Elements one after another, then a tag below every value's: arrays order element-wise.
            elements.iter().for_each(|e| encode_value(e, out));
            out.push(0);
        }
        Value::Interval { .. } => out.extend_from_slice(
            &((crate::datetime::interval_span(value) as u128) ^ (1 << 127)).to_be_bytes(),
        ),
        Value::SmallInt(_) | Value::Integer(_) | Value::BigInt(_) => {
            unreachable!("integers handled above")
        }
    }
}

fn encode_f64(f: f64) -> [u8; 8] {
    let f = if f == 0.0 { 0.0 } else { f };
    let bits = f.to_bits();
    let bits = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    bits.to_be_bytes()
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for b in bytes {
        out.push(*b);
        if *b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The index key of `values`, or `None` if any is NULL.
pub fn make_key<'a>(values: impl ExactSizeIterator<Item = &'a Value>) -> Option<Key> {
    let mut values = values.peekable();
    if values.len() == 1 {
        let v = values.peek().expect("one value");
        if v.is_null() {
            return None;
        }
        if let Some(i) = v.as_i64() {
            return Some(Key::Int(i));
        }
    }
    let mut out = Vec::with_capacity(16);
    for v in values {
        if v.is_null() {
            return None;
        }
        encode_value(v, &mut out);
    }
    Some(Key::Bytes(out.into_boxed_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(v, &mut out);
        out
    }

    #[test]
    fn encoding_preserves_order() {
        let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in ints.windows(2) {
            assert!(enc(&Value::BigInt(w[0])) < enc(&Value::BigInt(w[1])));
        }
        let floats = [f64::NEG_INFINITY, -2.5, -0.0, 0.5, 3.0, f64::INFINITY];
        for w in floats.windows(2) {
            assert!(enc(&Value::Double(w[0])) <= enc(&Value::Double(w[1])));
        }
        let texts = ["", "a", "a\0", "ab", "b"];
        for w in texts.windows(2) {
            assert!(enc(&Value::Text(w[0].into())) < enc(&Value::Text(w[1].into())));
        }
    }

    #[test]
    fn null_keys_are_not_indexed() {
        assert_eq!(make_key([Value::Null].iter()), None);
        assert_eq!(make_key([Value::Integer(1), Value::Null].iter()), None);
        assert_eq!(make_key([Value::Integer(1)].iter()), Some(Key::Int(1)));
    }
}
