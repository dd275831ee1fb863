//! Arrays, instants, times of day and intervals over the wire: binary and text results, binary parameters, and the
//! session time zone (`SET TimeZone`), through tokio-postgres against a real `lanedb serve`.

mod common;

use std::str::FromStr;

use bytes::{BufMut, BytesMut};
use chrono::{NaiveTime, TimeZone, Utc};
use common::{code, scalar, text_rows, Server};
use rust_decimal::Decimal;
use tokio_postgres::types::{accepts, to_sql_checked, FromSql, IsNull, ToSql, Type};

/// PostgreSQL's binary `interval`: microseconds, days, months (tokio-postgres has no interval type of its own).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Interval {
    micros: i64,
    days: i32,
    months: i32,
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Interval, BoxError> {
        let raw: [u8; 16] = raw.try_into()?;
        Ok(Interval {
            micros: i64::from_be_bytes(raw[..8].try_into()?),
            days: i32::from_be_bytes(raw[8..12].try_into()?),
            months: i32::from_be_bytes(raw[12..].try_into()?),
        })
    }

    accepts!(INTERVAL);
}

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.micros);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }

    accepts!(INTERVAL);
    to_sql_checked!();
}

/// A binary `time` of any number of microseconds, in range or not.
#[derive(Debug)]
struct RawTime(i64);

impl ToSql for RawTime {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0);
        Ok(IsNull::No)
    }

    accepts!(TIME);
    to_sql_checked!();
}

