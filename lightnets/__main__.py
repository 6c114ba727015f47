import sys

from lightnets.cli import main

sys.exit(main())
