"""`python -m nvcaffe_py ...` is the `nvcaffe` command."""
import sys

from .cli import main

sys.exit(main())
