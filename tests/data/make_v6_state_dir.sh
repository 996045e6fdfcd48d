#!/bin/sh
# Makes tests/data/v6_state_dir.tar.gz and v6_decided.json with paxosctl at
# main d1091a7 (schema 6, before the saved id filter). Usage: make_v6_state_dir.sh PAXOSCTL OUTDIR (see
# tests/runtime/test_storage_migration.py for installing PAXOSCTL from main).
set -eu
P=$1; OUT=$2
W=$(mktemp -d /tmp/v6c.XXXX)
cat > "$W/cluster.toml" <<'TOML'
[cluster]
name = "v6"
state_dir = "sd"
[agents.proposer]
role = "proposer"
replicas = 2
[agents.acceptor]
role = "acceptor"
replicas = 3
[agents.learner]
role = "learner"
replicas = 2
[health]
heartbeat_timeout = "120s"
[metrics]
enabled = false
TOML
cd "$W"
$P up -d -f cluster.toml
for i in 0 1 2 3 4 5 6 7; do $P propose -f cluster.toml --request-id "old-$i" "value $i"; done
$P propose -f cluster.toml --request-id uni-0 "$(printf 'h\303\251llo \342\234\223 \360\237\220\230')"
$P propose -f cluster.toml --request-id empty-0 ""
$P propose -f cluster.toml --request-id odd-0 "$(printf 'tab\tand "quotes" \\ newline\nline2')"
# Ids of the client's layout (32 hex digits, milliseconds first), in batches,
# and a retry of old-3 (answered with its first position, not applied again).
$P bench -f cluster.toml --requests 300 --warmup 0 --concurrency 32 > /dev/null
$P propose -f cluster.toml --request-id old-3 "value 3"
$P stop -f cluster.toml learner-1
for i in 11 12 13; do $P propose -f cluster.toml --request-id "old-$i" "vote ü $i"; done
$P decided -f cluster.toml -o json > "$OUT/v6_decided.json"
$P down -f cluster.toml
tar czf "$OUT/v6_state_dir.tar.gz" -C sd state cluster.json members.json
echo "$W"
