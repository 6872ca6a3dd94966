#!/bin/sh
# dracut initqueue/online hook: runs tdcrypt-agent once the network is up; the agent attests,
# fetches the key, checks the LUKS2 header and maps the root. Bounded retries (tdcrypt.retries=N,
# default 2, for no network / no quote), then power off: never a shell.
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

[ -e /tmp/tdcrypt.done ] && exit 0
name=$(sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' /etc/tdcrypt/agent.json | head -n 1)
if [ -n "$name" ] && [ -e "/dev/mapper/$name" ]; then
	: >/tmp/tdcrypt.done
	exit 0
fi

die_off() {
	warn "tdcrypt: $*; powering off"
	sync
	poweroff -f
	echo o >/proc/sysrq-trigger
	while :; do sleep 60; done
}

retries=$(getarg tdcrypt.retries=)
case $retries in ''|*[!0-9]*) retries=2 ;; esac
[ "$retries" -ge 1 ] || retries=1
[ "$retries" -le 10 ] || retries=10
modprobe -q dm_crypt 2>/dev/null
modprobe -q tdx_guest 2>/dev/null
modprobe -q tsm_report 2>/dev/null

n=1
while :; do
	/usr/sbin/tdcrypt-agent --config /etc/tdcrypt/agent.json
	rc=$?
	case $rc in
	0) : >/tmp/tdcrypt.done; exit 0 ;;
	3|4|9)
		[ "$n" -lt "$retries" ] || die_off "unlock failed (agent exit $rc) after $n attempts"
		n=$((n + 1))
		sleep 2
		;;
	*) die_off "unlock refused (agent exit $rc)" ;;
	esac
done
