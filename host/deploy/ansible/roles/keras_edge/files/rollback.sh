# rollback NAME OWNER WAIT STALE BREAK [EXPECT [TO]]: under the board lock, verify the version to go back
# to, then switch. Without EXPECT: swap `current` and `previous` (the user's rollback). With EXPECT
# (a staged rollout undoing its batch): only if `current` is still EXPECT, go back to TO, the version
# that was current before; an empty TO (the board had none) removes `current`, never dangling.
# BREAK: the owner of a lock to take over at once (the workstation found that deploy dead), or ''.
main() {
  name=$1; owner=$2; wait_s=$3; stale_s=$4; break_owner=$5; expect=${6:-}; to=${7:-}; undo=${6+yes}
  dir="$HOME/keras-edge/bundles/$name"
  cd "$dir" 2>/dev/null || fail "no bundle named $name is deployed on this board"
  take_lock "$owner" "$wait_s" "$stale_s" "$break_owner"
  trap 'drop_lock "$owner"' EXIT
  cur=$(readlink current 2>/dev/null) || { [ -n "$undo" ] && { echo "reverted=no"; exit 0; }; fail "$name has no current version on this board"; }
  if [ -n "$undo" ]; then
    if [ "$cur" != "$expect" ]; then echo "reverted=no"; echo "current=$cur"; exit 0; fi
    if [ -z "$to" ]; then
      rm -f current && echo "reverted=yes" && echo "current=" && echo "previous=$cur"; exit 0
    fi
    prev=$to
  else
    prev=$(readlink previous 2>/dev/null)
    if [ -z "$prev" ] || [ "$prev" = "$cur" ]; then fail "$name has no previous version on this board"; fi
  fi
  [ -d "$prev" ] || fail "the previous version $prev of $name is gone from the board"
  verify "$dir/$prev" "$dir/$prev/SHA256SUMS" "$prev" || exit 3
  switch previous "$cur" || fail "cannot update the previous link"
  switch current "$prev" || fail "cannot switch the current link"
  remember "$prev"
  [ -n "$undo" ] && echo "reverted=yes"
  # a server `deploy --serve` started runs what `current` was when it started: restart it on the version now current
  if [ -f "$HOME/.config/systemd/user/keras-edge-serve-$name.service" ] && systemctl --user show-environment >/dev/null 2>&1; then
    systemctl --user try-restart "keras-edge-serve-$name.service" >/dev/null 2>&1 && echo "serve_restarted=yes"
  fi
  echo "current=$prev"
  echo "previous=$cur"
}
main "$@" </dev/null
