# test/lib.sh — shell helpers shared by test/run-tests.sh, test/live.sh and the
# benchmarks in test/bench/.  Source it; it defines functions and variables only.
#
# The scripts run as root (CI) or as a normal user with sudo.  PostgreSQL's
# initdb refuses to run as root, so when we are root every server and every
# client tool runs as the unprivileged "postgres" system user (created by the
# postgresql-15 package), in a directory that user owns.

TG_PG_MAJOR=15
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$TG_PG_MAJOR/bin/pg_config}
export PG_CONFIG
TG_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages every script needs.
TG_PACKAGES="postgresql-$TG_PG_MAJOR postgresql-server-dev-$TG_PG_MAJOR postgresql-contrib
	libssl-dev libkrb5-dev libipc-run-perl libio-socket-ssl-perl openssl make gcc python3"

tg_log() { printf '==> %s\n' "$*" >&2; }
tg_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, else through sudo.
tg_sudo() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install whichever of the given Debian packages are missing.
tg_ensure_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	tg_log "installing Debian packages: ${missing[*]}"
	tg_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
		tg_die "apt-get update failed"
	tg_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" >&2 ||
		tg_die "apt-get install failed"
}

# Build (warnings are errors) and install the extension.
tg_build_install() {
	tg_log "building trading_guard (-Wall -Wextra -Werror)"
	make -C "$TG_REPO" -s PG_CONFIG="$PG_CONFIG" WERROR=1 >&2 || tg_die "build failed"
	tg_log "installing trading_guard"
	tg_sudo make -C "$TG_REPO" -s PG_CONFIG="$PG_CONFIG" install >&2 || tg_die "install failed"
}

# The user that runs servers and tests.
tg_runner() {
	if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# Run a command as that user (keeps the environment variables we pass on).
tg_as_runner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env PATH="$PATH" "$@"
	else
		"$@"
	fi
}

# Make a fresh directory the runner owns and print its path.  Under root the
# checkout may sit where "postgres" cannot read (/root), so we use /tmp then.
tg_runner_dir() {
	local name=$1 dir
	dir=$(mktemp -d "/tmp/$name.XXXXXX") || tg_die "mktemp failed"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
	echo "$dir"
}

# Print a TCP port on localhost that nothing listens on, from $1 upwards.
tg_free_port() {
	local port=${1:-55432}
	while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		port=$((port + 1))
	done
	echo "$port"
}

# Generate a self-signed server certificate for localhost into directory $1
# (server.crt / server.key, key mode 0600).  Nothing is kept in the repository.
tg_make_server_cert() {
	local dir=$1
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
		-keyout "$dir/server.key" -out "$dir/server.crt" 2>/dev/null ||
		tg_die "openssl could not generate a certificate"
	chmod 600 "$dir/server.key"
}
