//! Faults injected through the storage trait (`FaultyDirectory`): a full disk, failing fsyncs, short writes, torn
//! tails at every byte offset of a record, and flipped bits, each against a whole database and its recovery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lanedb::{Config, Database, Directory, Fault, FaultyDirectory, Value};

fn open(dir: &FaultyDirectory) -> lanedb::Result<Database> {
    let root: Arc<dyn Directory> = Arc::new(dir.clone());
    Database::open_in(
        Config {
            lane_count: 2,
            ..Config::default()
        },
        Some(root),
        &[],
    )
}

fn count(db: &Database) -> i64 {
    let out = db.query("SELECT count(*) FROM t", &[]).unwrap();
    lanedb::text::cell(&out.batches[0], 0, 0)
        .unwrap()
        .parse()
        .unwrap()
}

fn insert(db: &Database, id: i64) -> lanedb::Result<()> {
    db.execute(
        "INSERT INTO t VALUES ($1, $2)",
        &[Value::BigInt(id), Value::Text(format!("row {id}"))],
    )
    .map(|_| ())
}

fn with_table(dir: &FaultyDirectory) -> Database {
    let db = open(dir).unwrap();
    db.execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT); PARTITION TABLE t ON COLUMN id",
        &[],
    )
    .unwrap();
    db
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_disk_fails_writes_with_53100_keeps_reads_and_recovers_when_space_returns() {
    let dir = FaultyDirectory::new();
    let db = with_table(&dir);
    insert(&db, 1).unwrap();
    dir.inject(Fault::DiskFull);
    // The write that meets the full disk: applied in memory, not known durable, so it is answered with 53100.
    let e = insert(&db, 2).unwrap_err();
    assert_eq!(e.code.0, "53100", "{}", e.message);
    // While the log cannot be written, writes are refused before they apply; reads go on.
    let e = insert(&db, 3).unwrap_err();
    assert_eq!(e.code.0, "53100");
    assert_eq!(count(&db), 2);
    dir.clear_faults();
    wait_until("writes resume", || insert(&db, 4).is_ok());
    // A crash now keeps every acknowledged row, and the one answered with 53100 (it was logged once space came
    // back); the refused one was never applied.
    drop(db);
    dir.crash();
    let db = open(&dir).unwrap();
    let ids = db.query("SELECT id FROM t ORDER BY id", &[]).unwrap();
    let ids: Vec<String> = (0..ids.batches[0].num_rows())
        .map(|r| lanedb::text::cell(&ids.batches[0], r, 0).unwrap())
        .collect();
    assert_eq!(ids, ["1", "2", "4"]);
}

#[test]
fn a_failed_fsync_or_short_write_is_retried_and_nothing_acknowledged_is_lost() {
    for fault in [Fault::SyncFails, Fault::ShortWrite(5)] {
        let dir = FaultyDirectory::new();
        let db = with_table(&dir);
        insert(&db, 1).unwrap();
        dir.inject(fault);
        let answered = insert(&db, 2);
        if let Err(e) = &answered {
            assert_eq!(e.code.0, "58030", "{fault:?}: {}", e.message);
        }
        wait_until("writes resume", || insert(&db, 3).is_ok());
        drop(db);
        dir.crash();
        let db = open(&dir).unwrap();
        assert_eq!(count(&db), 3, "{fault:?}");
    }
}

/// The name of the one log segment and the offset where its last record starts.
fn last_record(dir: &FaultyDirectory, records: usize) -> (String, usize, Vec<u8>) {
    let log = dir.open_dir("log").unwrap();
    let name = log.list().unwrap().pop().unwrap();
    let bytes = log.read(&name).unwrap();
    let read = lanedb_engine::log::read_segment(&name, &bytes, true, None).unwrap();
    assert_eq!(read.records.len(), records);
    let last = &read.records[records - 1];
    // The file goes on past its records with zeros written ahead of use.
    let end = read.end as usize;
    assert!(bytes[end..].iter().all(|&b| b == 0));
    let start = end - lanedb_engine::log::RECORD_HEADER_BYTES - last.payload.len();
    (name, start, bytes[..end].to_vec())
}

#[test]
fn a_torn_last_record_at_every_byte_offset_recovers_everything_before_it() {
    let dir = FaultyDirectory::new();
    let db = with_table(&dir);
    insert(&db, 1).unwrap();
    insert(&db, 2).unwrap();
    drop(db);
    // Records: CREATE TABLE, PARTITION TABLE, two inserts.
    let (name, start, whole) = last_record(&dir, 4);
    for cut in start..whole.len() {
        let torn = FaultyDirectory::new();
        torn.open_dir("log").unwrap();
        // The file ends at the cut, or goes on with the zeroed space the writer had prepared.
        let mut bytes = whole[..cut].to_vec();
        if cut % 2 == 1 {
            bytes.resize(whole.len() + 100, 0);
        }
        torn.put(&format!("log/{name}"), bytes);
        let db = open(&torn).unwrap();
        assert_eq!(count(&db), 1, "cut at {cut}");
        // The log continues cleanly after the cut.
        insert(&db, 3).unwrap();
        drop(db);
        let db = open(&torn).unwrap();
        assert_eq!(count(&db), 2, "cut at {cut}, after a restart");
    }
}

#[test]
fn a_flipped_bit_before_the_tail_stops_recovery_naming_the_segment() {
    let dir = FaultyDirectory::new();
    let db = with_table(&dir);
    insert(&db, 1).unwrap();
    insert(&db, 2).unwrap();
    drop(db);
    let (name, start, _) = last_record(&dir, 4);
    // A bit in the third record (the first insert), with an intact record after it.
    dir.flip_bit(&format!("log/{name}"), start - 3, 2);
    let e = open(&dir).err().expect("recovery refuses");
    assert!(e.message.contains(&name), "{}", e.message);
    assert_eq!(e.code.0, "XX001");
}

/// In sync mode an async call is answered only once its record is durable: a crash image taken right after the
/// answers, with the database still running, holds every answered vote.
#[test]
fn async_calls_are_answered_after_their_record_is_durable() {
    let dir = FaultyDirectory::new();
    let open_voter = |dir: &FaultyDirectory| {
        let root: Arc<dyn Directory> = Arc::new(dir.clone());
        let config = Config {
            lane_count: 2,
            ..Config::default()
        };
        Database::open_in(config, Some(root), &[lanedb::procedures::examples::voter()]).unwrap()
    };
    let db = open_voter(&dir);
    db.call(
        "initialize",
        &[Value::Integer(2), Value::Text("A,B".into())],
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for round in 0..20i64 {
        let tasks: Vec<_> = (0..16i64)
            .map(|task| {
                let db = db.clone();
                runtime.spawn(async move {
                    let phone = 2_120_000_000 + round * 100 + task;
                    let args = [Value::BigInt(phone), Value::Integer(1), Value::BigInt(2)];
                    db.call_async("vote", &args).await.unwrap();
                })
            })
            .collect();
        runtime.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        let image = dir.crash_image();
        let restored = open_voter(&image);
        let out = restored.query("SELECT count(*) FROM votes", &[]).unwrap();
        assert_eq!(
            lanedb::text::cell(&out.batches[0], 0, 0).unwrap(),
            ((round + 1) * 16).to_string(),
            "round {round}"
        );
    }
}
