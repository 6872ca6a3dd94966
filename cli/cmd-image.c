/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt image encrypt IN OUT ...: a GPT guest disk in, the same guest with a LUKS2 root that
 * only the broker can unlock out (lib/image, include/tdcrypt/image.h). The disk key is generated
 * here (RAND_priv_bytes, locked memory), never printed, and either registered with the broker
 * over its admin socket or written 0600 to --key-out; both happen before OUT appears, so an OUT
 * always has its key somewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cli.h"
#include "image/paths.h"
#include "tdcrypt/image.h"
#include "tdcrypt/store.h"
#include "util/util.h"

#define KEY_BYTES 32u
#define ADMIN_REPLY_MAX (64u * 1024u)

static const char usage_text[] =
	"usage: tdcrypt image encrypt IN OUT --secret-id ID --broker HOST:PORT [--broker ...]\n"
	"         --broker-pin SPKI_SHA256_HEX [--broker-pin ...]\n"
	"         (--key-out FILE | --register-admin-socket PATH)\n"
	"         [--agent PATH] [--guest-dir DIR] [--format qcow2|raw] [--boot-size MIB]\n"
	"         [--luks-name NAME] [--cmdline-extra WORDS] [--timeout SECONDS] [--json]\n"
	"         [--guest-step auto|chroot|vm] [--prep-timeout SECONDS]\n"
	"  IN: qcow2 or raw GPT disk (ESP + ext4 root holding /boot; Debian/Ubuntu or RHEL-like;\n"
	"  an XFS or btrfs root with its own ext4 /boot: --no-guest only, whole partition encrypted).\n"
	"  OUT: ESP (as is) + clear /boot + LUKS2 root; must not exist.\n"
	"  The guest's initramfs generator runs in a chroot on this host (root: loop mount, chroot;\n"
	"  faster) or in a preparation boot of the image under QEMU (no root, no mount; minutes\n"
	"  without KVM). auto (default): chroot as root, vm otherwise. --prep-timeout: VM limit.\n"
	"  The random disk key is registered with the broker (secret ID, no policy yet: set one\n"
	"  with 'tdcrypt policy set') or written to FILE (0600, raw bytes); it is never printed.\n"
	"  --emit-policy FILE: the release policy OUT will satisfy, predicted from OUT itself\n"
	"  (tdcrypt policy from-image; register it with 'tdcrypt policy set'), for\n"
	"  [--firmware F] [--boot uefi|direct] [--memory SIZE] as tdcrypt launch will use them.\n"
	"  Testing only: --sim-dir DIR (agent uses the simulator provider; the policy is then\n"
	"  for the simulator's TD), --no-guest (layout only: no agent, no initramfs; no root).\n";

struct args {
	const char *in, *out, *secret_id, *key_out, *admin_sock, *agent, *guest_dir, *format;
	const char *luks_name, *cmdline_extra, *sim_dir;
	const char *emit_policy, *firmware, *boot, *memory;
	const char *brokers[TDC_IMAGE_MAX_BROKERS], *pins[TDC_IMAGE_MAX_PINS];
	size_t n_brokers, n_pins;
	uint32_t boot_mib, timeout_s, prep_timeout_s;
	enum tdc_image_guest_step guest_step;
	bool json, no_guest;
};

#define MAX_STAGES 32
#define BAR_WIDTH 24
#define REDRAW_S 0.1

struct run {
	const struct args *a;
	struct tdc_secret key;
	int key_fd;
	bool bar;          /* stderr is a terminal and no --json: one redrawn progress line */
	double t0;
	char stage[64];
	double stage_t0, last_draw;
	size_t n_stages;
	struct {
		char name[64];
		double s;
	} stages[MAX_STAGES];
};

