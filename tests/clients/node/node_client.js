#!/usr/bin/env node
// node-postgres and Sequelize against a running LaneDB server (run by tests/clients.rs).
//
// Usage: node node_client.js [HOST] PORT      (HOST defaults to 127.0.0.1)
//
// node-postgres sends every value as text, parses results by their type OIDs (a bigint stays a string, a name[]
// stays the array's text) and reports LISTEN notifications as events. Sequelize sets the session's time zone with
// an interval, reads pg_range and the catalog's names at start-up and after each CREATE TABLE, and alters tables
// to match its models. Checks: types both ways (a JavaScript Date for a date column among them), integers typed as
// PostgreSQL types them, arrays with parameters, errors, LISTEN / NOTIFY, and Sequelize's sync (plain and with
// alter), associations, transactions, upserts and its catalog reads. Every check runs even after an earlier one
// failed; the program prints each failure and exits 1 if there was any.
'use strict';

const assert = require('assert');
const { Client } = require('pg');
const { Sequelize, DataTypes, Op } = require('sequelize');

const args = process.argv.slice(2);
const [host, port] = args.length === 2 ? args : ['127.0.0.1', args[0]];
const connection = { host, port: Number(port), user: 'tester', database: 'testdb' };
const failures = [];

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    const detail = `${e.message}${e.code ? ` [SQLSTATE ${e.code}]` : ''}`;
    failures.push(`${name}: ${detail}`);
    console.log(`FAIL ${name}: ${detail}`);
  }
}

async function nodePostgres() {
  const client = new Client(connection);
  await client.connect();
  await check('types both ways', async () => {
    await client.query(
      'CREATE TABLE gadget (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), made date, ' +
        'seen timestamptz, tags text[], levels int[], spec jsonb, active boolean DEFAULT true)'
    );
    const made = new Date(Date.UTC(2024, 2, 4));
    const seen = new Date(Date.UTC(2024, 2, 4, 10, 30, 0, 250));
    const { rows } = await client.query(
      'INSERT INTO gadget (name, price, made, seen, tags, levels, spec) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *',
      ['lamp', '12.50', made, seen, ['a', 'b'], [1, 2], { w: 3 }]
    );
    const row = rows[0];
    assert.strictEqual(row.id, 1);
    assert.strictEqual(row.price, '12.50');
    assert.strictEqual(row.seen.getTime(), seen.getTime());
    assert.strictEqual(row.made.getFullYear(), 2024);
    assert.deepStrictEqual(row.tags, ['a', 'b']);
    assert.deepStrictEqual(row.levels, [1, 2]);
    assert.deepStrictEqual(row.spec, { w: 3 });
    assert.strictEqual(row.active, true);
    const between = await client.query('SELECT count(*)::int AS n FROM gadget WHERE made BETWEEN $1 AND $2', [
      made,
      seen,
    ]);
    assert.strictEqual(between.rows[0].n, 1);
  });
  await check('integers as PostgreSQL types them', async () => {
    const { rows } = await client.query(
      "SELECT g, '2024-03-01'::date - '2024-02-01'::date AS days, cardinality(ARRAY[1, 2]) AS c, count(*) AS n " +
        'FROM generate_series(1, 2) AS g GROUP BY g ORDER BY g'
    );
    assert.deepStrictEqual(rows[0], { g: 1, days: 29, c: 2, n: '1' });
  });
  await check('array parameters', async () => {
    const any = await client.query('SELECT name FROM gadget WHERE $1 = ANY(levels)', [2]);
    assert.strictEqual(any.rows.length, 1);
    const ids = await client.query('SELECT count(*)::int AS n FROM gadget WHERE id = ANY($1)', [[1, 5]]);
    assert.strictEqual(ids.rows[0].n, 1);
    await client.query('UPDATE gadget SET levels = array_append(levels, $1) WHERE id = $2', [9, 1]);
    const levels = await client.query('SELECT levels FROM gadget WHERE id = 1');
    assert.deepStrictEqual(levels.rows[0].levels, [1, 2, 9]);
  });
  await check('errors', async () => {
    await client.query('CREATE TABLE handle (name text PRIMARY KEY)');
    await client.query("INSERT INTO handle VALUES ('x')");
    await assert.rejects(client.query("INSERT INTO handle VALUES ('x')"), (e) => {
      assert.strictEqual(e.code, '23505');
      assert.strictEqual(e.constraint, 'handle_pkey');
      return true;
    });
  });
  await check('LISTEN / NOTIFY', async () => {
    const heard = new Promise((resolve) => client.once('notification', resolve));
    await client.query('LISTEN jobs');
    const other = new Client(connection);
    await other.connect();
    await other.query('SELECT pg_notify($1, $2)', ['jobs', 'job 1']);
    await other.end();
    const note = await Promise.race([
      heard,
      new Promise((_, reject) => setTimeout(() => reject(new Error('no notification within 10 s')), 10000)),
    ]);
    assert.strictEqual(note.channel, 'jobs');
    assert.strictEqual(note.payload, 'job 1');
    await client.query('UNLISTEN *');
  });
  await client.end();
}

