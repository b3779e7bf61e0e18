"""``python -m bigearthnet_txt.conversion.imagery --out DIR --s2 PATH ...``: imagery only."""

import sys

from bigearthnet_txt.conversion.imagery.arguments import main

sys.exit(main())
