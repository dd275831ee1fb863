// pgJDBC against a running LaneDB server (run by tests/clients.rs).
//
// Usage: java -cp /usr/share/java/postgresql.jar JdbcClient.java PORT [HOST]     (HOST defaults to 127.0.0.1)
//
// Connects as user `tester` to database `testdb` with autocommit on (the JDBC default), then checks PreparedStatement
// parameters both ways, batches, server-side prepared statements, transactions with autocommit off (read-only, and
// writes committed and rolled back), the SQLSTATEs of a duplicate key and of a syntax error, a procedure, and the
// metadata tools and ORMs read (DatabaseMetaData, ResultSetMetaData). Every check runs even after an earlier one
// failed; the program prints each failure and exits 1 if there was any.

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.Date;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

public class JdbcClient {
    /** One row of `items`; price and added may be null. */
    record Item(long id, String name, BigDecimal price, LocalDate added) {}

    static final List<Item> ROWS = List.of(
            new Item(1, "apple", new BigDecimal("1.25"), LocalDate.of(2024, 1, 15)),
            new Item(2, "banana", new BigDecimal("0.99"), LocalDate.of(2023, 12, 31)),
            new Item(3, "cherry", new BigDecimal("12345678.90"), LocalDate.of(2000, 2, 29)),
            new Item(4, "damson", null, null),
            new Item(5, "elder", new BigDecimal("-3.50"), LocalDate.of(1999, 1, 1)));

    interface Check {
        void run() throws Exception;
    }

    static final List<String> failures = new ArrayList<>();

    static void check(String name, Check check) {
        try {
            check.run();
            System.out.println("ok   " + name);
        } catch (SQLException e) {
            fail(name, e + " [SQLSTATE " + e.getSQLState() + "]");
        } catch (Exception | AssertionError e) {
            fail(name, e.toString());
        }
    }

    static void fail(String name, String detail) {
        failures.add(name + ": " + detail);
        System.out.println("FAIL " + name + ": " + detail);
    }

    static void expect(Object actual, Object expected, String what) {
        if (!Objects.equals(actual, expected)) {
            throw new AssertionError(what + ": expected " + show(expected) + ", got " + show(actual));
        }
    }

    static String show(Object value) {
        return value == null ? "null" : value + " (" + value.getClass().getSimpleName() + ")";
    }

    /** Runs `body`, which must throw an SQLException with `sqlState`; returns it. */
    static SQLException expectError(Check body, String sqlState, String what) throws Exception {
        try {
            body.run();
        } catch (SQLException e) {
            if (!sqlState.equals(e.getSQLState())) {
                throw new AssertionError(what + ": expected SQLSTATE " + sqlState + ", got " + e.getSQLState() + ": " + e);
            }
            return e;
        }
        throw new AssertionError(what + ": no SQLException thrown");
    }

