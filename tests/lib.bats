#!/usr/bin/env bats
# The library pieces every program stands on, driven by dd-libcheck
# (tests/libcheck.c): envelope scanner, JSON lookups, times, line reader,
# reject records, CSV in and tabular out.

load common

ev() {	# ev TIME [EXTRA-ATTRS] [DATA]: one event line
	printf '{"specversion":"1.0","id":"e1","source":"/t","type":"x.y","time":"%s"%s,"data":%s}\n' \
		"$1" "${2:-}" "${3:-{\}}"
}

# table FILE-OF-CASES CMD...: each case "input|expected"; run CMD on input.
table() {
	local in want
	while IFS='|' read -r in want; do
		run "$@" <<<"$in"
		[ "$output" = "$want" ] || fail "input: $in
expected: $want
actual:   $output"
	done
}

@test "scanner: a valid event gives its attributes, times in UTC" {
	run dd-libcheck scan <<<"$(ev 2026-11-26T03:41:13.123+01:00 ',"subject":"d-1"')"
	assert_output 'ok id=e1 type=x.y time=2026-11-26T02:41:13.123Z subject=d-1'
}

@test "scanner: rejects with the reason SPEC.md words" {
	table dd-libcheck scan <<'CASES'
{"specversion":"1.0","id":"e1","source":"/t","type":"x","data":{}}|reject: missing "time"
{"id":"e1","source":"/t","type":"x","time":"2026-11-26T00:00:00Z","data":{}}|reject: missing "specversion"
{"specversion":"0.3","id":"e1","source":"/t","type":"x","time":"2026-11-26T00:00:00Z","data":{}}|reject: unsupported specversion "0.3"
{"specversion":"1.0","source":"/t","type":"x","time":"2026-11-26T00:00:00Z","data":{}}|reject: missing "id"
{"specversion":"1.0","id":42,"source":"/t","type":"x","time":"2026-11-26T00:00:00Z","data":{}}|reject: "id" is not a string
{"specversion":"1.0","id":"","source":"/t","type":"x","time":"2026-11-26T00:00:00Z","data":{}}|reject: empty "id"
{"specversion":"1.0","id":"e1","type":"x","time":"2026-11-26T00:00:00Z","data":{}}|reject: missing "source"
{"specversion":"1.0","id":"e1","source":"/t","time":"2026-11-26T00:00:00Z","data":{}}|reject: missing "type"
{"specversion":"1.0","id":"e1","source":"/t","type":"x","time":"2026-13-26T00:00:00Z","data":{}}|reject: bad "time": "2026-13-26T00:00:00Z"
{"specversion":"1.0","id":"e1","source":"/t","type":"x","time":"yesterday","data":{}}|reject: bad "time": "yesterday"
{"specversion":"1.0","id":"e1","source":"/t","type":"x","time":"2026-11-26T00:00:00Z"}|reject: missing "data"
{"specversion":"1.0","id":"e1","source":"/t","type":"x","time":"2026-11-26T00:00:00Z","data":[1]}|reject: "data" is not an object
{"specversion":"1.0","id":"e1","source":"/t","type":"x","time":"2026-11-26T00:00:00Z","subject":7,"data":{}}|reject: "subject" is not a string
{"specversion":"1.0","id":"e1","id":"e2","source":"/t","type":"x","time":"2026-11-26T00:00:00Z","data":{}}|reject: duplicate attribute "id"
[1,2,3]|reject: not a JSON object
"just a string"|reject: not a JSON object
{"a":1|reject: invalid JSON at byte 7: truncated JSON
{"a":1,}|reject: invalid JSON at byte 8: expected a string key
{"a":01}|reject: invalid JSON at byte 7: expected ',' or '}'
{"a":"x\q"}|reject: invalid JSON at byte 8: bad escape in string
{"a":"tab	in"}|reject: invalid JSON at byte 10: control character in string
{"a":1} {"b":2}|reject: invalid JSON at byte 9: trailing characters after JSON
{"a":tru}|reject: invalid JSON at byte 6: unexpected character
{"a":-}|reject: invalid JSON at byte 7: bad number
{"a":1.}|reject: invalid JSON at byte 8: bad number
{"a":"\u12G4"}|reject: invalid JSON at byte 7: bad \u escape
{"a":"\ud800"}|reject: invalid JSON at byte 7: unpaired surrogate in \u escape
{"a":"\udbff"}|reject: invalid JSON at byte 7: unpaired surrogate in \u escape
{"a":"\udc00"}|reject: invalid JSON at byte 7: unpaired surrogate in \u escape
{"a":"x\ud800\u0041"}|reject: invalid JSON at byte 8: unpaired surrogate in \u escape
{"a":"\ud800\ud800"}|reject: invalid JSON at byte 7: unpaired surrogate in \u escape
{"a":"\ud83d"}|reject: invalid JSON at byte 7: unpaired surrogate in \u escape
{"a":"\ude00\ud83d"}|reject: invalid JSON at byte 7: unpaired surrogate in \u escape
CASES
}

@test "scanner: an id longer than 128 bytes is rejected, 128 is fine" {
	id=$(printf 'x%.0s' $(seq 128))
	run dd-libcheck scan <<<"{\"specversion\":\"1.0\",\"id\":\"$id\",\"source\":\"/t\",\"type\":\"x\",\"time\":\"2026-11-26T00:00:00Z\",\"data\":{}}"
	assert_output --partial "ok id=$id "
	run dd-libcheck scan <<<"{\"specversion\":\"1.0\",\"id\":\"${id}y\",\"source\":\"/t\",\"type\":\"x\",\"time\":\"2026-11-26T00:00:00Z\",\"data\":{}}"
	assert_output 'reject: "id" is longer than 128 bytes'
}

@test "scanner: escapes in strings come out right" {
	run dd-libcheck scan <<<'{"specversion":"1.0","id":"a\"b\\c\/d\u00e9\ud83d\ude00","source":"/t","type":"x","time":"2026-11-26T00:00:00Z","data":{}}'
	assert_output 'ok id=a"b\c/dé😀 type=x time=2026-11-26T00:00:00.000Z subject='
}

@test "scanner: invalid UTF-8, overlongs and surrogates in raw bytes are rejected" {
	for bad in '\xff' '\xc0\xaf' '\xed\xa0\x80' '\xf5\x80\x80\x80' '\xe2\x82'; do
		run dd-libcheck validate < <(printf "{\"a\":\"x${bad}y\"}\n")
		assert_output --partial 'invalid UTF-8'
	done
	run dd-libcheck validate < <(printf '{"a":"\xe2\x82\xac \xf0\x9f\x98\x80"}\n')
	assert_output valid
}

@test "scanner: nesting is bounded, deep but legal nesting is fine" {
	deep=$(printf '[%.0s' $(seq 300))
	run dd-libcheck validate <<<"$deep"
	assert_output --partial 'nested too deeply'
	ok="$(printf '[%.0s' $(seq 200))$(printf ']%.0s' $(seq 200))"
	run dd-libcheck validate <<<"$ok"
	assert_output valid
}

@test "scanner: the data check of known types names the field at fault" {
	run dd-libcheck scan <<<"$(ev 2026-11-26T00:00:00Z | sed 's/"x.y"/"drone.position"/; s/"data":{}/"data":{"droneId":"D1","location":{"lat":"1","lon":2},"speedMps":1,"battery":1}/')"
	assert_output 'reject: "data.location" is not a location {lat, lon}'
	run dd-libcheck scan <<<"$(ev 2026-11-26T00:00:00Z | sed 's/"x.y"/"package.removed"/; s/"data":{}/"data":{"packageId":"p"}/')"
	assert_output 'reject: missing "data.reason"'
}

@test "lookups: dotted paths, array indexes, last duplicate wins, big numbers kept as text" {
	run dd-libcheck get a.b.0 n a.b.1.c s x <<<'{"a":{"b":[1,{"c":"x\"y"}]},"n":12345678901234567890123,"s":"\u00e9","a":{"b":[9]}}'
	assert_output '9 12345678901234567890123 (absent) é (absent)'
	run dd-libcheck get a.b.1.c id <<<'{"a":{"b":[1,{"c":"x\"y"}]},"id":18446744073709551617}'
	assert_output 'x"y 18446744073709551617'
}

@test "lookups from the scan: envelope and data members as a walk finds them (duplicates, escaped keys, many members)" {
	many=$(for i in $(seq 1 20); do printf '"k%d":%d,' "$i" "$i"; done)
	table dd-libcheck envpath data.x data.y.z.1 data.q id subject data.k20 dataschema foo <<CASES
$(ev 2026-11-26T00:00:00Z '' '{"x":1,"y":{"z":[5,6]},"x":2}')|data.x=2 data.y.z.1=6 data.q= id=e1 subject= data.k20= dataschema= foo:walk
$(ev 2026-11-26T00:00:00Z ',"subject":"d-1","dataschema":"urn:x"' '{"x":1,"\u0078":3}')|data.x=3 data.y.z.1= data.q= id=e1 subject=d-1 data.k20= dataschema=urn:x foo:walk
$(ev 2026-11-26T00:00:00Z '' '{"\u0078":3,"x":{"a":1}}')|data.x={"a":1} data.y.z.1= data.q= id=e1 subject= data.k20= dataschema= foo:walk
$(ev 2026-11-26T00:00:00Z '' "{${many}\"x\":7,\"k20\":0}")|data.x=7 data.y.z.1= data.q= id=e1 subject= data.k20=0 dataschema= foo:walk
CASES
}

@test "lookups from the scan of stored lines: under data's objects too, as a walk finds them (duplicates, escapes, too many members, arrays, deeper)" {
	many=$(for i in $(seq 1 40); do printf '"k%d":%d,' "$i" "$i"; done)
	paths="data.loc.lat data.loc.lon data.loc.q data.a.b.c data.arr.1 data.n.x data.big.k40 data.big.k1 id"
	table dd-libcheck envpath-stored $paths <<CASES
$(ev 2026-11-26T00:00:00Z '' '{"loc":{"lat":1,"lon":2,"lat":3},"a":{"b":{"c":"x"}},"arr":[7,8],"n":5}')|data.loc.lat=3 data.loc.lon=2 data.loc.q= data.a.b.c=x data.arr.1=8 data.n.x= data.big.k40= data.big.k1= id=e1
$(ev 2026-11-26T00:00:00Z '' '{"loc":{"lat":1},"loc":{"lon":2}}')|data.loc.lat= data.loc.lon=2 data.loc.q= data.a.b.c= data.arr.1= data.n.x= data.big.k40= data.big.k1= id=e1
$(ev 2026-11-26T00:00:00Z '' '{"loc":{"lat":1,"\u006cat":4},"a":{"b":{}}}')|data.loc.lat=4 data.loc.lon= data.loc.q= data.a.b.c= data.arr.1= data.n.x= data.big.k40= data.big.k1= id=e1
$(ev 2026-11-26T00:00:00Z '' "{\"big\":{${many}\"k1\":0},\"loc\":{\"lat\":9}}")|data.loc.lat=9 data.loc.lon= data.loc.q= data.a.b.c= data.arr.1= data.n.x= data.big.k40=40 data.big.k1=0 id=e1
$(ev 2026-11-26T00:00:00Z '' "{\"loc\":{\"lat\":9},\"big\":{${many}\"k1\":0},\"n\":{\"x\":{\"y\":1}}}")|data.loc.lat=9 data.loc.lon= data.loc.q= data.a.b.c= data.arr.1= data.n.x={"y":1} data.big.k40=40 data.big.k1=0 id=e1
$(ev 2026-11-26T00:00:00Z '' '{ "loc" : { "lat" : 1.5 , "lon" : -2 } , "arr" : [ {"x":1} ] }')|data.loc.lat=1.5 data.loc.lon=-2 data.loc.q= data.a.b.c= data.arr.1= data.n.x= data.big.k40= data.big.k1= id=e1
CASES
	# And the same as the validating scan's lookups, over dd-sim's events.
	dd-sim telemetry -n 2000 --seed 5 > "$BATS_TEST_TMPDIR/tel"
	dd-libcheck envpath data.location.lat data.location.lon data.location.alt data.droneId < "$BATS_TEST_TMPDIR/tel" > "$BATS_TEST_TMPDIR/a"
	dd-libcheck envpath-stored data.location.lat data.location.lon data.location.alt data.droneId < "$BATS_TEST_TMPDIR/tel" > "$BATS_TEST_TMPDIR/b"
	cmp "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
	! grep -q DIFFER "$BATS_TEST_TMPDIR/b"
	grep -q 'data.location.lat=47' "$BATS_TEST_TMPDIR/b"
}

@test "stored lines: the structural scan finds what the validating scan finds; what it cannot decide goes to that scan" {
	# Valid events of every kind, odd but valid layouts, and dd-sim's bad lines.
	{
		dd-sim telemetry -n 3000 --seed 3
		ev 2026-11-26T00:00:00Z ' , "subject" : "a}b{" ' '{ "a" : [1,{"b":"]}"},[]] , "c":{} , "d":-1.5e3, "e":true,"f":null,"g":false }'
		ev 2026-11-26T00:00:00Z ',"subject":"x\"y"' '{"k":"\\"}'
		printf '  %s  \n' "$(ev 2026-11-26T00:00:00Z)"
	} > "$BATS_TEST_TMPDIR/valid"
	dd-sim telemetry -n 6000 --seed 3 --bad 0.3 > "$BATS_TEST_TMPDIR/bad"
	run dd-libcheck stored < "$BATS_TEST_TMPDIR/valid"
	assert_success
	[ "$(grep -c '^same$' <<<"$output")" -eq "$(wc -l < "$BATS_TEST_TMPDIR/valid")" ] || fail "$(grep -v '^same$' <<<"$output" | head -5)"
	# A bad line is told the same reason by both, except faults of a
	# number inside a nested value, which only the validating scan sees
	# (such a line is never stored: dd_lake_add takes scanned lines).
	dd-libcheck stored < "$BATS_TEST_TMPDIR/bad" > "$BATS_TEST_TMPDIR/got"
	grep -q '^same: ' "$BATS_TEST_TMPDIR/got"
	! grep -v '^same' "$BATS_TEST_TMPDIR/got" | grep -Ev "^differ: stored ok, validated invalid JSON at byte [0-9]+: (unexpected character|bad number|expected ',' or '}')$"
}

@test "numbers: the fast decimal path gives strtod's double, bit for bit" {
	run dd-libcheck numbers 200000 7
	assert_success
	assert_output ok
}

@test "times: RFC 3339 offsets, fractions, leap years, before 1970" {
	while IFS='|' read -r in want; do
		run dd-libcheck time "$in"
		[ "$output" = "$want" ] || fail "time $in: expected $want, got $output"
	done <<'CASES'
2026-11-26T00:30:00.5+01:00|1795649400500 2026-11-25T23:30:00.500Z
2026-11-26T23:59:59.999Z|1795737599999 2026-11-26T23:59:59.999Z
2026-11-26T23:59:59.999-00:01|1795737659999 2026-11-27T00:00:59.999Z
2024-02-29T23:59:59.123456789Z|1709251199123 2024-02-29T23:59:59.123Z
1969-12-31T23:59:59.999Z|-1 1969-12-31T23:59:59.999Z
2026-11-26t10:00:00z|1795687200000 2026-11-26T10:00:00.000Z
2026-11-26 10:00:00+14:00|1795636800000 2026-11-25T20:00:00.000Z
2026-02-29T00:00:00Z|bad
2026-11-26T24:00:00Z|bad
2026-11-26T10:00:00|bad
2026-11-26T10:00:00.Z|bad
2026-11-26T10:00:00+1:00|bad
2026-11-26|bad
CASES
}

@test "times: arguments (dates, now, relative) and durations" {
	now=1795687200000	# 2026-11-26T10:00:00Z
	run dd-libcheck arg $now now -7d +12h 2026-11-01 2026-11-26T10:00:00+02:00 -90s
	assert_output "$(printf '%s\n' 2026-11-26T10:00:00.000Z 2026-11-19T10:00:00.000Z \
		2026-11-26T22:00:00.000Z 2026-11-01T00:00:00.000Z 2026-11-26T08:00:00.000Z \
		2026-11-26T09:58:30.000Z)"
	run dd-libcheck arg $now yesterday
	assert_failure
	run dd-libcheck duration 500ms 90s 15m 12h 30d 2w
	assert_output "$(printf '%s\n' 500 90000 900000 43200000 2592000000 1209600000)"
	for bad in 10 1.5h -3s h 5y ''; do
		run dd-libcheck duration "$bad"
		assert_output bad
	done
}

@test "lines: numbers, offsets, CRLF, a last line without newline, over-long lines" {
	run dd-libcheck lines 10 < <(printf 'a\r\nbbbbbbbbbbbbbbbbbbbbbbbbb\n\nc\nlast')
	assert_output "$(printf '%s\n' '1 0 1 2 0' '2 3 25 25 1' '3 29 0 0 0' '4 30 1 1 0' '5 32 4 4 0')"
}

@test "lines: a 3 MiB line keeps its first 4 KiB, the next line is intact" {
	run dd-libcheck lines 1048576 < <(head -c 3145728 /dev/zero | tr '\0' x; printf '\nok\n')
	assert_output "$(printf '%s\n' '1 0 4096 3145728 1' '2 3145729 2 2 0')"
}

@test "rejects: stderr line and NDJSON record, raw bytes kept for invalid UTF-8" {
	run dd-libcheck reject "$BATS_TEST_TMPDIR/r.ndjson" < <(printf 'ok "q"\n\xff\xfebad\n')
	assert_output "$(printf '%s\n' 'dd-libcheck: stdin:1: test' 'dd-libcheck: stdin:2: test')"
	run jq -c . "$BATS_TEST_TMPDIR/r.ndjson"
	assert_success
	assert_line --index 0 '{"source":"stdin","line":1,"offset":0,"error":"test","raw":"ok \"q\""}'
	assert_line --index 1 "{\"source\":\"stdin\",\"line\":2,\"offset\":7,\"error\":\"test\",\"raw\":\"$(printf '\xef\xbf\xbd\xef\xbf\xbd')bad\",\"rawBase64\":\"//5iYWQ=\"}"
	# rawBase64 holds the exact bytes
	run bash -c "jq -r 'select(.rawBase64).rawBase64' '$BATS_TEST_TMPDIR/r.ndjson' | base64 -d | od -An -tx1"
	assert_output ' ff fe 62 61 64'
}

@test "rejects: an over-long line keeps 4 KiB in raw and says it was cut" {
	head -c 2097152 /dev/zero | tr '\0' y > "$BATS_TEST_TMPDIR/big"
	dd-libcheck reject "$BATS_TEST_TMPDIR/r.ndjson" < "$BATS_TEST_TMPDIR/big" 2>/dev/null
	run jq -r '[(.raw|length), .truncated] | @tsv' "$BATS_TEST_TMPDIR/r.ndjson"
	assert_output "$(printf '4096\ttrue')"
}

@test "csv in: quoting, newlines in fields, malformed rows reported by line and skipped" {
	run dd-libcheck csv < <(printf 'id,name\n1,"a,b"\n2,"multi\nline"\n3,"bad"x\n4,ok\r\n')
	assert_output "$(printf '%s\n' '1: [id] [name]' '2: [1] [a,b]' '3: [2] [multi' 'line]' \
		'5: error: error parsing data while strict checking enabled' '6: [4] [ok]')"
}

@test "out: CSV quotes what needs it, TSV escapes, table aligns" {
	in=$(printf 'a\tb\nx,1\t"q"\nlong\\nline\tü\n')
	run dd-libcheck out csv <<<"$in"
	assert_output "$(printf 'a,b\r\n"x,1","""q"""\r\n"long\nline",ü\r')"
	run dd-libcheck out tsv <<<"$in"
	assert_output "$(printf 'a\tb\nx,1\t"q"\nlong\\nline\tü')"
	run dd-libcheck out table <<<"$in"
	assert_output "$(printf 'a          b\nx,1        "q"\nlong line  ü')"
}

@test "the one order of a delivery's events: time, then the step of its life, then the id" {
	o() {	# o ID TYPE TIME [DATA]
		printf '{"specversion":"1.0","id":"%s","source":"/t","type":"%s","time":"%s","subject":"d-1","data":%s}\n' \
			"$1" "$2" "$3" "${4:-{\}}"
	}
	T=2026-11-26T10:00:00Z
	run dd-libcheck order < <(
		o z1 drone.returned $T
		o y1 drone.delivered $T
		o x1 delivery.status $T '{"stage":"failed"}'
		o w1 delivery.cancelled $T
		o v1 drone.position $T
		o u1 drone.picked-up $T
		o t1 delivery.status $T '{"stage":"headed-to-pickup"}'
		o s1 drone.dispatched $T
		o r2 delivery.rescheduled $T
		o r1 delivery.status $T '{"stage":"rescheduled"}'
		o q1 delivery.scheduled $T
		o p1 delivery.status $T '{"stage":"created"}'
		o a0 delivery.scheduled 2026-11-26T09:59:59.999Z
		o b0 weather.report $T
		o c0 delivery.status $T '{"stage":"lost"}'
		o d0 delivery.rejected $T)
	assert_output "$(printf '%s\n' '2 a0' '2 p1' '2 q1' '4 r1' '4 r2' '6 s1' '6 t1' '8 u1' '9 v1' \
		'10 y1' '12 w1' '14 x1' '16 d0' '18 z1' '19 b0' '19 c0')"
}

@test "dataschema: absent is version 1; another major version, or another type's, is rejected" {
	d='{"deliveryId":"d-1","reason":"x"}'
	table dd-libcheck scan <<CASES
{"specversion":"1.0","id":"e1","source":"/t","type":"delivery.cancelled","time":"2026-11-26T00:00:00Z","data":$d}|ok id=e1 type=delivery.cancelled time=2026-11-26T00:00:00.000Z subject=
{"specversion":"1.0","id":"e1","source":"/t","type":"delivery.cancelled","dataschema":"urn:dd:schema:delivery.cancelled:1","time":"2026-11-26T00:00:00Z","data":$d}|ok id=e1 type=delivery.cancelled time=2026-11-26T00:00:00.000Z subject=
{"specversion":"1.0","id":"e1","source":"/t","type":"delivery.cancelled","dataschema":"urn:dd:schema:delivery.cancelled:2","time":"2026-11-26T00:00:00Z","data":$d}|reject: unknown schema version: "dataschema" names delivery.cancelled version 2; this build reads version 1
{"specversion":"1.0","id":"e1","source":"/t","type":"delivery.cancelled","dataschema":"urn:dd:schema:delivery.cancelled:01","time":"2026-11-26T00:00:00Z","data":$d}|reject: "dataschema" is not urn:dd:schema:delivery.cancelled:MAJOR: "urn:dd:schema:delivery.cancelled:01"
{"specversion":"1.0","id":"e1","source":"/t","type":"delivery.cancelled","dataschema":"urn:dd:schema:delivery.scheduled:1","time":"2026-11-26T00:00:00Z","data":$d}|reject: "dataschema" is not urn:dd:schema:delivery.cancelled:MAJOR: "urn:dd:schema:delivery.scheduled:1"
{"specversion":"1.0","id":"e1","source":"/t","type":"delivery.cancelled","dataschema":7,"time":"2026-11-26T00:00:00Z","data":$d}|reject: "dataschema" is not a string
{"specversion":"1.0","id":"e1","source":"/t","type":"x.y","dataschema":"urn:other:3","time":"2026-11-26T00:00:00Z","data":{}}|ok id=e1 type=x.y time=2026-11-26T00:00:00.000Z subject=
CASES
}

@test "kafka's light walk: the top-level string member only, never a nested one, never past the line" {
	table dd-libcheck ktop subject <<'CASES'
{"id":"e1","subject":"d-1","data":{}}|[d-1]
{"data":{"subject":"inner"},"subject":"d-2"}|[d-2]
{"data":{"subject":"inner"}}|none
{"a":["subject","x"],"subject" : "d-3"}|[d-3]
{"a":"\"subject\":\"no\"","subject":"d-4"}|[d-4]
{"subject":"d\"5"}|[d\"5]
{"subject":7}|none
{"subject":"unended|none
{"subject"|none
not json|none
["subject","d-6"]|none
CASES
	table dd-libcheck ktop time <<'CASES'
{"time":"2026-11-26T00:00:00Z","data":{"time":"x"}}|[2026-11-26T00:00:00Z]
{"data":{"time":"x"},"time":"t2"}|[t2]
CASES
}
