"""Task plug-ins: checks that belong to one dataset, not to the gates."""
