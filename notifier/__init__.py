"""flatguard notifier package."""
