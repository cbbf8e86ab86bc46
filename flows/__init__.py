"""Prefect flows and deployments that chain the stages (issue 8; not built yet)."""
