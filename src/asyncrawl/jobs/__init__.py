"""Jobs: a Source, a store and the engine put together (the CLI and Lambda share them)."""
