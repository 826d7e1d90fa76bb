"""Real public releases registered by name: facts, roots, splits built from release indexes, checks, downloads."""
