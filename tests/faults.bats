#!/usr/bin/env bats
# Faults and hostile input across the toolkit (SPEC.md "Bad input, errors
# and exit codes"): a full disk under every store and the lake, read-only
# and non-SQLite stores, damaged lake parts, a stdout closed early,
# SIGTERM mid-stream, and every kind of bad line dd-sim makes, fed to
# every filter. Each must give SPEC's exit code and message and lose
# nothing committed. Mounts need root; they are undone in teardown.

load common
bats_require_minimum_version 1.5.0

FLEET="$DD_ROOT/data/fleet.csv"

# One small day of the whole pipeline, shared by the tests: requests,
# the scheduler's events, and the merged stream after dd-track.
setup_file() {
	local d=$BATS_FILE_TMPDIR
	export DD_HOME="$d/home"
	dd-sim requests -n 300 --seed 11 --start 2026-11-01T06:00:00Z > "$d/req"
	dd-schedule -q --fleet "$FLEET" < "$d/req" > "$d/sched"
	dd-sim fly -q --seed 11 < "$d/sched" | dd-track -q > "$d/all"
	rm -rf "$d/home"
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	D=$BATS_FILE_TMPDIR
	BG=
}

teardown() {
	if [ -n "$BG" ]; then
		kill "$BG" 2>/dev/null || true
		wait "$BG" 2>/dev/null || true
	fi
	exec 7>&- 2>/dev/null || true
	if [ -f "$BATS_TEST_TMPDIR/.mounts" ]; then
		tac "$BATS_TEST_TMPDIR/.mounts" | while read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m" || true
		done
		rm -f "$BATS_TEST_TMPDIR/.mounts"
	fi
}

# A tmpfs of SIZE at DIR (created), undone in teardown.
tmpfs() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2" tmpfs "$1" 2>/dev/null || skip "cannot mount a tmpfs (needs root)"
	realpath "$1" >> "$BATS_TEST_TMPDIR/.mounts"
}

# Fill the file system of DIR until only N bytes are left.
fill() {
	local avail
	avail=$(df -B1 --output=avail "$1" | tail -1)
	fallocate -l $((avail - $2)) "$1/filler"
}

# The ids of an NDJSON list, sorted.
ids() { jq -r "$1" | sort; }

# ---- a full disk under each store ----

# store_full PROG DBNAME INPUT KEY [OPTION...]: PROG fills a store on a
# tmpfs from the first half of INPUT; the disk is then all but full and
# the whole INPUT replayed: exit 4, "PROG: STORE: database or disk is
# full", and every entity committed before is still there and readable;
# with space again, a rerun gives what a clean run gives.
store_full() {
	local prog=$1 name=$2 in=$3 key=$4
	shift 4
	tmpfs m 16m
	local db="$PWD/m/$name"
	head -n $(($(wc -l < "$in") / 2)) "$in" | $prog -q --db "$db" "$@" > /dev/null
	$prog list --db "$db" | ids "$key" > before
	[ -s before ]
	fill m 65536
	run --separate-stderr $prog --db "$db" --batch 200 "$@" < "$in"
	refute_sanitizer
	[ "$status" -eq 4 ] || fail "exit $status, not 4: $stderr"
	[[ "$stderr" == *"$prog: $db: "*"database or disk is full"* ]] || fail "$stderr"
	# Committed before the fault: still there, and the store is sound.
	$prog list --db "$db" | ids "$key" > after
	comm -23 before after > lost
	[ ! -s lost ] || fail "lost after the fault: $(head -3 lost)"
	[ "$(sqlite3 "$db" 'PRAGMA integrity_check')" = ok ]
	# With room again, a rerun of the whole input ends as a clean run.
	rm m/filler
	$prog -q --db "$db" "$@" < "$in" > /dev/null
	$prog -q --db clean.db "$@" < "$in" > /dev/null
	cmp <($prog list --db clean.db) <($prog list --db "$db")
}

@test "disk full: dd-track" {
	store_full dd-track track.db "$D/all" .deliveryId --retain 30d
}

@test "disk full: dd-package" {
	store_full dd-package package.db "$D/sched" .packageId
}

@test "disk full: dd-history" {
	store_full dd-history history.db "$D/all" .deliveryId
}

@test "disk full: dd-schedule" {
	store_full dd-schedule schedule.db "$D/req" .deliveryId --fleet "$FLEET"
}

lake_ids() { dd-lake-query -l "$1" --fields id --format tsv | tail -n +2 | sort; }

