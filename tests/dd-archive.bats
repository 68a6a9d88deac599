#!/usr/bin/env bats
# dd-archive: deliveries that ended long enough ago move from history.db to
# the lake (same events, byte for byte), the others stay; --dry-run; kill -9
# at random points then a rerun (never lost, no duplicate after --compact);
# overlapping runs; a live dd-history writer; a full disk; --compact,
# --verify and bad usage.

load common
load deliveries
bats_require_minimum_version 1.5.0

setup() {
	cd "$BATS_TEST_TMPDIR"
	LAKE=$BATS_TEST_TMPDIR/lake
	DB=$DD_HOME/history.db
}

teardown() {
	[ -z "${BG:-}" ] || kill -9 $BG 2>/dev/null || true
	[ -z "${BG2:-}" ] || kill -9 $BG2 2>/dev/null || true
	if [ -n "${MNT:-}" ]; then
		umount "$MNT" 2>/dev/null || true
	fi
}

# Ids of the events in the lake (every part), in the history, in the input.
lake_ids() {
	find "$LAKE/events" -name 'part-*.ndjson.zst' -print0 2>/dev/null | xargs -0 -r zstdcat | jq -r .id
}
hist_ids() { sqlite3 "$DB" "SELECT eid FROM events"; }
# Every event id of FILE is in the history or the lake (never in neither).
none_lost() {
	sort -u <(lake_ids) <(hist_ids) > have
	jq -r .id "$1" | sort -u > want
	comm -23 want have > lost
	[ ! -s lost ] || fail "lost $(wc -l < lost) events, e.g. $(head -3 lost | tr '\n' ' ')"
}
summary() { echo "$output" | grep '^{' | jq -r "$1"; }
# Is the flock(2) lock on FILE held? (Asked of /proc/locks: trying to
# take it would race with the process under test.)
locked() {
	[ -e "$1" ] && grep -q ":$(stat -c %i "$1") " /proc/locks
}

@test "--help carries the usage; bad usage exits 2 before touching anything" {
	run dd-archive --help
	assert_success
	assert_line --index 0 --partial "usage: dd-archive [--db HISTORY_DB] [-l LAKE]"
	for args in "--bogus" "extra" "--older-than soon" "--older-than -1d" "--now yesterday" \
		"--dataset ../up" "--dataset _x" "--chunk 0"; do
		run -2 dd-archive $args
		# One line, naming the program: no usage dump.
		assert_equal "${#lines[@]}" 1
		assert_output --partial "dd-archive: "
	done
	[ ! -e "$LAKE" ]
}

@test "an archived delivery leaves history.db for the lake with the same events; younger ones stay" {
	gen_deliveries 400 1793577600 600 > in.ndjson
	# A delivery that never ended stays whatever its age.
	printf '%s\n' '{"specversion":"1.0","id":"open-1","source":"/t","type":"delivery.status","time":"2026-10-01T00:00:00Z","subject":"d-open","data":{"deliveryId":"d-open","stage":"headed-to-pickup"}}' >> in.ndjson
	dd-history -q < in.ndjson
	# Cutoff 2026-11-03T12:00Z: deliveries 1..212 ended before it
	# (delivery j ends at T0 + 600 j + 1800 s, or 300 s when cancelled).
	run dd-archive -l "$LAKE" --now 2026-11-05T00:00:00Z --older-than 36h
	assert_success
	[ "$(summary .deliveriesArchived)" -eq 212 ]
	[ "$(summary .eventsArchived)" -eq "$(jq -c 'select(.subject | test("^(d-|r-d)0*([1-9]|[1-9][0-9]|1[0-9][0-9]|20[0-9]|21[0-2])$"))' in.ndjson | wc -l)" ]
	[ "$(summary .partsWritten)" -ge 2 ]
	run -1 dd-history get d-0000003
	run -1 dd-history get r-d0000100
	dd-history get d-0000213 > /dev/null
	dd-history get d-open > /dev/null
	[ "$(dd-history stats | jq .deliveries)" -eq 189 ]
	# In the lake: the original lines, byte for byte, each in the
	# partition of its own UTC date.
	for d in d-0000003 d-0000007 d-0000144 r-d0000100; do
		grep -F "\"subject\":\"$d\"" in.ndjson | sort > want
		find "$LAKE/events" -name 'part-*.ndjson.zst' -print0 | xargs -0 zstdcat | grep -F "\"subject\":\"$d\"" | sort > got
		cmp want got
		if [ -x "$DD_BIN/dd-lake-query" ]; then
			dd-lake-query -l "$LAKE" --subject "$d" | sort > got
			cmp want got
		fi
	done
	for p in $(find "$LAKE" -name 'part-*.ndjson.zst'); do
		day=$(echo "$p" | sed -E 's|.*/year=([0-9]+)/month=([0-9]+)/day=([0-9]+)/.*|\1-\2-\3|')
		[ -z "$(zstdcat "$p" | jq -r .time | cut -c1-10 | grep -v "^$day\$")" ]
	done
	# Nothing left to do at the same cutoff.
	run dd-archive -l "$LAKE" --now 2026-11-05T00:00:00Z --older-than 36h --verify
	assert_success
	[ "$(summary .deliveriesArchived)" -eq 0 ]
	[ "$(summary .partsDamaged)" -eq 0 ]
	none_lost in.ndjson
}