/* SIGINT/SIGTERM/SIGHUP: the next progress call asks the library to stop; it removes its work
 * directory and unmounts what it mounted, so an interrupted build leaves nothing behind. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool used = true;

		if (!strcmp(s, "--json")) {
			a->json = true;
			continue;
		}
		if (!strcmp(s, "--no-guest")) {
			a->no_guest = true;
			continue;
		}
		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(usage_text, stdout);
			exit(TDC_EXIT_OK);
		}
		if (s[0] != '-' || !s[1]) {
			if (!a->in)
				a->in = s;
			else if (!a->out)
				a->out = s;
			else {
				fprintf(stderr, "tdcrypt: unexpected argument '%s'\n", s);
				return -1;
			}
			continue;
		}
		if (!v) {
			fprintf(stderr, "tdcrypt: option '%s' needs a value or is unknown\n", s);
			return -1;
		}
		if (!strcmp(s, "--secret-id"))
			a->secret_id = v;
		else if (!strcmp(s, "--broker")) {
			if (a->n_brokers == TDC_IMAGE_MAX_BROKERS || !*v || strpbrk(v, " \t\"\\")) {
				fprintf(stderr, "tdcrypt: bad or too many --broker '%s'\n", v);
				return -1;
			}
			a->brokers[a->n_brokers++] = v;
		} else if (!strcmp(s, "--broker-pin")) {
			uint8_t pin[32];

			if (a->n_pins == TDC_IMAGE_MAX_PINS ||
			    tdc_hex_decode(v, strlen(v), pin, sizeof(pin), "pin", NULL) < 0) {
				fprintf(stderr,
					"tdcrypt: --broker-pin takes 64 hex digits (SHA-256 of the "
					"broker's SubjectPublicKeyInfo), at most %u\n",
					TDC_IMAGE_MAX_PINS);
				return -1;
			}
			a->pins[a->n_pins++] = v;
		} else if (!strcmp(s, "--key-out"))
			a->key_out = v;
		else if (!strcmp(s, "--register-admin-socket"))
			a->admin_sock = v;
		else if (!strcmp(s, "--agent"))
			a->agent = v;
		else if (!strcmp(s, "--guest-dir"))
			a->guest_dir = v;
		else if (!strcmp(s, "--format"))
			a->format = v;
		else if (!strcmp(s, "--luks-name"))
			a->luks_name = v;
		else if (!strcmp(s, "--cmdline-extra"))
			a->cmdline_extra = v;
		else if (!strcmp(s, "--sim-dir"))
			a->sim_dir = v;
		else if (!strcmp(s, "--emit-policy"))
			a->emit_policy = v;
		else if (!strcmp(s, "--firmware"))
			a->firmware = v;
		else if (!strcmp(s, "--boot"))
			a->boot = v;
		else if (!strcmp(s, "--memory"))
			a->memory = v;
		else if (!strcmp(s, "--boot-size")) {
			if (parse_u32(v, 64, 65536, &a->boot_mib) < 0) {
				fprintf(stderr, "tdcrypt: --boot-size takes 64..65536 (MiB)\n");
				return -1;
			}
		} else if (!strcmp(s, "--guest-step")) {
			if (!strcmp(v, "auto"))
				a->guest_step = TDC_GUEST_STEP_AUTO;
			else if (!strcmp(v, "chroot"))
				a->guest_step = TDC_GUEST_STEP_CHROOT;
			else if (!strcmp(v, "vm"))
				a->guest_step = TDC_GUEST_STEP_VM;
			else {
				fprintf(stderr, "tdcrypt: --guest-step takes auto, chroot or vm\n");
				return -1;
			}
		} else if (!strcmp(s, "--prep-timeout")) {
			if (parse_u32(v, 1, 86400, &a->prep_timeout_s) < 0) {
				fprintf(stderr, "tdcrypt: --prep-timeout takes 1..86400 (seconds)\n");
				return -1;
			}
		} else if (!strcmp(s, "--timeout")) {
			if (parse_u32(v, 1, 86400, &a->timeout_s) < 0) {
				fprintf(stderr, "tdcrypt: --timeout takes 1..86400 (seconds)\n");
				return -1;
			}
		} else
			used = false;
		if (!used) {
			fprintf(stderr, "tdcrypt: unknown option '%s'\n", s);
			return -1;
		}
		i++;
	}
	if (!a->in || !a->out) {
		fprintf(stderr, "tdcrypt: IN and OUT are required\n");
		return -1;
	}
	if (!a->no_guest && (!a->secret_id || !a->n_brokers || !a->n_pins)) {
		fprintf(stderr, "tdcrypt: --secret-id, --broker and --broker-pin are required\n");
		return -1;
	}
	if (!!a->key_out == !!a->admin_sock) {
		fprintf(stderr,
			"tdcrypt: exactly one of --key-out and --register-admin-socket is needed\n");
		return -1;
	}
	if (a->admin_sock && !a->secret_id) {
		fprintf(stderr, "tdcrypt: --register-admin-socket needs --secret-id\n");
		return -1;
	}
	if (a->format && strcmp(a->format, "qcow2") && strcmp(a->format, "raw")) {
		fprintf(stderr, "tdcrypt: --format takes qcow2 or raw\n");
		return -1;
	}
	if ((a->firmware || a->boot || a->memory) && !a->emit_policy) {
		fprintf(stderr, "tdcrypt: --firmware, --boot and --memory go with --emit-policy\n");
		return -1;
	}
	return 0;
}

/* --emit-policy: the policy predicted from OUT, with the measure options of tdcrypt policy
 * from-image (one parser for both). */
