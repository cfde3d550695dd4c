import sys

from placewatch.cli import main

sys.exit(main())
