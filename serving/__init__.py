"""The Bento service, packaging, and the live controller (issue 6; not built yet)."""
