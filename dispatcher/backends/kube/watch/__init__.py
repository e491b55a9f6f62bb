"""What happened to Jobs once created: reconciler, verdicts, recovery, rebuilds, cancels."""
