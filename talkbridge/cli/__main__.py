import sys

from talkbridge.cli import main

sys.exit(main())
