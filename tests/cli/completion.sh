#!/usr/bin/env bash
# The bash completion of tdcrypt sources cleanly and completes the top-level commands (every
# one `tdcrypt --help` lists), a group's verbs, and a command's options.
set -u
COMPLETION=$1
TDC=$(readlink -f "$2")
PATH=$(dirname "$TDC"):$PATH
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# shellcheck source=/dev/null
source "$COMPLETION" || { echo "FAIL: $COMPLETION does not source"; exit 1; }
complete -p tdcrypt >/dev/null 2>&1 || bad "no completion registered for tdcrypt"
complete_words() { # words... (the last one is being completed)
	COMP_WORDS=(tdcrypt "$@")
	COMP_CWORD=$#
	COMPREPLY=()
	_tdcrypt
	printf '%s\n' "${COMPREPLY[@]}"
}

top=$(complete_words "")
n=0
for c in $(tdcrypt --help | sed -n 's/^  tdcrypt \([a-z][a-z-]*\)[ :].*/\1/p' | sort -u); do
	n=$((n + 1))
	grep -qx "$c" <<<"$top" || bad "'tdcrypt <TAB>' does not offer $c"
done
[ "$n" -ge 8 ] || bad "only $n top-level commands found in tdcrypt --help"
grep -qx -- --version <<<"$top" || bad "'tdcrypt <TAB>' does not offer --version"
[ "$(complete_words se)" = secret ] || bad "'tdcrypt se<TAB>' is not secret: $(complete_words se)"
verbs=$(complete_words secret "")
for v in add list rm rotate import audit; do
	grep -qx "$v" <<<"$verbs" || bad "'tdcrypt secret <TAB>' does not offer $v"
done
[ "$(complete_words quote verify --coll)" = --collateral ] ||
	bad "'tdcrypt quote verify --coll<TAB>' is not --collateral"
grep -qx -- --image <<<"$(complete_words measure --)" || bad "'tdcrypt measure --<TAB>' lacks --image"
[ -z "$(complete_words quote verify q)" ] || bad "a file argument is completed as a word"

echo "$n commands, $fails failed"
[ "$fails" -eq 0 ]
