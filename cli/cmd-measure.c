/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt measure: the MRTD and RTMRs a TD will report, predicted from the inputs of its boot
 * (firmware, disk image or kernel/initrd/command line, boot path, VM shape), event by event.
 * tdcrypt policy from-image: the release policy those values make (lib/policy/reference.c).
 * Both share measure_run(); image encrypt --emit-policy calls it on its output.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "cli.h"
#include "image/proc.h"
#include "tdcrypt/image.h"
#include "tdcrypt/launch.h"
#include "tdcrypt/policy.h"
#include "util/json.h"
#include "util/util.h"

static const char usage_text[] =
	"usage: tdcrypt measure (--image DISK | --kernel FILE [--initrd FILE] [--cmdline TEXT])\n"
	"         [--boot uefi|direct] [--target td|sim] [--firmware FILE] [--memory SIZE]\n"
	"         [--qemu-version X.Y] [--mrtd-order single-pass|two-pass] [--json]\n"
	"  Predicts MRTD and RTMR0-3, with the events that produce them, for booting DISK the way\n"
	"  the firmware boots it (uefi: its EFI loader, GRUB) or directly (QEMU -kernel; from DISK\n"
	"  the default GRUB entry's kernel, initrd and command line). What depends on the VM shape\n"
	"  is listed, not guessed.\n"
	"  --target td (default): what a TD extends; sim: the quote simulator's TD (QEMU TCG,\n"
	"    OVMF and a vTPM, tdcrypt launch --no-tdx).\n"
	"  --firmware: default the launcher's (td: OVMF.inteltdx.fd; sim: " TDC_LAUNCH_OVMF ").\n"
	"  --memory (direct boot, default 2G) and --qemu-version (default: the installed QEMU)\n"
	"    decide how QEMU patches the kernel it passes.\n"
	"usage: tdcrypt policy from-image DISK [the options above] [-o FILE] [--allow-unmeasured]\n"
	"  The release policy DISK will satisfy when booted that way: MRTD, the predicted RTMRs as\n"
	"  event lists, and a reference block that tdcrypt launch --policy follows.\n";

static int parse_mem(const char *s, uint32_t *mib)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || v == 0)
		return -1;
	if (*end == 'G' || *end == 'g')
		v *= 1024, end++;
	else if (*end == 'M' || *end == 'm')
		end++;
	if (*end || v > TDC_LAUNCH_MAX_MEMORY_MIB || v < 64)
		return -1;
	*mib = (uint32_t)v;
	return 0;
}

int measure_parse(int argc, char **argv, int first, struct measure_args *a)
{
	memset(a, 0, sizeof(*a));
	a->memory_mib = TDC_LAUNCH_DEFAULT_MEMORY_MIB;
	for (int i = first; i < argc; i++) {
		const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (!strcmp(s, name) && v && ++i)
		if (OPT("--image")) {
			a->image = v;
		} else if (OPT("--kernel")) {
			a->kernel = v;
		} else if (OPT("--initrd")) {
			a->initrd = v;
		} else if (OPT("--cmdline")) {
			a->cmdline = v;
		} else if (OPT("--firmware")) {
			a->firmware = v;
		} else if (OPT("--boot")) {
			if (strcmp(v, "uefi") && strcmp(v, "direct"))
				goto bad;
			a->boot = v;
		} else if (OPT("--target")) {
			if (strcmp(v, "td") && strcmp(v, "sim"))
				goto bad;
			a->target = v;
		} else if (OPT("--memory")) {
			if (parse_mem(v, &a->memory_mib) < 0)
				goto bad;
		} else if (OPT("--qemu-version")) {
			if (sscanf(v, "%u.%u", &a->qemu_major, &a->qemu_minor) != 2)
				goto bad;
		} else if (OPT("--mrtd-order")) {
			if (strcmp(v, "single-pass") && strcmp(v, "two-pass"))
				goto bad;
			a->two_pass = !strcmp(v, "two-pass");
		} else if (OPT("-o")) {
			a->out = v;
		} else if (!strcmp(s, "--json")) {
			a->json = true;
		} else if (!strcmp(s, "--allow-unmeasured")) {
			a->allow_unmeasured = true;
		} else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(usage_text, stdout);
			exit(TDC_EXIT_OK);
		} else if (s[0] != '-' && !a->image && !a->kernel) {
			a->image = s;
		} else {
			fprintf(stderr, "tdcrypt: unknown or incomplete option '%s'\n", s);
			return -1;
		}
		continue;
bad:
		fprintf(stderr, "tdcrypt: bad value for %s: '%s'\n", s, v);
		return -1;
#undef OPT
	}
	if (!a->image == !a->kernel || (!a->kernel && (a->initrd || a->cmdline))) {
		fprintf(stderr, "tdcrypt: give --image DISK, or --kernel (with --initrd, --cmdline)\n");
		return -1;
	}
	if (!a->boot)
		a->boot = a->kernel ? "direct" : "uefi";
	if (a->kernel && strcmp(a->boot, "direct")) {
		fprintf(stderr, "tdcrypt: --kernel means --boot direct\n");
		return -1;
	}
	if (!a->target)
		a->target = "td";
	if (!a->firmware)
		a->firmware = tdc_launch_default_firmware(!strcmp(a->target, "td"));
	return 0;
}

