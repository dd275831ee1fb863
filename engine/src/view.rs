//! Materialized views, maintained by the lane in the same transaction as the write.
//!
//! A view is `SELECT g1, .., COUNT(*), COUNT(x), SUM(x), MIN(x), MAX(x) FROM t [WHERE ..] GROUP BY g1, ..` over one
//! table. Its rows live in a table of their own (one row per group, found through a hash index on the group columns)
//! on each lane, next to the source rows they summarise:
//!
//! ```text
//!   source row inserted  -> its group's row: COUNT + 1, SUM + x, MIN/MAX widened (created if missing)
//!   source row deleted   -> COUNT - 1 (the group's row removed at 0); SUM/MIN/MAX recomputed from the group's rows
//!                           on the lane when the deleted value took part
//!   source row updated   -> deleted as it was, inserted as it is
//! ```
//!
//! Every change to a view row goes through the lane's own insert/update/delete, so it is in the undo log and a
//! rollback puts the view back with the source. When the source is partitioned on a column the view groups by, each
//! group lives on one lane and the view is partitioned like its table; otherwise every lane holds partial rows for
//! the groups it has seen (`partial`), and queries add them up (the SQL layer plans that).

use std::fmt;
use std::sync::Arc;

use crate::catalog::TableId;
use crate::error::{Error, Result};
use crate::types::DataType;
use crate::value::{compare_non_null, Value};

/// An aggregate of a view, over a source column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    CountStar,
    Count(usize),
    Sum(usize),
    Min(usize),
    Max(usize),
}

/// A column of a view: a group column of the source, or an aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewColumn {
    Group(usize),
    Aggregate(Aggregate),
}

/// Whether a source row (all its columns) belongs to a view.
pub type RowPredicate = dyn Fn(&[Value]) -> Result<bool> + Send + Sync;

/// The view's WHERE, compiled by the SQL layer.
#[derive(Clone)]
pub struct RowFilter(pub Arc<RowPredicate>);

impl fmt::Debug for RowFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RowFilter")
    }
}

impl PartialEq for RowFilter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ViewDef {
    /// The table holding the view's rows (same name as the view).
    pub table: TableId,
    pub source: TableId,
    /// One per view column, in order.
    pub columns: Vec<ViewColumn>,
    /// The view table's column types, in the same order (kept here so maintenance does not collect them per row).
    pub column_types: Vec<DataType>,
    pub filter: Option<RowFilter>,
    /// Lanes hold partial rows that queries must add up (the source is partitioned on a column not grouped by).
    pub partial: bool,
    /// Position of the group-key hash index in the view table.
    pub group_index: usize,
    /// The SQL that defined it, for `\d`.
    pub sql: String,
}

