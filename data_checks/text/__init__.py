"""Data checks of text recipes (``data.format: text``): a text column (and a label)."""