@test "--dry-run changes nothing and counts what a run would move" {
	gen_deliveries 200 1793577600 600 > in.ndjson
	dd-history -q < in.ndjson
	sqlite3 "$DB" "PRAGMA wal_checkpoint(TRUNCATE)" > /dev/null
	# (readers may touch the -shm index, never the database or its log)
	before=$(cat "$DB" "$DB-wal" 2>/dev/null | sha256sum)
	run dd-archive -l "$LAKE" --now 2026-11-03T00:00:00Z --older-than 12h --dry-run --compact
	assert_success
	[ "$(summary .dryRun)" = true ]
	dry=$(summary '[.deliveriesArchived, .eventsArchived, .eventBytes] | @tsv')
	[ "$(cat "$DB" "$DB-wal" 2>/dev/null | sha256sum)" = "$before" ]
	[ ! -e "$LAKE" ]
	run dd-archive -l "$LAKE" --now 2026-11-03T00:00:00Z --older-than 12h
	assert_success
	[ "$(summary '[.deliveriesArchived, .eventsArchived, .eventBytes] | @tsv')" = "$dry" ]
	# Cutoff 2026-11-02T12:00Z: deliveries 1..68.
	[ "$(echo "$dry" | cut -f1)" -eq 68 ]
}

@test "no history.db: exit 4 naming it, nothing created (a wrong DD_HOME must not pass silently)" {
	run dd-archive -l "$LAKE" --compact --verify
	assert_failure 4
	assert_output --partial "$DB: no such store"
	[ ! -e "$DB" ]
	[ ! -e "$DB-archive.lock" ]
}

@test "kill -9 at random points, then a rerun: nothing lost, no duplicate after --compact" {
	gen_deliveries 3000 1793577600 60 > in.ndjson
	dd-history -q < in.ndjson
	for delay in 0.05 0.12 0.2 0.3 0.45 0.6; do
		(exec dd-archive -q -l "$LAKE" --now 2027-01-01 --chunk 40 > /dev/null) &
		BG=$!
		sleep $delay
		kill -9 $BG 2>/dev/null || true
		wait $BG || true
		BG=
		none_lost in.ndjson
	done
	run dd-archive -l "$LAKE" --now 2027-01-01 --chunk 40
	assert_success
	none_lost in.ndjson
	# Everything ended long ago: all of it is in the lake, none in history.
	[ "$(dd-history stats | jq .deliveries)" -eq 0 ]
	[ -z "$(hist_ids)" ]
	run dd-archive -l "$LAKE" --now 2027-01-01 --compact --verify
	assert_success
	[ "$(summary .partsDamaged)" -eq 0 ]
	[ -z "$(lake_ids | sort | uniq -d)" ]
	[ "$(lake_ids | wc -l)" -eq "$(wc -l < in.ndjson)" ]
	[ -z "$(find "$LAKE" -name '.*.tmp')" ]
}

@test "archiving the same events twice leaves no duplicate after --compact" {
	gen_deliveries 300 1793577600 300 > in.ndjson
	dd-history -q < in.ndjson
	cp "$DB" copy.db
	run dd-archive -l "$LAKE" --now 2027-01-01
	assert_success
	run dd-archive --db copy.db -l "$LAKE" --now 2027-01-01
	assert_success
	[ "$(lake_ids | sort | uniq -d | wc -l)" -eq "$(wc -l < in.ndjson)" ]
	# Readers de-duplicate meanwhile.
	if [ -x "$DD_BIN/dd-lake-query" ]; then
		[ "$(dd-lake-query -l "$LAKE" --count)" -eq "$(wc -l < in.ndjson)" ]
	fi
	# The deliveries view too: one summary per delivery, written twice.
	[ "$(dd-lake-query -l "$LAKE" --dataset deliveries --count)" -eq 300 ]
	run dd-archive -l "$LAKE" --compact --verify
	assert_success
	[ "$(summary .duplicatesDropped)" -eq $(($(wc -l < in.ndjson) + 300)) ]
	[ "$(dd-lake-query -l "$LAKE" --dataset deliveries --count --no-dedupe)" -eq 300 ]
	[ "$(summary .partsCompacted)" -gt "$(summary .partsAfterCompaction)" ]
	[ -z "$(lake_ids | sort | uniq -d)" ]
	[ "$(lake_ids | sort | comm -3 - <(jq -r .id in.ndjson | sort) | wc -l)" -eq 0 ]
}

