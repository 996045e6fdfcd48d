"""`python -m paxosctl`: the same as the `paxosctl` command."""

from .cli import main

main()
