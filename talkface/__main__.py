import sys

from talkface.cli import main

sys.exit(main())
