"""The actors of the pipeline, one package each, with the messages they exchange.

    consumer         KafkaConsumerActor: consumes, calls the handler, dead-letters, commits
    token_refresher  keeps Azure AD tokens fresh ahead of need
    log_shipper      ships every actor's logs off the event loop
    breaker_monitor  turns circuit-breaker state changes into pause/resume commands
    sinks            the built-in handlers (print, jsonl, forward) and loading the user's
    messages         the frozen messages the actors exchange

Actors import `core` and each other's messages, never `supervisor`: they are supervised
children, not supervisors (tests/test_import_layers.py enforces it).

Actors never call each other: they exchange the frozen messages of `actors.messages`
over bounded anyio memory object streams that the wiring owns (a restarted actor is
handed the same stream ends, so nothing waiting in its inbox is lost; actors therefore
never close the streams they are given). Each actor has
`async def run(self, *, task_status=anyio.TASK_STATUS_IGNORED)` and calls
`task_status.started()` once it is ready.
"""
