#!/usr/bin/env bash
# make demo: a realistic Beijing ledger, the morning report, and `why` for one invoice of each cause.
# usage: tools/demo.sh LEDGER_DIR BIN_DIR
set -euo pipefail
ledger=${1:-./demo.ledger}
bin=${2:-.build/release}
fapiao="$bin/fapiao"
invoices=${DEMO_INVOICES:-3000}
events=$(mktemp -t fapiao-demo-XXXXXX.jsonl)
manifest=$(mktemp -t fapiao-demo-XXXXXX.manifest)
keys=$(mktemp -d -t fapiao-demo-keys-XXXXXX)
trap 'rm -rf "$events" "$manifest" "$keys"' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$ledger"
say "Generating $invoices invoices of a Beijing buyer, with the failures of real life (tools/generator)"
"$bin/fapiao-gen" --invoices "$invoices" --seed 2024 --out "$events" --manifest "$manifest"

say "Importing them: every line validated first, then appended (CloudEvents JSON Lines, docs/events.md)"
"$fapiao" import "$events" --ledger "$ledger"

say "The morning report: invoices issued to beijing-finance's owner that it does not show, by cause"
"$fapiao" why --all-missing --system beijing-finance --ledger "$ledger"

say "Why, for one invoice of each cause"
"$fapiao" why --all-missing --system beijing-finance --ledger "$ledger" --format json |
    python3 -c 'import json,sys; [print(g["code"], g["examples"][0]["key"]) for g in json.load(sys.stdin)["causes"] if g["examples"]]' |
    while read -r code key; do
        printf '\n\033[1m-- %s: %s\033[0m\n' "$code" "$key"
        "$fapiao" why "$key" --system beijing-finance --ledger "$ledger" | sed -n '1,/^timeline/p' | sed '$d' || true
    done

say "Why, for a user who searched and did not find it (their access, their last recorded query)"
python3 -c '
import json, sys
seen = set()
for line in open(sys.argv[1]):
    entry = json.loads(line)
    cause = entry["intended"]
    if entry.get("user") and cause not in seen and cause not in ("visible",) and (cause.startswith("query_") or cause in ("access_denied", "system_maintenance")):
        seen.add(cause)
        print(cause, entry["key"], entry["user"])
' "$manifest" | while read -r code key user; do
        printf '\n\033[1m-- %s: %s, user %s\033[0m\n' "$code" "$key" "$user"
        "$fapiao" why "$key" --system beijing-finance --user "$user" --ledger "$ledger" | sed -n '1,/^timeline/p' | sed '$d' || true
    done

say "For auditors: sign the tree head, then verify every record, the hash chain and the Merkle root"
"$fapiao" audit keygen --out "$keys" >/dev/null
"$fapiao" audit checkpoint --key "$keys/audit-signing.key" --ledger "$ledger"
"$fapiao" audit verify --ledger "$ledger"

cat <<MSG

Go further:
  $fapiao replay KEY --ledger $ledger                      the invoice's history, what each system saw after each event
  $fapiao why KEY --system beijing-finance --user USER     with a user's access and their last recorded search
  $fapiao why KEY --system beijing-finance --at 2024-12-05 as of a moment (also --known-at, --position)
  $fapiao list --system beijing-finance --status pending_review --ledger $ledger
  $fapiao projections status --ledger $ledger
  $fapiao audit bundle --subject KEY OUT --ledger $ledger  an offline proof an auditor checks with tools/verify_bundle.py
  $fapiao serve --ledger $ledger --port 8080               the HTTP API and Server-Sent Events (docs/http-api.md)
  $fapiao --help
MSG