    /** The connection is open, in autocommit, and answers a query. */
    static void expectUsable(Connection conn, String what) throws SQLException {
        expect(conn.isClosed(), false, what + ": connection closed");
        expect(conn.isValid(5), true, what + ": isValid");
        expect(conn.getAutoCommit(), true, what + ": autocommit");
        try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
            expect(rs.next(), true, what + ": a row from SELECT 1");
            expect(rs.getInt(1), 1, what + ": SELECT 1");
        }
    }

    static void bindItem(PreparedStatement ps, Item item) throws SQLException {
        ps.setLong(1, item.id());
        ps.setString(2, item.name());
        if (item.price() == null) {
            ps.setNull(3, Types.DECIMAL);
        } else {
            ps.setBigDecimal(3, item.price());
        }
        if (item.added() == null) {
            ps.setNull(4, Types.DATE);
        } else {
            ps.setDate(4, Date.valueOf(item.added()));
        }
    }

    /** Reads the current row (id, name, price, added) with the typed getters and checks the getObject classes. */
    static Item readItem(ResultSet rs, String what) throws SQLException {
        Object id = rs.getObject(1);
        Object name = rs.getObject(2);
        Object price = rs.getObject(3);
        Object added = rs.getObject(4);
        expect(id == null ? null : id.getClass(), Long.class, what + ": class of id");
        expect(name == null ? null : name.getClass(), String.class, what + ": class of name");
        if (price != null) {
            expect(price.getClass(), BigDecimal.class, what + ": class of price");
        }
        if (added != null) {
            expect(added.getClass(), Date.class, what + ": class of added");
        }
        Date date = rs.getDate(4);
        LocalDate local = rs.getObject(4, LocalDate.class);
        expect(date == null ? null : date.toLocalDate(), local, what + ": getDate and getObject(LocalDate) agree");
        return new Item(rs.getLong(1), rs.getString(2), rs.getBigDecimal(3), local);
    }

    static final String SELECT_ONE = "SELECT id, name, price, added FROM items WHERE id = ?";
    static final String INSERT = "INSERT INTO items (id, name, price, added) VALUES (?, ?, ?, ?)";

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: java -cp postgresql.jar JdbcClient.java PORT [HOST]");
            System.exit(2);
        }
        String host = args.length == 2 ? args[1] : "127.0.0.1";
        String url = "jdbc:postgresql://" + host + ":" + args[0] + "/testdb?user=tester&connectTimeout=10";
        Class.forName("org.postgresql.Driver");
        Connection conn = DriverManager.getConnection(url);

        check("connection metadata", () -> {
            expect(conn.getAutoCommit(), true, "autocommit by default");
            expect(conn.getMetaData().getDatabaseProductName(), "PostgreSQL", "product name");
        });

        check("CREATE TABLE", () -> {
            try (Statement st = conn.createStatement()) {
                expect(st.executeUpdate(
                        "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price DECIMAL(10,2), added DATE)"),
                        0, "update count of CREATE TABLE");
            }
        });

        check("PreparedStatement INSERT", () -> {
            try (PreparedStatement ps = conn.prepareStatement(INSERT)) {
                bindItem(ps, ROWS.get(0));
                expect(ps.executeUpdate(), 1, "update count of one INSERT");
            }
        });

        check("addBatch / executeBatch INSERT", () -> {
            // pgJDBC sends the whole batch as Parse/Bind/Execute messages followed by one Sync.
            try (PreparedStatement ps = conn.prepareStatement(INSERT)) {
                for (Item item : ROWS.subList(1, ROWS.size())) {
                    bindItem(ps, item);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                int[] ones = new int[ROWS.size() - 1];
                Arrays.fill(ones, 1);
                expect(Arrays.toString(counts), Arrays.toString(ones), "batch update counts");
            }
        });

        check("SELECT with a parameter: values and types", () -> {
            try (PreparedStatement ps = conn.prepareStatement(SELECT_ONE)) {
                ps.setLong(1, 3);
                try (ResultSet rs = ps.executeQuery()) {
                    ResultSetMetaData md = rs.getMetaData();
                    expect(md.getColumnCount(), 4, "column count");
                    expect(md.getColumnName(3), "price", "third column name");
                    expect(md.getColumnType(1), Types.BIGINT, "JDBC type of id");
                    expect(md.getColumnType(3), Types.NUMERIC, "JDBC type of price");
                    expect(md.getColumnType(4), Types.DATE, "JDBC type of added");
                    expect(rs.next(), true, "a row for id = 3");
                    expect(readItem(rs, "row 3"), ROWS.get(2), "row 3");
                    expect(rs.next(), false, "a second row for id = 3");
                }
                ps.setLong(1, 4);
                try (ResultSet rs = ps.executeQuery()) {
                    expect(rs.next(), true, "a row for id = 4");
                    expect(readItem(rs, "row 4"), ROWS.get(3), "row 4 with NULLs");
                    rs.getDate(4);
                    expect(rs.wasNull(), true, "wasNull after reading the NULL date");
                }
            }
        });

        check("SELECT all rows in order", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, name, price, added FROM items WHERE name <> ? ORDER BY id")) {
                ps.setString(1, "nothing");
                List<Item> got = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        got.add(readItem(rs, "row " + rs.getLong(1)));
                    }
                }
                expect(got, ROWS, "all rows");
            }
        });

        check("DECIMAL and DATE parameters", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT name FROM items WHERE price > ? AND added >= ? ORDER BY id")) {
                ps.setBigDecimal(1, new BigDecimal("1.00"));
                ps.setDate(2, Date.valueOf(LocalDate.of(2000, 1, 1)));
                List<String> names = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        names.add(rs.getString(1));
                    }
                }
                expect(names, List.of("apple", "cherry"), "rows with price > 1.00 added since 2000");
            }
        });

        check("server-side prepared statement (reused past prepareThreshold)", () -> {
            // pgJDBC switches to a named server-side statement after 5 executions of one PreparedStatement.
            try (PreparedStatement ps = conn.prepareStatement("SELECT name, price FROM items WHERE id = ?")) {
                for (int round = 0; round < 2; round++) {
                    for (Item item : ROWS) {
                        ps.setLong(1, item.id());
                        try (ResultSet rs = ps.executeQuery()) {
                            expect(rs.next(), true, "a row for id " + item.id());
                            expect(rs.getString(1), item.name(), "name of " + item.id());
                            expect(rs.getBigDecimal(2), item.price(), "price of " + item.id());
                        }
                    }
                }
                ps.setLong(1, 99);
                try (ResultSet rs = ps.executeQuery()) {
                    expect(rs.next(), false, "a row for a missing id");
                }
            }
        });

        check("duplicate key -> SQLSTATE 23505", () -> {
            try (PreparedStatement ps = conn.prepareStatement(INSERT)) {
                bindItem(ps, new Item(1, "again", null, null));
                expectError(ps::executeUpdate, "23505", "duplicate primary key");
            }
            expectUsable(conn, "after the duplicate key");
            try (PreparedStatement ps = conn.prepareStatement("SELECT name FROM items WHERE id = ?")) {
                ps.setLong(1, 1);
                try (ResultSet rs = ps.executeQuery()) {
                    expect(rs.next(), true, "row 1 still there");
                    expect(rs.getString(1), "apple", "the original row 1");
                }
            }
        });

        check("duplicate key in a batch -> SQLSTATE 23505", () -> {
            try (PreparedStatement ps = conn.prepareStatement(INSERT)) {
                bindItem(ps, new Item(2, "again", null, null));
                ps.addBatch();
                expectError(ps::executeBatch, "23505", "duplicate primary key in a batch");
            }
            expectUsable(conn, "after the failed batch");
        });

        check("syntax error -> SQLSTATE 42601", () -> {
            try (Statement st = conn.createStatement()) {
                expectError(() -> st.executeQuery("SELEC id FROM items"), "42601", "misspelt SELECT");
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT id FROM items WHERE id = = ?")) {
                ps.setLong(1, 1);
                expectError(ps::executeQuery, "42601", "syntax error in a prepared statement");
            }
            expectUsable(conn, "after the syntax errors");
        });

        check("read-only transaction", () -> {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM items")) {
                expect(rs.next(), true, "a count row");
                expect(rs.getLong(1), (long) ROWS.size(), "count inside the transaction");
                conn.commit();
            } finally {
                conn.setAutoCommit(true);
            }
            expectUsable(conn, "after the transaction");
        });

        check("writes with autocommit off (as Hibernate and Spring run them)", () -> {
            conn.setAutoCommit(false);
            try (PreparedStatement insert = conn.prepareStatement(INSERT);
                    PreparedStatement rename = conn.prepareStatement("UPDATE items SET name = ? WHERE id = ?");
                    PreparedStatement count = conn.prepareStatement("SELECT count(*) FROM items WHERE id >= ?")) {
                bindItem(insert, new Item(20, "fig", null, null));
                insert.addBatch();
                bindItem(insert, new Item(21, "lemon", null, null));
                insert.addBatch();
                expect(Arrays.toString(insert.executeBatch()), "[1, 1]", "batch in the transaction");
                rename.setString(1, "fig!");
                rename.setLong(2, 20);
                expect(rename.executeUpdate(), 1, "UPDATE in the transaction");
                count.setLong(1, 20);
                try (ResultSet rs = count.executeQuery()) {
                    rs.next();
                    expect(rs.getLong(1), 2L, "the transaction reads its own rows");
                }
                // A taken key fails the INSERT itself, as in PostgreSQL; the application rolls back.
                bindItem(insert, new Item(1, "again", null, null));
                expectError(insert::executeUpdate, "23505", "duplicate key in the transaction");
                conn.rollback();
                try (ResultSet rs = count.executeQuery()) {
                    rs.next();
                    expect(rs.getLong(1), 0L, "nothing of the rolled-back transaction");
                }
                bindItem(insert, new Item(20, "fig", null, null));
                expect(insert.executeUpdate(), 1, "INSERT after the rollback");
                conn.commit();
                try (ResultSet rs = count.executeQuery()) {
                    rs.next();
                    expect(rs.getLong(1), 1L, "the committed row");
                }
                conn.commit();
            } finally {
                conn.setAutoCommit(true);
            }
            try (Statement st = conn.createStatement()) {
                expect(st.executeUpdate("DELETE FROM items WHERE id = 20"), 1, "DELETE of the committed row");
            }
        });

        check("CREATE PROCEDURE and CALL it", () -> {
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE PROCEDURE item_name AS "
                        + "SELECT name FROM items WHERE id = $1");
            }
            try (PreparedStatement ps = conn.prepareStatement("CALL item_name(?)")) {
                ps.setLong(1, 2);
                try (ResultSet rs = ps.executeQuery()) {
                    expect(rs.next(), true, "CALL returns a row");
                    expect(rs.getString(1), "banana", "CALL item_name(2)");
                }
            }
            // With autocommit off every statement is in a transaction block: calls answer at once and apply at
            // COMMIT.
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE PROCEDURE rename_item AS UPDATE items SET name = $2 WHERE id = $1");
            }
            conn.setAutoCommit(false);
            try (PreparedStatement rename = conn.prepareStatement("CALL rename_item(?, ?)");
                    PreparedStatement name = conn.prepareStatement("CALL item_name(?)")) {
                rename.setLong(1, 2);
                rename.setString(2, "banana!");
                rename.execute();
                name.setLong(1, 2);
                try (ResultSet rs = name.executeQuery()) {
                    expect(rs.next(), true, "CALL in the transaction returns a row");
                    expect(rs.getString(1), "banana!", "the transaction sees its call");
                }
                conn.rollback();
                try (ResultSet rs = name.executeQuery()) {
                    rs.next();
                    expect(rs.getString(1), "banana", "nothing of the rolled-back call");
                }
                rename.execute();
                conn.commit();
                try (ResultSet rs = name.executeQuery()) {
                    rs.next();
                    expect(rs.getString(1), "banana!", "the committed call");
                }
                rename.setString(2, "banana");
                rename.execute();
                conn.commit();
            } finally {
                conn.setAutoCommit(true);
            }
        });
        check("DatabaseMetaData: what tools and ORMs ask", () -> {
            DatabaseMetaData md = conn.getMetaData();
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE TABLE tags (id SERIAL PRIMARY KEY, item BIGINT NOT NULL, tag VARCHAR(20))");
                st.execute("CREATE UNIQUE INDEX tags_item_tag ON tags (item, tag)");
            }
            try (ResultSet rs = md.getColumns(null, "public", "tags", "%")) {
                List<String> columns = new ArrayList<>();
                while (rs.next()) {
                    columns.add(rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " "
                            + rs.getString("IS_NULLABLE") + " " + rs.getString("IS_AUTOINCREMENT"));
                }
                expect(columns, List.of("id serial NO YES", "item int8 NO NO", "tag varchar YES NO"), "getColumns");
            }
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "tags")) {
                expect(rs.next(), true, "a primary key row");
                expect(rs.getString("COLUMN_NAME") + " " + rs.getString("PK_NAME"), "id tags_pkey", "getPrimaryKeys");
            }
            // Hibernate and DBeaver read the keys between tables; LaneDB has no foreign keys, so there are none.
            try (ResultSet rs = md.getImportedKeys(null, "public", "tags")) {
                expect(rs.next(), false, "getImportedKeys");
            }
            try (ResultSet rs = md.getExportedKeys(null, "public", "items")) {
                expect(rs.next(), false, "getExportedKeys");
            }
            try (ResultSet rs = md.getCrossReference(null, "public", "items", null, "public", "tags")) {
                expect(rs.next(), false, "getCrossReference");
            }
            // One row per key column of each index, with the column's name.
            try (ResultSet rs = md.getIndexInfo(null, "public", "tags", false, false)) {
                List<String> columns = new ArrayList<>();
                while (rs.next()) {
                    columns.add(rs.getString("INDEX_NAME") + " " + rs.getShort("ORDINAL_POSITION") + " "
                            + rs.getString("COLUMN_NAME") + " " + rs.getBoolean("NON_UNIQUE"));
                }
                columns.sort(null);
                expect(columns, List.of("tags_item_tag 1 item false", "tags_item_tag 2 tag false",
                        "tags_pkey 1 id false"), "getIndexInfo");
            }
            try (ResultSet rs = md.getTypeInfo()) {
                List<String> types = new ArrayList<>();
                while (rs.next()) {
                    types.add(rs.getString("TYPE_NAME") + " " + rs.getInt("DATA_TYPE"));
                }
                for (String type : List.of("int4 4", "int8 -5", "text 12", "numeric 2", "bool -7", "date 91")) {
                    expect(types.contains(type), true, "getTypeInfo lists " + type + " in " + types);
                }
            }
            // pgJDBC names PostgreSQL's row version `ctid` after looking its type up in the catalog.
            try (ResultSet rs = md.getVersionColumns(null, "public", "tags")) {
                expect(rs.next(), true, "getVersionColumns");
                expect(rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"), "ctid tid", "version column");
            }
            try (ResultSet rs = md.getProcedures(null, "public", "item_name")) {
                expect(rs.next(), true, "getProcedures finds item_name");
                expect(rs.getString("PROCEDURE_NAME"), "item_name", "procedure name");
            }
            try (ResultSet rs = md.getProcedureColumns(null, "public", "item_name", "%")) {
                List<String> columns = new ArrayList<>();
                while (rs.next()) {
                    columns.add(rs.getShort("COLUMN_TYPE") + " " + rs.getString("TYPE_NAME"));
                }
                // As against PostgreSQL: the `void` a procedure returns, then its one IN argument.
                expect(columns, List.of("5 void", "1 int8"), "getProcedureColumns");
            }
        });
        check("ResultSetMetaData: the table and column of each result column", () -> {
            // A query DataFusion answers (a join with aliases), and a point select LaneDB plans itself.
            String[] queries = {
                "SELECT t.id AS tag_id, t.tag, i.name, t.item + 1 FROM tags t JOIN items i ON i.id = t.item",
                "SELECT id AS tag_id, tag, tag AS name, item + 1 FROM tags WHERE id = ?",
            };
            for (String sql : queries) {
                try (PreparedStatement ps = conn.prepareStatement(sql)) {
                    if (sql.contains("?")) {
                        ps.setInt(1, 1);
                    }
                    try (ResultSet rs = ps.executeQuery()) {
                        org.postgresql.PGResultSetMetaData md = (org.postgresql.PGResultSetMetaData) rs.getMetaData();
                        ResultSetMetaData plain = rs.getMetaData();
                        List<String> columns = new ArrayList<>();
                        for (int i = 1; i <= plain.getColumnCount(); i++) {
                            columns.add(md.getBaseTableName(i) + "." + md.getBaseColumnName(i) + " "
                                    + plain.isNullable(i) + " " + plain.isAutoIncrement(i));
                        }
                        String name = sql.contains("JOIN") ? "items.name 0 false" : "tags.tag 1 false";
                        expect(columns, List.of("tags.id 0 true", "tags.tag 1 false", name, ". 2 false"), sql);
                    }
                }
            }
        });
        check("row count at the end", () -> {
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM items")) {
                expect(rs.next(), true, "a count row");
                expect(rs.getLong(1), (long) ROWS.size(), "rows at the end");
            }
        });

        conn.close();
        if (!failures.isEmpty()) {
            System.out.println("JDBC client: " + failures.size() + " check(s) failed:");
            for (String failure : failures) {
                System.out.println("  " + failure);
            }
            System.exit(1);
        }
        System.out.println("JDBC client: every check passed");
    }
}
