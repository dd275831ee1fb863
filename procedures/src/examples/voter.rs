//! Voter, as VoltDB ships it: a TV talent show's phone voting.
//!
//! ```text
//!   contestants(contestant_number INTEGER PK, contestant_name VARCHAR(50))     replicated
//!   area_code_state(area_code SMALLINT PK, state VARCHAR(2))                  replicated
//!   votes(phone_number BIGINT, state VARCHAR(2), contestant_number INTEGER)   partitioned on phone_number
//!   v_votes_by_phone_number(phone_number, num_votes)                          view, partitioned like votes
//!   v_votes_by_contestant_number_state(contestant_number, state, num_votes)   view, partial per lane
//! ```
//!
//! - `Initialize(max_contestants, names_csv)`, multi-partition: fills the contestants (the first `max_contestants`
//!   names of the list) and the area codes; does nothing if the contestants are already there. Returns the number of
//!   contestants.
//! - `Vote(phone_number, contestant_number, max_votes_per_phone)`, single-partition on the phone number: 1 if the
//!   contestant does not exist, 2 if the phone has used its votes, otherwise records the vote with the state of the
//!   phone's area code (`phone_number / 10^7`, `XX` when unknown) and returns 0.
//! - `Results()`, multi-partition: each contestant's name, number and total votes, most votes first.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use lanedb_engine::{DataType, Output, Result, Value};

use crate::{Context, Expect, Module, Partitioning, Procedure};

