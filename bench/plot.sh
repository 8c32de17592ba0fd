#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# plot.sh - medians and gnuplot PNGs from syslet-bench's raw CSV.
#
# Usage: bench/plot.sh CSV [OUTDIR]
#
# CSV is syslet-bench's CSV with or without the `BENCH,` prefix: a
# results/*/bench.csv, or a whole console log (then only the lines
# starting with `BENCH,` are read). Columns are found by name from the
# header row (workload,approach,depth,rep,ops,ns are needed; ops_per_sec
# and cpu_ns are optional); rows whose rep is `warmup` are ignored.
# OUTDIR (default: CSV's directory) receives:
#   medians.csv  workload,approach,depth,median_ops_per_sec,min,max,
#                median_ns_per_op,median_cpu_ns_per_op,reps
#                (min and max of ops/s over the reps; the CPU column is
#                empty without cpu_ns; ops/s = ops * 1e9 / ns per rep)
#   <workload>.png  every throughput workload (all but scale and handoff):
#                median reads/s against queue depth, one line per
#                approach with min..max bars, sync (depth 1) as a
#                horizontal line
#   scale.png    per-operation wall (and CPU) time in µs against the
#                number of outstanding operations, one line per approach
#   handoff.png  median µs per operation per approach, bars
# Needs gnuplot (Debian: gnuplot-nox; `ci/deps.sh --bench`) and awk. The
# terminal is pngcairo if gnuplot has it, else png (PLOT_TERM=png forces it).
# Exit: 0 ok, 1 error (no data, gnuplot failed), 2 usage.
set -euo pipefail

