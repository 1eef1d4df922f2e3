"""sr_templates package."""
