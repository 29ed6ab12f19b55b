import sys

from agent.ui.cli import main

sys.exit(main())
