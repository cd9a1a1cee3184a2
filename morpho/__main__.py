"""``python -m morpho`` runs the command line."""

from morpho.cli import main

main()
