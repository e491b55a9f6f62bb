-- The position of a queued evaluation, nil if it is not queued. Owner:
-- dispatcher/backends/kube/admission/queue.py.
-- KEYS: 1 turns   ARGV: 1 eval_id, 2 tenant, 3 prefix of the tenants' queues
return position(KEYS[1], ARGV[3], ARGV[2], ARGV[1])
