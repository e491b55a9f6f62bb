"""The status store: records in Redis, the one publish path, and the consumer group that keeps
the records current."""