static int emit_policy(const struct args *a)
{
	struct measure_args m;
	char *json = NULL;
	const char *argv[16];
	int n = 0;
	argv[n++] = "from-image";
	argv[n++] = a->out;
	argv[n++] = "--target";
	argv[n++] = a->sim_dir ? "sim" : "td";
	if (a->firmware) {
		argv[n++] = "--firmware";
		argv[n++] = a->firmware;
	}
	if (a->boot) {
		argv[n++] = "--boot";
		argv[n++] = a->boot;
	}
	if (a->memory) {
		argv[n++] = "--memory";
		argv[n++] = a->memory;
	}
	argv[n] = NULL;
	if (measure_parse(n, (char **)argv, 1, &m) < 0)
		return TDC_EXIT_BAD_INPUT;
	int rc = measure_policy(&m, &json);
	if (rc == TDC_EXIT_OK)
		rc = cli_write_text(a->emit_policy, json);
	free(json);
	if (rc != TDC_EXIT_OK)
		fprintf(stderr, "tdcrypt: image encrypt: %s is built, but no policy was written; "
				"its secret is not released without one\n", a->out);
	return rc;
}

/* Closes the running stage: its time goes into the --json summary. */
static void stage_end(struct run *r, double now)
{
	if (!r->stage[0])
		return;
	if (r->n_stages < MAX_STAGES) {
		snprintf(r->stages[r->n_stages].name, sizeof(r->stages[0].name), "%s", r->stage);
		r->stages[r->n_stages++].s = now - r->stage_t0;
	}
	if (r->bar)
		fputc('\n', stderr);
	r->stage[0] = '\0';
}

