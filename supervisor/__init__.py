"""flatguard supervisor package."""
