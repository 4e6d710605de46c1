#!/usr/bin/env bash
# The small program of the Clients page, with curl. ILJI is the server's URL; with tokens on
# the server, add -H "Authorization: Bearer $TOKEN" to each call.
set -euo pipefail
ILJI=${ILJI:-http://127.0.0.1:8000}
ACCOUNT=${ACCOUNT:-account-$RANDOM}
# --8<-- [start:program]
append() {  # append STREAM EXPECTED_VERSION TYPE DATA: prints the HTTP status, then the body
    curl -sS -o /dev/stderr -w '%{http_code}\n' -X POST "$ILJI/v1/streams/$1" \
        -H 'Content-Type: application/json' \
        -d "{\"expected_version\": $2, \"events\": [{\"type\": \"$3\", \"data\": $4}]}"
}
append "$ACCOUNT" '"no_stream"' AccountOpened '{"owner": "Mina"}'   # 201
append "$ACCOUNT" 1 Deposited '{"amount": 50}'                      # 201
append "$ACCOUNT" 1 Withdrawn '{"amount": 80}'                      # 409: the stream is at 2
curl -sS "$ILJI/v1/streams/$ACCOUNT" \
    | jq '[.events[] | select(.type == "Deposited") | .data.amount] | add'   # 50
# Follow the category over SSE for two seconds (-N: print each message as it arrives).
curl -sS -N --max-time 2 -H 'Accept: text/event-stream' "$ILJI/v1/categories/account" || true
# --8<-- [end:program]
