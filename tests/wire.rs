//! The PostgreSQL wire protocol through tokio-postgres against a real `lanedb serve` on a loopback port.

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{code, failure, scalar, Server};
use futures::future::join_all;
use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::types::Type;
use tokio_postgres::SimpleQueryMessage;

fn rows_of(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect())
            }
            _ => None,
        })
        .collect()
}

fn tags_of(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_runs_each_statement_with_its_own_result() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let out = client
        .simple_query(
            "CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT); \
             INSERT INTO kv VALUES (1, 'one'), (2, 'two'); \
             SELECT v FROM kv WHERE k = 2; \
             SELECT count(*) FROM kv",
        )
        .await
        .unwrap();
    assert_eq!(tags_of(&out), vec![0, 2, 1, 1]);
    assert_eq!(
        rows_of(&out),
        vec![vec![Some("two".into())], vec![Some("2".into())]]
    );
    // An empty query string answers EmptyQueryResponse, not an error.
    let empty = client.simple_query("").await.unwrap();
    assert!(matches!(
        empty.as_slice(),
        [SimpleQueryMessage::CommandComplete(0)]
    ));
    // A syntax error anywhere runs nothing of the string.
    let e = client
        .simple_query("INSERT INTO kv VALUES (3, 'three'); SELEC 1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42601");
    let out = client
        .simple_query("SELECT count(*) FROM kv")
        .await
        .unwrap();
    assert_eq!(rows_of(&out), vec![vec![Some("2".into())]]);
    // A failing statement stops the string, and the string is one transaction, as in PostgreSQL: the INSERT
    // before it does not stay.
    let e = client
        .simple_query("INSERT INTO kv VALUES (3, 'three'); INSERT INTO kv VALUES (1, 'dup'); INSERT INTO kv VALUES (4, 'four')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23505");
    let out = client
        .simple_query("SELECT k FROM kv ORDER BY k")
        .await
        .unwrap();
    assert_eq!(rows_of(&out).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_in_binary_and_text() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE every (id INTEGER PRIMARY KEY, b BOOLEAN, s SMALLINT, i INTEGER, g BIGINT, r REAL, \
             d DOUBLE PRECISION, n DECIMAL(20,4), vc VARCHAR(10), t TEXT, y BYTEA, ts TIMESTAMP, dt DATE)",
        )
        .await
        .unwrap();
    let insert = client
        .prepare(
            "INSERT INTO every VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .await
        .unwrap();
    assert_eq!(
        insert.params(),
        &[
            Type::INT4,
            Type::BOOL,
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::NUMERIC,
            Type::VARCHAR,
            Type::TEXT,
            Type::BYTEA,
            Type::TIMESTAMP,
            Type::DATE
        ]
    );
    let ts = chrono::NaiveDate::from_ymd_opt(1999, 12, 31)
        .unwrap()
        .and_hms_micro_opt(23, 59, 58, 123_456)
        .unwrap();
    let dt = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let n = Decimal::from_str("-1234567.8901").unwrap();
    let bytes: Vec<u8> = vec![0, 1, 2, 255];
    client
        .execute(
            &insert,
            &[
                &1i32,
                &true,
                &-7i16,
                &i32::MIN,
                &i64::MAX,
                &1.5f32,
                &-2.25e300f64,
                &n,
                &"héllo",
                &"tab\there",
                &bytes,
                &ts,
                &dt,
            ],
        )
        .await
        .unwrap();
    let nulls: [Option<i32>; 1] = [None];
    client
        .execute(
            "INSERT INTO every (id, b, t) VALUES ($1, $2, $3)",
            &[&2i32, &Option::<bool>::None, &Option::<String>::None],
        )
        .await
        .unwrap();
    let _ = nulls;
    // Binary results (tokio-postgres asks for binary).
    let row = client
        .query_one("SELECT * FROM every WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    let types: Vec<Type> = row.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(types[0], Type::INT4);
    assert_eq!(types[1], Type::BOOL);
    assert_eq!(types[2], Type::INT2);
    assert_eq!(types[4], Type::INT8);
    assert_eq!(types[5], Type::FLOAT4);
    assert_eq!(types[6], Type::FLOAT8);
    assert_eq!(types[7], Type::NUMERIC);
    assert_eq!(types[8], Type::VARCHAR);
    assert_eq!(types[9], Type::TEXT);
    assert_eq!(types[10], Type::BYTEA);
    assert_eq!(types[11], Type::TIMESTAMP);
    assert_eq!(types[12], Type::DATE);
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i16>(2), -7);
    assert_eq!(row.get::<_, i32>(3), i32::MIN);
    assert_eq!(row.get::<_, i64>(4), i64::MAX);
    assert_eq!(row.get::<_, f32>(5), 1.5);
    assert_eq!(row.get::<_, f64>(6), -2.25e300);
    assert_eq!(row.get::<_, Decimal>(7), n);
    assert_eq!(row.get::<_, String>(8), "héllo");
    assert_eq!(row.get::<_, String>(9), "tab\there");
    assert_eq!(row.get::<_, Vec<u8>>(10), bytes);
    assert_eq!(row.get::<_, chrono::NaiveDateTime>(11), ts);
    assert_eq!(row.get::<_, chrono::NaiveDate>(12), dt);
    // Through DataFusion too, VARCHAR columns are varchar.
    let scan = client
        .query("SELECT vc, t FROM every ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(scan[0].columns()[0].type_(), &Type::VARCHAR);
    assert_eq!(scan[0].columns()[1].type_(), &Type::TEXT);
    let row = client
        .query_one("SELECT b, t, ts FROM every WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<bool>>(0), None);
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, Option<chrono::NaiveDateTime>>(2), None);
    // Text results (the simple protocol) in PostgreSQL's formats.
    let out = client
        .simple_query("SELECT b, s, i, g, r, d, n, vc, t, y, ts, dt FROM every WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        rows_of(&out)[0],
        [
            "t",
            "-7",
            "-2147483648",
            "9223372036854775807",
            "1.5",
            "-2.25e+300",
            "-1234567.8901",
            "héllo",
            "tab\there",
            "\\x000102ff",
            "1999-12-31 23:59:58.123456",
            "2024-02-29"
        ]
        .iter()
        .map(|s| Some(s.to_string()))
        .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_given_as_text_are_converted_and_checked() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE p (id BIGINT PRIMARY KEY, n DECIMAL(8,2), d DATE)")
        .await
        .unwrap();
    // Parameters declared as text by the client are parsed into the column's type.
    let insert = client
        .prepare_typed(
            "INSERT INTO p VALUES ($1, $2, $3)",
            &[Type::TEXT, Type::TEXT, Type::TEXT],
        )
        .await
        .unwrap();
    client
        .execute(&insert, &[&"7", &"12.345", &"2020-05-06"])
        .await
        .unwrap();
    let row = client
        .query_one("SELECT n::text, d::text FROM p WHERE id = 7", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "12.35");
    assert_eq!(row.get::<_, String>(1), "2020-05-06");
    let e = client
        .execute(&insert, &[&"x", &"1", &"2020-01-01"])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22P02");
    let e = client
        .execute(&insert, &[&"8", &"1", &"2020-13-01"])
        .await
        .unwrap_err();
    assert!(code(&e).starts_with("22"), "{e}");
    // A parameter nothing gives a type to is text, as in PostgreSQL (psycopg and JDBC cover numeric-as-text and
    // dates with a zone suffix, tests/clients.rs).
    let untyped = client.prepare("SELECT $1").await.unwrap();
    assert_eq!(untyped.params(), &[Type::TEXT]);
    assert_eq!(untyped.columns()[0].type_(), &Type::TEXT);
    let row = client.query_one(&untyped, &[&"hello"]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "hello");
    // A binary int8 where the column is smallint is range-checked.
    client
        .batch_execute("CREATE TABLE small (id SMALLINT PRIMARY KEY)")
        .await
        .unwrap();
    let e = client
        .execute(
            &client
                .prepare_typed("INSERT INTO small VALUES ($1)", &[Type::INT8])
                .await
                .unwrap(),
            &[&100_000i64],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22003");
}

/// Result columns carry the names PostgreSQL gives them (each is PostgreSQL 15's), which drivers read rows by; an
/// EXISTS in the select list is answered, correlated or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_columns_are_named_as_postgres_names_them() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE marks (id INTEGER PRIMARY KEY, v INTEGER); \
             INSERT INTO marks VALUES (1, 1), (2, 2), (3, 7)",
        )
        .await
        .unwrap();
    let statement = client
        .prepare(
            "SELECT v::text, count(*)::int, 1::bigint, 'a'::varchar(3), (v + 1)::text, \
             CASE WHEN v > 1 THEN 1 END, CASE WHEN v > 1 THEN 1 ELSE v END, extract(year FROM date '2024-01-01'), \
             trim(' a '), EXISTS (SELECT 1 FROM marks m WHERE m.v = marks.id + 1), v AS named, 1 + 1 \
             FROM marks GROUP BY v, id ORDER BY id",
        )
        .await
        .unwrap();
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "v", "count", "int8", "varchar", "text", "case", "v", "extract", "btrim", "exists",
            "named", "?column?"
        ]
    );
    let rows = client.query(&statement, &[]).await.unwrap();
    let exists: Vec<bool> = rows.iter().map(|r| r.get("exists")).collect();
    assert_eq!(exists, [true, false, false]);
    let counted =
        "SELECT NOT EXISTS (SELECT 1 FROM marks WHERE v > 5), EXISTS (SELECT 1 WHERE false), \
                   EXISTS (SELECT count(*) FROM marks WHERE false)";
    let row = client.query_one(counted, &[]).await.unwrap();
    assert_eq!(
        (
            row.get::<_, bool>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2)
        ),
        (false, false, true)
    );
}

/// A parameter the client leaves untyped takes the type its place gives it, as in PostgreSQL: `LIMIT`/`OFFSET`
/// bigint, the sides of `||` text (DataFusion refused these statements).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untyped_parameters_take_the_type_of_their_place() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let page = client
        .prepare("SELECT x FROM (VALUES (1), (2), (3)) t(x) ORDER BY x LIMIT $1 OFFSET $2")
        .await
        .unwrap();
    assert_eq!(page.params(), [Type::INT8, Type::INT8]);
    let rows = client.query(&page, &[&2i64, &1i64]).await.unwrap();
    let xs: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(xs, [2, 3]);
    let joined = client.prepare("SELECT $1 || $2").await.unwrap();
    assert_eq!(joined.params(), [Type::TEXT, Type::TEXT]);
    let row = client.query_one(&joined, &[&"a", &"b"]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "ab");
    // `x = ANY($1)`: an array of x's type (DataFusion's fallback to text is no array).
    client
        .batch_execute("CREATE TABLE named (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO named VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        .await
        .unwrap();
    let by_ids = client
        .prepare("SELECT name FROM named WHERE id = ANY($1) ORDER BY id")
        .await
        .unwrap();
    assert_eq!(by_ids.params(), [Type::INT4_ARRAY]);
    let rows = client.query(&by_ids, &[&vec![1i32, 3]]).await.unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["a", "c"]);
    let by_names = client
        .prepare("DELETE FROM named WHERE name <> ALL($1)")
        .await
        .unwrap();
    assert_eq!(by_names.params(), [Type::TEXT_ARRAY]);
    assert_eq!(
        client.execute(&by_names, &[&vec!["a", "b"]]).await.unwrap(),
        1
    );
    // The other way round: `$1 = ANY(array column)` and `array_append(column, $1)` take the element type.
    client
        .batch_execute("CREATE TABLE flagged (id int PRIMARY KEY, flags int[]); INSERT INTO flagged VALUES (1, '{1,2}')")
        .await
        .unwrap();
    let having = client
        .prepare("SELECT id FROM flagged WHERE $1 = ANY(flags)")
        .await
        .unwrap();
    assert_eq!(having.params(), [Type::INT4]);
    assert_eq!(client.query(&having, &[&2i32]).await.unwrap().len(), 1);
    let append = client
        .prepare("UPDATE flagged SET flags = array_append(flags, $1) WHERE id = $2")
        .await
        .unwrap();
    assert_eq!(append.params(), [Type::INT4, Type::INT4]);
    client.execute(&append, &[&7i32, &1i32]).await.unwrap();
    assert_eq!(
        scalar(&client, "SELECT flags::text FROM flagged").await,
        "{1,2,7}"
    );
    // A date given as an instant's text (node-postgres sends a JavaScript Date so): its time is dropped.
    client
        .batch_execute(
            "CREATE TABLE dated (id int PRIMARY KEY, d date); PREPARE put(int, date) AS INSERT INTO dated VALUES ($1, $2); \
             EXECUTE put(1, '2024-03-04T00:00:00.000+00:00'); EXECUTE put(2, '2024-03-05T23:30:00Z')",
        )
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &client,
            "SELECT string_agg(d::text, ',' ORDER BY id) FROM dated"
        )
        .await,
        "2024-03-04,2024-03-05"
    );
}

/// Savepoints in a block (psycopg's nested `transaction()`, SQLAlchemy's `begin_nested`): ROLLBACK TO drops the
/// writes kept since and makes a failed block usable again; RELEASE forgets; outside a block they are 25P01.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_roll_back_part_of_a_block() {
    let server = Server::start(&[]);
    let mut client = server.connect().await;
    client
        .batch_execute("CREATE TABLE sp (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let e = client.batch_execute("SAVEPOINT a").await.unwrap_err();
    assert_eq!(code(&e), "25P01");
    let mut txn = client.transaction().await.unwrap();
    txn.execute("INSERT INTO sp VALUES (1)", &[]).await.unwrap();
    {
        let nested = txn.savepoint("inner").await.unwrap();
        nested
            .execute("INSERT INTO sp VALUES (2)", &[])
            .await
            .unwrap();
        // A statement the block cannot keep (CREATE VIEW) is refused (0A000) and fails the block.
        let e = nested
            .batch_execute("CREATE VIEW spv AS SELECT id, COUNT(*) FROM sp GROUP BY id")
            .await
            .unwrap_err();
        assert_eq!(code(&e), "0A000");
        nested.rollback().await.unwrap();
    }
    // The block works again after ROLLBACK TO.
    txn.execute("INSERT INTO sp VALUES (3)", &[]).await.unwrap();
    {
        let nested = txn.savepoint("kept").await.unwrap();
        nested
            .execute("INSERT INTO sp VALUES (4)", &[])
            .await
            .unwrap();
        nested.commit().await.unwrap();
    }
    let e = txn
        .batch_execute("RELEASE SAVEPOINT nope")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "3B001");
    txn.rollback().await.unwrap();
    let mut txn = client.transaction().await.unwrap();
    txn.execute("INSERT INTO sp VALUES (1)", &[]).await.unwrap();
    {
        let nested = txn.savepoint("gone").await.unwrap();
        nested
            .execute("INSERT INTO sp VALUES (2)", &[])
            .await
            .unwrap();
        nested.rollback().await.unwrap();
    }
    txn.execute("INSERT INTO sp VALUES (3)", &[]).await.unwrap();
    txn.commit().await.unwrap();
    let rows = client
        .query("SELECT id FROM sp ORDER BY id", &[])
        .await
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 3]);
}

/// A constraint violation names its constraint, table and column, and gives PostgreSQL's DETAIL line, as drivers
/// read them (psycopg's `diag`, pgJDBC's `ServerErrorMessage`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn violations_name_their_constraint_table_and_column() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE dg (id INTEGER PRIMARY KEY, x INTEGER NOT NULL, CONSTRAINT dg_x_uq UNIQUE (x));
             INSERT INTO dg VALUES (1, 1)",
        )
        .await
        .unwrap();
    let e = client
        .execute("INSERT INTO dg VALUES (2, 1)", &[])
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "23505");
    assert_eq!(
        db.message(),
        "duplicate key value violates unique constraint \"dg_x_uq\""
    );
    assert_eq!(db.detail(), Some("Key (x)=(1) already exists."));
    assert_eq!(
        (db.schema(), db.table(), db.constraint()),
        (Some("public"), Some("dg"), Some("dg_x_uq"))
    );
    let e = client
        .execute("INSERT INTO dg VALUES (3, NULL)", &[])
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "23502");
    assert_eq!((db.table(), db.column()), (Some("dg"), Some("x")));
}