usage() {
	sed -n '6s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

die() {
	echo "plot.sh: $*" >&2
	exit 1
}

(($# == 1 || $# == 2)) || usage
[[ $1 != -* ]] || usage
csv=$1
[[ -r $csv && -f $csv ]] || die "cannot read $csv"
out=${2:-$(dirname -- "$csv")}
mkdir -p "$out"
command -v gnuplot >/dev/null || die "gnuplot not found (apt-get install gnuplot-nox, or ci/deps.sh --bench)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/syslet-plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The rows, without the prefix (and without CRs from the serial console).
if grep -q '^BENCH,' "$csv"; then
	tr -d '\r' <"$csv" | sed -n 's/^BENCH,//p' >"$tmp/raw.csv"
else
	tr -d '\r' <"$csv" >"$tmp/raw.csv"
fi

# Medians per (workload, approach, depth), in order of first appearance of
# the workload and the approach, then by depth.  mawk has no asort():
# insertion sort of the few reps of a group.
awk -F, -v OFS=, '
function med(n,   i, j, t) {
	for (i = 2; i <= n; i++) {
		t = v[i]
		for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]
		v[j + 1] = t
	}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function num(s) { return s ~ /^[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/ }
!hdr {
	if ($1 != "workload") next # anything before the header row
	for (i = 1; i <= NF; i++) col[$i] = i
	split("workload approach depth rep ops ns", need, " ")
	for (i = 1; i in need; i++)
		if (!(need[i] in col)) { print "plot.sh: no column " need[i] " in the header" > "/dev/stderr"; bad = 1; exit 1 }
	nf = NF; hdr = 1; next
}
$1 == "workload" { next } # a repeated header
{
	if (NF != nf) { print "plot.sh: line " NR ": " NF " fields, header has " nf ": skipped" > "/dev/stderr"; next }
	if ($col["rep"] == "warmup") next
	w = $col["workload"]; a = $col["approach"]; d = $col["depth"]
	if (w !~ /^[A-Za-z0-9_.+-]+$/ || a !~ /^[A-Za-z0-9_.+-]+$/) {
		print "plot.sh: line " NR ": odd workload or approach name: skipped" > "/dev/stderr"; next
	}
	ops = $col["ops"]; ns = $col["ns"]
	if (!num(d) || !num(ops) || !num(ns) || ns <= 0 || ops <= 0) {
		print "plot.sh: line " NR ": bad numbers: skipped" > "/dev/stderr"; next
	}
	if (!(w in wi)) wi[w] = ++nw
	if (!(a in ai)) ai[a] = ++na
	k = w SUBSEP a SUBSEP d
	if (!(k in n)) { key[++nk] = k; n[k] = 0; nc[k] = 0 }
	i = ++n[k]
	r[k, i] = ops * 1e9 / ns
	p[k, i] = ns / ops
	if ("cpu_ns" in col && num($col["cpu_ns"])) c[k, ++nc[k]] = $col["cpu_ns"] / ops
}
END {
	if (bad) exit 1
	if (!hdr) { print "plot.sh: no header row (workload,approach,...)" > "/dev/stderr"; exit 1 }
	for (q = 1; q <= nk; q++) {
		k = key[q]; split(k, f, SUBSEP)
		m = n[k]; lo = hi = r[k, 1]
		for (i = 1; i <= m; i++) { v[i] = r[k, i]; if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
		mr = med(m)
		for (i = 1; i <= m; i++) v[i] = p[k, i]
		mp = med(m)
		mc = ""
		if (nc[k] > 0) { for (i = 1; i <= nc[k]; i++) v[i] = c[k, i]; mc = sprintf("%.1f", med(nc[k])) }
		printf "%d,%d,%s,%s,%s,%s,%.1f,%.1f,%.1f,%.1f,%s,%d\n", wi[f[1]], ai[f[2]], f[3], \
			f[1], f[2], f[3], mr, lo, hi, mp, mc, m
	}
}' "$tmp/raw.csv" | sort -t, -k1,1n -k2,2n -k3,3n | cut -d, -f4- >"$tmp/medians.body"

[[ -s $tmp/medians.body ]] || die "no measurements (rows other than warm-up) in $csv"
{
	echo "workload,approach,depth,median_ops_per_sec,min,max,median_ns_per_op,median_cpu_ns_per_op,reps"
	cat "$tmp/medians.body"
} >"$out/medians.csv"
echo "plot.sh: $out/medians.csv"

# One gnuplot data file per (workload, approach): depth, median ops/s,
# min, max, ns/op, CPU ns/op (NaN if none), reps.
mkdir -p "$tmp/d"
awk -F, -v dir="$tmp/d" '{
	f = dir "/" $1 "," $2 ".dat"
	print $3, $4, $5, $6, $7, ($8 == "" ? "NaN" : $8), $9 >> f
	close(f)
}' "$tmp/medians.body"
approaches() { # of workload $1, in medians.csv order
	awk -F, -v w="$1" '$1 == w && !seen[$2]++ { print $2 }' "$tmp/medians.body"
}

# Terminal: pngcairo if this gnuplot has it, else libgd's png.
if [[ ${PLOT_TERM:-} != png ]] && gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
	term='pngcairo size 1100,700 noenhanced font "DejaVu Sans,11"'
else
	term='png size 1100,700 noenhanced'
fi

# Fixed colours and points per known approach, so plots look alike.
declare -A lt=([sync]=8 [syslet]=1 [chain16]=2 [threadlet]=3 [io_uring]=4 [pool]=5 [pthread]=6)
next_lt=9
style() { # approach -> its linetype number
	if [[ -z ${lt[$1]-} ]]; then
		lt[$1]=$next_lt
		next_lt=$((next_lt + 1))
	fi
	echo "${lt[$1]}"
}
preamble() { # output file
	cat <<-EOF
		set terminal $term
		set output '$1'
		set encoding utf8
		set datafile missing 'NaN'
		set linetype 1 lc rgb '#1f77b4' lw 2 pt 7 ps 1.2
		set linetype 2 lc rgb '#ff7f0e' lw 2 pt 5 ps 1.2
		set linetype 3 lc rgb '#2ca02c' lw 2 pt 9 ps 1.4
		set linetype 4 lc rgb '#d62728' lw 2 pt 11 ps 1.4
		set linetype 5 lc rgb '#9467bd' lw 2 pt 13 ps 1.4
		set linetype 6 lc rgb '#8c564b' lw 2 pt 15 ps 1.2
		set linetype 7 lc rgb '#e377c2' lw 2 pt 3 ps 1.2
		set linetype 8 lc rgb '#202020' lw 2 pt 1 ps 1.2
		set linetype 9 lc rgb '#17becf' lw 2 pt 4 ps 1.2
		set linetype 10 lc rgb '#bcbd22' lw 2 pt 6 ps 1.2
		set linetype cycle 10
		set grid xtics ytics mytics lc rgb '#d0d0d0'
		set key outside right top box opaque
		set border lw 1
	EOF
}
title() { # two lines (names are checked: no quotes or backslashes)
	printf 'set title "%s\\n%s"\n' "$1" "$2"
}
quote() { # a gnuplot single-quoted string
	printf "'%s'" "${1//\'/\'\'}"
}
xtics() { # the distinct depths of workload $1, as a gnuplot tic list
	cut -d, -f1,3 "$tmp/medians.body" | awk -F, -v w="$1" '$1 == w { print $2 }' |
		sort -n -u | paste -sd, - | sed 's/^/(/; s/$/)/'
}
range() { # workload $1: "lo:hi" around its depths on a log axis
	cut -d, -f1,3 "$tmp/medians.body" | awk -F, -v w="$1" '
		$1 == w { if (lo == "" || $2 < lo) lo = $2; if (hi == "" || $2 > hi) hi = $2 }
		END { printf "%g:%g", lo / 1.4, hi * 1.4 }'
}

describe() {
	case $1 in
	cached) echo "random 4 KiB reads of a tmpfs file (page cache)" ;;
	cached-bdev) echo "random 4 KiB reads from a null_blk device's page cache" ;;
	direct) echo "random 4 KiB O_DIRECT reads of null_blk" ;;
	buffered) echo "random 4 KiB buffered reads of null_blk" ;;
	*) echo "random 4 KiB reads" ;;
	esac
}

