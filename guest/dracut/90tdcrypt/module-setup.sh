#!/bin/bash
# tdcrypt dracut module: tdcrypt-agent unlocks the LUKS2 root with the key from the broker.
# Installed into /usr/lib/dracut/modules.d/90tdcrypt by `tdcrypt image encrypt` (the agent in
# /usr/local/sbin) or by the tdcrypt-agent package (the agent in /usr/sbin), and enabled by
# /etc/dracut.conf.d/90-tdcrypt.conf (add_dracutmodules+=" tdcrypt ").

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
	echo network dm
	return 0
}

installkernel() {
	instmods dm_crypt xts ecb aesni_intel aes_generic sha256_generic
	# TDX quote providers; absent on kernels without TDX guest support
	hostonly='' instmods -o tdx_guest tsm_report vsock vmw_vsock_virtio_transport 2>/dev/null || :
}

# shellcheck disable=SC2154 # initdir, moddir: set by dracut
install() {
	inst_binary "$(agent)" /usr/sbin/tdcrypt-agent
	inst_simple /etc/tdcrypt/agent.json
	if [ -d /etc/tdcrypt/sim ]; then
		# test images only: the simulator's directory
		find /etc/tdcrypt/sim -type f | while read -r f; do inst_simple "$f"; done
	fi
	inst_libdir_file "libgcc_s.so*"
	inst_multiple -o poweroff sleep sed
	# network in the initramfs (DHCP unless ip= says otherwise); no shell; power off on failure
	mkdir -p "${initdir}/etc/cmdline.d"
	echo "rd.neednet=1 rd.shell=0 rd.emergency=poweroff" >"${initdir}/etc/cmdline.d/90tdcrypt.conf"
	# runs each time an interface comes online, until the root is mapped
	inst_hook initqueue/online 90 "$moddir/tdcrypt-unlock.sh"
	dracut_need_initqueue
}