static void draw_bar(struct run *r, double now, uint64_t done, uint64_t total)
{
	double el = now - r->stage_t0;

	if (total == 0) { /* no byte count (the guest's initramfs generator): time only */
		fprintf(stderr, "\r\033[Ktdcrypt: [%6.1fs] %s: %d:%02d", now - r->t0, r->stage,
			(int)el / 60, (int)el % 60);
		return;
	}
	char bar[BAR_WIDTH + 1];
	unsigned fill = (unsigned)(done * BAR_WIDTH / total);
	double rate = el > 0 ? (double)done / el : 0;

	for (unsigned i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[BAR_WIDTH] = '\0';
	fprintf(stderr, "\r\033[Ktdcrypt: [%6.1fs] %s [%s] %3u%% %llu/%llu MiB %.0f MiB/s",
		now - r->t0, r->stage, bar, (unsigned)(done * 100 / total),
		(unsigned long long)(done >> 20), (unsigned long long)(total >> 20),
		rate / (1024 * 1024));
	if (rate > 0 && done < total) {
		double eta = (double)(total - done) / rate;

		fprintf(stderr, " ETA %d:%02d", (int)eta / 60, (int)eta % 60);
	}
}

static int progress(void *arg, const char *stage, uint64_t done, uint64_t total)
{
	struct run *r = arg;
	double now = mono();

	if (interrupted)
		return 1;
	if (strcmp(stage, r->stage) != 0) {
		stage_end(r, now);
		snprintf(r->stage, sizeof(r->stage), "%s", stage);
		r->stage_t0 = now;
		r->last_draw = now;
		fprintf(stderr, "tdcrypt: [%6.1fs] %s%s", now - r->t0, stage, r->bar ? "" : "\n");
		return 0;
	}
	if (r->bar && (now - r->last_draw >= REDRAW_S || (total && done == total))) {
		r->last_draw = now;
		draw_bar(r, now, done, total);
	}
	return 0;
}

/* One admin request: {"op":"secret.add","id":..,"key_b64":..}\n, reply {"ok":true}. The
 * request buffer holds the key: locked memory, wiped. */
static int register_key(const char *sock, const char *id, const struct tdc_secret *key,
			struct tdc_error *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 60, 0 };
	struct tdc_secret req = { 0 };
	json_object *jid = json_object_new_string(id), *reply = NULL, *ok, *msg;
	const char *qid = json_object_to_json_string_ext(jid, JSON_C_TO_STRING_PLAIN);
	char buf[ADMIN_REPLY_MAX];
	size_t cap = 64 + strlen(qid) + 4 * (key->len / 3 + 2), n = 0;
	int fd = -1, rc = 0;

	if (strlen(sock) >= sizeof(sa.sun_path)) {
		rc = TDC_FAIL(e, TDC_E_USAGE, "admin socket path too long");
		goto out;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	if (tdc_secret_alloc(cap, &req, e) < 0) {
		rc = TDC_E_NOMEM;
		goto out;
	}
	char *p = (char *)req.data;
	int len = snprintf(p, cap, "{\"op\":\"secret.add\",\"id\":%s,\"key_b64\":\"", qid);

	len += EVP_EncodeBlock((unsigned char *)p + len, key->data, (int)key->len);
	len += snprintf(p + len, cap - (size_t)len, "\"}\n");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = TDC_FAILF(e, TDC_E_IO, "cannot reach the broker's admin socket", "%s: %s",
			       sock, strerror(errno));
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (size_t off = 0; off < (size_t)len;) {
		ssize_t w = send(fd, p + off, (size_t)len - off, MSG_NOSIGNAL);

		if (w <= 0) {
			rc = TDC_FAILF(e, TDC_E_IO, "admin socket write failed", "%s",
				       strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	while (n < sizeof(buf) - 1) {
		ssize_t got = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (got <= 0)
			break;
		n += (size_t)got;
		if (buf[n - 1] == '\n')
			break;
	}
	buf[n] = '\0';
	reply = json_tokener_parse(buf);
	if (!reply || !json_object_object_get_ex(reply, "ok", &ok) ||
	    !json_object_get_boolean(ok)) {
		rc = TDC_FAILF(e, TDC_E_POLICY, "the broker refused the key",
			       "%s", reply && json_object_object_get_ex(reply, "message", &msg)
					     ? json_object_get_string(msg)
					     : "no or malformed reply (not root?)");
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	tdc_secret_free(&req);
	json_object_put(reply);
	json_object_put(jid);
	return rc;
}

/* Runs once the image is complete, before it is renamed into place. */
static int commit(void *arg, const struct tdc_image_build_result *res, struct tdc_error *e)
{
	struct run *r = arg;

	(void)res;
	if (r->a->admin_sock)
		return register_key(r->a->admin_sock, r->a->secret_id, &r->key, e);
	for (size_t off = 0; off < r->key.len;) {
		ssize_t w = write(r->key_fd, r->key.data + off, r->key.len - off);

		if (w <= 0)
			return TDC_FAILF(e, TDC_E_IO, "cannot write the key file", "%s",
					 strerror(errno));
		off += (size_t)w;
	}
	if (fsync(r->key_fd) != 0)
		return TDC_FAILF(e, TDC_E_IO, "cannot sync the key file", "%s", strerror(errno));
	return 0;
}

static json_object *jpart(const struct tdc_image_part *p)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "index", json_object_new_int((int)p->index));
	json_object_object_add(o, "offset", json_object_new_int64((int64_t)p->offset));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)p->size));
	json_object_object_add(o, "type", json_object_new_string(p->type));
	json_object_object_add(o, "guid", json_object_new_string(p->guid));
	json_object_object_add(o, "name", json_object_new_string(p->name));
	return o;
}