const VALUES: &str = "SELECT '{1,NULL,3}'::int[], '{a,\"b c\",\"\"}'::text[], \
     '2018-01-01 12:00:00+08'::timestamptz, '12:34:56.5'::time, \
     '1 year 2 mons 3 days 04:05:06'::interval, '{2.0,3.0123}'::numeric[], '{}'::bigint[]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_results_carry_their_types() {
    let server = Server::start(&["--timezone", "America/New_York"]);
    let client = server.connect().await;
    let row = client.query_one(VALUES, &[]).await.unwrap();
    let types: Vec<Type> = row.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(
        types,
        [
            Type::INT4_ARRAY,
            Type::TEXT_ARRAY,
            Type::TIMESTAMPTZ,
            Type::TIME,
            Type::INTERVAL,
            Type::NUMERIC_ARRAY,
            Type::INT8_ARRAY
        ]
    );
    assert_eq!(row.get::<_, Vec<Option<i32>>>(0), [Some(1), None, Some(3)]);
    assert_eq!(row.get::<_, Vec<String>>(1), ["a", "b c", ""]);
    let instant: chrono::DateTime<Utc> = row.get(2);
    assert_eq!(instant, Utc.with_ymd_and_hms(2018, 1, 1, 4, 0, 0).unwrap());
    let time: NaiveTime = row.get(3);
    assert_eq!(
        time,
        NaiveTime::from_hms_milli_opt(12, 34, 56, 500).unwrap()
    );
    let interval: Interval = row.get(4);
    assert_eq!(
        interval,
        Interval {
            micros: (4 * 3600 + 5 * 60 + 6) * 1_000_000,
            days: 3,
            months: 14
        }
    );
    // Each element of an unconstrained numeric array keeps its own scale.
    let numbers: Vec<Decimal> = row.get(5);
    assert_eq!(
        numbers,
        [
            Decimal::from_str("2.0").unwrap(),
            Decimal::from_str("3.0123").unwrap()
        ]
    );
    assert_eq!(numbers[0].scale(), 1);
    assert!(row.get::<_, Vec<i64>>(6).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_results_are_postgres_text() {
    let server = Server::start(&["--timezone", "America/New_York"]);
    let client = server.connect().await;
    let rows = text_rows(&client.simple_query(VALUES).await.unwrap());
    assert_eq!(
        rows,
        [[
            "{1,NULL,3}",
            "{a,\"b c\",\"\"}",
            "2017-12-31 23:00:00-05",
            "12:34:56.5",
            "1 year 2 mons 3 days 04:05:06",
            "{2.0,3.0123}",
            "{}"
        ]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_settings_reports_the_servers_time_zone_and_the_sessions() {
    let server = Server::start(&["--timezone", "America/New_York"]);
    let client = server.connect().await;
    let sql =
        "SELECT setting, source, boot_val, reset_val FROM pg_settings WHERE name = 'TimeZone'";
    let row = |r: tokio_postgres::Row| -> [String; 4] { [r.get(0), r.get(1), r.get(2), r.get(3)] };
    assert_eq!(
        row(client.query_one(sql, &[]).await.unwrap()),
        [
            "America/New_York",
            "command line",
            "UTC",
            "America/New_York"
        ]
    );
    client
        .simple_query("SET TimeZone = 'Asia/Tokyo'")
        .await
        .unwrap();
    assert_eq!(
        row(client.query_one(sql, &[]).await.unwrap()),
        ["Asia/Tokyo", "session", "UTC", "America/New_York"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_parameters_of_the_new_types_are_read() {
    let server = Server::start(&["--timezone", "America/New_York"]);
    let client = server.connect().await;
    let instant = Utc.with_ymd_and_hms(2018, 7, 1, 12, 0, 0).unwrap();
    let time = NaiveTime::from_hms_micro_opt(1, 2, 3, 4).unwrap();
    let interval = Interval {
        micros: -90 * 60 * 1_000_000,
        days: 1,
        months: 0,
    };
    let row = client
        .query_one(
            "SELECT $1::timestamptz::text, $2::time::text, $3::interval::text",
            &[&instant, &time, &interval],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "2018-07-01 08:00:00-04");
    assert_eq!(row.get::<_, String>(1), "01:02:03.000004");
    assert_eq!(row.get::<_, String>(2), "1 day -01:30:00");
    // The statement describes its parameters with the types the casts give them.
    let statement = client
        .prepare("SELECT $1::timestamptz, $2::time, $3::interval")
        .await
        .unwrap();
    assert_eq!(
        statement.params(),
        [Type::TIMESTAMPTZ, Type::TIME, Type::INTERVAL]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_time_zone_shows_instants_and_reads_local_times() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let show = |rows: Vec<Vec<String>>| rows[0][0].clone();
    let instant = "SELECT '2018-01-01 12:00:00+08'::timestamptz";
    assert_eq!(
        show(text_rows(&client.simple_query(instant).await.unwrap())),
        "2018-01-01 04:00:00+00"
    );
    assert_eq!(
        show(text_rows(
            &client.simple_query("SHOW TimeZone").await.unwrap()
        )),
        "UTC"
    );
    client
        .batch_execute("SET TimeZone = 'asia/kolkata'")
        .await
        .unwrap();
    assert_eq!(
        show(text_rows(
            &client.simple_query("SHOW TimeZone").await.unwrap()
        )),
        "Asia/Kolkata"
    );
    assert_eq!(
        show(text_rows(&client.simple_query(instant).await.unwrap())),
        "2018-01-01 09:30:00+05:30"
    );
    let now =
        "SELECT now()::text LIKE '%+05:30', to_timestamp(0) = '1970-01-01 05:30:00'::timestamptz";
    assert_eq!(
        text_rows(&client.simple_query(now).await.unwrap()),
        [["t", "t"]]
    );
    // Text without an offset is a local time in the session's zone.
    let local = "SELECT '2018-01-01 12:00:00'::timestamptz = '2018-01-01 06:30:00+00'::timestamptz";
    assert_eq!(
        show(text_rows(&client.simple_query(local).await.unwrap())),
        "t"
    );
    let err = client
        .batch_execute("SET TimeZone = 'Mars/Olympus_Mons'")
        .await
        .unwrap_err();
    assert_eq!(code(&err), "22023");
    client.batch_execute("RESET TimeZone").await.unwrap();
    assert_eq!(
        show(text_rows(
            &client.simple_query("SHOW TimeZone").await.unwrap()
        )),
        "UTC"
    );
    // Another session is not affected by this one's zone.
    let other = server.connect().await;
    client.batch_execute("SET TimeZone = '+08'").await.unwrap();
    assert_eq!(
        show(text_rows(&other.simple_query(instant).await.unwrap())),
        "2018-01-01 04:00:00+00"
    );
    assert_eq!(
        show(text_rows(&client.simple_query(instant).await.unwrap())),
        "2018-01-01 12:00:00+08"
    );
}

/// Casts between text, instants and local times, `AT TIME ZONE` and `to_char` give PostgreSQL's answers in a session
/// zone other than UTC (each expected value is PostgreSQL 15's), and a write that casts an instant stores the local
/// time the session saw, also after a crash and replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instants_and_local_times_convert_in_the_sessions_zone() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute("SET TimeZone = 'America/New_York'")
        .await
        .unwrap();
    let cases = [
        // An instant cast to a local time is the session's wall clock, not UTC's.
        (
            "'2024-01-01 10:00+00'::timestamptz::timestamp",
            "2024-01-01 05:00:00",
        ),
        // PostgreSQL's text forms: no seconds, short and long offsets, a zone name, a zone in a timestamp ignored.
        ("'2024-01-01 10:00'::timestamptz", "2024-01-01 10:00:00-05"),
        (
            "'2024-01-01 10:00+02'::timestamptz",
            "2024-01-01 03:00:00-05",
        ),
        (
            "'2024-06-01 12:00 +05:30'::timestamptz",
            "2024-06-01 02:30:00-04",
        ),
        (
            "'2024-06-01 12:00 America/Chicago'::timestamptz",
            "2024-06-01 13:00:00-04",
        ),
        ("'2024-01-01 03:00:00+05'::timestamp", "2024-01-01 03:00:00"),
        ("'2024-01-01 03:00'::timestamp", "2024-01-01 03:00:00"),
        (
            "'2024-06-01T12:00:00.123456789Z'::timestamptz",
            "2024-06-01 08:00:00.123457-04",
        ),
        // Clocks turned back read as the later instant, turned forward with the offset from before.
        ("'2024-11-03 01:30'::timestamptz", "2024-11-03 01:30:00-05"),
        ("'2024-03-10 02:30'::timestamptz", "2024-03-10 03:30:00-04"),
        // AT TIME ZONE turns an instant into a local time there, and a local time there into an instant.
        (
            "'2024-06-01 12:00:00+00'::timestamptz AT TIME ZONE 'Asia/Tokyo'",
            "2024-06-01 21:00:00",
        ),
        (
            "'2024-06-01 12:00:00'::timestamp AT TIME ZONE 'UTC'",
            "2024-06-01 08:00:00-04",
        ),
        (
            "'2024-06-01 12:00' AT TIME ZONE 'Asia/Tokyo'",
            "2024-06-02 01:00:00",
        ),
        (
            "'2024-06-01'::date AT TIME ZONE 'Asia/Tokyo'",
            "2024-06-01 13:00:00",
        ),
        (
            "timezone('UTC', '2024-06-01 12:00+00'::timestamptz)",
            "2024-06-01 12:00:00",
        ),
        (
            "pg_typeof('2024-06-01 12:00'::timestamp AT TIME ZONE 'UTC')::text || ', ' || \
             pg_typeof(now() AT TIME ZONE 'UTC')::text",
            "timestamp with time zone, timestamp without time zone",
        ),
        // Instants from functions show in the session's zone; now() has PostgreSQL's microseconds.
        ("to_timestamp(0)", "1969-12-31 19:00:00-05"),
        (
            "date_trunc('day', to_timestamp(86400 * 3.5))",
            "1970-01-04 00:00:00-05",
        ),
        (
            "now()::timestamp = now() AT TIME ZONE 'America/New_York'",
            "t",
        ),
        // to_char reads PostgreSQL's patterns, an instant in the session's zone.
        (
            "to_char('2024-01-01 03:00:00+00'::timestamptz, 'YYYY-MM-DD HH24:MI TZ')",
            "2023-12-31 22:00 EST",
        ),
        (
            "to_char(date '2024-03-05', 'FMDay, FMMonth DDth YYYY \"Q\"Q')",
            "Tuesday, March 05th 2024 Q1",
        ),
        (
            "to_char(timestamp '2024-03-05 14:07:09.5', 'HH12:MI:SS.MS am')",
            "02:07:09.500 pm",
        ),
    ];
    for (expr, expected) in cases {
        assert_eq!(
            scalar(&client, &format!("SELECT {expr}")).await,
            expected,
            "{expr}"
        );
    }
    // current_date and current_time are the session's. UTC's date differs from one of these two zones' at any hour.
    for zone in ["Pacific/Kiritimati", "Etc/GMT+12"] {
        client
            .batch_execute(&format!("SET TimeZone = '{zone}'"))
            .await
            .unwrap();
        let today = "SELECT current_date = now()::date AND current_time - now()::time < interval '1 minute'";
        assert_eq!(scalar(&client, today).await, "t", "{zone}");
    }
    client
        .batch_execute("SET TimeZone = 'America/New_York'")
        .await
        .unwrap();
    for (sql, expected) in [
        ("SELECT 'garbage'::timestamptz", "22007"),
        (
            "SELECT '2024-01-01 10:00 Mars/Olympus'::timestamptz",
            "22023",
        ),
        ("SELECT now() AT TIME ZONE 'Mars/Olympus'", "22023"),
    ] {
        let e = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), expected, "{sql}");
    }

    // Writes: an instant stored in a timestamp column is the local time the session saw, by every path; a literal
    // compared with a column is read the same way.
    client
        .batch_execute("CREATE TABLE stamps (id INTEGER PRIMARY KEY, at TIMESTAMP)")
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO stamps VALUES (1, '2024-01-01 10:00+00'::timestamptz); \
             INSERT INTO stamps VALUES (2, timestamptz '2024-01-01 10:00+00'); \
             INSERT INTO stamps SELECT 3, '2024-01-01 10:00+00'::timestamptz; \
             INSERT INTO stamps VALUES (4, '2024-01-01 10:00+00'); \
             UPDATE stamps SET at = '2024-01-01 10:00+00'::timestamptz + interval '1 hour' WHERE id = 4",
        )
        .await
        .unwrap();
    let stored = "SELECT string_agg(id || '=' || at::text, ' ' ORDER BY id) FROM stamps \
                  WHERE at >= '2024-01-01 05:00'";
    let expected =
        "1=2024-01-01 05:00:00 2=2024-01-01 05:00:00 3=2024-01-01 05:00:00 4=2024-01-01 06:00:00";
    assert_eq!(scalar(&client, stored).await, expected);
    // Replayed from the command log after a crash, in another session's zone, the values are the same.
    let data_dir = server.crash();
    let server = Server::start_in(data_dir, &[]);
    let client = server.connect().await;
    assert_eq!(scalar(&client, stored).await, expected);
}

/// `to_char` of numbers follows PostgreSQL's templates, quirks included (each expected value is PostgreSQL 15's):
/// padding and sign positions, `FM`, `0`, rounding by type, `#` when the integer part does not fit, `PR`/`MI`/
/// `SG`/`S`, `V`, `RN`, `TH`, `EEEE`; over columns with a template per row, and with parameters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_format_by_postgres_templates() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    let cases = [
        ("to_char(42::int, '999')", "  42"),
        ("to_char(-42::int, '999')", " -42"),
        ("to_char(42::int, '000')", " 042"),
        ("to_char(0::int, '999')", "   0"),
        ("to_char(0::int, 'FM999')", "0"),
        ("to_char(7::int, 'FM00')", "07"),
        ("to_char(12345::int, '999')", " ###"),
        ("to_char(1234.567::numeric, '9,999.99')", " 1,234.57"),
        ("to_char(-1234.567::numeric, 'FM9,999.99')", "-1,234.57"),
        (
            "to_char(1234567.891::numeric, 'FM999G999G999D00')",
            "1,234,567.89",
        ),
        ("to_char(0.5::numeric, '9.99')", "  .50"),
        ("to_char(0.5::numeric, 'FM9.99')", ".5"),
        ("to_char(0.5::numeric, '0.00')", " 0.50"),
        ("to_char(-0.004::numeric, 'FM990.00')", "0.00"),
        ("to_char(100::numeric, 'FM999.')", "100"),
        ("to_char(99.995::numeric, '99.99')", " ##.##"),
        ("to_char(2.5::numeric, '9')", " 3"),
        ("to_char(12.5::numeric, 'FM999')", "13"),
        ("to_char(3.14159::numeric, '9.999')", " 3.142"),
        ("to_char(42::int, 'S999')", " +42"),
        ("to_char(-42::int, '999MI')", " 42-"),
        ("to_char(42::int, '999PL')", "  42+"),
        ("to_char(-42::int, '999PR')", " <42>"),
        ("to_char(-42::int, 'SG999')", "- 42"),
        ("to_char(-5.5::numeric, 'FM9.99PR')", "<5.5>"),
        ("to_char(12::int, '99V99')", " 1200"),
        ("to_char(123::int, 'L999')", "  123"),
        ("to_char(1234::int, 'RN')", "       MCCXXXIV"),
        ("to_char(1234::int, 'FMrn')", "mccxxxiv"),
        ("to_char(0::int, 'RN')", "###############"),
        ("to_char(21::int, '99TH')", " 21ST"),
        ("to_char(12::int, 'FM99th')", "12th"),
        ("to_char(1234.5::numeric, '9.99EEEE')", " 1.23e+03"),
        ("to_char(0.000123::numeric, '9.9EEEE')", " 1.2e-04"),
        ("to_char(9.999::numeric, '9.99EEEE')", " 10.00e+00"),
        ("to_char(1225::int, '9.99EEEE')", " 1.22e+03"),
        ("to_char(1225::bigint, '9.99EEEE')", " 1.23e+03"),
        ("to_char(2.5::float8, '9')", " 2"),
        ("to_char(-0.004::float8, 'FM990.00')", "-0.00"),
        (
            "to_char(123456789012345678::float8, '999999999999999999.99')",
            " 123456789012345680",
        ),
        ("to_char(1234567.891::float4, '9999999.999')", " 1234568"),
        ("to_char('NaN'::float8, '999.99')", " NaN"),
        ("to_char('Infinity'::float8, '999.99')", " ###.##"),
        (
            "to_char(5::int, '\"Total: \"999\" units\"')",
            "Total:    5 units",
        ),
        ("to_char(1234.5::numeric, '$9,999.99')", "$ 1,234.50"),
    ];
    for (expr, expected) in cases {
        assert_eq!(
            scalar(&client, &format!("SELECT {expr}")).await,
            expected,
            "{expr}"
        );
    }
    // Over a table: a template per row, NULLs in either argument, aggregates.
    client
        .batch_execute(
            "CREATE TABLE amounts (id INTEGER PRIMARY KEY, n NUMERIC(12,3), f DOUBLE PRECISION, t TEXT); \
             INSERT INTO amounts VALUES (1, 1234.567, 2.5, 'FM9,999.00'), (2, -0.5, -0.004, '999PR'), \
             (3, NULL, 1e20, 'RN'), (4, 99.995, 0.1, NULL)",
        )
        .await
        .unwrap();
    let rows = text_rows(
        &client
            .simple_query(
                "SELECT to_char(n, '9,999.99'), to_char(f, 'FM990.00'), to_char(n, t), to_char(id, t) \
                 FROM amounts ORDER BY id",
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        rows,
        [
            [" 1,234.57", "2.50", "1,234.57", "1.00"],
            ["     -.50", "-0.00", "  <1>", "   2 "],
            ["NULL", "###.", "NULL", "            III"],
            ["   100.00", "0.10", "NULL", "NULL"],
        ]
    );
    assert_eq!(
        scalar(
            &client,
            "SELECT to_char(sum(n), 'FM9,999.000') FROM amounts"
        )
        .await,
        "1,334.062"
    );
    // Parameters, in binary: a float and a template.
    let statement = client
        .prepare("SELECT to_char($1::float8, $2)")
        .await
        .unwrap();
    let row = client
        .query_one(&statement, &[&-1234.5f64, &"S9,999.9"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "-1,234.5");
    for (sql, expected) in [
        ("SELECT to_char(1, '9.9.9')", "42601"),
        ("SELECT to_char(1, 'S9MI')", "42601"),
        ("SELECT to_char(1, '9EEEE9')", "42601"),
        ("SELECT to_char(9223372036854775807, '9V9')", "22003"),
        ("SELECT to_char(100000::numeric * 100000, 'RN')", "22003"),
        ("SELECT to_char('abc'::text, '999')", "42883"),
    ] {
        let e = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), expected, "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procedures_take_array_parameters_in_both_formats() {
    let server = Server::start(&["--modules", "bank"]);
    let client = server.connect().await;
    for id in [1i64, 2, 3] {
        client
            .execute("CALL deposit($1, $2)", &[&id, &(id * 100)])
            .await
            .unwrap();
    }
    // Binary: the statement describes its parameter as int8[] and the driver sends an array.
    let statement = client.prepare("CALL balances($1)").await.unwrap();
    assert_eq!(statement.params(), [Type::INT8_ARRAY]);
    let ids: Vec<Option<i64>> = vec![Some(3), None, Some(1)];
    let rows = client.query(&statement, &[&ids]).await.unwrap();
    let balances: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
    assert_eq!(balances, [300, 100]);
    // Text: an array literal in a simple query.
    let rows = text_rows(&client.simple_query("CALL balances('{2,3}')").await.unwrap());
    assert_eq!(rows, [["2", "NULL", "200"], ["3", "NULL", "300"]]);
    let err = client
        .simple_query("CALL balances('{2,three}')")
        .await
        .unwrap_err();
    assert_eq!(code(&err), "22P02");
    // A parameter of the wrong type is refused by the driver's own check, so send text that is not an array.
    let err = client.simple_query("CALL balances('2')").await.unwrap_err();
    assert_eq!(code(&err), "22P02");
}

/// Columns of type `timestamp with time zone` (Django's DateTimeField, Hibernate's Instant): an instant is stored,
/// text without an offset is local time in the session's zone (in INSERT, UPDATE, parameters and COPY), and the
/// value shows in the reader's zone, by key, through DataFusion, after a restart from the log and from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instants_are_stored_and_show_in_the_readers_zone() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE ev (id INT PRIMARY KEY, at TIMESTAMPTZ NOT NULL, made TIMESTAMP WITH TIME ZONE DEFAULT now());
             CREATE INDEX ev_at ON ev (at);
             INSERT INTO ev (id, at) VALUES (1, '2024-01-01 10:00:00+02');
             SET TimeZone = 'America/New_York';
             INSERT INTO ev (id, at) VALUES (2, '2024-06-01 10:00');",
        )
        .await
        .unwrap();
    // A statement whose value is text, typed by its cast; a parameter in binary (chrono's DateTime<Utc>).
    client
        .batch_execute("INSERT INTO ev (id, at) SELECT 3, '2024-02-01 09:30'::timestamptz")
        .await
        .unwrap();
    let instant = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    client
        .execute(
            "INSERT INTO ev (id, at) VALUES ($1, $2)",
            &[&4i32, &instant],
        )
        .await
        .unwrap();
    let shown = "SELECT id, at::text FROM ev ORDER BY id";
    let in_new_york = [
        ["1", "2024-01-01 03:00:00-05"],
        ["2", "2024-06-01 10:00:00-04"],
        ["3", "2024-02-01 09:30:00-05"],
        ["4", "2024-03-01 07:00:00-05"],
    ];
    assert_eq!(
        text_rows(&client.simple_query(shown).await.unwrap()),
        in_new_york
    );
    // By key (the lane's own read), and the binary value, the same instant.
    let row = client
        .query_one("SELECT at FROM ev WHERE id = $1", &[&4i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, chrono::DateTime<Utc>>(0), instant);
    assert_eq!(
        text_rows(
            &client
                .simple_query("SELECT at FROM ev WHERE id = 2")
                .await
                .unwrap()
        ),
        [["2024-06-01 10:00:00-04"]]
    );
    // Compared as instants, through the index.
    assert_eq!(
        text_rows(
            &client
                .simple_query("SELECT id FROM ev WHERE at = '2024-06-01 14:00:00+00'")
                .await
                .unwrap()
        ),
        [["2"]]
    );
    assert_eq!(
        scalar(
            &client,
            "SELECT count(*) FROM ev WHERE made > '2020-01-01' AND made <= now()"
        )
        .await,
        "4"
    );
    client
        .batch_execute("UPDATE ev SET at = '2024-07-01 12:00' WHERE id = 2")
        .await
        .unwrap();
    // A read in a block after its writes: the same zone both ways.
    client
        .batch_execute("BEGIN; INSERT INTO ev (id, at) VALUES (6, '2024-01-01 10:00')")
        .await
        .unwrap();
    assert_eq!(
        text_rows(
            &client
                .simple_query("SELECT at FROM ev WHERE id = 6")
                .await
                .unwrap()
        ),
        [["2024-01-01 10:00:00-05"]]
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    // COPY reads its lines in the session's zone too, and so does its replay.
    {
        use futures::SinkExt;
        let sink = client.copy_in("COPY ev (id, at) FROM STDIN").await.unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from("5\t2024-12-24 18:00\n"))
            .await
            .unwrap();
        assert_eq!(sink.finish().await.unwrap(), 1);
    }
    let utc = [
        ["1", "2024-01-01 08:00:00+00"],
        ["2", "2024-07-01 16:00:00+00"],
        ["3", "2024-02-01 14:30:00+00"],
        ["4", "2024-03-01 12:00:00+00"],
        ["5", "2024-12-24 23:00:00+00"],
    ];
    let other = server.connect().await;
    assert_eq!(text_rows(&other.simple_query(shown).await.unwrap()), utc);
    // Bad text is 22007, as in PostgreSQL.
    let e = client
        .batch_execute("INSERT INTO ev (id, at) VALUES (9, 'garbage')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22007");
    // From the log, then from a snapshot.
    drop(other);
    let (server, client) = crash_and_restart(server, client).await;
    assert_eq!(text_rows(&client.simple_query(shown).await.unwrap()), utc);
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (_server, client) = crash_and_restart(server, client).await;
    assert_eq!(text_rows(&client.simple_query(shown).await.unwrap()), utc);
}

/// Checks that `shown` gives `expected` after a restart from the log, then after one from a snapshot; the server
/// and a client of it after both.
async fn kept_after_crash_and_snapshot(
    server: Server,
    client: tokio_postgres::Client,
    shown: &str,
    expected: &[Vec<String>],
) -> (Server, tokio_postgres::Client) {
    let (server, client) = crash_and_restart(server, client).await;
    assert_eq!(
        text_rows(&client.simple_query(shown).await.unwrap()),
        expected
    );
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (server, client) = crash_and_restart(server, client).await;
    assert_eq!(
        text_rows(&client.simple_query(shown).await.unwrap()),
        expected
    );
    (server, client)
}

/// Kills the server once `client` is gone, starts it again on its data directory, and connects.
async fn crash_and_restart(
    server: Server,
    client: tokio_postgres::Client,
) -> (Server, tokio_postgres::Client) {
    drop(client);
    let dir = server.crash();
    let server = Server::start_in(dir, &[]);
    let client = server.connect().await;
    (server, client)
}

/// Columns of type time and interval: binary parameters and results (by key and through a scan), COPY in and out,
/// a unique index that treats `'1 day'` and `'24 hours'` as one value, and the rows after a restart from the log
/// and from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_of_day_and_intervals_are_stored() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE lap (id INT PRIMARY KEY, at TIME NOT NULL, took INTERVAL UNIQUE);
             INSERT INTO lap VALUES (1, '08:30', '1 day 02:03:04.5');",
        )
        .await
        .unwrap();
    let time = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap();
    let interval = Interval {
        micros: -90 * 60 * 1_000_000,
        days: 3,
        months: 14,
    };
    client
        .execute(
            "INSERT INTO lap VALUES ($1, $2, $3)",
            &[&2i32, &time, &interval],
        )
        .await
        .unwrap();
    // By key, in binary: the values as they went in.
    let row = client
        .query_one("SELECT at, took FROM lap WHERE id = $1", &[&2i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, NaiveTime>(0), time);
    assert_eq!(row.get::<_, Interval>(1), interval);
    // Through a scan, in binary, compared with a parameter of each type.
    let rows = client
        .query(
            "SELECT id FROM lap WHERE at < $1 AND took < $2 ORDER BY id",
            &[&time, &interval],
        )
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        [1]
    );
    // A parameter multiplies an interval in a write by key.
    client
        .execute("UPDATE lap SET took = took * $1 WHERE id = 1", &[&2.0f64])
        .await
        .unwrap();
    // A binary time before midnight or past 24:00:00 is 22008, as in PostgreSQL.
    for micros in [-1, 24 * 3_600_000_000 + 1] {
        let e = client
            .execute(
                "INSERT INTO lap VALUES ($1, $2, NULL)",
                &[&9i32, &RawTime(micros)],
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), "22008");
    }
    // Unique by span: '48:00:00' is '2 days'.
    let e = client
        .batch_execute("INSERT INTO lap VALUES (3, '10:00', '52:06:09')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23505");
    {
        use futures::SinkExt;
        let sink = client.copy_in("COPY lap FROM STDIN").await.unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from("4\t00:00:01\t-3 days\n5\t12:00\t\\N\n"))
            .await
            .unwrap();
        assert_eq!(sink.finish().await.unwrap(), 2);
    }
    let shown = "SELECT id, at, took FROM lap ORDER BY id";
    let expected = [
        ["1", "08:30:00", "2 days 04:06:09"],
        ["2", "23:59:59.999999", "1 year 2 mons 3 days -01:30:00"],
        ["4", "00:00:01", "-3 days"],
        ["5", "12:00:00", "NULL"],
    ];
    assert_eq!(
        text_rows(&client.simple_query(shown).await.unwrap()),
        expected
    );
    let expected = expected.map(|row| row.map(String::from).to_vec());
    let (_server, client) = kept_after_crash_and_snapshot(server, client, shown, &expected).await;
    // The unique index is rebuilt from the snapshot, by span.
    let e = client
        .batch_execute("INSERT INTO lap VALUES (6, '10:00', '-72 hours')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23505");
}