@test "disk full: dd-lake-ingest" {
	tmpfs m 16m
	head -n 8000 "$D/all" | dd-lake-ingest -q -l m/lake
	lake_ids m/lake > before
	[ "$(wc -l < before)" -eq 8000 ]
	fill m 65536
	run dd-lake-ingest -l m/lake < "$D/all"
	refute_sanitizer
	assert_failure 4
	assert_output --regexp "dd-lake-ingest: m/lake/events/year=2026/month=11/day=01/[^ ]*: No space left on device"
	# Earlier parts intact, no partial part visible, no temporary left.
	run dd-lake-query -l m/lake --fields id --format tsv
	assert_success
	cmp before <(printf '%s\n' "${lines[@]:1}" | sort)
	[ -z "$(find m/lake -name '.*')" ]
	rm m/filler
	dd-lake-ingest -q -l m/lake < "$D/all"
	cmp <(jq -r .id "$D/all" | sort -u) <(lake_ids m/lake)
}

@test "disk full: dd-archive into a full lake keeps in history.db what the lake does not hold" {
	dd-history -q < "$D/all"
	dd-history list | ids .deliveryId > all.ids
	tmpfs m 16m
	fill m 65536
	run --separate-stderr dd-archive -l m/lake --now 2027-01-15 --chunk 40
	refute_sanitizer
	[ "$status" -eq 4 ] || fail "exit $status: $stderr"
	# (the events' parts, or the deliveries view's)
	[[ "$stderr" == *"dd-archive: m/lake/events/"*": No space left on device"* ||
	   "$stderr" == *"dd-archive: m/lake/deliveries/"*": No space left on device"* ]] || fail "$stderr"
	# Every delivery is in history.db or, whole, in the lake.
	dd-history list | ids .deliveryId > kept
	dd-lake-query -l m/lake --fields subject --format tsv | tail -n +2 | sort -u > moved
	cmp all.ids <(sort -u kept moved)
	[ -z "$(comm -12 kept moved)" ]
	rm m/filler
	dd-archive -q -l m/lake --now 2027-01-15 > /dev/null
	[ -z "$(dd-history list)" ]
	cmp <(jq -r 'select(.type | startswith("delivery.")) | .id' "$D/all" | sort -u) <(lake_ids m/lake)
}

# ---- stores that cannot be written or are not stores ----

