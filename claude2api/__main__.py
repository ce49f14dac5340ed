import sys

from claude2api.cli import main

sys.exit(main())