/// Foreign keys in transaction blocks, as ORMs write them: a child may name a parent the block inserted before it
/// (Django and Hibernate insert in dependency order inside one transaction); a violation of an immediate constraint
/// fails the statement, and the block goes on after a ROLLBACK TO SAVEPOINT; a deferred constraint (Django declares
/// its keys `DEFERRABLE INITIALLY DEFERRED`) is checked at COMMIT, which then applies nothing. The violation carries
/// its constraint, table and DETAIL line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_in_blocks_are_checked_at_the_statement_or_at_commit() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE fk_author (id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE fk_book (id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES fk_author);
             CREATE TABLE fk_review (id INTEGER PRIMARY KEY, book_id INTEGER);
             ALTER TABLE fk_review ADD CONSTRAINT fk_review_book FOREIGN KEY (book_id) REFERENCES fk_book (id) \
                 DEFERRABLE INITIALLY DEFERRED;
             INSERT INTO fk_author VALUES (1, 'ann')",
        )
        .await
        .unwrap();
    let count = |table: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };

    // Outside a block: the error names the constraint, as PostgreSQL's does.
    let e = client
        .execute("INSERT INTO fk_book VALUES (10, 2)", &[])
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "23503");
    assert_eq!(
        db.message(),
        "insert or update on table \"fk_book\" violates foreign key constraint \"fk_book_author_id_fkey\""
    );
    assert_eq!(
        db.detail(),
        Some("Key (author_id)=(2) is not present in table \"fk_author\".")
    );
    assert_eq!(
        (db.table(), db.constraint()),
        (Some("fk_book"), Some("fk_book_author_id_fkey"))
    );

    // A parent, then its child, in one block; parameters through the extended protocol.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("INSERT INTO fk_author VALUES ($1, $2)", &[&2i32, &"bob"])
        .await
        .unwrap();
    client
        .execute("INSERT INTO fk_book VALUES ($1, $2)", &[&10i32, &2i32])
        .await
        .unwrap();
    client.batch_execute("SAVEPOINT s").await.unwrap();
    let e = client
        .execute("INSERT INTO fk_book VALUES ($1, $2)", &[&11i32, &3i32])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23503");
    client
        .batch_execute("ROLLBACK TO SAVEPOINT s; COMMIT")
        .await
        .unwrap();
    assert_eq!((count("fk_author").await, count("fk_book").await), (2, 1));

    // Deleting a parent still named fails at the statement.
    client.batch_execute("BEGIN").await.unwrap();
    let e = client
        .execute("DELETE FROM fk_author WHERE id = 2", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23503");
    client.batch_execute("ROLLBACK").await.unwrap();

    // Deferred: the child first, its parent after, fine at COMMIT.
    client
        .batch_execute(
            "BEGIN; INSERT INTO fk_review VALUES (100, 20); INSERT INTO fk_book VALUES (20, 1); COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(count("fk_review").await, 1);
    // A deferred key whose row changed before COMMIT names nothing any more.
    client
        .batch_execute(
            "BEGIN; INSERT INTO fk_review VALUES (102, 77); UPDATE fk_review SET book_id = NULL WHERE id = 102; COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(count("fk_review").await, 2);
    // A deferred key still missing at COMMIT fails it, and nothing of the block is applied.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("INSERT INTO fk_book VALUES (21, 1)", &[])
        .await
        .unwrap();
    client
        .execute("INSERT INTO fk_review VALUES (101, 99)", &[])
        .await
        .unwrap();
    let e = client.batch_execute("COMMIT").await.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "23503");
    assert_eq!(db.constraint(), Some("fk_review_book"));
    assert_eq!((count("fk_book").await, count("fk_review").await), (2, 2));

    // SET CONSTRAINTS, as Django's check_constraints() sends it: IMMEDIATE checks what waits, at that statement.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("INSERT INTO fk_review VALUES (103, 555)", &[])
        .await
        .unwrap();
    let e = client
        .batch_execute("SET CONSTRAINTS ALL IMMEDIATE")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23503");
    client.batch_execute("ROLLBACK").await.unwrap();
    client
        .batch_execute(
            "BEGIN; INSERT INTO fk_review VALUES (104, 20); SET CONSTRAINTS ALL IMMEDIATE; \
             SET CONSTRAINTS ALL DEFERRED; INSERT INTO fk_review VALUES (105, 30); INSERT INTO fk_book VALUES (30, 1); \
             COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(count("fk_review").await, 4);
    // Made immediate by name, a deferrable constraint fails at the statement.
    client
        .batch_execute("BEGIN; SET CONSTRAINTS fk_review_book IMMEDIATE")
        .await
        .unwrap();
    let e = client
        .execute("INSERT INTO fk_review VALUES (106, 556)", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23503");
    client.batch_execute("ROLLBACK").await.unwrap();
    for (sql, want) in [
        ("SET CONSTRAINTS fk_book_author_id_fkey DEFERRED", "42809"),
        ("SET CONSTRAINTS nope IMMEDIATE", "42704"),
        ("SET CONSTRAINTS fk_author_pkey DEFERRED", "42809"),
        ("SET CONSTRAINTS ALL LATER", "42601"),
    ] {
        let e = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(code(&e), want, "{sql}");
    }
    // Outside a block there is nothing to defer.
    client
        .batch_execute("SET CONSTRAINTS ALL DEFERRED")
        .await
        .unwrap();
    assert_eq!(count("fk_review").await, 4);
}

/// `SELECT ... FOR UPDATE` in a block (the read-modify-write of ORMs and of pgJDBC's `SELECT ... FOR UPDATE`
/// pattern): LaneDB takes no row locks, so the rows it read are read again at COMMIT, which fails with 40001 and
/// applies nothing if another session changed them meanwhile; a lost update is never acknowledged. Every lock
/// strength PostgreSQL has is read (`FOR NO KEY UPDATE`, `FOR KEY SHARE` too), and a locking read is refused in a
/// read-only transaction, as in PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_read_for_update_in_a_block_must_be_unchanged_at_commit() {
    let server = Server::start(&[]);
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute(
        "CREATE TABLE fu (id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO fu VALUES (1, 100), (2, 200)",
    )
    .await
    .unwrap();
    let value = |id: i32| {
        let b = &b;
        async move {
            b.query_one("SELECT v FROM fu WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, i32>(0)
        }
    };

    // Nobody else wrote: the block commits.
    a.batch_execute("BEGIN").await.unwrap();
    let read = a
        .query_one("SELECT v FROM fu WHERE id = $1 FOR UPDATE", &[&1i32])
        .await
        .unwrap()
        .get::<_, i32>(0);
    assert_eq!(read, 100);
    a.execute("UPDATE fu SET v = $1 WHERE id = 1", &[&(read - 10)])
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(value(1).await, 90);

    // Another session changes the row between the read and COMMIT: 40001, and its write stands.
    a.batch_execute("BEGIN").await.unwrap();
    let read = a
        .query_one("SELECT v FROM fu WHERE id = 1 FOR NO KEY UPDATE", &[])
        .await
        .unwrap()
        .get::<_, i32>(0);
    b.execute("UPDATE fu SET v = 50 WHERE id = 1", &[])
        .await
        .unwrap();
    a.execute("UPDATE fu SET v = $1 WHERE id = 1", &[&(read - 10)])
        .await
        .unwrap();
    let e = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(code(&e), "40001");
    assert_eq!(value(1).await, 50);

    // Rows read in any order, and a row of the read set deleted meanwhile.
    a.batch_execute("BEGIN").await.unwrap();
    let rows = a
        .query("SELECT id, v FROM fu FOR SHARE", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    a.batch_execute("UPDATE fu SET v = v + 1 WHERE id = 2; COMMIT")
        .await
        .unwrap();
    assert_eq!(value(2).await, 201);
    a.batch_execute("BEGIN; SELECT * FROM fu WHERE id > 0 FOR KEY SHARE")
        .await
        .unwrap();
    b.execute("DELETE FROM fu WHERE id = 2", &[]).await.unwrap();
    let e = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(code(&e), "40001");

    // Every column of the rows read counts, not only those selected.
    a.batch_execute("BEGIN; SELECT 1 FROM fu WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    b.execute("UPDATE fu SET v = 51 WHERE id = 1", &[])
        .await
        .unwrap();
    let e = a
        .batch_execute("UPDATE fu SET v = 40 WHERE id = 1; COMMIT")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "40001");
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(value(1).await, 51);
    // As in PostgreSQL, a locking read cannot group or be DISTINCT.
    for sql in [
        "SELECT count(*) FROM fu GROUP BY v FOR UPDATE",
        "SELECT DISTINCT v FROM fu FOR UPDATE",
    ] {
        let e = a.query(sql, &[]).await.unwrap_err();
        assert_eq!(code(&e), "0A000", "{sql}");
    }

    // Outside a block it is a read; in a read-only transaction it is refused.
    let rows = a
        .query("SELECT v FROM fu FOR NO KEY UPDATE", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    a.batch_execute("BEGIN READ ONLY").await.unwrap();
    let e = a
        .query("SELECT v FROM fu FOR UPDATE", &[])
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "25006");
    assert_eq!(
        db.message(),
        "cannot execute SELECT FOR UPDATE in a read-only transaction"
    );
    a.batch_execute("ROLLBACK").await.unwrap();
}

/// `LOCK TABLE` in a block (the guard of a read-then-write on a whole table): LaneDB takes no locks, so a mode that
/// keeps other sessions from writing the table (SHARE and stronger; ACCESS EXCLUSIVE without IN ... MODE) has the
/// table's rows read again at COMMIT, which fails with 40001 and applies nothing if another session wrote it
/// meanwhile. A weaker mode blocks no writer, as in PostgreSQL; outside a block it is 25P01; an unknown table 42P01.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_table_must_be_unchanged_at_commit() {
    let server = Server::start(&[]);
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute(
        "CREATE TABLE ledger (id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO ledger VALUES (1, 10), (2, 20);
         CREATE TABLE other (id INTEGER PRIMARY KEY)",
    )
    .await
    .unwrap();
    // Nobody else wrote: the block commits, with what it computed from the locked table.
    a.batch_execute("BEGIN; LOCK TABLE ledger IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let max = a
        .query_one("SELECT max(id) FROM ledger", &[])
        .await
        .unwrap()
        .get::<_, i32>(0);
    a.execute("INSERT INTO ledger VALUES ($1, 30)", &[&(max + 1)])
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    // Another session writes the table between the LOCK and COMMIT: 40001, and nothing of the block is applied.
    for lock in [
        "LOCK TABLE ledger",
        "LOCK ledger, other IN EXCLUSIVE MODE",
        "LOCK TABLE ledger IN SHARE MODE",
    ] {
        a.batch_execute(&format!("BEGIN; {lock}")).await.unwrap();
        a.batch_execute("INSERT INTO other VALUES (1)")
            .await
            .unwrap();
        b.batch_execute("UPDATE ledger SET v = v + 1 WHERE id = 1")
            .await
            .unwrap();
        let e = a.batch_execute("COMMIT").await.unwrap_err();
        assert_eq!(code(&e), "40001", "{lock}");
        let others = b.query("SELECT id FROM other", &[]).await.unwrap();
        assert!(others.is_empty(), "{lock}: the block was applied");
    }
    // Two blocks lock a table neither writes (a table as a mutex): the second to commit fails, as it would have
    // waited for the first in PostgreSQL.
    a.batch_execute("BEGIN; LOCK TABLE ledger IN EXCLUSIVE MODE; INSERT INTO other VALUES (5)")
        .await
        .unwrap();
    b.batch_execute("BEGIN; LOCK TABLE ledger IN EXCLUSIVE MODE; INSERT INTO other VALUES (6)")
        .await
        .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    let e = b.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(code(&e), "40001");
    let others = b.query("SELECT id FROM other", &[]).await.unwrap();
    assert_eq!(others.len(), 1);
    // A table with a column named as the read of its rows names them.
    b.batch_execute("CREATE TABLE h (l INTEGER, id INTEGER); INSERT INTO h VALUES (1, 1); BEGIN; LOCK h; COMMIT")
        .await
        .unwrap();
    b.batch_execute("DELETE FROM other").await.unwrap();
    // A mode that blocks no writer: the other session's write and the block's both stand.
    a.batch_execute("BEGIN; LOCK TABLE ledger IN ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    b.batch_execute("UPDATE ledger SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    a.batch_execute("INSERT INTO other VALUES (1); COMMIT")
        .await
        .unwrap();
    let v = b
        .query_one("SELECT v FROM ledger WHERE id = 1", &[])
        .await
        .unwrap()
        .get::<_, i32>(0);
    assert_eq!(v, 14);
    // Outside a block, and of a table that does not exist.
    let e = a.batch_execute("LOCK TABLE ledger").await.unwrap_err();
    assert_eq!(code(&e), "25P01");
    let e = a
        .batch_execute("BEGIN; LOCK TABLE nowhere")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42P01");
    a.batch_execute("ROLLBACK").await.unwrap();
    // In a read-only block, as in PostgreSQL, every mode is taken (a lock writes nothing).
    a.batch_execute(
        "BEGIN READ ONLY; LOCK TABLE ledger IN ACCESS SHARE MODE; LOCK TABLE ledger IN SHARE UPDATE EXCLUSIVE MODE; \
         LOCK TABLE ledger",
    )
    .await
    .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
}

/// An untyped NULL (`SELECT NULL`, a NULL branch of a UNION) reaches the client as NULL in both formats; it came
/// out as an empty string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untyped_null_is_null_on_the_wire() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let row = client
        .query_one("SELECT NULL AS x, NULL::text AS y", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, Option<String>>(1), None);
    let messages = client
        .simple_query("SELECT NULL UNION ALL SELECT NULL")
        .await
        .unwrap();
    let rows: Vec<Option<&str>> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0)),
            _ => None,
        })
        .collect();
    assert_eq!(rows, [None, None]);
}

/// Read-only transactions (pgJDBC's `setReadOnly(true)` sends `BEGIN READ ONLY`): writes are refused with 25006,
/// reads run; `default_transaction_read_only` makes every transaction read-only, statements on their own too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_transactions_refuse_writes() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE ro (id serial PRIMARY KEY, v int CHECK (v < 100))")
        .await
        .unwrap();
    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    assert_eq!(scalar(&client, "SHOW transaction_read_only").await, "on");
    assert_eq!(scalar(&client, "SELECT count(*) FROM ro").await, "0");
    assert_eq!(
        failure(&client, "INSERT INTO ro (v) VALUES (1)").await,
        "25006"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(scalar(&client, "SHOW transaction_read_only").await, "off");
    // [NOT] DEFERRABLE among the modes (asyncpg, psycopg2) is taken; READ ONLY still holds.
    client
        .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE")
        .await
        .unwrap();
    assert_eq!(
        failure(&client, "INSERT INTO ro (v) VALUES (1)").await,
        "25006"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    client
        .batch_execute(
            "BEGIN NOT DEFERRABLE READ WRITE; INSERT INTO ro (v) VALUES (90); ROLLBACK; \
             SET SESSION CHARACTERISTICS AS TRANSACTION DEFERRABLE",
        )
        .await
        .unwrap();
    client
        .batch_execute("START TRANSACTION; SET TRANSACTION READ ONLY")
        .await
        .unwrap();
    assert_eq!(failure(&client, "CREATE TABLE x (a int)").await, "25006");
    client.batch_execute("ROLLBACK").await.unwrap();
    client
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        .await
        .unwrap();
    assert_eq!(
        failure(&client, "INSERT INTO ro (v) VALUES (2)").await,
        "25006"
    );
    client
        .batch_execute("BEGIN READ WRITE; INSERT INTO ro (v) VALUES (3); COMMIT")
        .await
        .unwrap();
    client
        .batch_execute("SET default_transaction_read_only = off; INSERT INTO ro (v) VALUES (4)")
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &client,
            "SELECT string_agg(v::text, ',' ORDER BY v) FROM ro"
        )
        .await,
        "3,4"
    );
    // A CHECK in a block fails at the INSERT, as in PostgreSQL, and the block is aborted.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        failure(&client, "INSERT INTO ro (v) VALUES (500)").await,
        "23514"
    );
    assert_eq!(failure(&client, "SELECT 1").await, "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();
}

/// UPDATE, DELETE and `INSERT ... ON CONFLICT` in a block: each runs now after the block's writes, in a
/// transaction rolled back, so its count (and its errors) are answered at once; COMMIT applies them all and checks
/// each count again: another session's change in between fails the COMMIT with 40001 and applies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_in_a_block_apply_at_commit_and_conflicts_fail_it() {
    let server = Server::start(&[]);
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute(
        "CREATE TABLE acc (id int PRIMARY KEY, bal int CHECK (bal >= 0), tag text); \
         INSERT INTO acc VALUES (1, 100, 'a'), (2, 50, 'b'), (3, 0, 'c')",
    )
    .await
    .unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        a.execute("UPDATE acc SET bal = bal - 10 WHERE id = $1", &[&1i32])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        a.execute("DELETE FROM acc WHERE tag = 'c'", &[])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        a.execute(
            "INSERT INTO acc VALUES (2, 0, 'dup') ON CONFLICT (id) DO UPDATE SET tag = 'upserted'",
            &[]
        )
        .await
        .unwrap(),
        1
    );
    // The block's reads see its writes; other sessions do not.
    assert_eq!(
        scalar(
            &a,
            "SELECT string_agg(id || ':' || bal || tag, ',' ORDER BY id) FROM acc"
        )
        .await,
        "1:90a,2:50upserted"
    );
    assert_eq!(scalar(&b, "SELECT count(*) FROM acc").await, "3");
    // An error shows at the statement.
    assert_eq!(
        failure(&a, "UPDATE acc SET bal = bal - 1000 WHERE id = 2").await,
        "23514"
    );
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        scalar(
            &b,
            "SELECT string_agg(id || ':' || bal, ',' ORDER BY id) FROM acc"
        )
        .await,
        "1:100,2:50,3:0"
    );

    a.batch_execute(
        "BEGIN; UPDATE acc SET bal = bal - 10 WHERE id = 1; DELETE FROM acc WHERE id = 3; COMMIT",
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(
            &b,
            "SELECT string_agg(id || ':' || bal, ',' ORDER BY id) FROM acc"
        )
        .await,
        "1:90,2:50"
    );

    // Another session changes what the block's UPDATE matched: COMMIT fails and applies nothing.
    a.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        a.execute("UPDATE acc SET tag = 'rich' WHERE bal > 40", &[])
            .await
            .unwrap(),
        2
    );
    a.execute("INSERT INTO acc VALUES (4, 1, 'd')", &[])
        .await
        .unwrap();
    b.batch_execute("UPDATE acc SET bal = 10 WHERE id = 2")
        .await
        .unwrap();
    let e = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(code(&e), "40001");
    assert_eq!(
        scalar(
            &b,
            "SELECT string_agg(id || ':' || bal || tag, ',' ORDER BY id) FROM acc"
        )
        .await,
        "1:90a,2:10b"
    );
}

/// INSERT ... ON CONFLICT DO NOTHING into a table with an identity column, in a block (Django's many-to-many `add`,
/// of VALUES or of UNNEST of arrays): sequence values are taken once per row offered, conflicting or not, as in
/// PostgreSQL; the block's reads see the rows; they commit, and replay the same after a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_on_conflict_into_identity_tables_work_in_blocks() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE m2m (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, a int, b int, UNIQUE (a, b));
             BEGIN;
             INSERT INTO m2m (a, b) VALUES (1, 1) ON CONFLICT DO NOTHING;
             INSERT INTO m2m (a, b) SELECT * FROM UNNEST(('{1,1,2}'::int2[])::integer[], ('{1,2,2}'::int2[])::integer[])
                 ON CONFLICT DO NOTHING;",
        )
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM m2m").await, "3");
    client.batch_execute("COMMIT").await.unwrap();
    let shown = "SELECT string_agg(id || ':' || a || b, ' ' ORDER BY id) FROM m2m";
    // Values taken as PostgreSQL takes them: the conflicting (1, 1) took 2.
    assert_eq!(scalar(&client, shown).await, "1:11 3:12 4:22");
    drop(client);
    let dir = server.crash();
    let server = Server::start_in(dir, &[]);
    let client = server.connect().await;
    assert_eq!(scalar(&client, shown).await, "1:11 3:12 4:22");
}

