"""One module per ``routekit`` command group; each has ``register(subparsers)``."""
