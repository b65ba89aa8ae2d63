#!/usr/bin/env python3
"""The finance department, in Python (standard library only), over the turn protocol.

Spine starts this program once per turn, writes the turn (JSON) to stdin and reads
one answer (JSON) from stdout (docs/agent-protocol.md). Its books are the canned
ledger below. It claims what is outstanding (`invoices.outstanding`), writes what it
found to its team scope `team/finance`, and cites what an earlier renewal found there
(the hub recalls those facts into the turn's `memory`).
"""
import json
import sys

SCOPE = "team/finance"

# Open invoices per account: (number, USD, days overdue).
LEDGER = {
    "acme": [("INV-2026-0912", 9200, 45), ("INV-2026-1012", 9200, 15)],
    "globex": [],
}


def answer(turn):
    task = turn["task"]
    account = str(task["input"].get("account", "")).lower()
    if account not in LEDGER:
        return {"output": {"claims": [], "notes": "no known account in the request"}}
    invoices = LEDGER[account]
    outstanding = {
        "count": len(invoices),
        "usd": sum(usd for _, usd, _ in invoices),
        "oldestDaysOverdue": max((days for _, _, days in invoices), default=0),
    }
    refs = ", ".join(f"{number} (USD {usd}, {days} days)" for number, usd, days in invoices) or "none"
    earlier = [
        {"fact": m["id"], "version": m["version"], "run": m["writtenBy"]["run"], "value": m["value"]}
        for m in turn.get("memory") or []
        if m["scope"] == SCOPE and m["writtenBy"]["run"] not in (None, task["runId"])
    ]
    return {
        "actions": [{
            "type": "remember",
            "scope": SCOPE,
            "key": account,
            "value": outstanding,
            "text": f"{account.upper()} finance: {outstanding['count']} open invoices, USD {outstanding['usd']}: {refs}",
        }],
        "output": {
            "claims": [{
                "key": "invoices.outstanding",
                "value": {"count": outstanding["count"], "usd": outstanding["usd"]},
                "confidence": 0.95,
                "evidence": [{"kind": "quote", "ref": f"ledger: {refs}"}],
            }],
            "findings": outstanding,
            "earlier": earlier,
        },
        "usage": {"inputTokens": 200, "outputTokens": 50, "costUsd": 0.01},
    }


if __name__ == "__main__":
    json.dump(answer(json.load(sys.stdin)), sys.stdout)
