"""Click commands: each parses its options and calls the library, nothing more."""
