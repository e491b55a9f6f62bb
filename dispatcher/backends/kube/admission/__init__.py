"""Which evaluations get a Job now: the queue shared by replicas in Redis, and the admitter."""