/* "QEMU emulator version 7.2.22 (Debian ...)" of the installed QEMU, or 10.1. */
static void qemu_version(unsigned *major, unsigned *minor)
{
	const char *argv[] = { TDC_LAUNCH_QEMU, "--version", NULL };
	char *out = NULL;
	struct tdc_error e = { 0 };
	*major = 10;
	*minor = 1;
	if (tdc_run("qemu version", argv, NULL, &out, &e) == 0 && out) {
		const char *p = strstr(out, "version ");
		if (p && sscanf(p + 8, "%u.%u", major, minor) != 2) {
			*major = 10;
			*minor = 1;
		}
	}
	free(out);
}

/* The Debian package that installed path and its version ("ovmf 2022.11-6+deb12u2"). */
static void package_of(const char *path, char *out, size_t cap)
{
	char *who = NULL, *ver = NULL;
	struct tdc_error e = { 0 };
	out[0] = '\0';
	const char *q[] = { "dpkg-query", "-S", path, NULL };
	if (tdc_run("package of firmware", q, NULL, &who, &e) < 0 || !who)
		goto out;
	char *colon = strchr(who, ':');
	if (!colon)
		goto out;
	*colon = '\0';
	const char *v[] = { "dpkg-query", "-W", "-f", "${Version}", who, NULL };
	if (tdc_run("package version", v, NULL, &ver, &e) == 0 && ver)
		snprintf(out, cap, "%s %s", who, ver);
out:
	free(who);
	free(ver);
}

static void sha256_hex(const uint8_t *p, size_t n, char out[65])
{
	uint8_t d[32];
	unsigned int len;
	EVP_Digest(p, n, d, &len, EVP_sha256(), NULL);
	tdc_hex_encode(d, sizeof(d), out);
}

void measure_free(struct measure_run *m)
{
	if (!m)
		return;
	if (m->ref)
		tdc_reference_free(m->ref);
	free(m->ref);
	free(m->fw);
	memset(m, 0, sizeof(*m));
}

