#!/bin/sh
# deploy/install.sh: sets up Tessera on one server: the tessera system user, /etc/tessera with
# the node and/or gateway configuration, identity keys, the gateway secrets, the systemd units
# and small wrappers in /usr/local/bin. Run it again at will: it keeps every key, secret and
# config it finds, and only (re)writes the units, the wrappers and, with --map, the map.
#
# Tessera itself must be built first where --app points (default: the folder above this
# script, such as /opt/tessera): pnpm install --frozen-lockfile && pnpm build.
#
# POSIX sh; needs node ≥ 20, od, tr, sed and, for the real thing, root, useradd and systemd.
set -eu

usage() {
  cat <<'EOF'
Usage: deploy/install.sh --role node|gateway|both [options]

Roles:
  --role node|gateway|both  what this server runs (required)

Configuration (used when a config file is first written; existing files are kept):
  --node-id ID              this node's id in cluster.yaml (default: hostname -s)
  --map FILE                validate FILE and install it as <etc>/cluster.yaml (replacing the
                            one there: this is how a new map is distributed)
  --listen HOST:PORT        the node's RPC listener (default: its address in the map)
  --gateway-listen HOST:PORT  the gateway's S3 listener (default 0.0.0.0:9000)
  --region NAME             the gateway's S3 region (default us-east-1)
  --master-key FILE         install this cluster master key instead of generating one; every
                            gateway must have the same key
  --credentials FILE        install this root credentials.yaml instead of generating one;
                            every gateway must have the same

Paths:
  --prefix DIR              install under DIR instead of / (etc/tessera, var/lib/tessera,
                            etc/systemd/system and usr/local/bin below it); for tests and images
  --etc DIR                 configuration folder (default <prefix>/etc/tessera)
  --app DIR                 the built Tessera tree (default: the folder above this script)
  --node-bin PATH           the node executable (default: the first node on PATH)

Behaviour:
  --no-user                 do not create the tessera user (files stay owned by the caller
                            when the user does not exist)
  --no-systemd              do not install, enable or start the systemd units (containers)
  --start                   (re)start the installed units once everything is in place
  --dry-run                 print what would be done, change nothing
  -h, --help                this text
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

ROLE=
NODE_ID=
MAP=
LISTEN=
GATEWAY_LISTEN=0.0.0.0:9000
REGION=us-east-1
MASTER_KEY_SRC=
CREDENTIALS_SRC=
PREFIX=
ETC=
APP=
NODE_BIN=
CREATE_USER=1
SYSTEMD=1
START=0
DRY_RUN=0
USER_NAME=tessera

need() {
  [ $# -ge 2 ] || die "$1 needs a value (see --help)"
}

while [ $# -gt 0 ]; do
  case $1 in
    --*=*)
      # --opt=value: split it and read it again as --opt value.
      arg=$1
      shift
      set -- "${arg%%=*}" "${arg#*=}" "$@"
      continue
      ;;
  esac
  case $1 in
    --role) need "$@"; ROLE=$2; shift ;;
    --node-id) need "$@"; NODE_ID=$2; shift ;;
    --map) need "$@"; MAP=$2; shift ;;
    --listen) need "$@"; LISTEN=$2; shift ;;
    --gateway-listen) need "$@"; GATEWAY_LISTEN=$2; shift ;;
    --region) need "$@"; REGION=$2; shift ;;
    --master-key) need "$@"; MASTER_KEY_SRC=$2; shift ;;
    --credentials) need "$@"; CREDENTIALS_SRC=$2; shift ;;
    --prefix) need "$@"; PREFIX=$2; shift ;;
    --etc) need "$@"; ETC=$2; shift ;;
    --app) need "$@"; APP=$2; shift ;;
    --node-bin) need "$@"; NODE_BIN=$2; shift ;;
    --no-user) CREATE_USER=0 ;;
    --no-systemd) SYSTEMD=0 ;;
    --start) START=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

case $ROLE in
  node) NODE=1 GATEWAY=0 ;;
  gateway) NODE=0 GATEWAY=1 ;;
  both) NODE=1 GATEWAY=1 ;;
  '') die 'give --role node, gateway or both (see --help)' ;;
  *) die "--role $ROLE: want node, gateway or both" ;;
esac

# Paths ----------------------------------------------------------------------------------------

abspath() {
  case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$(pwd)" "$1" ;;
  esac
}

