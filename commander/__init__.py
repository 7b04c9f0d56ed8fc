"""flatguard commander package."""
