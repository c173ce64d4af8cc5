"""Command-line groups; each module's `register(subparsers)` adds its subcommands."""
