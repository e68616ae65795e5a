import sys

from flownb.cli import main

sys.exit(main())
