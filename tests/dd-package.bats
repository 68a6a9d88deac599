#!/usr/bin/env bats
# dd-package: documents kept byte for byte, newest event wins, tombstones,
# bad input, CSV import, get/list/summary/stats, and the kill -9 replay.

load common
bats_require_minimum_version 1.5.0

setup() {
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	[ -z "${BG:-}" ] || kill $BG 2>/dev/null || true
}

# ev ID TYPE TIME DATA: one event.
ev() {
	printf '{"specversion":"1.0","id":"%s","source":"/dd-schedule","type":"%s","time":"%s","subject":"s","data":%s}\n' "$@"
}
# reg ID TIME PACKAGE OWNER WEIGHT [SIZE]
reg() {
	ev "$1" package.registered "$2" "{\"packageId\":\"$3\",\"ownerId\":\"$4\",\"deliveryId\":\"d-$3\",\"size\":\"${6:-small}\",\"weightKg\":$5,\"tag\":\"t\"}"
}
# rem ID TIME PACKAGE
rem() {
	ev "$1" package.removed "$2" "{\"packageId\":\"$3\",\"reason\":\"no-drone\"}"
}
ids() { dd-package list "$@" | jq -r .packageId; }

@test "usage: --help shows every command; usage errors exit 2" {
	run dd-package --help
	assert_success
	assert_line --partial "dd-package summary [--db FILE] [-q] --owner ID"
	assert_line --partial "dd-package import [--db FILE] [-q] --csv FILE"
	while read -r args; do
		run bash -c "echo '{' | dd-package $args"
		refute_sanitizer
		[ "$status" -eq 2 ] || fail "dd-package $args: exit $status, not 2 ($output)"
	done <<-'EOF'
	--bogus
	--owner o-1
	get
	list --month 2026-11
	list --format xml
	summary
	summary --owner o-1 --month 2026-13
	summary --owner o-1 --month 2026-1
	import
	import --csv x.csv --now yesterday
	stats --strict
	frobnicate
	EOF
}

@test "registered: the document is data byte for byte; get, list and summary" {
	{
		ev e1 package.registered 2026-11-26T10:00:00Z '{"weightKg":2.50,"packageId":"p-1","ownerId":"o-1","deliveryId":"d-1","size":"small","tag":"caf\u00e9","x":[1e2,12345678901234567890]}'
		reg e2 2026-11-27T10:00:00Z p-2 o-1 10 large
		reg e3 2026-12-01T00:00:00Z p-3 o-1 1.25 medium
		reg e4 2026-11-30T23:59:59.999Z p-4 o-2 3
		ev x1 delivery.scheduled 2026-11-26T10:00:00Z '{}'
	} > in
	run --separate-stderr dd-package < in
	assert_success
	assert_output ""
	[[ "$stderr" == *"read 5, accepted 4, ignored 1, rejected 0, stored 4, removed 0, unchanged 0"* ]] || fail "$stderr"
	run dd-package get p-1
	assert_success
	assert_output '{"weightKg":2.50,"packageId":"p-1","ownerId":"o-1","deliveryId":"d-1","size":"small","tag":"caf\u00e9","x":[1e2,12345678901234567890]}'
	run dd-package get p-9
	assert_failure 1
	assert_output --partial "p-9: no such package"
	run ids --owner o-1
	assert_output "$(printf 'p-1\np-2\np-3')"
	run dd-package summary --owner o-1 --month 2026-11
	assert_output '{"ownerId":"o-1","month":"2026-11","packages":2,"weightKg":12.5}'
	run dd-package summary --owner o-2 --month 2026-11
	assert_output '{"ownerId":"o-2","month":"2026-11","packages":1,"weightKg":3}'
	run dd-package summary --owner o-1
	assert_output '{"ownerId":"o-1","month":null,"packages":3,"weightKg":13.75}'
	# CSV rows end in CRLF (RFC 4180).
	run sh -c 'dd-package summary --owner o-1 --month 2026-12 --format csv | tr -d "\r"'
	assert_output "$(printf 'ownerId,month,packages,weightKg\no-1,2026-12,1,1.25')"
	run sh -c 'dd-package list --format csv | tr -d "\r"'
	assert_line --index 0 "packageId,ownerId,deliveryId,size,weightKg,tag,registered"
	assert_line --index 1 "p-1,o-1,d-1,small,2.5,café,2026-11-26T10:00:00.000Z"
	run dd-package list --format table --owner o-2
	assert_line --index 1 --regexp '^p-4 +o-2 +d-p-4 +small +3 +t +2026-11-30T23:59:59.999Z$'
	run dd-package stats
	assert_output --partial '"packages":4,"removed":0,"owners":2'
}

