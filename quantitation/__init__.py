"""quantitation package."""
