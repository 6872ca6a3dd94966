/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
	const char *group, *verb;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "image", "encrypt", cmd_image_encrypt,
	  "image encrypt IN OUT --secret-id ID --broker H:P --broker-pin HEX (--key-out F | "
	  "--register-admin-socket S) [...]: LUKS2 root unlocked by the broker" },
	{ "quote", "show", cmd_quote_show, "quote show FILE [--json]: print every field of a TDX quote" },
	{ "quote", "verify", cmd_quote_verify,
	  "quote verify FILE --collateral PATH [--at TIME] [--json]: full DCAP verification" },
	{ "sim", "init", cmd_sim_init,
	  "sim init DIR [--days N] [--firmware F]: simulator PKI, collateral and TD "
	  "measurements (tests, demos)" },
	{ "sim", "quote", cmd_sim_quote,
	  "sim quote --dir DIR --report-data HEX --tpm-log F -o OUT: a simulated quote "
	  "(RTMRs replayed from a vTPM log)" },
	{ "secret", "add", cmd_secret_add,
	  "secret add ID [--key-file F | --generate N] [--policy F]: store a key in the broker" },
	{ "secret", "list", cmd_secret_list, "secret list [--json]: the broker's secrets (no values)" },
	{ "secret", "rm", cmd_secret_rm, "secret rm ID: delete a secret" },
	{ "secret", "rotate", cmd_secret_rotate,
	  "secret rotate ID [--key-file F | --generate N]: replace a secret's value" },
	{ "secret", "import", cmd_secret_import,
	  "secret import SECRET_JSON: import the original solution's plaintext secret.json" },
	{ "secret", "audit", cmd_secret_audit, "secret audit [--secret ID] [--json]: audit records" },
	{ "broker", "metrics", cmd_broker_metrics,
	  "broker metrics [--json]: the running broker's counters (connections, refusals, audit)" },
	{ "policy", "set", cmd_policy_set, "policy set ID FILE: set a secret's release policy" },
	{ "policy", "show", cmd_policy_show, "policy show ID: print a secret's effective policy" },
	{ "policy", "explain", cmd_policy_explain,
	  "policy explain --secret ID QUOTE --collateral PATH [--policy FILE] [--at TIME] [--json]: "
	  "every rule of the secret's policy against a quote, pass/fail" },
	{ "policy", "from-image", cmd_policy_from_image,
	  "policy from-image DISK [--boot uefi|direct] [--target td|sim] [--firmware F] [-o FILE]: "
	  "the policy a disk image will satisfy, predicted from it" },
	{ "measure", NULL, cmd_measure,
	  "measure (--image DISK | --kernel K [--initrd I] [--cmdline S]) [--boot uefi|direct] "
	  "[--target td|sim] [--firmware F] [--json]: predict MRTD and RTMR0-3, event by event" },
	{ "eventlog", "show", cmd_eventlog_show,
	  "eventlog show LOG [--tpm] [--json]: the events of a CC event log (or a vTPM log as the "
	  "simulator maps it) and the RTMRs they replay to" },
	{ "launch", NULL, cmd_launch,
	  "launch --image DISK [--tdx | --no-tdx] [--broker-forward [H:]P] [...]: run the guest "
	  "under QEMU (TDX, or TCG for tests)" },
	{ "forward", NULL, cmd_forward,
	  "forward [HOST:]PORT: stdio <-> TCP relay that QEMU's guestfwd runs (silent)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: tdcrypt COMMAND ...    (tdcrypt COMMAND --help: its options)\n"
		   "       tdcrypt --version\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  tdcrypt %s\n", commands[i].help);
	fprintf(f, "\nexit codes: 0 ok/UpToDate, 1 verified but not UpToDate, 2 rejected, "
		   "3 bad input or usage, 4 internal error\n");
}

/* `tdcrypt GROUP` without its verb: the group's commands. */
static void group_usage(FILE *f, const char *group)
{
	fprintf(f, "usage: tdcrypt %s VERB ...    (tdcrypt %s VERB --help: its options)\n\n",
		group, group);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].group, group))
			fprintf(f, "  tdcrypt %s\n", commands[i].help);
}

static bool is_help(const char *s)
{
	return !strcmp(s, "-h") || !strcmp(s, "--help");
}

/* --version as the only argument, of tdcrypt or of any of its commands */
static int version(void)
{
	printf("tdcrypt %s\n", TDC_VERSION_STRING);
	return TDC_EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2 || is_help(argv[1])) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? TDC_EXIT_BAD_INPUT : TDC_EXIT_OK;
	}
	if (argc == 2 && !strcmp(argv[1], "--version"))
		return version();
	bool group = false;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].group) != 0)
			continue;
		if (!commands[i].verb) { /* one-word command */
			if (argc == 3 && !strcmp(argv[2], "--version"))
				return version();
			return commands[i].run(argc - 1, argv + 1);
		}
		group = true;
		if (argc >= 3 && !strcmp(argv[2], commands[i].verb)) {
			if (argc == 4 && !strcmp(argv[3], "--version"))
				return version();
			return commands[i].run(argc - 2, argv + 2);
		}
	}
	if (group && argc == 3 && !strcmp(argv[2], "--version"))
		return version();
	if (group && (argc == 2 || is_help(argv[2]))) {
		group_usage(argc == 2 ? stderr : stdout, argv[1]);
		return argc == 2 ? TDC_EXIT_BAD_INPUT : TDC_EXIT_OK;
	}
	fprintf(stderr, "tdcrypt: unknown command '%s%s%s'\n\n", argv[1], argc >= 3 ? " " : "",
		argc >= 3 ? argv[2] : "");
	usage(stderr);
	return TDC_EXIT_BAD_INPUT;
}
