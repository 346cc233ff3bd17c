"""One LightningModule per method."""
from .base import NonFiniteLossError, SSLMethod
from .boosted import BoostedFixMatch, BoostedMeanTeacher, BoostedSimMatch, BoostedSSL
from .daino import Daino
from .dino import DINO
from .fixmatch import FixMatch
from .lc_meanteacher import LCMeanTeacher
from .meanteacher import MeanTeacher
from .scan import SCAN
from .scan_self_label import SCANSelfLabel
from .simclr import SimCLR
from .simmatch import SimMatch
from .suave import Suave
from .supervised import Supervised
from .swav import SwAV

__all__ = [
    "BoostedFixMatch", "BoostedMeanTeacher", "BoostedSSL", "BoostedSimMatch",
    "DINO", "Daino", "FixMatch", "LCMeanTeacher", "MeanTeacher", "NonFiniteLossError", "SCAN", "SCANSelfLabel", "SSLMethod", "SimCLR", "SimMatch", "Suave", "Supervised", "SwAV",
]
