// Run one SQL statement with DuckDB (the analyst's other engine) and print
// each result row as a JSON object on a line; statements before the last
// (SET TimeZone = ...) may be given as earlier arguments.
//   node tests/duck-query.mjs [SQL...] SQL
// @duckdb/node-api comes from the project's .deps/ (scripts/install-deps).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.DD_ROOT ||
	path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, '.deps', 'package.json'));
const { DuckDBInstance } = require('@duckdb/node-api');

const sql = process.argv.slice(2);
if (sql.length === 0) {
	console.error('usage: duck-query.mjs [SQL...] SQL');
	process.exit(2);
}
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
for (const s of sql.slice(0, -1))
	await con.run(s);
const r = await con.runAndReadAll(sql[sql.length - 1]);
for (const row of r.getRowObjectsJson())
	console.log(JSON.stringify(row));
