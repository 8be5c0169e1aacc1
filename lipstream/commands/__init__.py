"""One module per `lipstream` subcommand: `add_parser(commands)` and `run(args, console) -> int`."""
