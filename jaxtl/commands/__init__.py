"""The programs: `python -m jaxtl.commands.<name>` (jaxtl.main trains)."""
