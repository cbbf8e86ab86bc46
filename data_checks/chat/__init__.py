"""Data checks of chat recipes (``data.format: chat``): conversations of turns."""
