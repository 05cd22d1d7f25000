"""Dataset readers, demo-data writers and the Grain input pipeline."""
