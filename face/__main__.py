"""``python -m keras_edge`` is the ``keras-edge`` command."""

import sys

from keras_edge.cli import main

sys.exit(main())
