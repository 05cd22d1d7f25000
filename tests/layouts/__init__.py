"""Small datasets written by hand in the real on-disk layouts, one module per dataset."""