@test "overlapping runs: the second exits 5 at once and changes nothing" {
	gen_deliveries 3000 1793577600 60 > in.ndjson
	dd-history -q < in.ndjson
	# This shell holds the lock, as a running predecessor would.
	exec 7> "$DB-archive.lock"
	flock 7
	run -5 dd-archive -l "$LAKE" --now 2027-01-01
	assert_output --partial "another run holds the lock"
	[ ! -e "$LAKE" ]
	exec 7>&-
	# A real run, stopped while it holds the lock.
	dd-archive -q -l "$LAKE" --now 2027-01-01 --chunk 20 > first.json &
	BG=$!
	until locked "$DB-archive.lock"; do
		kill -0 $BG 2>/dev/null || break
		sleep 0.005
	done
	kill -STOP $BG 2>/dev/null || true
	locked "$DB-archive.lock" || skip "the first run ended before it could be stopped"
	start=$(date +%s%N)
	run -5 dd-archive -l "$LAKE" --now 2027-01-01
	[ $(( ($(date +%s%N) - start) / 1000000 )) -lt 2000 ]
	kill -CONT $BG
	wait $BG
	BG=
	[ "$(jq .deliveriesArchived first.json)" -eq 3000 ]
	none_lost in.ndjson
}

@test "a live dd-history writer goes on during archiving and loses nothing" {
	gen_deliveries 2000 1793577600 60 > old.ndjson
	dd-history -q < old.ndjson
	# New deliveries, and late events of old ones (some being archived).
	{
		gen_deliveries 1500 1796169600 60 e
		jq -c 'select(.type == "delivery.status") | .id += "-late" | .time = "2026-12-01T00:00:00.000Z"' old.ndjson | head -1500
	} > live.ndjson
	mkfifo fifo
	dd-history -l "$LAKE" --flush-interval 50ms < fifo 2> live.err &
	BG2=$!
	exec 5> fifo
	dd-archive -q -l "$LAKE" --now 2026-12-01 --older-than 1d --chunk 25 > run.json &
	BG=$!
	# Feed the writer while the archive runs.
	split -l 200 live.ndjson piece.
	for p in piece.*; do
		cat "$p" >&5
		sleep 0.02
	done
	code=0
	wait $BG || code=$?
	BG=
	[ "$code" -eq 0 ]
	exec 5>&-
	code=0
	wait $BG2 || code=$?
	BG2=
	[ "$code" -eq 0 ] || { cat live.err; false; }
	grep -q "rejected 0" live.err
	refute grep -qi "locked\\|busy" live.err
	cat old.ndjson live.ndjson > all.ndjson
	none_lost all.ndjson
	# A rerun archives what arrived meanwhile for deliveries being archived.
	run dd-archive -l "$LAKE" --now 2026-12-01 --older-than 1d
	assert_success
	none_lost all.ndjson
	# 1796083200000 is the cutoff, 2026-11-30T00:00:00Z.
	[ -z "$(sqlite3 "$DB" "SELECT id FROM deliveries WHERE ended_ms < 1796083200000")" ]
}

@test "disk full in the lake: exit 4; history.db keeps every delivery not durable in the lake" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
	gen_deliveries 3000 1793577600 60 > in.ndjson
	dd-history -q < in.ndjson
	sqlite3 "$DB" "SELECT d.id, e.eid, e.line FROM events e JOIN deliveries d USING (dkey) ORDER BY 1, 2" > before
	mkdir lake
	mount -t tmpfs -o size=96k tmpfs lake 2>/dev/null || skip "cannot mount a tmpfs here"
	MNT=$BATS_TEST_TMPDIR/lake
	run -4 dd-archive -l "$LAKE" --now 2027-01-01 --chunk 100
	assert_output --partial "No space left on device"
	# Some chunks made it, the rest stayed whole.
	left=$(dd-history stats | jq .deliveries)
	[ "$left" -gt 0 ] && [ "$left" -lt 3000 ]
	sqlite3 "$DB" "SELECT d.id, e.eid, e.line FROM events e JOIN deliveries d USING (dkey) ORDER BY 1, 2" > after
	# What is left is exactly what was there, untouched.
	[ -z "$(comm -13 before after)" ]
	cut -f1 -d'|' after | sort -u > kept
	cut -f1 -d'|' before | sort -u | comm -23 - kept > gone
	# Every event of every delivery that left is in a visible part.
	lake_ids | sort -u > inlake
	grep -F -f <(sed 's/.*/"subject":"&"/' gone) in.ndjson | jq -r .id | sort -u | comm -23 - inlake > missing
	[ ! -s missing ]
	none_lost in.ndjson
	# Move what the small disk holds to the larger one beneath it.
	cp -a lake saved
	umount "$MNT"
	MNT=
	cp -a saved/. lake/
	# With room again, a rerun finishes the job.
	run dd-archive -l "$LAKE" --now 2027-01-01
	assert_success
	[ "$(dd-history stats | jq .deliveries)" -eq 0 ]
	none_lost in.ndjson
}

