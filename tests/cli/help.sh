#!/bin/sh
# Every program and every subcommand answers --help (usage on stdout, exit 0) and --version
# (the project version, exit 0). The subcommands walked are the ones the programs' own usage
# lists (`tdcrypt --help`, `tdcrypt-kbs --help`), so a new one that forgets --help fails here.
set -u
TDC=$1
KBS=$2
AGENT=$3
VERSION=$4
D=$(mktemp -d /tmp/tdc-help-XXXXXX)
trap 'rm -rf "$D"' EXIT
fails=0
checked=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# help NAME WORDS...: "PROG WORDS --help" and "-h": exit 0, usage naming NAME on stdout
help() {
	name=$1
	shift
	for h in --help -h; do
		"$@" "$h" >"$D/out" 2>"$D/err" </dev/null
		rc=$?
		checked=$((checked + 1))
		if [ "$rc" -ne 0 ]; then
			bad "'$name $h' exits $rc: $(head -c 200 "$D/err")"
		elif [ ! -s "$D/out" ]; then
			bad "'$name $h' prints nothing on stdout"
		elif ! grep -q "usage: " "$D/out" || ! grep -qF "$name" "$D/out"; then
			bad "'$name $h' prints no usage of $name: $(head -c 200 "$D/out")"
		fi
	done
}

# version PROGNAME PROG WORDS...: "PROG WORDS --version" prints "PROGNAME VERSION", exit 0
version() {
	prog=$1
	shift
	out=$("$@" --version 2>"$D/err" </dev/null)
	rc=$?
	checked=$((checked + 1))
	[ "$rc" -eq 0 ] || bad "'$* --version' exits $rc: $(head -c 200 "$D/err")"
	[ "$out" = "$prog $VERSION" ] || bad "'$* --version' prints '$out', not '$prog $VERSION'"
}

# tdcrypt: the commands its usage lists (lowercase words before the arguments)
"$TDC" --help >"$D/usage" || bad "tdcrypt --help exits $?"
sed -n 's/^  tdcrypt \([a-z][a-z-]*\)\( [a-z][a-z-]*\)\{0,1\}\( .*\|:.*\)\{0,1\}$/\1\2/p' \
	"$D/usage" >"$D/commands"
n=$(wc -l <"$D/commands")
[ "$n" -ge 15 ] || bad "only $n commands found in 'tdcrypt --help'"
help tdcrypt "$TDC"
version tdcrypt "$TDC"
while read -r group verb; do
	# shellcheck disable=SC2086 # verb is empty for a one-word command
	help "tdcrypt $group${verb:+ $verb}" "$TDC" $group $verb
	# shellcheck disable=SC2086
	version tdcrypt "$TDC" $group $verb
done <"$D/commands"
# the groups: `tdcrypt secret --help` lists its verbs
awk 'NF == 2 { print $1 }' "$D/commands" | sort -u >"$D/groups"
while read -r group; do
	help "tdcrypt $group" "$TDC" "$group"
	for verb in $(awk -v g="$group" '$1 == g { print $2 }' "$D/commands"); do
		grep -q "tdcrypt $group $verb" "$D/out" || bad "'tdcrypt $group --help' does not list $verb"
	done
done <"$D/groups"
# without a command or a verb: usage on stderr, exit 3 (bad usage)
"$TDC" >/dev/null 2>&1
[ $? -eq 3 ] || bad "tdcrypt without a command does not exit 3"
"$TDC" secret >/dev/null 2>&1
[ $? -eq 3 ] || bad "tdcrypt secret without a verb does not exit 3"

# tdcrypt-kbs and its subcommands (the words its usage lists after "tdcrypt-kbs")
"$KBS" --help >"$D/kbs-usage" || bad "tdcrypt-kbs --help exits $?"
help tdcrypt-kbs "$KBS"
version tdcrypt-kbs "$KBS"
subs=$(sed -n 's/^ *\(usage: \)\{0,1\}tdcrypt-kbs \([a-z][a-z]*\) .*/\2/p' "$D/kbs-usage")
[ "$(echo "$subs" | wc -w)" -ge 4 ] || bad "tdcrypt-kbs --help lists no subcommands: $subs"
for s in $subs; do
	help "tdcrypt-kbs $s" "$KBS" "$s"
	version tdcrypt-kbs "$KBS" "$s"
done

help tdcrypt-agent "$AGENT"
version tdcrypt-agent "$AGENT"

echo "$checked checks, $fails failed"
[ "$fails" -eq 0 ]
