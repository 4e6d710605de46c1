"""`python -m ilji.cli`: the `ilji` command without its console script."""

from ilji.cli import main

main()