/// (area code, state) pairs of the United States, as VoltDB's Voter loads them.
const AREA_CODES: &[(i16, &str)] = &[
    (201, "NJ"),
    (202, "DC"),
    (203, "CT"),
    (205, "AL"),
    (206, "WA"),
    (207, "ME"),
    (208, "ID"),
    (209, "CA"),
    (210, "TX"),
    (212, "NY"),
    (213, "CA"),
    (214, "TX"),
    (215, "PA"),
    (216, "OH"),
    (217, "IL"),
    (218, "MN"),
    (219, "IN"),
    (224, "IL"),
    (225, "LA"),
    (228, "MS"),
    (229, "GA"),
    (231, "MI"),
    (234, "OH"),
    (239, "FL"),
    (240, "MD"),
    (248, "MI"),
    (251, "AL"),
    (252, "NC"),
    (253, "WA"),
    (254, "TX"),
    (256, "AL"),
    (260, "IN"),
    (262, "WI"),
    (267, "PA"),
    (269, "MI"),
    (270, "KY"),
    (276, "VA"),
    (281, "TX"),
    (301, "MD"),
    (302, "DE"),
    (303, "CO"),
    (304, "WV"),
    (305, "FL"),
    (307, "WY"),
    (308, "NE"),
    (309, "IL"),
    (310, "CA"),
    (312, "IL"),
    (313, "MI"),
    (314, "MO"),
    (315, "NY"),
    (316, "KS"),
    (317, "IN"),
    (318, "LA"),
    (319, "IA"),
    (320, "MN"),
    (321, "FL"),
    (323, "CA"),
    (325, "TX"),
    (330, "OH"),
    (334, "AL"),
    (336, "NC"),
    (337, "LA"),
    (339, "MA"),
    (347, "NY"),
    (351, "MA"),
    (352, "FL"),
    (360, "WA"),
    (361, "TX"),
    (386, "FL"),
    (401, "RI"),
    (402, "NE"),
    (404, "GA"),
    (405, "OK"),
    (406, "MT"),
    (407, "FL"),
    (408, "CA"),
    (409, "TX"),
    (410, "MD"),
    (412, "PA"),
    (413, "MA"),
    (414, "WI"),
    (415, "CA"),
    (417, "MO"),
    (419, "OH"),
    (423, "TN"),
    (425, "WA"),
    (430, "TX"),
    (432, "TX"),
    (434, "VA"),
    (435, "UT"),
    (440, "OH"),
    (443, "MD"),
    (469, "TX"),
    (478, "GA"),
    (479, "AR"),
    (480, "AZ"),
    (484, "PA"),
    (501, "AR"),
    (502, "KY"),
    (503, "OR"),
    (504, "LA"),
    (505, "NM"),
    (507, "MN"),
    (508, "MA"),
    (509, "WA"),
    (510, "CA"),
    (512, "TX"),
    (513, "OH"),
    (515, "IA"),
    (516, "NY"),
    (517, "MI"),
    (518, "NY"),
    (520, "AZ"),
    (530, "CA"),
    (540, "VA"),
    (541, "OR"),
    (551, "NJ"),
    (559, "CA"),
    (561, "FL"),
    (562, "CA"),
    (563, "IA"),
    (567, "OH"),
    (570, "PA"),
    (571, "VA"),
    (573, "MO"),
    (574, "IN"),
    (580, "OK"),
    (585, "NY"),
    (586, "MI"),
    (601, "MS"),
    (602, "AZ"),
    (603, "NH"),
    (605, "SD"),
    (606, "KY"),
    (607, "NY"),
    (608, "WI"),
    (609, "NJ"),
    (610, "PA"),
    (612, "MN"),
    (614, "OH"),
    (615, "TN"),
    (616, "MI"),
    (617, "MA"),
    (618, "IL"),
    (619, "CA"),
    (620, "KS"),
    (623, "AZ"),
    (626, "CA"),
    (630, "IL"),
    (631, "NY"),
    (636, "MO"),
    (641, "IA"),
    (646, "NY"),
    (650, "CA"),
    (651, "MN"),
    (660, "MO"),
    (661, "CA"),
    (662, "MS"),
    (678, "GA"),
    (682, "TX"),
    (701, "ND"),
    (702, "NV"),
    (703, "VA"),
    (704, "NC"),
    (706, "GA"),
    (707, "CA"),
    (708, "IL"),
    (712, "IA"),
    (713, "TX"),
    (714, "CA"),
    (715, "WI"),
    (716, "NY"),
    (717, "PA"),
    (718, "NY"),
    (719, "CO"),
    (720, "CO"),
    (724, "PA"),
    (727, "FL"),
    (731, "TN"),
    (732, "NJ"),
    (734, "MI"),
    (740, "OH"),
    (754, "FL"),
    (757, "VA"),
    (760, "CA"),
    (763, "MN"),
    (765, "IN"),
    (770, "GA"),
    (772, "FL"),
    (773, "IL"),
    (774, "MA"),
    (775, "NV"),
    (781, "MA"),
    (785, "KS"),
    (786, "FL"),
    (801, "UT"),
    (802, "VT"),
    (803, "SC"),
    (804, "VA"),
    (805, "CA"),
    (806, "TX"),
    (808, "HI"),
    (810, "MI"),
    (812, "IN"),
    (813, "FL"),
    (814, "PA"),
    (815, "IL"),
    (816, "MO"),
    (817, "TX"),
    (818, "CA"),
    (828, "NC"),
    (830, "TX"),
    (831, "CA"),
    (832, "TX"),
    (843, "SC"),
    (845, "NY"),
    (847, "IL"),
    (848, "NJ"),
    (850, "FL"),
    (856, "NJ"),
    (857, "MA"),
    (858, "CA"),
    (859, "KY"),
    (860, "CT"),
    (862, "NJ"),
    (863, "FL"),
    (864, "SC"),
    (865, "TN"),
    (870, "AR"),
    (872, "IL"),
    (878, "PA"),
    (901, "TN"),
    (903, "TX"),
    (904, "FL"),
    (906, "MI"),
    (907, "AK"),
    (908, "NJ"),
    (909, "CA"),
    (910, "NC"),
    (912, "GA"),
    (913, "KS"),
    (914, "NY"),
    (915, "TX"),
    (916, "CA"),
    (917, "NY"),
    (918, "OK"),
    (919, "NC"),
    (920, "WI"),
    (925, "CA"),
    (928, "AZ"),
    (931, "TN"),
    (936, "TX"),
    (937, "OH"),
    (940, "TX"),
    (941, "FL"),
    (947, "MI"),
    (949, "CA"),
    (951, "CA"),
    (952, "MN"),
    (954, "FL"),
    (956, "TX"),
    (970, "CO"),
    (971, "OR"),
    (972, "TX"),
    (973, "NJ"),
    (978, "MA"),
    (979, "TX"),
    (980, "NC"),
    (985, "LA"),
    (989, "MI"),
];

