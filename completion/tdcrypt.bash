# bash completion for tdcrypt(1). The commands, verbs and options come from the program's
# own --help, so they follow it as it changes.

# "group verb" or "command" per line, from `tdcrypt --help`
_tdcrypt_commands() {
	"$1" --help 2>/dev/null |
		sed -n 's/^  tdcrypt \([a-z][a-z-]*\)\( [a-z][a-z-]*\)\{0,1\}[ :].*/\1\2/p'
}

_tdcrypt() {
	local cur=${COMP_WORDS[COMP_CWORD]} prog=${COMP_WORDS[0]} cmds words
	COMPREPLY=()
	cmds=$(_tdcrypt_commands "$prog")
	if [ "$COMP_CWORD" -eq 1 ]; then
		words="$(printf '%s\n' "$cmds" | cut -d' ' -f1 | sort -u) --help --version"
		mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
		return
	fi
	local group=${COMP_WORDS[1]} verbs
	verbs=$(printf '%s\n' "$cmds" | awk -v g="$group" '$1 == g && NF == 2 { print $2 }')
	if [ -n "$verbs" ] && [ "$COMP_CWORD" -eq 2 ]; then
		mapfile -t COMPREPLY < <(compgen -W "$verbs --help" -- "$cur")
		return
	fi
	# options of the command, from its usage; anything else: file names (-o default)
	if [[ $cur == -* ]]; then
		local -a cmd=("$group")
		[ -n "$verbs" ] && cmd+=("${COMP_WORDS[2]}")
		words=$("$prog" "${cmd[@]}" --help 2>/dev/null | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
		mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
	fi
}
complete -o default -F _tdcrypt tdcrypt