int measure_run(const struct measure_args *a, struct measure_run *m)
{
	struct tdc_error e = { 0 };
	uint8_t *k = NULL, *i = NULL;
	size_t klen = 0, ilen = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	if (tdc_file_read(a->firmware, TDC_TDVF_MAX_IMAGE, &m->fw, &m->fw_len, &e) < 0) {
		cli_print_error("firmware", &e);
		fprintf(stderr, "  (--firmware FILE: the TDVF/OVMF image the launcher uses)\n");
		return cli_exit_for(e.code);
	}
	sha256_hex(m->fw, m->fw_len, m->fw_sha256);
	package_of(a->firmware, m->fw_package, sizeof(m->fw_package));
	m->qemu_major = a->qemu_major;
	m->qemu_minor = a->qemu_minor;
	if (!m->qemu_major)
		qemu_version(&m->qemu_major, &m->qemu_minor);
	if (!(m->ref = calloc(1, sizeof(*m->ref)))) {
		fprintf(stderr, "tdcrypt: out of memory\n");
		return TDC_EXIT_INTERNAL;
	}
	enum tdc_measure_target target = !strcmp(a->target, "sim") ? TDC_TARGET_SIM : TDC_TARGET_TD;
	enum tdc_boot_path path = !strcmp(a->boot, "direct") ? TDC_BOOT_DIRECT : TDC_BOOT_UEFI;
	struct tdc_qemu_boot q = {
		.memory_bytes = (uint64_t)a->memory_mib << 20,
		.qemu_major = m->qemu_major,
		.qemu_minor = m->qemu_minor,
	};
	if (a->image) {
		struct tdc_image_ref_opts o = {
			.image = a->image,
			.fw = m->fw,
			.fw_len = m->fw_len,
			.path = path,
			.target = target,
			.mrtd_order = a->two_pass ? TDC_MRTD_TWO_PASS : TDC_MRTD_SINGLE_PASS,
			.qemu = q,
		};
		rc = tdc_image_reference(&o, m->ref, &e);
	} else {
		if ((rc = tdc_file_read(a->kernel, TDC_KERNEL_MAX_IMAGE, &k, &klen, &e)) == 0 &&
		    a->initrd)
			rc = tdc_file_read(a->initrd, 1u << 30, &i, &ilen, &e);
		struct tdc_boot_inputs in = {
			.path = TDC_BOOT_DIRECT,
			.target = target,
			.fw = m->fw,
			.fw_len = m->fw_len,
			.mrtd_order = a->two_pass ? TDC_MRTD_TWO_PASS : TDC_MRTD_SINGLE_PASS,
			.kernel = k,
			.kernel_len = klen,
			.initrd = i,
			.initrd_len = ilen,
			.cmdline = a->cmdline ? a->cmdline : "",
			.qemu = q,
		};
		if (rc == 0)
			rc = tdc_predict_boot(&in, m->ref, &e);
	}
	free(k);
	free(i);
	if (rc < 0) {
		cli_print_error("measure", &e);
		return cli_exit_for(rc);
	}
	return TDC_EXIT_OK;
}

void measure_reference_meta(const struct measure_args *a, const struct measure_run *m,
			    struct tdc_policy_reference *r)
{
	memset(r, 0, sizeof(*r));
	r->present = true;
	snprintf(r->tool, sizeof(r->tool), "tdcrypt measure %s", TDC_VERSION_STRING);
	snprintf(r->target, sizeof(r->target), "%s", a->target);
	snprintf(r->boot, sizeof(r->boot), "%s", a->boot);
	snprintf(r->firmware, sizeof(r->firmware), "%s", a->firmware);
	snprintf(r->firmware_sha256, sizeof(r->firmware_sha256), "%s", m->fw_sha256);
	snprintf(r->mrtd_order, sizeof(r->mrtd_order), "%s",
		 a->two_pass ? "two-pass" : "single-pass");
	snprintf(r->qemu, sizeof(r->qemu), "%u.%u", m->qemu_major, m->qemu_minor);
	if (a->image)
		snprintf(r->image, sizeof(r->image), "%s", a->image);
	if (!strcmp(a->boot, "direct"))
		r->memory_mib = a->memory_mib;
}

/* ---- output ---- */

static void print_human(const struct measure_args *a, const struct measure_run *m)
{
	const struct tdc_reference *r = m->ref;
	const struct tdc_prediction *p = &r->pred;
	char hex[2 * TDC_SHA384_LEN + 1];

	printf("firmware  %s%s%s%s\n          sha256 %s, %zu TDVF sections\n", a->firmware,
	       m->fw_package[0] ? " (" : "", m->fw_package, m->fw_package[0] ? ")" : "",
	       m->fw_sha256, r->tdvf.n);
	printf("target    %s (%s), boot %s, QEMU %u.%u\n", a->target,
	       strcmp(a->target, "sim") ? "a TD: CC measurements"
					: "the quote simulator: a vTPM's TCG2 measurements as RTMRs",
	       a->boot, m->qemu_major, m->qemu_minor);
	printf("MRTD      %s\n          (%s order of page adds; %s)\n",
	       tdc_hex_encode(r->mrtd, TDC_SHA384_LEN, hex),
	       a->two_pass ? "two-pass" : "single-pass",
	       a->two_pass ? "QEMU 8.x with the pre-upstream KVM" : "QEMU >= 9 with KVM >= 6.16");
	for (unsigned i = 0; i < TDC_RTMR_COUNT; i++) {
		if (p->predicted[i])
			printf("RTMR%u     %s\n", i, tdc_hex_encode(p->rtmr[i], TDC_SHA384_LEN, hex));
		else
			printf("RTMR%u     not predicted: %s\n", i, p->why[i]);
		size_t n = 0;
		for (size_t k = 0; k < p->n; k++) {
			const struct tdc_pred_event *ev = &p->ev[k];
			if (ev->rtmr != i)
				continue;
			const char *t = tdc_event_type_name(ev->type);
			printf("  %3zu %-33s %-12s %s\n", ++n, t ? t : "?", tdc_event_role_name(ev->role),
			       ev->what);
			if (ev->known)
				printf("      %s\n", tdc_hex_encode(ev->digest, TDC_SHA384_LEN, hex));
			else
				printf("      (not predicted: %s)\n", ev->why);
		}
		if (p->predicted[i] && n == 0)
			printf("      (nothing extends RTMR%u before the agent)\n", i);
		else if (p->truncated[i] && p->predicted[i] == false && n)
			printf("      ... (events after these are not predicted)\n");
	}
	if (r->boot.kernel_path[0])
		printf("boots     %s (%s), %zu initrd(s), %s\n", r->boot.kernel_path, r->kernel.version,
		       r->boot.n_initrd, r->boot.cmdline);
	printf("measured  kernel %s, initrd %s, command line %s\n", r->kernel_measured ? "yes" : "NO",
	       r->initrd_measured ? "yes" : "NO", r->cmdline_measured ? "yes" : "NO");
	for (size_t i = 0; i < p->n_notes; i++)
		printf("note: %s\n", p->notes[i]);
}


