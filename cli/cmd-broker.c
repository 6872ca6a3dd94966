/* SPDX-License-Identifier: Apache-2.0 */
/* tdcrypt broker metrics: the running broker's counters, over its admin socket. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "tdcrypt/kbs.h"

/* name value, one a line; nested groups as group.name (by reason, by class, timings) */
static void print_counters(const char *prefix, json_object *o)
{
	json_object_object_foreach(o, k, v)
	{
		char name[128];
		snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", k);
		if (json_object_is_type(v, json_type_object))
			print_counters(name, v);
		else if (json_object_is_type(v, json_type_double))
			printf("%-20s %.6f\n", name, json_object_get_double(v));
		else
			printf("%-20s %lld\n", name, (long long)json_object_get_int64(v));
	}
}

int cmd_broker_metrics(int argc, char **argv)
{
	static const char usage[] =
		"usage: tdcrypt broker metrics [--json] [--socket PATH]\n"
		"  the running broker's counters over its admin socket (default $TDCRYPT_KBS_SOCKET,\n"
		"  else " TDC_KBS_DEFAULT_ADMIN_SOCKET ")\n";
	const char *sock = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			return TDC_EXIT_OK;
		} else {
			fputs(usage, stderr);
			return TDC_EXIT_BAD_INPUT;
		}
	}
	json_object *reply, *m;
	const char req[] = "{\"op\":\"metrics\"}\n";
	int rc = cli_admin_call(cli_admin_socket(sock), req, sizeof(req) - 1, &reply);
	if (rc)
		return rc;
	if (!json_object_object_get_ex(reply, "metrics", &m) ||
	    !json_object_is_type(m, json_type_object)) {
		json_object_put(reply);
		fputs("tdcrypt: the broker's reply has no metrics\n", stderr);
		return TDC_EXIT_INTERNAL;
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(m, JSON_C_TO_STRING_PRETTY));
	} else {
		print_counters("", m);
	}
	json_object_put(reply);
	return TDC_EXIT_OK;
}
