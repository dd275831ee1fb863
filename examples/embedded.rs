//! The embedded API in a few lines: a partitioned table, prepared single-partition transactions from several
//! threads, and an analytical query over a consistent snapshot while nothing stops.

use std::time::Instant;

use lanedb::{Database, Value};

fn main() -> lanedb::Result<()> {
    let db = Database::open_in_memory(2)?;
    db.execute(
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL DEFAULT 0);
         PARTITION TABLE accounts ON COLUMN id;",
        &[],
    )?;
    let open = db.prepare("INSERT INTO accounts (id, owner, balance) VALUES ($1, $2, 100)")?;
    for id in 0..10_000i64 {
        open.execute(&[Value::BigInt(id), Value::Text(format!("owner-{}", id % 97))])?;
    }

    let start = Instant::now();
    let threads: Vec<_> = (0..2i64)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || -> lanedb::Result<()> {
                let deposit =
                    db.prepare("UPDATE accounts SET balance = balance + $2 WHERE id = $1")?;
                for i in 0..100_000i64 {
                    deposit.execute(&[Value::BigInt((i * 7 + t) % 10_000), Value::BigInt(1)])?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker thread")?;
    }
    println!("200000 single-partition updates in {:?}", start.elapsed());

    let out = db.query("SELECT owner, count(*) AS n, sum(balance) AS total FROM accounts GROUP BY owner ORDER BY total DESC LIMIT 3", &[])?;
    for batch in &out.batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = (0..batch.num_columns())
                .map(|c| lanedb::text::cell(batch, row, c).unwrap_or_default())
                .collect();
            println!("{}", cells.join(" | "));
        }
    }
    Ok(())
}
