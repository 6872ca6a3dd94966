#!/usr/bin/env python3
"""Compares what a boot measured with what `tdcrypt measure` predicted, event by event.

usage: compare-measure.py PREDICTION.json EVENTLOG.json RTMR...
  PREDICTION.json: tdcrypt measure --json; EVENTLOG.json: tdcrypt eventlog show --json.
Exit 0 if, for each RTMR given, the log has exactly the predicted events (same digests, in
order) and the predicted value; otherwise prints the first difference and exits 1.
"""
import json
import sys

pred = json.load(open(sys.argv[1]))
log = json.load(open(sys.argv[2]))
bad = False
for r in (int(x) for x in sys.argv[3:]):
    p = pred["rtmrs"][r]
    want = p["events"]
    got = [e for e in log["events"] if e.get("rtmr") == r]
    if not p.get("predicted"):
        print("RTMR%d: not predicted (%s)" % (r, p.get("why")))
        bad = True
        continue
    for i in range(max(len(want), len(got))):
        w = want[i] if i < len(want) else None
        g = got[i] if i < len(got) else None
        if not w or not g or w.get("digest") != g["digest"]:
            print("RTMR%d event %d: predicted %s, measured %s" % (
                r, i, w and "%s %s" % (w.get("what"), w.get("digest", "")[:16]),
                g and "%s %s" % (g["what"], g["digest"][:16])))
            bad = True
            break
    if not bad and p["value"] != log["rtmrs"][r]:
        print("RTMR%d: predicted %s, replayed %s" % (r, p["value"], log["rtmrs"][r]))
        bad = True
    if not bad:
        print("RTMR%d: %d events as predicted, value %s..." % (r, len(got), p["value"][:16]))
sys.exit(1 if bad else 0)
