"""``python -m cloudctl``: the same command as ``cloudctl``."""

from cloudctl.cli import main

main.run()
