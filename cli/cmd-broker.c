/* SPDX-License-Identifier: Apache-2.0 */
/* tdcrypt broker metrics: the running broker's counters, over its admin socket. */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"

int cmd_broker_metrics(int argc, char **argv)
{
	const char *sock = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else {
			fputs("usage: tdcrypt broker metrics [--json] [--socket PATH]\n", stderr);
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
		json_object_object_foreach(m, k, v)
		{
			printf("%-20s %lld\n", k, (long long)json_object_get_int64(v));
		}
	}
	json_object_put(reply);
	return TDC_EXIT_OK;
}
