# runner_dir: make ~/keras-edge/wheels for the wheel and report the board
main() {
  mkdir -p "$HOME/keras-edge/wheels" || fail "cannot create $HOME/keras-edge/wheels on the board"
  echo "wheels=$HOME/keras-edge/wheels"
  for tool in rsync tar; do
    if command -v "$tool" >/dev/null 2>&1; then echo "has_$tool=yes"; else echo "has_$tool=no"; fi
  done
  if command -v python3 >/dev/null 2>&1; then echo "python=$(python3 -c 'import sys; print(sys.version.split()[0])')"; fi
  facts
}
main "$@" </dev/null
