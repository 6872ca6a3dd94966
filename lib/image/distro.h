/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the builder needs to know about the guest before touching it: /etc/os-release read
 * straight out of the (unmounted) ext4 root with libext2fs, and the distribution family that
 * decides the initramfs tool (initramfs-tools or dracut).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tdcrypt/error.h"
#include "util/limits.h"

/* Cap on /etc/os-release (to move to lib/util/limits.h). */

enum tdc_distro_family {
	TDC_FAMILY_UNKNOWN = 0,
	TDC_FAMILY_DEBIAN,   /* debian, ubuntu: initramfs-tools */
	TDC_FAMILY_RHEL,     /* rhel, fedora, centos, rocky, almalinux: dracut */
};

struct tdc_os_release {
	char id[32];
	char id_like[96];
	char version_id[32];
	char pretty_name[96];
	enum tdc_distro_family family;
};

const char *tdc_distro_family_name(enum tdc_distro_family f);
/* Parses os-release text (KEY=VALUE lines, optional quotes); unknown family is not an error. */
int tdc_os_release_parse(const uint8_t *buf, size_t len, struct tdc_os_release *o,
			 struct tdc_error *e) TDC_MUST_USE;
/*
 * Reads path (absolute, symlinks followed inside the fs) from the ext4 at src + src_offset.
 * TDC_E_FORMAT if src is not ext4, TDC_E_IO "no such file" (detail: path) if it does not exist,
 * TDC_E_LIMIT if larger than max. *out is NUL-terminated; free with free().
 */
int tdc_ext4_read_file(const char *src, uint64_t src_offset, const char *path, size_t max,
		       uint8_t **out, size_t *len, struct tdc_error *e) TDC_MUST_USE;
/*
 * Looks path up in the ext4 at src + src_offset without following a final symlink (links on
 * the way are followed inside the fs): *mode gets its inode mode. TDC_E_NOT_FOUND if absent.
 */
int tdc_ext4_lookup(const char *src, uint64_t src_offset, const char *path, uint16_t *mode,
		    struct tdc_error *e) TDC_MUST_USE;
