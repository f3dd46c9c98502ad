"""``python -m ctflows.cli ...`` runs the same command line as the installed ``ctflows`` script."""
import sys

from ctflows.cli.main import main

sys.exit(main())
