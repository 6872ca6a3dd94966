#!/usr/bin/env python3
"""Checks a storm's result against the brokers' audit (tests/storm/storm.sh).

usage: audit-check.py STORM_JSON exact|crash AUDIT_JSON...

Every agent got the expected key, once; every agent that got a key has a durable
'released' record (matched by the claims digest: SHA-256 of the TD report, which binds
the agent's own key, so it names one agent) and no record names anyone else.
exact: exactly one record per agent, so released rows == agents with a key, and no
denial.
crash: an agent may have more records than keys received, but only after unsettled
attempts (past the handshake, then no answer or `internal`: a broker killed, or its
database gone, between the durable record and the answer); each extra record is one of
those attempts; denials only with an internal reason (the broker's own failure during
the fault, e.g. its database restarting). Records are told apart by request ID, so
brokers that share one database may all be given.
"""
import collections
import json
import sys


def main():
    storm_path, mode, audits = sys.argv[1], sys.argv[2], sys.argv[3:]
    if mode not in ("exact", "crash") or not audits:
        sys.exit(__doc__)
    storm = json.load(open(storm_path))
    t = storm["totals"]
    errors = []
    agents = storm["per_agent"]
    if t["lost"] or t["duplicates"] or t["wrong_key"] or t["got_key"] != storm["agents"]:
        errors.append("storm: %d of %d got the key, lost %d, duplicates %d, wrong key %d"
                      % (t["got_key"], storm["agents"], t["lost"], t["duplicates"], t["wrong_key"]))
    by_digest = {a["claims_digest"]: a for a in agents}
    if len(by_digest) != len(agents):
        errors.append("two agents with the same claims digest: identities not distinct")
    rows = list({r["request_id"]: r for path in audits for r in json.load(open(path))}.values())
    # the policy passes every agent: the only refusals allowed are the broker's own failures
    # during a fault (recorded as denials with an internal reason, answered `internal`)
    denied = [r for r in rows if r["decision"] != "released"]
    failures = [r for r in denied if (r["reason"] or "").startswith("internal")]
    if (mode == "exact" and denied) or len(failures) != len(denied):
        r = ([r for r in denied if r not in failures] or denied)[0]
        errors.append("%d denials, e.g. %s" % (len(denied), r["reason"]))
    released = collections.Counter(r["claims_digest"] for r in rows if r["decision"] == "released")
    strangers = [d for d in released if d not in by_digest]
    if strangers:
        errors.append("%d released records name no agent of this storm" % len(strangers))
    extra = 0
    for d, a in by_digest.items():
        n, keys = released.get(d, 0), a["releases"]
        if keys and n == 0:
            errors.append("agent %d got a key without a released audit record" % a["agent"])
        elif mode == "exact" and n != keys:
            errors.append("agent %d: %d released records for %d keys" % (a["agent"], n, keys))
        elif n > keys + a["unsettled"]:
            errors.append("agent %d: %d released records for %d keys and %d unsettled attempts"
                          % (a["agent"], n, keys, a["unsettled"]))
        extra += max(0, n - keys)
    total = sum(released.values())
    print("audit: %d released records for %d agents with a key (%d recorded again after an "
          "unsettled attempt; %d unsettled attempts); %d internal failures recorded"
          % (total, t["got_key"], extra, t["unsettled"], len(failures)))
    for e in errors[:20]:
        print("FAIL: " + e)
    sys.exit(1 if errors else 0)


main()
