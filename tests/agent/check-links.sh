#!/bin/sh
# The agent runs in the initramfs: it may link only libc, OpenSSL, libcryptsetup
# and json-c (issue 3); the dynamic loader is part of libc. Fails if its ELF NEEDED list has anything else.
set -eu
bin=$1
allowed='libc.so.6 ld-linux-x86-64.so.2 libssl.so.3 libcrypto.so.3 libcryptsetup.so.12 libjson-c.so.5'
bad=0
for lib in $(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
	case $lib in
	libasan.so.* | libubsan.so.*) echo "ok: $lib (sanitizer build)"; continue ;;
	esac
	case " $allowed " in
	*" $lib "*) echo "ok: $lib" ;;
	*) echo "NOT ALLOWED: $lib"; bad=1 ;;
	esac
done
exit $bad
