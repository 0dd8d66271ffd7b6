"""The kafka-pipeline application: one process, one root supervisor, one actor tree.

    config         the configuration schema: every setting, its default and range
    config_loader  TOML tables and environment overrides bound to the schema's dataclasses
    config_ranges  the finite range of every number, declared beside its field
    environment    what only the machine can tell (log file, health address), before start
    settings       the configuration mapped to what each actor is built with
    wiring         the actor tree: the root supervisor, its children and their streams
    process        signals, the graceful-stop deadline, the exit code
    health         the health endpoint as a supervised child; what /healthz and /readyz decide
    health_server  the minimal HTTP server behind /healthz, /readyz and /metrics
    observation    one snapshot of the running process for probes and scrapes
    metrics        every metric the process exposes, read from the actors at scrape time

It builds on `supervisor.runtime` (supervision) and `actors` (the children); nothing in
either imports it.
"""
