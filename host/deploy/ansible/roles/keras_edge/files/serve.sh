# serve NAME HOST PORT CAMERA: write the systemd user unit that runs `keras-edge serve` on bundle NAME's
# `current` version, then (re)start it where a user systemd manager answers and wait for its /healthz.
# The values were checked on the workstation and are checked again here against narrow character sets;
# the unit is this script's fixed text with them in place (no quoting is needed: none can hold a space,
# a quote, '%', '$' or '\'). Off loopback the server needs a token: a random one is made once, kept in
# ~/keras-edge/serve/NAME.env (mode 600), and the unit reads it from there (never from its command line).
main() {
  name=$1; host=$2; port=$3; camera=$4
  case "$name" in ""|*[!A-Za-z0-9._-]*) fail "bad bundle name for serve: $name" ;; esac
  case "$host" in localhost) ;; ""|*[!0-9A-Fa-f.:]*) fail "bad address for serve: $host" ;; esac
  case "$port" in ""|*[!0-9]*) fail "bad port for serve: $port" ;; esac
  case "$camera" in *[!0-9]*) fail "bad camera for serve: $camera" ;; esac
  [ -d "$HOME/keras-edge/bundles/$name/current/" ] || fail "no current version of $name on this board to serve"
  unit="keras-edge-serve-$name.service"
  units="$HOME/.config/systemd/user"
  state="$HOME/keras-edge/serve"
  mkdir -p "$units" "$state" || fail "cannot create $units and $state"
  case "$host" in
    localhost|127.*|::1) ;;
    *) if [ ! -s "$state/$name.env" ]; then
         tok=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
         [ ${#tok} -ge 32 ] || fail "cannot read /dev/urandom to make a token"
         (umask 077 && printf 'KERAS_EDGE_TOKEN=%s\n' "$tok" > "$state/.$name.env.$$") \
           && mv -f "$state/.$name.env.$$" "$state/$name.env" || fail "cannot write $state/$name.env"
       fi
       echo "serve_token_file=$state/$name.env" ;;
  esac
  live=""
  [ -n "$camera" ] && live=" --camera $camera"
  tmp="$units/.$unit.$$"
  {
    printf '[Unit]\nDescription=keras-edge serve %s\nAfter=network-online.target\n\n' "$name"
    printf '[Service]\nEnvironmentFile=-%%h/keras-edge/serve/%s.env\n' "$name"
    printf 'ExecStart=%%h/keras-edge/venv/bin/keras-edge serve %%h/keras-edge/bundles/%s/current --host %s --port %s%s\n' \
      "$name" "$host" "$port" "$live"
    printf 'Restart=on-failure\nRestartSec=5\n\n[Install]\nWantedBy=default.target\n'
  } > "$tmp" && mv -f "$tmp" "$units/$unit" || { rm -f "$tmp"; fail "cannot write $units/$unit"; }
  echo "serve_unit=$units/$unit"
  runner="$HOME/keras-edge/venv/bin/keras-edge"
  if [ ! -x "$runner" ]; then
    echo "serve_started=no"; echo "serve_why=the keras-edge runner is not installed here (deploy with --install-runner)"; return 0
  fi
  if ! command -v systemctl >/dev/null 2>&1 || ! systemctl --user show-environment >/dev/null 2>&1; then
    echo "serve_started=no"; echo "serve_why=no systemd user manager answers here (systemctl --user)"; return 0
  fi
  out=$( { systemctl --user daemon-reload && systemctl --user enable "$unit" && systemctl --user restart "$unit"; } 2>&1) \
    || fail "systemctl --user could not start $unit: $(printf '%s\n' "$out" | tail -n 1)"
  echo "serve_started=yes"
  if [ "$(loginctl show-user "$(id -un)" -p Linger --value 2>/dev/null)" = no ]; then
    echo "serve_note=it runs while $(id -un) is logged in; to start it at boot: sudo loginctl enable-linger $(id -un)"
  fi
  case "$host" in 0.0.0.0) probe=127.0.0.1 ;; ::) probe=::1 ;; *) probe=$host ;; esac
  # the runner's own python, with the values as arguments (never inside the code)
  if "$HOME/keras-edge/venv/bin/python" - "$probe" "$port" <<'EOF'
import sys, time, urllib.request
host, port = sys.argv[1], sys.argv[2]
url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
for _ in range(120):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
EOF
  then echo "serve_ready=yes"
  else echo "serve_ready=no"; fail "keras-edge serve did not become ready within 60 s (journalctl --user -u $unit)"
  fi
}
main "$@" </dev/null