pub fn voter() -> Module {
    Module {
        name: "voter".into(),
        ddl: vec![
            "CREATE TABLE contestants (contestant_number INTEGER PRIMARY KEY, contestant_name VARCHAR(50) NOT NULL)"
                .into(),
            "CREATE TABLE area_code_state (area_code SMALLINT PRIMARY KEY, state VARCHAR(2) NOT NULL)".into(),
            "CREATE TABLE votes (phone_number BIGINT NOT NULL, state VARCHAR(2) NOT NULL, contestant_number INTEGER NOT NULL)"
                .into(),
            "PARTITION TABLE votes ON COLUMN phone_number".into(),
            "CREATE VIEW v_votes_by_phone_number (phone_number, num_votes) AS \
             SELECT phone_number, COUNT(*) FROM votes GROUP BY phone_number"
                .into(),
            "CREATE VIEW v_votes_by_contestant_number_state (contestant_number, state, num_votes) AS \
             SELECT contestant_number, state, COUNT(*) FROM votes GROUP BY contestant_number, state"
                .into(),
        ],
        procedures: vec![Arc::new(Initialize), Arc::new(Vote), Arc::new(Results)],
    }
}

/// A one-row, one-column BIGINT result.
fn single(name: &str, value: i64) -> Output {
    single_with(single_schema(name), value)
}

/// `Vote`'s answer (one of `VOTE_ACCEPTED`, `VOTE_INVALID_CONTESTANT`, `VOTE_LIMIT_REACHED`). The three are built
/// once per thread and cloned: a vote is a couple of microseconds, and building a batch (or sharing one `Arc`
/// between the threads calling) is a noticeable part of that.
fn vote_result(value: i64) -> Output {
    thread_local! {
        static RESULTS: Vec<Output> = {
            let schema = single_schema("result");
            (0..=VOTE_LIMIT_REACHED).map(|v| single_with(schema.clone(), v)).collect()
        };
    }
    RESULTS.with(|results| results[value as usize].clone())
}

fn single_with(schema: SchemaRef, value: i64) -> Output {
    let column: ArrayRef = Arc::new(Int64Array::from(vec![value]));
    let batch = RecordBatch::try_new(schema.clone(), vec![column]).expect("one column of one row");
    Output::rows(schema, vec![batch])
}

fn single_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(name, ArrowType::Int64, false)]))
}

fn count_of(output: &Output) -> i64 {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    output
        .batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0))
}

pub struct Initialize;

impl Procedure for Initialize {
    fn name(&self) -> &str {
        "Initialize"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Multi
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "SELECT count(*) FROM contestants".into(),
            "INSERT INTO contestants VALUES ($1, $2)".into(),
            "INSERT INTO area_code_state VALUES ($1, $2)".into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::Integer, DataType::Text]
    }
    fn result_schema(&self) -> Option<SchemaRef> {
        Some(single_schema("contestants"))
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        ctx.queue(0, vec![]);
        let existing = count_of(&ctx.execute()?[0]);
        if existing > 0 {
            return Ok(vec![single("contestants", existing)]);
        }
        let max = params[0].as_i64().unwrap_or(0).max(0) as usize;
        let names = match &params[1] {
            Value::Text(s) => s.clone(),
            _ => String::new(),
        };
        let names: Vec<&str> = names
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .take(max)
            .collect();
        for (i, name) in names.iter().enumerate() {
            ctx.queue_expect(
                1,
                vec![Value::Integer(i as i32 + 1), Value::Text(name.to_string())],
                Expect::OneRow,
            );
        }
        for (code, state) in AREA_CODES {
            ctx.queue(
                2,
                vec![Value::SmallInt(*code), Value::Text(state.to_string())],
            );
        }
        ctx.execute()?;
        Ok(vec![single("contestants", names.len() as i64)])
    }
}