/// PostgreSQL's binary `uuid`: its 16 bytes (tokio-postgres reads it only with a feature LaneDB's tests leave off).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Uuid([u8; 16]);

impl<'a> FromSql<'a> for Uuid {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Uuid, BoxError> {
        Ok(Uuid(raw.try_into()?))
    }

    accepts!(UUID);
}

impl ToSql for Uuid {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }

    accepts!(UUID);
    to_sql_checked!();
}

/// UUID columns over the wire: typed `uuid` in RowDescription and ParameterDescription, binary parameters and
/// results as 16 bytes (by key and through a scan), text in any of PostgreSQL's forms, and `DEFAULT
/// gen_random_uuid()` values, and `gen_random_uuid()` in VALUES, that are the same after a crash (they go into the
/// log with the row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuids_are_stored_and_sent_as_postgres_sends_them() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE doc (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), title TEXT, parent UUID);
             PARTITION TABLE doc ON COLUMN id;
             INSERT INTO doc (title) VALUES ('a'), ('b'), ('c');",
        )
        .await
        .unwrap();
    let id = Uuid(*b"\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11");
    let insert = client
        .prepare("INSERT INTO doc (id, title, parent) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    assert_eq!(insert.params(), [Type::UUID, Type::TEXT, Type::UUID]);
    client
        .execute(&insert, &[&id, &"bin", &None::<Uuid>])
        .await
        .unwrap();
    // By key, in binary: the same 16 bytes, typed uuid.
    let row = client
        .query_one("SELECT id, title FROM doc WHERE id = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(row.columns()[0].type_(), &Type::UUID);
    assert_eq!(row.get::<_, Uuid>(0), id);
    // Through a scan, compared with a text parameter in another form.
    let row = client
        .query_one(
            "SELECT id::text FROM doc WHERE id = $1::text::uuid AND title <> 'x'",
            &[&"{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}"],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    );
    client
        .execute(&insert, &[&Uuid([0; 16]), &"zero", &id])
        .await
        .unwrap();
    let e = client
        .batch_execute("INSERT INTO doc (id) VALUES ('xyz')")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22P02");
    // A random UUID written in a row (knex's `knex.fn.uuid()`) is chosen when the INSERT runs, and logged.
    client
        .batch_execute(
            "INSERT INTO doc (id, title) VALUES ((gen_random_uuid()), 'v1'), (uuid_generate_v4(), 'v2')",
        )
        .await
        .unwrap();
    let shown = "SELECT id::text || ' ' || title FROM doc ORDER BY id";
    let before = text_rows(&client.simple_query(shown).await.unwrap());
    assert_eq!(before.len(), 7);
    kept_after_crash_and_snapshot(server, client, shown, &before).await;
}

/// PostgreSQL's binary `jsonb`: a version byte (1), then the text (tokio-postgres reads JSON only with a feature
/// LaneDB's tests leave off).
#[derive(Clone, Debug, PartialEq)]
struct Jsonb(String);

impl<'a> FromSql<'a> for Jsonb {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Jsonb, BoxError> {
        match raw.split_first() {
            Some((1, text)) => Ok(Jsonb(String::from_utf8(text.to_vec())?)),
            _ => Err("jsonb version byte is not 1".into()),
        }
    }

    accepts!(JSONB);
}

impl ToSql for Jsonb {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_u8(1);
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    accepts!(JSONB);
    to_sql_checked!();
}

/// Binary `json`: the text itself.
#[derive(Clone, Debug, PartialEq)]
struct Json(String);

impl<'a> FromSql<'a> for Json {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Json, BoxError> {
        Ok(Json(String::from_utf8(raw.to_vec())?))
    }

    accepts!(JSON);
}

impl ToSql for Json {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    accepts!(JSON);
    to_sql_checked!();
}

/// json and jsonb columns over the wire: typed in RowDescription and ParameterDescription (a parameter compared with
/// or contained in a jsonb is a jsonb one), binary parameters and results in PostgreSQL's forms (jsonb canonical,
/// json as written), bad JSON refused with 22P02 and a bad version byte with 22P03, and the values after a restart
/// from the log and from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_are_stored_and_sent_as_postgres_sends_them() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE doc (id INT PRIMARY KEY, body JSONB NOT NULL, raw JSON)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO doc VALUES ($1, $2, $3)")
        .await
        .unwrap();
    assert_eq!(insert.params(), [Type::INT4, Type::JSONB, Type::JSON]);
    let raw = Json(r#"{"b":  1, "a": [1,  2]}"#.into());
    client
        .execute(
            &insert,
            &[
                &1i32,
                &Jsonb(r#"{"tags":["x"],"n":1.50, "n":2.0}"#.into()),
                &raw,
            ],
        )
        .await
        .unwrap();
    client
        .execute(&insert, &[&2i32, &Jsonb("[1, {}]".into()), &None::<Json>])
        .await
        .unwrap();
    // By key, in binary.
    let row = client
        .query_one("SELECT body, raw FROM doc WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    assert_eq!(row.columns()[0].type_(), &Type::JSONB);
    assert_eq!(row.columns()[1].type_(), &Type::JSON);
    assert_eq!(
        row.get::<_, Jsonb>(0),
        Jsonb(r#"{"n": 2.0, "tags": ["x"]}"#.into())
    );
    assert_eq!(row.get::<_, Json>(1), raw);
    // Through a scan, with jsonb parameters: containment, and equality by value in another spelling.
    let contains = client
        .prepare("SELECT id, body -> 'tags' FROM doc WHERE body @> $1 ORDER BY id")
        .await
        .unwrap();
    assert_eq!(contains.params(), [Type::JSONB]);
    let rows = client
        .query(&contains, &[&Jsonb(r#"{"tags": ["x"]}"#.into())])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, Jsonb>(1), Jsonb(r#"["x"]"#.into()));
    let equal = client
        .prepare("SELECT id FROM doc WHERE body = $1")
        .await
        .unwrap();
    assert_eq!(equal.params(), [Type::JSONB]);
    let row = client
        .query_one(&equal, &[&Jsonb(r#"{ "tags" : ["x"], "n": 2 }"#.into())])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    let row = client
        .query_one(
            "SELECT body ->> 'n', jsonb_array_length(body) FROM doc WHERE id = $1",
            &[&2i32],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, i32>(1), 2);
    // A jsonb scalar cast to a number is that number, described and sent as one; a whole row is an object.
    let row = client
        .query_one(
            "SELECT (body -> 'n')::int, (body -> 'n')::numeric, row_to_json(d), to_jsonb(d) FROM doc d \
             WHERE id = $1",
            &[&1i32],
        )
        .await
        .unwrap();
    assert_eq!(row.columns()[0].type_(), &Type::INT4);
    assert_eq!(row.columns()[1].type_(), &Type::NUMERIC);
    assert_eq!(row.columns()[2].type_(), &Type::JSON);
    assert_eq!(row.columns()[3].type_(), &Type::JSONB);
    assert_eq!(row.get::<_, i32>(0), 2);
    assert_eq!(
        row.get::<_, Json>(2),
        Json(r#"{"id":1,"body":{"n": 2.0, "tags": ["x"]},"raw":{"b":  1, "a": [1,  2]}}"#.into())
    );
    assert_eq!(
        row.get::<_, Jsonb>(3),
        Jsonb(
            r#"{"id": 1, "raw": {"a": [1, 2], "b": 1}, "body": {"n": 2.0, "tags": ["x"]}}"#.into()
        )
    );
    let e = client
        .query_one("SELECT (body -> 'tags')::int FROM doc WHERE id = 1", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22023");
    // Bad input: text that is no JSON, binary jsonb of another version.
    let e = client
        .execute(&insert, &[&3i32, &Jsonb("{\"a\": }".into()), &None::<Json>])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22P02");
    let e = client
        .execute(&insert, &[&3i32, &Jsonb("{}".into()), &Json("[1,".into())])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22P02");
    // COPY of JSON: a good line, then a bad one, which fails the COPY with its line and PostgreSQL's DETAIL.
    {
        use futures::SinkExt;
        let sink = client
            .copy_in("COPY doc (id, body, raw) FROM STDIN")
            .await
            .unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(
            b"7\t{\"b\": [1, 2.0]}\t\\N\n8\t{\"a\":\t\\N\n",
        ))
        .await
        .unwrap();
        let e = sink.close().await.unwrap_err();
        let db = e.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "22P02");
        assert!(db.message().contains("line 2"), "{}", db.message());
        assert_eq!(db.detail(), Some("The input string ended unexpectedly."));
    }
    // Nesting past the limit is refused, as a parameter and as a literal, and the server goes on.
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let e = client
        .execute(&insert, &[&3i32, &Jsonb(deep.clone()), &None::<Json>])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "54001");
    let e = client
        .batch_execute(&format!("SELECT '{deep}'::json"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "54001");
    let shown = "SELECT id::text || ' ' || body::text || ' ' || coalesce(raw::text, '-') FROM doc ORDER BY id";
    let before = text_rows(&client.simple_query(shown).await.unwrap());
    assert_eq!(
        before,
        [
            [r#"1 {"n": 2.0, "tags": ["x"]} {"b":  1, "a": [1,  2]}"#],
            [r#"2 [1, {}] -"#]
        ]
    );
    kept_after_crash_and_snapshot(server, client, shown, &before).await;
}

/// Array columns over the wire: typed as arrays in ParameterDescription and RowDescription, binary arrays both ways
/// (NULL elements and NULL arrays included) by key and through a scan, and the arrays after a restart from the log
/// and from a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_columns_are_stored_and_sent_as_postgres_sends_them() {
    let server = Server::start(&[]);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE post (id INT PRIMARY KEY, tags TEXT[], scores INT[] NOT NULL DEFAULT '{}', \
             prices NUMERIC(6,2)[])",
        )
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO post (id, tags, scores) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    assert_eq!(
        insert.params(),
        [Type::INT4, Type::TEXT_ARRAY, Type::INT4_ARRAY]
    );
    let tags = vec![Some("a".to_string()), None, Some("b c".to_string())];
    client
        .execute(&insert, &[&1i32, &tags, &vec![3i32, 1, 2]])
        .await
        .unwrap();
    client
        .execute(&insert, &[&2i32, &None::<Vec<String>>, &Vec::<i32>::new()])
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO post VALUES (3, ARRAY['x'], '{9}', '{1.5,NULL}')")
        .await
        .unwrap();
    // By key, in binary.
    let row = client
        .query_one("SELECT tags, scores FROM post WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    assert_eq!(row.columns()[0].type_(), &Type::TEXT_ARRAY);
    assert_eq!(row.columns()[1].type_(), &Type::INT4_ARRAY);
    assert_eq!(row.get::<_, Vec<Option<String>>>(0), tags);
    assert_eq!(row.get::<_, Vec<i32>>(1), [3, 1, 2]);
    // Through a scan, with an array parameter.
    let rows = client
        .query(
            "SELECT id, tags FROM post WHERE scores && $1 ORDER BY id",
            &[&vec![9i32, 2]],
        )
        .await
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 3]);
    // A whole array set by key, then one element appended through DataFusion.
    client
        .execute(
            "UPDATE post SET tags = $1 WHERE id = $2",
            &[&vec!["new".to_string()], &2i32],
        )
        .await
        .unwrap();
    // A parameter only an array function types: the log's replay plans it with its value's type.
    let append = client
        .prepare_typed(
            "UPDATE post SET scores = array_append(scores, $1) WHERE id = $2",
            &[Type::INT4, Type::INT4],
        )
        .await
        .unwrap();
    client.execute(&append, &[&4i32, &1i32]).await.unwrap();
    // `||` of arrays appends, by key too.
    client
        .batch_execute("UPDATE post SET tags = tags || ARRAY['t'] WHERE id = 3")
        .await
        .unwrap();
    let e = client
        .execute(&insert, &[&4i32, &None::<Vec<String>>, &None::<Vec<i32>>])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23502");
    // An array past the size of a value is refused, as text is.
    let e = client
        .batch_execute(
            "INSERT INTO post (id, tags) VALUES (5, ARRAY[repeat('x', 9000000), repeat('y', 9000000)])",
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "54000");
    let shown =
        "SELECT id::text || ' ' || coalesce(tags::text, '-') || ' ' || scores::text || ' ' || \
                 coalesce(prices::text, '-') FROM post ORDER BY id";
    let before = text_rows(&client.simple_query(shown).await.unwrap());
    assert_eq!(
        before,
        [
            [r#"1 {a,NULL,"b c"} {3,1,2,4} -"#],
            ["2 {new} {} -"],
            ["3 {x,t} {9} {1.50,NULL}"]
        ]
    );
    kept_after_crash_and_snapshot(server, client, shown, &before).await;
}