plot_throughput() { # workload
	local w=$1 png=$out/$1.png f a plots=() sync_med=''
	while IFS= read -r a; do
		f=$tmp/d/$w,$a.dat
		if [[ $a == sync ]]; then
			sync_med=$(awk 'NR == 1 { print $2 }' "$f")
			continue
		fi
		plots+=("$(quote "$f") using 1:2:3:4 with yerrorlines lt $(style "$a") title $(quote "$a")")
	done < <(approaches "$w")
	[[ -z $sync_med ]] ||
		plots+=("$sync_med with lines lt 8 dt 2 title 'sync (depth 1)'")
	((${#plots[@]})) || return 0
	{
		preamble "$png"
		title "$w: $(describe "$w")" "median reads/s against queue depth (bars: min..max of the runs)"
		echo "set xlabel 'queue depth (reads in flight)'"
		echo "set ylabel 'reads/s (median of the runs)'"
		echo "set logscale x 2"
		echo "set logscale y 10"
		echo "set format y '%.0s%c'"
		echo "set xrange [$(range "$w")]"
		echo "set xtics $(xtics "$w")"
		printf 'plot %s' "${plots[0]}"
		printf ', \\\n     %s' "${plots[@]:1}"
		echo
	} >"$tmp/$w.gp"
	gnuplot "$tmp/$w.gp" || die "gnuplot failed on $tmp/$w.gp"
	echo "plot.sh: $png"
}

plot_scale() {
	local png=$out/scale.png f a plots=() cpu=0
	while IFS= read -r a; do
		f=$tmp/d/scale,$a.dat
		plots+=("$(quote "$f") using 1:(\$5/1000):(1e6/\$4):(1e6/\$3) with yerrorlines lt $(style "$a") title $(quote "$a wall")")
		if awk '$6 != "NaN" { found = 1 } END { exit !found }' "$f"; then
			cpu=1
			plots+=("$(quote "$f") using 1:(\$6/1000) with linespoints lt $(style "$a") dt 2 lw 1 pt 6 title $(quote "$a CPU")")
		fi
	done < <(approaches scale)
	local what='wall time (bars: min..max of the runs)'
	((cpu)) && what='solid: wall time (bars: min..max of the runs), dashed, open points: CPU time'
	{
		preamble "$png"
		title "scale: median µs per operation against outstanding operations" "$what"
		echo "set xlabel 'outstanding operations'"
		echo "set ylabel 'µs per operation'"
		echo "set logscale x 10"
		echo "set xrange [$(range scale)]"
		echo "set xtics $(xtics scale)"
		# A log axis when the costs span more than a factor of 20.
		if awk '$5 != "NaN" { v[++n] = $5 } $6 != "NaN" { v[++n] = $6 }
			END { lo = hi = v[1]; for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
			      exit !(n && lo > 0 && hi / lo > 20) }' "$tmp/d"/scale,*.dat; then
			echo "set logscale y 10"
		else
			echo "set yrange [0:*]"
		fi
		printf 'plot %s' "${plots[0]}"
		printf ', \\\n     %s' "${plots[@]:1}"
		echo
	} >"$tmp/scale.gp"
	gnuplot "$tmp/scale.gp" || die "gnuplot failed on $tmp/scale.gp"
	echo "plot.sh: $png"
}

plot_handoff() {
	local png=$out/handoff.png f a i=0 depths
	depths=$(awk -F, '$1 == "handoff" { print $3 }' "$tmp/medians.body" | sort -u | wc -l)
	: >"$tmp/handoff.dat"
	# idx label linetype median_us min_us max_us, in medians.csv order
	while IFS=, read -r w a d med lo hi nsop _; do
		[[ $w == handoff ]] || continue
		i=$((i + 1))
		local label=$a
		((depths == 1)) || label="$a d=$d"
		printf '%d "%s" %d %s %s %s\n' "$i" "$label" "$(style "$a")" \
			"$(awk -v x="$nsop" 'BEGIN { printf "%.3f", x / 1000 }')" \
			"$(awk -v x="$hi" 'BEGIN { printf "%.3f", 1e6 / x }')" \
			"$(awk -v x="$lo" 'BEGIN { printf "%.3f", 1e6 / x }')" >>"$tmp/handoff.dat"
		: "$med"
	done <"$tmp/medians.body"
	{
		preamble "$png"
		title "handoff: median µs per operation (one operation in flight)" "bars: min..max of the runs"
		echo "set ylabel 'µs per operation'"
		echo "set xlabel 'approach'"
		echo "set key off"
		echo "set style fill solid 0.6 border -1"
		echo "set boxwidth 0.6"
		echo "set xrange [0.4:$i.6]"
		echo "set yrange [0:*]"
		echo "set grid noxtics"
		echo "set offsets 0, 0, graph 0.1, 0"
		echo "plot '$tmp/handoff.dat' using 1:4:3:xtic(2) with boxes lc variable, \\"
		echo "     '' using 1:4:5:6 with yerrorbars lt 8 pt 7 ps 0, \\"
		echo "     '' using 1:(\$6):(sprintf('%.1f', \$4)) with labels offset 0,1"
	} >"$tmp/handoff.gp"
	gnuplot "$tmp/handoff.gp" || die "gnuplot failed on $tmp/handoff.gp"
	echo "plot.sh: $png"
}

while IFS= read -r w; do
	case $w in
	scale) plot_scale ;;
	handoff) plot_handoff ;;
	*) plot_throughput "$w" ;;
	esac
done < <(cut -d, -f1 "$tmp/medians.body" | awk '!seen[$0]++')