PREFIX=${PREFIX%/}
[ -z "$PREFIX" ] || PREFIX=$(abspath "$PREFIX")
ETC=${ETC:-$PREFIX/etc/tessera}
ETC=$(abspath "${ETC%/}")
STATE=$PREFIX/var/lib/tessera
UNIT_DIR=$PREFIX/etc/systemd/system
BIN_DIR=$PREFIX/usr/local/bin
if [ -z "$APP" ]; then
  APP=$(cd "$(dirname "$0")/.." && pwd)
fi
APP=$(abspath "${APP%/}")
NODE_MAIN=$APP/packages/node/dist/src/main.js
GATEWAY_MAIN=$APP/packages/gateway/dist/src/main.js
TESSERA_MAIN=$APP/packages/server/dist/src/main.js
SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)

if [ -z "$NODE_BIN" ]; then
  NODE_BIN=$(command -v node || true)
  [ -n "$NODE_BIN" ] || die 'node is not on PATH: install Node.js 20 or later, or give --node-bin'
fi

if [ "$NODE" = 1 ]; then
  if [ -z "$NODE_ID" ]; then
    NODE_ID=$(hostname -s 2>/dev/null || uname -n)
    NODE_ID=${NODE_ID%%.*}
  fi
  case $NODE_ID in
    '' | [!A-Za-z0-9]* | *[!A-Za-z0-9._-]*)
      die "--node-id '$NODE_ID': use letters, digits, '.', '_' and '-', starting with a letter or digit"
      ;;
  esac
fi

IS_ROOT=0
[ "$(id -u)" != 0 ] || IS_ROOT=1

# Actions: run them, or with --dry-run print them -------------------------------------------------

run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

# Whether files can be given to the tessera user (it exists, or --dry-run would create it).
HAVE_USER=0

# owner USER:GROUP FILE...: chown when root and the user exists; else the caller keeps them.
owner() {
  if [ "$HAVE_USER" = 1 ] && [ "$IS_ROOT" = 1 ]; then
    run chown "$@"
  fi
}

# put MODE SRC DEST: copy SRC to DEST with MODE (created with it, never readable in between).
put() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '+ write %s (mode %s)\n' "$3" "$1"
    return
  fi
  rm -f "$3.tmp"
  (umask 077 && cp "$2" "$3.tmp")
  chmod "$1" "$3.tmp"
  mv -f "$3.tmp" "$3"
}

# secret FILE CONTENT-COMMAND...: writes the command's output to FILE, mode 0600 from the start.
secret() {
  file=$1
  shift
  if [ "$DRY_RUN" = 1 ]; then
    printf '+ write %s (mode 0600, new random secret)\n' "$file"
    return
  fi
  (umask 077 && "$@" >"$file.tmp")
  chmod 0600 "$file.tmp"
  mv -f "$file.tmp" "$file"
}