/// DDL in a transaction block (SQLAlchemy's `create_all` on a default engine): kept for COMMIT, where the block's
/// statements apply together; each is tried when it arrives, so its error shows there, as in PostgreSQL; ROLLBACK
/// leaves nothing; after DDL, a block may write rows of tables the DDL leaves as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_in_a_block_applies_at_commit() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let other = server.connect().await;
    client
        .batch_execute(
            "BEGIN; CREATE TABLE a (id serial PRIMARY KEY, v text); CREATE INDEX a_v ON a (v); \
             CREATE SEQUENCE s",
        )
        .await
        .unwrap();
    // Not there for others before COMMIT.
    assert_eq!(
        scalar(
            &other,
            "SELECT count(*) FROM pg_class WHERE relname IN ('a', 'a_v', 's')"
        )
        .await,
        "0"
    );
    assert_eq!(failure(&client, "CREATE TABLE a (x int)").await, "42P07");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        scalar(
            &other,
            "SELECT count(*) FROM pg_class WHERE relname IN ('a', 'a_v', 's', 'a_id_seq')"
        )
        .await,
        "0"
    );
    client
        .batch_execute(
            "BEGIN; CREATE TABLE a (id serial PRIMARY KEY, v text); CREATE INDEX a_v ON a (v); \
             CREATE SEQUENCE s; COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &other,
            "SELECT count(*) FROM pg_class WHERE relname IN ('a', 'a_v', 's', 'a_id_seq')"
        )
        .await,
        "4"
    );
    // After DDL, a block may write rows of tables the DDL leaves as they are; of one it changed, not (the write
    // was planned against the table before the change).
    client
        .batch_execute("BEGIN; ALTER TABLE a ADD COLUMN w int")
        .await
        .unwrap();
    assert_eq!(
        failure(&client, "INSERT INTO a (v) VALUES ('x')").await,
        "0A000"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    // A read of a table the block's DDL changed is refused, not answered as the table was (a point read and a
    // whole-table read included); so is a statement naming what the DDL creates (knex's migration that creates a
    // table and fills it), with 0A000 rather than "does not exist".
    client
        .batch_execute("INSERT INTO a (v) VALUES ('z')")
        .await
        .unwrap();
    for read in [
        "SELECT * FROM a WHERE id = 1",
        "SELECT * FROM a",
        "SELECT count(*) FROM a",
    ] {
        client
            .batch_execute("BEGIN; ALTER TABLE a ADD COLUMN w int")
            .await
            .unwrap();
        assert_eq!(failure(&client, read).await, "0A000", "{read}");
        client.batch_execute("ROLLBACK").await.unwrap();
    }
    client
        .batch_execute("BEGIN; CREATE TABLE fresh (id int PRIMARY KEY)")
        .await
        .unwrap();
    assert_eq!(
        failure(&client, "INSERT INTO fresh VALUES (1)").await,
        "0A000"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    client
        .batch_execute("BEGIN; ALTER TABLE a ADD COLUMN level int")
        .await
        .unwrap();
    assert_eq!(failure(&client, "UPDATE a SET level = 1").await, "0A000");
    client.batch_execute("ROLLBACK").await.unwrap();
    // Without DDL in the block, a missing table is what it is.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        failure(&client, "INSERT INTO fresh VALUES (1)").await,
        "42P01"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    client.batch_execute("DELETE FROM a").await.unwrap();
    client
        .batch_execute(
            "BEGIN; INSERT INTO a (v) VALUES ('x'); DROP SEQUENCE s; INSERT INTO a (v) VALUES ('y'); COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(
        scalar(&other, "SELECT string_agg(v, ',' ORDER BY id) FROM a").await,
        "x,y"
    );
    assert_eq!(
        scalar(&other, "SELECT count(*) FROM pg_class WHERE relname = 's'").await,
        "0"
    );
    // Views, users and procedures are still their own transactions.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        failure(
            &client,
            "CREATE VIEW av AS SELECT v, count(*) FROM a GROUP BY v"
        )
        .await,
        "0A000"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    client
        .batch_execute("BEGIN; DROP TABLE a; COMMIT")
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &other,
            "SELECT count(*) FROM pg_class WHERE relname IN ('a', 'a_v', 's', 'a_id_seq')"
        )
        .await,
        "0"
    );
}

/// `currval` and `lastval` are each session's own; an INSERT's key from a serial column is not a parameter the
/// client sends (ParameterDescription lists only the client's), and a block's INSERTs take theirs at COMMIT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_are_shared_and_their_last_values_are_per_session() {
    let server = Server::start(&[]);
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE items (id bigserial PRIMARY KEY, name text)")
        .await
        .unwrap();
    let insert = a
        .prepare("INSERT INTO items (name) VALUES ($1) RETURNING id")
        .await
        .unwrap();
    assert_eq!(insert.params(), &[Type::TEXT]);
    assert_eq!(insert.columns()[0].type_(), &Type::INT8);
    let first: i64 = a.query_one(&insert, &[&"one"]).await.unwrap().get(0);
    assert_eq!(first, 1);
    assert_eq!(failure(&b, "SELECT currval('items_id_seq')").await, "55000");
    let second: i64 = b
        .query_one(
            "INSERT INTO items (name) VALUES ($1) RETURNING id",
            &[&"two"],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(second, 2);
    assert_eq!(scalar(&a, "SELECT currval('items_id_seq')").await, "1");
    assert_eq!(scalar(&b, "SELECT lastval()").await, "2");
    // A block's INSERT takes its key at COMMIT.
    b.batch_execute("BEGIN; INSERT INTO items (name) VALUES ('three'); COMMIT")
        .await
        .unwrap();
    assert_eq!(scalar(&b, "SELECT currval('items_id_seq')").await, "3");
    assert_eq!(
        scalar(
            &a,
            "SELECT string_agg(id || name, ',' ORDER BY id) FROM items"
        )
        .await,
        "1one,2two,3three"
    );
    // SQLAlchemy's many-row insert in a transaction: an INSERT ... SELECT over VALUES has known rows, so a block
    // keeps it for COMMIT and answers RETURNING at once; a read that reads no table (nextval) may follow a write,
    // and nextval() in the select list takes a value per row.
    a.batch_execute("CREATE SEQUENCE other START 100 INCREMENT 10; CREATE TABLE tagged (id int PRIMARY KEY, name text)")
        .await
        .unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    let many = "INSERT INTO items (name) SELECT p0::VARCHAR FROM (VALUES ($1::VARCHAR, 0), ($2::VARCHAR, 1)) \
                AS imp_sen(p0, sen_counter) ORDER BY sen_counter RETURNING items.id";
    let ids: Vec<i64> = a
        .query(many, &[&"four", &"five"])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![4, 5]);
    assert_eq!(scalar(&a, "SELECT nextval('other')").await, "100");
    let tagged: Vec<(i32, String)> = a
        .query(
            "INSERT INTO tagged (id, name) SELECT nextval('other'), p1 FROM (VALUES ('x', 0), ('y', 1)) \
             AS imp_sen(p1, sen_counter) ORDER BY sen_counter RETURNING id, name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(tagged, vec![(110, "x".into()), (120, "y".into())]);
    // A read of a table after a write in the block sees the write, as in PostgreSQL.
    assert_eq!(scalar(&a, "SELECT count(*) FROM items").await, "5");
    assert_eq!(scalar(&b, "SELECT count(*) FROM items").await, "3");
    a.batch_execute("ROLLBACK").await.unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    a.query(many, &[&"six", &"seven"]).await.unwrap();
    a.batch_execute("INSERT INTO tagged (id, name) SELECT nextval('other'), 'z'; COMMIT")
        .await
        .unwrap();
    assert_eq!(
        scalar(
            &b,
            "SELECT string_agg(id || name, ',' ORDER BY id) FROM items WHERE id > 3"
        )
        .await,
        "6six,7seven"
    );
    assert_eq!(
        scalar(&b, "SELECT string_agg(id || name, ',') FROM tagged").await,
        "130z"
    );
    a.batch_execute("DISCARD ALL").await.unwrap();
    assert_eq!(failure(&a, "SELECT lastval()").await, "55000");
    // A procedure's INSERT cannot take values from a sequence: replay would take others.
    let e = failure(
        &a,
        "CREATE PROCEDURE add_item AS INSERT INTO items (name) VALUES ($1)",
    )
    .await;
    assert_eq!(e, "0A000");
}

