"""Built-in strategies: demo, stuck, churn."""
