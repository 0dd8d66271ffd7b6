"""Retry tiers: delayed retries through topics, so a failing record blocks nothing.

A record whose handling fails TRANSIENT or UNKNOWN (after its in-place retries, or at
once: `RetryTierSettings.after_in_place_attempts`) is not retried in its lane until the
consumer gives up and restarts: it is produced to the next tier's topic (`sender`),
with its key, value and headers and retry headers that say where it came from, why it
failed and when it is due (`headers`), and its source offset is committed once that
produce was acknowledged. The same consumer reads its tier topics beside its sources;
a tier partition whose head record is not due is paused until it is (`gate`), never
slept on. A record that fails in the last tier goes to the dead-letter topic with its
whole retry history; a PERMANENT failure goes there at once, from any tier.

Retry tiers break key order: a key's later records are handled while an earlier one
waits in a tier. `preserve_key_order` keeps it, at the cost of parking those later
records behind it (`keys`), within a bound on the keys tracked.

The modules: `settings` (delays, naming, options), `naming` (which topics are tiers),
`headers` (the retry headers), `sender` (to the next tier, acknowledged), `gate` (due
or parked), `keys` (the keys in retry, for key order).
"""
