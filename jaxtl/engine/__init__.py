"""Building a run: data, model, optimizer and the jit-compiled steps; starting points."""
