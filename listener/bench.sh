#!/bin/sh
# bench.sh runs the listener's relay benchmarks (see bench_test.go) and
# prints, for each figure, the means over the runs, the ratios
# listener/baseline, listener/direct and baseline/direct of the means, the
# spread of listener/baseline over the runs (lowest and highest of each
# run's own ratio), and whether the listener meets its aim.
#
#	listener/bench.sh                  # one run of each, default -benchtime
#	COUNT=5 listener/bench.sh          # five runs of each
#	BENCHTIME=2s listener/bench.sh     # longer runs
#	listener/bench.sh old.txt          # ratios of a saved output, no run
#
# The output of go test goes to bench.txt (OUT=file to change it) in the
# current directory. BENCHSTAT=1 also prints benchstat's summary, fetched
# with go run (golang.org/x/perf is not a dependency of the module).
set -eu

out=${OUT:-$PWD/bench.txt}
if [ $# -gt 0 ]; then
	out=$1
else
	# The test binary is built once and run COUNT times over the whole
	# set, rather than with -count, so that the paths of one figure are
	# measured close together in time: the cores are shared, and their
	# load drifts.
	cd "$(dirname "$0")/.."
	bin=$(mktemp -d)
	trap 'rm -rf "$bin"' EXIT
	go test -c -o "$bin/listener.test" ./listener
	: >"$out"
	for _ in $(seq "${COUNT:-1}"); do
		(cd listener && "$bin/listener.test" -test.run '^$' \
			-test.bench 'Throughput|Cycle|IdleRelay' -test.benchtime "${BENCHTIME:-1s}") | tee -a "$out"
	done
fi

if [ "${BENCHSTAT:-0}" = 1 ]; then
	go run golang.org/x/perf/cmd/benchstat@latest "$out"
fi

# A line is "BenchmarkGroup/path/rest-P N value unit value unit ...", or,
# for a benchmark whose paths take turns in one run (Cycle),
# "BenchmarkGroup/rest-P N value path-unit value path-unit ...". The
# figures are grouped by the name without its path, and averaged.
awk '
function add(group, path, unit, v,   k) {
	if (!(group in seen)) { seen[group] = 1; order[++groups] = group }
	k = group SUBSEP path SUBSEP unit
	sum[k] += v
	cnt[k]++
	run[k, cnt[k]] = v
	units[group, unit] = 1
}
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)
	sub(/^Benchmark/, "", name)
	turns = 0
	for (i = 3; i < NF; i += 2) if ($(i + 1) ~ /^(direct|baseline|listener)-/) turns = 1
	if (turns) {
		for (i = 3; i < NF; i += 2) {
			u = $(i + 1)
			if (!match(u, /^(direct|baseline|listener)-/)) continue
			add(name, substr(u, 1, RLENGTH - 1), substr(u, RLENGTH + 1), $i)
		}
		next
	}
	n = split(name, part, "/")
	if (n < 2) next
	path = part[2]
	group = part[1]
	for (i = 3; i <= n; i++) group = group "/" part[i]
	for (i = 3; i < NF; i += 2) add(group, path, $(i + 1), $i)
}
function mean(g, p, u,   k) {
	k = g SUBSEP p SUBSEP u
	return (k in cnt) ? sum[k] / cnt[k] : ""
}
function ratio(a, b) {
	if (a == "" || b == "" || b == 0) return "-"
	return sprintf("%.3f", a / b)
}
# spread is the lowest and the highest, over the runs, of the
# listener/baseline ratio of each run, of unit u in group g.
function spread(g, u,   kl, kb, n, r, x, lo, hi) {
	kl = g SUBSEP "listener" SUBSEP u
	kb = g SUBSEP "baseline" SUBSEP u
	if (!(kl in cnt) || !(kb in cnt)) return "-"
	n = cnt[kl] < cnt[kb] ? cnt[kl] : cnt[kb]
	for (r = 1; r <= n; r++) {
		if (run[kb, r] == 0) return "-"
		x = run[kl, r] / run[kb, r]
		if (r == 1 || x < lo) lo = x
		if (r == 1 || x > hi) hi = x
	}
	return sprintf("%.3f-%.3f", lo, hi)
}
function fig(x) {
	if (x == "") return "-"
	return sprintf("%.4g", x)
}
function aim(g, u, d, base, lis) {
	if (base == "" || lis == "" || base == 0) return ""
	if (u == "MB/s" && g ~ /^Throughput/) return (lis / base >= 1.0) ? "ok (>= 1.0x)" : "MISSED (>= 1.0x)"
	if (u == "cpu-s/GiB") return (lis / base <= 1.0) ? "ok (<= 1.0x)" : "MISSED (<= 1.0x)"
	if (u == "cycles/s") return (lis / base >= 1.1) ? "ok (>= 1.1x)" : "MISSED (>= 1.1x)"
	if (u == "KiB/conn") return (lis <= 12) ? "ok (<= 12 KiB)" : "MISSED (<= 12 KiB)"
	if (u == "fds/conn") return (lis <= 2) ? "ok (<= 2)" : "MISSED (<= 2)"
	return ""
}
END {
	figs["Throughput"] = "MB/s cpu-s/GiB user-ns/op sys-ns/op"
	figs["Cycle"] = "cycles/s user-ns/op sys-ns/op allocs/op B/op"
	figs["IdleRelay"] = "KiB/conn heapKiB/conn stackKiB/conn fds/conn pipes/conn goroutines/conn"
	printf "\n%-28s %-16s %10s %10s %10s %9s %13s %9s %9s  %s\n", "benchmark", "figure", "direct", "baseline", "listener", "lis/base", "(runs)", "lis/dir", "base/dir", "aim (listener)"
	for (j = 1; j <= groups; j++) {
		g = order[j]
		top = g
		sub(/\/.*/, "", top)
		nu = split(figs[top], us, " ")
		for (i = 1; i <= nu; i++) {
			u = us[i]
			if (!((g, u) in units)) continue
			d = mean(g, "direct", u); b = mean(g, "baseline", u); l = mean(g, "listener", u)
			printf "%-28s %-16s %10s %10s %10s %9s %13s %9s %9s  %s\n", g, u, fig(d), fig(b), fig(l), ratio(l, b), spread(g, u), ratio(l, d), ratio(b, d), aim(g, u, d, b, l)
		}
	}
}' "$out"