static void print_json(const struct args *a, const struct run *run,
		       const struct tdc_image_build_result *r)
{
	json_object *o = json_object_new_object(), *t = json_object_new_object();
	json_object *l = json_object_new_object(), *in = json_object_new_object();
	char hex[65];

	json_object_object_add(o, "input", json_object_new_string(a->in));
	json_object_object_add(o, "output", json_object_new_string(a->out));
	json_object_object_add(in, "format", json_object_new_string(r->in_format));
	json_object_object_add(in, "size", json_object_new_int64((int64_t)r->in_size));
	json_object_object_add(in, "esp", jpart(&r->in_esp));
	json_object_object_add(in, "root", jpart(&r->in_root));
	json_object_object_add(o, "in", in);
	json_object_object_add(o, "format", json_object_new_string(r->out_format));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)r->out_size));
	json_object_object_add(o, "allocated", json_object_new_int64((int64_t)r->out_allocated));
	json_object_object_add(o, "distro", json_object_new_string(r->distro_id));
	json_object_object_add(o, "distro_version", json_object_new_string(r->distro_version));
	json_object_object_add(o, "family", json_object_new_string(r->family));
	json_object_object_add(l, "esp", jpart(&r->esp));
	json_object_object_add(l, "boot", jpart(&r->boot));
	json_object_object_add(l, "root", jpart(&r->root));
	json_object_object_add(o, "partitions", l);
	json_object_object_add(o, "luks_uuid", json_object_new_string(r->luks_uuid));
	json_object_object_add(o, "luks_name", json_object_new_string(r->luks_name));
	json_object_object_add(o, "header_sha256",
			       json_object_new_string(tdc_hex_encode(r->header_sha256, 32, hex)));
	json_object_object_add(o, "vk_sha256",
			       json_object_new_string(tdc_hex_encode(r->vk_sha256, 32, hex)));
	json_object_object_add(o, "boot_fs_uuid", json_object_new_string(r->boot_fs_uuid));
	json_object_object_add(o, "root_fs_uuid", json_object_new_string(r->root_fs_uuid));
	json_object_object_add(o, "root_fs_blocks", json_object_new_int64((int64_t)r->root_fs_blocks));
	json_object_object_add(o, "root_used_blocks",
			       json_object_new_int64((int64_t)r->root_used_blocks));
	json_object_object_add(o, "root_fs", json_object_new_string(r->root_fs));
	json_object_object_add(o, "encrypted", json_object_new_string(r->encrypted));
	json_object_object_add(o, "encrypted_reason", r->encrypted_reason[0]
						? json_object_new_string(r->encrypted_reason) : NULL);
	json_object_object_add(o, "guest_modified", json_object_new_boolean(r->guest_modified));
	json_object_object_add(o, "initramfs_images", json_object_new_int((int)r->initramfs_count));
	json_object_object_add(o, "guest_step", r->guest_step[0]
						? json_object_new_string(r->guest_step) : NULL);
	json_object_object_add(o, "secret_id",
			       a->secret_id ? json_object_new_string(a->secret_id) : NULL);
	json_object_object_add(o, "key", json_object_new_string(a->admin_sock ? "registered"
									   : "written"));
	json_object_object_add(t, "convert", json_object_new_double(r->t_convert));
	json_object_object_add(t, "inspect", json_object_new_double(r->t_inspect));
	json_object_object_add(t, "guest", json_object_new_double(r->t_guest));
	json_object_object_add(t, "encrypt", json_object_new_double(r->t_encrypt));
	json_object_object_add(t, "assemble", json_object_new_double(r->t_assemble));
	json_object_object_add(t, "output", json_object_new_double(r->t_output));
	json_object_object_add(t, "total", json_object_new_double(r->t_total));
	json_object_object_add(o, "seconds", t);
	json_object *st = json_object_new_array();

	for (size_t i = 0; i < run->n_stages; i++) {
		json_object *x = json_object_new_object();

		json_object_object_add(x, "stage", json_object_new_string(run->stages[i].name));
		json_object_object_add(x, "seconds", json_object_new_double(run->stages[i].s));
		json_object_array_add(st, x);
	}
	json_object_object_add(o, "stages", st);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void print_text(const struct args *a, const struct tdc_image_build_result *r)
{
	char hex[65];

	printf("%s: %s %s (%s), %s\n", a->out, r->distro_id, r->distro_version, r->family,
	       r->out_format);
	printf("  p%u ESP   %8llu MiB (copied)\n", r->esp.index,
	       (unsigned long long)(r->esp.size >> 20));
	printf("  p%u /boot %8llu MiB ext4 UUID=%s\n", r->boot.index,
	       (unsigned long long)(r->boot.size >> 20), r->boot_fs_uuid);
	printf("  p%u root  %8llu MiB LUKS2 UUID=%s -> /dev/mapper/%s %s (%llu of %llu MiB %s)\n",
	       r->root.index, (unsigned long long)(r->root.size >> 20), r->luks_uuid, r->luks_name,
	       r->root_fs, (unsigned long long)(r->root_used_blocks >> 8),
	       (unsigned long long)(r->root_fs_blocks >> 8),
	       strcmp(r->encrypted, "whole-partition") ? "in use" : "encrypted: whole partition");
	printf("  header_sha256 %s\n", tdc_hex_encode(r->header_sha256, 32, hex));
	printf("  key: %s\n", a->admin_sock ? "registered with the broker" : a->key_out);
	printf("  %.1f s (encrypt %.1f s), %llu MiB allocated\n", r->t_total, r->t_encrypt,
	       (unsigned long long)(r->out_allocated >> 20));
}

