"""The subcommands of `lightnets`: one module each, a thin `main(argv) -> int` over the library."""
