"""flatguard trader package."""
