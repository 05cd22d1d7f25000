"""Building blocks every layer may use: errors, atomic writes, tasks, settings' rules, preemption, provenance, the compile cache, the logging policy, progress lines."""
