"""Local stand-ins for external services that speak their real protocols (see each module)."""
