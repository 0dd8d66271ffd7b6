"""The actors of the pipeline: token refresher, Kafka consumer, breaker monitor, log shipper.

Actors never call each other: they exchange the frozen messages of `actors.messages`
over bounded anyio memory object streams that the wiring owns (a restarted actor is
handed the same stream ends, so nothing waiting in its inbox is lost; actors therefore
never close the streams they are given). Each actor has
`async def run(self, *, task_status=anyio.TASK_STATUS_IGNORED)` and calls
`task_status.started()` once it is ready.
"""
