"""`sslzoo` as the console script runs it, with the tests' tiny backbones registered:
    python tests/sslzoo_command.py fit ...
(Lightning's DDP launcher re-runs this same command line for the other processes.)"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import tiny  # noqa: E402,F401  (registers tiny_mlp, tiny_conv)
from sslzoo.command import main  # noqa: E402

if __name__ == "__main__":
    main()
