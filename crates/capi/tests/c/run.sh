#!/usr/bin/env bash
# Builds and runs the C and C++ tests, the C examples and the Python
# ctypes example against an INSTALLED libmailslot (see install.sh), found
# through pkg-config only.
#
# Usage: bash crates/capi/tests/c/run.sh PREFIX
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: bash crates/capi/tests/c/run.sh PREFIX  (where install.sh put libmailslot)" >&2
    exit 2
fi
prefix=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
examples=$root/examples/c

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
pkg-config --exists mailslot || { echo "run.sh: pkg-config finds no mailslot.pc under $prefix/lib/pkgconfig" >&2; exit 1; }
cflags=$(pkg-config --cflags mailslot)
libs=$(pkg-config --libs mailslot)
libdir=$(pkg-config --variable=libdir mailslot)
compat="-I$(pkg-config --variable=includedir mailslot)/mailslot/compat"
static_libs=$(pkg-config --static --libs mailslot | sed 's/-lmailslot\b/-l:libmailslot.a/')
rpath="-Wl,-rpath,$libdir"

work=$(mktemp -d)
shared=""
bg=() # background processes this script started, stopped on any exit
cleanup() {
    for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work" ${shared:+"$shared"}
}
trap cleanup EXIT
export MAILSLOT_DIR=$work/ns
mkdir -m 0700 "$MAILSLOT_DIR"

CC=(gcc -std=c11 -Wall -Wextra -Wpedantic -Werror -O1 -g -pthread)
CXX=(g++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -O1 -g -pthread -x c++)

step() { printf -- '--- %s\n' "$*"; }
cc() { # cc OUT SRC EXTRA...   (C11, shared library)
    local out=$1 src=$2; shift 2
    "${CC[@]}" "$@" $cflags -I"$here" "$src" -o "$work/$out" $libs $rpath
}
cxx() { # cxx OUT SRC EXTRA... (the same source as C++17)
    local out=$1 src=$2; shift 2
    "${CXX[@]}" "$@" $cflags -I"$here" "$src" -x none -o "$work/$out" $libs $rpath
}

step "the installed files"
soname=$(readelf -d "$libdir/libmailslot.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libmailslot.so.0 ] || { echo "soname is '$soname', expected libmailslot.so.0" >&2; exit 1; }
for f in include/mailslot/mailslot.h include/mailslot/win32.h include/mailslot/compat/windows.h \
    lib/libmailslot.so lib/libmailslot.so.0 lib/libmailslot.a lib/pkgconfig/mailslot.pc; do
    [ -e "$prefix/$f" ] || { echo "$prefix/$f is missing" >&2; exit 1; }
done
echo "ok: headers, libmailslot.so -> $soname, libmailslot.a, mailslot.pc"

step "native API: C11, C++17, and C11 linked statically"
cc native_c "$here/native_test.c"
cxx native_cxx "$here/native_test.c"
"${CC[@]}" $cflags -I"$here" "$here/native_test.c" -o "$work/native_static" $static_libs
if ldd "$work/native_static" | grep -q libmailslot; then
    echo "native_static still links libmailslot.so dynamically" >&2
    exit 1
fi
"$work/native_c"
"$work/native_cxx"
"$work/native_static"

step "Win32 layer: ANSI and UNICODE, C11 and C++17, <mailslot/win32.h> and <windows.h>"
cc win32_c "$here/win32_test.c"
cc win32_c_unicode "$here/win32_test.c" -DUNICODE -DMAILSLOT_TEST_WINDOWS_H $compat
cxx win32_cxx "$here/win32_test.c" -DMAILSLOT_TEST_WINDOWS_H $compat
cxx win32_cxx_unicode "$here/win32_test.c" -DUNICODE
cc no_clash_c "$here/no_clash.c"
cxx no_clash_cxx "$here/no_clash.c"
for t in win32_c win32_c_unicode win32_cxx win32_cxx_unicode no_clash_c no_clash_cxx; do
    "$work/$t"
done

step "examples/c: Win32-style and native server and client, two processes each"
cc win32_server "$examples/win32_server.c" $compat
cc win32_client "$examples/win32_client.c" $compat
cc native_server "$examples/native_server.c"
cc native_client "$examples/native_client.c"
cxx win32_server_cxx "$examples/win32_server.c" $compat -DUNICODE
pair() { # pair SERVER CLIENT: the server prints "ready", reads 3 messages, exits
    local server=$1 client=$2 line got="" pid
    rm -f "$work/fifo"
    mkfifo "$work/fifo"
    "$work/$server" 3 >"$work/fifo" &
    pid=$!
    bg+=("$pid")
    exec 3<"$work/fifo"
    read -r -t 10 line <&3 || { echo "$server did not start" >&2; exit 1; }
    echo "$server: $line"
    "$work/$client" "first" "" "third"
    while read -r -t 10 line <&3; do # until the server exits (EOF)
        echo "$server: $line"
        got+="$line;"
    done
    exec 3<&-
    wait "$pid" || { echo "$server failed" >&2; exit 1; }
    case $got in
        *"first"*"(0 bytes)"*"third"*) ;;
        *) echo "$server did not receive first, an empty message and third in order: $got" >&2; exit 1 ;;
    esac
}
pair win32_server win32_client
pair native_server native_client
pair win32_server_cxx native_client
pair native_server win32_client

