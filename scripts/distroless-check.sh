#!/usr/bin/env bash
# Runs the release binary the way the distroless image runs it, on a machine without Docker.
#
# The image is gcr.io/distroless/cc-debian12:nonroot: Debian bookworm's glibc and libgcc_s, CA
# certificates, /etc/passwd with nonroot (65532), and nothing else: no shell. This script builds that
# root from the same Debian packages (apt-get download + dpkg-deb -x, no package scripts run), adds
# the binary and the seeded database where the Dockerfile puts them, and starts the binary in it with
# chroot as uid 65532, in exec form. It then checks that:
#   - the Dockerfile pairs a bookworm builder with cc-debian12 (same glibc);
#   - the binary needs only libraries the image has (readelf NEEDED), all resolve inside the root
#     (the root's own loader, --list), and its newest GLIBC_ symbol version is one bookworm has;
#   - there is no shell in the root;
#   - it starts, answers /health and a webhook fixture, writes a booking to the baked-in database
#     as uid 65532, and exits 0 on SIGTERM.
# It needs root (chroot, chown), apt with bookworm sources, readelf/objdump (binutils) and curl.
# Every wait is bounded; the temporary root is removed on exit, whatever happens.
#
# usage: scripts/distroless-check.sh [BINARY]   (default: cargo build --release, then that binary)
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "distroless-check: FAIL: $*" >&2; exit 1; }
step() { echo "-- $*"; }
started=$SECONDS

[ "$(id -u)" = 0 ] || fail "needs root (chroot, chown)"
for tool in apt-get dpkg-deb readelf objdump chroot curl timeout; do
  command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install binutils curl)"
done
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
[ "$codename" = bookworm ] ||
  fail "this machine runs '$codename', not Debian bookworm: apt-get download would fetch another glibc than cc-debian12's"

step "Dockerfile: builder and runtime on the same Debian release; paths the image uses"
grep -Eq '^FROM rust:[0-9.]+-bookworm AS build$' Dockerfile || fail "the builder is not rust:<version>-bookworm"
grep -Eq '^FROM gcr\.io/distroless/cc-debian12:nonroot$' Dockerfile || fail "the runtime is not distroless/cc-debian12:nonroot"
entrypoint=$(sed -n 's/^ENTRYPOINT \["\([^"]*\)"\]$/\1/p' Dockerfile)
command=$(sed -n 's/^CMD \["\([^"]*\)"\]$/\1/p' Dockerfile)
db_path=$(sed -n 's/^.*DATABASE_PATH=\([^ \\]*\).*$/\1/p' Dockerfile)
user=$(sed -n 's/^USER \(.*\)$/\1/p' Dockerfile)
[ -n "$entrypoint" ] && [ -n "$command" ] && [ -n "$db_path" ] ||
  fail "cannot read ENTRYPOINT, CMD or DATABASE_PATH from the Dockerfile"
[ "$user" = 65532:65532 ] || fail "the Dockerfile's USER is '$user', not 65532:65532"
echo "   entrypoint $entrypoint $command, database $db_path, user $user"

step "Dockerfile dependency layer: the manifest, lock file and benches build with stub sources"
# Mirrors the layer's COPY lines and stubs; `cargo check` shares target/ without touching its binaries.
grep -Eq '^COPY Cargo.toml Cargo.lock \./$' Dockerfile && grep -Eq '^COPY benches \./benches$' Dockerfile ||
  fail "the Dockerfile's dependency layer no longer copies Cargo.toml, Cargo.lock and benches"
target_dir=$PWD/target
context=$(mktemp -d "${TMPDIR:-/tmp}/cx-webhook-context.XXXXXX")
mkdir -p "$context/src"
cp Cargo.toml Cargo.lock "$context/"
cp -r benches "$context/"
echo 'fn main() {}' >"$context/src/main.rs"
: >"$context/src/lib.rs"
(cd "$context" && CARGO_TARGET_DIR="$target_dir" cargo check --locked --quiet --bin cx-webhook) ||
  { rm -rf "$context"; fail "the Dockerfile's dependency layer would not build"; }
rm -rf "$context"

bin=${1:-}
if [ -z "$bin" ]; then
  step "cargo build --release"
  cargo build --release --locked --quiet --bin cx-webhook
  bin=target/release/cx-webhook
fi
[ -x "$bin" ] || fail "$bin is not an executable"
bin=$(realpath "$bin")

