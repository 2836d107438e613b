"""ttc-agent."""
