"""Configuration: the base config, validation, config files and the demo settings."""
