//! Voter through the embedded API and over the wire: results equal a recount of `votes`, the views equal a
//! recomputation, and Vote's answers follow the rules.

mod common;

use lanedb::{Database, Value};

const NAMES: &str =
    "Edwina Burnam,Tabatha Gehling,Kelly Clauss,Jessie Alloway,Alana Bregman,Jessie Eichman";

fn rows(db: &Database, sql: &str) -> Vec<Vec<String>> {
    let out = db.query(sql, &[]).unwrap();
    let mut rows = Vec::new();
    for batch in &out.batches {
        for r in 0..batch.num_rows() {
            rows.push(
                (0..batch.num_columns())
                    .map(|c| lanedb::text::cell(batch, r, c).unwrap_or_else(|| "NULL".into()))
                    .collect(),
            );
        }
    }
    rows
}

fn vote(db: &Database, phone: i64, contestant: i32, max: i64) -> i64 {
    let out = db
        .call(
            "vote",
            &[
                Value::BigInt(phone),
                Value::Integer(contestant),
                Value::BigInt(max),
            ],
        )
        .unwrap();
    lanedb::text::cell(&out[0].batches[0], 0, 0)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn voter_results_equal_a_recount() {
    let db = Database::open_in_memory(2).unwrap();
    db.install_module(&lanedb::procedures::examples::voter())
        .unwrap();
    let init = db
        .call(
            "initialize",
            &[Value::Integer(6), Value::Text(NAMES.into())],
        )
        .unwrap();
    assert_eq!(lanedb::text::cell(&init[0].batches[0], 0, 0).unwrap(), "6");
    // Initialized already: nothing changes.
    db.call(
        "initialize",
        &[Value::Integer(3), Value::Text("A,B,C".into())],
    )
    .unwrap();
    assert_eq!(rows(&db, "SELECT count(*) FROM contestants"), [["6"]]);
    assert!(
        rows(&db, "SELECT count(*) FROM area_code_state")[0][0]
            .parse::<i64>()
            .unwrap()
            > 250
    );

    let mut state = 7u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut per_phone = std::collections::HashMap::new();
    let (mut accepted, mut invalid, mut limited) = (0, 0, 0);
    for _ in 0..3000 {
        let area = [617u64, 212, 415, 999][(next() % 4) as usize];
        let phone = (area * 10_000_000 + next() % 200) as i64;
        let contestant = (next() % 7) as i32 + 1;
        let code = vote(&db, phone, contestant, 2);
        let used = per_phone.entry(phone).or_insert(0);
        let expected = if contestant > 6 {
            1
        } else if *used >= 2 {
            2
        } else {
            *used += 1;
            0
        };
        assert_eq!(code, expected, "phone {phone} contestant {contestant}");
        match code {
            0 => accepted += 1,
            1 => invalid += 1,
            _ => limited += 1,
        }
    }
    assert!(accepted > 0 && invalid > 0 && limited > 0);
    assert_eq!(
        rows(&db, "SELECT count(*) FROM votes"),
        [[accepted.to_string()]]
    );
    // Unknown area codes vote as XX.
    assert!(rows(&db, "SELECT count(*) FROM votes WHERE state = 'XX'")[0][0] != "0");
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM votes WHERE phone_number / 10000000 = 999 AND state <> 'XX'"
        ),
        [["0"]]
    );
    // Results equal a recount, in Results' order.
    let results = db.call("results", &[]).unwrap();
    let mut got = Vec::new();
    for batch in &results[0].batches {
        for r in 0..batch.num_rows() {
            got.push(
                (0..3)
                    .map(|c| lanedb::text::cell(batch, r, c).unwrap())
                    .collect::<Vec<_>>(),
            );
        }
    }
    let recount = rows(
        &db,
        "SELECT c.contestant_name, c.contestant_number, count(*) AS total FROM votes v JOIN contestants c \
         ON c.contestant_number = v.contestant_number GROUP BY c.contestant_name, c.contestant_number \
         ORDER BY total DESC, c.contestant_number, c.contestant_name",
    );
    assert_eq!(got, recount);
    // Both views equal a recomputation from votes.
    assert_eq!(
        rows(
            &db,
            "SELECT phone_number, num_votes FROM v_votes_by_phone_number ORDER BY phone_number"
        ),
        rows(
            &db,
            "SELECT phone_number, count(*) FROM votes GROUP BY phone_number ORDER BY phone_number"
        )
    );
    assert_eq!(
        rows(
            &db,
            "SELECT contestant_number, state, num_votes FROM v_votes_by_contestant_number_state \
             ORDER BY contestant_number, state"
        ),
        rows(
            &db,
            "SELECT contestant_number, state, count(*) FROM votes GROUP BY contestant_number, state \
             ORDER BY contestant_number, state"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voter_over_the_wire() {
    let server = common::Server::start(&["--modules", "voter"]);
    let client = server.connect().await;
    let row = client
        .query_one("CALL initialize($1, $2)", &[&6i32, &NAMES])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 6);
    let vote = client.prepare("CALL vote($1, $2, $3)").await.unwrap();
    let mut codes = Vec::new();
    for (phone, contestant) in [
        (6175550001i64, 1i32),
        (6175550001, 2),
        (6175550001, 3),
        (2125550002, 9),
    ] {
        let row = client
            .query_one(&vote, &[&phone, &contestant, &2i64])
            .await
            .unwrap();
        codes.push(row.get::<_, i64>(0));
    }
    assert_eq!(codes, vec![0, 0, 2, 1]);
    let results = client.query("CALL results()", &[]).await.unwrap();
    let totals: Vec<(String, i32, i64)> = results
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        totals,
        vec![
            ("Edwina Burnam".to_string(), 1, 1),
            ("Tabatha Gehling".to_string(), 2, 1)
        ]
    );
}
