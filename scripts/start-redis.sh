#!/usr/bin/env bash
# Install (if missing) and start a local Redis on 127.0.0.1:6379 for the test suite (the engines'
# lock store and the shared flood limit). Prints the URL to export as TEST_REDIS_URL; the tests
# use database 1 and their own key prefixes. Nothing is persisted: it is a test server.
set -euo pipefail
if ! command -v redis-server >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq redis-server >&2
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
    --dir /tmp --logfile /tmp/ctip-test-redis.log >&2
fi
for _ in $(seq 1 30); do
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
  sleep 1
done
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
echo "redis://127.0.0.1:6379/1"
