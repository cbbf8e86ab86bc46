"""conveyor: data to a live model endpoint, with gates, canaries and rollback."""

__version__ = "0.1.0"
__all__ = ["__version__"]
