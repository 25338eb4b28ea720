#!/usr/bin/env bash
# make demo: build a small ledger from the Beijing sample and show what the ledger knows.
# usage: tools/demo.sh LEDGER_DIR FAPIAO_BINARY
set -euo pipefail
ledger=${1:-./demo.ledger}
fapiao=${2:-.build/release/fapiao}
sample=examples/beijing-sample.jsonl

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$ledger"
say "Importing $sample (CloudEvents JSON Lines, docs/events.md) into $ledger"
"$fapiao" import "$sample" --ledger "$ledger"

say "Importing it again: idempotent on (source, id), nothing new is written"
"$fapiao" import "$sample" --ledger "$ledger"

say "The ledger"
"$fapiao" status --ledger "$ledger"

say "Invoice 24112000000015301234: every event, as the ledger recorded it"
"$fapiao" stream 24112000000015301234 --ledger "$ledger"

say "The same as CloudEvents with the ledger's hash chain (first two)"
"$fapiao" log --ledger "$ledger" --limit 2 --format json

say "Re-reading every record and verifying the hash chain"
"$fapiao" check --ledger "$ledger"

cat <<MSG

Next:
  $fapiao --help                       every command, with examples
  $fapiao log --ledger $ledger         the whole log
  mdb_stat -a $ledger                  the ledger is plain LMDB
MSG