sed_escape() {
  printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

# render TEMPLATE DEST: fills the @PLACEHOLDERS@ of a template into DEST (0640), unless DEST exists.
render() {
  if [ -e "$2" ]; then
    say "Kept $2 (remove it to have a new one written)."
    return
  fi
  if [ -n "$LISTEN" ]; then listen_line="listen: $LISTEN"; else listen_line='# listen: 0.0.0.0:7373'; fi
  tmp=$(mktemp)
  sed -e "s|@NODE_ID@|$(sed_escape "$NODE_ID")|g" \
    -e "s|@MAP@|$(sed_escape "$ETC/cluster.yaml")|g" \
    -e "s|@ETC@|$(sed_escape "$ETC")|g" \
    -e "s|^@LISTEN@\$|$(sed_escape "$listen_line")|" \
    -e "s|@GATEWAY_LISTEN@|$(sed_escape "$GATEWAY_LISTEN")|g" \
    -e "s|@REGION@|$(sed_escape "$REGION")|g" \
    "$1" >"$tmp"
  put 0640 "$tmp" "$2"
  rm -f "$tmp"
  owner "root:$USER_NAME" "$2"
  say "Wrote $2."
}

# Random secrets, from /dev/urandom with POSIX tools only.
master_key() {
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
  printf '\n'
}

# random_from ALPHABET COUNT: COUNT characters of ALPHABET, whose length (32 or 64) divides 256
# so that every character is as likely.
random_from() {
  out=
  len=${#1}
  for byte in $(od -An -tu1 -N"$2" /dev/urandom); do
    i=$((byte % len + 1))
    out=$out$(printf '%s' "$1" | cut -c"$i")
  done
  printf '%s' "$out"
}

credentials_yaml() {
  key_id=TS$(random_from ABCDEFGHIJKLMNOPQRSTUVWXYZ234567 18)
  # A letter first keeps the YAML scalar a string whatever follows.
  secret_key=$(random_from ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef 1)
  secret_key=$secret_key$(random_from ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_ 39)
  printf '# Tessera root credential. Keep this file private (mode 0600).\n'
  printf 'accessKeyId: %s\nsecretAccessKey: %s\n' "$key_id" "$secret_key"
}

# identity MAIN WHAT: the WHAT.key identity (0600, owned by tessera) and its public id in WHAT.pub.
identity() {
  key=$ETC/$2.key
  pub=$ETC/$2.pub
  IDENTITY=
  if [ -e "$key" ]; then
    say "Kept the $2 identity $key."
  elif [ "$DRY_RUN" = 1 ]; then
    printf '+ %s %s keygen --out %s\n' "$NODE_BIN" "$1" "$key"
    printf '+ write %s (its public id)\n' "$pub"
    return
  else
    id=$("$NODE_BIN" "$1" keygen --out "$key")
    chmod 0600 "$key"
    printf '%s\n' "$id" >"$pub"
    chmod 0644 "$pub"
    say "Generated the $2 identity $key."
  fi
  owner "$USER_NAME:$USER_NAME" "$key"
  if [ -f "$pub" ]; then
    IDENTITY=$(sed -n '1p' "$pub")
  else
    warn "$pub is missing: the public id of $key is unknown here (it was printed when made)"
  fi
}

# Checks ---------------------------------------------------------------------------------------

for main in "$TESSERA_MAIN" "$NODE_MAIN" "$GATEWAY_MAIN"; do
  if [ ! -f "$main" ]; then
    msg="no built Tessera in $APP ($main is missing): run pnpm install --frozen-lockfile && pnpm build there, or give --app"
    if [ "$DRY_RUN" = 1 ]; then warn "$msg"; else die "$msg"; fi
  fi
done
if ! "$NODE_BIN" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  die "$NODE_BIN is older than Node.js 20"
fi
if [ "$DRY_RUN" = 0 ] && [ "$IS_ROOT" = 0 ] && [ -z "$PREFIX" ]; then
  die 'run as root to install into /, or give --prefix (and --no-user, --no-systemd)'
fi
if [ -n "$MAP" ] && [ ! -f "$MAP" ]; then
  die "--map $MAP: no such file"
fi

[ "$DRY_RUN" = 0 ] || say "Dry run: nothing is changed."

# The user -------------------------------------------------------------------------------------

if id "$USER_NAME" >/dev/null 2>&1; then
  HAVE_USER=1
elif [ "$CREATE_USER" = 1 ]; then
  [ "$IS_ROOT" = 1 ] || [ "$DRY_RUN" = 1 ] || die "creating the $USER_NAME user needs root (or --no-user)"
  command -v useradd >/dev/null 2>&1 || [ "$DRY_RUN" = 1 ] || die 'useradd is missing: create a tessera system user yourself, then run this with --no-user'
  run useradd --system --user-group --home-dir "$STATE" --no-create-home \
    --shell /usr/sbin/nologin --comment 'Tessera object store' "$USER_NAME"
  HAVE_USER=1
  [ "$DRY_RUN" = 1 ] || say "Created the system user $USER_NAME."
else
  say "No $USER_NAME user (--no-user): files stay owned by $(id -un)."
fi

# Folders --------------------------------------------------------------------------------------

run mkdir -p "$ETC" "$STATE"
run chmod 0750 "$ETC" "$STATE"
owner "root:$USER_NAME" "$ETC"
owner "$USER_NAME:$USER_NAME" "$STATE"

# The map --------------------------------------------------------------------------------------

if [ -n "$MAP" ]; then
  if [ -f "$TESSERA_MAIN" ]; then
    "$NODE_BIN" "$TESSERA_MAIN" map validate "$MAP" || die "--map $MAP is not a valid cluster map (above)"
  fi
  if [ "$(abspath "$MAP")" != "$ETC/cluster.yaml" ]; then
    put 0644 "$MAP" "$ETC/cluster.yaml"
    say "Installed $MAP as $ETC/cluster.yaml."
  fi
elif [ ! -e "$ETC/cluster.yaml" ]; then
  say "No map yet: once every key is known, write one with 'tessera map generate' and run this again with --map."
fi

# The node -------------------------------------------------------------------------------------

if [ "$NODE" = 1 ]; then
  render "$SCRIPT_DIR/templates/node.yaml.tmpl" "$ETC/node.yaml"
  identity "$NODE_MAIN" node
  if [ -n "${IDENTITY-}" ]; then
    say "Node $NODE_ID public id: $IDENTITY"
    say "  for the keys file of 'tessera map generate': $(hostname -f 2>/dev/null || uname -n) $IDENTITY"
  fi
fi

# The gateway ----------------------------------------------------------------------------------

if [ "$GATEWAY" = 1 ]; then
  render "$SCRIPT_DIR/templates/gateway.yaml.tmpl" "$ETC/gateway.yaml"
  identity "$GATEWAY_MAIN" gateway
  if [ -n "${IDENTITY-}" ]; then
    say "Gateway public id: $IDENTITY"
    say "  for the map: tessera map generate … --gateway $IDENTITY"
  fi

  if [ -e "$ETC/master.key" ]; then
    if [ -n "$MASTER_KEY_SRC" ] && ! cmp -s "$MASTER_KEY_SRC" "$ETC/master.key"; then
      die "$ETC/master.key exists and differs from $MASTER_KEY_SRC; replacing it would make every stored secret unreadable. Remove it first if that is really meant."
    fi
    say "Kept the master key $ETC/master.key."
  elif [ -n "$MASTER_KEY_SRC" ]; then
    put 0600 "$MASTER_KEY_SRC" "$ETC/master.key"
    say "Installed the master key from $MASTER_KEY_SRC."
  else
    secret "$ETC/master.key" master_key
    say "Generated the cluster master key $ETC/master.key (mode 0600)."
    say "  Every gateway must have this same file: copy it to the others (install.sh --master-key) before they start, and back it up: without it the stored secrets are lost."
  fi
  owner "$USER_NAME:$USER_NAME" "$ETC/master.key"

  if [ -e "$ETC/credentials.yaml" ]; then
    say "Kept the root credential $ETC/credentials.yaml."
  elif [ -n "$CREDENTIALS_SRC" ]; then
    put 0600 "$CREDENTIALS_SRC" "$ETC/credentials.yaml"
    say "Installed the root credential from $CREDENTIALS_SRC."
  else
    secret "$ETC/credentials.yaml" credentials_yaml
    say "Generated the root credential $ETC/credentials.yaml (mode 0600): the account owner's S3 key."
    say "  Every gateway must have this same file (install.sh --credentials)."
  fi
  owner "$USER_NAME:$USER_NAME" "$ETC/credentials.yaml"
fi

# Commands on PATH -----------------------------------------------------------------------------

run mkdir -p "$BIN_DIR"
for pair in "tessera:$TESSERA_MAIN" "tessera-node:$NODE_MAIN" "tessera-gateway:$GATEWAY_MAIN"; do
  name=${pair%%:*}
  tmp=$(mktemp)
  printf '#!/bin/sh\n# Written by deploy/install.sh of Tessera.\nexec '"'%s' '%s'"' "$@"\n' "$NODE_BIN" "${pair#*:}" >"$tmp"
  put 0755 "$tmp" "$BIN_DIR/$name"
  rm -f "$tmp"
done
say "Installed tessera, tessera-node and tessera-gateway in $BIN_DIR."

# systemd --------------------------------------------------------------------------------------

UNITS=
[ "$NODE" = 0 ] || UNITS="$UNITS tessera-node.service"
[ "$GATEWAY" = 0 ] || UNITS="$UNITS tessera-gateway.service"

if [ "$SYSTEMD" = 1 ]; then
  run mkdir -p "$UNIT_DIR"
  for unit in $UNITS; do
    tmp=$(mktemp)
    sed -e "s|/usr/bin/node |$(sed_escape "$NODE_BIN") |" \
      -e "s|/opt/tessera|$(sed_escape "$APP")|g" \
      -e "s|/etc/tessera|$(sed_escape "$ETC")|g" \
      "$SCRIPT_DIR/systemd/$unit" >"$tmp"
    put 0644 "$tmp" "$UNIT_DIR/$unit"
    rm -f "$tmp"
    say "Installed $UNIT_DIR/$unit."
  done
  if [ -z "$PREFIX" ] && [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
    # shellcheck disable=SC2086 # one word per unit
    run systemctl enable $UNITS
    if [ "$START" = 1 ]; then
      [ -e "$ETC/cluster.yaml" ] || die "--start: there is no $ETC/cluster.yaml yet (give --map)"
      # shellcheck disable=SC2086
      run systemctl restart $UNITS
      say "Restarted$UNITS; follow them with: journalctl -fu tessera-node -u tessera-gateway"
    else
      say "Enabled$UNITS; start them once the map is in place: systemctl start$UNITS"
    fi
  else
    say 'systemd is not running here (or --prefix is set): the units were not enabled.'
  fi
else
  say 'Skipped the systemd units (--no-systemd).'
  [ "$START" = 0 ] || warn '--start does nothing with --no-systemd'
fi
