"""A Job before it is created: the operator's template, crucible's names, instrumentation."""