static json_object *hexj(const uint8_t *d)
{
	char hex[2 * TDC_SHA384_LEN + 1];
	return json_object_new_string(tdc_hex_encode(d, TDC_SHA384_LEN, hex));
}

static json_object *to_json(const struct measure_args *a, const struct measure_run *m)
{
	const struct tdc_reference *r = m->ref;
	const struct tdc_prediction *p = &r->pred;
	json_object *o = json_object_new_object(), *fw = json_object_new_object();
	json_object *rt = json_object_new_array(), *notes = json_object_new_array();
	json_object *meas = json_object_new_object();
	bool ok = o && fw && rt && notes && meas;
	ok = ok && tdc_json_add(fw, "path", json_object_new_string(a->firmware)) == 0 &&
	     tdc_json_add(fw, "sha256", json_object_new_string(m->fw_sha256)) == 0 &&
	     tdc_json_add(fw, "package", json_object_new_string(m->fw_package)) == 0 &&
	     tdc_json_add(fw, "tdvf_sections", json_object_new_int((int)r->tdvf.n)) == 0;
	for (unsigned i = 0; ok && i < TDC_RTMR_COUNT; i++) {
		json_object *x = json_object_new_object(), *evs = json_object_new_array();
		ok = x && evs && json_object_array_add(rt, x) == 0;
		ok = ok && tdc_json_add(x, "rtmr", json_object_new_int((int)i)) == 0 &&
		     tdc_json_add(x, "predicted", json_object_new_boolean(p->predicted[i])) == 0 &&
		     (p->predicted[i] ? tdc_json_add(x, "value", hexj(p->rtmr[i])) == 0
				      : tdc_json_add(x, "why", json_object_new_string(p->why[i])) == 0);
		for (size_t k = 0; ok && k < p->n; k++) {
			const struct tdc_pred_event *ev = &p->ev[k];
			if (ev->rtmr != i)
				continue;
			const char *t = tdc_event_type_name(ev->type);
			json_object *j = json_object_new_object();
			ok = j && json_object_array_add(evs, j) == 0 &&
			     tdc_json_add(j, "type", json_object_new_string(t ? t : "?")) == 0 &&
			     tdc_json_add(j, "role", json_object_new_string(tdc_event_role_name(ev->role))) == 0 &&
			     tdc_json_add(j, "what", json_object_new_string(ev->what)) == 0 &&
			     (ev->known ? tdc_json_add(j, "digest", hexj(ev->digest)) == 0
					: tdc_json_add(j, "why", json_object_new_string(ev->why)) == 0);
		}
		ok = ok && tdc_json_add(x, "events", evs) == 0;
	}
	for (size_t i = 0; ok && i < p->n_notes; i++)
		ok = json_object_array_add(notes, json_object_new_string(p->notes[i])) == 0;
	ok = ok && tdc_json_add(meas, "kernel", json_object_new_boolean(r->kernel_measured)) == 0 &&
	     tdc_json_add(meas, "initrd", json_object_new_boolean(r->initrd_measured)) == 0 &&
	     tdc_json_add(meas, "cmdline", json_object_new_boolean(r->cmdline_measured)) == 0;
	ok = ok && tdc_json_add(o, "firmware", fw) == 0;
	fw = NULL;
	char qv[16];
	snprintf(qv, sizeof(qv), "%u.%u", m->qemu_major, m->qemu_minor);
	ok = ok && tdc_json_add(o, "target", json_object_new_string(a->target)) == 0 &&
	     tdc_json_add(o, "boot", json_object_new_string(a->boot)) == 0 &&
	     tdc_json_add(o, "qemu", json_object_new_string(qv)) == 0 &&
	     tdc_json_add(o, "mrtd", hexj(r->mrtd)) == 0 &&
	     tdc_json_add(o, "mrtd_order", json_object_new_string(a->two_pass ? "two-pass" : "single-pass")) == 0;
	ok = ok && tdc_json_add(o, "rtmrs", rt) == 0;
	rt = NULL;
	ok = ok && tdc_json_add(o, "measured", meas) == 0;
	meas = NULL;
	if (ok && r->boot.kernel_path[0]) {
		json_object *b = json_object_new_object();
		ok = b && tdc_json_add(o, "boots", b) == 0 &&
		     tdc_json_add(b, "kernel", json_object_new_string(r->boot.kernel_path)) == 0 &&
		     tdc_json_add(b, "kernel_version", json_object_new_string(r->kernel.version)) == 0 &&
		     tdc_json_add(b, "cmdline", json_object_new_string(r->boot.cmdline)) == 0;
	}
	ok = ok && tdc_json_add(o, "notes", notes) == 0;
	notes = NULL;
	json_object_put(fw);
	json_object_put(rt);
	json_object_put(meas);
	json_object_put(notes);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int cmd_measure(int argc, char **argv)
{
	struct measure_args a;
	struct measure_run m;
	if (measure_parse(argc, argv, 1, &a) < 0 || a.out || a.allow_unmeasured) {
		fputs(usage_text, stderr);
		return TDC_EXIT_BAD_INPUT;
	}
	int rc = measure_run(&a, &m);
	if (rc != TDC_EXIT_OK) {
		measure_free(&m);
		return rc;
	}
	if (a.json) {
		json_object *o = to_json(&a, &m);
		if (!o) {
			measure_free(&m);
			fprintf(stderr, "tdcrypt: out of memory\n");
			return TDC_EXIT_INTERNAL;
		}
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		print_human(&a, &m);
	}
	measure_free(&m);
	return TDC_EXIT_OK;
}

int measure_policy(const struct measure_args *a, char **json)
{
	struct measure_run m;
	struct tdc_policy_reference meta;
	struct tdc_error e = { 0 };
	int rc = measure_run(a, &m);
	if (rc != TDC_EXIT_OK) {
		measure_free(&m);
		return rc;
	}
	measure_reference_meta(a, &m, &meta);
	if (tdc_policy_from_reference(m.ref, &meta, a->allow_unmeasured, json, &e) < 0) {
		cli_print_error("policy", &e);
		for (size_t i = 0; i < m.ref->pred.n_notes; i++)
			fprintf(stderr, "  note: %s\n", m.ref->pred.notes[i]);
		rc = e.code == TDC_E_UNSUPPORTED ? TDC_EXIT_REJECTED : cli_exit_for(e.code);
	}
	for (unsigned i = 0; rc == TDC_EXIT_OK && i < TDC_RTMR_COUNT; i++)
		if (!m.ref->pred.predicted[i])
			fprintf(stderr, "tdcrypt: policy: RTMR%u left unpinned: %s\n", i,
				m.ref->pred.why[i]);
	measure_free(&m);
	return rc;
}

int cmd_policy_from_image(int argc, char **argv)
{
	struct measure_args a;
	char *json = NULL;
	if (measure_parse(argc, argv, 1, &a) < 0 || a.json) {
		fputs(usage_text, stderr);
		return TDC_EXIT_BAD_INPUT;
	}
	int rc = measure_policy(&a, &json);
	if (rc != TDC_EXIT_OK)
		return rc;
	rc = cli_write_text(a.out, json);
	free(json);
	return rc;
}
