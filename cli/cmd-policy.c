/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tdcrypt policy set|show: a secret's release policy (include/tdcrypt/policy.h),
 * over the broker's admin socket. The broker validates and stores the
 * canonical form; show prints it with every default filled in.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"

static int parse(int argc, char **argv, const char **id, const char **file, const char **sock,
		 bool want_file, const char *usage)
{
	*id = *file = *sock = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			*sock = argv[++i];
		else if (!strcmp(argv[i], "--secret") && i + 1 < argc)
			*id = argv[++i];
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			exit(TDC_EXIT_OK);
		} else if (argv[i][0] != '-' && !*id)
			*id = argv[i];
		else if (argv[i][0] != '-' && want_file && !*file)
			*file = argv[i];
		else {
			fputs(usage, stderr);
			return -1;
		}
	}
	if (!*id || (want_file && !*file)) {
		fputs(usage, stderr);
		return -1;
	}
	return 0;
}

int cmd_policy_set(int argc, char **argv)
{
	static const char usage[] =
		"usage: tdcrypt policy set ID POLICY_JSON_FILE [--socket PATH]\n"
		"       (the file 'none' removes the policy: nothing is released then)\n";
	const char *id, *file, *sock;
	json_object *reply = NULL;
	if (parse(argc, argv, &id, &file, &sock, true, usage) < 0)
		return TDC_EXIT_BAD_INPUT;
	char *pol = strcmp(file, "none") ? cli_read_policy(file) : strdup("null");
	if (!pol)
		return TDC_EXIT_BAD_INPUT;
	json_object *jid = json_object_new_string(id);
	const char *qid = json_object_to_json_string_ext(jid, JSON_C_TO_STRING_PLAIN);
	size_t cap = strlen(pol) + strlen(qid) + 64;
	char *req = malloc(cap);
	int rc = TDC_EXIT_INTERNAL;
	if (req) {
		int n = snprintf(req, cap, "{\"op\":\"policy.set\",\"id\":%s,\"policy\":%s}\n", qid,
				 pol);
		rc = cli_admin_call(cli_admin_socket(sock), req, (size_t)n, &reply);
	}
	if (rc == 0)
		printf("%s: policy %s\n", id, strcmp(pol, "null") ? "set" : "removed");
	json_object_put(reply);
	json_object_put(jid);
	free(req);
	free(pol);
	return rc;
}

int cmd_policy_show(int argc, char **argv)
{
	static const char usage[] = "usage: tdcrypt policy show ID [--socket PATH]\n";
	const char *id, *file, *sock;
	json_object *reply = NULL, *pol;
	if (parse(argc, argv, &id, &file, &sock, false, usage) < 0)
		return TDC_EXIT_BAD_INPUT;
	json_object *jid = json_object_new_string(id);
	char req[512];
	int n = snprintf(req, sizeof(req), "{\"op\":\"policy.show\",\"id\":%s}\n",
			 json_object_to_json_string_ext(jid, JSON_C_TO_STRING_PLAIN));
	json_object_put(jid);
	if (n < 0 || (size_t)n >= sizeof(req))
		return TDC_EXIT_BAD_INPUT;
	int rc = cli_admin_call(cli_admin_socket(sock), req, (size_t)n, &reply);
	if (rc == 0) {
		if (json_object_object_get_ex(reply, "policy", &pol) && pol)
			printf("%s\n", json_object_to_json_string_ext(pol, JSON_C_TO_STRING_PRETTY));
		else
			printf("%s: no policy (the broker releases nothing for it)\n", id);
	}
	json_object_put(reply);
	return rc;
}