@test "a store on a read-only file system: filters exit 4 naming it; get, list and stats still answer" {
	tmpfs m 16m
	export DD_HOME=$PWD/m
	dd-track -q < "$D/all" > /dev/null
	dd-package -q < "$D/sched"
	dd-history -q < "$D/all"
	dd-schedule -q --fleet "$FLEET" < "$D/req" > /dev/null
	for p in dd-track dd-package dd-history dd-schedule; do $p list > "$p.list"; done
	mount -o remount,ro m
	for p in dd-track dd-package dd-history dd-schedule; do
		name=${p#dd-}
		run $p < "$D/all"
		refute_sanitizer
		[ "$status" -eq 4 ] || fail "$p: exit $status: $output"
		assert_output --partial "$p: $DD_HOME/$name.db"
		assert_output --regexp "Read-only file system|readonly database"
		run $p list
		assert_success
		cmp "$p.list" <(printf '%s\n' "${lines[@]}")
		run $p stats
		assert_success
	done
	run dd-track get "$(head -1 dd-track.list | jq -r .deliveryId)"
	assert_success
	run dd-archive --now 2027-01-15
	assert_failure 4
	assert_output --partial "$DD_HOME/history.db"
}

@test "a read-only store file (a read-only bind mount): filters exit 4 naming it; queries answer" {
	dd-track -q < "$D/all" > /dev/null
	dd-package -q < "$D/sched"
	dd-history -q < "$D/all"
	dd-schedule -q --fleet "$FLEET" < "$D/req" > /dev/null
	for p in dd-track dd-package dd-history dd-schedule; do
		db=$DD_HOME/${p#dd-}.db
		$p list > before
		mount --bind "$db" "$db" 2>/dev/null || skip "cannot bind-mount (needs root)"
		realpath "$db" >> "$BATS_TEST_TMPDIR/.mounts"
		mount -o remount,ro,bind "$db"
		run $p < "$D/all"
		refute_sanitizer
		[ "$status" -eq 4 ] || fail "$p: exit $status: $output"
		assert_output --regexp "$p: $db: .*(readonly database|Read-only file system)"
		run $p list
		assert_success
		cmp before <(printf '%s\n' "${lines[@]}")
	done
}

@test "a store that is not SQLite: exit 4 and a message naming the file, for filters and queries" {
	for name in track package history schedule; do
		head -c 8192 /dev/urandom > "$DD_HOME/$name.db"
	done
	cp "$DD_HOME/track.db" before
	for cmd in "dd-track" "dd-track list" "dd-package" "dd-package list" "dd-history" \
	    "dd-history stats" "dd-schedule" "dd-schedule list" "dd-schedule supervise" \
	    "dd-archive --now 2027-01-15"; do
		p=${cmd%% *}
		case $p in dd-archive) name=history ;; *) name=${p#dd-} ;; esac
		run $cmd < "$D/all"
		refute_sanitizer
		[ "$status" -eq 4 ] || fail "$cmd: exit $status: $output"
		[[ "$output" == *"$p: $DD_HOME/$name.db: "*"file is not a database"* ]] ||
			fail "$cmd: $output"
	done
	# Nothing was written over it.
	cmp before "$DD_HOME/track.db"
}

# ---- damaged lake parts ----

@test "a part replaced by garbage and a truncated part: dd-lake-query exits 1 naming each, reads the others; dd-archive --verify reports them" {
	# Four days apart (a flight may end the next day).
	for day in 02 05 08 11; do
		dd-sim telemetry -n 300 --seed $day --deliveries 10 --days 1 --start 2026-11-${day}T00:00:00Z
	done > in
	dd-lake-ingest -q < in
	P=$DD_HOME/lake/events/year=2026/month=11
	garbage=$(ls $P/day=05/part-*)
	truncated=$(ls $P/day=08/part-*)
	head -c "$(stat -c %s "$garbage")" /dev/urandom > "$garbage"
	truncate -s $(($(stat -c %s "$truncated") / 2)) "$truncated"
	run --separate-stderr dd-lake-query --fields id --format tsv
	refute_sanitizer
	assert_failure 1
	[[ "$stderr" == *"dd-lake-query: $garbage: "* ]] || fail "$stderr"
	[[ "$stderr" == *"dd-lake-query: $truncated: "* ]] || fail "$stderr"
	# Every event of the sound parts, and nothing that did not go in.
	printf '%s\n' "${lines[@]:1}" | sort > got
	jq -r 'select(.time[0:10] != "2026-11-05" and .time[0:10] != "2026-11-08") | .id' in |
		sort > sound
	[ "$(wc -l < sound)" -gt 600 ]
	[ -z "$(comm -23 sound got)" ] || fail "events of sound parts not read"
	[ -z "$(comm -23 got <(jq -r .id in | sort))" ] || fail "ids that did not go in"
	run --separate-stderr dd-archive --verify --now 2027-01-15
	refute_sanitizer
	assert_failure 1
	[ "$(jq .partsDamaged <<< "$output")" -eq 2 ]
	# Each named by its part: the decoding error, not the metadata
	# mismatch that follows from it.
	for p in "$garbage" "$truncated"; do
		[[ "$stderr" == *"damaged: $p: "* ]] || fail "$stderr"
	done
}

# ---- stdout closed early ----

# closed PROG...: run with stdout into `head -1`: exit 141, as if killed
# by SIGPIPE, and nothing said, whatever the amount written (jq, grep and
# zstd do the same); a full disk stays exit 4 (the disk-full tests).
closed() {
	"$@" 2> err | head -1 > first
	rc=${PIPESTATUS[0]}
	[ "$rc" -eq 141 ] || fail "$*: exit $rc: $(cat err)"
	[ ! -s err ] || fail "$*: $(cat err)"
	[ -s first ]
}

@test "stdout closed early (| head -1): exit 141, nothing said; stores stay consistent" {
	closed dd-sim requests -n 20000
	closed dd-sim telemetry -n 20000
	closed dd-sim fly -q < "$D/sched"
	closed dd-track -q --db t.db --retain 30d < "$D/all"
	dd-schedule -q --db s.db fleet import "$FLEET"
	closed dd-schedule -q --db s.db < "$D/req"
	dd-lake-ingest -q < "$D/all"
	closed dd-lake-query
	closed dd-lake-query --format csv --fields id,time,type
	# Rerunning is safe: the stores end as clean runs'.
	dd-track -q --db t.db --retain 30d < "$D/all" > /dev/null
	dd-track -q --db t2.db --retain 30d < "$D/all" > /dev/null
	cmp <(dd-track list --db t.db) <(dd-track list --db t2.db)
	dd-schedule -q --db s.db --fleet "$FLEET" < "$D/req" > /dev/null
	dd-schedule -q --db s2.db --fleet "$FLEET" < "$D/req" > /dev/null
	cmp <(dd-schedule list --db s.db) <(dd-schedule list --db s2.db)
}

# ---- SIGTERM mid-stream ----

# Wait until the pipe on fd 7 is empty: the reader has taken every byte.
drained() {
	python3 -c '
import fcntl, termios, struct, time, sys
for _ in range(600):
    n = struct.unpack("i", fcntl.ioctl(7, termios.FIONREAD, b"\0\0\0\0"))[0]
    if n == 0:
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)'
	sleep 0.3
}

