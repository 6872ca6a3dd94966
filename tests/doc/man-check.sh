#!/bin/sh
# The man pages render without a warning (as lintian reads them), and cannot drift from the
# code: every broker configuration key (lib/kbs/config.c) and every policy key (lib/policy)
# is a key of its page and the page has no other; every agent configuration key
# (lib/agent/config.c), every tdcrypt command and every option the programs' --help lists
# is in its page.
# usage: man-check.sh SRCDIR TDCRYPT TDCRYPT-KBS TDCRYPT-AGENT BUILT-PAGE...
set -u
SRC=$1
TDC=$2
KBS=$3
AGENT=$4
shift 4
[ $# -gt 0 ] || { echo "no man pages built (scdoc missing): skipped"; exit 77; }
D=$(mktemp -d /tmp/tdc-man-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$D"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
M=$SRC/man

# 1. each page renders cleanly
for page in "$@"; do
	if command -v man >/dev/null 2>&1; then
		LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$page" >"$D/out" 2>"$D/err"
	else
		groff -man -Tutf8 -ww -z "$page" >"$D/out" 2>"$D/err"
	fi
	[ -s "$D/err" ] && bad "$(basename "$page") renders with warnings: $(head -5 "$D/err")"
	grep -q '^\.SH "*NAME' "$page" || bad "$(basename "$page") has no NAME section"
done

# The terms of a section of a scdoc source: *words* at the start of a line that the next
# line indents further (a definition), at any depth.
terms() { # file section
	awk -v sec="# $2" '
		/^# / { on = ($0 == sec); next }
		on && prev != "" {
			pd = match(prev, /[^\t]/) - 1; d = match($0, /[^\t]/) - 1
			if (substr(prev, pd + 1, 1) == "*" && d > pd) {
				s = prev
				while (match(s, /\*[a-z][a-z0-9_.-]*\*/)) {
					print substr(s, RSTART + 1, RLENGTH - 2); s = substr(s, RSTART + RLENGTH)
				}
			}
		}
		{ prev = $0 }' "$1" | sort -u
}

# same_set WHAT CODE-LIST PAGE-LIST: the two sorted lists are equal
same_set() {
	comm -23 "$2" "$3" | while read -r k; do echo "FAIL: $1: '$k' accepted by the code, not in the page"; done
	comm -13 "$2" "$3" | while read -r k; do echo "FAIL: $1: '$k' in the page, not accepted by the code"; done
	[ "$(comm -3 "$2" "$3" | wc -l)" -eq 0 ] || fails=$((fails + 1))
	[ -s "$2" ] || bad "$1: no keys found in the code"
}

# 2. broker configuration keys: the option table of lib/kbs/config.c
sed -n 's/^[[:space:]]*{ "\([a-z_]*\)", "--[a-z-]*",.*/\1/p' "$SRC/lib/kbs/config.c" | sort -u >"$D/kbs-keys"
terms "$M/tdcrypt-kbs.json.5.scd" KEYS >"$D/kbs-terms"
same_set "tdcrypt-kbs.json(5)" "$D/kbs-keys" "$D/kbs-terms"

# 3. policy keys: every lowercase string literal of the parser is a key, except these
#    (names for error messages)
not_keys="policy"
grep -o '"[a-z][a-z0-9_]*"' "$SRC/lib/policy/parse.c" | tr -d '"' | sort -u |
	grep -vxF "$not_keys" >"$D/policy-keys"
terms "$M/tdcrypt-policy.5.scd" KEYS >"$D/policy-terms"
same_set "tdcrypt-policy(5)" "$D/policy-keys" "$D/policy-terms"

# 4. agent configuration keys: the allowed-member lists of lib/agent/config.c
awk '/allowed\[\] = \{/ { on = 1 } on { print } /NULL\}/ { on = 0 }' "$SRC/lib/agent/config.c" |
	grep -o '"[a-z_0-9]*"' | tr -d '"' | sort -u >"$D/agent-keys"
[ -s "$D/agent-keys" ] || bad "tdcrypt-agent(8): no keys found in lib/agent/config.c"
while read -r k; do
	grep -qF "*$k*" "$M/tdcrypt-agent.8.scd" || bad "tdcrypt-agent(8): config key '$k' missing"
done <"$D/agent-keys"

# 5. commands and options: each tdcrypt command is a term of COMMANDS, and every option that
#    a --help prints is in the page of its program
opts_in() { # page help-output-file
	grep -o -- '--[a-z][a-z0-9-]*' "$2" | sort -u | while read -r o; do
		grep -qF -- "*$o*" "$1" || echo "$o"
	done
}
"$TDC" --help >"$D/help" 2>/dev/null
sed -n 's/^  tdcrypt \([a-z][a-z-]*\)\( [a-z][a-z-]*\)\{0,1\}\( .*\|:.*\)\{0,1\}$/\1\2/p' \
	"$D/help" >"$D/commands"
[ -s "$D/commands" ] || bad "no commands in tdcrypt --help"
while read -r cmd; do
	grep -q "^\*tdcrypt $cmd\*" "$M/tdcrypt.1.scd" || bad "tdcrypt(1): no entry for 'tdcrypt $cmd'"
	# shellcheck disable=SC2086 # the command's words
	"$TDC" $cmd --help >>"$D/help" 2>/dev/null
done <"$D/commands"
missing=$(opts_in "$M/tdcrypt.1.scd" "$D/help")
[ -z "$missing" ] || bad "tdcrypt(1) lacks options:" $missing
"$KBS" --help >"$D/kbs-help" 2>/dev/null
sed -n 's/^[[:space:]]*{ [a-zNUL"_]*, "\(--[a-z-]*\)",.*/\1/p' "$SRC/lib/kbs/config.c" >>"$D/kbs-help"
missing=$(opts_in "$M/tdcrypt-kbs.8.scd" "$D/kbs-help")
[ -z "$missing" ] || bad "tdcrypt-kbs(8) lacks options:" $missing
"$AGENT" --help >"$D/agent-help" 2>/dev/null
missing=$(opts_in "$M/tdcrypt-agent.8.scd" "$D/agent-help")
[ -z "$missing" ] || bad "tdcrypt-agent(8) lacks options:" $missing

echo "$# pages, $fails failed"
[ "$fails" -eq 0 ]