/// Vote's answers.
pub const VOTE_ACCEPTED: i64 = 0;
pub const VOTE_INVALID_CONTESTANT: i64 = 1;
pub const VOTE_LIMIT_REACHED: i64 = 2;

pub struct Vote;

impl Procedure for Vote {
    fn name(&self) -> &str {
        "Vote"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::single("votes", "phone_number", 0)
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "SELECT contestant_number FROM contestants WHERE contestant_number = $1".into(),
            "SELECT num_votes FROM v_votes_by_phone_number WHERE phone_number = $1".into(),
            "SELECT state FROM area_code_state WHERE area_code = $1".into(),
            "INSERT INTO votes VALUES ($1, $2, $3)".into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![DataType::BigInt, DataType::Integer, DataType::BigInt]
    }
    fn result_schema(&self) -> Option<SchemaRef> {
        Some(single_schema("result"))
    }
    fn run(&self, ctx: &mut Context<'_>, params: &[Value]) -> Result<Vec<Output>> {
        let (phone, contestant, max_votes) =
            (&params[0], &params[1], params[2].as_i64().unwrap_or(0));
        let area = phone
            .as_i64()
            .map(|p| p / 10_000_000)
            .and_then(|a| i16::try_from(a).ok());
        ctx.queue_expect(0, [contestant.clone()], Expect::ZeroOrOneRow);
        ctx.queue_expect(1, [phone.clone()], Expect::ZeroOrOneRow);
        if let Some(area) = area {
            ctx.queue_expect(2, [Value::SmallInt(area)], Expect::ZeroOrOneRow);
        }
        // Values, not Arrow batches: Vote reads three values, and a batch per point read cost a quarter of a call.
        let mut found = ctx.execute_values()?;
        if found[0].is_empty() {
            return Ok(vec![vote_result(VOTE_INVALID_CONTESTANT)]);
        }
        if found[1].first_i64().unwrap_or(0) >= max_votes {
            return Ok(vec![vote_result(VOTE_LIMIT_REACHED)]);
        }
        let state = found
            .get_mut(2)
            .and_then(|rows| rows.take(0, 0))
            .unwrap_or_else(|| Value::Text("XX".to_string()));
        ctx.queue_expect(
            3,
            [phone.clone(), state, contestant.clone()],
            Expect::OneRow,
        );
        ctx.execute_values()?;
        Ok(vec![vote_result(VOTE_ACCEPTED)])
    }
}

pub struct Results;

impl Procedure for Results {
    fn name(&self) -> &str {
        "Results"
    }
    fn partitioning(&self) -> Partitioning {
        Partitioning::Multi
    }
    fn statements(&self) -> Vec<String> {
        vec![
            "SELECT a.contestant_name, a.contestant_number, CAST(SUM(b.num_votes) AS BIGINT) AS total_votes \
              FROM v_votes_by_contestant_number_state b, contestants a \
              WHERE a.contestant_number = b.contestant_number \
              GROUP BY a.contestant_name, a.contestant_number \
              ORDER BY total_votes DESC, a.contestant_number ASC, a.contestant_name ASC"
                .into(),
        ]
    }
    fn parameters(&self) -> Vec<DataType> {
        vec![]
    }
    fn run(&self, ctx: &mut Context<'_>, _params: &[Value]) -> Result<Vec<Output>> {
        ctx.queue(0, vec![]);
        ctx.execute()
    }
}