step "\\\\* with the default options: every interface's broadcast address, UDP 138, in a network namespace"
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
    ns="mscapi$$"
    ip netns add "$ns"
    trap 'ip netns del "$ns" 2>/dev/null; cleanup' EXIT
    # A veth pair inside it, one end with an address and a broadcast address:
    # the kernel delivers what is sent to that address to the namespace's
    # own sockets too.
    ip -n "$ns" link set lo up
    ip -n "$ns" link add va type veth peer name vb
    ip -n "$ns" addr add 10.213.250.1/24 broadcast 10.213.250.255 dev va
    ip -n "$ns" link set va up
    ip -n "$ns" link set vb up
    rm -f "$work/fifo"
    mkfifo "$work/fifo"
    ip netns exec "$ns" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 138))
print("ready", flush=True)
s.settimeout(10)
d, src = s.recvfrom(2048)
assert d[0] == 0x11, "not a DIRECT_GROUP datagram: %r" % d[:16]
assert b"\\MAILSLOT\\netns" in d and d.endswith(b"to everyone"), d
print("received a DIRECT_GROUP datagram for \\MAILSLOT\\netns from %s:%d" % src, flush=True)
' >"$work/fifo" &
    rx=$!
    bg+=("$rx")
    exec 3<"$work/fifo"
    read -r -t 10 line <&3 || { echo "the UDP 138 receiver did not start" >&2; exit 1; }
    MAILSLOT_TARGET='\\*\mailslot\netns' ip netns exec "$ns" "$work/win32_client" "to everyone"
    read -r -t 10 line <&3 || { echo "nothing arrived on UDP 138" >&2; exit 1; }
    echo "$line"
    exec 3<&-
    wait "$rx"
    # A host nobody answers for: ERROR_BAD_NETPATH (53), after the NetBIOS query.
    out=$(MAILSLOT_TARGET='\\NOSUCHHOST\mailslot\x' ip netns exec "$ns" "$work/win32_client" x || true)
    echo "$out"
    case $out in *"failed with 53"*) ;; *) echo "expected ERROR_BAD_NETPATH for an unknown host" >&2; exit 1 ;; esac
    ip netns del "$ns"
    trap cleanup EXIT
else
    echo "skipped: needs root and iproute2 (the loopback tests above cover \\\\* sends)"
fi

