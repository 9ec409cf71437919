"""vision-app entry point: `python main.py --help`. With no sub-command it opens the desktop window."""
import sys

from vision_app.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
