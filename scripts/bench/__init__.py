"""Benchmarks of our code next to the libraries users would pick instead.

One command runs them all: `scripts/bench/run` (see scripts.bench.cli for its options).
Each benchmark measures ours and its peers in the same run, interleaved round by round,
and reports the min and the median of at least 7 rounds; the results go to
docs/benchmarks.md, and the targets table to the README. These are benchmarks, not
tests: nothing here passes or fails the test suite (tests/scripts only smoke-runs it).

retry_bench        with_retry vs tenacity, stamina, backoff: success path, fails twice
breaker_bench      CircuitBreaker vs purgatory, aiobreaker, pybreaker: closed, open, memory
logging_bench      JSONFormatter vs python-json-logger, structlog, the stdlib text line
supervisor_bench   crash to running again, no backoff
pipeline_bench     KafkaConsumerActor vs a hand-written aiokafka loop, same broker
soak_bench         the consumer's RSS over a million records, dedup on: sequential (soak)
                   and ordering "key" with 256 in flight (soak-key); both with --soak

timing             interleaved statement loops (CPU time); report: tables, Markdown, JSON;
machine            what the figures were measured on; breakers, rejection_memory: the
                   breakers compared and the per-process memory check.
"""