/// `RETURNING` gives back the rows a write wrote, through prepared statements as ORMs send them: described before
/// they run, with parameters, in the order of VALUES across lanes; an error in the list undoes the write, and a
/// transaction block (whose writes wait for COMMIT) refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_return_rows_with_returning() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE item (id BIGINT PRIMARY KEY, name TEXT NOT NULL, qty INTEGER DEFAULT 1);
             PARTITION TABLE item ON COLUMN id",
        )
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO item (id, name) VALUES ($1, $2), ($3, $4), ($5, $6) RETURNING id, qty, item.*")
        .await
        .unwrap();
    let names: Vec<&str> = insert.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["id", "qty", "id", "name", "qty"]);
    let types: Vec<&Type> = insert.columns().iter().map(|c| c.type_()).collect();
    assert_eq!(
        types,
        [
            &Type::INT8,
            &Type::INT4,
            &Type::INT8,
            &Type::TEXT,
            &Type::INT4
        ]
    );
    assert_eq!(
        insert.params(),
        [
            Type::INT8,
            Type::TEXT,
            Type::INT8,
            Type::TEXT,
            Type::INT8,
            Type::TEXT
        ]
    );
    // Keys on different lanes come back in the order given.
    let rows = client
        .query(&insert, &[&30i64, &"c", &10i64, &"a", &20i64, &"b"])
        .await
        .unwrap();
    let got: Vec<(i64, i32, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(3)))
        .collect();
    assert_eq!(
        got,
        [
            (30, 1, "c".into()),
            (10, 1, "a".into()),
            (20, 1, "b".into())
        ]
    );

    // Expressions, through DataFusion.
    let update = client
        .prepare(
            "UPDATE item SET qty = qty + $1 WHERE id = $2 RETURNING upper(name) AS shout, qty * 10",
        )
        .await
        .unwrap();
    let names: Vec<&str> = update.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["shout", "?column?"]);
    let row = client.query_one(&update, &[&4i32, &10i64]).await.unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        ("A".into(), 50)
    );
    let deleted = client
        .query("DELETE FROM item WHERE id >= 20 RETURNING id", &[])
        .await
        .unwrap();
    let mut ids: Vec<i64> = deleted.iter().map(|r| r.get(0)).collect();
    ids.sort_unstable();
    assert_eq!(ids, [20, 30]);
    let messages = client
        .simple_query("DELETE FROM item WHERE id = 99 RETURNING id")
        .await
        .unwrap();
    assert!(matches!(
        messages.last(),
        Some(SimpleQueryMessage::CommandComplete(0))
    ));

    // A failing RETURNING list leaves the row as it was, on the fast path and through DataFusion.
    assert_eq!(
        failure(
            &client,
            "UPDATE item SET qty = 0 WHERE id = 10 RETURNING 1 / qty"
        )
        .await,
        "22012"
    );
    assert_eq!(
        failure(
            &client,
            "INSERT INTO item VALUES (40, 'd', 0) RETURNING id / qty"
        )
        .await,
        "22012"
    );
    assert_eq!(
        scalar(&client, "SELECT qty FROM item WHERE id = 10").await,
        "5"
    );
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM item WHERE id = 40").await,
        "0"
    );
    assert_eq!(
        failure(
            &client,
            "INSERT INTO item VALUES (41, 'e') RETURNING (SELECT count(*) FROM item)"
        )
        .await,
        "0A000"
    );

    // In a transaction block an INSERT runs at COMMIT; RETURNING answers at once with the rows COMMIT will insert,
    // and nothing is there after ROLLBACK.
    client.batch_execute("BEGIN").await.unwrap();
    let returned = client
        .query(
            "INSERT INTO item VALUES (42, 'f'), ($1, 'g') RETURNING id * 10, name",
            &[&43i64],
        )
        .await
        .unwrap();
    let returned: Vec<(i64, String)> = returned.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(returned, vec![(420, "f".into()), (430, "g".into())]);
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM item").await, "1");
    // An error in a row shows at the INSERT; one in the RETURNING list too.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        failure(
            &client,
            "INSERT INTO item VALUES (44, 'h') RETURNING id / 0"
        )
        .await,
        "22012"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    // With ON CONFLICT what is written depends on the rows there at COMMIT: it answers with what it writes when it
    // arrives (here nothing, the key is taken), and COMMIT checks it writes the same.
    client.batch_execute("BEGIN").await.unwrap();
    let out = client
        .query(
            "INSERT INTO item VALUES (10, 'x') ON CONFLICT (id) DO NOTHING RETURNING id",
            &[],
        )
        .await
        .unwrap();
    assert!(out.is_empty());
    let out = client
        .query(
            "INSERT INTO item VALUES (46, 'x') ON CONFLICT (id) DO NOTHING RETURNING id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(out[0].get::<_, i64>(0), 46);
    client.batch_execute("ROLLBACK").await.unwrap();
    // COMMIT applies them.
    client
        .batch_execute("BEGIN; INSERT INTO item VALUES (45, 'i') RETURNING id; COMMIT")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM item").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_answer_in_order() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE acc (id BIGINT PRIMARY KEY, bal BIGINT NOT NULL); PARTITION TABLE acc ON COLUMN id")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO acc VALUES ($1, $2)")
        .await
        .unwrap();
    let select = client
        .prepare("SELECT bal FROM acc WHERE id = $1")
        .await
        .unwrap();
    // tokio-postgres sends these without waiting for replies: many Executes in flight on one connection.
    let inserts = join_all((0..200i64).map(|i| {
        let (client, insert) = (&client, &insert);
        async move { client.execute(insert, &[&i, &(i * 10)]).await }
    }))
    .await;
    assert!(inserts.iter().all(|r| matches!(r, Ok(1))));
    let reads = join_all((0..200i64).map(|i| {
        let (client, select) = (&client, &select);
        async move {
            client
                .query_one(select, &[&i])
                .await
                .map(|r| r.get::<_, i64>(0))
        }
    }))
    .await;
    for (i, r) in reads.into_iter().enumerate() {
        assert_eq!(r.unwrap(), i as i64 * 10);
    }
    // An error in the middle of a pipeline fails that request only.
    let divide = client.prepare("SELECT 1 / $1::integer").await.unwrap();
    let mixed = join_all([
        client.query_one(&select, &[&1i64]),
        client.query_one(&divide, &[&0i32]),
        client.query_one(&select, &[&2i64]),
    ])
    .await;
    assert_eq!(mixed[0].as_ref().unwrap().get::<_, i64>(0), 10);
    assert_eq!(code(mixed[1].as_ref().unwrap_err()), "22012");
    assert_eq!(mixed[2].as_ref().unwrap().get::<_, i64>(0), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portals_with_row_limits_resume_where_they_stopped() {
    let server = Server::start(&[]);
    let mut client = server.connect().await;
    client
        .batch_execute("CREATE TABLE seq (n INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO seq SELECT * FROM (VALUES (1),(2),(3),(4),(5),(6),(7)) AS v(n)",
            &[],
        )
        .await
        .unwrap();
    let txn = client.transaction().await.unwrap();
    let portal = txn
        .bind("SELECT n FROM seq WHERE n > $1 ORDER BY n", &[&1i32])
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let rows = txn.query_portal(&portal, 4).await.unwrap();
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 4);
        seen.extend(rows.iter().map(|r| r.get::<_, i32>(0)));
    }
    assert_eq!(seen, vec![2, 3, 4, 5, 6, 7]);
    txn.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_their_sqlstate_and_the_session_goes_on() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE e (id INTEGER PRIMARY KEY, name TEXT NOT NULL, small SMALLINT); \
             INSERT INTO e VALUES (1, 'a', 1)",
        )
        .await
        .unwrap();
    let cases = [
        ("SELEC 1", "42601"),
        ("SELECT * FROM missing", "42P01"),
        ("SELECT nope FROM e", "42703"),
        ("INSERT INTO e VALUES (1, 'dup', 0)", "23505"),
        ("INSERT INTO e VALUES (2, NULL, 0)", "23502"),
        ("SELECT 1 / 0", "22012"),
        ("INSERT INTO e VALUES (3, 'x', 40000)", "22003"),
        ("SELECT 'abc'::integer", "22P02"),
        ("CREATE TABLE q (a INT) PARTITION BY RANGE (a)", "0A000"),
        ("CREATE TEMP SEQUENCE s", "0A000"),
        ("SHOW no_such_setting", "42704"),
    ];
    for (sql, expected) in cases {
        let simple = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&simple), expected, "simple: {sql}: {simple}");
        if !sql.starts_with("SHOW") && !sql.starts_with("CREATE") {
            let extended = client.query(sql, &[]).await.unwrap_err();
            assert_eq!(code(&extended), expected, "extended: {sql}: {extended}");
        }
    }
    // Syntax errors carry the position of the offending token.
    let e = client
        .simple_query("SELECT 1;\nSELECT (1 +")
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42601");
    assert!(db.position().is_some(), "{db:?}");
    // Worded as PostgreSQL words them; what the parser expected is the detail.
    assert_eq!(db.message(), "syntax error at end of input");
    let e = client.simple_query("SELEC 1").await.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.message(), "syntax error at or near \"SELEC\"");
    assert!(
        db.detail().is_some_and(|d| d.starts_with("Expected")),
        "{db:?}"
    );
    // A named placeholder (a client's to replace) is a syntax error.
    let e = client.simple_query("SELECT :a::int + 1").await.unwrap_err();
    assert_eq!(code(&e), "42601");
    // Undefined names in a later statement of a simple query: the position counts from the start of the whole
    // string, and the message is PostgreSQL's.
    let position = |e: &tokio_postgres::Error| match e.as_db_error().and_then(|d| d.position()) {
        Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p),
        _ => None,
    };
    let e = client
        .simple_query("SELECT 1; SELECT * FROM nosuch")
        .await
        .unwrap_err();
    assert_eq!(position(&e), Some(25), "{e:?}");
    let e = client
        .simple_query("SELECT 1;\nSELECT nocol FROM e")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42703");
    assert_eq!(
        e.as_db_error().unwrap().message(),
        "column \"nocol\" does not exist"
    );
    assert_eq!(position(&e), Some(18), "{e:?}");
    let e = client.query("SELECT id / 0 FROM e", &[]).await.unwrap_err();
    assert_eq!(e.as_db_error().unwrap().message(), "division by zero");
    let row = client
        .query_one("SELECT count(*) FROM e", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_statements_are_answered() {
    let server = Server::start(&[]);
    let client = server.connect_as("alice", "shop").await;
    for sql in [
        "SET application_name = 'wire-test'",
        "SET extra_float_digits = 3",
        "SET TIME ZONE 'UTC'",
        "SET search_path TO public",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "RESET extra_float_digits",
        "DISCARD ALL",
    ] {
        client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    client
        .simple_query("SET application_name = 'again'")
        .await
        .unwrap();
    let show = |rows: Vec<SimpleQueryMessage>| rows_of(&rows)[0][0].clone().unwrap();
    // Sequelize's first statements; a zone given as hours east of UTC; LOCAL is the server's zone.
    client
        .batch_execute(
            "SET client_min_messages TO warning;SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE;",
        )
        .await
        .unwrap();
    client.batch_execute("SET TIME ZONE -5").await.unwrap();
    assert_eq!(
        scalar(
            &client,
            "SELECT '2024-01-01 12:00:00+00'::timestamptz::text"
        )
        .await,
        "2024-01-01 07:00:00-05"
    );
    assert_eq!(
        code(
            &client
                .batch_execute("CREATE EXTENSION postgis")
                .await
                .unwrap_err()
        ),
        "0A000"
    );
    client
        .batch_execute("CREATE EXTENSION plpgsql; DROP EXTENSION IF EXISTS \"uuid-ossp\"")
        .await
        .unwrap();
    client.batch_execute("SET TIME ZONE LOCAL").await.unwrap();
    assert_eq!(
        show(client.simple_query("SHOW TimeZone").await.unwrap()),
        "UTC"
    );
    assert_eq!(
        show(client.simple_query("SHOW application_name").await.unwrap()),
        "again"
    );
    assert_eq!(
        show(client.simple_query("SHOW server_version").await.unwrap()),
        "15.0"
    );
    assert_eq!(
        show(client.simple_query("SHOW TimeZone").await.unwrap()),
        "UTC"
    );
    // The column is named as PostgreSQL spells the setting.
    let shown = client.prepare("SHOW timezone").await.unwrap();
    assert_eq!(shown.columns()[0].name(), "TimeZone");
    client.simple_query("RESET ALL").await.unwrap();
    assert_eq!(
        show(client.simple_query("SHOW application_name").await.unwrap()),
        ""
    );
    let all = client.simple_query("SHOW ALL").await.unwrap();
    assert!(rows_of(&all).len() > 10);
    let e = client
        .simple_query("SET no_such_setting = 1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42704");
    let e = client
        .simple_query("SET client_encoding = 'LATIN1'")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "0A000");
    // asyncpg's reset of a connection going back to its pool.
    client
        .batch_execute("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;")
        .await
        .unwrap();
    // An encoding's name is read as PostgreSQL reads it, letters and digits only (asyncpg's start-up packet has
    // `'utf-8'`, quotes included).
    for name in ["utf_8", "''utf-8''", "Unicode"] {
        client
            .simple_query(&format!("SET client_encoding = '{name}'"))
            .await
            .unwrap();
        assert_eq!(
            show(client.simple_query("SHOW client_encoding").await.unwrap()),
            "UTF8"
        );
    }
    // SHOW through the extended protocol describes its column.
    let row = client.query_one("SHOW server_version", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "15.0");
    // pg_settings, as tools and psql's completion of SET and SHOW read it, with the session's time zone.
    client
        .simple_query("SET TimeZone = 'Europe/Paris'")
        .await
        .unwrap();
    let settings = client
        .query(
            "SELECT name, setting, context, source FROM pg_catalog.pg_settings \
             WHERE name IN ('TimeZone', 'server_version', 'application_name') ORDER BY name",
            &[],
        )
        .await
        .unwrap();
    let settings: Vec<(String, String, String, String)> = settings
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let row = |name: &str, setting: &str, context: &str, source: &str| {
        (name.into(), setting.into(), context.into(), source.into())
    };
    assert_eq!(
        settings,
        vec![
            row("TimeZone", "Europe/Paris", "user", "session"),
            row("application_name", "", "user", "default"),
            row("server_version", "15.0", "internal", "default"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_setting_and_set_config_see_the_sessions_settings() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let other = server.connect().await;
    client
        .simple_query("SET application_name = 'reporting'")
        .await
        .unwrap();
    // current_setting reads this session's settings, through both protocols, with any spelling of the name.
    let one = |rows: Vec<SimpleQueryMessage>| rows_of(&rows)[0].clone();
    assert_eq!(
        one(client
            .simple_query(
                "SELECT current_setting('application_name'), current_setting('TimeZone'), \
                 current_setting('server_version_num')"
            )
            .await
            .unwrap()),
        vec![
            Some("reporting".into()),
            Some("UTC".into()),
            Some("150000".into())
        ]
    );
    let by_param = "SELECT current_setting($1)";
    let name = "Application_Name";
    assert_eq!(
        client
            .query_one(by_param, &[&name])
            .await
            .unwrap()
            .get::<_, String>(0),
        "reporting"
    );
    // Another session has its own.
    assert_eq!(
        other
            .query_one(by_param, &[&name])
            .await
            .unwrap()
            .get::<_, String>(0),
        ""
    );
    // An unknown name: 42704, or NULL with missing_ok; per row too.
    let e = client
        .query_one("SELECT current_setting('no_such')", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42704");
    let rows = client
        .query(
            "SELECT current_setting(n, true) FROM (VALUES ('application_name'), ('no_such'), (NULL)) AS t(n)",
            &[],
        )
        .await
        .unwrap();
    let values: Vec<Option<String>> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, vec![Some("reporting".into()), None, None]);
    // pg_settings shows the session's value and says where it came from.
    let row = client
        .query_one(
            "SELECT setting, source FROM pg_settings WHERE name = 'application_name'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("reporting".into(), "session".into())
    );

    // set_config on its own is SET that answers with the new value: constants, or parameters (described as text
    // and boolean), under its alias if it has one.
    assert_eq!(
        one(client
            .simple_query("SELECT pg_catalog.set_config('search_path', 'public', false)")
            .await
            .unwrap()),
        vec![Some("public".into())]
    );
    let statement = client
        .prepare("SELECT set_config($1, $2, $3) AS now_set")
        .await
        .unwrap();
    assert_eq!(statement.params(), &[Type::TEXT, Type::TEXT, Type::BOOL]);
    assert_eq!(statement.columns()[0].name(), "now_set");
    assert_eq!(statement.columns()[0].type_(), &Type::TEXT);
    let row = client
        .query_one(&statement, &[&"app.tenant", &"42", &false])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "42");
    assert_eq!(
        one(client.simple_query("SHOW app.tenant").await.unwrap()),
        vec![Some("42".into())]
    );
    assert_eq!(
        one(client
            .simple_query("SELECT current_setting('app.tenant')")
            .await
            .unwrap()),
        vec![Some("42".into())]
    );
    // A write may not read a setting: the command log replays writes without the session.
    client
        .batch_execute("CREATE TABLE tenants (id INTEGER PRIMARY KEY, name TEXT)")
        .await
        .unwrap();
    let e = client
        .simple_query("INSERT INTO tenants SELECT 1, current_setting('app.tenant')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "0A000");
    let message = e.as_db_error().unwrap().message();
    assert!(message.contains("replays writes"), "{message}");
    let e = client
        .simple_query("UPDATE tenants SET name = current_setting('application_name') WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "0A000");
    // Nor the session's identity, for the same reason; reads may.
    for sql in [
        "INSERT INTO tenants VALUES (2, current_user)",
        "INSERT INTO tenants SELECT 3, current_database()",
        "UPDATE tenants SET name = 'x' WHERE name = session_user",
        "DELETE FROM tenants WHERE name = user",
    ] {
        let e = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), "0A000", "{sql}");
        let message = e.as_db_error().unwrap().message();
        assert!(message.contains("replays writes"), "{sql}: {message}");
    }
    assert_eq!(
        scalar(&client, "SELECT current_user || '@' || current_database()").await,
        "tester@testdb"
    );
    // Unknown plain names and fixed settings are refused as SET refuses them; so is set_config inside a query.
    for (sql, expected) in [
        ("SELECT set_config('no_such', 'x', false)", "42704"),
        ("SELECT set_config('server_version', '9.6', false)", "55P02"),
        ("SELECT set_config(NULL, 'x', false)", "22004"),
        ("SELECT set_config('a.b', 'x', false), 1", "0A000"),
    ] {
        let e = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), expected, "{sql}");
    }

    // Settings are transactional: SET LOCAL and set_config(..., true) end with the block, a rolled-back block's
    // SETs are undone, a committed block's kept.
    client.simple_query("BEGIN").await.unwrap();
    client
        .simple_query("SET LOCAL TIME ZONE 'Europe/Paris'")
        .await
        .unwrap();
    client
        .simple_query("SELECT set_config('app.tenant', '7', true)")
        .await
        .unwrap();
    client
        .simple_query("SET application_name = 'in-block'")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SHOW TimeZone").await, "Europe/Paris");
    assert_eq!(
        scalar(&client, "SELECT current_setting('app.tenant')").await,
        "7"
    );
    assert_eq!(
        scalar(
            &client,
            "SELECT '2026-01-15 12:00:00+00'::timestamptz::text"
        )
        .await,
        "2026-01-15 13:00:00+01"
    );
    // A NULL value resets, for the block only when local.
    client
        .simple_query("SELECT set_config('app.tenant', NULL, true)")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SHOW app.tenant").await, "");
    client.simple_query("COMMIT").await.unwrap();
    assert_eq!(scalar(&client, "SHOW TimeZone").await, "UTC");
    assert_eq!(scalar(&client, "SHOW app.tenant").await, "42");
    assert_eq!(scalar(&client, "SHOW application_name").await, "in-block");
    client.simple_query("BEGIN").await.unwrap();
    client
        .simple_query("SET application_name = 'undone'; RESET search_path")
        .await
        .unwrap();
    client.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(scalar(&client, "SHOW application_name").await, "in-block");
    // A failed block's COMMIT is a rollback.
    client.simple_query("BEGIN").await.unwrap();
    client
        .simple_query("SET application_name = 'failed'")
        .await
        .unwrap();
    assert!(client.simple_query("SELECT 1/0").await.is_err());
    client.simple_query("COMMIT").await.unwrap();
    assert_eq!(scalar(&client, "SHOW application_name").await, "in-block");
    // A simple query of several statements is a block of its own: SET LOCAL lasts to its end, and an error undoes
    // its SETs.
    let messages = client
        .simple_query("SET LOCAL statement_timeout = '5s'; SHOW statement_timeout")
        .await
        .unwrap();
    assert_eq!(rows_of(&messages), vec![vec![Some("5s".to_string())]]);
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "0");
    assert!(client
        .simple_query("SET application_name = 'doomed'; SELECT 1/0")
        .await
        .is_err());
    assert_eq!(scalar(&client, "SHOW application_name").await, "in-block");
    client
        .simple_query("SET application_name = 'kept'; SELECT 1")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SHOW application_name").await, "kept");
    client
        .simple_query("SET application_name = 'in-block'")
        .await
        .unwrap();
    // SET LOCAL outside a block changes nothing (PostgreSQL warns).
    client
        .simple_query("SET LOCAL application_name = 'nowhere'")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SHOW application_name").await, "in-block");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_settings_are_reported_again_when_a_block_undoes_them() {
    let server = Server::start(&[]);
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&common::startup_packet("x")).await.unwrap();
    exchange(&mut s, &[]).await;
    let query = |sql: &str| message(b'Q', &cstrings(&[sql]));
    let reported = |got: Vec<(char, String)>| -> Vec<String> {
        got.into_iter()
            .filter(|(tag, _)| *tag == 'S')
            .map(|(_, detail)| detail)
            .collect()
    };
    assert_eq!(
        reported(exchange(&mut s, &query("BEGIN")).await),
        Vec::<String>::new()
    );
    assert_eq!(
        reported(exchange(&mut s, &query("SET LOCAL TimeZone = 'Asia/Tokyo'")).await),
        vec!["TimeZone=Asia/Tokyo"]
    );
    assert_eq!(
        reported(
            exchange(
                &mut s,
                &query("SELECT set_config('application_name', 'x', false)")
            )
            .await
        ),
        vec!["application_name=x"]
    );
    // Setting a value it already has reports nothing.
    assert_eq!(
        reported(exchange(&mut s, &query("SET application_name = 'x'")).await),
        Vec::<String>::new()
    );
    assert_eq!(
        reported(exchange(&mut s, &query("ROLLBACK")).await),
        vec!["application_name=", "TimeZone=UTC"]
    );
    exchange(
        &mut s,
        &query("BEGIN; SET LOCAL application_name = 'for now'"),
    )
    .await;
    assert_eq!(
        reported(exchange(&mut s, &query("COMMIT")).await),
        vec!["application_name="]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_blocks_of_reads_work_and_unkeepable_writes_are_refused() {
    let server = Server::start(&[]);
    let mut client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE b (id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO b VALUES (1, 10)",
        )
        .await
        .unwrap();
    let txn = client.transaction().await.unwrap();
    let row = txn
        .query_one("SELECT v FROM b WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 10);
    txn.commit().await.unwrap();

    // A write LaneDB cannot keep for COMMIT (one on a view) is refused with 0A000 and the block fails; nothing was
    // applied.
    let txn = client.transaction().await.unwrap();
    let e = txn
        .query(
            "CREATE VIEW bv AS SELECT v, COUNT(*) FROM b GROUP BY v",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "0A000");
    let message = e.as_db_error().unwrap().message();
    assert!(message.contains("outside the block"), "{message}");
    let e = txn.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(code(&e), "25P02");
    // A statement that would fail to plan reports the aborted block too, in both protocols.
    let e = txn
        .query("SELECT * FROM no_such_table", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "25P02");
    let e = txn
        .simple_query("SELECT * FROM no_such_table")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "25P02");
    txn.rollback().await.unwrap();
    let out = client
        .simple_query("BEGIN; CREATE VIEW bv AS SELECT v, COUNT(*) FROM b GROUP BY v; COMMIT")
        .await;
    assert_eq!(code(&out.unwrap_err()), "0A000");
    // The COMMIT of a failed block answers ROLLBACK.
    let out = client.simple_query("COMMIT").await.unwrap();
    assert!(matches!(
        out.last(),
        Some(SimpleQueryMessage::CommandComplete(_))
    ));
    let row = client
        .query_one("SELECT v FROM b WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 10);
    // Outside blocks, writes are their own transactions.
    client
        .execute("UPDATE b SET v = 13 WHERE id = 1", &[])
        .await
        .unwrap();
    let row = client
        .query_one("SELECT v FROM b WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 13);
}

/// A table `name (n BIGINT PRIMARY KEY)` holding 0 to 1999, partitioned on `n` or not: a three-way self join of it is
/// minutes of work in any build.
async fn keys_0_to_1999(client: &tokio_postgres::Client, name: &str, partitioned: bool) {
    let partition = if partitioned {
        format!("PARTITION TABLE {name} ON COLUMN n;")
    } else {
        String::new()
    };
    let values: Vec<String> = (0..2000).map(|i| format!("({i})")).collect();
    client
        .batch_execute(&format!(
            "CREATE TABLE {name} (n BIGINT PRIMARY KEY); {partition} INSERT INTO {name} VALUES {}",
            values.join(",")
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_stops_a_long_query() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    keys_0_to_1999(&client, "big", false).await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let e = client
        .query_one(
            "SELECT count(*) FROM big a, big b, big c WHERE a.n + b.n + c.n = -1",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "57014");
    canceller.await.unwrap();
    let row = client
        .query_one("SELECT count(*) FROM big", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_garbage_never_takes_the_server_down() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let garbage: Vec<Vec<u8>> = vec![
        vec![0, 0, 0, 3],
        vec![0xff; 64],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        // A valid start-up, then a Bind whose body lies about its lengths, then an unknown message type.
        [
            common::startup_packet("x"),
            b"B\0\0\0\x10\0\0\0\x05\xff\xff\xff\xff\xff".to_vec(),
        ]
        .concat(),
        [common::startup_packet("x"), b"?\0\0\0\x04".to_vec()].concat(),
        [common::startup_packet("x"), b"Q\x7f\xff\xff\xff".to_vec()].concat(),
        [common::startup_packet("x"), b"Q\0\0".to_vec()].concat(),
    ];
    for bytes in garbage {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let _ = s.write_all(&bytes).await;
        let mut sink = vec![0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(300), s.read(&mut sink)).await;
    }
    let out = client.simple_query("SELECT 41 + 1").await.unwrap();
    assert_eq!(rows_of(&out), vec![vec![Some("42".to_string())]]);
    let fresh = server.connect().await;
    fresh.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_give_a_clear_error_to_that_client_only() {
    let server = Server::start(&[
        "--connection-count-max",
        "3",
        "--statement-bytes-max",
        "1000",
        "--result-bytes-max",
        "100000",
    ]);
    let client = server.connect().await;
    let long = format!("SELECT '{}'", "x".repeat(2000));
    let e = client.simple_query(&long).await.unwrap_err();
    assert_eq!(code(&e), "54000");
    client
        .batch_execute("CREATE TABLE wide (id INTEGER PRIMARY KEY, t TEXT)")
        .await
        .unwrap();
    for i in 0..20 {
        client
            .execute("INSERT INTO wide VALUES ($1, $2)", &[&i, &"y".repeat(900)])
            .await
            .unwrap();
    }
    assert_eq!(
        failure(&client, "SELECT a.t FROM wide a, wide b").await,
        "54000"
    );
    let _second = server.connect().await;
    let _third = server.connect().await;
    let fourth = tokio_postgres::connect(&server.conninfo("x", "y"), tokio_postgres::NoTls).await;
    let e = fourth.err().expect("the fourth connection is refused");
    assert_eq!(code(&e), "53300");
    let row = client
        .query_one("SELECT count(*) FROM wide", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_the_server_down_cleanly() {
    // With a session open, and with none.
    let server = Server::start(&[]);
    let client = server.connect().await;
    client.simple_query("SELECT 1").await.unwrap();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .simple_query("SELECT now() IS NOT NULL")
        .await
        .unwrap();
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

/// A fresh directory for Unix sockets: short, since a socket's path is limited to 107 bytes.
fn socket_dir() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(format!(
        "/tmp/lanedb-sock-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port free at the moment of asking.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `lanedb serve` on `port` with a Unix socket in `dir`, expected to refuse to start: its stderr.
fn refused_start(port: u16, dir: &std::path::Path) -> String {
    let data_dir = std::env::temp_dir().join(format!("lanedb-refused-{}", rand::random::<u32>()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lanedb"))
        .args(["serve", "--modules", "none", "--lanes", "2"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--unix-socket-dir")
        .arg(dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started where it should have refused to");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(!status.success(), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_connect_over_a_unix_socket() {
    let dir = socket_dir();
    let server = Server::start(&["--unix-socket-dir", dir.to_str().unwrap()]);
    let socket = dir.join(format!(".s.PGSQL.{}", server.port()));
    assert!(socket.exists());

    // tokio-postgres: a host that is a path means the socket `.s.PGSQL.<port>` in it.
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=alice dbname=shop",
            dir.display(),
            server.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, $2)")
        .await
        .unwrap();
    for i in 0..10 {
        client
            .execute(&insert, &[&i, &format!("n{i}")])
            .await
            .unwrap();
    }
    let row = client
        .query_one(
            "SELECT count(*), max(name), current_user, current_database() FROM t",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 10);
    assert_eq!(row.get::<_, String>(1), "n9");
    assert_eq!(row.get::<_, String>(2), "alice");
    assert_eq!(row.get::<_, String>(3), "shop");
    let e = client.execute(&insert, &[&1, &"again"]).await.unwrap_err();
    assert_eq!(code(&e), "23505");
    // What a client writes over TCP is there over the socket, and the other way round.
    let tcp = server.connect().await;
    assert_eq!(common::scalar(&tcp, "SELECT count(*) FROM t").await, "10");

    // An SSLRequest on the socket is answered "no", as PostgreSQL does, and the session goes on in plain text.
    let mut raw = tokio::net::UnixStream::connect(&socket).await.unwrap();
    raw.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await.unwrap();
    let mut answer = [0u8; 1];
    raw.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    raw.write_all(&common::startup_packet("raw")).await.unwrap();
    let mut reply = [0u8; 9];
    raw.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [b'R', 0, 0, 0, 8, 0, 0, 0, 0], "AuthenticationOk");
    drop(raw);

    // psql with -h DIR, as with PostgreSQL.
    let out = std::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-c", "SELECT name FROM t WHERE id = 3"])
        .args([
            "-h",
            dir.to_str().unwrap(),
            "-p",
            &server.port().to_string(),
        ])
        .args(["-U", "bob", "-d", "shop"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "n3");

    // A clean stop removes the socket file.
    drop(client);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket file is removed at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_unix_socket_is_replaced_and_a_live_one_is_not() {
    let dir = socket_dir();
    let port = free_port();
    let path = dir.join(format!(".s.PGSQL.{port}"));
    let listen = format!("127.0.0.1:{port}");
    let dir_arg = dir.to_str().unwrap();

    // Someone answers on the socket: the server refuses to take it over.
    let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let stderr = refused_start(port, &dir);
    assert!(stderr.contains("another server is listening"), "{stderr}");
    // Nobody does any longer (a server killed with SIGKILL leaves its socket file): the file is replaced.
    drop(live);
    assert!(path.exists());
    let server = Server::start(&["--listen", &listen, "--unix-socket-dir", dir_arg]);
    let (client, connection) = tokio_postgres::connect(
        &format!("host={dir_arg} port={port} user=u dbname=d"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    assert_eq!(common::scalar(&client, "SELECT 1 + 1").await, "2");
    drop(client);
    let data_dir = server.crash();
    let _ = std::fs::remove_dir_all(data_dir);
    assert!(path.exists(), "a crash leaves the socket file");
    let server = Server::start(&["--listen", &listen, "--unix-socket-dir", dir_arg]);
    let (client, connection) = tokio_postgres::connect(
        &format!("host={dir_arg} port={port} user=u dbname=d"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    assert_eq!(common::scalar(&client, "SELECT 2 + 2").await, "4");
    drop(client);
    drop(server);

    // Something that is not a socket is never removed.
    std::fs::remove_file(&path).ok();
    std::fs::write(&path, b"precious").unwrap();
    let stderr = refused_start(port, &dir);
    assert!(stderr.contains("is not a socket"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    // A directory that does not exist, and a path too long for a socket.
    let stderr = refused_start(port, &dir.join("missing"));
    assert!(stderr.contains("is not a directory"), "{stderr}");
    let deep = dir.join("d".repeat(100));
    std::fs::create_dir_all(&deep).unwrap();
    let stderr = refused_start(port, &deep);
    assert!(stderr.contains("longer than 107 bytes"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_in_text_and_csv() {
    use bytes::Bytes;
    use futures::{SinkExt, TryStreamExt};
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE c (id BIGINT PRIMARY KEY, name TEXT, amount DECIMAL(10,2), d DATE); \
             PARTITION TABLE c ON COLUMN id",
        )
        .await
        .unwrap();
    // Text format, sent in pieces that split lines.
    let sink = client.copy_in("COPY c FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    for piece in [
        "1\tone\t1.50\t2024-01-02\n2\t",
        "tab\\there\t\\N\t\\N\n",
        "3\tthree\t-2\t2020-02-29\n",
    ] {
        sink.send(Bytes::from(piece)).await.unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), 3);
    // The binary format, from tokio-postgres' binary COPY writer; COPY TO in it, and text options with it, refused.
    {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        let sink = client
            .copy_in("COPY c (id, name) FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT]);
        futures::pin_mut!(writer);
        writer.as_mut().write(&[&10i64, &"binary"]).await.unwrap();
        writer
            .as_mut()
            .write(&[&11i64, &None::<&str>])
            .await
            .unwrap();
        assert_eq!(writer.finish().await.unwrap(), 2);
        assert_eq!(
            scalar(&client, "SELECT name FROM c WHERE id = 10").await,
            "binary"
        );
        client
            .batch_execute("DELETE FROM c WHERE id IN (10, 11)")
            .await
            .unwrap();
        for (sql, expected) in [
            ("COPY c TO STDOUT (FORMAT binary)", "0A000"),
            ("COPY c FROM STDIN (FORMAT binary, HEADER)", "42601"),
            ("COPY c FROM STDIN (FORMAT xml)", "22023"),
        ] {
            assert_eq!(
                code(&client.batch_execute(sql).await.unwrap_err()),
                expected,
                "{sql}"
            );
        }
    }
    // CSV with a header and only some columns.
    let sink = client
        .copy_in("COPY c (id, name) FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from("id,name\n4,\"a, \"\"quoted\"\" name\"\n5,\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let row = client
        .query_one("SELECT name, amount IS NULL FROM c WHERE id = 4", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "a, \"quoted\" name");
    assert!(row.get::<_, bool>(1));
    // A bad line fails the whole COPY with its line number, and loads nothing of it.
    let sink = client.copy_in("COPY c FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from(
        "6\tsix\t1\t2024-01-01\n7\tseven\tnot-a-number\t2024-01-01\n",
    ))
    .await
    .unwrap();
    let e = sink.finish().await.unwrap_err();
    assert_eq!(code(&e), "22P02");
    let message = e.as_db_error().unwrap().message().to_string();
    assert!(message.contains("line 2"), "{message}");
    let sink = client.copy_in("COPY c FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(Bytes::from(
        "8\teight\t1\t2024-01-01\n1\tdup\t1\t2024-01-01\n",
    ))
    .await
    .unwrap();
    assert_eq!(code(&sink.finish().await.unwrap_err()), "23505");
    let count = client
        .query_one("SELECT count(*) FROM c", &[])
        .await
        .unwrap();
    assert_eq!(count.get::<_, i64>(0), 5);
    // Out, in both formats, from a table and from a query.
    let text: Vec<Bytes> = client
        .copy_out("COPY c TO STDOUT")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8(text.concat())
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "1\tone\t1.50\t2024-01-02",
            "2\ttab\\there\t\\N\t\\N",
            "3\tthree\t-2.00\t2020-02-29",
            "4\ta, \"quoted\" name\t\\N\t\\N",
            "5\t\\N\t\\N\t\\N",
        ]
    );
    let csv: Vec<Bytes> = client
        .copy_out("COPY (SELECT id, name FROM c WHERE id IN (2, 4) ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(csv.concat()).unwrap(),
        "id,name\n2,tab\there\n4,\"a, \"\"quoted\"\" name\"\n"
    );
    let e = client
        .simple_query("COPY c FROM '/etc/passwd'")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "0A000");
}

/// A COPY is typed and inserted in chunks inside one transaction: a bad line (named in the error) or a duplicate key
/// far into it, after whole chunks went in, still loads nothing and leaves the table as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_failing_after_many_rows_loads_nothing() {
    use bytes::Bytes;
    use futures::SinkExt;
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); PARTITION TABLE big ON COLUMN id; \
             INSERT INTO big VALUES (-1, 0)",
        )
        .await
        .unwrap();
    let lines = |n: i32, last: &str| {
        let mut text: String = (0..n).map(|i| format!("{i}\t{i}\n")).collect();
        text.push_str(last);
        Bytes::from(text)
    };
    for (last, code_expected, line) in [
        ("50000\tfifty\n", "22P02", "line 50001"),
        ("50000\n", "22P04", "line 50001"),
        ("-1\t5\n", "23505", "Key (id)=(-1) already exists."),
    ] {
        let sink = client.copy_in("COPY big FROM STDIN").await.unwrap();
        futures::pin_mut!(sink);
        sink.send(lines(50_000, last)).await.unwrap();
        let e = sink.finish().await.unwrap_err();
        assert_eq!(code(&e), code_expected, "{e:?}");
        let db = e.as_db_error().unwrap();
        let message = format!("{} {}", db.message(), db.detail().unwrap_or_default());
        assert!(message.contains(line), "{message}");
        let count = client
            .query_one("SELECT count(*) FROM big", &[])
            .await
            .unwrap();
        assert_eq!(count.get::<_, i64>(0), 1, "after {last:?}");
    }
    // The same rows without the bad one load whole.
    let sink = client.copy_in("COPY big FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(lines(50_000, "")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 50_000);
    let row = client
        .query_one("SELECT count(*), sum(v) FROM big", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 50_001);
    assert_eq!(row.get::<_, i64>(1), (0..50_000i64).sum::<i64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_functions_answer_with_the_clients_names() {
    let server = Server::start(&[]);
    let alice = server.connect_as("alice", "shop").await;
    let bob = server.connect_as("bob", "depot").await;
    let sql = "SELECT current_user, session_user, current_database(), current_schema(), version()";
    for (client, user, db) in [
        (&alice, "alice", "shop"),
        (&bob, "bob", "depot"),
        (&alice, "alice", "shop"),
    ] {
        let row = client.query_one(sql, &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), user);
        assert_eq!(row.get::<_, String>(1), user);
        assert_eq!(row.get::<_, String>(2), db);
        assert_eq!(row.get::<_, String>(3), "public");
        assert!(row.get::<_, String>(4).starts_with("PostgreSQL 15"));
    }
}

async fn connect_with(
    server: &Server,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conninfo = format!("{} password='{password}'", server.conninfo(user, "testdb"));
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_log_in_with_scram_and_roles_limit_them() {
    let server = Server::start(&["--admin-password", "s3cret", "--admin-user", "boss"]);
    // Wrong password, unknown user, no password: the same refusal, 28P01.
    for (user, password) in [("boss", "wrong"), ("nobody", "s3cret"), ("boss", "")] {
        let Err(e) = connect_with(&server, user, password).await else {
            panic!("{user} logged in");
        };
        assert_eq!(code(&e), "28P01", "{user}/{password}: {e}");
        let message = e.as_db_error().unwrap().message().to_string();
        assert_eq!(
            message,
            format!("password authentication failed for user \"{user}\"")
        );
    }
    let admin = connect_with(&server, "boss", "s3cret").await.unwrap();
    admin
        .batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'); \
             CREATE USER reader WITH PASSWORD 'r' READONLY; \
             CREATE USER writer WITH PASSWORD 'w'; \
             CREATE USER nopass",
        )
        .await
        .unwrap();
    let e = admin
        .simple_query("CREATE USER reader PASSWORD 'x'")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42710");
    let reader = connect_with(&server, "reader", "r").await.unwrap();
    assert_eq!(
        reader
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        1
    );
    for sql in [
        "INSERT INTO t VALUES (2, 'b')",
        "CREATE TABLE u (a INT)",
        "CREATE USER x",
        "COPY t FROM STDIN",
    ] {
        let e = reader.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), "42501", "{sql}");
    }
    let writer = connect_with(&server, "writer", "w").await.unwrap();
    writer
        .execute("INSERT INTO t VALUES (2, 'b')", &[])
        .await
        .unwrap();
    assert_eq!(
        code(&writer.simple_query("DROP TABLE t").await.unwrap_err()),
        "42501"
    );
    assert_eq!(
        code(&connect_with(&server, "nopass", "").await.err().unwrap()),
        "28P01"
    );
    // An execute grant lets a reader call that procedure, and only that one.
    admin
        .batch_execute(
            "CREATE PROCEDURE rename AS UPDATE t SET v = $2 WHERE id = $1; \
             CREATE PROCEDURE wipe AS DELETE FROM t WHERE id = $1",
        )
        .await
        .unwrap();
    let e = reader
        .simple_query("CALL rename(1, 'x')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    admin
        .simple_query("GRANT EXECUTE ON PROCEDURE rename TO reader")
        .await
        .unwrap();
    reader.simple_query("CALL rename(1, 'x')").await.unwrap();
    assert_eq!(
        code(&reader.simple_query("CALL wipe(1)").await.unwrap_err()),
        "42501"
    );
    assert_eq!(
        code(
            &reader
                .simple_query("UPDATE t SET v = 'y' WHERE id = 1")
                .await
                .unwrap_err()
        ),
        "42501"
    );
    admin
        .simple_query("REVOKE EXECUTE ON PROCEDURE rename FROM reader")
        .await
        .unwrap();
    assert_eq!(
        code(
            &reader
                .simple_query("CALL rename(1, 'z')")
                .await
                .unwrap_err()
        ),
        "42501"
    );
    assert_eq!(
        code(
            &admin
                .simple_query("GRANT EXECUTE ON PROCEDURE nothing TO reader")
                .await
                .unwrap_err()
        ),
        "42883"
    );
    // A new password replaces the old; a dropped user can no longer log in, sessions of others go on.
    admin
        .simple_query("ALTER USER writer WITH PASSWORD 'w2'")
        .await
        .unwrap();
    assert_eq!(
        code(&connect_with(&server, "writer", "w").await.err().unwrap()),
        "28P01"
    );
    connect_with(&server, "writer", "w2").await.unwrap();
    admin.simple_query("DROP USER writer").await.unwrap();
    assert_eq!(
        code(&connect_with(&server, "writer", "w2").await.err().unwrap()),
        "28P01"
    );
    assert_eq!(
        code(&admin.simple_query("DROP USER writer").await.unwrap_err()),
        "42704"
    );
    admin
        .simple_query("DROP USER IF EXISTS writer")
        .await
        .unwrap();
    assert_eq!(
        reader
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        2
    );
    // psql (libpq) logs in with SCRAM too.
    let (ok, out) = common::psql(&server, "reader", Some("r"), "SELECT current_user");
    assert!(ok, "{out}");
    assert_eq!(out, "reader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed_after_the_timeout() {
    let server = Server::start(&["--idle-session-timeout-ms", "300"]);
    let idle = server.connect().await;
    let busy = server.connect().await;
    for _ in 0..6 {
        busy.simple_query("SELECT 1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = idle.simple_query("SELECT 1").await.unwrap_err();
    assert!(
        idle.is_closed() || e.code().is_some() || e.is_closed(),
        "{e}"
    );
    busy.simple_query("SELECT 1").await.unwrap();
}

/// `statement_timeout` also covers the wait for a lane another transaction holds: a point read stuck behind a long
/// multi-partition write stops with 57014 instead of waiting for the write to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_covers_the_wait_for_a_busy_lane() {
    let server = Server::start(&[]);
    let writer = server.connect().await;
    keys_0_to_1999(&writer, "held", true).await;
    // Evaluated by DataFusion while the write holds every lane; minutes of work, stopped by its own timeout.
    writer
        .simple_query("SET statement_timeout = '4s'")
        .await
        .unwrap();
    let write = tokio::spawn(async move {
        writer
            .simple_query(
                "UPDATE held SET n = n WHERE n IN (SELECT a.n FROM held a, held b, held c WHERE a.n + b.n + c.n = -1)",
            )
            .await
    });
    let reader = server.connect().await;
    reader
        .simple_query("SET statement_timeout = 100")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut timed_out = None;
    while !write.is_finished() && timed_out.is_none() {
        timed_out = reader
            .query("SELECT n FROM held WHERE n = 7", &[])
            .await
            .err();
    }
    let e = timed_out.expect("the read waited behind the write and timed out");
    assert_eq!(code(&e), "57014");
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("statement timeout"),
        "{e}"
    );
    let written = write.await.unwrap();
    assert_eq!(code(&written.unwrap_err()), "57014");
    // Both sessions go on, and the table is as it was.
    assert_eq!(scalar(&reader, "SELECT count(*) FROM held").await, "2000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_stops_a_long_query_and_the_session_goes_on() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .simple_query("SET statement_timeout = 200")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "200ms");
    let row = client
        .query_one(
            "SELECT setting, unit, source FROM pg_settings WHERE name = 'statement_timeout'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2)
        ),
        ("200".into(), "ms".into(), "session".into())
    );
    // Minutes of work in any build: stopped after the timeout, through both protocols.
    let long = "SELECT count(*) FROM generate_series(1, 20000000000) AS s(g) WHERE g % 7 = 3";
    let started = std::time::Instant::now();
    let e = client.simple_query(long).await.unwrap_err();
    assert_eq!(code(&e), "57014");
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("statement timeout"),
        "{e}"
    );
    let e = client.query(long, &[]).await.unwrap_err();
    assert_eq!(code(&e), "57014");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(scalar(&client, "SELECT 1 + 1").await, "2");
    // A larger unit, and off again; other sessions never had it.
    client
        .simple_query("SET statement_timeout = '1.5min'")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "90s");
    client
        .simple_query("RESET statement_timeout")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "0");
    // Values PostgreSQL refuses.
    for (sql, expected) in [
        ("SET statement_timeout = 'soon'", "22023"),
        ("SET statement_timeout = -5", "22023"),
        ("SET lock_timeout = '30 parsecs'", "22023"),
        ("SET client_min_messages = 'loud'", "22023"),
        ("SET synchronous_commit = 'sometimes'", "22023"),
        ("SET bytea_output = 'escape'", "0A000"),
    ] {
        let e = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), expected, "{sql}");
    }
    // The settings a plain pg_dump script starts with are taken.
    client
        .batch_execute(
            "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
             SET client_encoding = 'UTF8'; SET standard_conforming_strings = on; \
             SELECT pg_catalog.set_config('search_path', '', false); SET check_function_bodies = false; \
             SET xmloption = content; SET client_min_messages = warning; SET row_security = off; \
             SET default_tablespace = ''; SET default_table_access_method = heap;",
        )
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SHOW client_min_messages").await, "warning");
    assert_eq!(scalar(&client, "SHOW row_security").await, "off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_idle_inside_a_block_past_its_timeout_is_closed() {
    let server = Server::start(&[]);
    let query = |sql: &str| message(b'Q', &cstrings(&[sql]));
    let open_session = || async {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(&common::startup_packet("x")).await.unwrap();
        exchange(&mut s, &[]).await;
        exchange(
            &mut s,
            &query("SET idle_in_transaction_session_timeout = '300ms'"),
        )
        .await;
        s
    };
    let mut in_block = open_session().await;
    let mut outside = open_session().await;
    exchange(&mut in_block, &query("BEGIN")).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    // Idle outside a block: that timeout does not apply.
    let got = exchange(&mut outside, &query("SELECT 1")).await;
    assert_eq!(got.last(), Some(&('Z', String::new())));
    // Inside one: 25P03, then the server closes the connection.
    let (tag, body) = read_message(&mut in_block).await;
    assert_eq!(tag, b'E');
    assert!(
        String::from_utf8_lossy(&body).contains("25P03"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let mut rest = Vec::new();
    in_block.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_runs_procedures_through_both_protocols() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT); PARTITION TABLE kv ON COLUMN k; \
             CREATE PROCEDURE put PARTITION ON TABLE kv COLUMN k AS INSERT INTO kv VALUES ($1, $2); \
             CREATE PROCEDURE get PARTITION ON TABLE kv COLUMN k AS SELECT v FROM kv WHERE k = $1",
        )
        .await
        .unwrap();
    let put = client.prepare("CALL put($1, $2)").await.unwrap();
    assert_eq!(put.params(), &[Type::INT8, Type::TEXT]);
    for k in 0..10i64 {
        client.execute(&put, &[&k, &format!("v{k}")]).await.unwrap();
    }
    let row = client.query_one("CALL get($1)", &[&7i64]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "v7");
    let out = client.simple_query("CALL get(3)").await.unwrap();
    assert_eq!(rows_of(&out), vec![vec![Some("v3".to_string())]]);
    let e = client.execute(&put, &[&1i64, &"dup"]).await.unwrap_err();
    assert_eq!(code(&e), "23505");
    let e = client.simple_query("CALL nothing(1)").await.unwrap_err();
    assert_eq!(code(&e), "42883");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_bank_module_is_served_by_default() {
    let server = Server::start(&["--modules", "bank"]);
    let client = server.connect().await;
    for (id, amount) in [(1i64, 100i64), (2, 50), (1, 20)] {
        client
            .execute("CALL deposit($1, $2)", &[&id, &amount])
            .await
            .unwrap();
    }
    let row = client
        .query_one("CALL transfer($1, $2, $3)", &[&1i64, &2i64, &70i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 50);
    let e = client
        .query_one("CALL withdraw($1, $2)", &[&2i64, &1000i64])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "P0001");
    let e = client
        .query_one("CALL transfer($1, $2, $3)", &[&1i64, &2i64, &1000i64])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "P0001");
    let row = client
        .query_one("SELECT sum(balance) FROM accounts", &[])
        .await
        .unwrap();
    // sum(bigint) is numeric, as in PostgreSQL.
    assert_eq!(row.get::<_, Decimal>(0), Decimal::from(170));
    let row = client
        .query_one("CALL balance($1)", &[&2i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(2), 120);
    // Calls with their values written in share their shape's plan, each with its own values.
    for id in 10..15i64 {
        let out = client
            .simple_query(&format!("CALL deposit({id}, {})", id * 2))
            .await
            .unwrap();
        assert_eq!(rows_of(&out), vec![vec![Some((id * 2).to_string())]]);
        let row = client
            .query_one(format!("CALL balance({id})").as_str(), &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(2), id * 2);
    }
    let out = client
        .simple_query("CALL deposit('16', '7')")
        .await
        .unwrap();
    assert_eq!(rows_of(&out), vec![vec![Some("7".to_string())]]);
    assert_eq!(failure(&client, "CALL deposit(17, 'x')").await, "22P02");
}

/// CALL in a transaction block (JDBC and psycopg with autocommit off send every statement in one): the call runs when
/// it arrives, in a transaction that is rolled back, so its result and its errors show at once; COMMIT runs it again
/// with the block's other writes, and fails with 40001 if it now returns anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_a_block_run_with_it_at_commit() {
    let server = Server::start(&["--modules", "bank"]);
    let a = server.connect().await;
    let b = server.connect().await;
    let sum =
        "SELECT coalesce(string_agg(id || ':' || balance, ',' ORDER BY id), '') FROM accounts";
    // Single-partition calls, through a prepared statement, with the block's other writes.
    a.batch_execute("BEGIN").await.unwrap();
    let deposit = a.prepare("CALL deposit($1, $2)").await.unwrap();
    let row = a.query_one(&deposit, &[&1i64, &100i64]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 100);
    a.query_one(&deposit, &[&2i64, &50i64]).await.unwrap();
    a.execute("INSERT INTO accounts (id, balance) VALUES (3, 7)", &[])
        .await
        .unwrap();
    // The block sees its calls' writes; another session does not, until COMMIT.
    let row = a.query_one("CALL balance($1)", &[&2i64]).await.unwrap();
    assert_eq!(row.get::<_, i64>(2), 50);
    assert_eq!(scalar(&a, sum).await, "1:100,2:50,3:7");
    assert_eq!(scalar(&b, sum).await, "");
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(scalar(&b, sum).await, "1:100,2:50,3:7");

    // A call's abort shows at the statement and fails the block; ROLLBACK leaves nothing of it.
    a.batch_execute("BEGIN").await.unwrap();
    a.query_one(&deposit, &[&3i64, &1i64]).await.unwrap();
    assert_eq!(failure(&a, "CALL withdraw(2, 1000)").await, "P0001");
    assert_eq!(failure(&a, "SELECT 1").await, "25P02");
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(scalar(&b, sum).await, "1:100,2:50,3:7");

    // A multi-partition call; ROLLBACK drops it.
    a.batch_execute("BEGIN").await.unwrap();
    let row = a
        .query_one("CALL transfer($1, $2, $3)", &[&1i64, &2i64, &30i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 70);
    assert_eq!(scalar(&a, sum).await, "1:70,2:80,3:7");
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(scalar(&b, sum).await, "1:100,2:50,3:7");

    // Another session changes what the call returned: COMMIT fails and applies nothing.
    a.batch_execute("BEGIN").await.unwrap();
    let row = a
        .query_one("CALL transfer($1, $2, $3)", &[&1i64, &2i64, &30i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 70);
    a.query_one(&deposit, &[&3i64, &1i64]).await.unwrap();
    b.query_one("CALL deposit($1, $2)", &[&1i64, &5i64])
        .await
        .unwrap();
    let e = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(code(&e), "40001");
    assert_eq!(scalar(&b, sum).await, "1:105,2:50,3:7");
    // Unchanged, it commits: the same call, and the simple protocol.
    let out = a
        .simple_query("BEGIN; CALL transfer(1, 2, 5); CALL deposit(3, 3); COMMIT")
        .await
        .unwrap();
    assert_eq!(
        rows_of(&out),
        vec![vec![Some("100".to_string())], vec![Some("10".to_string())]]
    );
    assert_eq!(scalar(&b, sum).await, "1:100,2:55,3:10");

    // RETURNING on a write that runs again at COMMIT is checked the same way.
    a.batch_execute("BEGIN").await.unwrap();
    let row = a
        .query_one(
            "UPDATE accounts SET balance = balance + 1 WHERE id = $1 RETURNING balance",
            &[&2i64],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 56);
    a.batch_execute("COMMIT").await.unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    let row = a
        .query_one(
            "DELETE FROM accounts WHERE balance < $1 RETURNING id",
            &[&20i64],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3);
    b.batch_execute("UPDATE accounts SET balance = 1 WHERE id = 2")
        .await
        .unwrap();
    let e = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(code(&e), "40001");
    assert_eq!(scalar(&b, sum).await, "1:100,2:1,3:10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_in_a_block_apply_together_at_commit() {
    let server = Server::start(&[]);
    let mut client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE blk (id BIGINT PRIMARY KEY, v TEXT); PARTITION TABLE blk ON COLUMN id",
        )
        .await
        .unwrap();
    // Committed: every row, on whichever lanes they belong.
    let txn = client.transaction().await.unwrap();
    for id in 0..20i64 {
        assert_eq!(
            txn.execute("INSERT INTO blk VALUES ($1, 'x')", &[&id])
                .await
                .unwrap(),
            1
        );
    }
    txn.execute("INSERT INTO blk VALUES (100, 'a'), (101, 'b')", &[])
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(
        common::scalar(&client, "SELECT count(*) FROM blk").await,
        "22"
    );
    // Rolled back: nothing.
    let txn = client.transaction().await.unwrap();
    txn.execute("INSERT INTO blk VALUES (200, 'r')", &[])
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(
        common::scalar(&client, "SELECT count(*) FROM blk").await,
        "22"
    );
    // A key already taken fails the INSERT, as in PostgreSQL: a key in the table, one the block inserted, one twice
    // in the statement. Rolling back to a savepoint frees the keys inserted since; a key the block deleted is free.
    client
        .batch_execute("BEGIN; INSERT INTO blk VALUES (300, 'ok'); SAVEPOINT a")
        .await
        .unwrap();
    for dup in [
        "INSERT INTO blk VALUES (5, 'dup')",
        "INSERT INTO blk VALUES (300, 'dup')",
        "INSERT INTO blk VALUES (301, 'x'), (301, 'y')",
    ] {
        let e = client.simple_query(dup).await.unwrap_err();
        assert_eq!(code(&e), "23505", "{dup}");
        client.batch_execute("ROLLBACK TO a").await.unwrap();
    }
    client
        .batch_execute(
            "SAVEPOINT b; INSERT INTO blk VALUES (302, 'gone'); ROLLBACK TO b; \
             INSERT INTO blk VALUES (302, 'kept'); DELETE FROM blk WHERE id = 0; \
             INSERT INTO blk VALUES (0, 'again'); COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(
        common::text_rows(
            &client
                .simple_query("SELECT id, v FROM blk WHERE id IN (0, 300, 301, 302) ORDER BY id")
                .await
                .unwrap()
        ),
        [["0", "again"], ["300", "ok"], ["302", "kept"]]
            .map(|r| r.map(String::from).to_vec())
            .to_vec()
    );
    // A key another session takes after the INSERT and before COMMIT fails the COMMIT, and nothing of the block
    // is applied.
    let txn = client.transaction().await.unwrap();
    txn.execute("INSERT INTO blk VALUES (500, 'mine')", &[])
        .await
        .unwrap();
    txn.execute("INSERT INTO blk VALUES (501, 'mine')", &[])
        .await
        .unwrap();
    let other = server.connect().await;
    other
        .execute("INSERT INTO blk VALUES (501, 'theirs')", &[])
        .await
        .unwrap();
    let e = txn.commit().await.unwrap_err();
    assert_eq!(code(&e), "23505");
    assert_eq!(
        common::scalar(&client, "SELECT count(*) FROM blk WHERE id >= 500").await,
        "1"
    );
    // A read after a write in the block sees it (the block's writes, then the read, in a transaction rolled back);
    // other sessions do not, and after ROLLBACK nothing is there.
    let out = client
        .simple_query(
            "BEGIN; INSERT INTO blk VALUES (400, 'w'); SELECT count(*) FROM blk WHERE id = 400",
        )
        .await
        .unwrap();
    assert_eq!(common::text_rows(&out), vec![vec!["1".to_string()]]);
    assert_eq!(
        common::scalar(&other, "SELECT count(*) FROM blk WHERE id = 400").await,
        "0"
    );
    // A read that fails aborts the block, as any failed statement does.
    assert_eq!(
        code(
            &client
                .simple_query("SELECT 1 / 0 FROM blk")
                .await
                .unwrap_err()
        ),
        "22012"
    );
    client.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(
        common::scalar(&client, "SELECT count(*) FROM blk WHERE id = 400").await,
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_a_block_loads_at_commit() {
    use futures::SinkExt;
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE cb (id BIGINT PRIMARY KEY, v TEXT, n SERIAL); PARTITION TABLE cb ON COLUMN id; \
             INSERT INTO cb (id, v) VALUES (1, 'before')",
        )
        .await
        .unwrap();
    let copy = |data: &'static str| {
        let client = &client;
        async move {
            let sink = client.copy_in("COPY cb (id, v) FROM STDIN").await?;
            futures::pin_mut!(sink);
            sink.send(bytes::Bytes::from_static(data.as_bytes()))
                .await?;
            sink.finish().await
        }
    };
    let other = server.connect().await;
    // Answered with its row count; the block reads the rows, other sessions do not until COMMIT.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(copy("2\ttwo\n3\tthree\n").await.unwrap(), 2);
    assert_eq!(
        common::scalar(&client, "SELECT count(*) FROM cb").await,
        "3"
    );
    assert_eq!(common::scalar(&other, "SELECT count(*) FROM cb").await, "1");
    // A bad line, a key in the table, a key the block took: each fails that COPY, and ROLLBACK TO undoes it.
    client.batch_execute("SAVEPOINT s").await.unwrap();
    for (data, code_expected, message) in [
        ("4\tfour\nx\tbad\n", "22P02", "line 2"),
        ("5\tfive\n1\tdup\n", "23505", "cb_pkey"),
        ("3\tagain\n", "23505", "cb_pkey"),
    ] {
        let e = copy(data).await.unwrap_err();
        assert_eq!(code(&e), code_expected, "{data}");
        let text = e.as_db_error().map(|d| d.message().to_string()).unwrap();
        assert!(text.contains(message), "{text}");
        client.batch_execute("ROLLBACK TO s").await.unwrap();
    }
    client
        .batch_execute("INSERT INTO cb (id, v) VALUES (6, 'six'); COMMIT")
        .await
        .unwrap();
    assert_eq!(
        common::text_rows(
            &other
                .simple_query("SELECT id, v, CASE WHEN id < 6 THEN n END FROM cb ORDER BY id")
                .await
                .unwrap()
        ),
        [
            ["1", "before", "1"],
            ["2", "two", "2"],
            ["3", "three", "3"],
            ["6", "six", "NULL"]
        ]
        .map(|r| r.map(String::from).to_vec())
        .to_vec()
    );
    // Rolled back: nothing of it.
    client.batch_execute("BEGIN").await.unwrap();
    copy("7\tseven\n").await.unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(common::scalar(&other, "SELECT count(*) FROM cb").await, "4");
    // A read-only block refuses it.
    client.batch_execute("BEGIN READ ONLY").await.unwrap();
    let e = client
        .simple_query("COPY cb (id, v) FROM STDIN")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "25006");
    client.batch_execute("ROLLBACK").await.unwrap();
}

/// One frontend message: tag, length, body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend(((body.len() + 4) as u32).to_be_bytes());
    m.extend(body);
    m
}

/// Null-terminated strings, concatenated.
fn cstrings(parts: &[&str]) -> Vec<u8> {
    parts
        .iter()
        .flat_map(|p| p.bytes().chain(std::iter::once(0)))
        .collect()
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    message(b'P', &[cstrings(&[name, sql]), vec![0, 0]].concat())
}

/// Bind with no parameters and default result formats.
fn bind(portal: &str, statement: &str) -> Vec<u8> {
    message(b'B', &[cstrings(&[portal, statement]), vec![0; 6]].concat())
}

fn execute(portal: &str) -> Vec<u8> {
    execute_rows(portal, 0)
}

/// Execute with a row limit (0: all rows).
fn execute_rows(portal: &str, rows: u32) -> Vec<u8> {
    message(
        b'E',
        &[cstrings(&[portal]), rows.to_be_bytes().to_vec()].concat(),
    )
}

/// Sends `bytes`, then reads backend messages up to ReadyForQuery; returns each as its tag and, for DataRow and
/// ErrorResponse, its first value or its SQLSTATE.
async fn exchange(s: &mut tokio::net::TcpStream, bytes: &[u8]) -> Vec<(char, String)> {
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    loop {
        let (tag, body) = read_message(s).await;
        let detail = match tag {
            b'D' => String::from_utf8_lossy(&body[6..]).into_owned(),
            // ParameterStatus: name=value.
            b'S' => String::from_utf8_lossy(&body[..body.len().saturating_sub(1)])
                .replacen('\0', "=", 1),
            b'E' => body
                .split(|b| *b == 0)
                .find(|f| f.first() == Some(&b'C'))
                .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
                .unwrap_or_default(),
            _ => String::new(),
        };
        got.push((tag as char, detail));
        if tag == b'Z' {
            return got;
        }
    }
}

/// One backend message: its tag and body.
async fn read_message(s: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await.unwrap();
    let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize - 4;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (head[0], body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_and_unnamed_statements_and_portals_live_as_in_postgres() {
    let server = Server::start(&[]);
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&common::startup_packet("x")).await.unwrap();
    let greeting = exchange(&mut s, &[]).await;
    assert_eq!(greeting.last(), Some(&('Z', String::new())));
    let tags = |got: &[(char, String)]| got.iter().map(|(t, _)| *t).collect::<String>();

    // The unnamed statement and portal are replaced without complaint; a name in use is an error.
    let got = exchange(
        &mut s,
        &[
            parse("", "SELECT 1"),
            parse("", "SELECT 2"),
            bind("", ""),
            bind("", ""),
            execute(""),
            parse("s1", "SELECT 3"),
            message(b'S', &[]),
        ]
        .concat(),
    )
    .await;
    assert_eq!(tags(&got), "1122DC1Z");
    assert_eq!(got[4].1, "2");
    let got = exchange(
        &mut s,
        &[parse("s1", "SELECT 4"), message(b'S', &[])].concat(),
    )
    .await;
    assert_eq!(got[0], ('E', "42P05".into()));

    // A named portal lives until the implicit transaction ends at Sync; its name cannot be bound twice before then.
    let got = exchange(
        &mut s,
        &[
            bind("p1", "s1"),
            execute("p1"),
            execute("p1"),
            bind("p1", "s1"),
            message(b'S', &[]),
        ]
        .concat(),
    )
    .await;
    assert_eq!(tags(&got), "2DCCEZ");
    assert_eq!(got[1].1, "3");
    assert_eq!(got[4].1, "42P03");
    let got = exchange(&mut s, &[execute("p1"), message(b'S', &[])].concat()).await;
    assert_eq!(got[0], ('E', "34000".into()));
    let got = exchange(&mut s, &[execute(""), message(b'S', &[])].concat()).await;
    assert_eq!(got[0], ('E', "34000".into()));

    // Inside a transaction block, portals outlive Sync until COMMIT.
    let got = exchange(&mut s, &message(b'Q', &cstrings(&["BEGIN"]))).await;
    assert_eq!(tags(&got), "CZ");
    let got = exchange(&mut s, &[bind("p2", "s1"), message(b'S', &[])].concat()).await;
    assert_eq!(tags(&got), "2Z");
    let got = exchange(&mut s, &[execute("p2"), message(b'S', &[])].concat()).await;
    assert_eq!(tags(&got), "DCZ");
    let got = exchange(&mut s, &message(b'Q', &cstrings(&["COMMIT"]))).await;
    assert_eq!(tags(&got), "CZ");
    let got = exchange(&mut s, &[execute("p2"), message(b'S', &[])].concat()).await;
    assert_eq!(got[0], ('E', "34000".into()));

    // A COMMIT through the extended protocol ends the block's portals at once, before the Sync.
    let simple = |sql: &str| message(b'Q', &cstrings(&[sql]));
    assert_eq!(tags(&exchange(&mut s, &simple("BEGIN")).await), "CZ");
    let got = exchange(
        &mut s,
        &[
            bind("p3", "s1"),
            parse("c", "COMMIT"),
            bind("", "c"),
            execute(""),
            execute("p3"),
            message(b'S', &[]),
        ]
        .concat(),
    )
    .await;
    assert_eq!(tags(&got), "212CEZ");
    assert_eq!(got[4].1, "34000");

    // A portal suspended in a block that then fails sends no more rows (25P02) and is gone after ROLLBACK.
    assert_eq!(tags(&exchange(&mut s, &simple("BEGIN")).await), "CZ");
    let got = exchange(
        &mut s,
        &[
            parse("s2", "SELECT * FROM (VALUES (1), (2), (3)) AS t(x)"),
            bind("p4", "s2"),
            execute_rows("p4", 1),
            message(b'S', &[]),
        ]
        .concat(),
    )
    .await;
    assert_eq!(tags(&got), "12DsZ");
    let got = exchange(&mut s, &simple("SELECT 1 / 0")).await;
    assert_eq!(got[0], ('E', "22012".into()));
    let got = exchange(
        &mut s,
        &[execute_rows("p4", 1), message(b'S', &[])].concat(),
    )
    .await;
    assert_eq!(got[0], ('E', "25P02".into()));
    assert_eq!(tags(&exchange(&mut s, &simple("ROLLBACK")).await), "CZ");
    let got = exchange(&mut s, &[execute("p4"), message(b'S', &[])].concat()).await;
    assert_eq!(got[0], ('E', "34000".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_given_in_the_start_up_options_apply() {
    let server = Server::start(&[]);
    let mut config = tokio_postgres::Config::from_str(&server.conninfo("u", "d")).unwrap();
    config.options(r"-c statement_timeout=2s -c application_name=nightly\ load");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "2s");
    assert_eq!(
        scalar(&client, "SELECT current_setting('application_name')").await,
        "nightly load"
    );
    // pg_settings says they came from the client, until the session sets them itself.
    let source = "SELECT string_agg(name || '=' || source, ' ' ORDER BY name) FROM pg_settings \
                  WHERE name IN ('application_name', 'statement_timeout', 'lock_timeout')";
    assert_eq!(
        scalar(&client, source).await,
        "application_name=client lock_timeout=default statement_timeout=client"
    );
    // They are what RESET returns to.
    client
        .batch_execute("SET application_name = 'changed'; SET statement_timeout = '9s'")
        .await
        .unwrap();
    assert_eq!(
        scalar(&client, source).await,
        "application_name=session lock_timeout=default statement_timeout=session"
    );
    client
        .batch_execute("RESET application_name")
        .await
        .unwrap();
    assert_eq!(
        scalar(&client, "SHOW application_name").await,
        "nightly load"
    );
    client.batch_execute("RESET ALL").await.unwrap();
    assert_eq!(scalar(&client, "SHOW statement_timeout").await, "2s");
    assert_eq!(
        scalar(&client, source).await,
        "application_name=client lock_timeout=default statement_timeout=client"
    );
    // The packet's own parameters win over the options.
    config.application_name("from the packet");
    let (other, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(
        scalar(&other, "SHOW application_name").await,
        "from the packet"
    );
    // A setting LaneDB does not know refuses the connection, as PostgreSQL does.
    config.options("-c no_such_setting=1");
    let Err(e) = config.connect(tokio_postgres::NoTls).await else {
        panic!("connected with an unknown setting");
    };
    assert_eq!(code(&e), "42704");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn information_schema_describes_tables_columns_and_keys_as_postgres_does() {
    let server = Server::start(&[]);
    let client = server.connect_as("ann", "shop").await;
    client
        .batch_execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, code VARCHAR(40) NOT NULL UNIQUE, \
             price NUMERIC(12,2), qty BIGINT DEFAULT 0, made TIMESTAMP, note TEXT); \
             CREATE VIEW item_counts AS SELECT code, COUNT(*) AS n FROM items GROUP BY code; \
             CREATE PROCEDURE add_item AS INSERT INTO items (id, code) VALUES ($1, $2)",
        )
        .await
        .unwrap();
    let text = |sql: &'static str| {
        let query = client.simple_query(sql);
        async move { common::text_rows(&query.await.expect(sql)) }
    };
    let rows = |expected: &[&[&str]]| -> Vec<Vec<String>> {
        expected
            .iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    };
    assert_eq!(
        text(
            "SELECT table_catalog, table_schema, table_name, table_type, is_insertable_into \
             FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name"
        )
        .await,
        rows(&[
            &["shop", "public", "item_counts", "VIEW", "NO"],
            &["shop", "public", "items", "BASE TABLE", "YES"],
        ])
    );
    // The same answers PostgreSQL 15 gives for this table (NULL shown as "NULL").
    assert_eq!(
        text(
            "SELECT column_name, ordinal_position, column_default, is_nullable, data_type, \
             character_maximum_length, character_octet_length, numeric_precision, numeric_precision_radix, \
             numeric_scale, datetime_precision, udt_name FROM information_schema.columns \
             WHERE table_name = 'items' ORDER BY ordinal_position"
        )
        .await,
        rows(&[
            &["id", "1", "NULL", "NO", "integer", "NULL", "NULL", "32", "2", "0", "NULL", "int4"],
            &[
                "code",
                "2",
                "NULL",
                "NO",
                "character varying",
                "40",
                "160",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "varchar"
            ],
            &["price", "3", "NULL", "YES", "numeric", "NULL", "NULL", "12", "10", "2", "NULL", "numeric"],
            &["qty", "4", "0", "YES", "bigint", "NULL", "NULL", "64", "2", "0", "NULL", "int8"],
            &[
                "made",
                "5",
                "NULL",
                "YES",
                "timestamp without time zone",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "NULL",
                "6",
                "timestamp"
            ],
            &["note", "6", "NULL", "YES", "text", "NULL", "1073741824", "NULL", "NULL", "NULL", "NULL", "text"],
        ])
    );
    assert_eq!(
        text(
            "SELECT tc.constraint_type, kcu.column_name, kcu.ordinal_position \
             FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu \
             ON tc.constraint_name = kcu.constraint_name AND tc.table_name = kcu.table_name \
             WHERE tc.table_name = 'items' ORDER BY 1, 2"
        )
        .await,
        rows(&[&["PRIMARY KEY", "id", "1"], &["UNIQUE", "code", "1"]])
    );
    assert_eq!(
        text("SELECT table_name, view_definition, is_updatable FROM information_schema.views")
            .await,
        rows(&[&[
            "item_counts",
            "SELECT code, COUNT(*) AS n FROM items GROUP BY code;",
            "NO"
        ]])
    );
    assert_eq!(
        text(
            "SELECT routine_name, routine_type, routine_body, external_language \
             FROM information_schema.routines"
        )
        .await,
        rows(&[&["add_item", "PROCEDURE", "SQL", "SQL"]])
    );
    // Through the extended protocol too, with the catalog relations listed beside the user's.
    let row = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            &[&"pg_catalog", &"pg_class"],
        )
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) > 10);
    assert!(client
        .query(
            "SELECT * FROM information_schema.referential_constraints",
            &[]
        )
        .await
        .unwrap()
        .is_empty());
}

/// Statements with their values written in share their shape's plan (`sql/src/shapes.rs`) in both protocols: through
/// Parse the client still sees a statement without parameters, and each runs with its own values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_with_values_written_in_run_with_their_own_values() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE lit (id BIGINT PRIMARY KEY, n INT, s TEXT); PARTITION TABLE lit ON COLUMN id")
        .await
        .unwrap();
    for i in 0..20i64 {
        let sql = format!("INSERT INTO lit VALUES ({i}, {}, 'v''{i}')", -i);
        if i % 2 == 0 {
            client.execute(sql.as_str(), &[]).await.unwrap();
        } else {
            client.simple_query(&sql).await.unwrap();
        }
    }
    for i in 0..20i64 {
        let sql = format!("SELECT n, s FROM lit WHERE id = {i}");
        let statement = client.prepare(&sql).await.unwrap();
        assert!(statement.params().is_empty());
        let row = client.query_one(&statement, &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), -i as i32);
        assert_eq!(row.get::<_, String>(1), format!("v'{i}"));
        let out = client.simple_query(&sql).await.unwrap();
        assert_eq!(
            rows_of(&out),
            vec![vec![Some((-i).to_string()), Some(format!("v'{i}"))]]
        );
    }
    // Named, and run again.
    let named = client
        .prepare("UPDATE lit SET n = n + 100 WHERE id = 3")
        .await
        .unwrap();
    assert_eq!(client.execute(&named, &[]).await.unwrap(), 1);
    assert_eq!(client.execute(&named, &[]).await.unwrap(), 1);
    assert_eq!(
        scalar(&client, "SELECT n FROM lit WHERE id = 3").await,
        "197"
    );
    // Literals the shape's parameters cannot hold as written run from their own text.
    for (sql, want) in [
        ("SELECT count(*) FROM lit WHERE n = 99999999999", "0"),
        ("SELECT count(*) FROM lit WHERE n = -4.0", "1"),
    ] {
        assert_eq!(scalar(&client, sql).await, want, "{sql}");
        let row = client.query_one(sql, &[]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0).to_string(), want, "{sql}");
    }
    let e = client
        .execute("INSERT INTO lit VALUES (1, 1, 'dup')", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23505");
}

/// EXPLAIN shows how a statement runs, one line a row in a `QUERY PLAN` column: the index and lanes of a point
/// statement, DataFusion's plan for the rest; ANALYZE and VACUUM are accepted (VACUUM outside a block only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_and_vacuum_are_answered() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE ex (id INT PRIMARY KEY, v INT, w TEXT); PARTITION TABLE ex ON COLUMN id",
        )
        .await
        .unwrap();
    let plan = |sql: &'static str| {
        let client = &client;
        async move {
            let rows = client.query(sql, &[]).await.unwrap();
            rows.iter()
                .map(|r| r.get::<_, String>("QUERY PLAN"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    assert_eq!(
        plan("EXPLAIN SELECT v FROM ex WHERE id = 1").await,
        "Select on ex\n  Index Lookup: ex_pkey (id)\n  Lanes: one (the lane of the id given)"
    );
    let update = plan("EXPLAIN UPDATE ex SET v = v + 1 WHERE v > 3").await;
    assert!(
        update.starts_with("Update on ex\n  Scan: every row of ex"),
        "{update}"
    );
    assert!(
        update.ends_with("Lanes: every lane, as one multi-partition transaction"),
        "{update}"
    );
    let grouped = plan("EXPLAIN SELECT w, count(*) FROM ex GROUP BY w").await;
    assert!(
        grouped.starts_with("DataFusion plan over lane snapshots:"),
        "{grouped}"
    );
    assert!(grouped.contains("Aggregate: groupBy=[[ex.w]]"), "{grouped}");
    // With a parameter, through Parse, Bind and Execute.
    let rows = client
        .query("EXPLAIN SELECT v FROM ex WHERE id = $1", &[&5i32])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "Select on ex");
    // Nothing is run or written.
    client.query("EXPLAIN DELETE FROM ex", &[]).await.unwrap();
    client
        .batch_execute("INSERT INTO ex VALUES (1, 1, 'a')")
        .await
        .unwrap();
    client.query("EXPLAIN DELETE FROM ex", &[]).await.unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM ex").await, "1");
    assert_eq!(
        failure(&client, "EXPLAIN ANALYZE SELECT * FROM ex").await,
        "0A000"
    );
    assert_eq!(
        failure(&client, "EXPLAIN CREATE TABLE z (a INT)").await,
        "42601"
    );
    assert_eq!(
        failure(&client, "EXPLAIN SELECT * FROM nope").await,
        "42P01"
    );

    for sql in ["ANALYZE", "ANALYZE ex", "VACUUM", "VACUUM ex"] {
        client.batch_execute(sql).await.unwrap();
    }
    assert_eq!(failure(&client, "ANALYZE nope").await, "42P01");
    client.batch_execute("BEGIN; ANALYZE ex").await.unwrap();
    assert_eq!(failure(&client, "VACUUM").await, "25001");
    client.batch_execute("ROLLBACK").await.unwrap();
}

/// PREPARE, EXECUTE and DEALLOCATE: SQL's named statements, in the session's namespace of Parse's, through both
/// protocols (Describe of an EXECUTE gives the prepared statement's columns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_and_execute_run_named_statements() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE pe (id INT PRIMARY KEY, v INT, w TEXT); \
             PREPARE ins (int, int, text) AS INSERT INTO pe VALUES ($1, $2, $3); \
             EXECUTE ins(1, 10, 'x'); EXECUTE ins (2, -20, 'it''s'); EXECUTE ins(3, NULL, NULL); \
             PREPARE sel AS SELECT id, v, w FROM pe WHERE id = $1",
        )
        .await
        .unwrap();
    let out = client.simple_query("EXECUTE sel(2)").await.unwrap();
    assert_eq!(
        rows_of(&out),
        vec![vec![
            Some("2".to_string()),
            Some("-20".to_string()),
            Some("it's".to_string())
        ]]
    );
    assert_eq!(tags_of(&out), vec![1]);
    // Through Parse, Bind and Execute: typed columns, as described.
    let row = client.query_one("EXECUTE sel('1')", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(1), 10);
    assert_eq!(row.get::<_, String>("w"), "x");
    assert_eq!(
        client
            .execute("EXECUTE ins(4, 40, 'y')", &[])
            .await
            .unwrap(),
        1
    );
    // In a block, as the statement it runs.
    client
        .batch_execute("BEGIN; EXECUTE ins(5, 50, 'z'); ROLLBACK")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM pe").await, "4");
    assert_eq!(failure(&client, "EXECUTE ins(1, 1, 'dup')").await, "23505");
    assert_eq!(failure(&client, "EXECUTE nope(1)").await, "26000");
    assert_eq!(failure(&client, "EXECUTE sel(1, 2)").await, "42601");
    assert_eq!(failure(&client, "EXECUTE sel('abc')").await, "22P02");
    assert_eq!(failure(&client, "PREPARE sel AS SELECT 1").await, "42P05");
    assert_eq!(failure(&client, "EXECUTE sel(id)").await, "0A000");
    client.batch_execute("DEALLOCATE sel").await.unwrap();
    assert_eq!(failure(&client, "EXECUTE sel(1)").await, "26000");
    // A failed block refuses it, as any statement.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(failure(&client, "SELECT 1/0").await, "22012");
    assert_eq!(failure(&client, "EXECUTE ins(6, 6, 'q')").await, "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();
    // DISCARD ALL drops them.
    client.batch_execute("DISCARD ALL").await.unwrap();
    assert_eq!(failure(&client, "EXECUTE ins(6, 6, 'q')").await, "26000");
}

/// Advisory locks, as migration tools take them: one session at a time holds a key, taking it again stacks, a waiting
/// `pg_advisory_lock` goes on when the holder unlocks or goes away, and statement_timeout stops the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisory_locks_keep_sessions_apart() {
    let server = Server::start(&[]);
    let a = server.connect().await;
    let b = server.connect().await;
    let try_lock = |key: &'static str| format!("SELECT pg_try_advisory_lock({key})");
    assert_eq!(scalar(&a, "SELECT pg_advisory_lock(72707369)").await, "");
    assert_eq!(scalar(&a, &try_lock("72707369")).await, "t");
    assert_eq!(scalar(&b, &try_lock("72707369")).await, "f");
    // Two integers are keys of their own; parameters work through Parse and Bind.
    let row = b
        .query_one(
            "SELECT pg_try_advisory_lock($1, $2)",
            &[&0i32, &72707369i32],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    // A wait goes on once the holder has unlocked as many times as it locked.
    let waiter = tokio::spawn(async move {
        b.batch_execute("SELECT pg_advisory_lock(72707369)")
            .await
            .unwrap();
        b
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    assert_eq!(scalar(&a, "SELECT pg_advisory_unlock(72707369)").await, "t");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    assert_eq!(scalar(&a, "SELECT pg_advisory_unlock(72707369)").await, "t");
    let b = tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    // Unlocking a lock the session does not hold answers false.
    assert_eq!(scalar(&a, "SELECT pg_advisory_unlock(72707369)").await, "f");
    // statement_timeout stops a wait with 57014.
    a.batch_execute("SET statement_timeout = 200")
        .await
        .unwrap();
    assert_eq!(
        failure(&a, "SELECT pg_advisory_lock(72707369)").await,
        "57014"
    );
    a.batch_execute("RESET statement_timeout").await.unwrap();
    // A session's locks go with it.
    drop(b);
    let mut taken = false;
    for _ in 0..100 {
        if scalar(&a, "SELECT pg_try_advisory_lock(72707369)").await == "t" {
            taken = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(taken);
    a.batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    assert_eq!(failure(&a, "SELECT pg_advisory_lock('x')").await, "22P02");

    // Transaction-level locks last until the block ends; outside a block, until the statement does.
    let c = server.connect().await;
    a.batch_execute("BEGIN").await.unwrap();
    assert_eq!(scalar(&a, "SELECT pg_try_advisory_xact_lock(5)").await, "t");
    assert_eq!(scalar(&c, "SELECT pg_try_advisory_xact_lock(5)").await, "f");
    // pg_advisory_unlock releases session-level holds only.
    assert_eq!(scalar(&a, "SELECT pg_advisory_unlock(5)").await, "f");
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(scalar(&c, "SELECT pg_advisory_xact_lock(5)").await, "");
    assert_eq!(scalar(&a, "SELECT pg_try_advisory_lock(5)").await, "t");
}

/// SQL cursors (psycopg's server-side cursors, Django's `iterator()`): DECLARE runs the query and keeps its rows,
/// FETCH takes them in order (as text, or in the format the Bind asks for, described like the query), CLOSE ends
/// the cursor. Without HOLD a cursor lives in its transaction block (and sees the block's writes); WITH HOLD it
/// outlives the commit, but not a rollback of the block that declared it. Backward moves are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_fetch_their_rows_forward() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) AS s(g);
             DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT id, v FROM t ORDER BY id;",
        )
        .await
        .unwrap();
    let fetch = |sql: &'static str| {
        let client = &client;
        async move { common::text_rows(&client.simple_query(sql).await.unwrap()) }
    };
    assert_eq!(
        fetch("FETCH FORWARD 3 FROM c").await,
        [["1", "v1"], ["2", "v2"], ["3", "v3"]]
    );
    assert_eq!(fetch("FETCH NEXT FROM c").await, [["4", "v4"]]);
    // MOVE goes forward without sending the rows (psycopg2's `scroll`), and answers how far it went.
    let moved = client.simple_query("MOVE FORWARD 1 FROM c").await.unwrap();
    assert!(
        matches!(moved.as_slice(), [SimpleQueryMessage::CommandComplete(1)]),
        "{moved:?}"
    );
    assert_eq!(failure(&client, "MOVE BACKWARD 1 FROM c").await, "0A000");
    assert_eq!(failure(&client, "MOVE 1 FROM nowhere").await, "34000");
    client
        .batch_execute(
            "DECLARE again NO SCROLL CURSOR WITH HOLD FOR SELECT id FROM t ORDER BY id; MOVE 4 IN again",
        )
        .await
        .unwrap();
    assert_eq!(fetch("FETCH 1 FROM again").await, [["5"]]);
    // ABSOLUTE goes to a row, forward from where the cursor is.
    client
        .batch_execute("MOVE ABSOLUTE 8 IN again")
        .await
        .unwrap();
    assert_eq!(fetch("FETCH 1 FROM again").await, [["9"]]);
    assert_eq!(failure(&client, "MOVE ABSOLUTE 2 IN again").await, "0A000");
    client.batch_execute("CLOSE again").await.unwrap();
    // Through the extended protocol, in binary, described as the query is.
    let statement = client.prepare("FETCH 2 FROM c").await.unwrap();
    assert_eq!(statement.columns()[0].type_(), &Type::INT4);
    let rows = client.query(&statement, &[]).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        [6, 7]
    );
    assert_eq!(fetch("FETCH ALL IN c").await.len(), 3);
    assert!(fetch("FETCH 5 FROM c").await.is_empty());
    assert_eq!(failure(&client, "FETCH PRIOR FROM c").await, "0A000");
    client.batch_execute("CLOSE c").await.unwrap();
    assert_eq!(failure(&client, "FETCH 1 FROM c").await, "34000");
    assert_eq!(failure(&client, "CLOSE c").await, "34000");
    // Without HOLD only in a block, where it sees the block's writes and ends with it.
    assert_eq!(
        failure(&client, "DECLARE d CURSOR FOR SELECT 1").await,
        "25P01"
    );
    client
        .batch_execute(
            "BEGIN; INSERT INTO t VALUES (11, 'new');
             DECLARE d CURSOR FOR SELECT count(*) FROM t;
             DECLARE kept CURSOR WITH HOLD FOR SELECT id FROM t WHERE id > 9 ORDER BY id;",
        )
        .await
        .unwrap();
    assert_eq!(fetch("FETCH ALL FROM d").await, [["11"]]);
    assert_eq!(
        failure(&client, "DECLARE d CURSOR FOR SELECT 1").await,
        "42P03"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(failure(&client, "FETCH 1 FROM kept").await, "34000");
    client
        .batch_execute(
            "BEGIN; DECLARE d CURSOR FOR SELECT 1;
             DECLARE kept CURSOR WITH HOLD FOR SELECT id FROM t WHERE id > 8 ORDER BY id; COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(failure(&client, "FETCH 1 FROM d").await, "34000");
    assert_eq!(fetch("FETCH ALL FROM kept").await, [["9"], ["10"]]);
    assert_eq!(
        failure(&client, "DECLARE w CURSOR WITH HOLD FOR DELETE FROM t").await,
        "0A000"
    );
    assert_eq!(
        failure(&client, "DECLARE s SCROLL CURSOR WITH HOLD FOR SELECT 1").await,
        "0A000"
    );
    client.batch_execute("CLOSE ALL").await.unwrap();
    assert_eq!(failure(&client, "FETCH 1 FROM kept").await, "34000");
}

/// A statement prepared before another session's DDL, run in a transaction block after it (a session that outlives
/// a migration): planned again, as outside a block, not refused with a 40001 that running it again cannot cure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_prepared_before_ddl_run_in_blocks_after_it() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let other = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, a text)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO t (id, a) VALUES ($1, $2)")
        .await
        .unwrap();
    let read = client
        .prepare("SELECT count(*) FROM t WHERE a = $1")
        .await
        .unwrap();
    other
        .batch_execute("ALTER TABLE t ADD COLUMN b int DEFAULT 5")
        .await
        .unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client.execute(&insert, &[&1i32, &"x"]).await.unwrap();
    let row = client.query_one(&read, &[&"x"]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        scalar(&other, "SELECT a || b FROM t WHERE id = 1").await,
        "x5"
    );
}

/// A session with its notifications: each one the server sends comes out of the receiver.
async fn listener(
    server: &Server,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
) {
    let (client, mut connection) =
        tokio_postgres::connect(&server.conninfo("l", "l"), tokio_postgres::NoTls)
            .await
            .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send(n);
            }
        }
    });
    (client, rx)
}

type Notes = tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>;

/// The next notification of `notes`: its channel and payload.
async fn next_note(notes: &mut Notes) -> (String, String) {
    let n = tokio::time::timeout(Duration::from_secs(10), notes.recv())
        .await
        .expect("a notification")
        .expect("the connection");
    (n.channel().to_string(), n.payload().to_string())
}

fn note(channel: &str, payload: &str) -> (String, String) {
    (channel.to_string(), payload.to_string())
}

/// LISTEN / NOTIFY (job queues waking their workers; asyncpg's `add_listener`, node-postgres' `notification`
/// events): a notification reaches every session listening on its channel, the sender included, while the listener
/// is idle; one sent in a block goes out at COMMIT, identical ones once, and not at all after ROLLBACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_the_sessions_that_listen() {
    let server = Server::start(&[]);
    let (a, mut a_notes) = listener(&server).await;
    let (b, mut b_notes) = listener(&server).await;
    let sender = server.connect().await;
    a.batch_execute("LISTEN jobs; LISTEN \"Other\"")
        .await
        .unwrap();
    b.batch_execute("LISTEN jobs").await.unwrap();
    // Outside a block: at once, to both listeners, while they wait for nothing else.
    sender.batch_execute("NOTIFY jobs, 'first'").await.unwrap();
    assert_eq!(next_note(&mut a_notes).await, note("jobs", "first"));
    assert_eq!(next_note(&mut b_notes).await, note("jobs", "first"));
    // pg_notify with parameters, through the extended protocol; a quoted channel keeps its case.
    let row = sender
        .query_one("SELECT pg_notify($1, $2)", &[&"Other", &"second"])
        .await
        .unwrap();
    assert_eq!(row.columns()[0].name(), "pg_notify");
    assert_eq!(next_note(&mut a_notes).await, note("Other", "second"));
    // In a block: nothing before COMMIT, identical ones once; nothing after ROLLBACK.
    sender
        .batch_execute("BEGIN; NOTIFY jobs, 'x'; NOTIFY jobs, 'x'; SELECT pg_notify('jobs', 'y')")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a_notes.try_recv().is_err());
    sender.batch_execute("COMMIT").await.unwrap();
    for notes in [&mut a_notes, &mut b_notes] {
        assert_eq!(next_note(notes).await, note("jobs", "x"));
        assert_eq!(next_note(notes).await, note("jobs", "y"));
    }
    sender
        .batch_execute("BEGIN; NOTIFY jobs, 'undone'; ROLLBACK")
        .await
        .unwrap();
    // A listener in a block gets what came meanwhile after its block; the sender hears its own.
    b.batch_execute("BEGIN").await.unwrap();
    a.batch_execute("NOTIFY jobs, 'during'").await.unwrap();
    assert_eq!(next_note(&mut a_notes).await, note("jobs", "during"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(b_notes.try_recv().is_err());
    b.batch_execute("COMMIT").await.unwrap();
    assert_eq!(next_note(&mut b_notes).await, note("jobs", "during"));
    // UNLISTEN: b hears nothing more; a hears jobs until UNLISTEN *.
    b.batch_execute("UNLISTEN jobs").await.unwrap();
    sender.batch_execute("NOTIFY jobs, 'after'").await.unwrap();
    assert_eq!(next_note(&mut a_notes).await, note("jobs", "after"));
    a.batch_execute("UNLISTEN *").await.unwrap();
    sender.batch_execute("NOTIFY jobs, 'gone'").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a_notes.try_recv().is_err());
    assert!(b_notes.try_recv().is_err());
    // Channels and payloads PostgreSQL refuses.
    let e = sender
        .query_one("SELECT pg_notify($1, 'x')", &[&""])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22023");
    let e = sender
        .query_one("SELECT pg_notify('c', $1)", &[&"x".repeat(8000)])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22023");
    // A listener that goes away is forgotten, and the server goes on.
    a.batch_execute("LISTEN gone").await.unwrap();
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    sender.batch_execute("NOTIFY gone, 'late'").await.unwrap();
    assert_eq!(scalar(&sender, "SELECT 1").await, "1");
}

/// Catalog names are PostgreSQL's `name` (OID 19), and an `array_agg` of them a `name[]` (1003): Sequelize reads the
/// index columns of `array_agg(attname)` as the text of a `name[]`, which node-postgres leaves unparsed. An
/// `array_agg` of uuids is a `uuid[]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_names_are_of_type_name() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE named_cols (id int PRIMARY KEY, b text, u uuid)")
        .await
        .unwrap();
    let statement = client
        .prepare(
            "SELECT c.relname, array_agg(a.attname ORDER BY a.attnum) FROM pg_class c \
             JOIN pg_attribute a ON a.attrelid = c.oid WHERE c.relname = 'named_cols' AND a.attnum > 0 \
             GROUP BY c.relname",
        )
        .await
        .unwrap();
    let types: Vec<Type> = statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(types, [Type::NAME, Type::NAME_ARRAY]);
    let rows = client
        .simple_query(
            "SELECT c.relname, array_agg(a.attname ORDER BY a.attnum) FROM pg_class c \
             JOIN pg_attribute a ON a.attrelid = c.oid WHERE c.relname = 'named_cols' AND a.attnum > 0 \
             GROUP BY c.relname",
        )
        .await
        .unwrap();
    assert_eq!(
        rows_of(&rows),
        [[Some("named_cols".to_string()), Some("{id,b,u}".to_string())]]
    );
    // A name in an expression is text, as in PostgreSQL.
    let concatenated = client
        .prepare("SELECT relname || '!' FROM pg_class")
        .await
        .unwrap();
    assert_eq!(concatenated.columns()[0].type_(), &Type::TEXT);
    let uuids = client
        .prepare("SELECT array_agg(u) FROM named_cols")
        .await
        .unwrap();
    assert_eq!(uuids.columns()[0].type_(), &Type::UUID_ARRAY);
}

/// What undoes a block's LISTEN / NOTIFY undoes them, as in PostgreSQL: ROLLBACK TO a savepoint drops the NOTIFYs
/// and LISTENs since, LISTEN in a rolled-back block listens to nothing, DISCARD ALL stops listening, and what waited
/// for a channel the session stopped listening on is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undone_notifications_are_not_sent() {
    let server = Server::start(&[]);
    let (listener_client, mut notes) = listener(&server).await;
    let sender = server.connect().await;
    listener_client.batch_execute("LISTEN jobs").await.unwrap();
    sender
        .batch_execute(
            "BEGIN; NOTIFY jobs, 'kept'; SAVEPOINT s; NOTIFY jobs, 'undone'; ROLLBACK TO s; NOTIFY jobs, 'after'; COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(next_note(&mut notes).await, note("jobs", "kept"));
    assert_eq!(next_note(&mut notes).await, note("jobs", "after"));
    // LISTEN in a block that rolls back, or in a part of one rolled back to a savepoint, listens to nothing.
    listener_client
        .batch_execute(
            "BEGIN; LISTEN other; ROLLBACK; BEGIN; SAVEPOINT s; LISTEN other; ROLLBACK TO s; COMMIT",
        )
        .await
        .unwrap();
    sender.batch_execute("NOTIFY other, 'x'").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(notes.try_recv().is_err());
    // Queued while the listener was in a block, then unlistened before it ended: not sent.
    listener_client.batch_execute("BEGIN").await.unwrap();
    sender.batch_execute("NOTIFY jobs, 'stale'").await.unwrap();
    listener_client
        .batch_execute("UNLISTEN jobs; COMMIT; LISTEN third")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(notes.try_recv().is_err());
    // DISCARD ALL stops listening.
    listener_client.batch_execute("DISCARD ALL").await.unwrap();
    sender.batch_execute("NOTIFY third, 'x'").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(notes.try_recv().is_err());
}

/// INSERTs one after another outside a block, in one simple query, run as PostgreSQL's implicit transaction: a
/// failing one leaves none of them; a statement of another kind after them sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_of_one_query_are_one_transaction() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE batch (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    let e = client
        .batch_execute(
            "INSERT INTO batch VALUES (1, 'a'); INSERT INTO batch VALUES (2, 'b'); INSERT INTO batch VALUES (1, 'c')",
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23505");
    assert_eq!(scalar(&client, "SELECT count(*) FROM batch").await, "0");
    // Applied before a read that follows them, and at the query's end.
    let rows = client
        .simple_query(
            "INSERT INTO batch VALUES (1, 'a'); INSERT INTO batch VALUES (2, 'b'); SELECT count(*) FROM batch; \
             INSERT INTO batch VALUES (3, 'c'); INSERT INTO batch VALUES (4, 'd')",
        )
        .await
        .unwrap();
    assert_eq!(rows_of(&rows), [[Some("2".to_string())]]);
    assert_eq!(scalar(&client, "SELECT count(*) FROM batch").await, "4");
    // A block begun after them keeps what came before, as PostgreSQL's BEGIN does.
    client
        .batch_execute(
            "INSERT INTO batch VALUES (5, 'e'); BEGIN; INSERT INTO batch VALUES (6, 'f'); COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM batch").await, "6");
    // A read-only session refuses them as it refuses one.
    client
        .batch_execute("SET default_transaction_read_only = on")
        .await
        .unwrap();
    let e = client
        .batch_execute("INSERT INTO batch VALUES (7, 'g'); INSERT INTO batch VALUES (8, 'h')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "25006");
    client
        .batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM batch").await, "6");
}

/// A batch of INSERTs longer than an implicit transaction keeps runs to its end, in groups (an explicit block that
/// long would be refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_batch_of_inserts_runs_in_groups() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE many (id int PRIMARY KEY)")
        .await
        .unwrap();
    let batch: String = (1..=10_050)
        .map(|i| format!("INSERT INTO many VALUES ({i});"))
        .collect();
    client.batch_execute(&batch).await.unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM many").await, "10050");
}

/// Plain views through the extended protocol: a parameter in a query of a view, its columns described with their
/// tables' types, a view made and dropped in a transaction block, and the errors of writing one or dropping what it
/// reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_views_read_as_their_query() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL, price NUMERIC(8,2));
             INSERT INTO item VALUES (1, 'pen', 2.50), (2, 'ink', 9.00), (3, 'pad', 4.25);
             CREATE VIEW priced AS SELECT id, upper(name) AS label, price FROM item WHERE price IS NOT NULL",
        )
        .await
        .unwrap();
    let by_price = client
        .prepare("SELECT id, label FROM priced WHERE price < $1 ORDER BY id")
        .await
        .unwrap();
    assert_eq!(by_price.params(), &[tokio_postgres::types::Type::NUMERIC]);
    let columns: Vec<_> = by_price
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(
        columns,
        [
            tokio_postgres::types::Type::INT4,
            tokio_postgres::types::Type::TEXT
        ]
    );
    let found = |rows: Vec<tokio_postgres::Row>| -> Vec<(i32, String)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let five = rust_decimal::Decimal::new(5, 0);
    assert_eq!(
        found(client.query(&by_price, &[&five]).await.unwrap()),
        [(1, "PEN".to_string()), (3, "PAD".to_string())]
    );
    client
        .execute("UPDATE item SET price = 1 WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(
        found(client.query(&by_price, &[&five]).await.unwrap()).len(),
        3
    );
    // A view made in a block is there after COMMIT, and not after ROLLBACK.
    client
        .batch_execute("BEGIN; CREATE VIEW cheap AS SELECT id FROM item WHERE price < 3; COMMIT")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM cheap").await, "2");
    client
        .batch_execute("BEGIN; DROP VIEW cheap; ROLLBACK")
        .await
        .unwrap();
    assert_eq!(scalar(&client, "SELECT count(*) FROM cheap").await, "2");
    let code = |e: tokio_postgres::Error| common::code(&e);
    assert_eq!(
        code(
            client
                .batch_execute("INSERT INTO priced VALUES (9, 'x', 1)")
                .await
                .unwrap_err()
        ),
        "0A000"
    );
    assert_eq!(
        code(client.batch_execute("DROP TABLE item").await.unwrap_err()),
        "2BP01"
    );
    assert_eq!(
        code(
            client
                .batch_execute("CREATE VIEW priced AS SELECT 1 AS x")
                .await
                .unwrap_err()
        ),
        "42P07"
    );
    assert_eq!(
        code(
            client
                .batch_execute("CREATE VIEW p2 AS SELECT $1::int AS x")
                .await
                .unwrap_err()
        ),
        "42P02"
    );
    client
        .batch_execute("DROP TABLE item CASCADE")
        .await
        .unwrap();
    assert_eq!(
        code(
            client
                .batch_execute("SELECT * FROM priced")
                .await
                .unwrap_err()
        ),
        "42P01"
    );
}