@test "the newest event wins: replace, older, duplicate, remove, replayed older registration" {
	{
		reg a 2026-11-26T10:00:00Z p-1 o-1 1
		reg b 2026-11-26T11:00:00Z p-1 o-1 2
		reg c 2026-11-26T10:30:00Z p-1 o-1 3
		reg b 2026-11-26T11:00:00Z p-1 o-1 2
		reg a 2026-11-26T10:00:00Z p-2 o-1 5
		rem r 2026-11-26T12:00:00Z p-2
		reg a 2026-11-26T10:00:00Z p-2 o-1 5
		rem r2 2026-11-26T12:00:00Z p-3
		reg z 2026-11-26T11:00:00Z p-3 o-1 7
	} > in
	run --separate-stderr dd-package < in
	assert_success
	[[ "$stderr" == *"stored 3, removed 2, unchanged 4"* ]] || fail "$stderr"
	run dd-package get p-1
	assert_output --partial '"weightKg":2,'
	run dd-package get p-2
	assert_failure 1
	assert_output --partial "p-2: removed"
	run dd-package get p-3
	assert_failure 1
	run ids
	assert_output p-1
	# A newer registration brings a removed package back.
	reg n 2026-11-26T13:00:00Z p-2 o-1 6 | dd-package -q
	run dd-package get p-2
	assert_success
	run dd-package stats
	assert_output --partial '"packages":2,"removed":1'
	# Feeding everything again changes nothing.
	dd-package list > l1
	run --separate-stderr dd-package < in
	[[ "$stderr" == *"stored 0, removed 0, unchanged 9"* ]] || fail "$stderr"
	dd-package list > l2
	cmp l1 l2
}

@test "bad lines are rejected with stdin:LINE; --rejects, --strict" {
	{
		reg ok1 2026-11-26T10:00:00Z p-1 o-1 1
		echo '{"broken'
		ev b1 package.registered 2026-11-26T10:00:00Z '{"packageId":"p-2","deliveryId":"d","size":"small","weightKg":1}'
		reg b2 2026-11-26T10:00:00Z p-3 o-1 1 huge
		reg b3 2026-11-26T10:00:00Z p-4 o-1 0
		reg b4 2026-11-26T10:00:00Z p-5 o-1 '"3"'
		ev b5 package.removed 2026-11-26T10:00:00Z '{"packageId":"p-1"}'
		ev b6 package.registered 2026-11-26T10:00:00Z '{"packageId":"","ownerId":"o","deliveryId":"d","size":"small","weightKg":1}'
		reg ok2 2026-11-26T10:00:00Z p-6 o-1 1
	} > in
	run --separate-stderr dd-package --rejects rej.ndjson < in
	assert_failure 1
	refute_sanitizer
	for n in 2 3 4 5 6 7 8; do
		[[ "$stderr" == *"dd-package: stdin:$n: "* ]] || fail "no message for line $n: $stderr"
	done
	[[ "$stderr" == *'stdin:3: "data.ownerId" is missing'* ]] || fail "$stderr"
	[[ "$stderr" == *'stdin:4: "data.size" is not one of small, medium, large'* ]] || fail "$stderr"
	run jq -r .line rej.ndjson
	assert_output "$(seq 2 8)"
	run ids
	assert_output "$(printf 'p-1\np-6')"
	rm -f "$DD_HOME/package.db"*
	run dd-package --strict < in
	assert_failure 3
	run ids
	assert_output p-1
}