step "a network origin through the C API: C client -> UDP -> mailslot daemon -> C reader"
daemon_bin=${CARGO_TARGET_DIR:-$root/target}/debug/mailslot
if [ "$(id -u)" = 0 ] && [ -x "$daemon_bin" ]; then
    port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    rm -f "$work/fifo" "$work/dfifo"
    mkfifo "$work/fifo" "$work/dfifo"
    "$work/native_server" 1 >"$work/fifo" &
    srv=$!
    bg+=("$srv")
    exec 3<"$work/fifo"
    read -r -t 10 line <&3 || { echo "native_server did not start" >&2; exit 1; }
    "$daemon_bin" daemon --bind 127.0.0.1 --port "$port" --user root --dir "$MAILSLOT_DIR" \
        --workgroup OFFICE --netbios-name CAPIDAEMON 2>"$work/dfifo" &
    daemon=$!
    bg+=("$daemon")
    exec 4<"$work/dfifo"
    ready=""
    while read -r -t 10 line <&4; do
        case $line in *"ready"*) ready=1; break ;; esac
    done
    [ -n "$ready" ] || { echo "the mailslot daemon did not get ready" >&2; kill "$daemon"; exit 1; }
    MAILSLOT_TARGET='\\*\mailslot\sample_mailslot' MAILSLOT_NETBIOS_NAME=CAPICLIENT MAILSLOT_WORKGROUP=OFFICE \
        MAILSLOT_BROADCAST=127.0.0.1 MAILSLOT_PORT=$port "$work/native_client" "over the network"
    read -r -t 10 line <&3 || { echo "nothing arrived through the daemon" >&2; kill "$daemon"; exit 1; }
    echo "native_server: $line"
    kill "$daemon"
    wait "$daemon" || true
    wait "$srv"
    exec 3<&- 4<&-
    case $line in
        *"over the network"*"from CAPICLIENT"*"at 127.0.0.1:"*"sent to OFFICE"*) ;;
        *) echo "the reader did not see the network origin: $line" >&2; exit 1 ;;
    esac
else
    echo "skipped: needs root and the mailslot binary ($daemon_bin, built by cargo test)"
fi

step "a slot's mode refuses another user: ERROR_ACCESS_DENIED / MAILSLOT_E_PERMISSION_DENIED"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    # A directory everyone may use (like /run/mailslot), and clients linked
    # statically so that user "nobody" needs nothing from our private $work.
    shared=$(mktemp -d /tmp/mscapi-perm.XXXXXX)
    chmod 1777 "$shared"
    "${CC[@]}" $cflags $compat "$examples/win32_client.c" -o "$shared/win32_client" $static_libs
    "${CC[@]}" $cflags "$examples/native_client.c" -o "$shared/native_client" $static_libs
    chmod 0755 "$shared/win32_client" "$shared/native_client"
    rm -f "$work/fifo"
    mkfifo "$work/fifo"
    MAILSLOT_DIR=$shared "$work/native_server" 1 >"$work/fifo" &
    srv=$!
    bg+=("$srv")
    exec 3<"$work/fifo"
    read -r -t 10 line <&3 || { echo "native_server did not start" >&2; exit 1; }
    as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env MAILSLOT_DIR="$shared" "$@"; }
    out=$(as_nobody "$shared/win32_client" x 2>&1 || true)
    echo "nobody, Win32: $out"
    case $out in *"failed with 5"*) ;; *) echo "expected ERROR_ACCESS_DENIED (5)" >&2; exit 1 ;; esac
    out=$(as_nobody "$shared/native_client" x 2>&1 || true)
    echo "nobody, native: $out"
    case $out in *"permission denied"*"sample_mailslot"*) ;; *) echo "expected a permission error naming the slot" >&2; exit 1 ;; esac
    MAILSLOT_DIR=$shared "$work/native_client" "the owner may" >/dev/null
    read -r -t 10 line <&3 && echo "native_server: $line"
    wait "$srv"
    exec 3<&-
    rm -rf "$shared"
    shared=""
else
    echo "skipped: needs root and setpriv"
fi

step "examples/c/python: ctypes"
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} python3 "$examples/python/mailslot_ctypes.py"

step "bench.c smoke (correctness only; bench/run.sh measures)"
"${CC[@]}" -O2 $cflags "$here/../../bench/bench.c" -o "$work/bench" $libs $rpath
"$work/bench" 64 20000 >/dev/null
"$work/bench" 1024 20000 >/dev/null

echo "C library: all tests passed"
