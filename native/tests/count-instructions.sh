#!/bin/sh
# Instructions per 64-weight group of every arm64 kernel set, counted by qemu-aarch64 (-singlestep -d exec logs one
# line per executed instruction): kernel-steps at two group counts minus its no-call baseline at both, over the
# groups between them (decode: 1 row x 1 token; prefill: per group of one row for one token, in 4 x 4 blocks).
# Usage: tests/count-instructions.sh BUILD_DIR   (make cross-insns)
set -eu
bin=$1/kernel-steps
log=$(mktemp)
trap 'rm -f "$log"' EXIT
count() { qemu-aarch64 -cpu max -singlestep -d exec,nochain -D "$log" "$bin" "$@" >/dev/null; grep -c '^Trace' "$log"; }
lo=4 hi=36
printf '| set | mode | 2-bit | 4-bit | 8-bit |\n|---|---|---|---|---|\n'
for mode in decode prefill; do
  per=$((hi - lo)); [ "$mode" = prefill ] && per=$((per * 16))
  for set in generic neon neon-dot neon-i8mm; do
    row="| $set | $mode |"
    for bits in 2 4 8; do
      k=$(( $(count "$set" $mode $bits $hi) - $(count "$set" $mode $bits $lo) ))
      b=$(( $(count "$set" $mode $bits $hi skip) - $(count "$set" $mode $bits $lo skip) ))
      row="$row $(awk -v k="$k" -v b="$b" -v n="$per" 'BEGIN { printf "%.1f", (k - b) / n }') |"
    done
    echo "$row"
  done
done
