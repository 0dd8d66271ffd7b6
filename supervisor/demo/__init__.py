"""`kafka-pipeline demo`: the whole supervised pipeline on an embedded broker, live.

runner  starts the broker, produces the sample stream, runs the pipeline, reports
events  the sample stream (with poison, replays and a chaos event), its handler and ledger
status  the live status line and the closing summary
"""
