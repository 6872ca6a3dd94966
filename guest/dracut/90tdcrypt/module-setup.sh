#!/bin/bash
# shellcheck disable=SC2154 # initdir, moddir, systemdsystemunitdir: set by dracut
# tdcrypt dracut module: unlock the LUKS2 root with the key tdcrypt-agent gets from the broker.
# Installed into /usr/lib/dracut/modules.d/90tdcrypt by `tdcrypt image encrypt` (the agent in
# /usr/local/sbin) or by the tdcrypt-agent package (the agent in /usr/sbin), and enabled by
# /etc/dracut.conf.d/90-tdcrypt.conf (add_dracutmodules+=" tdcrypt ").
#
# With systemd in the initramfs (the default wherever systemd is installed) the normal crypttab
# flow maps the root: tdcrypt-agent.service serves the key once to systemd-cryptsetup over the
# key-file socket /run/tdcrypt/key.sock. Without systemd, an initqueue/online hook runs the agent,
# which maps the root itself. Either way the agent checks the LUKS2 header before any key is
# requested.

agent() {
	if [ -x /usr/local/sbin/tdcrypt-agent ]; then
		echo /usr/local/sbin/tdcrypt-agent
	else
		echo /usr/sbin/tdcrypt-agent
	fi
}

check() {
	require_binaries "$(agent)" || return 1
	[ -r /etc/tdcrypt/agent.json ] || return 1
	return 255 # only when asked for
}

depends() {
	if dracut_module_included systemd; then
		echo network crypt systemd
	else
		echo network dm
	fi
	return 0
}

installkernel() {
	instmods dm_crypt xts ecb aesni_intel aes_generic sha256_generic
	# TDX quote providers; absent on kernels without TDX guest support
	hostonly='' instmods -o tdx_guest tsm_report vsock vmw_vsock_virtio_transport 2>/dev/null || :
}

install() {
	inst_binary "$(agent)" /usr/sbin/tdcrypt-agent
	inst_simple /etc/tdcrypt/agent.json
	if [ -d /etc/tdcrypt/sim ]; then
		# test images only: the simulator's directory
		find /etc/tdcrypt/sim -type f | while read -r f; do inst_simple "$f"; done
	fi
	inst_libdir_file "libgcc_s.so*"
	inst_multiple -o poweroff sleep sed rm
	mkdir -p "${initdir}/etc/cmdline.d"
	# network in the initramfs (DHCP unless ip= says otherwise); no shell; power off on failure
	echo "rd.neednet=1 rd.shell=0 rd.emergency=poweroff" >"${initdir}/etc/cmdline.d/90tdcrypt.conf"
	if dracut_module_included systemd; then
		install_systemd
	else
		# runs each time an interface comes online, until the root is mapped
		inst_hook initqueue/online 90 "$moddir/tdcrypt-unlock.sh"
		dracut_need_initqueue
	fi
}

install_systemd() {
	local name line hdr
	# the agent reads its own config: one parser, and the line fails the build if unusable
	line=$("$(agent)" --config /etc/tdcrypt/agent.json --crypttab /run/tdcrypt/key.sock) || {
		derror "tdcrypt: no crypttab line from the agent config"
		return 1
	}
	name=${line%% *}
	hdr=$(echo "$line" | sed -n 's/.*[ ,]header=\([^, ]*\).*/\1/p')
	# after 90crypt (which may have written a host crypttab): the root is ours alone
	echo "$line" >"${initdir}/etc/crypttab"
	inst_simple "$moddir/tdcrypt-agent.service" "$systemdsystemunitdir/tdcrypt-agent.service"
	mkdir -p "${initdir}$systemdsystemunitdir/systemd-cryptsetup@${name}.service.d"
	cat >"${initdir}$systemdsystemunitdir/systemd-cryptsetup@${name}.service.d/tdcrypt.conf" <<-UNIT
		# tdcrypt: the key socket must listen before systemd-cryptsetup reads it
		[Unit]
		Requires=tdcrypt-agent.service
		After=tdcrypt-agent.service

		[Service]
		# the agent's copy of the checked header (crypttab header=) is not needed once mapped
		ExecStartPost=-rm -f $hdr
	UNIT
	if dracut_module_included systemd-networkd; then
		# DHCP on the Ethernet links unless ip= on the command line configures them (the
		# generator's files in /run/systemd/network sort before this one)
		mkdir -p "${initdir}/etc/systemd/network"
		printf '[Match]\nType=ether\n\n[Network]\nDHCP=yes\n' \
			>"${initdir}/etc/systemd/network/99-tdcrypt-dhcp.network"
	fi
}
