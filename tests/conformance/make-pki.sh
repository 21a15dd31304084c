#!/usr/bin/env bash
# make-pki.sh DIR: the suite's TLS files, as every driver uses them: a CA (ca.pem), a server
# certificate for 127.0.0.1 and localhost (server.pem, server-key.pem) and a client
# certificate (client.pem, client-key.pem) signed by it, and an unrelated CA (other-ca.pem).
# Fresh keys each run; nothing is committed.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
run() { "$@" 2>openssl.log || { cat openssl.log >&2; exit 1; }; }
for ca in ca other-ca; do
  run openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=nats-sink conformance $ca" -keyout "$ca-key.pem" -out "$ca.pem"
done
sign() { # name subject-alt-names
  run openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1-key.pem" -out "$1.csr"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$2" > "$1.ext"
  run openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext" openssl.log
}
sign server "IP:127.0.0.1,DNS:localhost"
sign client "DNS:nats-sink-conformance-client"