work=$(mktemp -d "${TMPDIR:-/tmp}/cx-webhook-distroless.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
mkdir -p "$work/debs" "$root"

step "bookworm packages: libc6, libgcc-s1, ca-certificates"
download() {
  (cd "$work/debs" && timeout 300 apt-get download -q -o APT::Sandbox::User=root \
    libc6 libgcc-s1 ca-certificates >/dev/null)
}
if ! download; then
  echo "   apt-get download failed; refreshing the package lists once"
  timeout 300 apt-get update -qq || fail "apt-get update failed"
  download || fail "apt-get download of bookworm packages failed: cannot build the distroless root"
fi
version() { dpkg-deb -f "$(echo "$work"/debs/"$1"_*.deb)" Version; }
libc_version=$(version libc6)
[[ "$libc_version" == 2.36-* ]] || fail "libc6 $libc_version is not bookworm's glibc 2.36"
echo "   libc6 $libc_version, libgcc-s1 $(version libgcc-s1), ca-certificates $(version ca-certificates)"
dpkg-deb -x "$work"/debs/libc6_*.deb "$root"
dpkg-deb -x "$work"/debs/libgcc-s1_*.deb "$root"
# ca-certificates builds its bundle in a package script; distroless ships the bundle alone.
dpkg-deb -x "$work"/debs/ca-certificates_*.deb "$work/ca"
mkdir -p "$root/etc/ssl/certs"
for cert in "$work"/ca/usr/share/ca-certificates/mozilla/*.crt; do
  sed -e '$a\' "$cert"
done >"$root/etc/ssl/certs/ca-certificates.crt"
certs=$(grep -c 'BEGIN CERTIFICATE' "$root/etc/ssl/certs/ca-certificates.crt")
[ "$certs" -ge 100 ] || fail "the CA bundle holds only $certs certificates"

step "the binary's dynamic needs"
needed=$(readelf -d "$bin" | sed -n 's/^.*(NEEDED).*\[\(.*\)\]$/\1/p' | sort | tr '\n' ' ')
[ -n "$needed" ] || fail "readelf found no NEEDED entries in $bin (not a dynamic ELF binary?)"
for lib in $needed; do
  case "$lib" in
    libc.so.6 | libm.so.6 | libgcc_s.so.1 | ld-linux-x86-64.so.2 | libdl.so.2 | libpthread.so.0 | librt.so.1) ;;
    *) fail "$bin needs $lib, which cc-debian12 does not have" ;;
  esac
done
interpreter=$(readelf -l "$bin" | sed -n 's/^.*Requesting program interpreter: \(.*\)\]$/\1/p')
# Resolve the loader inside the root: the package's /lib64 link is absolute, and on the host it would
# point at the host's own loader.
loader=$interpreter
while [ -L "$root$loader" ]; do
  target=$(readlink "$root$loader")
  case "$target" in /*) loader=$target ;; *) loader=$(dirname "$loader")/$target ;; esac
done
[ -f "$root$loader" ] || fail "the loader $interpreter is not in the root"
# ldd, inside the root: the root's own loader resolves every library from the root's directories.
resolved=$("$root$loader" --inhibit-cache --library-path "$root/lib/x86_64-linux-gnu" --list "$bin") ||
  fail "the root's loader cannot load $bin"
grep -q 'not found' <<<"$resolved" && fail "unresolved libraries: $resolved"
while read -r name arrow path _; do
  [ "$arrow" = "=>" ] || continue # the vDSO and the loader itself
  case "$path" in "$root"/*) ;; *) fail "$name resolved outside the root: $path" ;; esac
done <<<"$resolved"
# Captured first: `grep -q` on a pipe would end objdump early and fail the pipeline.
versions=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV)
max_glibc=$(tail -1 <<<"$versions")
[ -n "$max_glibc" ] || fail "objdump -T found no GLIBC_ symbol versions"
[ "$(printf '%s\n2.36\n' "$max_glibc" | sort -V | tail -1)" = 2.36 ] ||
  fail "the binary needs GLIBC_$max_glibc; bookworm has 2.36"
libc_symbols=$(objdump -T "$root/lib/x86_64-linux-gnu/libc.so.6")
grep -qw "GLIBC_$max_glibc" <<<"$libc_symbols" || fail "bookworm's libc.so.6 does not define GLIBC_$max_glibc"
echo "   NEEDED: $needed"
echo "   interpreter: $interpreter; newest glibc symbol version: GLIBC_$max_glibc (bookworm: 2.36)"

step "the rest of the image: users, name service, /tmp, the binary, the seeded database"
mkdir -p "$root/etc" "$root/tmp" "$root/home/nonroot" "$root$(dirname "$entrypoint")"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd:         files
group:          files
shadow:         files
hosts:          files dns
networks:       files
protocols:      files
services:       files
EOF
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
chmod 1777 "$root/tmp"
chown 65532:65532 "$root/home/nonroot"
chmod 0700 "$root/home/nonroot"
install -m 0755 "$bin" "$root$entrypoint"
# As the Dockerfile does: created at build time by root, then handed to 65532.
db_dir=$(dirname "$db_path")
mkdir -p "$root$db_dir"
"$bin" db init --seed --database-path "$root$db_path" >/dev/null
chown -R 65532:65532 "$root$db_dir"
chmod 0750 "$root$db_dir"

shells=$(find "$root" \( -name sh -o -name bash -o -name dash -o -name busybox \) -printf '%P ')
[ -z "$shells" ] || fail "the root holds a shell: $shells"
[ ! -e "$root/bin/sh" ] || fail "the root holds /bin/sh"
echo "   $(find "$root" -type f | wc -l) files, no shell"

step "start it as 65532 in the root, with the image's environment"
log=$work/server.log
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/nonroot \
  SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt DATABASE_PATH="$db_path" LOG_FORMAT=json \
  AUTH_MODE=none ACCOUNT_ACCESS=open BIND=127.0.0.1 PORT=0 \
  "$(command -v chroot)" --userspec=65532:65532 "$root" "$entrypoint" "$command" >"$log" 2>&1 &
pid=$!
addr=""
for _ in $(seq 200); do
  addr=$(grep -o '"address":"[^"]*"' "$log" | head -1 | cut -d'"' -f4 || true)
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; fail "it exited at start"; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$log" >&2; fail "it did not log 'listening' within 20 s"; }
uid=$(awk '/^Uid:/ {print $2 "/" $3}' "/proc/$pid/status")
[ "$uid" = 65532/65532 ] || fail "it runs as uid $uid, not 65532"
[ "$(readlink "/proc/$pid/root")" = "$root" ] || fail "it does not run inside the root"
echo "   listening on $addr as uid 65532, root $(readlink "/proc/$pid/root")"

step "GET /health, a webhook fixture, a booking"
health=$(curl -fsS --max-time 10 "http://$addr/health") || fail "GET /health failed"
[ "$health" = '{"status":"ok"}' ] || fail "GET /health answered $health"
answer=$("$bin" send tests/fixtures/account-balance.json --url "http://$addr/webhook" --timeout-secs 10) ||
  fail "the account-balance fixture was not answered with a 2xx"
grep -q '₹1,25,430.50' <<<"$answer" || fail "unexpected answer to account-balance.json: $answer"
day=""
for ahead in 2 3; do
  day=$(TZ=Asia/Kolkata date -d "+$ahead days" +%F)
  [ "$(date -d "$day" +%u)" != 7 ] && break # D-PUN-01 is closed on Sundays
done
booking=$("$bin" send --url "http://$addr/webhook" --timeout-secs 10 --tag booking.create \
  --param vehicle_number=MH12AB1234 --param dealer_id=D-PUN-01 --param service_type=periodic \
  --param booking_date="$day" --param booking_time=10:30) || fail "booking.create was not answered with a 2xx"
grep -q '"booking_id": "BK-' <<<"$booking" || fail "no booking was made as uid 65532: $booking"

step "SIGTERM: a clean exit"
kill -TERM "$pid"
for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { cat "$log" >&2; fail "still running 15 s after SIGTERM"; }
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || { cat "$log" >&2; fail "exit code $rc after SIGTERM"; }
grep -q '"severity":"ERROR"' "$log" && { cat "$log" >&2; fail "it logged an ERROR"; }
grep -q '"message":"stopped"' "$log" || { cat "$log" >&2; fail "no 'stopped' line in its log"; }
bookings=$("$bin" db check --database-path "$root$db_path" | awk '$1 == "bookings:" {print $2}')
[ "$bookings" = 1 ] || fail "the database holds $bookings bookings after the run, not 1"

echo "distroless-check: ok ($((SECONDS - started)) s)"