@test "SIGTERM stops between deliveries with exit 143; a rerun completes" {
	gen_deliveries 3000 1793577600 60 > in.ndjson
	dd-history -q < in.ndjson
	dd-archive -q -l "$LAKE" --now 2027-01-01 --chunk 20 > run.json &
	BG=$!
	sleep 0.15
	kill -TERM $BG
	code=0
	wait $BG || code=$?
	BG=
	[ "$code" -eq 143 ] || [ "$code" -eq 0 ]
	jq -e .deliveriesArchived run.json > /dev/null
	none_lost in.ndjson
	run dd-archive -l "$LAKE" --now 2027-01-01
	assert_success
	none_lost in.ndjson
}

@test "an event of an archived delivery is appended to its history in the lake, never a partial record" {
	gen_deliveries 50 1793577600 600 > in.ndjson
	dd-history -q < in.ndjson
	run dd-archive -l "$LAKE" --now 2027-01-01
	[ "$(summary .deliveriesArchived)" -eq 50 ]
	# A replay of the delivery's first two events (created, to pickup),
	# and a status that comes late, after the archiving.
	{
		grep -F '"subject":"d-0000003"' in.ndjson | head -2
		grep -F '"subject":"d-0000003"' in.ndjson | tail -1 | jq -c '.id = "late-1" | .time = "2026-11-05T00:00:00.000Z"'
	} > again.ndjson
	run --separate-stderr dd-history -l "$LAKE" < again.ndjson
	assert_success
	[[ "$stderr" == *"stored 0 events (0 duplicates), 0 new deliveries; 3 events of archived deliveries appended to the lake"* ]] || fail "$stderr"
	run dd-history get d-0000003
	assert_failure 1
	# In the lake, in the partition of its own time, with the others.
	run dd-lake-query -l "$LAKE" --subject d-0000003
	[ "$(echo "$output" | jq -r .id | sort -u | wc -l)" -eq 5 ]
	echo "$output" | jq -e 'select(.id == "late-1")' > /dev/null
	[ -n "$(find "$LAKE/events/year=2026/month=11/day=05" -name 'part-*')" ]
	run dd-archive -l "$LAKE" --now 2027-01-01 --compact
	assert_success
	[ "$(summary .deliveriesArchived)" -eq 0 ]
	[ "$(summary .duplicatesDropped)" -eq 2 ]
	[ "$(dd-history stats | jq .deliveries)" -eq 0 ]
	[ "$(lake_ids | sort | uniq -d | wc -l)" -eq 0 ]
	none_lost in.ndjson
}

@test "--verify reports a damaged part and exits 1" {
	gen_deliveries 300 1793577600 300 | dd-history -q
	run dd-archive -l "$LAKE" --now 2027-01-01 --verify
	assert_success
	[ "$(summary .partsVerified)" -ge 2 ]
	p=$(find "$LAKE/events" -name 'part-*.ndjson.zst' | sort | head -1)
	size=$(stat -c %s "$p")
	printf '\xff\xff\xff\xff' | dd of="$p" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
	run -1 dd-archive -l "$LAKE" --verify
	assert_output --partial "damaged: $p"
	[ "$(summary .partsDamaged)" -eq 1 ]
	# Metadata that does not match its part is damage too.
	q=$(find "$LAKE/events" -name 'part-*.ndjson.zst' | sort | tail -1)
	m=$(dirname "$q")/_$(basename "$q" .ndjson.zst).meta
	sed -i '1s/"events":\([0-9]*\)/"events":1\1/' "$m"
	run -1 dd-archive -l "$LAKE" --verify
	[ "$(summary .partsDamaged)" -eq 2 ]
	refute_sanitizer
}