@test "import --csv: header in any order, quoting, later rows win, bad rows as FILE:LINE" {
	cat > p.csv <<-'EOF'
	weightKg,tag,packageId,size,ownerId,deliveryId
	2.5,"books, old",p-1,Small,o-1,d-1
	3,"say ""hi""
	twice",p-2,large,o-1,
	x,t,p-3,small,o-1,d-3
	1,t,p-4,tiny,o-1,d-4
	1,t,,small,o-1,d-5
	1,t,p-6,small
	4,new,p-1,medium,o-1,d-1
	EOF
	run --separate-stderr dd-package import --csv p.csv --now 2026-11-15T12:00:00Z --rejects rej.ndjson
	assert_failure 1
	for n in 5 6 7 8; do
		[[ "$stderr" == *"dd-package: p.csv:$n: "* ]] || fail "no message for line $n: $stderr"
	done
	[[ "$stderr" == *"rows 7, stored 3, unchanged 0, rejected 4"* ]] || fail "$stderr"
	run jq -r '[.source, .line] | @tsv' rej.ndjson
	assert_output "$(printf 'p.csv\t%s\n' 5 6 7 8 | sed '$!b')"
	run dd-package get p-1
	assert_output '{"packageId":"p-1","ownerId":"o-1","deliveryId":"d-1","size":"medium","weightKg":4,"tag":"new"}'
	run dd-package get p-2
	assert_output '{"packageId":"p-2","ownerId":"o-1","size":"large","weightKg":3,"tag":"say \"hi\"\ntwice"}'
	run dd-package summary --owner o-1 --month 2026-11
	assert_output '{"ownerId":"o-1","month":"2026-11","packages":2,"weightKg":7}'
	# An event older than the import does not overwrite it; a newer one does.
	reg old 2026-11-01T00:00:00Z p-1 o-1 9 | dd-package -q
	run dd-package get p-1
	assert_output --partial '"weightKg":4,'
	# Headers that name no package are usage errors.
	printf 'packageId,owner,size,weightKg\n' > bad.csv
	run dd-package import --csv bad.csv
	assert_failure 2
	assert_output --partial 'bad.csv:1: unknown column "owner"'
	printf 'packageId,size,weightKg\n' > bad2.csv
	run dd-package import --csv bad2.csv
	assert_failure 2
	assert_output --partial 'no column "ownerId"'
	run dd-package import --csv missing.csv
	assert_failure 4
	# --strict stops at the first bad row, keeping those before it.
	rm -f "$DD_HOME/package.db"*
	run dd-package import --csv p.csv --strict
	assert_failure 3
	run ids
	assert_output "$(printf 'p-1\np-2')"
}

@test "kill -9 in the middle, then the whole input again: the store of a clean run" {
	# 200000 registrations of 50000 packages, with removals, in time order.
	awk 'BEGIN {
		for (i = 0; i < 200000; i++) {
			p = (i * 7919) % 50000; t = 1795672800 + i
			ts = strftime("%Y-%m-%dT%H:%M:%SZ", t, 1)
			if (i % 17 == 0)
				printf "{\"specversion\":\"1.0\",\"id\":\"e-%d\",\"source\":\"/t\",\"type\":\"package.removed\",\"time\":\"%s\",\"subject\":\"p-%d\",\"data\":{\"packageId\":\"p-%d\",\"reason\":\"x\"}}\n", i, ts, p, p
			else
				printf "{\"specversion\":\"1.0\",\"id\":\"e-%d\",\"source\":\"/t\",\"type\":\"package.registered\",\"time\":\"%s\",\"subject\":\"p-%d\",\"data\":{\"packageId\":\"p-%d\",\"ownerId\":\"o-%d\",\"deliveryId\":\"d-%d\",\"size\":\"small\",\"weightKg\":%d.5}}\n", i, ts, p, p, i % 100, i, i % 20 + 1
		}
	}' > in
	dd-package --db clean.db -q < in
	mkfifo pipe
	dd-package --db crash.db --batch 1000 -q < pipe & BG=$!
	exec 7> pipe
	head -150000 in >&7 &
	feeder=$!
	# Kill it once some batches are committed, while it is still reading.
	for i in $(seq 200); do
		n=0
		[ ! -e crash.db ] || n=$(sqlite3 crash.db 'select count(*) from package' 2>/dev/null || echo 0)
		[ "${n:-0}" -gt 10000 ] && break
		sleep 0.05
	done
	kill -9 $BG
	wait $BG || true
	BG=
	exec 7>&-
	wait $feeder || true
	n=$(sqlite3 crash.db 'select count(*) from package')
	[ "$n" -gt 0 ]
	dd-package --db crash.db -q < in
	cmp <(dd-package list --db clean.db) <(dd-package list --db crash.db)
	cmp <(dd-package stats --db clean.db) <(dd-package stats --db crash.db)
	cmp <(sqlite3 clean.db 'select * from package order by id') <(sqlite3 crash.db 'select * from package order by id')
}
