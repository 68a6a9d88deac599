// Read a dd lake with DuckDB, as an analyst would, and print what it sees
// as one JSON object: the number of events, per day (from the Hive
// partition directories) and per type, and which of the ids given as
// arguments it finds.
//   node tests/duckdb-read.mjs LAKE DATASET [ID...]
// @duckdb/node-api comes from the project's .deps/ (scripts/install-deps).
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.DD_ROOT ||
	path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, '.deps', 'package.json'));
const { DuckDBInstance } = require('@duckdb/node-api');

const [lake, dataset, ...ids] = process.argv.slice(2);
if (!lake || !dataset) {
	console.error('usage: duckdb-read.mjs LAKE DATASET [ID...]');
	process.exit(2);
}
const quote = (s) => "'" + String(s).replaceAll("'", "''") + "'";
const glob = quote(path.join(lake, dataset, '*', '*', '*', '*.ndjson.zst'));
// Every line as one JSON value, so no inferred schema can drop a field.
const src = `read_ndjson(${glob}, hive_partitioning=true,
	columns={id: 'VARCHAR', type: 'VARCHAR', time: 'VARCHAR'})`;

const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const rows = async (sql) => (await con.runAndReadAll(sql)).getRowObjectsJson();

const out = { total: 0, perDay: {}, perType: {}, found: [] };
out.total = Number((await rows(`select count(*) as n from ${src}`))[0].n);
for (const r of await rows(`select printf('%04d-%02d-%02d', year::int, month::int, day::int) as d,
		count(*) as n from ${src} group by d order by d`))
	out.perDay[r.d] = Number(r.n);
for (const r of await rows(`select type, count(*) as n from ${src} group by type order by type`))
	out.perType[r.type] = Number(r.n);
if (ids.length) {
	const list = ids.map(quote).join(',');
	out.found = (await rows(`select distinct id from ${src} where id in (${list}) order by id`))
		.map((r) => r.id);
}
console.log(JSON.stringify(out));
