# Sourced by scripts/test: resolve the Apache Kafka test broker's jars from Maven Central
# into .cache/apache-kafka/libs (git-ignored). Needs Java 17+ and Maven. Resolves again
# only when tests/support/apache-kafka/pom.xml changed, so repeat runs cost milliseconds.
# Needed even with KAFKA_BOOTSTRAP_SERVERS: tests that stop, kill or wipe a broker, and
# the SASL tests, start brokers of their own.
set -euo pipefail
kafka_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kafka_pom="$kafka_root/tests/support/apache-kafka/pom.xml"
kafka_cache="$kafka_root/.cache/apache-kafka"
kafka_wanted="$(sha256sum "$kafka_pom" | cut -d' ' -f1)"
if [ ! -f "$kafka_cache/libs/.resolved" ] || [ "$(cat "$kafka_cache/libs/.resolved")" != "$kafka_wanted" ]; then
  command -v java >/dev/null || { echo "the Apache Kafka test broker needs Java 17+ on PATH" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "the Apache Kafka test broker needs Maven (mvn) on PATH" >&2; exit 1; }
  echo "resolving the Apache Kafka test broker from Maven Central into $kafka_cache/libs ..." >&2
  rm -rf "$kafka_cache/libs.partial"
  mkdir -p "$kafka_cache"
  if ! mvn -B -Dstyle.color=never -f "$kafka_pom" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$kafka_cache/libs.partial" \
    >"$kafka_cache/mvn.log" 2>&1; then
    cat "$kafka_cache/mvn.log" >&2
    echo "resolving the Apache Kafka test broker failed (log: $kafka_cache/mvn.log)" >&2
    exit 1
  fi
  rm -rf "$kafka_cache/libs"
  mv "$kafka_cache/libs.partial" "$kafka_cache/libs"
  echo "$kafka_wanted" >"$kafka_cache/libs/.resolved"
fi