# term PROG INPUT LIST...: PROG reads INPUT from a FIFO that stays open,
# with nothing committed by count or time; SIGTERM: exit 143 and LIST
# shows what a clean run of INPUT gives.
term() {
	local prog=$1 in=$2
	shift 2
	rm -f pipe
	mkfifo pipe
	$prog --flush-interval 1h --batch 1000000 "$@" < pipe > out 2> err & BG=$!
	exec 7> pipe
	cat "$in" >&7
	drained
	kill -TERM $BG
	rc=0
	wait $BG || rc=$?
	BG=
	exec 7>&-
	[ "$rc" -eq 143 ] || fail "$prog: exit $rc: $(cat err)"
}

@test "SIGTERM mid-stream: every store filter commits what it read and exits 143" {
	head -n 6000 "$D/all" > part
	head -n 300 "$D/sched" > part.sched
	head -n 150 "$D/req" > part.req
	term dd-track part --db t.db --retain 30d
	dd-track -q --db t2.db --retain 30d < part > out2
	cmp <(dd-track list --db t.db) <(dd-track list --db t2.db)
	cmp out out2
	term dd-package part.sched --db p.db
	dd-package -q --db p2.db < part.sched
	cmp <(dd-package list --db p.db) <(dd-package list --db p2.db)
	term dd-history part --db h.db
	dd-history -q --db h2.db < part
	cmp <(dd-history list --db h.db) <(dd-history list --db h2.db)
	term dd-schedule part.req --db s.db --fleet "$FLEET"
	dd-schedule -q --db s2.db --fleet "$FLEET" < part.req > out2
	cmp <(dd-schedule list --db s.db) <(dd-schedule list --db s2.db)
	cmp out out2
	term dd-lake-ingest part -l lake
	cmp <(jq -r .id part | sort -u) <(lake_ids lake)
}

# ---- every kind of bad line, fed to every filter ----

