"""poetry."""
