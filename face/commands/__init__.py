"""The click commands: each parses options, builds a config, calls one library function and renders."""
