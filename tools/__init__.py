"""Command-line tools that ship with jaxtl (not imported by the training code)."""
