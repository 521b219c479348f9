# health NAME VERSION CEILING_MS: the gate after a batch. `current` must be VERSION and intact
# (checksums); with the runner: `keras-edge verify` (the reference inputs against their expected
# outputs), a smoke `run` of the reference inputs, and with CEILING_MS a short benchmark whose p50
# must not exceed it. Prints health_* lines; exit 6 when the board is not healthy.
main() {
  name=$1; version=$2; ceiling=$3
  dir="$HOME/keras-edge/bundles/$name"
  cd "$dir" 2>/dev/null || fail "no bundle named $name on this board"
  unhealthy() { echo "error=health gate: $*"; exit 6; }
  [ "$(readlink current 2>/dev/null)" = "$version" ] || unhealthy "current is $(readlink current 2>/dev/null || echo unset), not $version"
  [ -d current/ ] || unhealthy "current points at a missing directory"
  if command -v sha256sum >/dev/null 2>&1; then
    out=$(cd current/ && sha256sum -c SHA256SUMS 2>&1) || unhealthy "checksums: $(printf '%s\n' "$out" | grep -v ': OK$' | head -n 2 | tr '\n' ' ')"
    checks=checksums
  fi
  runner="$HOME/keras-edge/venv/bin/keras-edge"
  if [ ! -x "$runner" ]; then
    echo "health=${checks:-none} (no runner on the board)"; return 0
  fi
  out=$("$runner" verify "$dir/current" 2>&1) \
    || unhealthy "keras-edge verify: $(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n 1 | sed 's/^error: //')"
  ref=$(sed -n 's/.*"reference": *"\([^"]*\)".*/\1/p' current/manifest.json | head -n 1)
  if [ -n "$ref" ] && [ -f "current/$ref" ]; then
    out=$("$runner" run "$dir/current" "$dir/current/$ref" --json 2>&1) \
      || unhealthy "smoke run of the reference inputs: $(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n 1 | sed 's/^error: //')"
    echo "health_smoke=$(printf '%s\n' "$out" | grep -c '^{') inputs"
  fi
  checks="${checks:+$checks + }verify + smoke run"
  if [ -n "$ceiling" ]; then
    out=$("$runner" bench "$dir/current" --runs 20 --warmup 2 --min-seconds 0 --json 2>/dev/null) \
      || unhealthy "the benchmark for the latency ceiling failed"
    p50=$(printf '%s\n' "$out" | tr ',' '\n' | sed -n 's/.*"median_ms": *\([0-9.eE+-]*\).*/\1/p' | head -n 1)
    [ -n "$p50" ] || unhealthy "the benchmark printed no median"
    echo "health_p50_ms=$p50"
    if awk -v a="$p50" -v b="$ceiling" 'BEGIN { exit !(a > b) }'; then
      unhealthy "p50 ${p50} ms is above the latency ceiling of ${ceiling} ms"
    fi
    checks="$checks + p50 ${p50} ms <= ${ceiling} ms"
  fi
  echo "health=$checks"
}
main "$@" </dev/null
