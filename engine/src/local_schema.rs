//! Each thread's own copy of a schema that many threads build batches with.

use std::sync::Arc;

use arrow_schema::SchemaRef;

/// This thread's own copy of `shared`, a schema many threads build batches with (a prepared statement's).
///
/// Every batch holds its schema by `Arc`; if threads on different cores clone and drop one shared `Arc` per point
/// read, its reference count bounces between their caches and the increments cost more than the read (measured with
/// two threads of point selects on this 2-core machine: most of their time). A copy per thread is counted only by
/// that thread. Copies are kept for the `LOCAL_SCHEMAS_MAX` schemas a thread used last.
pub fn thread_local_schema(shared: &SchemaRef) -> SchemaRef {
    LOCAL_SCHEMAS.with_borrow_mut(|cache| {
        // Most used last: a thread running one statement over and over finds it at once.
        if let Some((s, local)) = cache.last() {
            if Arc::ptr_eq(s, shared) {
                return local.clone();
            }
        }
        if let Some(i) = cache.iter().position(|(s, _)| Arc::ptr_eq(s, shared)) {
            let entry = cache.remove(i);
            let local = entry.1.clone();
            cache.push(entry);
            return local;
        }
        let fields: arrow_schema::Fields = shared
            .fields()
            .iter()
            .map(|f| Arc::new(f.as_ref().clone()))
            .collect();
        let local = Arc::new(arrow_schema::Schema::new_with_metadata(
            fields,
            shared.metadata().clone(),
        ));
        if cache.len() == LOCAL_SCHEMAS_MAX {
            cache.remove(0);
        }
        cache.push((shared.clone(), local.clone()));
        local
    })
}

const LOCAL_SCHEMAS_MAX: usize = 64;

thread_local! {
    /// Shared schemas and this thread's copies, least recently used first.
    static LOCAL_SCHEMAS: std::cell::RefCell<Vec<(SchemaRef, SchemaRef)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Schema};

    #[test]
    fn each_thread_gets_its_own_equal_copy_of_a_schema() {
        let shared: SchemaRef = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let mine = thread_local_schema(&shared);
        assert_eq!(*mine, *shared);
        assert!(!Arc::ptr_eq(&mine, &shared));
        assert!(Arc::ptr_eq(&mine, &thread_local_schema(&shared)));
        let theirs = std::thread::spawn({
            let shared = shared.clone();
            move || thread_local_schema(&shared)
        })
        .join()
        .unwrap();
        assert_eq!(*theirs, *shared);
        assert!(!Arc::ptr_eq(&theirs, &mine));
        // The cache is bounded: the least recently used schema falls out, and comes back as a new copy.
        let kept = Arc::new(Schema::new(vec![Field::new("kept", DataType::Utf8, true)]));
        let kept_copy = thread_local_schema(&kept);
        for i in 0..LOCAL_SCHEMAS_MAX - 1 {
            thread_local_schema(&kept);
            let other = Arc::new(Schema::new(vec![Field::new(
                format!("c{i}"),
                DataType::Int32,
                true,
            )]));
            thread_local_schema(&other);
        }
        assert!(Arc::ptr_eq(&kept_copy, &thread_local_schema(&kept)));
        for i in 0..LOCAL_SCHEMAS_MAX {
            let other = Arc::new(Schema::new(vec![Field::new(
                format!("c{i}"),
                DataType::Int32,
                true,
            )]));
            thread_local_schema(&other);
        }
        let again = thread_local_schema(&shared);
        assert_eq!(*again, *shared);
        assert!(!Arc::ptr_eq(&again, &mine));
    }
}