# The stream of setup_file with every kind of bad event line dd-sim makes
# spliced in; the manifest (mixed.man) gives each one's line number in
# the mixed stream and its kind.
mix() {
	dd-sim telemetry -n 600 --seed 7 --bad 0.2 --bad-manifest tm > tb
	python3 - "$1" tb tm mixed mixed.man <<'EOF'
import json, sys
good_f, bad_f, man_f, out_f, oman_f = sys.argv[1:]
good = open(good_f, 'rb').read().split(b'\n')[:-1]
bad = open(bad_f, 'rb').read().split(b'\n')[:-1]
man = [json.loads(l) for l in open(man_f)]
step = max(1, len(good) // (len(man) + 1))
out, oman, g = [], [], 0
for m in man:
    out += good[g:g + step]
    g += step
    out.append(bad[m['line'] - 1])
    oman.append({'line': len(out), 'kind': m['kind']})
out += good[g:]
open(out_f, 'wb').write(b''.join(l + b'\n' for l in out))
with open(oman_f, 'w') as f:
    for m in oman:
        f.write(json.dumps(m) + '\n')
EOF
	[ "$(jq -r .kind mixed.man | sort -u | wc -l)" -eq 20 ]
}

# bad PROG CONSUMES_SCHEDULED [OPTION...] < mixed > out: exit 1; exactly
# the expected lines rejected, each with "PROG: stdin:LINE: " on stderr and
# a --rejects record of its line and bytes. A delivery.scheduled without
# its droneId is bad only for the programs that consume that type.
bad() {
	local prog=$1 sched=$2 rc=0
	shift 2
	rm -f rj
	$prog --rejects rj "$@" < mixed > out 2> err || rc=$?
	[ "$rc" -eq 1 ] || fail "$prog: exit $rc: $(tail -3 err)"
	if [ "$sched" = 1 ]; then
		jq .line mixed.man > want
	else
		jq 'select(.kind != "data-field-missing") | .line' mixed.man > want
	fi
	cmp want <(jq .line rj) || fail "$prog: rejected other lines than the bad ones"
	cmp want <(sed -n "s/^${prog%% *}: stdin:\([0-9]*\): .*/\1/p" err) ||
		fail "$prog: stderr does not name each bad line"
	# Each record holds the raw line (its first 4 KiB when longer).
	python3 - rj mixed <<'EOF2'
import json, sys, base64
lines = open(sys.argv[2], 'rb').read().split(b'\n')
for l in open(sys.argv[1]):
    r = json.loads(l)
    raw = base64.b64decode(r['rawBase64']) if 'rawBase64' in r else r['raw'].encode()
    assert lines[r['line'] - 1][:4096] == raw[:4096], r['line']
    assert r['source'] == 'stdin' and r['error'], r
EOF2
}

@test "every kind of bad event line, fed to every filter: rejected with stdin:LINE and a --rejects record, exit 1, the good lines stored" {
	mix "$D/all"
	bad dd-track 1 --db t.db --retain 30d
	dd-track -q --db t2.db --retain 30d < "$D/all" > out2
	cmp <(dd-track list --db t.db) <(dd-track list --db t2.db)
	cmp out out2 || fail "dd-track passed on other lines than the good ones"
	bad dd-history 1 --db h.db
	dd-history -q --db h2.db < "$D/all"
	cmp <(dd-history list --db h.db) <(dd-history list --db h2.db)
	bad dd-lake-ingest 1 -l lake
	cmp <(jq -r .id "$D/all" | sort -u) <(lake_ids lake)
	# The scheduler takes the statuses fed back after its requests.
	dd-schedule -q --db s.db --fleet "$FLEET" < "$D/req" > /dev/null
	bad dd-schedule 0 --db s.db
	dd-schedule -q --db s2.db --fleet "$FLEET" < "$D/req" > /dev/null
	dd-schedule -q --db s2.db < "$D/all" > out2
	cmp <(dd-schedule list --db s.db) <(dd-schedule list --db s2.db)
	cmp out out2
	mix "$D/sched"
	bad dd-package 0 --db p.db
	dd-package -q --db p2.db < "$D/sched"
	cmp <(dd-package list --db p.db) <(dd-package list --db p2.db)
	# fly passes every line on and flies the good ones as before (in
	# another order: a bad line with a sound envelope moves its clock, as
	# any event does).
	bad "dd-sim fly" 1 -q --seed 11
	dd-sim fly -q --seed 11 < "$D/sched" | sort > out2
	python3 - mixed mixed.man out > good <<'EOF2'
import json, sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')
bad = {lines[json.loads(m)['line'] - 1] for m in open(sys.argv[2])}
sys.stdout.buffer.write(b''.join(l + b'\n' for l in open(sys.argv[3], 'rb').read().split(b'\n')[:-1]
    if l not in bad))
EOF2
	sort good | cmp out2 -
}

@test "every kind of bad request, fed to dd-schedule: a reject with stdin:LINE or a delivery.rejected (invalid), exit 1" {
	dd-sim requests -n 300 --seed 11 --bad 0.2 --bad-manifest man > rb
	[ "$(jq -r .kind man | sort -u | wc -l)" -eq 18 ]
	rc=0
	dd-schedule --db s.db --fleet "$FLEET" --rejects rj < rb > out 2> err || rc=$?
	[ "$rc" -eq 1 ] || fail "exit $rc: $(tail -3 err)"
	jq .line rj > rejected
	cmp rejected <(sed -n 's/^dd-schedule: stdin:\([0-9]*\): .*/\1/p' err)
	# Not JSON objects at all, bad operations, no request id: rejects.
	jq 'select(.expect != "schema" or .kind == "bad-op" or (.detail | test("requestId"))) |
	    .line' man > want
	cmp want rejected
	# The rest are requests with a field at fault: answered, not lost.
	invalid=$(jq -c 'select(.type == "delivery.rejected" and .data.reason == "invalid")' out |
		wc -l)
	[ "$invalid" -eq $(($(wc -l < man) - $(wc -l < want))) ]
	validate_events out
	# Every good request has its work item.
	dd-schedule list --db s.db | jq -r .requestId | sort -u > have
	[ -z "$(jq -r .requestId "$D/req" | sort -u | comm -23 - have)" ]
}
