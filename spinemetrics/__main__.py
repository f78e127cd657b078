import sys

from spinemetrics.cli import main

sys.exit(main())