/* Only the tdcrypt of a build tree takes the agent and guest files from that tree: an
 * installed one (a package) must never look in the directory it was built in, which on the
 * machine it runs on may be anyone's. */
static bool running_from_build(void)
{
	char self[PATH_MAX], built[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0 || !realpath(TDC_CLI_BUILT, built))
		return false;
	self[n] = '\0';
	return strcmp(self, built) == 0;
}

static const char *default_path(const char *opt, const char *built, const char *installed)
{
	if (opt)
		return opt;
	return running_from_build() && access(built, R_OK) == 0 ? built : installed;
}

int cmd_image_encrypt(int argc, char **argv)
{
	struct args a;
	struct run r = { .key_fd = -1 };
	struct tdc_image_build_result res;
	struct tdc_error e = { 0 };
	int rc;

	if (parse_args(argc, argv, &a) < 0) {
		fputs(usage_text, stderr);
		return TDC_EXIT_BAD_INPUT;
	}
	r.a = &a;
	r.bar = isatty(STDERR_FILENO) && !a.json;
	r.t0 = mono();
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (tdc_secret_alloc(KEY_BYTES, &r.key, &e) < 0 ||
	    RAND_priv_bytes(r.key.data, (int)r.key.len) != 1) {
		cli_print_error("image encrypt: disk key", &e);
		tdc_secret_free(&r.key);
		return TDC_EXIT_INTERNAL;
	}
	if (a.key_out) {
		/* created first, so a key file that cannot be written stops us before the work */
		r.key_fd = open(a.key_out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				0600);
		if (r.key_fd < 0) {
			fprintf(stderr, "tdcrypt: image encrypt: cannot create key file %s: %s\n",
				a.key_out, strerror(errno));
			tdc_secret_free(&r.key);
			return TDC_EXIT_BAD_INPUT;
		}
	}
	struct tdc_image_build_opts o = {
		.in = a.in,
		.out = a.out,
		.out_format = a.format,
		.secret = r.key.data,
		.secret_len = r.key.len,
		.secret_id = a.secret_id,
		.brokers = a.brokers,
		.n_brokers = a.n_brokers,
		.pins = a.pins,
		.n_pins = a.n_pins,
		.total_timeout_s = a.timeout_s,
		.sim_dir = a.sim_dir,
		.agent_path = default_path(a.agent, TDC_AGENT_BUILT, TDC_AGENT_INSTALLED),
		.guest_dir = default_path(a.guest_dir, TDC_GUEST_DIR_SOURCE, TDC_GUEST_DIR_INSTALLED),
		.luks_name = a.luks_name,
		.extra_cmdline = a.cmdline_extra,
		.boot_mib = a.boot_mib,
		.no_guest = a.no_guest,
		.guest_step = a.guest_step,
		.prep_timeout_s = a.prep_timeout_s,
		.progress = progress,
		.progress_arg = &r,
		.commit = commit,
		.commit_arg = &r,
	};
	if (!a.no_guest) {
		enum tdc_image_guest_step step = tdc_image_guest_step_pick(a.guest_step,
									   (unsigned)geteuid());

		if (step == TDC_GUEST_STEP_VM)
			fprintf(stderr, "tdcrypt: image encrypt: guest step in a preparation VM (%s): "
					"no mount, no chroot; under TCG this takes minutes\n",
				a.guest_step == TDC_GUEST_STEP_VM ? "--guest-step vm" : "not root");
		else
			fprintf(stderr, "tdcrypt: image encrypt: guest step in a chroot on this host "
					"(%s)\n", a.guest_step == TDC_GUEST_STEP_CHROOT
						   ? "--guest-step chroot" : "root");
	}
	rc = tdc_image_build(&o, &res, &e);
	stage_end(&r, mono());
	if (r.key_fd >= 0) {
		close(r.key_fd);
		if (rc < 0)
			unlink(a.key_out);
	}
	tdc_secret_free(&r.key);
	if (rc < 0 && interrupted) {
		fprintf(stderr, "tdcrypt: image encrypt: interrupted (signal %d); %s was not "
				"written and no work files are left\n", (int)interrupted, a.out);
		return 128 + (int)interrupted;
	}
	if (rc < 0) {
		cli_print_error("image encrypt", &e);
		return cli_exit_for(e.code);
	}
	if (!strcmp(res.encrypted, "whole-partition"))
		fprintf(stderr, "tdcrypt: image encrypt: whole partition encrypted (%llu MiB, "
				"allocated or not): %s\n",
			(unsigned long long)(res.root_fs_blocks >> 8), res.encrypted_reason);
	if (a.json)
		print_json(&a, &r, &res);
	else
		print_text(&a, &res);
	if (a.emit_policy) {
		if ((rc = emit_policy(&a)) != TDC_EXIT_OK)
			return rc;
		if (!a.json)
			printf("  policy: %s (register it: tdcrypt policy set %s %s)\n",
			       a.emit_policy, a.secret_id ? a.secret_id : "ID", a.emit_policy);
	}
	return TDC_EXIT_OK;
}
