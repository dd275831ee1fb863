//! Routing: partition key -> bucket -> lane.
//!
//! A key value is first written in its canonical byte encoding (`key::encode_value`: every integer width as the same
//! 8 bytes, so an INTEGER parameter and a BIGINT column route alike), then hashed with 64-bit FNV-1a, a fixed function
//! with no seed: the bucket of a key is part of what snapshots persist and must be identical across runs, versions and
//! machines. The hash picks one of `BUCKET_COUNT` buckets; the `BucketMap` assigns buckets to lanes. Moving buckets
//! between lanes is how rebalancing will work, without rehashing any key.

use crate::key;
use crate::value::Value;

/// Number of virtual buckets. Fixed: changing it changes where every key lives.
pub const BUCKET_COUNT: usize = 4096;

pub type LaneId = usize;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(FNV_OFFSET, |h, b| (h ^ *b as u64).wrapping_mul(FNV_PRIME))
}

/// The bucket of a partition key value. NULL keys are refused before routing (partition columns are NOT NULL).
pub fn bucket_of(value: &Value) -> usize {
    let mut buf = [0u8; 16];
    match value.as_i64() {
        Some(v) => {
            buf[..8].copy_from_slice(&key::encode_i64(v));
            (fnv1a(&buf[..8]) % BUCKET_COUNT as u64) as usize
        }
        None => {
            let mut bytes = Vec::new();
            key::encode_value(value, &mut bytes);
            (fnv1a(&bytes) % BUCKET_COUNT as u64) as usize
        }
    }
}

/// Which lane owns each bucket.
#[derive(Clone, Debug)]
pub struct BucketMap {
    lanes: Vec<u16>,
    lane_count: usize,
}

impl BucketMap {
    /// Buckets dealt round-robin over `lane_count` lanes.
    pub fn new(lane_count: usize) -> BucketMap {
        assert!(lane_count > 0);
        assert!(lane_count <= u16::MAX as usize);
        BucketMap {
            lanes: (0..BUCKET_COUNT).map(|b| (b % lane_count) as u16).collect(),
            lane_count,
        }
    }

    pub fn lane_count(&self) -> usize {
        self.lane_count
    }

    pub fn lane_of_bucket(&self, bucket: usize) -> LaneId {
        self.lanes[bucket] as LaneId
    }

    pub fn lane_of(&self, value: &Value) -> LaneId {
        self.lane_of_bucket(bucket_of(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_widths_route_alike() {
        let map = BucketMap::new(2);
        for v in [0i64, 1, 2, 12345, -7] {
            assert_eq!(
                map.lane_of(&Value::BigInt(v)),
                map.lane_of(&Value::Integer(v as i32))
            );
        }
    }

    #[test]
    fn hash_is_fixed() {
        // Pinned values: a change here moves every stored key to another bucket.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(bucket_of(&Value::BigInt(1)), bucket_of(&Value::SmallInt(1)));
    }

    #[test]
    fn buckets_spread_over_lanes() {
        let map = BucketMap::new(2);
        let on_zero = (0..10_000i64)
            .filter(|v| map.lane_of(&Value::BigInt(*v)) == 0)
            .count();
        assert!((4_000..6_000).contains(&on_zero), "{on_zero}");
    }
}
