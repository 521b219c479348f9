# install_runner WHEEL: venv in ~/keras-edge/venv, the wheel with its device extra, then doctor
main() {
  wheel=$1
  root="$HOME/keras-edge"; venv="$root/venv"; log="$root/install.log"
  command -v python3 >/dev/null 2>&1 || fail "python3 is not installed on the board (apt-get install python3 python3-venv)"
  : > "$log"
  if [ ! -x "$venv/bin/pip" ]; then
    rm -rf -- "$venv"
    python3 -m venv "$venv" >> "$log" 2>&1 \
      || fail "cannot create $venv: $(tail -n 1 "$log") (on Debian or Raspberry Pi OS: sudo apt-get install python3-venv)"
  fi
  # the extra's dependencies, then this very wheel even when its version number did not change
  { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade "$wheel[device]" \
    && "$venv/bin/python" -m pip install --disable-pip-version-check --force-reinstall --no-deps "$wheel"; } >> "$log" 2>&1 \
    || fail "pip install on the board failed: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1) (full log: $log)"
  echo "version=$("$venv/bin/keras-edge" --version 2>&1 | tail -n 1)"
  "$venv/bin/keras-edge" doctor --json > "$root/doctor.json" 2>> "$log"
  echo "doctor_status=$?"
  case "$(head -c 1 "$root/doctor.json")" in
    "{") echo "doctor_json=$(tr -d '\n' < "$root/doctor.json")" ;;
    *) fail "keras-edge doctor failed on the board: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1) (full log: $log)" ;;
  esac
}
main "$@" </dev/null
