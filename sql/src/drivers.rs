//! Catalog queries of drivers that LaneDB answers through an equivalent query it can plan.
//!
//! asyncpg looks up every type it has no codec for (arrays among them) with one recursive query over `pg_type`,
//! `pg_range` and `pg_attribute` whose correlated subqueries (a recursive CTE inside a scalar subquery, for the
//! base type of a domain) DataFusion cannot plan. LaneDB has no domains, composite, range or enum types, and its
//! arrays have one dimension, so the lookup reduces to the types asked for and the element types of those that
//! are arrays, which a plain join gives. The columns keep asyncpg's names and order; the parameter, the OIDs asked
//! for, is described as `oid[]`, whose codec asyncpg has built in (`int4[]` it would have to look up with this
//! same query).

/// A driver's query, as LaneDB runs it: the text to plan and the OIDs its parameters are described with.
pub struct Substitute {
    pub sql: &'static str,
    pub param_oids: &'static [u32],
}

/// `oid[]`.
const OID_ARRAY: u32 = 1028;

const ASYNCPG_TYPE_LOOKUP: &str = "\
SELECT DISTINCT oid, ns, name, kind, basetype, elemtype, elemdelim, range_subtype, attrtypoids, attrnames, depth, \
       basetype_name, elemtype_name, range_subtype_name \
FROM (SELECT t.oid AS oid, ns.nspname AS ns, t.typname AS name, t.typtype AS kind, \
             CAST(NULL AS integer) AS basetype, t.typelem AS elemtype, e.typdelim AS elemdelim, \
             CAST(NULL AS integer) AS range_subtype, CAST(NULL AS text[]) AS attrtypoids, \
             CAST(NULL AS text[]) AS attrnames, wanted.depth AS depth, CAST(NULL AS text) AS basetype_name, \
             CASE WHEN t.typelem = 0 THEN '-' ELSE format_type(t.typelem, NULL) END AS elemtype_name, \
             CAST(NULL AS text) AS range_subtype_name \
      FROM (SELECT oid AS type_oid, 0 AS depth FROM pg_catalog.pg_type WHERE oid = ANY($1) \
            UNION ALL \
            SELECT typelem, 1 FROM pg_catalog.pg_type WHERE oid = ANY($1) AND typelem <> 0) AS wanted \
      JOIN pg_catalog.pg_type t ON t.oid = wanted.type_oid \
      JOIN pg_catalog.pg_namespace ns ON ns.oid = t.typnamespace \
      LEFT JOIN pg_catalog.pg_type e ON t.typelem <> 0 AND e.oid = t.typelem) AS typeinfo_tree \
ORDER BY depth DESC";

/// asyncpg turns JIT compilation off around its type lookup, reading the setting and setting it in one query; LaneDB
/// compiles nothing, so `jit` is `off` and stays so: the setting is read and the answer given.
const ASYNCPG_JIT_OFF: &str =
    "SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new";
const JIT_STAYS_OFF: &str = "SELECT current_setting('jit') AS cur, CAST('off' AS text) AS new";

/// The query LaneDB runs for `sql`, if `sql` is a driver's query it answers another way.
pub fn substitute(sql: &str) -> Option<Substitute> {
    if sql.len() < 200 && sql.split_whitespace().collect::<Vec<_>>().join(" ") == ASYNCPG_JIT_OFF {
        return Some(Substitute {
            sql: JIT_STAYS_OFF,
            param_oids: &[],
        });
    }
    let start = sql.trim_start();
    let asyncpg_lookup = start.starts_with("WITH RECURSIVE typeinfo_tree(")
        && sql.contains("range_subtype")
        && sql.contains("attrtypoids")
        && sql.contains("$1::oid[]");
    asyncpg_lookup.then_some(Substitute {
        sql: ASYNCPG_TYPE_LOOKUP,
        param_oids: &[OID_ARRAY],
    })
}

/// The OIDs the parameters of a statement planned from `sql` are described with, where its own types would not do.
pub fn param_oids(sql: &str) -> &'static [u32] {
    if sql.trim() == ASYNCPG_TYPE_LOOKUP {
        &[OID_ARRAY]
    } else {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asyncpg_type_lookup_is_substituted() {
        let lookup = "WITH RECURSIVE typeinfo_tree(\n oid, ns, name, kind, basetype, elemtype, elemdelim,\n \
                      range_subtype, attrtypoids, attrnames, depth) AS (SELECT ... WHERE ti.oid = any($1::oid[]))";
        let s = substitute(lookup).expect("asyncpg's lookup");
        assert_eq!(s.param_oids, &[OID_ARRAY]);
        assert_eq!(param_oids(s.sql), &[OID_ARRAY]);
        assert!(param_oids("SELECT 1").is_empty());
        assert!(substitute("SELECT 1").is_none());
        let jit = "\n    SELECT\n        current_setting('jit') AS cur,\n        set_config('jit', 'off', false) AS new\n";
        assert_eq!(substitute(jit).map(|s| s.sql), Some(JIT_STAYS_OFF));
        assert!(substitute(
            "WITH RECURSIVE typeinfo_tree(x) AS (SELECT 1) SELECT * FROM typeinfo_tree"
        )
        .is_none());
    }
}