/// An iterator that knows how many items it has left (`make_key` takes an exact-size iterator).
struct Counted<I> {
    inner: I,
    len: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next();
        self.len -= usize::from(item.is_some());
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

impl ViewDef {
    /// View column positions that hold group values, in order.
    pub fn group_positions(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, ViewColumn::Group(_)))
            .map(|(i, _)| i)
            .collect()
    }

    /// The group key of a source row.
    pub fn group_of(&self, source_row: &[Value]) -> Vec<Value> {
        self.group_values(source_row).cloned().collect()
    }

    /// The group key's values in a source row, in place.
    pub fn group_values<'a>(
        &'a self,
        source_row: &'a [Value],
    ) -> impl ExactSizeIterator<Item = &'a Value> + 'a {
        let groups = self.columns.iter().filter_map(|c| match c {
            ViewColumn::Group(s) => Some(*s),
            ViewColumn::Aggregate(_) => None,
        });
        // Group columns are few: counting them is cheaper than keeping a list of them.
        Counted {
            len: groups.clone().count(),
            inner: groups.map(move |s| &source_row[s]),
        }
    }

    pub fn includes(&self, source_row: &[Value]) -> Result<bool> {
        match &self.filter {
            Some(f) => (f.0)(source_row),
            None => Ok(true),
        }
    }

    /// The view row for a group's first source row.
    pub fn first_row(&self, source_row: &[Value], types: &[DataType]) -> Result<Vec<Value>> {
        self.columns
            .iter()
            .zip(types)
            .map(|(c, ty)| match c {
                ViewColumn::Group(s) => Ok(source_row[*s].clone()),
                ViewColumn::Aggregate(Aggregate::CountStar) => Ok(Value::BigInt(1)),
                ViewColumn::Aggregate(Aggregate::Count(s)) => {
                    Ok(Value::BigInt(!source_row[*s].is_null() as i64))
                }
                ViewColumn::Aggregate(
                    Aggregate::Sum(s) | Aggregate::Min(s) | Aggregate::Max(s),
                ) => source_row[*s].cast_to(ty),
            })
            .collect()
    }

    /// Changes to a view row for one more source row; `current(i)` reads the view row's column `i` (only the
    /// aggregate columns are read).
    pub fn add(
        &self,
        current: impl Fn(usize) -> Value,
        source_row: &[Value],
        types: &[DataType],
    ) -> Result<Vec<(usize, Value)>> {
        let mut changes = Vec::new();
        for (i, c) in self.columns.iter().enumerate() {
            let ViewColumn::Aggregate(a) = c else {
                continue;
            };
            let old = current(i);
            let new = match *a {
                Aggregate::CountStar => Some(plus(&old, 1)?),
                Aggregate::Count(s) if !source_row[s].is_null() => Some(plus(&old, 1)?),
                Aggregate::Sum(s) if !source_row[s].is_null() => {
                    let x = source_row[s].cast_to(&types[i])?;
                    Some(if old.is_null() { x } else { sum(&old, &x)? })
                }
                Aggregate::Min(s) | Aggregate::Max(s) if !source_row[s].is_null() => {
                    let x = source_row[s].cast_to(&types[i])?;
                    let replace = old.is_null()
                        || match compare_non_null(&x, &old) {
                            Some(o) => {
                                (o.is_lt() && matches!(a, Aggregate::Min(_)))
                                    || (o.is_gt() && matches!(a, Aggregate::Max(_)))
                            }
                            None => false,
                        };
                    replace.then_some(x)
                }
                _ => None,
            };
            if let Some(v) = new {
                changes.push((i, v));
            }
        }
        Ok(changes)
    }

    /// Whether removing `source_row` needs SUM/MIN/MAX recomputed from the group's remaining rows.
    pub fn needs_recompute(&self, source_row: &[Value]) -> bool {
        self.columns.iter().any(|c| {
            matches!(c, ViewColumn::Aggregate(Aggregate::Sum(s) | Aggregate::Min(s) | Aggregate::Max(s))
                if !source_row[*s].is_null())
        })
    }
}

fn plus(v: &Value, n: i64) -> Result<Value> {
    let current = v.as_i64().unwrap_or(0);
    current
        .checked_add(n)
        .map(Value::BigInt)
        .ok_or_else(|| Error::out_of_range("bigint out of range"))
}

/// `a + b` for a view's SUM column (BIGINT, DOUBLE PRECISION or NUMERIC), with overflow checks.
pub fn sum(a: &Value, b: &Value) -> Result<Value> {
    Ok(match (a, b) {
        (Value::BigInt(x), Value::BigInt(y)) => Value::BigInt(
            x.checked_add(*y)
                .ok_or_else(|| Error::out_of_range("bigint out of range"))?,
        ),
        (Value::Double(x), Value::Double(y)) => Value::Double(x + y),
        (Value::Decimal(x, s), Value::Decimal(y, t)) if s == t => Value::Decimal(
            x.checked_add(*y)
                .ok_or_else(|| Error::out_of_range("numeric field overflow"))?,
            *s,
        ),
        _ => return Err(Error::internal(format!("view SUM over {a:?} and {b:?}"))),
    })
}

/// Aggregates recomputed from scratch over the rows of one group.
pub fn recompute(
    view: &ViewDef,
    rows: &[Vec<Value>],
    types: &[DataType],
) -> Result<Vec<(usize, Value)>> {
    let mut changes = Vec::new();
    for (i, c) in view.columns.iter().enumerate() {
        let ViewColumn::Aggregate(a) = *c else {
            continue;
        };
        let value = match a {
            Aggregate::CountStar => Value::BigInt(rows.len() as i64),
            Aggregate::Count(s) => {
                Value::BigInt(rows.iter().filter(|r| !r[s].is_null()).count() as i64)
            }
            Aggregate::Sum(s) => {
                let mut total = Value::Null;
                for r in rows.iter().filter(|r| !r[s].is_null()) {
                    let x = r[s].cast_to(&types[i])?;
                    total = if total.is_null() { x } else { sum(&total, &x)? };
                }
                total
            }
            Aggregate::Min(s) | Aggregate::Max(s) => {
                let mut best = Value::Null;
                for r in rows.iter().filter(|r| !r[s].is_null()) {
                    let better = best.is_null()
                        || compare_non_null(&r[s], &best).is_some_and(|o| {
                            (o.is_lt() && matches!(a, Aggregate::Min(_)))
                                || (o.is_gt() && matches!(a, Aggregate::Max(_)))
                        });
                    if better {
                        best = r[s].cast_to(&types[i])?;
                    }
                }
                best
            }
        };
        changes.push((i, value));
    }
    Ok(changes)
}