async function sequelizeOrm() {
  const sequelize = new Sequelize(connection.database, connection.user, null, {
    host: connection.host,
    port: connection.port,
    dialect: 'postgres',
    logging: false,
  });
  const User = sequelize.define(
    'user',
    {
      username: { type: DataTypes.STRING(40), allowNull: false, unique: true },
      age: DataTypes.INTEGER,
      prefs: DataTypes.JSONB,
      birthday: DataTypes.DATEONLY,
    },
    { indexes: [{ fields: ['age'] }] }
  );
  const Post = sequelize.define('post', { title: DataTypes.STRING, views: { type: DataTypes.INTEGER, defaultValue: 0 } });
  User.hasMany(Post, { onDelete: 'CASCADE' });
  Post.belongsTo(User);
  await check('connect (time zone as an interval, pg_range)', () => sequelize.authenticate());
  await check('sync', async () => {
    await sequelize.sync({ force: true });
    const indexes = await sequelize.getQueryInterface().showIndex('users');
    const names = indexes.map((i) => i.name).sort();
    assert.deepStrictEqual(names, ['users_age', 'users_pkey', 'users_username_key']);
    const age = indexes.find((i) => i.name === 'users_age');
    assert.deepStrictEqual(age.fields.map((f) => f.attribute), ['age']);
  });
  await check('associations and queries', async () => {
    const ann = await User.create({ username: 'ann', age: 30, prefs: { theme: 'dark' }, birthday: '1994-05-06' });
    await Post.bulkCreate([
      { title: 'one', userId: ann.id },
      { title: 'two', userId: ann.id, views: 5 },
    ]);
    const found = await User.findOne({ where: { username: 'ann' }, include: Post });
    assert.strictEqual(found.posts.length, 2);
    assert.strictEqual(found.birthday, '1994-05-06');
    const { count } = await Post.findAndCountAll({ where: { views: { [Op.gte]: 0 } } });
    assert.strictEqual(count, 2);
  });
  await check('transactions and upserts', async () => {
    await sequelize.transaction(async (t) => {
      await User.create({ username: 'bob', age: 40 }, { transaction: t });
    });
    await assert.rejects(
      sequelize.transaction(async (t) => {
        await User.create({ username: 'cy', age: 20 }, { transaction: t });
        throw new Error('undo');
      })
    );
    assert.strictEqual(await User.count(), 2);
    await User.upsert({ username: 'bob', age: 41 });
    assert.strictEqual((await User.findOne({ where: { username: 'bob' } })).age, 41);
  });
  await check('sync with alter', async () => {
    User.rawAttributes.nickname = { type: DataTypes.STRING };
    User.refreshAttributes();
    await sequelize.sync({ alter: true });
    const described = await sequelize.getQueryInterface().describeTable('users');
    assert.ok(described.nickname, 'the new column');
    assert.strictEqual(await User.count(), 2);
  });
  await sequelize.close();
}

(async () => {
  await nodePostgres();
  await sequelizeOrm();
  if (failures.length > 0) {
    console.log(`node: ${failures.length} check(s) failed:`);
    for (const f of failures) console.log(`  ${f}`);
    process.exit(1);
  }
  console.log('node: every check passed');
})().catch((e) => {
  console.log(`node: ${e.stack}`);
  process.exit(1);
});
