"""The log shipper actor: takes log records off the event loop and ships them to sinks.

shipper          LogShipperActor: drains the buffer in batches, retries failing sinks
buffer           the bounded, thread-safe buffer between logging and the actor
channel_handler  the logging.Handler that formats records into the buffer
sinks            stdout and file sinks, and the LogSink protocol
kafka_sink       the Kafka topic sink
diagnostics      the shipper's own trouble, written straight to stderr
"""

from actors.log_shipper.buffer import FormattedRecord, LogBuffer, LogShipperStatistics
from actors.log_shipper.channel_handler import ChannelHandler
from actors.log_shipper.kafka_sink import KafkaSink
from actors.log_shipper.shipper import LogShipperActor, LogSinkError, SinkRetryPolicy
from actors.log_shipper.sinks import FileSink, LogSink, StdoutSink

__all__ = [
    "ChannelHandler",
    "FileSink",
    "FormattedRecord",
    "KafkaSink",
    "LogBuffer",
    "LogShipperActor",
    "LogShipperStatistics",
    "LogSink",
    "LogSinkError",
    "SinkRetryPolicy",
    "StdoutSink",
]
